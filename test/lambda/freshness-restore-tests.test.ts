/**
 * The freshness check and restore-tested sources that never reported, on moto's server with backups made by the
 * real agent from a real PostgreSQL database, the metrics read back from moto's CloudWatch. A restore-tested source without
 * a restore-test report counts its restore-test age from its oldest stored backup, so the overdue alarm (the
 * fleet's RestoreTestAgeSeconds over 8 days) fires for it even while another source has a fresh report. In a vault
 * (RESTORE_TESTS_SUBDIR=vault) only the vault's own tests' pointer, restore-tests/vault/latest.json, counts: a fresh
 * report replicated from the primary does not.
 */
import { CopyObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { DumpFormat, LatestPointer, ReportsCopy, backupKey, manifestKeyFor, parseBackupKey, restoreTestLatestKey } from '../../lib/contract';
import { FreshnessSource, checkFreshness, handler } from '../../lambda/freshness-check';
import { RESTORE_TEST_OVERDUE } from '../../lib/restore-testing/restore-testing';
import { AgeKey, S3Emulator, createPgFixture, makeAgeKey, uniqueName } from '../support';
import { backUp, handlerEnv, monitorBucket, monitorClients, publishedMetrics, monitorTestHooks, topicArn, withEnv } from './monitor-fixtures';

const PREFIX = 'backups/';
const DAY = 86_400;
const INTERVAL = 900;
const OVERDUE = RESTORE_TEST_OVERDUE.toSeconds();
const database = uniqueName('rt_overdue');
let s3: S3Emulator;
let key: AgeKey;
const latest: Record<string, LatestPointer> = {};
/** When the oldest stored backup of never-pg started: three days before its newest. */
let neverOldest: number;

const seconds = (iso: string) => Date.parse(iso) / 1000;
const at = (epochSeconds: number) => new Date(epochSeconds * 1000);

function run(sources: FreshnessSource[], now: number, restoreTestReports?: ReportsCopy) {
  const counting = monitorClients(s3, PREFIX);
  return checkFreshness({ sources }, counting.clients, { now: at(now), intervalSeconds: INTERVAL, restoreTestReports })
    .then((report) => ({ report, requests: counting.requests }));
}

/** What the overdue alarm watches: the fleet-wide RestoreTestAgeSeconds (no dimensions), if published. */
async function fleetRestoreTestAge(): Promise<number | undefined> {
  return (await publishedMetrics()).find((m) => m.MetricName === 'RestoreTestAgeSeconds' && m.Dimensions === undefined)?.Value;
}

async function perSourceRestoreTestAges(): Promise<Record<string, number | undefined>> {
  return Object.fromEntries((await publishedMetrics()).filter((m) => m.MetricName === 'RestoreTestAgeSeconds' && m.Dimensions)
    .map((m) => [m.Dimensions![0].Value, m.Value]));
}

beforeAll(async () => {
  s3 = await monitorBucket();
  key = makeAgeKey();
  await createPgFixture(database, { customers: 50 });
  for (const source of ['never-pg', 'reported-pg', 'untested-pg']) latest[source] = await backUp(s3, key, source, database, PREFIX);
  // never-pg has history: an older backup (a copy of the real one, under the key of a backup three days earlier).
  const newest = latest['never-pg'];
  neverOldest = parseBackupKey(newest.key)!.startedAt.getTime() / 1000 - 3 * DAY;
  const older = backupKey(PREFIX, 'never-pg', at(neverOldest), DumpFormat.PG_CUSTOM);
  await s3.client.send(new CopyObjectCommand({ Bucket: s3.bucket, Key: older, CopySource: `${s3.bucket}/${newest.key}` }));
  await s3.client.send(new CopyObjectCommand({ Bucket: s3.bucket, Key: manifestKeyFor(older), CopySource: `${s3.bucket}/${manifestKeyFor(newest.key)}` }));
});

monitorTestHooks(database, () => s3);

/**
 * A restore-test report of the source that just finished, as the restore-test command writes it; returns when S3
 * stored it (its LastModified, in epoch seconds), where the check counts its restore-test age from.
 */
async function reportRestoreTest(source: string, reports?: ReportsCopy, finishedAt = new Date()): Promise<number> {
  const reportKey = restoreTestLatestKey(PREFIX, source, reports);
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: reportKey,
    Body: JSON.stringify({ source, finishedAt: finishedAt.toISOString(), success: true }) }));
  const head = await s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: reportKey }));
  return head.LastModified!.getTime() / 1000;
}

