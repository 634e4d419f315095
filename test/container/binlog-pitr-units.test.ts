/**
 * The parts of the MariaDB point-in-time restore that need no store: the look at the queries a replay would run
 * (guard.ts), on text and on a real binlog written by a throwaway MariaDB 10.11, and mariadb-binlog's arguments.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { binlogStreamId, binlogStreamKey } from '../../lib/contract';
import { listStreams } from '../../container/src/binlog-pitr/select';
import { motoBucket } from '../support';
import { guardBinlogFile, holdsBinlogStatement } from '../../container/src/binlog-pitr/guard';
import { cutAndGuard } from '../../container/src/binlog-pitr/fetch';
import { walkBinlogFile } from '../../container/src/binlog/events';
import { binlogArgs, binlogStage } from '../../container/src/binlog-pitr/replay';
import { isolatedEnv } from '../../container/src/shared/pipeline';
import { grantsBeyond } from '../../container/src/engines/mysql-replay-grants';
import { ThrowawayMariadb, startThrowawayMariadb } from '../support/mariadb-binlog-server';

jest.setTimeout(60_000);

describe('the word BINLOG inside a query', () => {
  const held = (sql: string | Buffer) => holdsBinlogStatement(typeof sql === 'string' ? Buffer.from(sql) : sql);

  it('is found anywhere, in any case, quoted or not, whatever byte comes before it', () => {
    for (const sql of [
      "BINLOG 'AAAA'", "select 1; binlog 'AAAA'", 'BINLOG @a, @b', "/*!BINLOG 'x'*/", 'CREATE TABLE t (c INT) /* binlog */',
      "SELECT 'a\\'; BINLOG 'AAAA' -- '", 'CREATE TABLE binlog (x INT)', "INSERT INTO t VALUES ('BINLOG ''x''')", 'CREATE TABLE `binlog` (at_binlog INT)',
      "SELECT binlog_gtid_pos('b.000001', 4)", 'xBiNlOgx',
    ]) expect({ sql, held: held(sql) }).toEqual({ sql, held: true });
    // Latin-1's no-break space is whitespace to the server: the word after it is a statement.
    expect(held(Buffer.concat([Buffer.from([0xa0]), Buffer.from("BINLOG 'abc'")]))).toBe(true);
    expect(held(Buffer.concat([Buffer.from('SELECT 1;'), Buffer.from([0xa0]), Buffer.from('BINLOG @a, @b')]))).toBe(true);
  });

  it('is not found where the letters are not all there', () => {
    for (const sql of ['CREATE TABLE t (c INT)', 'BIN LOG', 'COMMIT', 'binlo g']) expect(held(sql)).toBe(false);
  });
});

