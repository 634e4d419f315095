/**
 * `restorable restore-test --reports vault`: a vault's own restore test stores its report under
 * restore-tests/vault/ and moves restore-tests/vault/latest.json, leaving restore-tests/latest.json (the primary's,
 * which replication brings) as it was; `status --reports vault` reads the vault's pointer. Anything but `vault` is
 * refused before the test starts, and --help names the option.
 *
 * Real: the bundled agent backs up and restore-tests a PostgreSQL database, against s3rver.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { ReportsCopy, restoreTestLatestKey, restoreTestsPrefix } from '../../lib/contract';
import { AgeKey, PG, S3Emulator, agentEnv, createPgDatabase, dropPgDatabase, makeAgeKey, pgQuery, runAgent, startS3rver, uniqueName } from '../support';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const source = 'rt-vault';
const database = uniqueName('rtv_src');
const scratchDb = uniqueName('rtv_scratch');
/** What replication brought from the primary: its own restore test's pointer, a day old. */
const primaryPointer = JSON.stringify({ source, success: true, finishedAt: new Date(Date.now() - 86_400_000).toISOString(), durationSeconds: 7 });
let s3: S3Emulator;
let key: AgeKey;

const env = () => agentEnv({ ...s3.env, PGPASSWORD: PG.password });
const restoreTestArgs = (extra: string[]) => ['restore-test', '--source', source, '--bucket', s3.bucket, '--identity-file', key.identityFile,
  '--host', PG.host, '--port', String(PG.port), '--user', PG.user, '--database', scratchDb, '--json', ...extra];

beforeAll(async () => {
  s3 = await startS3rver();
  key = makeAgeKey();
  await createPgDatabase(database);
  await createPgDatabase(scratchDb);
  await pgQuery(database, 'CREATE TABLE orders (id int PRIMARY KEY, total numeric); INSERT INTO orders SELECT g, g * 2 FROM generate_series(1, 40) g;');
  const backup = await runAgent(['backup', '--source', source, '--engine', 'postgres', '--bucket', s3.bucket, '--recipient', key.recipient,
    '--host', PG.host, '--port', String(PG.port), '--user', PG.user, '--database', database, '--json'], env());
  if (backup.code !== 0) throw new Error(`the backup these tests restore failed: ${backup.stderr}`);
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: restoreTestLatestKey(undefined, source), Body: primaryPointer }));
});

afterAll(async () => {
  for (const db of [database, scratchDb]) await dropPgDatabase(db);
  await s3?.stop();
});

test('the report lands under restore-tests/vault/ and moves restore-tests/vault/latest.json; the top-level pointer is untouched', async () => {
  const run = await runAgent(restoreTestArgs(['--reports', 'vault']), env());

  expect(run.stderr).not.toContain('unexpected error');
  expect(run.code).toBe(0);
  const report = JSON.parse(run.stdout);
  expect(report).toMatchObject({ source, success: true });
  expect(report.reportKey).toMatch(new RegExp(`^${restoreTestsPrefix(undefined, source, ReportsCopy.VAULT)}${source}_[0-9_-]+Z\\.json$`));
  expect(report.reportKey.startsWith(`${source}/restore-tests/vault/`)).toBe(true);
  expect(JSON.parse((await s3.getText(report.reportKey))!)).toEqual(report);
  expect(JSON.parse((await s3.getText(`${source}/restore-tests/vault/latest.json`))!)).toEqual(report);
  expect(await s3.getText(restoreTestLatestKey(undefined, source))).toBe(primaryPointer);

  // status reads the primary's pointer by default, and the vault's own with --reports vault.
  const statusOf = async (extra: string[]) => {
    const status = await runAgent(['status', '--bucket', s3.bucket, '--json', ...extra], env());
    expect(status.stderr).not.toContain('unexpected error');
    return JSON.parse(status.stdout).sources.find((s: { source: string }) => s.source === source);
  };
  expect((await statusOf([])).lastRestoreTest).toMatchObject({ finishedAt: JSON.parse(primaryPointer).finishedAt, durationSeconds: 7 });
  expect((await statusOf(['--reports', 'vault'])).lastRestoreTest).toMatchObject({ finishedAt: report.finishedAt, success: true });
});

test.each(['dr', 'Vault', ''])('--reports %p is refused before the test starts, saying what it takes', async (value) => {
  const before = await s3.keys(`${source}/restore-tests/`);
  const run = await runAgent(restoreTestArgs(['--reports', value]), env());

  expect(run.code).toBe(2);
  expect(run.stderr).toContain(`restorable restore-test: --reports: '${value}' names no restore-test reports: use 'vault'`);
  expect(await s3.keys(`${source}/restore-tests/`)).toEqual(before);
});

test('--help names the option for restore-test and status', async () => {
  for (const command of ['restore-test', 'status']) {
    const run = await runAgent([command, '--help'], env());
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/--reports vault\s+the reports of a vault's own restore tests, under restore-tests\/vault\//);
  }
});
