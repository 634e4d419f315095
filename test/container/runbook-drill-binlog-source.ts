/**
 * The binlog-streamed MariaDB source the binlog point-in-time drills share (the runbook's standard tools, and the
 * restore test): a database of its own on the services' binlog server (127.0.0.1:3307), ticks committed one
 * transaction each with the second they started (the time the binlog records), a dump with binlog coordinates taken
 * by the agent, and the server's binlogs stored as the streamer stores them: each file sealed (zstd, age) under its
 * stream with the WAL metadata names, the binlog ones, the daily tier tag and its index beside it.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import {
  BINLOG_FORMAT_VERSION, BINLOG_METADATA, BINLOG_TIER, BinlogIndex, BinlogStream, BinlogStreamReason, Engine, Manifest, WAL_METADATA,
  binlogIndexKey, binlogObjectKey, binlogPartialName, binlogStreamId, binlogStreamKey, latestKey, parseLatest, parseManifest,
} from '../../lib/contract';
import { binlogIndexOf, walkBinlogFile } from '../../container/src/binlog/events';
import { AgeKey, MotoBucket, agentEnv, runAgent } from '../support';
import { BINLOG_MARIADB, createBinlogDatabase, mariadbExec, mariadbExecAsync } from '../support/mariadb-binlog-server';

/** A tick's id and the second its statement started (Unix seconds): the time its binlog events carry. */
export interface BinlogTick {
  readonly id: number;
  readonly at: number;
}

/** Creates `database` on the binlog server with a `ticks` table and `before` rows committed before any dump. */
export function createTickDatabase(database: string, before: number): void {
  createBinlogDatabase(BINLOG_MARIADB, database);
  mariadbExec(BINLOG_MARIADB, database, 'CREATE TABLE ticks (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(40) NOT NULL, at BIGINT NOT NULL) ENGINE=InnoDB;' +
    `INSERT INTO ticks (note, at) SELECT 'before the dump', UNIX_TIMESTAMP() FROM seq_1_to_${before};`);
}

/** Commits `count` ticks, one transaction each, `gapMs` apart; returns them all (the ones committed before too). */
export async function commitTicks(database: string, count: number, gapMs: number): Promise<BinlogTick[]> {
  for (let i = 0; i < count; i++) {
    await mariadbExecAsync(BINLOG_MARIADB, database, 'INSERT INTO ticks (note, at) VALUES (\'tick\', UNIX_TIMESTAMP());');
    await new Promise((r) => setTimeout(r, gapMs));
  }
  return ticksOf(database);
}

export function ticksOf(database: string): BinlogTick[] {
  return mariadbExec(BINLOG_MARIADB, database, 'SELECT id, at FROM ticks WHERE note = \'tick\' ORDER BY id').map(([id, at]) => ({ id: Number(id), at: Number(at) }));
}

/**
 * A target inside a second in the middle of the ticks from the `from`th on, which has ticks both in it and after it
 * (half a second into it, which recovers the same as the whole second), and the ids a recovery to it must hold.
 */
export function targetAmongTicks(ticks: readonly BinlogTick[], from = 0): { target: Date; kept: number[] } {
  const seconds = [...new Set(ticks.slice(from).map((t) => t.at))].sort((a, b) => a - b);
  const second = seconds[Math.floor((seconds.length - 1) / 2)];
  return { target: new Date(second * 1000 + 500), kept: ticks.filter((t) => t.at <= second).map((t) => t.id) };
}

/**
 * A dump of `database` on the binlog server by the agent, and its manifest with the binlog coordinates of its
 * snapshot. The ticks must be still meanwhile: the coordinates are read beside the dump, and only this database's
 * events matter to a replay filtered to it.
 */
export async function dumpWithCoordinates(s3: MotoBucket, key: AgeKey, source: string, prefix: string, database: string): Promise<Manifest> {
  const [[file, position]] = mariadbExec(BINLOG_MARIADB, undefined, 'SHOW MASTER STATUS');
  const [[serverId]] = mariadbExec(BINLOG_MARIADB, undefined, 'SELECT @@server_id');
  const run = await runAgent(['backup', '--source', source, '--engine', Engine.MYSQL, '--bucket', s3.bucket, '--prefix', prefix, '--recipient', key.recipient,
    '--host', BINLOG_MARIADB.host, '--port', String(BINLOG_MARIADB.port), '--user', BINLOG_MARIADB.user, '--database', database, '--json'],
  agentEnv({ ...s3.env, MYSQL_PWD: BINLOG_MARIADB.password }));
  if (run.code !== 0) throw new Error(`the dump failed: ${run.stderr}`);
  const manifestKey = parseLatest((await s3.getText(latestKey(prefix, source)))!, 'latest.json').manifestKey;
  const manifest = parseManifest((await s3.getText(manifestKey))!, manifestKey);
  const withCoordinates: Manifest = { ...manifest, binlog: { file, position: Number(position), serverId: Number(serverId) } };
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: manifestKey, Body: JSON.stringify(withCoordinates) }));
  return withCoordinates;
}

