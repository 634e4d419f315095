/**
 * `npm run bench:wal`: continuous WAL archiving, measured side by side in one run against one PostgreSQL 15 server and
 * moto's S3 (issue 17, item 8).
 *
 * 1. Keeping up: pgbench as fast as it goes on this machine for `--load` seconds while `restorable wal-receive` streams
 *    the WAL; every second, how far the stored WAL (whole segments, and received partials up to their length) is
 *    behind the server's WAL position, in MB and in seconds, and the receiver's memory (its process tree: node,
 *    pg_receivewal, zstd, age).
 * 2. RPO: light writes (a ticker committing every 100 ms, pgbench at a modest rate) archived both ways at once, by the
 *    receiver (default partial interval, 5 s) and by `restorable wal-push` as archive_command with archive_timeout = 60
 *    (the way pgBackRest and WAL-G are run), each into its own source with its own base backup. The server and every
 *    process of it are killed (SIGKILL) at a random moment 30 to 90 s after the last segment switch; `restore --to
 *    latest` of each source says how many seconds of acknowledged ticks are lost.
 * 3. Replay: the receiver's source restored `--to latest` by the agent (fetching and verifying WAL while the server
 *    replays it) against PostgreSQL replaying the same WAL, already on local disk, with restore_command = cp.
 *
 *   npm run bench:wal -- [--load SECONDS] [--scale N]
 *
 * Not part of CI. The restores run as the postgres user when run as root (pg_ctl refuses root).
 */
