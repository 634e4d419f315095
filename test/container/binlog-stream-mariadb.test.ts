/**
 * `restorable binlog-stream` against a real MariaDB 10.11 (a throwaway one, since it is restarted and killed here) and
 * moto's S3, with the bundled agent: a streaming user with REPLICATION SLAVE and BINLOG MONITOR only and a password, a
 * ticker committing ten times a second and sysbench writing beside it. Proven here: closed files land whole and the
 * growing one as partials within the partial interval of a commit, each decrypting (age), decompressing (zstd) and
 * hashing (SHA-256) to the server's own bytes, tagged daily, with an index that agrees with the bytes; a server
 * restart and a server SIGKILL (with the seconds of acknowledged ticks not stored measured) are ridden out; a
 * streamer SIGKILLed and started again on the same spool resumes; SIGTERM stores the final partial and exits 0; and
 * over all of it the stored files follow each other without a hole and hold every event group once, as the server's
 * own binlogs do. The password never appears in a process's arguments or the log.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BINLOG_METADATA, BinlogStreamReason, TIER_TAG, WAL_METADATA, binlogSequence } from '../../lib/contract';
import { BinlogWalker, binlogIndexProblem, walkBinlogFile } from '../../container/src/binlog/events';
import { AgeKey, MotoBucket, makeAgeKey, motoBucket, requireAgentBundle } from '../support';
import { BinlogTicker, SysbenchLoad, sysbenchPrepare } from '../support/binlog-load';
import { RunningStreamer, StoredBinlog, openStoredBinlog, startStreamer, storedBinlogs, storedStreams, until, withoutInUseFlag } from '../support/binlog-stream';
import { MariadbAddress, ThrowawayMariadb, showBinaryLogs, startThrowawayMariadb } from '../support/mariadb-binlog-server';

jest.setTimeout(60_000);

const PASSWORD = 'streamer-secret-7d2e41';
const SOURCE = 'orders-db';
let s3: MotoBucket;
let key: AgeKey;
let server: ThrowawayMariadb;
let streamerUser: MariadbAddress;
let ticker: BinlogTicker;
let load: SysbenchLoad;
let agent: string;
let spool: string;
let streamer: RunningStreamer;
const leftovers: string[] = [];
const streamers = new Set<RunningStreamer>();

function start(extra: string[] = ['--partial-interval', '1']): RunningStreamer {
  const s = startStreamer({ agent, s3, key, server: streamerUser, source: SOURCE, spool, extra });
  streamers.add(s);
  void s.finished.then(() => streamers.delete(s));
  return s;
}

/** The server's current binlog file and position (SHOW MASTER STATUS). */
function masterStatus(): { file: string; position: number } {
  const [[file, position]] = server.exec('SHOW MASTER STATUS');
  return { file, position: Number(position) };
}

/** Whether what is stored reaches `at`: the file whole, a later file, or a partial of it at least that long. */
function reaches(objects: readonly StoredBinlog[], at: { file: string; position: number }): boolean {
  return objects.some((o) => binlogSequence(o.file) > binlogSequence(at.file) ||
    (o.file === at.file && (o.partialBytes === undefined || o.partialBytes >= at.position)));
}

const wholeFiles = async () => (await storedBinlogs(s3, SOURCE)).filter((o) => o.partialBytes === undefined);

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'restorable-binlog-stream-'));
  leftovers.push(dir);
  agent = join(dir, 'restorable.cjs');
  copyFileSync(requireAgentBundle(), agent);
  spool = join(dir, 'spool');
  s3 = await motoBucket({ versioned: true });
  key = makeAgeKey();
  server = await startThrowawayMariadb({ serverId: 31, maxBinlogSize: 4 * 1024 * 1024 });
  server.exec(`CREATE DATABASE shop; CREATE USER 'streamer'@'127.0.0.1' IDENTIFIED BY '${PASSWORD}';
    GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'streamer'@'127.0.0.1';`);
  streamerUser = { host: server.host, port: server.port, user: 'streamer', password: PASSWORD };
  ticker = new BinlogTicker(server, 'shop', 100);
  await sysbenchPrepare(server, 'shop', 2, 5000);
  load = new SysbenchLoad(server, 'shop', { threads: 1, rate: 40 });
  streamer = start();
}, 60_000);

afterAll(async () => {
  for (const s of streamers) s.killGroup('SIGKILL');
  await load?.stop();
  await ticker?.stop();
  await server?.destroy();
  await s3?.stop();
  for (const dir of leftovers) rmSync(dir, { recursive: true, force: true });
});

