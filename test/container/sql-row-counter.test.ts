import { SqlRowCounter } from '../../container/src/engines/sql-row-counter';

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

  test('notices a stream that stops inside an INSERT', () => {
    const counter = new SqlRowCounter();
    counter.write(Buffer.from("INSERT INTO `t` VALUES (1,'a'),(2,'b"));
    expect(counter.midStatement).toBe(true);
  });
});