import { ChildProcess, spawn } from 'node:child_process';
import { appendFileSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { Client } from 'pg';
import { WAL_DIR, sourcePrefix } from '../lib/contract';
import { AGENT_BUNDLE, MotoBucket, agentEnv, freePort, makeAgeKey, motoBucket, requireAgentBundle } from '../test/support';
import { Pg15Cluster, PG15_BIN, agentForCluster, clusterOwnedDir, copyForCluster, runPg15, startPg15Cluster } from '../test/support/pg-wal-cluster';
import { Ticker, runAgentAsServerUser } from '../test/support/wal-load';
import { treeRss } from './measure';

const MB = 1e6;
const SEGMENT = 16 * 1024 * 1024;
const argv = process.argv.slice(2);
const option = (name: string, fallback: string) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? argv[i + 1] : fallback; };
const say = (line: string) => process.stderr.write(`${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const RECEIVE = 'bench-receive';
const PUSH = 'bench-push';

/** An LSN (`16/B374D848`) as a byte position. */
const lsnBytes = (lsn: string) => { const [hi, lo] = lsn.split('/'); return parseInt(hi, 16) * 2 ** 32 + parseInt(lo, 16); };
/** The byte position a stored WAL name reaches: the end of a segment, or a received partial's length into it. */
function reach(name: string): number | undefined {
  const m = /^[0-9A-F]{8}([0-9A-F]{8})([0-9A-F]{8})(?:\.partial\.([0-9A-F]{8}))?$/.exec(name);
  if (!m) return undefined;
  const start = (parseInt(m[1], 16) * 0x100000000 / SEGMENT + parseInt(m[2], 16)) * SEGMENT;
  return m[3] === undefined ? start + SEGMENT : start + parseInt(m[3], 16);
}

/** How far the stored WAL of a source reaches, listing only what is new since the last look. */
class StoredReach {
  private after?: string;
  reach = 0;

  constructor(private readonly s3: MotoBucket, private readonly source: string) {}

  async poll(): Promise<number> {
    const prefix = `${sourcePrefix(undefined, this.source)}${WAL_DIR}/`;
    let token: string | undefined;
    do {
      const page = await this.s3.client.send(new ListObjectsV2Command({ Bucket: this.s3.bucket, Prefix: prefix, StartAfter: this.after, ContinuationToken: token }));
      for (const o of page.Contents ?? []) {
        this.after = o.Key!;
        this.reach = Math.max(this.reach, reach(o.Key!.slice(prefix.length).replace(/\.zst\.age$/, '')) ?? 0);
      }
      token = page.NextContinuationToken;
    } while (token);
    return this.reach;
  }
}

function pgbench(cluster: Pg15Cluster, args: readonly string[]): ChildProcess {
  return spawn(join(PG15_BIN, 'pgbench'), [...args, '-h', cluster.host, '-p', String(cluster.port), '-U', cluster.user, 'postgres'], { stdio: ['ignore', 'pipe', 'pipe'] });
}

async function main(): Promise<void> {
  requireAgentBundle();
  const loadSeconds = Number(option('load', '30'));
  const scale = Number(option('scale', '10'));
  const agent = agentForCluster(AGENT_BUNDLE);
  const s3 = await motoBucket();
  const key = makeAgeKey();
  const work = clusterOwnedDir('restorable-bench-wal-');
  const identity = copyForCluster(work, key.identityFile, 'identity.txt');
  const spool = join(work, 'spool');
  const env = { ...agentEnv(s3.env), PATH: `${PG15_BIN}:${process.env.PATH}` } as Record<string, string>;
  const quote = (s: string) => `'${s.replace(/'/g, "''")}'`;
  const primary = await startPg15Cluster({
    settings: {
      archive_mode: 'on',
      archive_command: quote(`${process.execPath} ${agent} wal-push %p --source ${PUSH} --bucket ${s3.bucket} --recipient ${key.recipient}`),
      archive_timeout: '60',
      track_commit_timestamp: 'on',
      max_wal_size: "'2GB'",
    },
    env,
  });
  let receiver: ChildProcess | undefined;
  const restored: string[] = [];
  const cleanup = () => {
    if (receiver?.pid) try { process.kill(-receiver.pid, 'SIGKILL'); } catch { /* gone */ }
    for (const data of restored) try { runPg15('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']); } catch { /* not running */ }
    primary.destroy();
    rmSync(work, { recursive: true, force: true });
    rmSync(dirname(agent), { recursive: true, force: true });
  };
  try {
    const sql = async <T extends object>(text: string): Promise<T[]> => {
      const c = new Client({ host: primary.host, port: primary.port, user: primary.user, database: 'postgres' });
      await c.connect();
      try { return (await c.query(text)).rows as T[]; } finally { await c.end(); }
    };
    const serverLsn = async () => lsnBytes((await sql<{ lsn: string }>('SELECT pg_current_wal_lsn() AS lsn'))[0].lsn);
    await sql('CREATE TABLE ticks (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())');
    say(`pgbench -i -s ${scale}…`);
    runPg15('pgbench', ['-i', '-s', String(scale), '-q', '-h', primary.host, '-p', String(primary.port), '-U', primary.user, 'postgres']);

    receiver = spawn(process.execPath, [agent, 'wal-receive', '--source', RECEIVE, '--bucket', s3.bucket, '--recipient', key.recipient,
      '--spool', spool, '--host', primary.host, '--port', String(primary.port), '--user', primary.user],
    { env, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let receiverLog = '';
    receiver.stderr!.on('data', (b: Buffer) => { receiverLog = (receiverLog + b.toString()).slice(-50_000); });
    const receiverDone = new Promise<number | null>((resolve) => receiver!.on('close', resolve));
    for (let i = 0; !(await sql('SELECT 1 FROM pg_stat_replication WHERE application_name = \'restorable_bench_receive\' AND state = \'streaming\'')).length; i++) {
      if (i > 100) throw new Error(`the receiver did not start streaming:\n${receiverLog}`);
      await sleep(200);
    }
    for (const source of [RECEIVE, PUSH]) {
      say(`base backup of ${source}…`);
      const run = await runAgentAsServerUser(agent, ['basebackup', '--source', source, '--bucket', s3.bucket, '--recipient', key.recipient,
        '--host', primary.host, '--port', String(primary.port), '--user', primary.user], env, work);
      if (run.code !== 0) throw new Error(`basebackup failed: ${run.stderr}`);
    }

    // 1. Keeping up with pgbench at full speed.
    say(`keeping up: pgbench at full speed for ${loadSeconds} s…`);
    const stored = new StoredReach(s3, RECEIVE);
    const startLsn = await serverLsn();
    const rssStart = treeRss(receiver.pid!);
    const bench = pgbench(primary, ['-n', '-c', '4', '-j', '2', '-T', String(loadSeconds), '-P', String(loadSeconds)]);
    let benchOut = '';
    bench.stdout!.on('data', (b: Buffer) => { benchOut += b.toString(); });
    const benchDone = new Promise((resolve) => bench.on('close', resolve));
    const samples: { t: number; server: number; stored: number; rss: number }[] = [];
    const loadStart = Date.now();
    let benchRunning = true;
    void benchDone.then(() => { benchRunning = false; });
    while (benchRunning) {
      samples.push({ t: (Date.now() - loadStart) / 1000, server: await serverLsn(), stored: await stored.poll(), rss: treeRss(receiver.pid!) });
      await sleep(1000);
    }
    const endLsn = await serverLsn();
    const stopped = Date.now();
    // Within a page: the end of the last record may be zeros, which a received partial's length leaves out.
    for (const deadline = Date.now() + 120_000; await stored.poll() < endLsn - 1024;) {
      if (Date.now() > deadline) throw new Error(`the stored WAL did not reach the server's ${endLsn} within 120 s:\n${receiverLog.slice(-3000)}`);
      await sleep(200);
    }
    const catchUp = (Date.now() - stopped) / 1000;
    const tps = Math.round(Number(/tps = ([\d.]+)/.exec(benchOut)?.[1] ?? NaN));
    // Seconds behind: how long ago the server was where the store is now.
    const behind = samples.map((s) => { const then = samples.find((p) => p.server >= s.stored); return then ? s.t - then.t : s.t; });
    const lagMb = samples.map((s) => Math.max(0, s.server - s.stored) / MB);
    const rss = samples.map((s) => s.rss);
    const walMb = (endLsn - startLsn) / MB;

    // 2. RPO after SIGKILL, light writes, both ways at once.
    const [switched] = await sql<{ file: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS file');
    const switchedAt = Date.now();
    const killAfter = 30 + Math.floor(Math.random() * 60);
    say(`RPO: light writes, the server killed ${killAfter} s after the segment switch (archive_timeout = 60)…`);
    const db = new Client({ host: primary.host, port: primary.port, user: primary.user, database: 'postgres' });
    await db.connect();
    db.on('error', () => undefined);
    const ticker = new Ticker(db);
    const light = pgbench(primary, ['-n', '-c', '2', '-T', '200', '--rate', '20']);
    await sleep(switchedAt + killAfter * 1000 - Date.now());
    const [archiver] = await sql<{ last_archived_wal: string; last_archived_time: Date }>('SELECT last_archived_wal, last_archived_time FROM pg_stat_archiver');
    const postmaster = Number(readFileSync(join(primary.data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    const serverProcesses = [postmaster, ...childrenOf(postmaster)];
    const killedAt = Date.now();
    for (const pid of serverProcesses) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    await ticker.stop();
    light.kill('SIGKILL');
    const lastAcked = ticker.lastAcked;
    // The receiver stores what it flushed within its interval; then it is stopped, which stores it at once too.
    await sleep(7000);
    process.kill(-receiver.pid!, 'SIGTERM');
    const receiverCode = await receiverDone;
    receiver = undefined;
    if (receiverCode !== 0) throw new Error(`the receiver exited ${receiverCode}:\n${receiverLog.slice(-3000)}`);

    // What the light writes cost in objects: received partials stored between the switch and the kill.
    const objects: { Key?: string; Size?: number; LastModified?: Date }[] = [];
    for (let token: string | undefined, first = true; first || token; first = false) {
      const page = await s3.client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: sourcePrefix(undefined, RECEIVE), ContinuationToken: token }));
      objects.push(...(page.Contents ?? []));
      token = page.NextContinuationToken;
    }
    const lightPartials = objects.filter((o) => /\.partial\.[0-9A-F]{8}\.zst\.age$/.test(o.Key!) &&
      o.LastModified!.getTime() >= switchedAt - 1000 && o.LastModified!.getTime() <= killedAt + 1000);
    const lightSeconds = (killedAt - switchedAt) / 1000;
    const perDay = (n: number) => n * 86_400 / lightSeconds;
    const partialsPerDay = perDay(lightPartials.length);
    const partialGbPerDay = perDay(lightPartials.reduce((sum, o) => sum + (o.Size ?? 0), 0)) / 1e9;
    // Each received partial holds the segment so far: at steady light writes, a day's partials add up to about
    // 86,400 s / interval uploads of half a compressed segment each.
    const written = lightPartials.reduce((sum, o) => sum + parseInt(/\.partial\.([0-9A-F]{8})\./.exec(o.Key!)![1], 16), 0);
    const compressed = lightPartials.reduce((sum, o) => sum + (o.Size ?? 0), 0) / written;
    const steadyGbPerDay = (86_400 / 5) * (SEGMENT * compressed / 2) / 1e9;

    // 3. Restores: the agent's, then PostgreSQL from local WAL with cp.
    const rpo: Record<string, { lostTicks: number; lostSeconds: number; seconds: number; replaySeconds: number; files: number }> = {};
    for (const source of [RECEIVE, PUSH]) {
      const data = join(work, `restored-${source}`);
      restored.push(data);
      const port = await freePort();
      say(`restore --to latest of ${source}…`);
      const run = await runAgentAsServerUser(agent, ['restore', '--source', source, '--bucket', s3.bucket, '--to', 'latest', '--data-dir', data,
        '--identity-file', identity, '--port', String(port), '--pg-bin', PG15_BIN, '--json'], env, work);
      if (run.code !== 0) throw new Error(`restore of ${source} failed: ${run.stderr.slice(-3000)}`);
      const result = JSON.parse(run.stdout) as { restoreSeconds: number; walFilesFetched: number };
      const c = new Client({ host: '127.0.0.1', port, user: primary.user, database: 'postgres' });
      await c.connect();
      const newest = Number((await c.query<{ id: string }>('SELECT max(id) AS id FROM ticks')).rows[0].id);
      await c.end();
      const unpacked = logTime(run.stderr, 'base backup unpacked');
      const finished = logTime(run.stderr, 'point-in-time restore finished');
      rpo[source] = {
        lostTicks: Math.max(0, lastAcked - newest), lostSeconds: ticker.secondsLost(newest),
        seconds: result.restoreSeconds,
        replaySeconds: (finished - unpacked) / 1000, files: result.walFilesFetched,
      };
      runPg15('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']);
    }
    say('PostgreSQL replaying the same WAL from a local directory with cp…');
    const local = join(work, 'restored-local');
    restored.push(local);
    const prepared = await runAgentAsServerUser(agent, ['restore', '--source', RECEIVE, '--bucket', s3.bucket, '--to', 'latest', '--data-dir', local,
      '--identity-file', identity, '--json'], env, work);
    if (prepared.code !== 0) throw new Error(`restore without a server failed: ${prepared.stderr.slice(-3000)}`);
    const localPort = await freePort();
    appendFileSync(join(local, 'postgresql.auto.conf'), `restore_command = 'cp ${local}.wal/%f %p'\nport = ${localPort}\n`);
    const replayStart = Date.now();
    runPg15('pg_ctl', ['-D', local, '-l', join(work, 'local.log'), '-w', '-t', '600', 'start']);
    for (;;) {
      const c = new Client({ host: '127.0.0.1', port: localPort, user: primary.user, database: 'postgres' });
      try {
        await c.connect();
        if (!(await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0].r) break;
      } catch {
        // still starting
      } finally {
        await c.end().catch(() => undefined);
      }
      await sleep(50);
    }
    const localReplay = (Date.now() - replayStart) / 1000;

    const r = rpo[RECEIVE];
    const p = rpo[PUSH];
    const report = [
      `## WAL archiving (\`npm run bench:wal\`, ${new Date().toISOString().slice(0, 10)})`,
      '',
      `One PostgreSQL 15 server, moto's S3 on loopback, ${loadavg()[0].toFixed(1)} load average at the end (the machine is shared).`,
      '',
      `**Keeping up.** pgbench at full speed (4 clients, scale ${scale}) for ${loadSeconds} s: ${tps} tps, ${walMb.toFixed(0)} MB of WAL ` +
      `(${(walMb / loadSeconds).toFixed(1)} MB/s). The stored WAL was at most ${Math.max(...lagMb).toFixed(1)} MB and ` +
      `${Math.max(...behind).toFixed(1)} s behind the server (median ${median(behind).toFixed(1)} s), and reached the server's last position ` +
      `${catchUp.toFixed(1)} s after pgbench stopped. The receiver's processes (node, pg_receivewal, zstd, age) held ` +
      `${rssStart.toFixed(0)} MB before the load, at most ${Math.max(...rss).toFixed(0)} MB during it and ${rss[rss.length - 1].toFixed(0)} MB at its end.`,
      '',
      `**RPO after SIGKILL.** Light writes (a tick every 100 ms, pgbench at 20 tps), the server and all its processes killed ${killAfter} s ` +
      `after a segment switch; the archiver had last stored ${archiver.last_archived_wal} ${((killedAt - new Date(archiver.last_archived_time).getTime()) / 1000).toFixed(0)} s before.`,
      '',
      '| archived by | ticks lost | seconds of acknowledged ticks lost | WAL files restored | restore --to latest |',
      '|---|---|---|---|---|',
      `| \`wal-receive\` (partial interval 5 s) | ${r.lostTicks} | ${r.lostSeconds.toFixed(1)} | ${r.files} | ${r.seconds.toFixed(1)} s |`,
      `| \`wal-push\` as archive_command, archive_timeout = 60 | ${p.lostTicks} | ${p.lostSeconds.toFixed(1)} | ${p.files} | ${p.seconds.toFixed(1)} s |`,
      '',
      `**Objects.** During the ${lightSeconds.toFixed(0)} s of light writes the receiver stored ${lightPartials.length} received partials ` +
      `(one every ${(lightSeconds / Math.max(1, lightPartials.length)).toFixed(1)} s), ${(lightPartials.reduce((sum, o) => sum + (o.Size ?? 0), 0) / MB).toFixed(1)} MB: ` +
      `at that rate ${Math.round(partialsPerDay)} PUTs a day (about $${(partialsPerDay * 0.005 / 1000).toFixed(3)} at $0.005 per 1,000, the same again ` +
      `for their legal holds with --legal-hold) and ${partialGbPerDay.toFixed(2)} GB a day, kept as long as the daily tier keeps base backups. ` +
      `Each received partial holds its segment so far (stored at ${(compressed * 100).toFixed(0)} % of the WAL they hold here), so over whole ` +
      `segments of steady light writes the partials add up to about ${steadyGbPerDay.toFixed(0)} GB a day, whatever the write rate, until a ` +
      'segment fills within one interval.',
      '',
      `**Replay.** The receiver's source from its base backup to the end (${r.files} WAL files): the agent fetching, verifying and ` +
      `handing WAL to the replaying server took ${r.replaySeconds.toFixed(1)} s from the unpacked base backup to the promoted server; PostgreSQL ` +
      `replaying the same files from local disk with restore_command = cp took ${localReplay.toFixed(1)} s: ` +
      `${(r.replaySeconds / localReplay).toFixed(2)}× (goal ≤ 1.3×).`,
      '',
      `(segment switched before the light writes: ${switched.file}; last acknowledged tick: ${lastAcked})`,
    ].join('\n');
    process.stdout.write(`${report}\n`);
  } finally {
    cleanup();
    await s3.stop();
  }
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** The time of the agent's first log line with this message, in ms. */
function logTime(stderr: string, msg: string): number {
  const line = stderr.split('\n').find((l) => l.startsWith('{') && (JSON.parse(l) as { msg: string }).msg === msg);
  if (!line) throw new Error(`no '${msg}' in the agent's log`);
  return Date.parse((JSON.parse(line) as { time: string }).time);
}

function childrenOf(pid: number): number[] {
  return readdirSync('/proc').filter((e) => /^\d+$/.test(e)).filter((e) => {
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
    } catch {
      return false;
    }
  }).map(Number);
}

main().catch((err: Error) => {
  say(`bench:wal failed: ${err.stack ?? err.message}`);
  process.exit(1);
});
