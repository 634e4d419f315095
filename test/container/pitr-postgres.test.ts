/**
 * The proof of point-in-time recovery against a real PostgreSQL 15 server (issue 17, item 7), with the bundled agent
 * and moto's S3: `restorable wal-receive` streams the WAL of a server with track_commit_timestamp = on (with the
 * default partial interval, 5 s) while a ticker commits ten times a second and pgbench runs beside it;
 * `restorable basebackup` takes the base backup. A restore to a time T in the middle (the commit time of one tick, to
 * the microsecond) holds every transaction that committed at or before T and none after: recovery targets commit
 * times. Then the primary and the receiver are killed together (SIGKILL) during writes, as when both go down at once,
 * and `--to latest` is restored from what the store held; then a receiver started again on the same spool (which
 * outlives a task, as EFS does) stores what the killed one had received, and `--to latest` is restored again. The
 * seconds of acknowledged ticks each loses are measured and printed.
 *
 * The restores run as the server's user (the agent starts the restored server with pg_ctl, which refuses root); the
 * server's restore_command only copies WAL the agent fetched and verified, so it never sees the identity.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Client } from 'pg';
import {
  AgeKey, AGENT_BUNDLE, MotoBucket, agentEnv, clusterQuery, freePort, makeAgeKey, motoBucket, requireAgentBundle, runAgent,
} from '../support';
import { Ticker, runAgentAsServerUser } from '../support/wal-load';
import { Pg15Cluster, PG15_BIN, agentForCluster, clusterOwnedDir, copyForCluster, runPg15, startPg15Cluster } from '../support/pg-wal-cluster';

jest.setTimeout(240_000);

const source = 'pitr-pg';
let s3: MotoBucket;
let key: AgeKey;
let primary: Pg15Cluster;
/** The bundled agent and the identity, where the server's user can read them. */
let agent: string;
let identity: string;
let work: string;
const restoredData: string[] = [];
let pgbench: ChildProcess | undefined;
let ticker: Ticker;
let receiver: ChildProcess | undefined;
let receiverStderr = '';

const env = () => agentEnv(s3.env) as Record<string, string>;

interface Restored {
  readonly port: number;
  readonly result: { recoveredTo?: string; baseBackupKey: string; walFilesFetched: number; walFilesReplayed: number; restoreSeconds: number };
}

