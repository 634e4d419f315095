import { spawnSync } from 'node:child_process';
import { SqlRowCounter } from '../../container/src/engines/sql-row-counter';
import { MYSQL, createMysqlDatabase, dropMysqlDatabase, mysqlExec, uniqueName } from '../support';

/** Feeds the text in chunks of `size` bytes, so every state must survive a chunk boundary. */
function count(text: string, size = Infinity): Map<string, number> {
  const counter = new SqlRowCounter();
  const bytes = Buffer.from(text);
  const step = Number.isFinite(size) ? size : bytes.length;
  for (let i = 0; i < bytes.length; i += step) counter.write(bytes.subarray(i, i + step));
  expect(counter.midStatement).toBe(false);
  return counter.result();
}

const DUMP = [
  '-- MariaDB dump 10.19',
  '/*!40101 SET NAMES utf8mb4 */;',
  'CREATE TABLE `t` (',
  '  `id` int(11) NOT NULL,',
  '  `s` varchar(50) DEFAULT NULL',
  ');',
  'INSERT INTO `t` VALUES (1,\'plain\'),(2,\'has ),( inside\'),(3,\'quote \\\' and ),(\'),(4,NULL);',
  'INSERT INTO `t` VALUES (5,\'doubled \'\' quote ),(\'),(6,\'backslash at end \\\\\'),(7,\'semi; colon\');',
  'INSERT INTO `we``ird` VALUES (1,"dq ),( \\" x"),(2,0x28292C),(3,\'(((\');',
  'INSERT INTO `json` VALUES (1,\'{"a":[1,2,(3)]}\'),(2,\'multi\\nline ),(\\n\');',
  'INSERT INTO `t` VALUES',
  '(8,\'MariaDB 10.11 style\'),',
  '(9,\'one tuple ),( a line\');',
  'CREATE VIEW `v` AS select 1 AS `INSERT INTO ``t`` VALUES (9)`;',
  '',
].join('\n');

describe('SqlRowCounter', () => {
  test('counts tuples in extended INSERTs, whatever the strings hold', () => {
    expect(count(DUMP)).toEqual(new Map([['t', 9], ['we`ird', 3], ['json', 2]]));
  });

  test.each([1, 2, 3, 7, 64])('gives the same counts when fed %i bytes at a time', (size) => {
    expect(count(DUMP, size)).toEqual(count(DUMP));
  });

  test('counts multi-byte names and values', () => {
    expect(count("INSERT INTO `zoë` VALUES ('é),('),('ü');\n", 1)).toEqual(new Map([['zoë', 2]]));
  });

  // A table with INVISIBLE columns (or --complete-insert) gets a column list: its parentheses are not a row.
  const WITH_COLUMNS = [
    'INSERT INTO `h` (`a`, `c`) VALUES (1,2),(3,4);',
    'INSERT INTO `h` (`a`, `c`) VALUES',
    '(5,6),',
    '(7,\'x ),( y\');',
    'INSERT INTO `odd` (`VALUES (`, `a``)b`, `values`) values (1,2,3);',
    'INSERT INTO `odd` (`x`)VALUES(4);',
    '',
  ].join('\n');

  test('skips a column list between the table name and VALUES', () => {
    expect(count(WITH_COLUMNS)).toEqual(new Map([['h', 4], ['odd', 2]]));
  });

  test.each([1, 2, 5])('skips a column list when fed %i bytes at a time', (size) => {
    expect(count(WITH_COLUMNS, size)).toEqual(new Map([['h', 4], ['odd', 2]]));
  });

  test('notices a stream that stops inside a column list or right after VALUES', () => {
    for (const text of ['INSERT INTO `h` (`a`, `c', 'INSERT INTO `h` (`a`) VALUES ']) {
      const counter = new SqlRowCounter();
      counter.write(Buffer.from(text));
      expect(counter.midStatement).toBe(true);
    }
  });

  test('notices a stream that stops inside an INSERT', () => {
    const counter = new SqlRowCounter();
    counter.write(Buffer.from("INSERT INTO `t` VALUES (1,'a'),(2,'b"));
    expect(counter.midStatement).toBe(true);
  });

  test('counts the rows of a real MariaDB table with an INVISIBLE column, which mysqldump writes with a column list', () => {
    const database = uniqueName('rc_invisible');
    createMysqlDatabase(database);
    try {
      mysqlExec(database, `CREATE TABLE h (a INT, b VARCHAR(20), c INT INVISIBLE);
        INSERT INTO h (a, b, c) VALUES (1, '),(', 2), (3, 'x', 4), (5, NULL, 6);
        CREATE TABLE plain (a INT); INSERT INTO plain VALUES (1), (2);`);
      // The agent's own flags (engines/mysql.ts); the test password travels in MYSQL_PWD, never in argv.
      const dump = spawnSync('mysqldump', ['-h', MYSQL.host, '-P', String(MYSQL.port), '-u', MYSQL.user, '--single-transaction',
        '--hex-blob', '--no-tablespaces', '--default-character-set=utf8mb4', '--skip-dump-date', database],
      { encoding: 'utf8', env: { ...process.env, MYSQL_PWD: MYSQL.password } });
      expect(dump.status).toBe(0);
      expect(dump.stdout).toContain('INSERT INTO `h` (`a`, `b`, `c`) VALUES');
      expect(count(dump.stdout, 3)).toEqual(new Map([['h', 3], ['plain', 2]]));
    } finally {
      dropMysqlDatabase(database);
    }
  });
});
