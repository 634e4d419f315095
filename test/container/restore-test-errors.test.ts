/**
 * `restorable restore-test` when the database itself refuses: the scratch user lacks SELECT on a restored table,
 * so counting its rows fails with PostgreSQL's own error. That is a failed test like any other: a report naming
 * the failure is printed and stored beside the backups, RestoreTestSuccess=0 is published (to CloudWatch on
 * moto's server, in the test's own account, and read back from it), and the exit code is non-zero, without a
 * stack trace. Also: a `minRows` check is counted by the server, so a check over millions of rows costs the
 * agent one number, not the rows.
 */
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { Manifest, restoreTestLatestKey } from '../../lib/contract';
import { parseCommandArgs } from '../../container/src/shared/args';
import { RESTORE_TEST_COMMAND, runRestoreTest } from '../../container/src/commands/restore-test';
import {
  AgeKey, PG, S3Emulator, agentEnv, createPgDatabase, dropPgDatabase, makeAgeKey, pgQuery, runAgent, startS3rver, uniqueName,
} from '../support';
import { motoAccount, storedMetrics } from '../support/moto-messaging';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const source = 'rt-errors';
const database = uniqueName('rte_src');
const limited = uniqueName('rte_limited');
const LIMITED_PASSWORD = 'limited-Secret-4711';
const scratches: string[] = [];
let s3: S3Emulator;
let key: AgeKey;

/** A new empty scratch database, owned by `owner`. */
async function scratch(owner = PG.user): Promise<string> {
  const name = uniqueName(`rte_scratch_${scratches.length}`);
  scratches.push(name);
  await createPgDatabase(name);
  await pgQuery('postgres', `ALTER DATABASE ${name} OWNER TO ${owner}`);
  return name;
}

function restoreTestArgs(user: string, db: string, extra: string[] = []): string[] {
  return ['restore-test', '--source', source, '--bucket', s3.bucket, '--identity-file', key.identityFile,
    '--host', PG.host, '--port', String(PG.port), '--user', user, '--database', db, '--json', ...extra];
}

beforeAll(async () => {
  s3 = await startS3rver();
  key = makeAgeKey();
  await pgQuery('postgres', `DROP ROLE IF EXISTS ${limited}; CREATE ROLE ${limited} LOGIN PASSWORD '${LIMITED_PASSWORD}'`);
  await createPgDatabase(database);
  // The restore user owns the tables but has revoked its own SELECT on one: the grants travel in the dump.
  await pgQuery(database, `CREATE TABLE ledger (id int PRIMARY KEY, amount numeric);
    INSERT INTO ledger SELECT g, g * 1.5 FROM generate_series(1, 500) g;
    CREATE TABLE vault (id int PRIMARY KEY, secret text);
    INSERT INTO vault SELECT g, md5(g::text) FROM generate_series(1, 20) g;
    ALTER TABLE ledger OWNER TO ${limited}; ALTER TABLE vault OWNER TO ${limited};
    REVOKE SELECT ON vault FROM ${limited};`);
  const backup = await runAgent(['backup', '--source', source, '--engine', 'postgres', '--bucket', s3.bucket, '--recipient', key.recipient,
    '--host', PG.host, '--port', String(PG.port), '--user', PG.user, '--database', database, '--json'], agentEnv({ ...s3.env, PGPASSWORD: PG.password }));
  if (backup.code !== 0) throw new Error(`the backup these tests restore failed: ${backup.stderr}`);
  // The scratch user cannot create roles: leave the roles companion out, as a backup without one would be.
  const { manifestKey } = JSON.parse(backup.stdout) as { manifestKey: string };
  const manifest = JSON.parse((await s3.getText(manifestKey))!) as Manifest;
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: manifestKey,
    Body: JSON.stringify({ ...manifest, companions: manifest.companions.filter((c) => c.kind !== 'globals') }) }));
});

afterAll(async () => {
  for (const db of [database, ...scratches]) await dropPgDatabase(db);
  await pgQuery('postgres', `DROP ROLE IF EXISTS ${limited}`);
  await s3?.stop();
});