describe('restorable binlog-stream', () => {
  it('stores the growing binlog within the partial interval of a commit, and closed files whole, each as the server wrote it', async () => {
    await until('a first partial', async () => ((await storedBinlogs(s3, SOURCE)).some((o) => o.partialBytes) ? true : undefined));
    // Lag: from a commit (the server's position right after it) to a stored object that holds it.
    const lags: number[] = [];
    for (let i = 0; i < 3; i++) {
      server.exec("INSERT INTO shop.ticks (at) VALUES (NOW(6))");
      const at = masterStatus();
      const from = Date.now();
      await until(`${at.file} stored to ${at.position}`, async () => (reaches(await storedBinlogs(s3, SOURCE), at) ? true : undefined), 15_000);
      lags.push(Date.now() - from);
    }
    console.log(`binlog-stream: commit to stored partial, partial interval 1 s: ${lags.map((l) => `${l} ms`).join(', ')}`);
    expect(Math.max(...lags)).toBeLessThan(1000 + 4000);

    server.exec('FLUSH BINARY LOGS');
    const closed = masterStatus().file;
    server.exec('FLUSH BINARY LOGS');
    await until('the flushed files stored whole', async () => ((await wholeFiles()).some((o) => o.file === closed) ? true : undefined));
    const streams = await storedStreams(s3, SOURCE);
    expect(streams).toHaveLength(1);
    expect(streams[0]).toMatchObject({ source: SOURCE, serverId: 31, firstFile: 'binlog.000001', reason: BinlogStreamReason.FIRST_START });

    const objects = await storedBinlogs(s3, SOURCE);
    const sample = [...(await wholeFiles()), ...objects.filter((o) => o.partialBytes).slice(-3)];
    for (const o of sample) {
      const opened = await openStoredBinlog(s3, key, o.key);
      const serverBytes = withoutInUseFlag(readFileSync(join(server.dataDir, o.file)));
      // A whole file is the server's file; a partial is its first bytes, ending at a whole event.
      expect({ key: o.key, same: withoutInUseFlag(opened.bytes).equals(o.partialBytes ? serverBytes.subarray(0, o.partialBytes) : serverBytes) })
        .toEqual({ key: o.key, same: true });
      const walker = new BinlogWalker(o.file);
      walker.push(opened.bytes);
      const walk = walker.result();
      expect(binlogIndexProblem(opened.index, walk)).toBeUndefined();
      expect(opened.index).toMatchObject({ stream: streams[0].stream, file: o.file, key: o.key, serverId: 31, size: opened.bytes.length, closed: !o.partialBytes || walk.closed });
      expect(opened.metadata).toMatchObject({ [WAL_METADATA.plaintextSha256]: walk.sha256, [WAL_METADATA.plaintextSize]: String(opened.bytes.length),
        [BINLOG_METADATA.serverId]: '31', [BINLOG_METADATA.created]: opened.index.created });
      expect(opened.tags).toEqual({ [TIER_TAG]: 'daily' });
    }
  });

  it('never puts the password in a process\'s arguments or the log', () => {
    const pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
    const cmdlines = pids.map((p) => { try { return readFileSync(`/proc/${p}/cmdline`, 'utf8'); } catch { return ''; } });
    const binlogClients = cmdlines.filter((c) => c.includes('mariadb-binlog') && c.includes(String(server.port)));
    expect(binlogClients.length).toBeGreaterThan(0);
    expect(binlogClients.join('\n')).toContain('--stop-never-slave-server-id=4000000001');
    expect(cmdlines.filter((c) => c.includes(PASSWORD))).toEqual([]);
    expect(streamer.stderr()).not.toContain(PASSWORD);
  });

  it('rides out a server restart', async () => {
    const before = ticker.acked.size;
    await server.restart();
    await until('ticks after the restart', () => (ticker.acked.size > before + 10 ? true : undefined));
    const at = masterStatus();
    await until('the restarted server\'s binlog stored', async () => (reaches(await storedBinlogs(s3, SOURCE), at) ? true : undefined), 20_000);
    expect(streamer.stderr()).toMatch(/binlog streaming stopped; starting again/);
    expect(streamer.stderr()).toMatch(/resumed: the re-fetched binlog repeats what was stored of it/);
  });

  it('after a SIGKILL of the server, stores every acknowledged tick the server wrote (the seconds lost are reported)', async () => {
    await until('ticks flowing', () => (ticker.acked.size > 20 ? true : undefined));
    await server.kill();
    const lastAcked = ticker.lastAcked;
    // The server is down: what the streamer stored before and just after the kill is all there is.
    await new Promise((r) => setTimeout(r, 3000));
    const objects = await storedBinlogs(s3, SOURCE);
    const newestFile = objects.map((o) => o.file).sort((a, b) => binlogSequence(a) - binlogSequence(b)).pop()!;
    const newest = objects.filter((o) => o.file === newestFile).sort((a, b) => (b.partialBytes ?? Infinity) - (a.partialBytes ?? Infinity))[0];
    const opened = await openStoredBinlog(s3, key, newest.key);
    const path = join(leftovers[0], 'newest');
    writeFileSync(path, opened.bytes);
    const text = execFileSync('mariadb-binlog', ['--no-defaults', '--base64-output=decode-rows', '-v', path], { maxBuffer: 256 * 1024 * 1024 }).toString();
    const ids = [...text.matchAll(/### INSERT INTO `shop`\.`ticks`\n### SET\n###\s+@1=(\d+)/g)].map((m) => Number(m[1]));
    const newestStored = Math.max(0, ...ids);
    const lost = ticker.secondsLost(newestStored);
    console.log(`binlog-stream: SIGKILL of the server: newest tick acknowledged ${lastAcked}, newest stored ${newestStored}; ${lost} s of acknowledged ticks not stored`);
    expect(newestStored).toBeGreaterThan(0);
    expect(lost).toBeLessThanOrEqual(5);
    await server.start();
    await until('ticks after the server came back', () => (ticker.lastAcked > lastAcked + 10 ? true : undefined));
  });

  it('a streamer SIGKILLed and started again on the same spool carries on in the same stream', async () => {
    streamer.killGroup('SIGKILL');
    await streamer.finished;
    server.exec('FLUSH BINARY LOGS'); // a file closes while no streamer runs
    await new Promise((r) => setTimeout(r, 1500));
    streamer = start();
    const at = masterStatus();
    await until('the spool resumed and stored', async () => (reaches(await storedBinlogs(s3, SOURCE), at) ? true : undefined), 20_000);
    expect(await storedStreams(s3, SOURCE)).toHaveLength(1);
  });

  it('stores the final partial on SIGTERM, after mariadb-binlog stopped, and exits 0', async () => {
    streamer.killGroup('SIGTERM');
    expect((await streamer.finished).code).toBe(0);
    // Started again with an interval no periodic store reaches: only the stop can store this commit.
    streamer = start(['--partial-interval', '3600']);
    await until('streaming again', () => (/mariadb-binlog starts/.test(streamer.stderr()) ? true : undefined));
    await new Promise((r) => setTimeout(r, 2000));
    server.exec("INSERT INTO shop.ticks (at) VALUES (NOW(6))");
    const at = masterStatus();
    await new Promise((r) => setTimeout(r, 1000));
    expect(reaches(await storedBinlogs(s3, SOURCE), at)).toBe(false);
    streamer.child.kill('SIGTERM');
    const run = await streamer.finished;
    expect(run.code).toBe(0);
    expect(reaches(await storedBinlogs(s3, SOURCE), at)).toBe(true);
    const summary = JSON.parse(run.stdout) as { stoppedBy: string; last: { file: string; bytes: number } };
    expect(summary.stoppedBy).toBe('SIGTERM');
    expect(summary.last.file).toBe(at.file);
    expect(summary.last.bytes).toBeGreaterThanOrEqual(at.position);
  });

  it('over all of it, stored every file without a hole and every event group once, as the server\'s own binlogs hold them', async () => {
    await load.stop();
    await ticker.stop();
    expect(load.runs).toBeGreaterThan(1); // sysbench wrote before and after the restarts
    server.exec('FLUSH BINARY LOGS');
    const serverFiles = showBinaryLogs(server).map((f) => f.name);
    const closedOnServer = serverFiles.slice(0, -1);
    streamer = start();
    await until('every closed file stored whole', async () => {
      const whole = new Set((await wholeFiles()).map((o) => o.file));
      return closedOnServer.every((f) => whole.has(f)) ? true : undefined;
    }, 30_000);
    streamer.child.kill('SIGTERM');
    expect((await streamer.finished).code).toBe(0);

    const whole = (await wholeFiles()).sort((a, b) => binlogSequence(a.file) - binlogSequence(b.file));
    expect(whole.map((o) => o.file)).toEqual(closedOnServer);
    const storedGtids: string[] = [];
    const serverGtids: string[] = [];
    for (const o of whole) {
      const opened = await openStoredBinlog(s3, key, o.key);
      expect({ file: o.file, same: withoutInUseFlag(opened.bytes).equals(withoutInUseFlag(readFileSync(join(server.dataDir, o.file)))) }).toEqual({ file: o.file, same: true });
      const walker = new BinlogWalker(o.file, (g) => storedGtids.push(g.gtid));
      walker.push(opened.bytes);
      await walkBinlogFile(join(server.dataDir, o.file), o.file, undefined, (g) => serverGtids.push(g.gtid));
    }
    expect(storedGtids.length).toBeGreaterThan(300); // the ticker alone commits 10 a second
    expect(new Set(storedGtids).size).toBe(storedGtids.length);
    expect(storedGtids).toEqual(serverGtids);
  });
});