describe('given a restore-tested source that never reported and one with a fresh report', () => {
  const sources: FreshnessSource[] = [
    { source: 'never-pg', maxAgeSeconds: 30 * DAY, restoreTested: true },
    { source: 'reported-pg', maxAgeSeconds: 30 * DAY, restoreTested: true },
    { source: 'untested-pg', maxAgeSeconds: 30 * DAY },
  ];

  test('when its oldest backup is older than the overdue window, then its restore-test age is over 8 days and so is the fleet signal the alarm watches', async () => {
    // Six days after never-pg's newest backup: its latest backup alone would look young, its oldest is nine days old.
    const now = seconds(latest['never-pg'].startedAt) + 6 * DAY;
    const reportedAge = Math.round(now - await reportRestoreTest('reported-pg'));
    const { report } = await run(sources, now);

    const never = report.statuses.find((s) => s.source === 'never-pg')!;
    expect(never).toMatchObject({ neverRestoreTested: true, restoreTestAgeSeconds: Math.round(now - neverOldest) });
    expect(never.problem).toBeUndefined();
    expect(report.statuses.find((s) => s.source === 'reported-pg')).toMatchObject({ restoreTestAgeSeconds: reportedAge });
    expect(report.statuses.find((s) => s.source === 'reported-pg')!.neverRestoreTested).toBeUndefined();

    expect(await perSourceRestoreTestAges()).toEqual({ 'never-pg': Math.round(now - neverOldest), 'reported-pg': reportedAge });
    // The overdue alarm's condition: the fleet's worst restore-test age is over the window.
    expect(await fleetRestoreTestAge()).toBe(Math.round(now - neverOldest));
    expect((await fleetRestoreTestAge())!).toBeGreaterThan(OVERDUE);
    expect((await publishedMetrics()).find((m) => m.MetricName === 'SourcesNotChecked')!.Value).toBe(0);
  });

  test('when its oldest backup is younger than the overdue window, then it is within its grace period and the alarm condition is false', async () => {
    const now = neverOldest + 5 * DAY;
    await reportRestoreTest('reported-pg');
    const { report } = await run(sources, now);
    expect(report.statuses.find((s) => s.source === 'never-pg')).toMatchObject({ neverRestoreTested: true, restoreTestAgeSeconds: 5 * DAY });
    expect(await fleetRestoreTestAge()).toBe(5 * DAY);
    expect((await fleetRestoreTestAge())!).toBeLessThanOrEqual(OVERDUE);
  });

  test('when every tested source has a fresh report, then the alarm condition is false however old the backups are', async () => {
    // Two days after S3 stored the report: its age counts from there, whatever finishedAt it states.
    const now = await reportRestoreTest('reported-pg') + 2 * DAY;
    const { report } = await run(sources.filter((s) => s.source !== 'never-pg'), now);
    expect(report.statuses.map((s) => [s.source, s.restoreTestAgeSeconds, s.neverRestoreTested])).toEqual([
      ['reported-pg', 2 * DAY, undefined], ['untested-pg', undefined, undefined],
    ]);
    expect(await fleetRestoreTestAge()).toBe(2 * DAY);
    expect((await fleetRestoreTestAge())!).toBeLessThanOrEqual(OVERDUE);
  });

  test('a source that is not restore-tested and has no report publishes no restore-test age, as before', async () => {
    const now = seconds(latest['untested-pg'].startedAt) + 20 * DAY;
    const { report } = await run([{ source: 'untested-pg', maxAgeSeconds: 30 * DAY }], now);
    expect(report.statuses[0].restoreTestAgeSeconds).toBeUndefined();
    expect(await fleetRestoreTestAge()).toBeUndefined();
  });

  test('a tested source without a report costs one more request, a LIST of one key: still constant per source', async () => {
    const { requests } = await run([sources[0]], seconds(latest['never-pg'].startedAt) + 60);
    expect(requests).toEqual(['GetObjectCommand', 'HeadObjectCommand', 'GetObjectCommand', 'ListObjectsV2Command']);
  });
});

