/**
 * `restorable restore` and `verify` for MariaDB 10.11: two real backups by the bundled agent, restored
 * into databases with other names (dumps are taken without --databases), compared table by table with
 * the source as it was at each backup. MySQL 8 is not available here and is untested.
 */
import { Readable } from 'node:stream';
import { Manifest } from '../../lib/contract';
import { LoadPlan } from '../../container/src/engines/engine';
import { MysqlSession } from '../../container/src/engines/mysql';
import { ProcessPipeline } from '../../container/src/shared/pipeline';
import {
  AgeKey, MYSQL, S3Emulator, TableStats, agentEnv, createMysqlDatabase, createMysqlFixture, decryptToText, download, dropMysqlDatabase,
  flipStoredByte, logLines, makeAgeKey, mysqlExec, mysqlTableStats, mysqlUser, replaceStored, runAgent, startS3rver, uniqueName,
} from '../support';

const source = 'restore-maria';
let s3: S3Emulator;
let key: AgeKey;
const database = uniqueName('rsm_src');
// Another database with a table-level grant, gone by restore time: its grant cannot apply, and must not fail the restore.
const otherDatabase = uniqueName('rsm_other');
const otherReader = `${otherDatabase.slice(0, 60)}_rd`;
const targets: string[] = [];
const backups: { key: string; finishedAt: string; stats: Map<string, TableStats> }[] = [];

const env = () => agentEnv({ ...s3.env, MYSQL_PWD: MYSQL.password });
const backup = async () => {
  const run = await runAgent(['backup', '--source', source, '--engine', 'mariadb', '--bucket', s3.bucket, '--recipient', key.recipient,
    '--host', MYSQL.host, '--port', String(MYSQL.port), '--user', MYSQL.user, '--database', database, '--json'], env());
  if (run.code !== 0) throw new Error(`backup failed: ${run.stderr}`);
  const result = JSON.parse(run.stdout) as { key: string; manifestKey: string };
  const manifest = JSON.parse((await s3.getText(result.manifestKey))!) as Manifest;
  backups.push({ key: result.key, finishedAt: manifest.finishedAt, stats: mysqlTableStats(database) });
};

function freshTarget(): string {
  const name = uniqueName(`rsm_t${targets.length}`);
  targets.push(name);
  createMysqlDatabase(name);
  return name;
}

const restore = (target: string, ...extra: string[]) => runAgent(['restore', '--source', source, '--bucket', s3.bucket,
  '--identity-file', key.identityFile, '--host', MYSQL.host, '--port', String(MYSQL.port), '--user', MYSQL.user, '--database', target,
  '--json', '--load-as-connected-user', ...extra], env());

beforeAll(async () => {
  s3 = await startS3rver();
  key = makeAgeKey();
  createMysqlFixture(database, 1500);
  createMysqlDatabase(otherDatabase);
  mysqlExec(otherDatabase, `CREATE TABLE t (id INT); CREATE USER '${otherReader}'@'localhost'; GRANT SELECT ON \`${otherDatabase}\`.\`t\` TO '${otherReader}'@'localhost';`);
  await backup();
  await new Promise((r) => setTimeout(r, 1100)); // keys have one-second resolution
  mysqlExec(database, `DELETE FROM audit_log WHERE id % 7 = 0; INSERT INTO customers (name) SELECT CONCAT('later ', seq) FROM seq_1_to_300;`);
  await backup();
  expect(backups[1].stats).not.toEqual(backups[0].stats);
  dropMysqlDatabase(otherDatabase);
  mysqlExec(undefined, `DROP USER '${otherReader}'@'localhost'`);
});

const createdAccounts: string[] = [];

afterAll(async () => {
  for (const account of createdAccounts) {
    const at = account.lastIndexOf('@');
    mysqlExec(undefined, `DROP USER IF EXISTS '${account.slice(0, at)}'@'${account.slice(at + 1)}'`);
  }
  for (const target of targets) dropMysqlDatabase(target);
  dropMysqlDatabase(database);
  await s3?.stop();
});

