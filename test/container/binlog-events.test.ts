/**
 * The binlog event walk and the index built from it, on real binlog files of a throwaway MariaDB 10.11: a rotated
 * file, one ended by a clean shutdown (STOP), one a killed server left without an end, and the growing one. The
 * server's own SHOW BINLOG EVENTS (positions, types, GTIDs, commits) and mariadb-binlog's event times are the
 * oracle; every prefix a streamer could read is walked too, as are damaged copies.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseBinlogIndex } from '../../lib/contract';
import { BinlogFormatError, BinlogGroup, BinlogWalker, binlogIndexOf, binlogIndexProblem, walkBinlogFile } from '../../container/src/binlog/events';
import { ThrowawayMariadb, showBinaryLogs, startThrowawayMariadb } from '../support/mariadb-binlog-server';

jest.setTimeout(60_000);

interface OracleEvent { start: number; end: number; type: string; info: string; time: number }
interface OracleGroup { start: number; end: number; gtid: string; time: number }
interface OracleFile { name: string; path: string; bytes: Buffer; events: OracleEvent[]; groups: OracleGroup[] }

let server: ThrowawayMariadb;
let dir: string;
const files: OracleFile[] = [];

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** Event times by end position, from mariadb-binlog's comment lines (TZ=UTC, so the times read back as UTC). */
function eventTimes(path: string): Map<number, number> {
  const text = execFileSync('mariadb-binlog', ['--no-defaults', '--base64-output=never', path], { env: { ...process.env, TZ: 'UTC' }, maxBuffer: 256 * 1024 * 1024 }).toString();
  const times = new Map<number, number>();
  for (const m of text.matchAll(/^#(\d\d)(\d\d)(\d\d) +(\d+):(\d\d):(\d\d) server id \d+ +end_log_pos (\d+)/gm)) {
    times.set(Number(m[7]), Date.UTC(2000 + Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])) / 1000);
  }
  return times;
}

/** The file's events as the server lists them, and its groups: GTID to Xid, COMMIT, XA PREPARE, or the one query of a standalone GTID. */
function oracle(name: string, path: string): OracleFile {
  const times = eventTimes(path);
  const events = server.exec(`SHOW BINLOG EVENTS IN '${name}'`).map(([, pos, type, , end, info]) => ({
    start: Number(pos), end: Number(end), type, info: info ?? '', time: times.get(Number(end))!,
  }));
  const groups: OracleGroup[] = [];
  let open: { start: number; gtid: string; standalone: boolean; time: number } | undefined;
  for (const e of events) {
    if (e.type === 'Gtid') {
      // 'BEGIN GTID 0-11-3', 'XA START X'7831',X'',1 GTID 0-11-7', or 'GTID 0-11-1' for a standalone (DDL) group.
      const gtid = /GTID (\d+-\d+-\d+)/.exec(e.info)![1];
      open = { start: e.start, gtid, standalone: !/^(BEGIN|XA START) /.test(e.info), time: e.time };
      continue;
    }
    if (!open) continue;
    open.time = Math.max(open.time, e.time);
    const ends = e.type === 'Xid' || e.type === 'XA_prepare' || (e.type === 'Query' && (open.standalone || /^(COMMIT|ROLLBACK)$/.test(e.info.trim())));
    if (ends) {
      groups.push({ start: open.start, end: e.end, gtid: open.gtid, time: open.time });
      open = undefined;
    }
  }
  return { name, path, bytes: readFileSync(path), events, groups };
}

function marksOf(groups: readonly { time: number; start: number }[]): Array<[number, number]> {
  const marks: Array<[number, number]> = [];
  for (const g of groups) if (marks.length === 0 || g.time > marks[marks.length - 1][0]) marks.push([g.time, g.start]);
  return marks;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'restorable-binlog-events-'));
  server = await startThrowawayMariadb({ serverId: 11 });
  server.exec(`CREATE DATABASE w;
    CREATE TABLE w.t (id INT AUTO_INCREMENT PRIMARY KEY, v LONGBLOB) ENGINE=InnoDB;
    CREATE TABLE w.m (id INT) ENGINE=MyISAM;
    INSERT INTO w.t (v) VALUES ('a');
    BEGIN; INSERT INTO w.t (v) VALUES ('b'); DO SLEEP(1.1); INSERT INTO w.t (v) VALUES ('c'); COMMIT;
    BEGIN; INSERT INTO w.t (v) VALUES ('rolled back'); ROLLBACK;
    INSERT INTO w.m VALUES (1);
    INSERT INTO w.t (v) VALUES (REPEAT('x', 300000));
    XA START 'x1'; INSERT INTO w.t (v) VALUES ('xa'); XA END 'x1'; XA PREPARE 'x1'; XA COMMIT 'x1';
    UPDATE w.t SET v = 'changed' WHERE id = 1;
    FLUSH BINARY LOGS;
    INSERT INTO w.t (v) VALUES ('after the rotate');`);
  await server.restart();
  server.exec("INSERT INTO w.t (v) VALUES ('after the restart'); DELETE FROM w.t WHERE id = 2;");
  await server.kill();
  await server.start();
  server.exec("INSERT INTO w.t (v) VALUES ('after the kill');");
  for (const { name } of showBinaryLogs(server)) {
    const path = join(dir, name);
    copyFileSync(join(server.dataDir, name), path);
    files.push(oracle(name, path));
  }
});

