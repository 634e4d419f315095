/**
 * The MariaDB/MySQL roles companion read as untrusted input: its statements split as the client and server would
 * split them (comments, quoted names holding spaces and semicolons, several statements on a line, any case), and
 * only the allowed shapes kept; and the restore test's DEFINER rewriting, on honest dump lines and streamed.
 */
import { Readable } from 'node:stream';
import { requireSandboxClient } from '../../container/src/engines/mysql';
import { DefinerRewriter, MAX_REWRITTEN_LINE, rewriteDefiners } from '../../container/src/engines/mysql-definers';
import { TokenKind, describeStatement, planRoles, renderTokens, splitStatements } from '../../container/src/engines/mysql-roles';

const HASH = '*3D1B09227FFD6EBE09FE3AA71FA8F338EC144A1B';
const plan = (sql: string, existing: string[] = []) => planRoles(sql, new Set(existing), 'shop', 'restored');

describe('splitStatements', () => {
  test('comments, quoted names with spaces and semicolons, several statements on a line, any case', () => {
    const statements = splitStatements([
      '-- a comment; GRANT SUPER ON *.* TO x',
      "# another; one\ncreate user `we; ird`@'h o;st' /* a; comment */; GrAnT select ON `shop`.`t;1` TO `we; ird`@'h o;st';",
      "GRANT SELECT ON shop.t TO 'it''s'@'%'--not a comment\n;",
    ].join('\n'));
    expect(statements.map((s) => renderTokens(s.tokens))).toEqual([
      "create user `we; ird`@'h o;st'",
      "GrAnT select ON `shop`.`t;1` TO `we; ird`@'h o;st'",
      "GRANT SELECT ON shop.t TO 'it\\'s'@'%' - - not a comment",
    ]);
  });

  test('client commands end at their line, and do not swallow the next statement', () => {
    const statements = splitStatements('\\! touch /tmp/x\nsystem touch /tmp/y\nCREATE ROLE r;\n');
    expect(statements.map((s) => [s.clientCommand, describeStatement(s)])).toEqual([
      [true, '\\! touch /tmp/x'], [true, 'system touch /tmp/y'], [false, 'CREATE ROLE r'],
    ]);
  });

  test('executable comments are kept as such, plain ones dropped', () => {
    const [statement] = splitStatements('GRANT SELECT ON shop.t TO u /*!, SUPER ON *.* */ /* plain */;');
    expect(statement.tokens.filter((t) => t.kind === TokenKind.EXECUTABLE_COMMENT).map((t) => t.value)).toEqual(['/*!, SUPER ON *.* */']);
  });
});