describe('restore of MariaDB', () => {
  let latestTarget: string;

  test('the latest backup into a database of another name: every table, and the routine, trigger and view', async () => {
    latestTarget = freshTarget();
    const run = await restore(latestTarget);
    expect(run.stderr).not.toContain('restorable restore:');
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ key: backups[1].key, engine: 'mysql', mode: 'streamed' });
    expect(mysqlTableStats(latestTarget)).toEqual(backups[1].stats);
    expect(mysqlExec(latestTarget, 'SELECT order_total(7) = (SELECT SUM(amount) FROM orders WHERE customer_id = 7)')).toEqual([['1']]);
    expect(mysqlExec(latestTarget, 'SELECT COUNT(*) FROM customer_totals')).toEqual([[String(backups[1].stats.get('customers')!.rows)]]);
  });

  test('--at a time between the two backups restores the first one', async () => {
    const target = freshTarget();
    const run = await restore(target, '--at', backups[0].finishedAt);
    expect(run.stderr).not.toContain('restorable restore:');
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).key).toBe(backups[0].key);
    expect(mysqlTableStats(target)).toEqual(backups[0].stats);
  });

  test('--jobs 2 spools and verifies the dump before the target is touched, then loads it in one session', async () => {
    const target = freshTarget();
    const run = await restore(target, '--jobs', '2');
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ mode: 'spooled', jobs: 2 });
    expect(logLines(run.stderr).filter((l) => l.level === 'warn').map((l) => l.msg)).toEqual([expect.stringContaining('loads a SQL dump in one session')]);
    expect(mysqlTableStats(target)).toEqual(backups[1].stats);
  });

  test('refuses a login holding FILE, SUPER and the like unless --load-as-connected-user says the backup is trusted, before touching the target', async () => {
    const target = freshTarget();
    const run = await runAgent(['restore', '--source', source, '--bucket', s3.bucket, '--identity-file', key.identityFile, '--host', MYSQL.host,
      '--port', String(MYSQL.port), '--user', MYSQL.user, '--database', target, '--json'], env());
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/ holds .*FILE, SUPER.* beyond its databases, and the backup's SQL .* would run with them\. Restore as an account with rights on the target database alone .*--load-as-connected-user/);
    expect(mysqlTableStats(target).size).toBe(0);
  });

    test('refuses a non-empty target without --clean, and leaves it untouched', async () => {
    const run = await restore(latestTarget, '--key', backups[0].key);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/is not empty \(\d+ objects: .*\).*add --clean/);
    expect(mysqlTableStats(latestTarget)).toEqual(backups[1].stats);
  });

  test('--clean over a non-empty, changed target brings back exactly the backup', async () => {
    mysqlExec(latestTarget, "DELETE FROM orders WHERE id % 3 = 0; UPDATE customers SET name = 'changed' WHERE id < 40; INSERT INTO empty_table VALUES (1);");
    const run = await restore(latestTarget, '--clean', '--key', backups[0].key);
    expect(run.stderr).not.toContain('restorable restore:');
    expect(run.code).toBe(0);
    expect(mysqlTableStats(latestTarget)).toEqual(backups[0].stats);
  });

  test('--with-globals: a dropped user comes back, with its grant on the new database name; existing users are left alone', async () => {
    const user = mysqlUser(database);
    mysqlExec(undefined, `DROP USER '${user}'@'localhost'`);
    const target = freshTarget();
    const run = await restore(target, '--with-globals');
    expect(run.stderr).not.toContain('restorable restore:');
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout);
    // Accounts of other test files that came and went between the backup and now come back too: drop them after.
    createdAccounts.push(...result.globals.created);
    expect(result.globals.created).toContain(`${user}@localhost`);
    expect(result.globals.skipped).toContain(`${MYSQL.user}@${MYSQL.host}`);
    const grants = mysqlExec(undefined, `SHOW GRANTS FOR '${user}'@'localhost'`).map(([g]) => g);
    expect(grants).toContain(`GRANT SELECT ON \`${target}\`.\`customer_totals\` TO \`${user}\`@\`localhost\``);
    expect(mysqlTableStats(target)).toEqual(backups[1].stats);
    // The reader of a database this restore does not bring comes back without its table grant, and the log says why.
    expect(result.globals.created).toContain(`${otherReader}@localhost`);
    expect(mysqlExec(undefined, `SHOW GRANTS FOR '${otherReader}'@'localhost'`).map(([g]) => g).join('\n')).not.toContain(`ON \`${otherDatabase}\`.`);
    expect(logLines(run.stderr).map((l) => l.msg)).toContain('grants on objects of other databases were not applied: restore those databases, then apply them from the companion');
    // ...and is reported as refused, by its first words, with why; no password hash is ever named.
    expect(result.globals.refused).toContainEqual({
      what: `GRANT SELECT ON \`${otherDatabase}\`.\`t\` TO \`${otherReader}\`@\`localhost\``,
      why: `it is on database ${otherDatabase}, which this restore does not bring: apply it once that database is restored`,
    });
    expect(run.stdout).not.toMatch(/[0-9A-F]{40}/);
  });
});

