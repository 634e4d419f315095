/**
 * `restorable restore-test`, end to end for PostgreSQL 15 and MariaDB 10.11: a real backup by the bundled agent
 * into the S3 emulator, then restore tests into fresh scratch databases on the local servers. One passes; the
 * others fail, each with a report that names what failed and by how much: a manifest count off by one, a user
 * check, a corrupted object, a wrong identity.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { Manifest, restoreTestLatestKey } from '../../lib/contract';
import {
  AgeKey, MYSQL, PG, S3Emulator, agentEnv, createMysqlDatabase, createMysqlFixture, createPgDatabase, createPgFixture, dropMysqlDatabase,
  dropPgDatabase, makeAgeKey, runAgent, startS3rver, uniqueName,
} from '../support';

interface EngineCase {
  readonly label: string;
  readonly engine: string;
  readonly server: { host: string; port: number; user: string; password: string };
  readonly passwordVariable: string;
  readonly createFixture: (db: string) => Promise<void>;
  readonly createEmpty: (db: string) => Promise<void>;
  readonly drop: (db: string) => Promise<void>;
  /** The largest table, as the report names it, and its row count. */
  readonly ordersTable: string;
  /** User checks that hold on the fixture. */
  readonly checks: object[];
}

const CUSTOMERS = 300;

const cases: EngineCase[] = [
  {
    label: 'PostgreSQL', engine: 'postgres', server: PG, passwordVariable: 'PGPASSWORD',
    createFixture: (db) => createPgFixture(db, { customers: CUSTOMERS }),
    createEmpty: createPgDatabase, drop: dropPgDatabase,
    ordersTable: 'sales.orders',
    checks: [
      { name: 'customers exist', sql: 'SELECT id FROM sales.customers LIMIT 100', minRows: 100 },
      { name: 'order count', sql: 'SELECT count(*) FROM sales.orders', equals: CUSTOMERS * 3 },
      { name: 'orders are recent', sql: 'SELECT max(placed_at) FROM sales.orders', maxAgeSeconds: 3600 },
    ],
  },
  {
    label: 'MariaDB', engine: 'mariadb', server: MYSQL, passwordVariable: 'MYSQL_PWD',
    createFixture: async (db) => createMysqlFixture(db, CUSTOMERS),
    createEmpty: async (db) => createMysqlDatabase(db), drop: async (db) => dropMysqlDatabase(db),
    ordersTable: 'orders',
    checks: [
      { name: 'customers exist', sql: 'SELECT id FROM customers LIMIT 100', minRows: 100 },
      { name: 'order count', sql: 'SELECT COUNT(*) FROM orders', equals: CUSTOMERS * 3 },
      { name: 'function works', sql: 'SELECT order_total(7) = (SELECT SUM(amount) FROM orders WHERE customer_id = 7)', equals: '1' },
    ],
  },
];

