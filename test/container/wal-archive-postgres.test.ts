/**
 * `restorable wal-push` as a real PostgreSQL 15 server's archive_command and `restorable wal-fetch` as another's
 * restore_command, with the bundled agent and moto's S3: the server archives its WAL through the agent,
 * each file lands write-once under {source}/wal/ with its SHA-256s, and a cluster made from a base backup
 * (pg_basebackup -X none, so every WAL file it needs comes from the archive) replays it to the end and has every row.
 * Then the edges PostgreSQL relies on: a retried file, a different file under a stored name, a file the archive does
 * not hold, and a damaged object.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { CopyObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { WAL_DIR, WAL_METADATA, sourcePrefix, walKey } from '../../lib/contract';
import {
  AgeKey, AGENT_BUNDLE, MotoBucket, agentEnv, clusterQuery, cuttingProxy, makeAgeKey, motoBucket, requireAgentBundle, runAgent,
} from '../support';
import { Pg15Cluster, agentForCluster, clusterOwnedDir, copyForCluster, runPg15, startPg15Cluster } from '../support/pg-wal-cluster';

jest.setTimeout(180_000);

const source = 'wal-pg';
let s3: MotoBucket;
let key: AgeKey;
let primary: Pg15Cluster;
let restored: Pg15Cluster | undefined;
/** The bundled agent, copied where the server's user can run it. */
let agent: string;
/** Directories to remove at the end: base backups never started, fetched files. */
const leftovers: string[] = [];
const scratchDir = (prefix: string) => {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  leftovers.push(dir);
  return dir;
};
/** Rows committed before and after the base backup. */
const ROWS_BEFORE = 2000;
const ROWS_AFTER = 3000;

const walPrefix = () => `${sourcePrefix(undefined, source)}${WAL_DIR}/`;
const env = () => agentEnv(s3.env);
const push = (path: string, extra: string[] = [], src = source) =>
  runAgent(['wal-push', path, '--source', src, '--bucket', s3.bucket, '--recipient', key.recipient, ...extra], env());
const fetch = (file: string, dest: string, src = source) =>
  runAgent(['wal-fetch', file, dest, '--source', src, '--bucket', s3.bucket, '--identity-file', key.identityFile], env());

async function sql<T extends object = Record<string, unknown>>(text: string): Promise<T[]> {
  return clusterQuery<T>(primary, 'postgres', text);
}

/** Waits until the archiver has archived `file` (or any file past it); fails at once on an archive failure. */
async function archivedThrough(file: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [stat] = await sql<{ last_archived_wal: string | null; failed_count: string; last_failed_wal: string | null }>(
      'SELECT last_archived_wal, failed_count, last_failed_wal FROM pg_stat_archiver');
    if (Number(stat.failed_count) > 0) throw new Error(`archive_command failed for ${stat.last_failed_wal}; the server's log:\n${primary.log().slice(-3000)}`);
    if (stat.last_archived_wal && stat.last_archived_wal >= file) return;
    if (Date.now() > deadline) throw new Error(`${file} was not archived within ${timeoutMs} ms (last: ${stat.last_archived_wal}); log:\n${primary.log().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Switches to a new segment and returns the name of the one it finished. */
async function switchWal(): Promise<string> {
  const [row] = await sql<{ file: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS file');
  return row.file;
}

beforeAll(async () => {
  requireAgentBundle();
  agent = agentForCluster(AGENT_BUNDLE);
  leftovers.push(dirname(agent));
  s3 = await motoBucket({ versioned: true });
  key = makeAgeKey();
  const quote = (s: string) => `'${s.replace(/'/g, "''")}'`;
  primary = await startPg15Cluster({
    settings: {
      archive_mode: 'on',
      // As a user writes it: the agent reads nothing but its arguments and the environment the server started with.
      archive_command: quote(`${process.execPath} ${agent} wal-push %p --source ${source} --bucket ${s3.bucket} --recipient ${key.recipient}`),
      wal_keep_size: "'256MB'",
    },
    env: env() as Record<string, string>,
  });
  await sql('CREATE TABLE ticks (id int PRIMARY KEY, note text NOT NULL)');
  await sql(`INSERT INTO ticks SELECT g, md5(g::text) FROM generate_series(1, ${ROWS_BEFORE}) g`);
  await archivedThrough(await switchWal());
});

afterAll(async () => {
  for (const dir of leftovers) rmSync(dir, { recursive: true, force: true });
  restored?.destroy();
  primary?.destroy();
  await s3?.stop();
});

/** A plain base backup without WAL: a cluster made from it must take every WAL file it needs from the archive. */
function baseBackup(): string {
  const dir = clusterOwnedDir('restorable-basebackup-');
  leftovers.push(dir);
  runPg15('pg_basebackup', ['-D', join(dir, 'data'), '-X', 'none', '-h', primary.host, '-p', String(primary.port), '-U', primary.user,
    '--checkpoint=fast', '--no-sync']);
  return dir;
}