describe('the restore test\'s loading account (planLoad for a scratch database)', () => {
  /** Loads a decrypted dump through the plan's stage, as the restore path does. */
  const load = (plan: LoadPlan, sql: string) =>
    new ProcessPipeline([plan.stage({ clean: false })], { input: Readable.from([Buffer.from(sql)]) }).done;
  const scratchLoad = (session: MysqlSession) => session.planLoad({ file: '/nonexistent' }, { scratch: true, createdRoles: [], asConnectedUser: false });

  test('loads the real dump with rights on the target database alone: definers become the loader, views and routines work, no FILE', async () => {
    const target = freshTarget();
    const dump = decryptToText(await download(s3, backups[1].key), key.identityFile);
    expect(dump).toMatch(/DEFINER=`restorable`@`(localhost|127\.0\.0\.1|%)`/);
    const session = new MysqlSession({ ...MYSQL, database: target });
    const loader = await scratchLoad(session);
    try {
      await load(loader, dump);
      await session.close();
      expect(mysqlTableStats(target)).toEqual(backups[1].stats);
      const user = loader.connection.user;
      const grants = mysqlExec(undefined, `SHOW GRANTS FOR '${user}'@'localhost'`).map(([g]) => g.replace(/ IDENTIFIED BY PASSWORD '[^']*'/, ''));
      // The database's _ escaped (a wildcard in a database-level grant), as --batch prints it: \\_ for \_.
      expect(grants).toEqual([`GRANT USAGE ON *.* TO \`${user}\`@\`localhost\``, `GRANT ALL PRIVILEGES ON \`${target.replace(/_/g, '\\\\_')}\`.* TO \`${user}\`@\`localhost\``]);
      // Every definer is the loader now; its view and function work through its own connection, as validation would use them.
      const definers = mysqlExec(undefined, `SELECT DISTINCT definer FROM information_schema.views WHERE table_schema = '${target}'
        UNION SELECT definer FROM information_schema.routines WHERE routine_schema = '${target}'
        UNION SELECT definer FROM information_schema.triggers WHERE trigger_schema = '${target}'`);
      expect(definers).toEqual([[`${user}@localhost`]]);
      const scratch = new MysqlSession(loader.connection);
      try {
        expect(await scratch.query('SELECT order_total(7) = (SELECT SUM(amount) FROM orders WHERE customer_id = 7), COUNT(*) > 0 FROM customer_totals'))
          .toEqual([['1', '1']]);
        await expect(scratch.query("SELECT 1 INTO OUTFILE '/tmp/restorable-never-written'")).rejects.toThrow(/Access denied/);
        expect(await scratch.query("SELECT LOAD_FILE('/etc/hostname') IS NULL")).toEqual([['1']]);
      } finally {
        await scratch.close();
      }
    } finally {
      await loader.release();
    }
    expect(mysqlExec(undefined, `SELECT COUNT(*) FROM mysql.user WHERE user = '${loader.connection.user}'`)).toEqual([['0']]);
  });

  test('a definer the rewriting cannot see is refused by the server: the loader cannot act for another account', async () => {
    const target = freshTarget();
    const session = new MysqlSession({ ...MYSQL, database: target });
    const loader = await scratchLoad(session);
    try {
      // DEFINER split across lines: no honest dump writes this, and the rewriting leaves it as it is.
      await expect(load(loader, 'CREATE TABLE t (id INT);\nCREATE DEFINER=\n`restorable`@`localhost` TRIGGER t_bi BEFORE INSERT ON t FOR EACH ROW SET NEW.id = 1;\n'))
        .rejects.toThrow(/SUPER, SET USER|SET USER|SUPER/);
      expect(mysqlExec(target, "SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = DATABASE()")).toEqual([['0']]);
    } finally {
      await session.close();
      await loader.release();
    }
  });
});

test('a byte flipped late in the object: exit 1, no result, and the target (a SQL load is no transaction) reported as not to be trusted', async () => {
  const original = await s3.getBytes(backups[1].key);
  expect(original.length).toBeGreaterThan(70_000); // more than one 64 KiB age chunk
  flipStoredByte(s3, backups[1].key, -100);
  try {
    const target = freshTarget();
    const run = await restore(target);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    // Whichever notices first: age (the last chunk fails) or the SHA-256 at the end of the stream.
    expect(run.stderr).toMatch(/is damaged or truncated: age could not authenticate its bytes|does not match its manifest: read \d+ bytes/);
    expect(run.stderr).toMatch(/did not complete, and the target must not be trusted: it may hold part of the backup/);
  } finally {
    replaceStored(s3, backups[1].key, original);
  }
});

describe('verify of MariaDB', () => {
  test('with an identity: the SQL dump is complete and holds the manifest\'s row counts', async () => {
    const run = await runAgent(['verify', '--source', source, '--bucket', s3.bucket, '--identity-file', key.identityFile, '--json'], env());
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ key: backups[1].key, readFully: true,
      checks: expect.arrayContaining(['the SQL dump is complete and holds the manifest\'s row counts']) });
  });
});
