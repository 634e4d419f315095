/**
 * `npm run bench:binlog`: MariaDB binlog streaming, measured against a throwaway MariaDB 10.11 (16 MiB binlog files)
 * and moto's S3 on loopback (issue 18, item 8; replay speed is bench/binlog-replay.ts).
 *
 * 1. Keeping up: sysbench's write-only OLTP as fast as it goes (`--threads`) for `--load` seconds while `restorable
 *    binlog-stream` (default partial interval, 5 s) stores the binlogs; every second, how far what is stored (whole
 *    files, and partials up to their length) is behind the server's binlog position, in MB and in seconds, and the
 *    streamer's memory (its process tree: node, mariadb-binlog, zstd, age).
 * 2. RPO: a ticker committing every 100 ms and sysbench at a modest rate; the server is killed (SIGKILL) 20 s in, and
 *    after twice the partial interval the stored binlogs are read back (age, zstd, mariadb-binlog) for the newest tick
 *    they hold: the seconds of acknowledged ticks not stored. Run with the default interval (5 s) and with 1 s.
 *
 *   npm run bench:binlog -- [--load SECONDS] [--threads N]
 *
 * Not part of CI.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { binlogSequence } from '../lib/contract';
import { AgeKey, MotoBucket, makeAgeKey, motoBucket, requireAgentBundle } from '../test/support';
import { BinlogTicker, SysbenchLoad, sysbenchPrepare, sysbenchRun } from '../test/support/binlog-load';
import { StoredBinlog, openStoredBinlog, startStreamer, storedBinlogs, until } from '../test/support/binlog-stream';
import { ThrowawayMariadb, startThrowawayMariadb } from '../test/support/mariadb-binlog-server';
import { treeRss } from './measure';

const MB = 1e6;
const argv = process.argv.slice(2);
const option = (name: string, fallback: string) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? argv[i + 1] : fallback; };
const say = (line: string) => process.stderr.write(`${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

const dir = mkdtempSync(join(tmpdir(), 'restorable-bench-binlog-'));
const agent = join(dir, 'restorable.cjs');
copyFileSync(requireAgentBundle(), agent);

/** The server's position as one number: file sequence × 2^32 + offset. */
const position = (file: string, offset: number) => binlogSequence(file) * 2 ** 32 + offset;
function serverPosition(server: ThrowawayMariadb): number {
  const [[file, offset]] = server.exec('SHOW MASTER STATUS');
  return position(file, Number(offset));
}
/** How far the stored objects reach, in the same numbers (a whole file reaches the start of the next). */
function storedReach(objects: readonly StoredBinlog[]): number {
  return Math.max(0, ...objects.map((o) => (o.partialBytes === undefined ? position(o.file, 0) + 2 ** 32 - 1 : position(o.file, o.partialBytes))));
}

async function keepingUp(s3: MotoBucket, key: AgeKey, seconds: number, threads: number): Promise<void> {
  const server = await startThrowawayMariadb({ serverId: 51 });
  try {
    server.exec('CREATE DATABASE bench');
    await sysbenchPrepare(server, 'bench', 4, 20_000);
    const source = 'bench-binlog-keep-up';
    const streamer = startStreamer({ agent, s3, key, server, source, spool: join(dir, 'spool-keep-up') });
    await until('the streamer caught up with the prepared tables', async () => (storedReach(await storedBinlogs(s3, source)) >= serverPosition(server) ? true : undefined), 120_000);
    const idleRss = treeRss(streamer.child.pid!);
    const history: Array<[number, number]> = []; // [ms, server position]
    const behindMb: number[] = [];
    const behindS: number[] = [];
    const rss: number[] = [];
    const startPos = serverPosition(server);
    const load = sysbenchRun(server, 'bench', { seconds, threads, tables: 4, tableSize: 20_000 });
    const started = Date.now();
    let bytesWritten = 0;
    let lastPos = startPos;
    while (load.child.exitCode === null && load.child.signalCode === null) {
      await sleep(1000);
      const now = Date.now();
      const at = serverPosition(server);
      // Bytes written: within a file by offset; across a rotation by the files' size (16 MiB).
      bytesWritten += Math.floor(at / 2 ** 32) === Math.floor(lastPos / 2 ** 32) ? at - lastPos : (at % 2 ** 32) + (16 * 1024 * 1024 - (lastPos % 2 ** 32));
      lastPos = at;
      history.push([now, at]);
      const reach = storedReach(await storedBinlogs(s3, source));
      const reached = history.filter(([, p]) => p <= reach).pop();
      behindS.push(reached ? (now - reached[0]) / 1000 : (now - started) / 1000);
      behindMb.push(Math.floor(at / 2 ** 32) === Math.floor(reach / 2 ** 32) ? Math.max(0, at - reach) / MB : (at % 2 ** 32) / MB);
      rss.push(treeRss(streamer.child.pid!));
    }
    await load.finished;
    const end = serverPosition(server);
    const stoppedAt = Date.now();
    await until('the streamer caught up', async () => (storedReach(await storedBinlogs(s3, source)) >= end ? true : undefined), 60_000);
    const catchUp = (Date.now() - stoppedAt) / 1000;
    const afterRss = treeRss(streamer.child.pid!);
    streamer.child.kill('SIGTERM');
    const run = await streamer.finished;
    const summary = JSON.parse(run.stdout) as { files: number; partials: number };
    const tps = median(load.tps);
    say(`keeping up: sysbench oltp_write_only, ${threads} threads, ${seconds} s: median ${tps} tps, ${(bytesWritten / MB).toFixed(0)} MB of binlog ` +
      `(${(bytesWritten / MB / seconds).toFixed(1)} MB/s); stored at most ${Math.max(...behindMb).toFixed(1)} MB and ${Math.max(...behindS).toFixed(1)} s behind ` +
      `(median ${median(behindS).toFixed(1)} s); caught up ${catchUp.toFixed(1)} s after the load stopped; ${summary.files} files and ${summary.partials} partials stored; ` +
      `streamer RSS ${idleRss.toFixed(0)} MB before, at most ${Math.max(...rss).toFixed(0)} MB during, ${afterRss.toFixed(0)} MB after; load average ${loadavg()[0].toFixed(1)}`);
  } finally {
    await server.destroy();
  }
}

