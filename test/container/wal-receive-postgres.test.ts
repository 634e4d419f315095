/**
 * `restorable wal-receive` against a real PostgreSQL 15 server (on timeline 2, so that it has a history file to
 * stream) and moto's S3, with the bundled agent: a user with REPLICATION and a password (pg_hba: scram-sha-256 for
 * replication), a ticker committing several times a second. Proven here: the history file and every finished
 * segment land once, tagged with the daily tier, and fetch back byte for byte as the server wrote them; the growing
 * segment is stored as received partials within the partial interval of a commit; a receiver killed (SIGKILL, with
 * pg_receivewal) mid-stream and started again on the same spool leaves no segment missing; a server restart is
 * ridden out; SIGTERM stores the final partial after pg_receivewal exits; bad input is refused in words.
 * No EFS runs here: the spool is a directory that outlives the killed receiver, as EFS outlives a task.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { appendFileSync, copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Pool } from 'pg';
import { GetObjectLegalHoldCommand, GetObjectTaggingCommand, ObjectLockRetentionMode } from '@aws-sdk/client-s3';
import { TIER_TAG, WAL_DIR, WAL_TIER, sourcePrefix } from '../../lib/contract';
import { AgeKey, AgentRun, MotoBucket, agentEnv, freePort, logLines, makeAgeKey, motoBucket, requireAgentBundle } from '../support';
import { Pg15Cluster, startPg15Cluster } from '../support/pg-wal-cluster';

jest.setTimeout(90_000);

const PASSWORD = 'receiver-secret-9c1f';
const USER = 'walreceiver';
let s3: MotoBucket;
let key: AgeKey;
let primary: Pg15Cluster;
let db: Client;
let ticker: NodeJS.Timeout | undefined;
const leftovers: string[] = [];
const scratch = (prefix: string) => {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  leftovers.push(dir);
  return dir;
};
const running = new Set<Receiver>();
/** This file's own copy of the bundle, taken once: other work may rebuild the shared one while these tests run. */
let agent: string;
const closers: (() => Promise<void>)[] = [];

const walPrefix = (source: string) => `${sourcePrefix(undefined, source)}${WAL_DIR}/`;
const SEGMENT = /^[0-9A-F]{24}$/;
const RECEIVED = /^([0-9A-F]{24})\.partial\.([0-9A-F]{8})$/;

async function sql<T extends object = Record<string, unknown>>(text: string): Promise<T[]> {
  return (await db.query(text)).rows as T[];
}

/** The names stored under a source's wal/, without the .zst.age suffix. */
async function stored(source: string): Promise<string[]> {
  return (await s3.keys(walPrefix(source))).map((k) => k.slice(walPrefix(source).length).replace(/\.zst\.age$/, ''));
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

interface Receiver {
  readonly child: ChildProcess;
  stderr(): string;
  readonly finished: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

/** The receiver in a process group of its own, so that a SIGKILL takes pg_receivewal with it, as a stopped task does. */
function startReceiver(source: string, spool: string, extra: string[] = [], env: Record<string, string> = {}): Receiver {
  const args = ['wal-receive', '--source', source, '--bucket', s3.bucket, '--recipient', key.recipient, '--spool', spool,
    '--host', primary.host, '--port', String(primary.port), '--user', USER, ...extra];
  const receiver = startAgentCopy(args, { ...s3.env, PGPASSWORD: PASSWORD, ...env });
  running.add(receiver);
  void receiver.finished.then(() => running.delete(receiver));
  return receiver;
}

function startAgentCopy(args: readonly string[], env: Record<string, string>): Receiver {
  const child = spawn(process.execPath, [agent, ...args], { env: agentEnv(env), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => { stdout += b.toString(); });
  child.stderr!.on('data', (b: Buffer) => { stderr += b.toString(); });
  return {
    child, stderr: () => stderr,
    finished: new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }))),
  };
}

const runAgent = (args: readonly string[], env: Record<string, string>): Promise<AgentRun> => startAgentCopy(args, env).finished;

function killGroup(r: Receiver, signal: NodeJS.Signals): void {
  try {
    process.kill(-r.child.pid!, signal);
  } catch {
    // already gone
  }
}