describe('given a vault, whose own restore tests report under restore-tests/vault/', () => {
  const sources: FreshnessSource[] = [
    { source: 'never-pg', maxAgeSeconds: 30 * DAY, restoreTested: true },
    { source: 'reported-pg', maxAgeSeconds: 30 * DAY, restoreTested: true },
  ];

  test('a fresh report replicated from the primary does not count: the source without a vault report is overdue, and the alarm condition is true', async () => {
    const now = seconds(latest['never-pg'].startedAt) + 6 * DAY;
    // What replication brings: the primary's weekly reports, fresh, at restore-tests/latest.json.
    await reportRestoreTest('never-pg');
    await reportRestoreTest('reported-pg');
    const vaultAge = Math.round(now - await reportRestoreTest('reported-pg', ReportsCopy.VAULT));

    const { report, requests } = await run(sources, now, ReportsCopy.VAULT);

    expect(report.statuses.find((s) => s.source === 'never-pg')).toMatchObject({ neverRestoreTested: true, restoreTestAgeSeconds: Math.round(now - neverOldest) });
    expect(report.statuses.find((s) => s.source === 'reported-pg')).toMatchObject({ restoreTestAgeSeconds: vaultAge });
    expect(report.statuses.find((s) => s.source === 'reported-pg')!.neverRestoreTested).toBeUndefined();
    expect(await perSourceRestoreTestAges()).toEqual({ 'never-pg': Math.round(now - neverOldest), 'reported-pg': vaultAge });
    expect((await fleetRestoreTestAge())!).toBeGreaterThan(OVERDUE);
    // Still constant per source: the vault's pointer instead of the top-level one, and the LIST for the untested.
    expect(requests.filter((r) => r === 'ListObjectsV2Command')).toHaveLength(1);
  });

  test('a vault pointer stating a time after S3 stored it is named by its own key', async () => {
    await reportRestoreTest('reported-pg', ReportsCopy.VAULT, new Date('2099-01-01T00:00:00Z'));
    const { report } = await run([sources[1]], Date.now() / 1000);
    // Without the vault's setting, the top-level report counts, and it is not forged.
    expect(report.statuses[0].forged).toBeUndefined();
    const vault = await run([sources[1]], Date.now() / 1000, ReportsCopy.VAULT);
    expect(vault.report.statuses[0].forged).toEqual([expect.stringContaining('restore-tests/vault/latest.json')]);
  });

  test('the Lambda entry point reads RESTORE_TESTS_SUBDIR, as BackupMonitoring sets it for a vault', async () => {
    await reportRestoreTest('untested-pg');
    const env = handlerEnv({ BUCKET_NAME: s3.bucket, KEY_PREFIX: PREFIX, TOPIC_ARN: topicArn(), CHECK_INTERVAL_SECONDS: '900', RESTORE_TESTS_SUBDIR: 'vault' });
    const report = await withEnv(env, () => handler({ sources: [{ source: 'untested-pg', maxAgeSeconds: 30 * DAY, restoreTested: true }] }));
    expect(report.statuses[0]).toMatchObject({ neverRestoreTested: true });

    await expect(withEnv({ ...env, RESTORE_TESTS_SUBDIR: 'dr' }, () => handler({ sources: [] })))
      .rejects.toThrow("RESTORE_TESTS_SUBDIR: 'dr' names no restore-test reports: use 'vault'");
  });
});