test('the database\'s own error during validation fails the test with a stored report, not a stack trace', async () => {
  const db = await scratch(limited);
  const run = await runAgent(restoreTestArgs(limited, db), agentEnv({ ...s3.env, PGPASSWORD: LIMITED_PASSWORD }));

  expect(run.code).toBe(1);
  expect(run.stderr).not.toContain('unexpected error');
  expect(run.stderr).not.toMatch(/\n\s+at /);
  expect(run.stderr).not.toContain(LIMITED_PASSWORD);
  expect(run.stderr).toContain(`the restore test of ${source} failed`);
  expect(run.stderr).toContain('validating the restored database failed: permission denied for table vault');
  const report = JSON.parse(run.stdout);
  expect(report).toMatchObject({ source, success: false, failures: ['validating the restored database failed: permission denied for table vault'],
    reason: 'validating the restored database failed: permission denied for table vault' });
  expect(report.key).toMatch(new RegExp(`^${source}/`));
  // Stored where the freshness check reads it.
  expect(JSON.parse((await s3.getText(report.reportKey))!)).toEqual(report);
  expect(JSON.parse((await s3.getText(restoreTestLatestKey(undefined, source)))!)).toMatchObject({ success: false, reason: report.reason });
});

test('the same failure publishes RestoreTestSuccess = 0', async () => {
  const db = await scratch(limited);
  const account = await motoAccount();
  const saved = process.env.PGPASSWORD;
  process.env.PGPASSWORD = LIMITED_PASSWORD;
  try {
    const report = await runRestoreTest(parseCommandArgs(RESTORE_TEST_COMMAND, restoreTestArgs(limited, db, ['--publish-metrics']).slice(1)),
      { s3: s3.client, cloudwatch: () => new CloudWatchClient(account.config('eu-west-1')) });
    expect(report).toMatchObject({ success: false, failures: [expect.stringContaining('permission denied for table vault')] });
    expect(report.recordingProblems).toBeUndefined();
    const stored = await storedMetrics(account.config('eu-west-1'));
    expect(stored.filter((m) => m.MetricName === 'RestoreTestSuccess').map((m) => [m.Dimensions, m.Value])).toEqual([
      [[{ Name: 'Source', Value: source }], 0], [undefined, 0],
    ]);
    // One PutMetricData, one value per series.
    expect(stored.every((m) => m.SampleCount === 1)).toBe(true);
  } finally {
    if (saved === undefined) delete process.env.PGPASSWORD; else process.env.PGPASSWORD = saved;
  }
});

test('a minRows check is counted by the server: millions of rows, and the agent never holds them', async () => {
  const db = await scratch();
  const rows = 3_000_000;
  const checks = [
    { name: 'many rows', sql: `SELECT g, repeat('x', 40) AS pad FROM generate_series(1, ${rows}) g;`, minRows: rows },
    { name: 'too few rows', sql: 'SELECT id FROM ledger -- a trailing comment', minRows: 501 },
  ];
  // A heap far smaller than the rows would take if they were loaded.
  const run = await runAgent(restoreTestArgs(PG.user, db, ['--checks-json', JSON.stringify(checks)]),
    agentEnv({ ...s3.env, PGPASSWORD: PG.password, NODE_OPTIONS: '--max-old-space-size=96' }));
  expect(run.stderr).not.toContain('unexpected error');
  const report = JSON.parse(run.stdout);
  expect(report.checks).toEqual([
    { name: 'many rows', kind: 'minRows', expected: rows, actual: rows, passed: true, detail: `expected at least ${rows} rows, got ${rows}` },
    { name: 'too few rows', kind: 'minRows', expected: 501, actual: 500, passed: false, detail: 'expected at least 501 rows, got 500 (1 short)' },
  ]);
  expect(report.failures).toEqual(['check \'too few rows\': expected at least 501 rows, got 500 (1 short)']);
  expect(run.code).toBe(1);
});