afterAll(async () => {
  await server?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

describe('walking whole files', () => {
  it('finds the files this test made: rotated, stopped, cut off by a kill, and growing', () => {
    expect(files.map((f) => f.name)).toEqual(['binlog.000001', 'binlog.000002', 'binlog.000003', 'binlog.000004']);
    expect(files.map((f) => f.events[f.events.length - 1].type)).toEqual(['Rotate', 'Stop', 'Xid', 'Xid']);
  });

  it('reads every event, group, GTID, commit time and mark as the server and mariadb-binlog do', async () => {
    for (const f of files) {
      const groups: BinlogGroup[] = [];
      const walk = await walkBinlogFile(f.path, f.name, undefined, (g) => groups.push(g));
      expect(walk).toMatchObject({ size: f.bytes.length, trailing: 0, events: f.events.length, sha256: sha256(f.bytes) });
      expect(walk.afterFormatSha256).toBe(sha256(f.bytes.subarray(f.events[0].end)));
      expect(walk.format).toMatchObject({ serverId: 11, created: f.events[0].time, end: f.events[0].end });
      expect(groups).toEqual(f.groups);
      expect(walk.lastGroup).toEqual(f.groups[f.groups.length - 1]);
      expect(walk.marks).toEqual(marksOf(f.groups));
      expect(walk.groupsEnd).toBe(f.bytes.length);
    }
    // The groups the workload wrote: DDL (standalone), the transactions, MyISAM's COMMIT query, XA PREPARE and XA COMMIT.
    expect(files[0].groups.length).toBeGreaterThanOrEqual(9);
    // The transaction that slept: an event of it is a second older than the group, whose time is its commit's.
    const older = files[0].groups.filter((g) => files[0].events.some((e) => e.start >= g.start && e.end <= g.end && e.time < g.time));
    expect(older).toHaveLength(1);
  });

  it('tells how each file ended', async () => {
    const walks = await Promise.all(files.map((f) => walkBinlogFile(f.path, f.name)));
    expect(walks.map((w) => [w.closed, w.nextFile])).toEqual([[true, 'binlog.000002'], [true, undefined], [false, undefined], [false, undefined]]);
  });

  it('reads the same pushed a byte at a time', async () => {
    const f = files[2];
    const walker = new BinlogWalker(f.name);
    for (let i = 0; i < f.bytes.length; i++) walker.push(f.bytes.subarray(i, i + 1));
    expect(walker.result()).toEqual(await walkBinlogFile(f.path, f.name));
  });
});

describe('walking prefixes (a growing file, a file a killed client left)', () => {
  it('ends at the last whole event, hashes only that, and ends replay before an unfinished group', () => {
    const f = files[0];
    const ends = [4, ...f.events.map((e) => e.end)];
    const cuts = new Set<number>([0, 1, 3, 4, 5, 22, 23]);
    for (const e of ends) for (const d of [-1, 0, 1]) if (e + d > 0 && e + d <= f.bytes.length) cuts.add(e + d);
    for (let i = 0; i < 200; i++) cuts.add(1 + Math.floor(Math.random() * (f.bytes.length - 1)));
    for (const cut of cuts) {
      const walker = new BinlogWalker(f.name);
      const bytes = f.bytes.subarray(0, cut);
      for (let at = 0; at < bytes.length; at += 65_536) walker.push(bytes.subarray(at, at + 65_536));
      const walk = walker.result();
      const size = cut < 4 ? 0 : Math.max(...ends.filter((e) => e <= cut));
      const whole = f.groups.filter((g) => g.end <= size);
      const unfinished = f.groups.find((g) => g.start < size && g.end > size);
      expect({ cut, size: walk.size, trailing: walk.trailing, sha256: walk.sha256 }).toEqual({ cut, size, trailing: cut - size, sha256: sha256(f.bytes.subarray(0, size)) });
      expect({ cut, groupsEnd: walk.groupsEnd, marks: walk.marks }).toEqual({ cut, groupsEnd: unfinished ? unfinished.start : size, marks: marksOf(whole) });
      expect(walk.closed).toBe(size === f.bytes.length);
    }
  });
});

describe('damaged files are refused in words', () => {
  const walkBytes = (bytes: Buffer) => {
    const walker = new BinlogWalker('binlog.000001');
    walker.push(bytes);
    return walker.result();
  };

  it('refuses a changed byte in an event by its CRC32, and a changed length by the positions', () => {
    const f = files[0];
    const row = f.events.find((e) => e.type.startsWith('Write_rows'))!;
    const body = Buffer.from(f.bytes);
    body[row.start + 25] ^= 0x01;
    expect(() => walkBytes(body)).toThrow(new BinlogFormatError(`binlog.000001 at position ${row.start}: the event fails its CRC32 check: the file is damaged`));
    const length = Buffer.from(f.bytes);
    length.writeUInt32LE(row.end - row.start + 8, row.start + 9);
    expect(() => walkBytes(length)).toThrow(/the event says the next one is at \d+, but it is \d+ bytes long/);
    const flag = Buffer.from(f.bytes);
    flag[21] ^= 0x01; // the in-use flag the server clears in place: not part of the checksum
    expect(walkBytes(flag).size).toBe(f.bytes.length);
  });

  it('refuses what is not a binlog, and anything after the ROTATE that ends a file', () => {
    expect(() => walkBytes(Buffer.from('not a binlog at all'))).toThrow('does not start with a binlog\'s magic bytes');
    const appended = Buffer.concat([files[0].bytes, files[1].bytes.subarray(files[1].events[1].start, files[1].events[1].end)]);
    expect(() => walkBytes(appended)).toThrow(/an event after the file's ROTATE event/);
  });
});

describe('the index', () => {
  it('is what parseBinlogIndex accepts, and a reader finds any field that disagrees with the bytes', async () => {
    const f = files[0];
    const walk = await walkBinlogFile(f.path, f.name);
    const place = { source: 'orders', stream: '2026-12-02_15-40-00Z', file: f.name, key: `orders/binlog/2026-12-02_15-40-00Z/${f.name}.zst.age` };
    const index = binlogIndexOf(walk, place);
    expect(parseBinlogIndex(JSON.stringify(index), 'test')).toEqual(index);
    expect(index).toMatchObject({ size: f.bytes.length, closed: true, nextFile: 'binlog.000002', serverId: 11, groupsEnd: f.bytes.length,
      created: new Date(f.events[0].time * 1000).toISOString(), lastGroupTime: new Date(f.groups[f.groups.length - 1].time * 1000).toISOString() });
    expect(binlogIndexProblem(index, walk)).toBeUndefined();
    expect(binlogIndexProblem({ ...index, marks: index.marks.slice(0, -1) }, walk)).toMatch(/other times and positions/);
    expect(binlogIndexProblem({ ...index, groupsEnd: index.groupsEnd - 1 }, walk)).toMatch(/groupsEnd/);
    const cut = new BinlogWalker(f.name);
    cut.push(f.bytes.subarray(0, f.bytes.length - 3));
    expect(binlogIndexProblem(index, cut.result())).toMatch(/end \d+ bytes into an event/);
  });
});

describe('a server without binlog checksums', () => {
  it('is walked the same way, from the format description\'s setting', async () => {
    const plain = await startThrowawayMariadb({ serverId: 12, settings: { binlog_checksum: 'NONE' } });
    try {
      plain.exec('CREATE DATABASE p; CREATE TABLE p.t (id INT PRIMARY KEY); INSERT INTO p.t VALUES (1), (2); FLUSH BINARY LOGS;');
      const path = join(dir, 'plain.000001');
      copyFileSync(join(plain.dataDir, 'binlog.000001'), path);
      const walk = await walkBinlogFile(path, 'binlog.000001');
      const events = plain.exec("SHOW BINLOG EVENTS IN 'binlog.000001'");
      expect(walk).toMatchObject({ size: readFileSync(path).length, trailing: 0, events: events.length, closed: true, nextFile: 'binlog.000002' });
      expect(walk.lastGroup?.gtid).toBe(/GTID (\S+)/.exec(events.filter((e) => e[2] === 'Gtid').pop()![5])![1]);
      writeFileSync(path, Buffer.concat([readFileSync(path), Buffer.from([1, 2, 3])]));
      expect((await walkBinlogFile(path, 'binlog.000001')).trailing).toBe(3);
    } finally {
      await plain.destroy();
    }
  });
});
