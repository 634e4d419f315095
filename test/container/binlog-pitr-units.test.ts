/**
 * The parts of the MariaDB point-in-time restore that need no store: the look at the queries a replay would run
 * (guard.ts), on text and on a real binlog written by a throwaway MariaDB 10.11, and mariadb-binlog's arguments.
 */
import { join } from 'node:path';
import { findBinlogStatement, holdsBinlogStatement } from '../../container/src/binlog-pitr/guard';
import { binlogArgs } from '../../container/src/binlog-pitr/replay';
import { ThrowawayMariadb, startThrowawayMariadb } from '../support/mariadb-binlog-server';

jest.setTimeout(60_000);

describe('a BINLOG statement inside a query', () => {
  const held = (sql: string) => holdsBinlogStatement(Buffer.from(sql));

  it('is found wherever the server would read the word', () => {
    for (const sql of [
      "BINLOG 'AAAA'", "select 1; binlog 'AAAA'", 'BINLOG @a, @b', "/*!BINLOG 'x'*/", "CREATE TABLE t (c INT) /* binlog */",
      // Without backslash escapes (NO_BACKSLASH_ESCAPES) the string ends at the quote after the backslash.
      "SELECT 'a\\'; BINLOG 'AAAA' -- '",
      // With them, this one ends later; either reading is checked.
      'SELECT "x\\"" ; BiNlOg \'x\'',
      'CREATE TABLE binlog (x INT)',
    ]) expect({ sql, held: held(sql) }).toEqual({ sql, held: true });
  });

  it('is not found in quoted strings or names, nor in longer words', () => {
    for (const sql of [
      "INSERT INTO t VALUES ('BINLOG ''x''')", 'CREATE TABLE `binlog` (binlog_file VARCHAR(20), at_binlog INT)',
      "CREATE TABLE t (c VARCHAR(10) DEFAULT 'binlog', d TEXT COMMENT \"binlog\")", 'SELECT binlog_gtid_pos(\'b.000001\', 4)',
    ]) expect({ sql, held: held(sql) }).toEqual({ sql, held: false });
  });
});

describe('on a real binlog', () => {
  let server: ThrowawayMariadb;
  beforeAll(async () => {
    server = await startThrowawayMariadb({ serverId: 7 });
  });
  afterAll(async () => {
    await server?.destroy();
  });

  it('finds a query event with the word in the range replayed, and passes over quoted ones and rows', () => {
    server.exec('CREATE DATABASE g');
    const [[file, start]] = server.exec('SHOW MASTER STATUS');
    server.exec("CREATE TABLE g.ok (binlog_file VARCHAR(20) DEFAULT 'binlog', `binlog` INT); INSERT INTO g.ok VALUES ('BINLOG \\'x\\'', 1);");
    const [[, middle]] = server.exec('SHOW MASTER STATUS');
    server.exec('CREATE TABLE g.binlog (x INT)');
    const [[, end]] = server.exec('SHOW MASTER STATUS');
    const path = join(server.dataDir, file);
    return (async () => {
      expect(await findBinlogStatement(path, file, Number(start), Number(middle))).toBeUndefined();
      const found = await findBinlogStatement(path, file, Number(start), Number(end));
      expect(found?.position).toBeGreaterThanOrEqual(Number(middle));
      expect(found?.text).toContain('CREATE TABLE g.binlog');
    })();
  });
});

test('mariadb-binlog reads local files only, filters by the source database and then renames it', () => {
  expect(binlogArgs({ paths: ['/w/binlog.000002', '/w/binlog.000003'], from: 4711, to: 815, sourceDatabase: 'shop', targetDatabase: 'shop_copy' }))
    .toEqual(['--no-defaults', '--start-position=4711', '--stop-position=815', '--database=shop', '--rewrite-db=shop->shop_copy', '/w/binlog.000002', '/w/binlog.000003']);
  expect(binlogArgs({ paths: ['/w/b.000001'], from: 4, to: 9, sourceDatabase: 'shop', targetDatabase: 'shop' })).not.toContain(expect.stringMatching(/rewrite/));
});
