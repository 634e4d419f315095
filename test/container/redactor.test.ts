/**
 * The redactor removes the shapes secrets take in tool output. mysql echoes a failing statement on stderr, and
 * the roles restored from a MariaDB globals companion carry password hashes: none of them may reach a log.
 */
import { Redactor } from '../../container/src/shared/errors';

const HASH = '*6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9';
const redact = (text: string) => new Redactor().redact(text);

describe('MySQL password clauses', () => {
  test.each([
    // What MariaDB's mysql client really printed for failing CREATE USER statements.
    [`CREATE USER 'app'@'%' IDENTIFIED BY PASSWORD '${HASH}' WITH BOGUS`, `CREATE USER 'app'@'%' IDENTIFIED BY PASSWORD *** WITH BOGUS`],
    [`CREATE USER 'app'@'%' IDENTIFIED VIA mysql_native_password USING '${HASH}' OR bogus_plugin`,
      `CREATE USER 'app'@'%' IDENTIFIED VIA mysql_native_password USING *** OR bogus_plugin`],
    ["CREATE USER 'app'@'%' IDENTIFIED BY 's3cr3t-Pw' BOGUS", "CREATE USER 'app'@'%' IDENTIFIED BY *** BOGUS"],
    // Other shapes the same statements take.
    ["identified by 'it''s \\' quoted' REQUIRE NONE", 'identified by *** REQUIRE NONE'],
    ["IDENTIFIED VIA ed25519 USING PASSWORD('plain') OR unix_socket", 'IDENTIFIED VIA ed25519 USING *** OR unix_socket'],
    ["IDENTIFIED VIA ed25519 USING 'ZIgUREUg5PVgQ6LskhXmO+eZLS0nC8be6HPjYWR4YJY' OR mysql_native_password USING 'abc'",
      'IDENTIFIED VIA ed25519 USING *** OR mysql_native_password USING ***'],
    ["IDENTIFIED WITH 'caching_sha2_password' AS 0x244124303035246C", "IDENTIFIED WITH 'caching_sha2_password' AS ***"],
    ['IDENTIFIED WITH `mysql_native_password` AS "*ABC"', 'IDENTIFIED WITH `mysql_native_password` AS ***'],
    ["SET PASSWORD FOR 'app'@'%' = PASSWORD('plain')", "SET PASSWORD FOR 'app'@'%' = PASSWORD(***)"],
  ])('%s', (input, expected) => {
    const out = redact(input);
    expect(out).toBe(expected);
  });

  test('a bare native password hash, as an error message may quote it', () => {
    const out = redact(`ERROR 1064 (42000) at line 3: ... near '${HASH}'' at line 1`);
    expect(out).not.toContain(HASH.slice(1));
    expect(out).toContain("near '***'' at line 1");
  });

  test('across a multi-line stderr, every statement is redacted and the error kept', () => {
    const stderr = [
      '--------------',
      `CREATE USER 'a'@'%' IDENTIFIED BY PASSWORD '${HASH}'`,
      '--------------',
      '',
      "ERROR 1524 (HY000) at line 1: Plugin 'bogus_plugin' is not loaded",
    ].join('\n');
    const out = redact(stderr);
    expect(out).not.toMatch(/6BB4837E/);
    expect(out).toContain("ERROR 1524 (HY000) at line 1: Plugin 'bogus_plugin' is not loaded");
  });

  test('leaves ordinary SQL alone', () => {
    const sql = "GRANT SELECT ON `shop`.* TO 'app'@'%'; SELECT 1 AS 'x'; CREATE USER 'b'@'%' IDENTIFIED VIA unix_socket";
    expect(redact(sql)).toBe(sql);
  });
});

test('the shapes it already knew still go: URLs with a password and password=… pairs', () => {
  expect(redact('postgres://app:hunter2@db:5432/x')).toBe('postgres://app:***@db:5432/x');
  expect(redact('password=hunter2 host=db')).toBe('password=*** host=db');
});