/** Settings that make a base backup's cluster recover from the archive of `src` with the bundled agent. */
function recoverFrom(dir: string, src: string): Record<string, string> {
  // The identity must be readable by the server's user: copied into the cluster's own directory.
  const identity = copyForCluster(dir, key.identityFile, 'identity.txt');
  writeFileSync(join(dir, 'data', 'recovery.signal'), '');
  return {
    archive_mode: 'off',
    restore_command: `'${process.execPath} ${agent} wal-fetch %f %p --source ${src} --bucket ${s3.bucket} --identity-file ${identity}'`,
    recovery_target_timeline: "'latest'",
  };
}

describe('archive_command = restorable wal-push %p', () => {
  let backupDir: string;
  let secondBackupDir: string;

  beforeAll(async () => {
    backupDir = baseBackup();
    secondBackupDir = baseBackup();
    await sql(`INSERT INTO ticks SELECT g, md5(g::text) FROM generate_series(${ROWS_BEFORE + 1}, ${ROWS_BEFORE + ROWS_AFTER}) g`);
    await archivedThrough(await switchWal());
  });

  it('archives every segment, the base backups\' labels and nothing else, each once, with its SHA-256s', async () => {
    const [stat] = await sql<{ archived_count: string; failed_count: string }>('SELECT archived_count, failed_count FROM pg_stat_archiver');
    expect(Number(stat.failed_count)).toBe(0);
    const keys = await s3.keys(walPrefix());
    expect(keys.length).toBe(Number(stat.archived_count));
    const names = keys.map((k) => k.slice(walPrefix().length).replace(/\.zst\.age$/, ''));
    expect(names.filter((n) => /^[0-9A-F]{24}$/.test(n)).length).toBeGreaterThanOrEqual(3);
    expect(names.filter((n) => n.endsWith('.backup'))).toHaveLength(2); // one label per base backup
    expect(names.every((n) => /^[0-9A-F]{24}(\.[0-9A-F]{8}\.backup)?$/.test(n))).toBe(true);
    for (const k of keys) {
      expect(await s3.versions(k)).toHaveLength(1);
      const head = await s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: k }));
      expect(head.Metadata?.[WAL_METADATA.plaintextSha256]).toMatch(/^[0-9a-f]{64}$/);
      expect(head.Metadata?.[WAL_METADATA.sha256]).toMatch(/^[0-9a-f]{64}$/);
      expect(head.TagCount).toBe(1); // backup-tier=daily, set in the PUT: expired with the daily tier's base backups
    }
  });

  it('wal-fetch gives back each segment byte for byte as the server wrote it', async () => {
    const inPgWal = new Set(readdirSync(join(primary.data, 'pg_wal')));
    const dir = scratchDir('restorable-wal-fetched-');
    const segments = (await s3.keys(walPrefix())).map((k) => k.slice(walPrefix().length).replace(/\.zst\.age$/, ''));
    let compared = 0;
    for (const file of segments) {
      const run = await fetch(file, join(dir, file));
      expect({ file, code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({ file, code: 0, stderr: '' });
      if (/^[0-9A-F]{24}$/.test(file) && inPgWal.has(file)) {
        expect(readFileSync(join(dir, file)).equals(readFileSync(join(primary.data, 'pg_wal', file)))).toBe(true);
        compared++;
      }
    }
    expect(compared).toBeGreaterThanOrEqual(2);
    // Nothing but the fetched files: no temporary file left beside them.
    expect(readdirSync(dir).sort()).toEqual([...segments].sort());
  });

  it('a cluster restored from the base backup with restore_command = restorable wal-fetch replays to the end and has every row', async () => {
    restored = await startPg15Cluster({
      from: { dir: backupDir, data: join(backupDir, 'data') }, settings: recoverFrom(backupDir, source), env: env() as Record<string, string>,
    });
    const deadline = Date.now() + 60_000;
    for (;;) {
      const [row] = await clusterQuery<{ recovering: boolean }>(restored, 'postgres', 'SELECT pg_is_in_recovery() AS recovering');
      if (!row.recovering) break;
      if (Date.now() > deadline) throw new Error(`recovery did not finish; log:\n${restored.log().slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const [count] = await clusterQuery<{ n: string; last: number }>(restored, 'postgres', 'SELECT count(*) AS n, max(id) AS last FROM ticks');
    expect(Number(count.n)).toBe(ROWS_BEFORE + ROWS_AFTER);
    expect(count.last).toBe(ROWS_BEFORE + ROWS_AFTER);
    const log = restored.log();
    expect(log).toMatch(/restored log file "[0-9A-F]{24}" from archive/);
    expect(log).toContain('archive recovery complete');
    // PostgreSQL asked for files the archive does not hold (the next timeline's history): one quiet line each.
    expect(log).toMatch(/restorable wal-fetch: 0000000[0-9A-F]\.history is not in the archive/);
    expect(log).not.toMatch(/unexpected error|\n\s+at /);
  });

  it('a damaged segment stops recovery: the server does not start, rather than end recovery early and promote', async () => {
    const broken = 'wal-pg-broken';
    const keys = await s3.keys(walPrefix());
    for (const k of keys) {
      await s3.client.send(new CopyObjectCommand({ Bucket: s3.bucket, CopySource: `${s3.bucket}/${k}`, Key: `${sourcePrefix(undefined, broken)}${k.slice(sourcePrefix(undefined, source).length)}` }));
    }
    // The segment where the second base backup starts, named by its label: recovery cannot do without it.
    const label = keys.map((k) => k.slice(walPrefix().length)).filter((n) => n.endsWith('.backup.zst.age')).sort().pop()!;
    const needed = label.slice(0, 24);
    const damagedKey = walKey(undefined, broken, needed);
    const head = await s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: damagedKey }));
    const bytes = await s3.getBytes(damagedKey);
    bytes[bytes.length - 100] ^= 0x01;
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: damagedKey, Body: bytes, Metadata: head.Metadata }));

    await expect(startPg15Cluster({
      from: { dir: secondBackupDir, data: join(secondBackupDir, 'data') }, settings: recoverFrom(secondBackupDir, broken), env: env() as Record<string, string>,
    })).rejects.toThrow(/pg_ctl failed/);
    const log = readFileSync(join(secondBackupDir, 'log'), 'utf8');
    expect(log).toContain(`restorable wal-fetch: s3://${s3.bucket}/${damagedKey} does not match`);
    expect(log).toMatch(/FATAL: {2}could not restore file "[0-9A-F]{24}" from archive: child process exited with exit code 255/);
    expect(log).not.toContain('archive recovery complete');
    expect(readdirSync(join(secondBackupDir, 'data', 'pg_wal')).filter((f) => !['archive_status'].includes(f))).toEqual([]);
  });
});

describe('what PostgreSQL relies on', () => {
  let scratch: string;
  let stored: string;

  beforeAll(async () => {
    scratch = scratchDir('restorable-wal-edges-');
    stored = (await s3.keys(walPrefix())).map((k) => k.slice(walPrefix().length).replace(/\.zst\.age$/, '')).find((n) => /^[0-9A-F]{24}$/.test(n))!;
    const run = await fetch(stored, join(scratch, stored));
    expect(run.code).toBe(0);
  });

  it('a file already archived with the same SHA-256 exits 0 without writing (a retry after a crash)', async () => {
    const before = await s3.versions(walKey(undefined, source, stored));
    const run = await push(join(scratch, stored));
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('already archived with the same SHA-256');
    expect(await s3.versions(walKey(undefined, source, stored))).toEqual(before);
  });

  it('a different file under a name already stored fails, says so and keeps the stored one', async () => {
    const dir = scratchDir('restorable-wal-other-');
    const other = readFileSync(join(scratch, stored));
    other[100] ^= 0xff;
    writeFileSync(join(dir, stored), other);
    const before = await s3.versions(walKey(undefined, source, stored));
    const run = await push(join(dir, stored));
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`the archive holds a different ${stored}`);
    expect(run.stderr).toContain('Database system identifier');
    expect(run.stderr).not.toMatch(/\n\s+at /);
    expect(await s3.versions(walKey(undefined, source, stored))).toEqual(before);
  });

  it('two pushes of one new file at once both exit 0, and one object is written', async () => {
    const src = 'wal-pg-race';
    const runs = await Promise.all([push(join(scratch, stored), [], src), push(join(scratch, stored), [], src)]);
    expect(runs.map((r) => r.code)).toEqual([0, 0]);
    expect(runs.filter((r) => r.stdout.startsWith(`archived ${stored}`))).toHaveLength(1);
    expect(runs.filter((r) => r.stdout.includes('already archived with the same SHA-256'))).toHaveLength(1);
    expect(await s3.versions(walKey(undefined, src, stored))).toHaveLength(1);
  });

  it('an upload cut off midway stores nothing and leaves no spool behind, and the retry stores the file', async () => {
    const src = 'wal-pg-cut';
    const file = '0000000100000000000000F0';
    writeFileSync(join(scratch, file), randomBytes(16 * 1024 * 1024));
    const proxy = await cuttingProxy(Number(new URL(s3.endpoint).port), 4 * 1024 * 1024, () => undefined);
    const spoolDir = scratchDir('restorable-wal-spool-');
    try {
      const run = await runAgent(['wal-push', join(scratch, file), '--source', src, '--bucket', s3.bucket, '--recipient', key.recipient],
        { ...env(), AWS_ENDPOINT_URL: proxy.endpoint, AWS_ENDPOINT_URL_S3: proxy.endpoint, TMPDIR: spoolDir });
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`S3 PutObject s3://${s3.bucket}/${walKey(undefined, src, file)} failed`);
      expect(run.stderr).not.toMatch(/\n\s+at /);
    } finally {
      await proxy.close();
    }
    expect(await s3.keys(`${sourcePrefix(undefined, src)}`)).toEqual([]);
    expect(readdirSync(spoolDir)).toEqual([]);
    const retry = await push(join(scratch, file), [], src);
    expect(retry.code).toBe(0);
    expect(await s3.keys(`${sourcePrefix(undefined, src)}`)).toEqual([walKey(undefined, src, file)]);
  });

  it('refuses a file that is not WAL, naming what it accepts', async () => {
    const path = join(scratch, 'postmaster.pid');
    writeFileSync(path, '1234\n');
    const run = await push(path);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('is not a WAL file name PostgreSQL archives');
    expect(await s3.keys(walKey(undefined, source, 'postmaster'))).toEqual([]);
  });

  it('archives a timeline history file and a .partial segment, and fetches them back', async () => {
    const src = 'wal-pg-kinds';
    const files = { '00000002.history': '1\t0/3000000\tno recovery target specified\n', [`${stored}.partial`]: readFileSync(join(scratch, stored)) };
    for (const [name, content] of Object.entries(files)) {
      writeFileSync(join(scratch, name), content);
      expect((await push(join(scratch, name), [], src)).code).toBe(0);
      const dest = join(scratch, `fetched-${name}`);
      const run = await fetch(name, dest, src);
      expect(run.code).toBe(0);
      expect(readFileSync(dest).equals(Buffer.from(content))).toBe(true);
    }
  });

  it('wal-fetch of a file the archive does not hold exits 1 with one line and writes nothing', async () => {
    const dest = join(scratch, 'RECOVERYHISTORY');
    const run = await fetch('0000000A.history', dest);
    expect(run.code).toBe(1);
    expect(run.stderr.trim().split('\n')).toEqual([`restorable wal-fetch: 0000000A.history is not in the archive (s3://${s3.bucket}/${walKey(undefined, source, '0000000A.history')})`]);
    expect(run.stdout).toBe('');
    expect(existsSync(dest)).toBe(false);
  });

  it('a damaged stored object fails wal-fetch hard (recovery stops), leaving nothing at the destination', async () => {
    const src = 'wal-pg-damaged';
    const original = walKey(undefined, source, stored);
    const head = await s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: original }));
    const bytes = await s3.getBytes(original);
    // One flipped byte in the middle, the recorded checksums kept: as bit rot or a tampered copy would look.
    const damaged = Buffer.from(bytes);
    damaged[Math.floor(damaged.length / 2)] ^= 0x01;
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: walKey(undefined, src, stored), Body: damaged, Metadata: head.Metadata }));
    const dir = scratchDir('restorable-wal-damaged-');
    const run = await fetch(stored, join(dir, 'RECOVERYXLOG'), src);
    expect(run.code).toBe(255);
    expect(run.stderr).toMatch(/does not match|damaged/);
    expect(run.stderr).not.toMatch(/\n\s+at /);
    expect(readdirSync(dir)).toEqual([]);

    // The same with the stored SHA-256 recorded for the damaged bytes: age's authentication still refuses them.
    const src2 = 'wal-pg-damaged-resealed';
    const { createHash } = await import('node:crypto');
    await s3.client.send(new PutObjectCommand({
      Bucket: s3.bucket, Key: walKey(undefined, src2, stored), Body: damaged,
      Metadata: { ...head.Metadata, [WAL_METADATA.sha256]: createHash('sha256').update(damaged).digest('hex') },
    }));
    const again = await fetch(stored, join(dir, 'RECOVERYXLOG'), src2);
    expect(again.code).toBe(255);
    expect(again.stderr).toMatch(/damaged or truncated|could not be decrypted/);
    expect(readdirSync(dir)).toEqual([]);

    // An object without the checksums wal-push records is never handed to PostgreSQL.
    const src3 = 'wal-pg-unrecorded';
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: walKey(undefined, src3, stored), Body: bytes }));
    const unrecorded = await fetch(stored, join(dir, 'RECOVERYXLOG'), src3);
    expect(unrecorded.code).toBe(255);
    expect(unrecorded.stderr).toContain('cannot be verified');
    expect(readdirSync(dir)).toEqual([]);
  });
});
