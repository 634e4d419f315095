/**
 * When `restorable binlog-stream` begins a new stream, and when it refuses to stream, against real MariaDB 10.11
 * servers (throwaway ones, since they are purged, reset and reconfigured here) and moto's S3: a purged file, RESET
 * MASTER (the server's files going back, and the same file name created anew), another server on the same spool, each
 * a new stream.json with its reason and where the stream before it stopped; and each setting a server or user must
 * change refused in words, RDS's binlog retention among them (through a stand-in of RDS's own procedure,
 * mysql.rds_show_configuration, which is the interface RDS for MariaDB offers).
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BinlogStream, BinlogStreamReason } from '../../lib/contract';
import { AgeKey, MotoBucket, makeAgeKey, motoBucket, requireAgentBundle } from '../support';
import { RunningStreamer, startStreamer, storedBinlogs, storedStreams, until } from '../support/binlog-stream';
import { MariadbAddress, ThrowawayMariadb, showBinaryLogs, startThrowawayMariadb } from '../support/mariadb-binlog-server';

jest.setTimeout(60_000);

let s3: MotoBucket;
let key: AgeKey;
let a: ThrowawayMariadb;
let b: ThrowawayMariadb;
let agent: string;
let dir: string;
const streamers = new Set<RunningStreamer>();

function start(server: MariadbAddress, source: string, spool: string, extra: string[] = [], serverId?: number): RunningStreamer {
  const s = startStreamer({ agent, s3, key, server, source, spool, extra: ['--partial-interval', '1', '--retry-for', '5', ...extra], serverId });
  streamers.add(s);
  void s.finished.then(() => streamers.delete(s));
  return s;
}

/** Streams until this run stored the server's newest file (in part or whole), then stops with SIGTERM. */
async function streamAndStop(server: ThrowawayMariadb, source: string, spool: string): Promise<BinlogStream[]> {
  server.exec('INSERT INTO w.t VALUES (NULL)', undefined);
  const newest = showBinaryLogs(server).pop()!.name;
  const before = new Set((await storedBinlogs(s3, source)).map((o) => o.key));
  const s = start(server, source, spool);
  await until(`${newest} stored`, async () => ((await storedBinlogs(s3, source)).some((o) => o.file === newest && !before.has(o.key)) ? true : undefined));
  s.child.kill('SIGTERM');
  const run = await s.finished;
  expect({ code: run.code, signal: run.signal }).toEqual({ code: 0, signal: null });
  return storedStreams(s3, source);
}

/** A run expected to refuse at start: its exit code and the line that says why. */
async function refusal(server: MariadbAddress, source: string, extra: string[] = [], serverId?: number): Promise<{ code: number | null; said: string }> {
  const run = await start(server, source, join(dir, `spool-${source}`), extra, serverId).finished;
  return { code: run.code, said: run.stderr.split('\n').filter((l) => l.startsWith('restorable binlog-stream:')).join('\n') };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'restorable-binlog-streams-'));
  agent = join(dir, 'restorable.cjs');
  copyFileSync(requireAgentBundle(), agent);
  s3 = await motoBucket({ versioned: true });
  key = makeAgeKey();
  [a, b] = await Promise.all([startThrowawayMariadb({ serverId: 41 }), startThrowawayMariadb({ serverId: 42 })]);
  for (const server of [a, b]) server.exec('CREATE DATABASE w; CREATE TABLE w.t (id INT AUTO_INCREMENT PRIMARY KEY);');
}, 60_000);