describe.each(cases)('restore-test on $label', (c) => {
  const source = `rt-${c.engine}`;
  const database = uniqueName(`rt_${c.engine}`);
  const scratches: string[] = [];
  let s3: S3Emulator;
  let key: AgeKey;
  let backupKey: string;
  let manifestKey: string;

  const env = () => agentEnv({ ...s3.env, [c.passwordVariable]: c.server.password });
  const checksFile = (checks: object[]) => {
    const file = join(key.dir, `checks-${scratches.length}.json`);
    writeFileSync(file, JSON.stringify(checks));
    return file;
  };

  /** Runs a restore test into a new empty scratch database; returns the exit code and the JSON report. */
  async function restoreTest(extra: string[] = [], identityFile = key.identityFile) {
    const scratch = uniqueName(`rt_scratch_${scratches.length}`);
    scratches.push(scratch);
    await c.createEmpty(scratch);
    const run = await runAgent(['restore-test', '--source', source, '--bucket', s3.bucket, '--identity-file', identityFile,
      '--host', c.server.host, '--port', String(c.server.port), '--user', c.server.user, '--database', scratch, '--json', ...extra], env());
    expect(run.stdout).not.toBe('');
    return { ...run, report: JSON.parse(run.stdout) };
  }

  async function putObject(k: string, body: string | Buffer): Promise<void> {
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: k, Body: body }));
  }

  beforeAll(async () => {
    s3 = await startS3rver();
    key = makeAgeKey();
    await c.createFixture(database);
    const run = await runAgent(['backup', '--source', source, '--engine', c.engine, '--bucket', s3.bucket, '--recipient-file', key.recipientFile,
      '--host', c.server.host, '--port', String(c.server.port), '--user', c.server.user, '--database', database, '--json'], env());
    if (run.code !== 0) throw new Error(`the backup this test restores failed: ${run.stderr}`);
    ({ key: backupKey, manifestKey } = JSON.parse(run.stdout));
  });

  afterAll(async () => {
    for (const db of [database, ...scratches]) await c.drop(db);
    await s3?.stop();
  });

  test('passes: every table and row count as recorded, the user checks hold, and the report is stored', async () => {
    const run = await restoreTest(['--checks', checksFile(c.checks)]);
    expect(run.stderr).not.toContain('restorable restore-test:');
    expect(run.code).toBe(0);
    const { report } = run;
    const manifest = JSON.parse((await s3.getText(manifestKey))!) as Manifest;
    expect(report).toMatchObject({ source, success: true, key: backupKey, failures: [], tablesChecked: manifest.tables.length });
    expect(report.tables.find((t: { table: string }) => t.table === c.ordersTable)).toMatchObject({ expected: CUSTOMERS * 3, actual: CUSTOMERS * 3, passed: true });
    expect(report.rowsChecked).toBe(manifest.tables.reduce((sum, t) => sum + t.rows, 0));
    expect(report.checks.map((x: { name: string; passed: boolean }) => [x.name, x.passed])).toEqual(c.checks.map((x) => [(x as { name: string }).name, true]));
    expect(report.durationSeconds).toBeGreaterThan(0);
    expect(report.restoredBackupAgeSeconds).toBeGreaterThanOrEqual(0);
    expect(report.restoredBackupAgeSeconds).toBeLessThan(600);
    // The dated report and the pointer the freshness check reads.
    expect(JSON.parse((await s3.getText(report.reportKey))!)).toEqual(report);
    expect(JSON.parse((await s3.getText(restoreTestLatestKey(undefined, source)))!)).toMatchObject({ finishedAt: report.finishedAt, success: true });
  });

  test('fails when the manifest\'s count for one table is off by one, naming the table and the difference', async () => {
    const original = (await s3.getText(manifestKey))!;
    const manifest = JSON.parse(original) as Manifest;
    const edited = { ...manifest, tables: manifest.tables.map((t) => (`${c.engine === 'postgres' ? `${t.schema}.` : ''}${t.table}` === c.ordersTable ? { ...t, rows: t.rows + 1 } : t)) };
    await putObject(manifestKey, JSON.stringify(edited));
    try {
      const run = await restoreTest();
      expect(run.code).toBe(1);
      expect(run.report.success).toBe(false);
      expect(run.report.failures).toEqual([`table ${c.ordersTable}: ${CUSTOMERS * 3} rows restored, the manifest recorded ${CUSTOMERS * 3 + 1} (-1; 0 allowed)`]);
      expect(run.stderr).toContain(`the restore test of ${source} failed`);
      expect(JSON.parse((await s3.getText(restoreTestLatestKey(undefined, source)))!)).toMatchObject({ success: false, reason: run.report.failures[0] });
      // A tolerance of one row lets it pass.
      expect((await restoreTest(['--tolerance', '1'])).code).toBe(0);
    } finally {
      await putObject(manifestKey, original);
    }
  });

  test('fails on a user check that does not hold, with the expected and actual values', async () => {
    const run = await restoreTest(['--checks-json', JSON.stringify([...c.checks, { name: 'too many orders', sql: c.checks[1] && (c.checks[1] as { sql: string }).sql, equals: CUSTOMERS * 3 + 5 }])]);
    expect(run.code).toBe(1);
    expect(run.report.failures).toEqual([`check 'too many orders': expected "${CUSTOMERS * 3 + 5}", got "${CUSTOMERS * 3}" (off by -5)`]);
    expect(run.report.tables.every((t: { passed: boolean }) => t.passed)).toBe(true);
  });

  test('fails on a corrupted object before anything is validated, saying the bytes do not match the manifest', async () => {
    const original = await s3.getBytes(backupKey);
    const corrupted = Buffer.from(original);
    corrupted[Math.floor(corrupted.length / 2)] ^= 0xff;
    await putObject(backupKey, corrupted);
    try {
      const run = await restoreTest();
      expect(run.code).toBe(1);
      expect(run.report).toMatchObject({ success: false, tablesChecked: 0 });
      expect(run.report.durationSeconds).toBeUndefined();
      expect(run.report.failures).toHaveLength(1);
      expect(run.report.failures[0]).toMatch(/^the restore failed: /);
      // Either the SHA-256 check or age's own authentication catches it first; both name the object.
      expect(run.report.failures[0]).toMatch(new RegExp(`s3://${s3.bucket}/${backupKey.replace(/\./g, '\\.')} (does not match its manifest|is damaged or truncated)`));
    } finally {
      await putObject(backupKey, original);
    }
  });

  test('fails with a wrong identity, saying the backup was encrypted to another key', async () => {
    const other = makeAgeKey();
    const run = await restoreTest([], other.identityFile);
    expect(run.code).toBe(1);
    expect(run.report.failures).toHaveLength(1);
    // The backup's roles are applied first, so age's refusal names that companion of the same backup.
    expect(run.report.failures[0]).toContain(`the identity does not open s3://${s3.bucket}/${backupKey.replace(/\.[a-z]+\.zst\.age$/, '')}`);
    expect(run.report.failures[0]).toContain('encrypted to another key');
    expect(run.stdout + run.stderr).not.toContain('AGE-SECRET-KEY-1');
  });
});