describe('the guard, on a real binlog', () => {
  let server: ThrowawayMariadb;
  beforeAll(async () => {
    server = await startThrowawayMariadb({ serverId: 7 });
  });
  afterAll(async () => {
    await server?.destroy();
  });
  const at = () => {
    const [[file, position]] = server.exec('SHOW MASTER STATUS');
    return { file, position: Number(position) };
  };

  it('passes row events and DDL of the dumped database, counts the groups of others, and refuses a query naming BINLOG', async () => {
    server.exec('CREATE DATABASE g; CREATE DATABASE other');
    const start = at();
    server.exec("CREATE TABLE g.ok (binlog_file VARCHAR(20) DEFAULT 'x', n INT); INSERT INTO g.ok VALUES ('a', 1), ('b', 2);");
    const middle = at();
    server.exec('CREATE TABLE other.t (i INT); INSERT INTO other.t VALUES (1)');
    // A statement over several lines: its annotation is printed line by line behind #Q>.
    server.exec("INSERT INTO g.ok VALUES ('multi',\n 3)");
    server.exec('CREATE TABLE g.later (x INT)');
    const end = at();
    const path = join(server.dataDir, start.file);
    // The column named binlog_file: any query holding the letters is refused, quoted names included.
    await expect(guardBinlogFile(path, start.file, start.position, middle.position, 'g')).rejects.toThrow(/holds the word BINLOG/);
    // Of the four, only the INSERT into g.ok names g: the DDL ran without USE, so its query's database is none (and
    // mariadb-binlog's --database leaves it out too).
    expect(await guardBinlogFile(path, start.file, middle.position, end.position, 'g')).toEqual({ groups: 4, databaseGroups: 1, fromAtEvent: true });
    expect(await guardBinlogFile(path, start.file, middle.position, end.position, 'G')).toEqual({ groups: 4, databaseGroups: 0, fromAtEvent: true });
    // A start position inside an event (a forged dump manifest) is seen.
    expect((await guardBinlogFile(path, start.file, middle.position + 7, end.position, 'g')).fromAtEvent).toBe(false);
  });

  it('refuses a table whose name holds a line break before mariadb-binlog prints it', async () => {
    server.exec('CREATE DATABASE inj');
    const start = at();
    server.exec("CREATE TABLE inj.`t\nSELECT 'INJECTED' AS pwned;\n#` (id INT PRIMARY KEY); INSERT INTO inj.`t\nSELECT 'INJECTED' AS pwned;\n#` VALUES (1)");
    const end = at();
    const path = join(server.dataDir, start.file);
    // The CREATE TABLE query's text may hold a line break; the table map's name may not.
    await expect(guardBinlogFile(path, start.file, start.position, end.position, 'inj')).rejects.toThrow(/table map's table name .* holds the byte 0x0a/);
  });
});

describe('crafted binlogs, as a compromised streamer could store them', () => {
  let server: ThrowawayMariadb;
  let dir: string;
  let format: Buffer;
  beforeAll(async () => {
    server = await startThrowawayMariadb({ serverId: 9 });
    const [[file]] = server.exec('SHOW MASTER STATUS');
    const bytes = readFileSync(join(server.dataDir, file));
    format = bytes.subarray(4, 4 + bytes.readUInt32LE(4 + 9));
    // Written by a closed server: the in-use flag cleared, its checksum (of the event without the flag) kept.
    format = Buffer.from(format);
    format.writeUInt16LE(format.readUInt16LE(17) & ~1, 17);
    dir = mkdtempSync(join(tmpdir(), 'restorable-crafted-'));
  });
  afterAll(async () => {
    await server?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A binlog file of the server's format description and the given events (type, body), each with its CRC32. */
  function craft(name: string, events: Array<[number, Buffer]>): string {
    const parts = [Buffer.from([0xfe, 0x62, 0x69, 0x6e]), format];
    let position = 4 + format.length;
    for (const [type, body] of events) {
      const event = Buffer.alloc(19 + body.length + 4);
      event.writeUInt32LE(1_700_000_000, 0);
      event[4] = type;
      event.writeUInt32LE(9, 5);
      event.writeUInt32LE(event.length, 9);
      event.writeUInt32LE(position + event.length, 13);
      body.copy(event, 19);
      event.writeUInt32LE(crc32(event.subarray(0, event.length - 4)), event.length - 4);
      parts.push(event);
      position += event.length;
    }
    const path = join(dir, name);
    writeFileSync(path, Buffer.concat(parts));
    return path;
  }
  const gtid = (sequence: number) => {
    const body = Buffer.alloc(19);
    body.writeBigUInt64LE(BigInt(sequence), 0);
    return body;
  };
  const query = (db: string, text: string) => {
    const head = Buffer.alloc(13);
    head[8] = Buffer.byteLength(db);
    return Buffer.concat([head, Buffer.from(db), Buffer.from([0]), Buffer.from(text)]);
  };
  const rotate = (next: string) => Buffer.concat([Buffer.from([4, 0, 0, 0, 0, 0, 0, 0]), Buffer.from(next)]);

  it('a closed file whose last group is left open: only its whole groups are kept, so the query after them never reaches mariadb-binlog', async () => {
    const path = craft('binlog.000098', [[162, gtid(7)], [2, query('x', "BINLOG 'FORGEDxyz'")], [4, rotate('binlog.000099')]]);
    const walk = await walkBinlogFile(path, 'binlog.000098');
    expect({ closed: walk.closed, groupsEnd: walk.groupsEnd }).toEqual({ closed: true, groupsEnd: 4 + format.length });
    // What used to be replayed of a file that is not the last: all of it.
    await expect(guardBinlogFile(path, 'binlog.000098', 4, walk.size, 'x')).rejects.toThrow(/holds the word BINLOG/);
    const whole = spawnSync('mariadb-binlog', ['--no-defaults', '--database=x', path], { encoding: 'utf8' });
    expect(whole.stdout).toContain("BINLOG 'FORGEDxyz'");
    expect(await cutAndGuard(path, 'binlog.000098', 4, walk.groupsEnd, 'x')).toMatchObject({ groups: 0 });
    const printed = spawnSync('mariadb-binlog', ['--no-defaults', '--database=x', path], { encoding: 'utf8' });
    expect(printed.stdout).not.toContain('FORGEDxyz');
    expect(printed.stdout).toContain('Start: binlog v 4');
  });

  it('a checkpoint or a user variable whose name holds a line break is refused', async () => {
    const name = "x\nSELECT 'INJ' AS r;\n#";
    const checkpoint = Buffer.alloc(4);
    checkpoint.writeUInt32LE(Buffer.byteLength(name), 0);
    const path = craft('binlog.000097', [[161, Buffer.concat([checkpoint, Buffer.from(name)])]]);
    await expect(guardBinlogFile(path, 'binlog.000097', 4, readFileSync(path).length, 'x')).rejects.toThrow(/checkpoint's file name .* holds the byte 0x0a/);
    const userVar = craft('binlog.000096', [[14, Buffer.concat([checkpoint, Buffer.from(name), Buffer.from([1])])]]);
    await expect(guardBinlogFile(userVar, 'binlog.000096', 4, readFileSync(userVar).length, 'x')).rejects.toThrow(/user variable's name .* holds the byte 0x0a/);
  });

  it('a format description whose server version holds a line break is refused', async () => {
    const forged = Buffer.from(format);
    forged.fill(0, 19 + 2, 19 + 52);
    forged.write("10.11\nSELECT 'FD' AS r;\n#", 19 + 2, 'latin1');
    forged.writeUInt32LE(crc32(forged.subarray(0, forged.length - 4)), forged.length - 4);
    const path = join(dir, 'binlog.000094');
    writeFileSync(path, Buffer.concat([Buffer.from([0xfe, 0x62, 0x69, 0x6e]), forged]));
    expect((await walkBinlogFile(path, 'binlog.000094')).format?.serverVersion).toContain('\n');
    await expect(guardBinlogFile(path, 'binlog.000094', 4, 4 + forged.length, 'x')).rejects.toThrow(/server version .* holds the byte 0x0a/);
  });

  it('an event a ROW-format replay does not need is refused in words', async () => {
    const path = craft('binlog.000095', [[26, Buffer.concat([Buffer.from([0, 0, 1, 'x'.charCodeAt(0)])])]]);
    await expect(guardBinlogFile(path, 'binlog.000095', 4, readFileSync(path).length, 'x')).rejects.toThrow(/an event of type 26, which a ROW-format replay does not need/);
  });
});

test('mariadb-binlog reads local files only, filters by the source database and then renames it', () => {
  expect(binlogArgs({ paths: ['/w/binlog.000002', '/w/binlog.000003'], from: 4711, to: 815, sourceDatabase: 'shop', targetDatabase: 'shop_copy' }))
    .toEqual(['--no-defaults', '--start-position=4711', '--stop-position=815', '--database=shop', '--rewrite-db=shop->shop_copy', '/w/binlog.000002', '/w/binlog.000003']);
  expect(binlogArgs({ paths: ['/w/b.000001'], from: 4, to: 9, sourceDatabase: 'shop', targetDatabase: 'shop' })).not.toContain(expect.stringMatching(/rewrite/));
});

test('mariadb-binlog and the client replay with an environment made for them, none of the agent\'s credentials', () => {
  const saved = { ...process.env };
  Object.assign(process.env, { AWS_SECRET_ACCESS_KEY: 'secret', AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: '/v2/credentials/x', MYSQL_PWD: 'pw', TZ: 'Europe/Berlin' });
  try {
    const stage = binlogStage({ paths: ['/w/b.000001'], from: 4, to: 9, sourceDatabase: 'shop', targetDatabase: 'shop' }, '/w/home');
    expect(stage.env).toEqual({ PATH: process.env.PATH, HOME: '/w/home', TZ: 'UTC', LANG: 'C' });
    expect(isolatedEnv('/w/home')).toEqual(stage.env);
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
});

test('the replaying account\'s grants beyond the target database are found', () => {
  const to = " TO `r`@`127.0.0.1`";
  expect(grantsBeyond([`GRANT BINLOG REPLAY ON *.*${to} IDENTIFIED BY PASSWORD '*AB'`, `GRANT USAGE ON *.*${to}`, `GRANT ALL PRIVILEGES ON \`shop\\_copy\`.*${to}`,
    `GRANT SELECT ON \`shop_copy\`.\`t\`${to}`], 'shop_copy')).toEqual([]);
  expect(grantsBeyond([`GRANT BINLOG REPLAY, SELECT, INSERT ON *.*${to} IDENTIFIED BY PASSWORD '*AB'`, `GRANT ALL PRIVILEGES ON \`shop\`.*${to}`,
    `GRANT \`admin\`${to}`, `GRANT PROXY ON ''@'%'${to}`, `GRANT ALL PRIVILEGES ON \`shop_copy\`.*${to}`], 'shop_copy'))
    .toEqual([`GRANT BINLOG REPLAY, SELECT, INSERT ON *.*${to}`, `GRANT ALL PRIVILEGES ON \`shop\`.*${to}`, `GRANT \`admin\`${to}`, `GRANT PROXY ON ''@'%'${to}`]);
});

test('streams named after now + 5 minutes are passed over, as the freshness check passes over them', async () => {
  const s3 = await motoBucket();
  try {
    const now = new Date('2026-12-02T12:00:00Z');
    const ids = [binlogStreamId(new Date('2026-12-01T00:00:00Z')), binlogStreamId(new Date('2026-12-02T12:04:00Z')), binlogStreamId(new Date('2026-12-02T12:06:00Z')),
      binlogStreamId(new Date('2099-01-01T00:00:00Z'))];
    for (const id of ids) await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: binlogStreamKey(undefined, 'src', id), Body: '{}' }));
    expect(await listStreams(s3.client, s3.bucket, undefined, 'src', now)).toEqual([ids[1], ids[0]]);
  } finally {
    await s3.stop();
  }
});
