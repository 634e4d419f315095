/**
 * A MariaDB 10.11 backup, end to end: the bundled agent against the local server and the S3
 * emulator, a restore with age, zstd and the mysql client into a fresh database, compared table
 * by table. (MySQL 8 is not available here and is untested; its dumps do not load into MariaDB.)
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Manifest, Tier } from '../../lib/contract';
import { MysqlSession } from '../../container/src/engines/mysql';
import {
  AgeKey, MYSQL, S3Emulator, agentEnv, createMysqlDatabase, createMysqlFixture, decryptToText, download, dropMysqlDatabase,
  logLines, makeAgeKey, mysqlExec, mysqlTableStats, mysqlUser, prependPath, restoreMysql, runAgent, startAgent, startS3rver, startsLate,
  uniqueName,
} from '../support';

const source = 'shop-maria';
let s3: S3Emulator;
let key: AgeKey;
const database = uniqueName('bk_maria');
const restored = uniqueName('bk_maria_restored');

beforeAll(async () => {
  s3 = await startS3rver();
  key = makeAgeKey();
  createMysqlFixture(database, 2000);
});

const dumper = `${database.slice(0, 50)}_dumper`;

afterAll(async () => {
  mysqlExec(undefined, `DROP USER IF EXISTS '${dumper}'@'127.0.0.1'`);
  dropMysqlDatabase(database);
  dropMysqlDatabase(restored);
  await s3?.stop();
  rmSync(agentTmp, { recursive: true, force: true });
});

// The agent's temporary directory, this file's alone: other test files running beside it make and remove option files of their own.
const agentTmp = mkdtempSync(`${tmpdir()}/restorable-backup-mysql-test-`);
const optionFiles = () => readdirSync(agentTmp).filter((name) => name.startsWith('restorable-mysql-'));

test('backs up MariaDB, restores with standard tools, and every table, routine, trigger, view and grant matches', async () => {
  const filesBefore = optionFiles();
  const run = await runAgent(['backup', '--source', source, '--engine', 'mariadb', '--bucket', s3.bucket, '--recipient-file', key.recipientFile,
    '--host', MYSQL.host, '--port', String(MYSQL.port), '--user', MYSQL.user, '--database', database, '--json'],
  agentEnv({ ...s3.env, MYSQL_PWD: MYSQL.password, TMPDIR: agentTmp }));
  expect(run.stderr).not.toContain('restorable backup:');
  expect(run.code).toBe(0);
  expect(optionFiles()).toEqual(filesBefore); // the 0600 password file is gone
  const result = JSON.parse(run.stdout);
  expect(result.key).toMatch(/\.sql\.zst\.age$/);
  expect(result.tier).toBe(Tier.MONTHLY);

  const manifest = JSON.parse((await s3.getText(result.manifestKey))!) as Manifest;
  expect(manifest).toMatchObject({ engine: 'mysql', format: 'sql', database, globals: { captured: true } });
  expect(manifest.serverVersion).toMatch(/^MariaDB 10\.11/);

  createMysqlDatabase(restored);
  restoreMysql(await download(s3, result.key), key.identityFile, restored);
  const sourceStats = mysqlTableStats(database);
  const copy = mysqlTableStats(restored);
  expect(copy).toEqual(sourceStats);
  expect(sourceStats.get('orders')!.rows).toBe(6000);
  expect(sourceStats.get('audit_log')!.rows).toBe(6000);
  expect(new Map(manifest.tables.map((t) => [t.table, t.rows]))).toEqual(new Map([...sourceStats].map(([t, s]) => [t, s.rows])));

  // The function, the trigger and the view came back.
  expect(mysqlExec(restored, 'SELECT order_total(7) = (SELECT SUM(amount) FROM orders WHERE customer_id = 7)')).toEqual([['1']]);
  mysqlExec(restored, 'INSERT INTO orders (customer_id, amount) VALUES (1, 1)');
  expect(mysqlExec(restored, 'SELECT COUNT(*) FROM audit_log')).toEqual([['6001']]);
  expect(mysqlExec(restored, 'SELECT COUNT(*) FROM customer_totals')).toEqual([['2000']]);

  // Users and grants live outside the database: they are in the companion, ready to replay.
  const globals = decryptToText(await download(s3, manifest.companions[0].key), key.identityFile);
  const user = mysqlUser(database);
  expect(globals).toContain(`CREATE USER IF NOT EXISTS \`${user}\`@\`localhost\``);
  expect(globals).toContain(`GRANT SELECT ON \`${database}\`.\`customer_totals\` TO \`${user}\`@\`localhost\`;`);
});

test('a user who may dump the database but not read the accounts: the backup succeeds, the manifest says why roles are missing', async () => {
  mysqlExec(undefined, `DROP USER IF EXISTS '${dumper}'@'127.0.0.1';
    CREATE USER '${dumper}'@'127.0.0.1' IDENTIFIED BY 'dumper-pw';
    GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES, EXECUTE ON \`${database}\`.* TO '${dumper}'@'127.0.0.1';
    GRANT SELECT ON mysql.proc TO '${dumper}'@'127.0.0.1';`);
  await new Promise((r) => setTimeout(r, 1100)); // a new key second
  const run = await runAgent(['backup', '--source', 'maria-limited', '--engine', 'mysql', '--bucket', s3.bucket, '--recipient', key.recipient,
    '--host', MYSQL.host, '--port', String(MYSQL.port), '--user', dumper, '--database', database, '--json'],
  agentEnv({ ...s3.env, MYSQL_PWD: 'dumper-pw' }));
  expect(run.stderr).not.toContain('restorable backup:');
  expect(run.code).toBe(0);
  const result = JSON.parse(run.stdout);
  const manifest = JSON.parse((await s3.getText(result.manifestKey))!) as Manifest;
  expect(manifest.globals.captured).toBe(false);
  expect(manifest.globals.reason).toMatch(/cannot read mysql\.user: .*denied/i);
  expect(manifest.companions).toEqual([]);
  expect(manifest.warnings).toEqual([expect.stringContaining('roles and grants were not captured')]);
  expect(logLines(run.stderr).filter((l) => l.level === 'warn').map((l) => l.msg)).toEqual([expect.stringContaining('roles and grants were not captured')]);
  expect(manifest.tables.find((t) => t.table === 'orders')?.rows).toBe(6000);
});

describe('users and grants read one account at a time', () => {
  const vanishing = `${database.slice(0, 50)}_gone`;
  const capture = async (beforeShow: (sql: string) => void) => {
    mysqlExec(undefined, `CREATE OR REPLACE USER '${vanishing}'@'localhost'; GRANT SELECT ON \`${database}\`.* TO '${vanishing}'@'localhost'`);
    const session = new MysqlSession({ ...MYSQL, database });
    const query = session.query.bind(session);
    jest.spyOn(session, 'query').mockImplementation(async (sql) => {
      if (sql.startsWith('SHOW CREATE USER') && sql.includes(vanishing)) beforeShow(sql);
      return query(sql);
    });
    try {
      return await session.captureGlobals();
    } finally {
      await session.close();
      mysqlExec(undefined, `DROP USER IF EXISTS '${vanishing}'@'localhost'`);
    }
  };

  test('an account dropped after the listing is left out; the others are captured', async () => {
    const globals = await capture(() => mysqlExec(undefined, `DROP USER '${vanishing}'@'localhost'`));
    expect('sql' in globals && globals.sql).toContain(`GRANT SELECT ON \`${database}\`.\`customer_totals\` TO \`${mysqlUser(database)}\`@\`localhost\`;`);
    expect('sql' in globals && globals.sql).not.toContain(vanishing);
  });

  test('an account still there whose grants cannot be read loses the companion, with the reason', async () => {
    const globals = await capture(() => { throw new Error('ERROR 2013 (HY000): Lost connection to server during query'); });
    expect(globals).toEqual({ notCapturedReason: `cannot read the grants of ${vanishing}@localhost: ERROR 2013 (HY000): Lost connection to server during query` });
  });
});

test('stopped by SIGTERM mid-dump: exit 143, the password file removed, no dump process left, nothing stored', async () => {
  const before = await s3.keys();
  const filesBefore = optionFiles();
  const agent = startAgent(['backup', '--source', 'maria-stopped', '--engine', 'mysql', '--bucket', s3.bucket, '--recipient', key.recipient,
    '--host', MYSQL.host, '--port', String(MYSQL.port), '--user', MYSQL.user, '--database', database],
  agentEnv({ ...s3.env, MYSQL_PWD: MYSQL.password, PATH: prependPath(startsLate('zstd', 30)), TMPDIR: agentTmp }));
  for (let i = 0; i < 100 && !agent.stderr().includes('backup started'); i++) await new Promise((r) => setTimeout(r, 100));
  expect(optionFiles().length).toBe(filesBefore.length + 1);
  agent.child.kill('SIGTERM');
  const run = await agent.finished;
  expect(run.code).toBe(143);
  expect(run.stderr).toContain('stopped by SIGTERM');
  expect(optionFiles()).toEqual(filesBefore);
  const processes = execFileSync('ps', ['-eo', 'args']).toString();
  expect(processes).not.toContain(`${agentTmp}/restorable-mysql-`);
  expect(await s3.keys()).toEqual(before);
});