describe('planRoles', () => {
  test('an honest companion: users and roles created, grants moved to the target database, existing accounts left alone', () => {
    const p = plan([
      '-- Users and grants, from SHOW CREATE USER and SHOW GRANTS.',
      '-- app@localhost',
      `CREATE USER IF NOT EXISTS \`app\`@\`localhost\` IDENTIFIED BY PASSWORD '${HASH}';`,
      `GRANT USAGE ON *.* TO \`app\`@\`localhost\` IDENTIFIED BY PASSWORD '${HASH}';`,
      'GRANT SELECT, INSERT (`id`, `name`) ON `shop`.`customers` TO `app`@`localhost`;',
      'GRANT EXECUTE ON FUNCTION `shop`.`order_total` TO `app`@`localhost`;',
      'GRANT `reader` TO `app`@`localhost`;',
      'SET DEFAULT ROLE `reader` FOR `app`@`localhost`;',
      '-- reader@',
      "CREATE ROLE IF NOT EXISTS 'reader';",
      'GRANT SELECT ON `shop`.* TO `reader` WITH GRANT OPTION;',
      '-- root@localhost',
      "CREATE USER IF NOT EXISTS `root`@`localhost` IDENTIFIED VIA mysql_native_password USING 'invalid' OR unix_socket;",
      "GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` IDENTIFIED VIA mysql_native_password USING 'invalid' OR unix_socket WITH GRANT OPTION;",
      'GRANT PROXY ON ``@`%` TO `root`@`localhost` WITH GRANT OPTION;',
    ].join('\n'), ['root@localhost']);
    expect(p).toMatchObject({ created: ['app@localhost', 'reader@'], skipped: ['root@localhost'], elsewhere: 0 });
    expect(p.creates).toEqual([`CREATE USER IF NOT EXISTS \`app\`@\`localhost\` IDENTIFIED BY PASSWORD '${HASH}'`, "CREATE ROLE IF NOT EXISTS 'reader'"]);
    // The role is granted before the companion creates it: accounts and roles come first.
    expect(p.refused).toEqual([]);
    expect(p.grants).toEqual([
      `GRANT USAGE ON *.* TO \`app\`@\`localhost\` IDENTIFIED BY PASSWORD '${HASH}'`,
      'GRANT SELECT, INSERT(`id`, `name`) ON `restored`.`customers` TO `app`@`localhost`',
      'GRANT EXECUTE ON FUNCTION `restored`.`order_total` TO `app`@`localhost`',
      'GRANT `reader` TO `app`@`localhost`',
      'SET DEFAULT ROLE `reader` FOR `app`@`localhost`',
      'GRANT SELECT ON `restored`.* TO `reader` WITH GRANT OPTION',
    ]);
    expect(p.secrets).toContain(HASH);
  });

  test('a planted companion: every dangerous statement refused by name, never with its secret', () => {
    const p = plan([
      `CREATE USER 'evil'@'%' IDENTIFIED BY PASSWORD '${HASH}';`,
      'GRANT SUPER, FILE ON *.* TO evil@"%";',
      'grant file on *.* to `evil`@`%`;',
      'GRANT PROCESS ON *.* TO `evil`@`%`; GRANT SHUTDOWN ON *.* TO `evil`@`%`; GRANT RELOAD ON *.* TO `evil`@`%`;',
      'GRANT CREATE USER ON *.* TO `evil`@`%`;',
      'GRANT USAGE ON *.* TO `evil`@`%` WITH GRANT OPTION;',
      'GRANT SET USER ON *.* TO `evil`@`%`;',
      'GRANT READ_ONLY ADMIN ON *.* TO `evil`@`%`;',
      'GRANT SELECT ON *.* TO `evil`@`%`;',
      'GRANT ALL ON mysql.* TO `evil`@`%`;',
      'GRANT SELECT ON `shop`.`t` TO `evil`@`%` /*!, SUPER ON *.* TO `evil`@`%` */;',
      'GRANT PROXY ON `root`@`localhost` TO `evil`@`%`;',
      "SET GLOBAL init_connect = 'DO 1';",
      "INSTALL SONAME 'ha_connect';",
      "INSTALL PLUGIN evil SONAME 'evil.so';",
      `SET PASSWORD FOR \`root\`@\`localhost\` = '${HASH}';`,
      `CREATE OR REPLACE USER \`evil2\`@\`%\` IDENTIFIED BY PASSWORD '${HASH}';`,
      `CREATE OR REPLACE USER \`root\`@\`localhost\` IDENTIFIED BY PASSWORD '${HASH}';`,
      "CREATE USER 'sock'@'localhost' IDENTIFIED VIA unix_socket;",
      "CREATE USER 'sock2'@'localhost' IDENTIFIED VIA 'unix_socket';",
      'GRANT SELECT ON `shop`.`t` TO `root`@`localhost`;',
      'GRANT SUPER ON *.* TO `root`@`localhost`;',
      'GRANT SELECT ON `shop`.`t` TO `nobody`@`%`;',
      'GRANT SELECT ON t TO `evil`@`%`;',
      'CREATE ROLE `r` WITH ADMIN `root`@`localhost`;',
      '\\! touch /tmp/pwned',
      'system touch /tmp/pwned',
      "SELECT 1 INTO OUTFILE '/tmp/pwned';",
      'DROP USER `restorable`@`localhost`;',
    ].join('\n'), ['root@localhost']);
    expect(p.created).toEqual(['evil@%']);
    expect(p.grants).toEqual([]);
    const refused = Object.fromEntries(p.refused.map((r) => [r.what, r.why]));
    expect(refused).toEqual({
      'GRANT SUPER, FILE ON *.* TO evil@\'%\'': 'SUPER, FILE on *.* reaches beyond the restored database',
      'grant file on *.* to `evil`@`%`': 'FILE on *.* reaches beyond the restored database',
      'GRANT PROCESS ON *.* TO `evil`@`%`': 'PROCESS on *.* reaches beyond the restored database',
      'GRANT SHUTDOWN ON *.* TO `evil`@`%`': 'SHUTDOWN on *.* reaches beyond the restored database',
      'GRANT RELOAD ON *.* TO `evil`@`%`': 'RELOAD on *.* reaches beyond the restored database',
      'GRANT CREATE USER ON *.* TO `evil`@`%`': 'CREATE USER on *.* reaches beyond the restored database',
      'GRANT USAGE ON *.* TO `evil`@`%` WITH GRANT OPTION': 'GRANT OPTION on *.* reaches beyond the restored database',
      'GRANT SET USER ON *.* TO `evil`@`%`': 'SET USER on *.* reaches beyond the restored database',
      'GRANT READ_ONLY ADMIN ON *.* TO `evil`@`%`': 'READ_ONLY ADMIN on *.* reaches beyond the restored database',
      'GRANT SELECT ON *.* TO `evil`@`%`': 'SELECT on *.* reaches beyond the restored database',
      'GRANT ALL ON mysql.* TO `evil`@`%`': 'it is on database mysql, which this restore does not bring: apply it once that database is restored',
      'GRANT SELECT ON `shop`.`t` TO `evil`@`%` …': 'it holds an executable comment (/*! … */), which would run SQL this check does not see',
      'GRANT PROXY ON `root`@`localhost` TO `evil`@`%`': 'PROXY lets an account act as another',
      'SET GLOBAL init_connect …': 'SET changes settings or passwords: only SET DEFAULT ROLE is applied',
      'INSTALL SONAME …': 'not a statement a roles companion holds (CREATE USER, CREATE ROLE, GRANT, SET DEFAULT ROLE)',
      'INSTALL PLUGIN evil SONAME …': 'not a statement a roles companion holds (CREATE USER, CREATE ROLE, GRANT, SET DEFAULT ROLE)',
      'SET PASSWORD FOR `root`@`localhost` …': 'SET changes settings or passwords: only SET DEFAULT ROLE is applied',
      'CREATE OR REPLACE USER `evil2`@`%` …': 'CREATE OR REPLACE would replace an existing account',
      'CREATE OR REPLACE USER `root`@`localhost` …': 'CREATE OR REPLACE would replace an existing account',
      "CREATE USER 'sock'@'localhost' …": expect.stringContaining('the authentication plugin unix_socket is not one of mysql_native_password'),
      "CREATE USER 'sock2'@'localhost' …": expect.stringContaining('the authentication plugin unix_socket is not one of'),
      'GRANT SELECT ON `shop`.`t` TO `nobody`@`%`': 'nobody@% is not created by this companion (grants go to accounts and roles it creates)',
      'GRANT SELECT ON t TO `evil`@`%`': 'the object names no database',
      'CREATE ROLE `r` WITH ADMIN `root`@`localhost`': 'a role is created with nothing more (WITH ADMIN names another account)',
      '\\! touch /tmp/pwned': 'a client command, which a roles companion never holds',
      'system touch /tmp/pwned': 'a client command, which a roles companion never holds',
      'SELECT 1 INTO OUTFILE …': 'not a statement a roles companion holds (CREATE USER, CREATE ROLE, GRANT, SET DEFAULT ROLE)',
      'DROP USER `restorable`@`localhost`': 'not a statement a roles companion holds (CREATE USER, CREATE ROLE, GRANT, SET DEFAULT ROLE)',
    });
    // Statements about an existing account are left alone (the account is skipped), whatever they say.
    expect(p.skipped).toEqual(['root@localhost']);
    for (const r of p.refused) expect(`${r.what} ${r.why}`).not.toContain(HASH.slice(1));
  });

  test('a statement cut short, or holding only a comment, is refused or ignored, never half-applied', () => {
    const p = plan("CREATE USER 'x'@'%';\nGRANT SELECT ON `shop`.`t` TO 'x'@'%' IDENTIFIED BY 'unterminated;\n/* only a comment */;");
    expect(p.created).toEqual(['x@%']);
    expect(p.grants).toEqual([]);
    expect(p.refused).toEqual([{ what: "GRANT SELECT ON `shop`.`t` TO 'x'@'%' …", why: expect.any(String) }]);
  });
});