async function restore(to: string, name: string): Promise<Restored> {
  const port = await freePort();
  const data = join(work, name);
  restoredData.push(data);
  const run = await runAgentAsServerUser(agent, ['restore', '--source', source, '--bucket', s3.bucket, '--to', to, '--data-dir', data,
    '--identity-file', identity, '--port', String(port), '--pg-bin', PG15_BIN, '--json'], env(), work);
  expect({ code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({ code: 0, stderr: '' });
  return { port, result: JSON.parse(run.stdout) };
}

/** The receiver, in a process group of its own so that pg_receivewal goes with it; replication is trusted over loopback here. */
function startReceiver(): ChildProcess {
  const child = spawn(process.execPath, [agent, 'wal-receive', '--source', source, '--bucket', s3.bucket, '--recipient', key.recipient,
    '--spool', join(work, 'spool'), '--host', primary.host, '--port', String(primary.port), '--user', primary.user],
  { env: { ...env(), PATH: `${PG15_BIN}:${process.env.PATH}` }, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  child.stderr!.on('data', (b: Buffer) => { receiverStderr += b.toString(); });
  return child;
}

const exited = (child: ChildProcess) => new Promise((r) => child.exitCode !== null || child.signalCode !== null ? r(undefined) : child.once('exit', r));

const at = (port: number) => ({ host: '127.0.0.1', port, user: primary.user });
/** A restored server: no TCP, only its socket in the WAL directory beside its data directory (0700, the test runs as its owner or root). */
const restoredAt = (port: number, name: string) => ({ host: `${join(work, name)}.wal`, port, user: primary.user });
const US = `'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'`;
const commitTime = (table: string) => `to_char(pg_xact_commit_timestamp(${table}.xmin) AT TIME ZONE 'UTC', ${US})`;

beforeAll(async () => {
  requireAgentBundle();
  agent = agentForCluster(AGENT_BUNDLE);
  s3 = await motoBucket();
  key = makeAgeKey();
  work = clusterOwnedDir('restorable-pitr-');
  identity = copyForCluster(work, key.identityFile, 'identity.txt');
  primary = await startPg15Cluster({ settings: { track_commit_timestamp: 'on', wal_keep_size: "'512MB'" } });
  receiver = startReceiver();
  const deadline = Date.now() + 30_000;
  while ((await clusterQuery(primary, 'postgres', "SELECT 1 FROM pg_stat_replication WHERE state = 'streaming'")).length === 0) {
    if (Date.now() > deadline || receiver.exitCode !== null) throw new Error(`the receiver is not streaming:\n${receiverStderr.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  await clusterQuery(primary, 'postgres', 'CREATE TABLE ticks (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())');
  runPg15('pgbench', ['-i', '-s', '1', '-q', '-h', primary.host, '-p', String(primary.port), '-U', primary.user, 'postgres']);
  const base = await runAgent(['basebackup', '--source', source, '--bucket', s3.bucket, '--recipient', key.recipient,
    '--host', primary.host, '--port', String(primary.port), '--user', primary.user], { ...env(), PATH: `${PG15_BIN}:${process.env.PATH}` });
  expect({ code: base.code, stderr: base.code === 0 ? '' : base.stderr }).toEqual({ code: 0, stderr: '' });

  const client = new Client({ ...at(primary.port), database: 'postgres' });
  await client.connect();
  client.on('error', () => undefined); // the primary is killed under it
  ticker = new Ticker(client);
  pgbench = spawn(join(PG15_BIN, 'pgbench'), ['-n', '-c', '2', '-T', '120', '--rate', '40', '-h', primary.host, '-p', String(primary.port),
    '-U', primary.user, 'postgres'], { stdio: 'ignore' });
});

afterAll(async () => {
  await ticker?.stop();
  if (receiver?.pid && receiver.exitCode === null && receiver.signalCode === null) process.kill(-receiver.pid, 'SIGKILL');
  pgbench?.kill('SIGKILL');
  for (const data of restoredData) {
    try { runPg15('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']); } catch { /* not running */ }
  }
  primary?.destroy();
  for (const dir of [work, agent && dirname(agent)]) if (dir) rmSync(dir, { recursive: true, force: true });
  await s3?.stop();
});

describe('point-in-time restore of a PostgreSQL 15 server with continuous writes', () => {
  it('to a time T in the middle: every transaction committed at or before T is there, none after', async () => {
    await new Promise((r) => setTimeout(r, 4000));
    // T: the commit time of a tick in the middle, to the microsecond.
    const ticks = await clusterQuery<{ id: string; t: string }>(primary, 'postgres', `SELECT id, ${commitTime('ticks')} AS t FROM ticks ORDER BY id`);
    expect(ticks.length).toBeGreaterThan(20);
    const target = ticks[Math.floor(ticks.length / 2)].t;
    // WAL past T must be stored before it can be replayed: a received partial comes within the partial interval (5 s).
    await new Promise((r) => setTimeout(r, 8000));

    const { port, result } = await restore(target, 'to-time');
    const committedBy = await clusterQuery<{ id: string }>(primary, 'postgres',
      `SELECT id FROM ticks WHERE pg_xact_commit_timestamp(xmin) <= '${target}'::timestamptz ORDER BY id`);
    const after = await clusterQuery<{ n: string }>(primary, 'postgres', `SELECT count(*) AS n FROM ticks WHERE pg_xact_commit_timestamp(xmin) > '${target}'::timestamptz`);
    expect(Number(after[0].n)).toBeGreaterThan(10);
    const restoredTicks = await clusterQuery<{ id: string }>(restoredAt(port, 'to-time'), 'postgres', 'SELECT id FROM ticks ORDER BY id');
    expect(restoredTicks.map((r) => Number(r.id))).toEqual(committedBy.map((r) => Number(r.id)));

    // pgbench's transactions too: all that committed by T (its history rows), none after.
    const [history] = await clusterQuery<{ n: string }>(primary, 'postgres',
      `SELECT count(*) AS n FROM pgbench_history WHERE pg_xact_commit_timestamp(xmin) <= '${target}'::timestamptz`);
    const [restoredHistory] = await clusterQuery<{ n: string }>(restoredAt(port, 'to-time'), 'postgres', 'SELECT count(*) AS n FROM pgbench_history');
    expect(Number(history.n)).toBeGreaterThan(0);
    expect(restoredHistory.n).toBe(history.n);

    // The server says what it recovered to: the last commit at or before T, which is T's own tick.
    expect(result.recoveredTo).toBe(target);
    expect(result.walFilesReplayed).toBeGreaterThan(0);
    const [state] = await clusterQuery<{ recovering: boolean }>(restoredAt(port, 'to-time'), 'postgres', 'SELECT pg_is_in_recovery() AS recovering');
    expect(state.recovering).toBe(false);
    // The backup's own pg_hba.conf was set aside, and the server listens on no TCP address: only its 0700 socket directory.
    await expect(clusterQuery(at(port), 'postgres', 'SELECT 1')).rejects.toThrow(/ECONNREFUSED/);
    expect(readFileSync(join(work, 'to-time', 'pg_hba.conf'), 'utf8')).toMatch(/^local all all trust$/m);
    expect(statSync(`${join(work, 'to-time')}.wal`).mode & 0o777).toBe(0o700);
    // The server (and its restore_command) started with none of the agent's environment: no credentials, no endpoint.
    const serverPid = readFileSync(join(work, 'to-time', 'postmaster.pid'), 'utf8').split('\n')[0];
    const serverEnv = readFileSync(`/proc/${serverPid}/environ`, 'utf8').split('\0').filter(Boolean);
    expect(serverEnv).toEqual(['PATH=/usr/local/bin:/usr/bin:/bin']);
    process.stdout.write(`PITR to ${target}: ${restoredTicks.length} ticks (of ${restoredTicks.length + Number(after[0].n)}), ` +
      `${result.walFilesReplayed} WAL segments replayed, ${result.restoreSeconds.toFixed(1)} s\n`);
    runPg15('pg_ctl', ['-D', join(work, 'to-time'), '-m', 'fast', '-w', 'stop']);
    // The fetched WAL is gone once replayed; the server's restore_command was a copy from that directory only.
    const walDir = `${join(work, 'to-time')}.wal`;
    expect(readdirSync(walDir).filter((f) => /^[0-9A-F]{24}$/.test(f))).toEqual([]);
    expect(readFileSync(join(walDir, 'restore-command.sh'), 'utf8')).not.toMatch(/AGE-SECRET-KEY|AWS_|restorable\.cjs/);
    // The source's settings were set aside unread: among them its track_commit_timestamp, so the copy keeps none.
    expect(readFileSync(join(work, 'to-time', 'postgresql.conf.from-base-backup'), 'utf8')).toContain('track_commit_timestamp');
  });

  it('after the primary is killed during writes, --to latest recovers everything stored; the seconds lost are measured', async () => {
    await new Promise((r) => setTimeout(r, 3000));
    const pid = Number(readFileSync(join(primary.data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    process.kill(pid, 'SIGKILL');
    process.kill(-receiver!.pid!, 'SIGKILL');
    await ticker.stop();
    await exited(receiver!);
    const lastAcked = ticker.lastAcked;

    /** Restores --to latest and says how much of what was acknowledged it lost. */
    const measure = async (name: string) => {
      const { port, result } = await restore('latest', name);
      const ids = (await clusterQuery<{ id: string }>(restoredAt(port, name), 'postgres', 'SELECT id FROM ticks ORDER BY id')).map((r) => Number(r.id));
      const newest = ids[ids.length - 1];
      // A prefix of what was acknowledged: nothing in between is missing.
      expect(ids).toEqual(Array.from({ length: newest }, (_, i) => i + 1));
      expect(newest).toBeLessThanOrEqual(lastAcked);
      runPg15('pg_ctl', ['-D', join(work, name), '-m', 'fast', '-w', 'stop']);
      return { lost: lastAcked - newest, seconds: ticker.secondsLost(newest), result };
    };
    // What the store held when the server and the receiver died: at most a partial interval behind.
    const atKill = await measure('latest-at-kill');
    // A receiver started again on the spool stores what the killed one had received; stopped, it stores the last of it.
    receiver = startReceiver();
    await new Promise((r) => setTimeout(r, 4000));
    process.kill(-receiver.pid!, 'SIGTERM');
    await exited(receiver);
    const afterReceiver = await measure('latest-after-receiver');
    for (const [when, m] of [['restored from what the store held at the kill', atKill], ['restored after a receiver restarted on the spool stored the rest', afterReceiver]] as const) {
      process.stdout.write(`SIGKILL of the primary and the receiver (partial interval 5 s), ${when}: ${m.lost} of ${lastAcked} acknowledged ticks lost, ` +
        `${m.seconds.toFixed(1)} s of commits; recovered to ${m.result.recoveredTo}, ${m.result.walFilesReplayed} WAL segments replayed, ` +
        `restore ${m.result.restoreSeconds.toFixed(1)} s\n`);
    }
    expect(atKill.seconds).toBeLessThanOrEqual(5 + 3);
    expect(afterReceiver.seconds).toBeLessThanOrEqual(atKill.seconds);
    expect(afterReceiver.seconds).toBeLessThanOrEqual(1);
  });
});