afterAll(async () => {
  for (const s of streamers) s.killGroup('SIGKILL');
  await Promise.all([a?.destroy(), b?.destroy()]);
  await s3?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('a new stream, and why', () => {
  it('begins at the server\'s oldest file when the spool is empty, and carries on in it after a restart', async () => {
    const spool = join(dir, 'spool-first');
    let streams = await streamAndStop(a, 'first', spool);
    expect(streams).toEqual([expect.objectContaining({ source: 'first', serverId: 41, firstFile: 'binlog.000001', reason: BinlogStreamReason.FIRST_START })]);
    expect(streams[0].previous).toBeUndefined();
    streams = await streamAndStop(a, 'first', spool);
    expect(streams).toHaveLength(1);
  });

  it('after the file it was on was purged: PURGED, from the server\'s oldest, naming where the last stream stopped', async () => {
    const spool = join(dir, 'spool-purged');
    const [first] = await streamAndStop(a, 'purged', spool);
    a.exec('INSERT INTO w.t VALUES (NULL); FLUSH BINARY LOGS; INSERT INTO w.t VALUES (NULL); FLUSH BINARY LOGS;');
    // PURGE leaves a file a replica's dump thread still reads: wait for the stopped streamer's to notice it is gone.
    await until('no dump thread left', () => {
      a.exec('INSERT INTO w.t VALUES (NULL)');
      return a.exec("SELECT COUNT(*) FROM information_schema.processlist WHERE command LIKE 'Binlog Dump%'")[0][0] === '0' ? true : undefined;
    });
    const newest = showBinaryLogs(a).pop()!.name;
    a.exec(`PURGE BINARY LOGS TO '${newest}'`);
    expect(showBinaryLogs(a).map((f) => f.name)).toEqual([newest]);
    const streams = await streamAndStop(a, 'purged', spool);
    expect(streams).toHaveLength(2);
    expect(streams[1]).toMatchObject({ reason: BinlogStreamReason.PURGED, firstFile: newest, previous: { stream: first.stream } });
    expect(streams[1].detail).toMatch(/the server no longer has binlog\.\d+ \(its oldest binlog is binlog\.\d+\): it was purged before it was streamed whole/);
  });

  it('after RESET MASTER: RESET, whether the files went back or the same name was created anew', async () => {
    const spool = join(dir, 'spool-reset');
    await streamAndStop(a, 'reset', spool); // a is past binlog.000001 by now
    a.exec('RESET MASTER; INSERT INTO w.t VALUES (NULL);');
    let streams = await streamAndStop(a, 'reset', spool);
    expect(streams[1]).toMatchObject({ reason: BinlogStreamReason.RESET, firstFile: 'binlog.000001' });
    expect(streams[1].detail).toMatch(/went back to binlog\.000001 while the stream was at binlog\.\d+/);
    // Now on binlog.000001; reset again a second later: the same name, created at another time.
    await new Promise((r) => setTimeout(r, 1100));
    a.exec('RESET MASTER; INSERT INTO w.t VALUES (NULL);');
    streams = await streamAndStop(a, 'reset', spool);
    expect(streams).toHaveLength(3);
    expect(streams[2]).toMatchObject({ reason: BinlogStreamReason.RESET, firstFile: 'binlog.000001' });
    expect(streams[2].detail).toMatch(/the server's binlog\.000001 was created at .*, the one streamed at .*: the server's binlogs were reset/);
  });

  it('on another server: SERVER_CHANGED', async () => {
    const spool = join(dir, 'spool-changed');
    await streamAndStop(a, 'changed', spool);
    const streams = await streamAndStop(b, 'changed', spool);
    expect(streams[1]).toMatchObject({ reason: BinlogStreamReason.SERVER_CHANGED, serverId: 42 });
    expect(streams[1].detail).toBe('the server\'s server_id is 42, the stream\'s was 41: this is another server, whose binlogs do not continue the stream\'s');
  });
});

describe('refused in words', () => {
  it('a server that writes no binary log', async () => {
    const plain = await startThrowawayMariadb({ serverId: 43, logBin: false });
    try {
      expect(await refusal(plain, 'nolog')).toEqual({ code: 1, said: expect.stringContaining('does not write a binary log (log_bin is OFF): add log_bin') });
    } finally {
      await plain.destroy();
    }
  });

  it('STATEMENT format, the streamer\'s own server id, and a user without the replication grants', async () => {
    b.exec("SET GLOBAL binlog_format = 'STATEMENT'");
    try {
      expect(await refusal(b, 'statement')).toEqual({ code: 1, said: expect.stringContaining("binlog_format is STATEMENT: point-in-time recovery needs ROW. Run SET GLOBAL binlog_format = 'ROW'") });
    } finally {
      b.exec("SET GLOBAL binlog_format = 'ROW'");
    }
    expect(await refusal(b, 'same-id', [], 42)).toEqual({ code: 1, said: expect.stringContaining('the same as the streamer\'s --server-id') });
    b.exec("CREATE USER 'weak'@'127.0.0.1' IDENTIFIED BY 'weak-pass-1'; GRANT SELECT ON w.* TO 'weak'@'127.0.0.1';");
    const weak = { host: b.host, port: b.port, user: 'weak', password: 'weak-pass-1' };
    expect(await refusal(weak, 'weak')).toEqual({ code: 1, said: expect.stringContaining('lacks REPLICATION SLAVE and BINLOG MONITOR: run GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.*') });
  });

  it('RDS for MariaDB keeping binlogs for no set time, with the exact call to run; streams once they are kept a week', async () => {
    b.exec(`CREATE PROCEDURE mysql.rds_show_configuration() SELECT 'binlog retention hours' AS name, NULL AS value, 'binlogs kept' AS description;`);
    try {
      expect(await refusal(b, 'rds')).toEqual({ code: 1, said: expect.stringContaining(
        "binlog retention hours is NULL: they are purged almost at once), fewer than the 24 hours a streamer needs to catch up after a stop without a gap. Run, as the master user: CALL mysql.rds_set_configuration('binlog retention hours', 168);") });
      b.exec(`DROP PROCEDURE mysql.rds_show_configuration;
        CREATE PROCEDURE mysql.rds_show_configuration() SELECT 'binlog retention hours' AS name, '168' AS value, 'binlogs kept' AS description;`);
      const streams = await streamAndStop(b, 'rds', join(dir, 'spool-rds'));
      expect(streams).toHaveLength(1);
    } finally {
      b.exec('DROP PROCEDURE IF EXISTS mysql.rds_show_configuration');
    }
  });

  it('warns, and streams, when the server\'s binlog files may grow past 128 MiB', async () => {
    b.exec('SET GLOBAL max_binlog_size = 1073741824');
    try {
      const s = start(b, 'big-files', join(dir, 'spool-big-files'));
      await until('the warning', () => (/max_binlog_size is 1024 MiB: every store of the growing binlog holds it from its first byte/.test(s.stderr()) ? true : undefined));
      await until('streaming', () => (/mariadb-binlog starts/.test(s.stderr()) ? true : undefined));
      s.child.kill('SIGTERM');
      expect((await s.finished).code).toBe(0);
    } finally {
      b.exec('SET GLOBAL max_binlog_size = 16777216');
    }
  });

  it('bad options, before anything connects', async () => {
    expect(await refusal(b, 'opts', [], 0)).toEqual({ code: 2, said: expect.stringContaining('--server-id must be a whole number from 1 to 4294967295') });
    expect(await refusal(b, 'opts', ['--start-file', '../etc/passwd'])).toEqual({ code: 2, said: expect.stringContaining("--start-file '../etc/passwd' is not a binlog file name") });
    expect(await refusal(b, 'opts', ['--start-file', 'binlog.999999'])).toEqual({ code: 1, said: expect.stringContaining('--start-file binlog.999999 is not on the server, which has binlog.') });
    expect(await refusal(b, 'opts', ['--password', 'x'])).toMatchObject({ code: 2 });
  });
});