/** The newest tick id in the stored binlogs of `source`, read back from the newest file's objects. */
async function newestStoredTick(s3: MotoBucket, key: AgeKey, source: string): Promise<number> {
  const objects = await storedBinlogs(s3, source);
  const newestFile = objects.map((o) => o.file).sort((a, b) => binlogSequence(a) - binlogSequence(b)).pop()!;
  const newest = objects.filter((o) => o.file === newestFile).sort((a, b) => (b.partialBytes ?? Infinity) - (a.partialBytes ?? Infinity))[0];
  const path = join(dir, 'newest.bin');
  writeFileSync(path, (await openStoredBinlog(s3, key, newest.key)).bytes);
  const text = execFileSync('mariadb-binlog', ['--no-defaults', '--base64-output=decode-rows', '-v', path], { maxBuffer: 1024 * 1024 * 1024 }).toString();
  const ids = [...text.matchAll(/### INSERT INTO `bench`\.`ticks`\n### SET\n###\s+@1=(\d+)/g)].map((m) => Number(m[1]));
  return Math.max(0, ...ids);
}

async function rpo(s3: MotoBucket, key: AgeKey, interval: number): Promise<void> {
  const server = await startThrowawayMariadb({ serverId: 52 });
  try {
    server.exec('CREATE DATABASE bench');
    await sysbenchPrepare(server, 'bench', 2, 10_000);
    const source = `bench-binlog-rpo-${interval}`;
    const streamer = startStreamer({ agent, s3, key, server, source, spool: join(dir, `spool-rpo-${interval}`), extra: ['--partial-interval', String(interval)] });
    const ticker = new BinlogTicker(server, 'bench', 100);
    const load = new SysbenchLoad(server, 'bench', { threads: 1, rate: 20 });
    await sleep(20_000);
    await server.kill();
    const acked = ticker.lastAcked;
    await sleep(2 * interval * 1000 + 2000);
    await Promise.all([ticker.stop(), load.stop()]);
    const newest = await newestStoredTick(s3, key, source);
    say(`RPO, partial interval ${interval} s: server SIGKILLed; newest tick acknowledged ${acked}, newest stored ${newest}: ` +
      `${acked - Math.min(acked, newest)} ticks, ${ticker.secondsLost(newest).toFixed(1)} s of acknowledged ticks not stored`);
    streamer.killGroup('SIGKILL');
  } finally {
    await server.destroy();
  }
}

(async () => {
  const s3 = await motoBucket({ versioned: true });
  const key = makeAgeKey();
  try {
    await keepingUp(s3, key, Number(option('load', '30')), Number(option('threads', '4')));
    for (const interval of [5, 1]) await rpo(s3, key, interval);
  } finally {
    await s3.stop();
    rmSync(dir, { recursive: true, force: true });
  }
})().catch((err: Error) => {
  say(`bench:binlog failed: ${err.stack ?? err.message}`);
  process.exit(1);
});