/** Waits until a receiver streams on `slot`. */
async function streaming(slot: string): Promise<void> {
  await until(`a receiver streaming on ${slot}`, async () =>
    (await sql(`SELECT 1 FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid WHERE s.slot_name = '${slot}' AND r.state = 'streaming'`)).length
      ? true : undefined);
}

/** Switches to a new segment and returns the name of the one it finished. */
async function switchWal(): Promise<string> {
  const [row] = await sql<{ file: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS file');
  return row.file;
}

/** Commits a row and returns where the WAL stood right after: the segment and the offset in it. */
async function commitMarker(): Promise<{ segment: string; offset: number; lsn: string }> {
  await sql('INSERT INTO ticks (note) VALUES (\'marker\')');
  const [row] = await sql<{ file_name: string; file_offset: number; lsn: string }>(
    'SELECT file_name, file_offset, lsn FROM pg_current_wal_lsn() lsn, pg_walfile_name_offset(lsn)');
  return { segment: row.file_name, offset: row.file_offset, lsn: row.lsn };
}

/**
 * Whether what is stored reaches `at`: the segment whole, or a received partial of it that long. A partial ends at its
 * last non-zero byte and a restore pads it with zeros, so the zeros that end a record (its alignment to 8 bytes, say)
 * are covered without being stored: its length counts up to the next 8-byte boundary.
 */
function reaches(names: readonly string[], at: { segment: string; offset: number }): boolean {
  return names.some((n) => (SEGMENT.test(n) && n >= at.segment) ||
    (RECEIVED.exec(n)?.[1] === at.segment && Math.ceil(parseInt(RECEIVED.exec(n)![2], 16) / 8) * 8 >= at.offset));
}

/** Waits until every segment from `first` to `last` is stored, then returns the stored segments. */
async function storedThrough(source: string, last: string, timeoutMs = 30_000): Promise<string[]> {
  return until(`${last} stored`, async () => {
    const segments = (await stored(source)).filter((n) => SEGMENT.test(n));
    return segments.length && segments[segments.length - 1] >= last ? segments : undefined;
  }, timeoutMs);
}

/** The segments from the first to the last stored on timeline 2 follow each other without a hole. */
function expectContiguous(segments: readonly string[]): void {
  const numbers = segments.map((s) => parseInt(s.slice(8), 16));
  expect(numbers.length).toBeGreaterThan(1);
  numbers.forEach((n, i) => expect({ i, n }).toEqual({ i, n: numbers[0] + i }));
}

const fetchWal = (source: string, file: string, dest: string) =>
  runAgent(['wal-fetch', file, dest, '--source', source, '--bucket', s3.bucket, '--identity-file', key.identityFile], s3.env as Record<string, string>);

beforeAll(async () => {
  agent = join(scratch('restorable-agent-'), 'restorable.cjs');
  copyFileSync(requireAgentBundle(), agent);
  s3 = await motoBucket({ versioned: true });
  key = makeAgeKey();
  primary = await startPg15Cluster({ settings: { wal_keep_size: "'512MB'" } });
  // Timeline 2, as after a failover: archive recovery that finds nothing to restore ends and picks a new timeline.
  primary.stop();
  writeFileSync(join(primary.data, 'recovery.signal'), '');
  appendFileSync(join(primary.data, 'postgresql.conf'), "restore_command = 'false'\n");
  primary.start();
  writeFileSync(join(primary.data, 'pg_hba.conf'),
    `host replication ${USER} 127.0.0.1/32 scram-sha-256\n${readFileSync(join(primary.data, 'pg_hba.conf'), 'utf8')}`);
  db = new Client({ host: primary.host, port: primary.port, user: primary.user, database: 'postgres' });
  await db.connect();
  await until('the server out of recovery, on timeline 2', async () =>
    (await sql<{ recovering: boolean }>('SELECT pg_is_in_recovery() AS recovering'))[0].recovering ? undefined : true);
  await sql(`CREATE ROLE ${USER} LOGIN REPLICATION PASSWORD '${PASSWORD}'`);
  await sql('SELECT pg_reload_conf()');
  await sql('CREATE TABLE ticks (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp(), note text)');
  // A pool, so that the ticker reconnects after the server restarts.
  const ticks = new Pool({ host: primary.host, port: primary.port, user: primary.user, database: 'postgres', max: 1 });
  ticks.on('error', () => undefined);
  ticker = setInterval(() => { ticks.query('INSERT INTO ticks (note) VALUES (\'tick\')').catch(() => undefined); }, 100);
  closers.push(() => ticks.end());
}, 60_000);

afterAll(async () => {
  if (ticker) clearInterval(ticker);
  for (const r of running) killGroup(r, 'SIGKILL');
  for (const close of closers) await close().catch(() => undefined);
  await db?.end().catch(() => undefined);
  primary?.destroy();
  for (const dir of leftovers) rmSync(dir, { recursive: true, force: true });
  await s3?.stop();
});

describe('restorable wal-receive', () => {
  const source = 'wal-recv';
  let spool: string;
  let receiver: Receiver;
  let firstRun: string[];

  beforeAll(async () => {
    spool = scratch('restorable-wal-spool-');
    receiver = startReceiver(source, spool);
    await streaming('restorable_wal_recv');
  });

  it('stores the history file and every finished segment once, tagged daily, each fetching back as the server wrote it', async () => {
    await sql('INSERT INTO ticks (note) SELECT md5(g::text) FROM generate_series(1, 20000) g');
    await switchWal();
    await sql('INSERT INTO ticks (note) SELECT md5(g::text) FROM generate_series(1, 20000) g');
    const last = await switchWal();
    firstRun = await storedThrough(source, last);
    // Stored and then removed from the spool: only the growing segment stays.
    await until('the spool emptied', async () => readdirSync(spool).every((n) => n.endsWith('.partial') || n.endsWith('.history')) || undefined);
    const names = await stored(source);
    expect(names).toContain('00000002.history');
    expect(firstRun.every((s) => s.startsWith('00000002'))).toBe(true);
    expectContiguous(firstRun);
    for (const name of names) {
      expect(await s3.versions(`${walPrefix(source)}${name}.zst.age`)).toHaveLength(1);
      const tags = await s3.client.send(new GetObjectTaggingCommand({ Bucket: s3.bucket, Key: `${walPrefix(source)}${name}.zst.age` }));
      expect(tags.TagSet).toEqual([{ Key: TIER_TAG, Value: WAL_TIER }]);
    }
    const dir = scratch('restorable-wal-fetched-');
    for (const file of ['00000002.history', ...firstRun.slice(-3)]) {
      const run = await fetchWal(source, file, join(dir, file));
      expect({ file, code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({ file, code: 0, stderr: '' });
      const dirOfServer = join(primary.data, 'pg_wal', file);
      expect(readFileSync(join(dir, file)).equals(readFileSync(dirOfServer))).toBe(true);
    }
    // The password reached pg_receivewal through its environment, never its command line.
    const commandLines = readdirSync('/proc').filter((p) => /^\d+$/.test(p))
      .map((p) => { try { return readFileSync(`/proc/${p}/cmdline`, 'utf8'); } catch { return ''; } })
      .filter((c) => c.includes('pg_receivewal') || c.includes('wal-receive'));
    expect(commandLines.length).toBeGreaterThanOrEqual(2);
    expect(commandLines.filter((c) => c.includes(PASSWORD))).toEqual([]);
  });

  it('stores a commit as a received partial within the default interval (5 s) and a little, which fetches back as the server\'s prefix', async () => {
    const at = await commitMarker();
    const started = Date.now();
    await until('the commit stored', async () => reaches(await stored(source), at) || undefined, 15_000);
    const seconds = (Date.now() - started) / 1000;
    process.stdout.write(`a commit was stored ${seconds.toFixed(1)} s after it was made\n`);
    expect(seconds).toBeLessThanOrEqual(5 + 3);

    const partial = (await stored(source)).filter((n) => RECEIVED.test(n)).pop()!;
    const [, segment, hex] = RECEIVED.exec(partial)!;
    const dest = join(scratch('restorable-wal-partial-'), partial);
    const run = await fetchWal(source, partial, dest);
    expect(run.code).toBe(0);
    const bytes = readFileSync(dest);
    expect(bytes.length).toBe(parseInt(hex, 16));
    // The server's copy has grown since, never changed: the stored bytes are its beginning.
    const server = readFileSync(join(primary.data, 'pg_wal', segment));
    expect(bytes.equals(server.subarray(0, bytes.length))).toBe(true);
    expect(bytes[bytes.length - 1]).not.toBe(0);
  });

  it('a receiver killed mid-stream (SIGKILL, pg_receivewal with it) and started again on the same spool leaves no segment missing', async () => {
    // Frozen first, so that pg_receivewal finishes segments the receiver never stores: the spool must carry them over.
    process.kill(receiver.child.pid!, 'SIGSTOP');
    await sql('INSERT INTO ticks (note) SELECT md5(g::text) FROM generate_series(1, 20000) g');
    const whileFrozen = await switchWal();
    await until('pg_receivewal wrote a finished segment to the spool', async () => readdirSync(spool).includes(whileFrozen) || undefined);
    killGroup(receiver, 'SIGKILL');
    await receiver.finished;
    await sql('INSERT INTO ticks (note) SELECT md5(g::text) FROM generate_series(1, 20000) g');
    await switchWal();
    receiver = startReceiver(source, spool);
    await streaming('restorable_wal_recv');
    const last = await switchWal();
    const segments = await storedThrough(source, last);
    expectContiguous(segments);
    expect(segments[0]).toBe(firstRun[0]);
    const dir = scratch('restorable-wal-after-kill-');
    for (const file of segments.filter((s) => s > firstRun[firstRun.length - 1])) {
      const run = await fetchWal(source, file, join(dir, file));
      expect({ file, code: run.code }).toEqual({ file, code: 0 });
      expect(readFileSync(join(dir, file)).equals(readFileSync(join(primary.data, 'pg_wal', file)))).toBe(true);
    }
  });

  it('rides out a server restart: pg_receivewal is started again and the next segment is stored', async () => {
    await db.end();
    primary.stop('fast');
    primary.start();
    db = new Client({ host: primary.host, port: primary.port, user: primary.user, database: 'postgres' });
    await db.connect();
    await sql('INSERT INTO ticks (note) SELECT md5(g::text) FROM generate_series(1, 1000) g');
    const last = await switchWal();
    expectContiguous(await storedThrough(source, last));
    expect(receiver.stderr()).toContain('pg_receivewal stopped; starting it again');
  });

  it('SIGTERM stores the final partial once pg_receivewal has exited, and exits 0', async () => {
    // A receiver that stores no periodic partial in this test's time, so that only the stop can store the commit.
    killGroup(receiver, 'SIGTERM');
    await receiver.finished;
    receiver = startReceiver(source, spool, ['--partial-interval', '3600']);
    await streaming('restorable_wal_recv');
    const at = await commitMarker();
    // Received (pg_receivewal has flushed it), then stopped.
    await until('the commit received', async () => (await sql<{ flushed: boolean }>(
      `SELECT flush_lsn >= '${at.lsn}' AS flushed FROM pg_stat_replication WHERE application_name = 'restorable_wal_recv'`))[0]?.flushed || undefined);
    killGroup(receiver, 'SIGTERM');
    const run = await receiver.finished;
    expect({ code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({ code: 0, stderr: '' });
    expect(run.stdout).toMatch(/^stopped by SIGTERM: stored \d+ segments, \d+ history files and \d+ received partials from slot restorable_wal_recv/);
    // Stored after the signal: what pg_receivewal flushed before it exited.
    const afterStop = logLines(run.stderr.slice(run.stderr.indexOf('"stopping: '))).filter((l) => l.msg === 'wal file archived').map((l) => String(l.file));
    expect({ afterStop, at, reached: reaches(afterStop, at) }).toMatchObject({ reached: true });
    expect(run.stderr).not.toMatch(/\n\s+at /);
    // The growing segment stays in the spool for the next run to go on with.
    expect(readdirSync(spool).filter((n) => n.endsWith('.partial'))).toHaveLength(1);
  });
});

describe('refusals', () => {
  it('refuses bad input in words, before it connects', async () => {
    const spool = scratch('restorable-wal-spool-');
    const file = join(spool, 'not-a-directory');
    writeFileSync(file, '');
    const cases: [string[], string][] = [
      [['--slot', 'Bad-Slot'], 'is not a replication slot name'],
      [['--partial-interval', '0'], '--partial-interval must be a number of seconds from 1 to 3600'],
      [['--retry-for', 'soon'], '--retry-for must be a number of seconds'],
      [['--spool', file], 'cannot be used as the spool'],
      [['--source', 'Bad_Source'], 'source'],
    ];
    for (const [extra, words] of cases) {
      const run = await runAgent(['wal-receive', '--source', 'wal-recv-bad', '--bucket', s3.bucket, '--recipient', key.recipient, '--spool', spool, ...extra],
        s3.env as Record<string, string>);
      expect({ extra, code: run.code, said: run.stderr.includes(words) }).toEqual({ extra, code: 2, said: true });
      expect(run.stderr).not.toMatch(/\n\s+at /);
    }
    const noRecipient = await runAgent(['wal-receive', '--source', 'wal-recv-bad', '--bucket', s3.bucket, '--spool', spool], s3.env as Record<string, string>);
    expect(noRecipient.code).toBe(2);
    expect(noRecipient.stderr).toContain('--recipient');
    expect(readdirSync(spool)).toEqual(['not-a-directory']);
  });

  it('gives up, exit 1, once pg_receivewal has kept failing for --retry-for', async () => {
    const port = await freePort();
    const started = Date.now();
    const run = await runAgent(['wal-receive', '--source', 'wal-recv-down', '--bucket', s3.bucket, '--recipient', key.recipient,
      '--spool', scratch('restorable-wal-spool-'), '--host', '127.0.0.1', '--port', String(port), '--user', USER, '--retry-for', '2'], s3.env as Record<string, string>);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/restorable wal-receive: pg_receivewal --create-slot \(slot restorable_wal_recv_down\) has kept failing for \d+ s/);
    expect(run.stderr).toContain('REPLICATION');
    expect(Date.now() - started).toBeLessThan(20_000);
  });
});

describe('with --legal-hold', () => {
  it('holds every whole segment it stores, never a received partial', async () => {
    const locked = await motoBucket({ objectLock: { mode: ObjectLockRetentionMode.GOVERNANCE, days: 1 } });
    const bucketOf = s3;
    s3 = locked;
    try {
      const spool = scratch('restorable-wal-spool-');
      const r = startReceiver('wal-recv-held', spool, ['--legal-hold', '--partial-interval', '1']);
      await streaming('restorable_wal_recv_held');
      const last = await switchWal();
      await storedThrough('wal-recv-held', last);
      await until('a received partial stored', async () => (await stored('wal-recv-held')).some((n) => RECEIVED.test(n)) || undefined);
      killGroup(r, 'SIGTERM');
      expect((await r.finished).code).toBe(0);
      const keys = await s3.keys(walPrefix('wal-recv-held'));
      expect(keys.length).toBeGreaterThanOrEqual(3);
      const isPartial = (k: string) => RECEIVED.test(k.slice(k.lastIndexOf('/') + 1).replace(/\.zst\.age$/, ''));
      expect(keys.some(isPartial)).toBe(true);
      for (const k of keys) {
        // An object that never had a hold answers NoSuchObjectLockConfiguration.
        const hold = await s3.client.send(new GetObjectLegalHoldCommand({ Bucket: s3.bucket, Key: k })).catch((err: Error) => {
          if (err.name !== 'NoSuchObjectLockConfiguration') throw err;
          return undefined;
        });
        const status = hold?.LegalHold?.Status ?? 'none';
        expect({ k, status }).toEqual({ k, status: isPartial(k) ? 'none' : 'ON' });
      }
    } finally {
      s3 = bucketOf;
      await locked.stop();
    }
  });
});
