/**
 * `restorable status` against the S3 emulator, after real backups and real restore tests by the agent: a
 * tested source, one whose restore test failed (the wrong identity), a never-tested one, one whose report was
 * written per the RestoreTestPointer contract (stating a test that finished two days ago and took 754 s: its age is
 * from when S3 stored the report, not from what it states), one without any backup and one with an unreadable pointer. Also `restorable runbook` without a runbook.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { RestoreTestPointer, latestKey, restoreTestLatestKey, runbookKey } from '../../lib/contract';
import {
  AgeKey, PG, S3Emulator, agentEnv, createPgDatabase, createPgFixture, dropPgDatabase, makeAgeKey, pgQuery, readerRole, requireAgentBundle,
  runAgent, startS3rver, uniqueName,
} from '../support';

const PREFIX = 'prod/';
const database = uniqueName('status_src');
const HOUR = 3600 * 1000;

let s3: S3Emulator;
const scratches: string[] = [];
/** The measured duration of the passing restore test, from its report. */
let measuredSeconds: number;
/** What archive-db's restore-test report states. */
const archiveFinishedAt = new Date(Date.now() - 2 * 24 * HOUR).toISOString();

const put = (key: string, body: string) => s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: body }));

async function backup(source: string, recipient: string): Promise<void> {
  const run = await runAgent(['backup', '--source', source, '--engine', 'postgres', '--bucket', s3.bucket, '--prefix', PREFIX,
    '--recipient', recipient, '--host', PG.host, '--port', String(PG.port), '--user', PG.user, '--database', database, '--json'],
  agentEnv({ ...s3.env, PGPASSWORD: PG.password }));
  expect({ code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({ code: 0, stderr: '' });
}

/** A real restore test into a fresh scratch database; returns its report. */
async function runRestoreTest(source: string, identity: AgeKey): Promise<{ success: boolean; durationSeconds?: number }> {
  const scratch = uniqueName('status_scratch');
  scratches.push(scratch);
  await createPgDatabase(scratch);
  const run = await runAgent(['restore-test', '--source', source, '--bucket', s3.bucket, '--prefix', PREFIX, '--identity-file', identity.identityFile,
    '--host', PG.host, '--port', String(PG.port), '--user', PG.user, '--database', scratch, '--json'], agentEnv({ ...s3.env, PGPASSWORD: PG.password }));
  expect(run.stdout).not.toBe('');
  return JSON.parse(run.stdout);
}

async function writeRestoreTest(source: string, pointer: Omit<RestoreTestPointer, 'source'>): Promise<void> {
  await put(restoreTestLatestKey(PREFIX, source), JSON.stringify({ source, ...pointer }));
}

const status = (...extra: string[]) => runAgent(['status', '--bucket', s3.bucket, '--prefix', PREFIX, ...extra], agentEnv(s3.env));

beforeAll(async () => {
  requireAgentBundle();
  s3 = await startS3rver('status-backups');
  await createPgFixture(database, { customers: 50 });
  const key = makeAgeKey();
  for (const source of ['orders-db', 'billing-db', 'crm-db', 'archive-db']) await backup(source, key.recipient);
  const passed = await runRestoreTest('orders-db', key);
  expect(passed.success).toBe(true);
  measuredSeconds = passed.durationSeconds!;
  expect((await runRestoreTest('crm-db', makeAgeKey())).success).toBe(false);
  await writeRestoreTest('archive-db', { finishedAt: archiveFinishedAt, success: true, durationSeconds: 754 });
  await put(runbookKey(PREFIX, 'new-db'), '# a source whose first backup has not run yet\n');
  await put(latestKey(PREFIX, 'broken-db'), 'not json');
  await put(`${PREFIX}Not A Source/readme.txt`, 'ignored: not a source name');
});

afterAll(async () => {
  for (const scratch of scratches) await dropPgDatabase(scratch);
  await dropPgDatabase(database);
  await pgQuery('postgres', `DROP ROLE IF EXISTS ${readerRole(database)}`);
  await s3?.stop();
});

test('--json: per source the data at risk (RPO), the last restore test and its duration (RTO), and a verdict', async () => {
  const run = await status('--json');
  // The report is printed either way; the source whose pointer cannot be read makes the exit code 1, once, by name.
  expect({ code: run.code, stderr: run.stderr }).toEqual({
    code: 1, stderr: expect.stringMatching(/^restorable status: the status of 1 of 6 sources could not be read:\n {2}- broken-db: latest pointer \S+ is not valid JSON/),
  });
  const report = JSON.parse(run.stdout);

  expect(report.sources.map((s: { source: string; readiness: string }) => [s.source, s.readiness])).toEqual([
    ['archive-db', 'ready'], ['billing-db', 'never-tested'], ['broken-db', 'unknown'], ['crm-db', 'test-failed'], ['new-db', 'no-backup'],
    ['orders-db', 'ready'],
  ]);
  const bySource = Object.fromEntries(report.sources.map((s: { source: string }) => [s.source, s]));
  const orders = bySource['orders-db'];
  expect(orders.newestBackup.key).toMatch(/^prod\/orders-db\/\d{4}\/\d{2}\/\d{2}\/orders-db_.*\.pgdump\.zst\.age$/);
  expect(orders.newestBackup.ageSeconds).toBeLessThan(300);
  expect(orders.lastRestoreTest).toMatchObject({ success: true, durationSeconds: measuredSeconds });
  expect(orders.summary).toMatch(/^orders-db: back online in about \d+ seconds?, with data from \d+ (second|minute)s? ago \(restore test passed \d+ seconds? ago, \S+\)\.$/);
  expect(bySource['crm-db'].lastRestoreTest).toMatchObject({ success: false, reason: expect.stringContaining('the identity does not open') });
  const archive = bySource['archive-db'];
  expect(archive.lastRestoreTest).toMatchObject({ success: true, durationSeconds: 754 });
  // Its age counts from the report's LastModified, S3's time: the stated finishedAt, two days back, is only checked against it.
  expect(archive.lastRestoreTest.finishedAt).toBe(archiveFinishedAt);
  expect(archive.lastRestoreTest.ageSeconds).toBeLessThan(300);
  expect(archive.lastRestoreTest.ageSeconds).toBe(Math.round((Date.parse(report.checkedAt) - Date.parse(archive.lastRestoreTest.storedAt)) / 1000));
  expect(archive.summary).toMatch(/^archive-db: back online in about 13 minutes, with data from \d+ (second|minute)s? ago \(restore test passed \d+ (second|minute)s? ago, \S+\)\.$/);
  const broken = report.sources.find((s: { source: string }) => s.source === 'broken-db');
  expect(broken.problem).toContain('latest pointer s3://status-backups/prod/broken-db/latest.json is not valid JSON');
});

test('text: a table, then a plain sentence per source that says when it was never tested or its test failed', async () => {
  const run = await status();
  expect(run.code).toBe(1);
  const lines = run.stdout.trimEnd().split('\n');

  expect(lines[0]).toMatch(/^SOURCE\s+NEWEST BACKUP \(RPO\)\s+LAST RESTORE TEST\s+RESTORE TOOK \(RTO\)\s+READINESS$/);
  expect(lines.find((l) => l.startsWith('archive-db '))).toMatch(/archive-db\s+\d+ (second|minute)s? ago\s+passed \d+ (second|minute)s? ago\s+13 minutes\s+ready/);
  expect(lines).toContainEqual(expect.stringMatching(
    /^billing-db: NEVER RESTORE-TESTED: how long a restore takes, and whether it works, is unknown; the newest backup holds data from \d+ (second|minute)s? ago\.$/));
  expect(lines).toContainEqual(expect.stringMatching(
    /^crm-db: LAST RESTORE TEST FAILED \(\d+ seconds? ago, \S+\): .*the identity does not open .*; a restore may not work\./));
  expect(lines).toContain('new-db: NO GOOD BACKUP: there is nothing to restore; check its backup job.');
  expect(lines.some((l) => l.includes('Not A Source'))).toBe(false);
});

test('an empty prefix says so; a missing bucket is a clear error without a stack trace', async () => {
  const empty = await runAgent(['status', '--bucket', s3.bucket, '--prefix', 'staging/'], agentEnv(s3.env));
  expect({ code: empty.code, stdout: empty.stdout.trim() }).toEqual({ code: 0, stdout: 'no sources under s3://status-backups/staging/' });

  const missing = await runAgent(['status', '--bucket', 'no-such-bucket'], agentEnv(s3.env));
  expect(missing.code).toBe(1);
  expect(missing.stderr).toContain('restorable status: S3 ListObjectsV2 s3://no-such-bucket/ failed: NoSuchBucket');
  expect(missing.stderr).not.toMatch(/\n\s+at /);
});

test('restorable runbook says where it looked when there is no runbook', async () => {
  const run = await runAgent(['runbook', '--source', 'orders-db', '--bucket', s3.bucket, '--prefix', PREFIX], agentEnv(s3.env));
  expect(run.code).toBe(1);
  expect(run.stderr).toContain(`no runbook at s3://${s3.bucket}/prod/orders-db/RUNBOOK.md: it is written at deploy time by the DisasterRecoveryRunbook construct`);
  const present = await runAgent(['runbook', '--source', 'new-db', '--bucket', s3.bucket, '--prefix', PREFIX], agentEnv(s3.env));
  expect({ code: present.code, stdout: present.stdout }).toEqual({ code: 0, stdout: '# a source whose first backup has not run yet\n' });
});