function seal(bytes: Buffer, key: AgeKey): Buffer {
  const zstd = spawnSync('zstd', ['-q', '-c'], { input: bytes, maxBuffer: 1 << 30 });
  const age = spawnSync('age', ['-r', key.recipient], { input: zstd.stdout, maxBuffer: 1 << 30 });
  if (zstd.status !== 0 || age.status !== 0) throw new Error(`sealing failed: ${zstd.stderr}${age.stderr}`);
  return age.stdout;
}

export interface StoredStream {
  readonly stream: string;
  /** The objects stored, in order: key and index. */
  readonly objects: { readonly key: string; readonly index: BinlogIndex }[];
}

/**
 * Stores the server's binlogs from `firstFile` on, as the streamer does: each closed file whole, the file the server
 * is writing as a partial up to its last whole event. Every object sealed to `key`, with its metadata, tier tag and index.
 */
export async function storeServerBinlogs(s3: MotoBucket, key: AgeKey, source: string, prefix: string, firstFile: string,
  options: { stream?: string; partialOf?: string } = {}): Promise<StoredStream> {
  const dir = mkdtempSync(join(tmpdir(), 'restorable-binlogs-'));
  try {
    const fetch = spawnSync('mariadb-binlog', ['--read-from-remote-server', '--raw', '--to-last-log', '-h', BINLOG_MARIADB.host, '-P', String(BINLOG_MARIADB.port),
      '-u', BINLOG_MARIADB.user, `--result-file=${dir}/`, firstFile], { env: { ...process.env, MYSQL_PWD: BINLOG_MARIADB.password }, encoding: 'utf8', timeout: 60_000 });
    if (fetch.status !== 0) throw new Error(`mariadb-binlog could not fetch the server's binlogs: ${fetch.stderr}`);
    const files = readdirSync(dir).sort((a, b) => Number(a.split('.').pop()) - Number(b.split('.').pop()));
    const stream = options.stream ?? binlogStreamId(new Date());
    const tags = `backup-tier=${BINLOG_TIER}`;
    const objects: StoredStream['objects'] = [];
    for (const [i, file] of files.entries()) {
      const bytes = readFileSync(join(dir, file));
      const walk = await walkBinlogFile(join(dir, file), file);
      // The file the server is writing is stored as a partial, up to its last whole event; the others whole.
      const name = i === files.length - 1 && !walk.closed ? binlogPartialName(file, walk.size) : file;
      const objectKey = binlogObjectKey(prefix, source, stream, name);
      const index = binlogIndexOf(walk, { source, stream, file, key: objectKey });
      if (i === 0 && !options.stream) {
        const descriptor: BinlogStream = {
          formatVersion: BINLOG_FORMAT_VERSION, source, stream, startedAt: new Date().toISOString(), serverId: index.serverId, serverVersion: '10.11',
          firstFile: file, reason: BinlogStreamReason.FIRST_START, detail: 'the spool was empty: the stream starts from the server\'s oldest file',
        };
        await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: binlogStreamKey(prefix, source, stream), Body: JSON.stringify(descriptor), Tagging: tags }));
      }
      const sealed = seal(bytes.subarray(0, index.size), key);
      await s3.client.send(new PutObjectCommand({
        Bucket: s3.bucket, Key: objectKey, Body: sealed, Tagging: tags, Metadata: {
          [WAL_METADATA.plaintextSha256]: index.sha256, [WAL_METADATA.plaintextSize]: String(index.size),
          [WAL_METADATA.sha256]: createHash('sha256').update(sealed).digest('hex'), [BINLOG_METADATA.serverId]: String(index.serverId),
          [BINLOG_METADATA.created]: index.created,
        },
      }));
      await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: binlogIndexKey(objectKey), Body: JSON.stringify(index), Tagging: tags }));
      objects.push({ key: objectKey, index });
    }
    return { stream, objects };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
