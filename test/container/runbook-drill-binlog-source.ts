/**
 * The binlog-streamed MariaDB source the binlog point-in-time drills share (the runbook's standard tools, and the
 * restore test): a database of its own on the services' binlog server (127.0.0.1:3307), ticks committed one
 * transaction each with the second they started (the time the binlog records), a dump with binlog coordinates taken
 * by the agent (--binlog-coordinates), and the server's binlogs stored by the streamer's own store: each file sealed
 * (zstd, age) under its stream with its metadata, the daily tier tag and its index beside it.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BINLOG_FORMAT_VERSION, BinlogIndex, BinlogStreamReason, Engine, Manifest, binlogStreamId, latestKey, parseLatest, parseManifest } from '../../lib/contract';
import { resolveRecipient } from '../../container/src/backup/encrypt';
import { binlogIndexOf, walkBinlogFile } from '../../container/src/binlog/events';
import { s3BinlogStore } from '../../container/src/binlog/store';
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

/** A dump of `database` on the binlog server by the agent, with its binlog coordinates (--binlog-coordinates), and its manifest. */
export async function dumpWithCoordinates(s3: MotoBucket, key: AgeKey, source: string, prefix: string, database: string): Promise<Manifest> {
  const run = await runAgent(['backup', '--source', source, '--engine', Engine.MYSQL, '--bucket', s3.bucket, '--prefix', prefix, '--recipient', key.recipient,
    '--host', BINLOG_MARIADB.host, '--port', String(BINLOG_MARIADB.port), '--user', BINLOG_MARIADB.user, '--database', database, '--binlog-coordinates', '--json'],
  agentEnv({ ...s3.env, MYSQL_PWD: BINLOG_MARIADB.password }));
  if (run.code !== 0) throw new Error(`the dump failed: ${run.stderr}`);
  const manifestKey = parseLatest((await s3.getText(latestKey(prefix, source)))!, 'latest.json').manifestKey;
  return parseManifest((await s3.getText(manifestKey))!, manifestKey);
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
export async function storeServerBinlogs(s3: MotoBucket, key: AgeKey, source: string, prefix: string, firstFile: string): Promise<StoredStream> {
  const dir = mkdtempSync(join(tmpdir(), 'restorable-binlogs-'));
  try {
    const fetch = spawnSync('mariadb-binlog', ['--read-from-remote-server', '--raw', '--to-last-log', '-h', BINLOG_MARIADB.host, '-P', String(BINLOG_MARIADB.port),
      '-u', BINLOG_MARIADB.user, `--result-file=${dir}/`, firstFile], { env: { ...process.env, MYSQL_PWD: BINLOG_MARIADB.password }, encoding: 'utf8', timeout: 60_000 });
    if (fetch.status !== 0) throw new Error(`mariadb-binlog could not fetch the server's binlogs: ${fetch.stderr}`);
    const files = readdirSync(dir).sort((a, b) => Number(a.split('.').pop()) - Number(b.split('.').pop()));
    const stream = binlogStreamId(new Date());
    // The streamer's own store: the same sealing, metadata, tier tag and index, write-once.
    const store = s3BinlogStore({ s3: s3.client, bucket: s3.bucket, prefix, source, recipient: resolveRecipient(key.recipient, undefined), level: 3, workDir: dir, legalHold: false });
    const objects: StoredStream['objects'] = [];
    for (const [i, file] of files.entries()) {
      const walk = await walkBinlogFile(join(dir, file), file);
      if (i === 0) {
        await store.startStream({
          formatVersion: BINLOG_FORMAT_VERSION, source, stream, startedAt: new Date().toISOString(), serverId: walk.format!.serverId,
          serverVersion: walk.format!.serverVersion, firstFile: file, reason: BinlogStreamReason.FIRST_START,
          detail: 'the spool was empty: the stream starts from the dump\'s file',
        });
      }
      // The file the server is writing is stored as a partial, up to its last whole event; the others whole.
      const partial = i === files.length - 1 && !walk.closed;
      const objectKey = await store.storeFile(stream, join(dir, file), file, walk, partial);
      objects.push({ key: objectKey, index: binlogIndexOf(walk, { source, stream, file, key: objectKey }) });
    }
    return { stream, objects };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