describe('DEFINER rewriting for restore tests', () => {
  test('views, triggers, routines and events as mysqldump writes them', () => {
    expect(rewriteDefiners('/*!50013 DEFINER=`restorable`@`localhost` SQL SECURITY DEFINER */'))
      .toBe('/*!50013 DEFINER=CURRENT_USER SQL SECURITY DEFINER */');
    expect(rewriteDefiners('/*!50003 CREATE*/ /*!50017 DEFINER=`a``b`@`%`*/ /*!50003 TRIGGER orders_audit AFTER INSERT ON orders'))
      .toBe('/*!50003 CREATE*/ /*!50017 DEFINER=CURRENT_USER*/ /*!50003 TRIGGER orders_audit AFTER INSERT ON orders');
    expect(rewriteDefiners("CREATE DEFINER='root'@'localhost' FUNCTION `f`(x INT) RETURNS int(11)")).toBe('CREATE DEFINER=CURRENT_USER FUNCTION `f`(x INT) RETURNS int(11)');
    expect(rewriteDefiners('/*!50117 definer = root @ localhost*/ /*!50106 EVENT `e` ON SCHEDULE')).toBe('/*!50117 DEFINER=CURRENT_USER*/ /*!50106 EVENT `e` ON SCHEDULE');
    expect(rewriteDefiners('CREATE DEFINER=`app_role` PROCEDURE p()')).toBe('CREATE DEFINER=CURRENT_USER PROCEDURE p()');
    expect(rewriteDefiners('CREATE DEFINER=CURRENT_USER PROCEDURE p()')).toBe('CREATE DEFINER=CURRENT_USER PROCEDURE p()');
  });

  test('streamed in chunks of any size: row data untouched, statement lines rewritten, bytes kept', async () => {
    const dump = Buffer.concat([
      Buffer.from("INSERT INTO `t` VALUES (1,'DEFINER=`x`@`y`'),(2,'\u00e9');\n"),
      Buffer.from('/*!50013 DEFINER=`restorable`@`localhost` SQL SECURITY DEFINER */\n'),
      Buffer.from([0xff, 0xfe, 0x0a]),
      Buffer.from('INSERT'),
    ]);
    const expected = Buffer.from(dump.toString('latin1').replace('/*!50013 DEFINER=`restorable`@`localhost`', '/*!50013 DEFINER=CURRENT_USER'), 'latin1');
    for (const size of [1, 3, 7, 64, dump.length]) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < dump.length; i += size) chunks.push(dump.subarray(i, i + size));
      const out: Buffer[] = [];
      for await (const chunk of Readable.from(chunks).pipe(new DefinerRewriter())) out.push(chunk as Buffer);
      expect(Buffer.concat(out).equals(expected)).toBe(true);
    }
  });

  test('a statement line longer than the limit passes through as it is', async () => {
    const long = `CREATE DEFINER=\`x\`@\`y\` PROCEDURE p() SELECT '${'a'.repeat(MAX_REWRITTEN_LINE)}';\nCREATE DEFINER=\`x\`@\`y\` PROCEDURE q() SELECT 1;\n`;
    const out: Buffer[] = [];
    for await (const chunk of Readable.from([Buffer.from(long)]).pipe(new DefinerRewriter())) out.push(chunk as Buffer);
    const text = Buffer.concat(out).toString();
    expect(text.startsWith('CREATE DEFINER=`x`@`y` PROCEDURE p()')).toBe(true);
    expect(text.endsWith('CREATE DEFINER=CURRENT_USER PROCEDURE q() SELECT 1;\n')).toBe(true);
  });
});

describe('the client that loads a backup', () => {
  test('MariaDB\'s client, which has --sandbox, is used; MySQL\'s, which has none, is refused before anything loads', () => {
    expect(() => requireSandboxClient('mysql  Ver 15.1 Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64) using  EditLine wrapper')).not.toThrow();
    expect(() => requireSandboxClient('mysql  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)'))
      .toThrow(/the mysql client on PATH is not MariaDB's \(mysql {2}Ver 8\.0\.36.*only MariaDB's client refuses the shell and file commands/);
    // The one on this machine is MariaDB's.
    expect(() => requireSandboxClient()).not.toThrow();
  });
});
