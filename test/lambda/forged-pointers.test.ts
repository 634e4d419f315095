/**
 * Time that cannot be forged, on moto's server (which sets every object's LastModified itself), with backups made
 * by the real agent from a real PostgreSQL database. A task that can write the store can state any time it likes
 * in latest.json or a restore-test report; the freshness check counts ages from the LastModified of the backup
 * object and of the report, calls a stated time that S3 contradicts a forged or skewed pointer (metric read back
 * from moto's CloudWatch, message from a queue subscribed to the test's topic), and the agent's next honest
 * backup moves latest.json, and its legal hold, past a pointer forged into 2099.
 */
import { GetObjectLegalHoldCommand, HeadObjectCommand, ObjectLockRetentionMode, PutObjectCommand } from '@aws-sdk/client-s3';
import { LatestPointer, Metrics, POINTER_CLOCK_SKEW_SECONDS, manifestKeyFor } from '../../lib/contract';
import { FreshnessSource, SourceState, checkFreshness } from '../../lambda/freshness-check';
import { AgeKey, PG, S3Emulator, agentEnv, createPgFixture, makeAgeKey, motoBucket, runAgent, uniqueName } from '../support';
import { backUp, monitorBucket, monitorClients, monitorTestHooks, publishedMessages, publishedMetrics } from './monitor-fixtures';

const PREFIX = 'backups/';
const DAY = 86_400;
const INTERVAL = 900;
const FORGED_TIME = '2099-01-01T00:00:00.000Z';
const database = uniqueName('forged_src');
let s3: S3Emulator;
let key: AgeKey;
/** The first and second honest backups of each source. */
const older: Record<string, LatestPointer> = {};
const newer: Record<string, LatestPointer> = {};

const run = (sources: FreshnessSource[], now = new Date()) =>
  checkFreshness({ sources }, monitorClients(s3, PREFIX).clients, { now, intervalSeconds: INTERVAL });

async function lastModified(objectKey: string): Promise<Date> {
  return (await s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: objectKey }))).LastModified!;
}

/** latest.json as a compromised task would write it: the older backup's key, stated to have run in 2099. */
async function forgeLatest(source: string): Promise<void> {
  const forged: LatestPointer = { ...newer[source], key: older[source].key, manifestKey: manifestKeyFor(older[source].key), startedAt: FORGED_TIME, finishedAt: FORGED_TIME };
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `${PREFIX}${source}/latest.json`, Body: JSON.stringify(forged) }));
}

async function writeReport(source: string, finishedAt: string): Promise<Date> {
  const reportKey = `${PREFIX}${source}/restore-tests/latest.json`;
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: reportKey, Body: JSON.stringify({ source, finishedAt, success: true }) }));
  return lastModified(reportKey);
}

const ageFrom = (stored: Date, now: Date) => Math.round((now.getTime() - stored.getTime()) / 1000);

beforeAll(async () => {
  s3 = await monitorBucket();
  key = makeAgeKey();
  await createPgFixture(database, { customers: 50 });
  for (const source of ['forged-pg', 'wedged-pg']) {
    older[source] = await backUp(s3, key, source, database, PREFIX);
    newer[source] = await backUp(s3, key, source, database, PREFIX);
  }
  newer['report-pg'] = await backUp(s3, key, 'report-pg', database, PREFIX);
});

monitorTestHooks(database, () => s3);

describe('a forged or skewed pointer', () => {
  test('given a latest.json stating 2099 and naming an old backup, then it is forged, not fresh: counted, alarmed on, named, and aged by S3', async () => {
    await forgeLatest('forged-pg');
    const now = new Date();
    const report = await run([{ source: 'forged-pg', maxAgeSeconds: DAY }, { source: 'report-pg', maxAgeSeconds: DAY }], now);

    const [forged, honest] = report.statuses;
    expect(forged.state).toBe(SourceState.FORGED);
    expect(forged.key).toBe(older['forged-pg'].key);
    // The age is the LastModified of the backup the pointer names, not 0 (2099 clamped) nor the pointer's own.
    const age = ageFrom(await lastModified(older['forged-pg'].key), now);
    expect(forged.ageSeconds).toBe(age);
    expect(forged.forged).toEqual([
      `latest.json states startedAt ${FORGED_TIME}, in the future (now is ${now.toISOString()})`,
      `latest.json states finishedAt ${FORGED_TIME}, in the future (now is ${now.toISOString()})`,
    ]);
    expect(honest).toMatchObject({ source: 'report-pg', state: SourceState.FRESH });
    expect(honest.forged).toBeUndefined();

    const metrics = await publishedMetrics();
    expect(metrics.find((m) => m.MetricName === Metrics.FORGED_POINTERS)).toMatchObject({ MetricName: 'ForgedOrSkewedPointers', Value: 1, Unit: 'Count' });
    expect(metrics.find((m) => m.MetricName === 'BackupAgeSeconds' && m.Dimensions?.[0].Value === 'forged-pg')!.Value).toBe(age);
    expect(metrics.find((m) => m.MetricName === 'SourcesNotChecked')!.Value).toBe(0);

    // Written within the last interval by S3's clock: news, so the topic hears of it at once.
    const [message, ...more] = await publishedMessages();
    expect(more).toHaveLength(0);
    expect(message.Subject).toContain('forged-pg');
    expect(message.Subject).not.toContain('report-pg');
    expect(message.Message).toContain(`- forged-pg: forged or skewed pointer (by S3's time the newest backup is `);
    expect(message.Message).toContain(`latest.json states startedAt ${FORGED_TIME}, in the future`);
  });

  test('given a restore-test report stating a 2099 finishedAt and success, then the report is forged and its age is since S3 stored it', async () => {
    const now = new Date(Date.now() + 60_000);
    const storedAt = await writeReport('report-pg', FORGED_TIME);
    const report = await run([{ source: 'report-pg', maxAgeSeconds: DAY, restoreTested: true }], now);

    const [status] = report.statuses;
    // The backup itself is fresh; the report is what was forged.
    expect(status.state).toBe(SourceState.FRESH);
    expect(status.restoreTestAgeSeconds).toBe(ageFrom(storedAt, now));
    expect(status.forged).toEqual([`restore-tests/latest.json states finishedAt ${FORGED_TIME}, in the future (now is ${now.toISOString()})`]);

    const metrics = await publishedMetrics();
    expect(metrics.find((m) => m.MetricName === Metrics.FORGED_POINTERS)!.Value).toBe(1);
    expect(metrics.find((m) => m.MetricName === 'RestoreTestAgeSeconds' && m.Dimensions === undefined)!.Value).toBe(ageFrom(storedAt, now));
    const [message] = await publishedMessages();
    expect(message.Subject).toContain('report-pg');
    expect(message.Message).toContain('- report-pg: fresh (');
    expect(message.Message).toContain(`; also forged or skewed pointer (by S3's time the newest backup is `);
    expect(message.Message).toContain(`restore-tests/latest.json states finishedAt ${FORGED_TIME}, in the future`);
  });

  test(`given a report stating a finish more than ${POINTER_CLOCK_SKEW_SECONDS} s after S3 stored it, then it is skewed though not in the future`, async () => {
    const finishedAt = new Date(Date.now() + 2 * 3600_000).toISOString();
    const storedAt = await writeReport('report-pg', finishedAt);
    // A day later, so the stated finish is in the past; but it is still later than S3 stored the report.
    const now = new Date(storedAt.getTime() + DAY * 1000);
    const report = await run([{ source: 'report-pg', maxAgeSeconds: 2 * DAY }], now);
    expect(report.statuses[0].forged).toEqual([
      `restore-tests/latest.json states finishedAt ${finishedAt}, after S3 stored the report itself (LastModified ${storedAt.toISOString()})`,
    ]);
    expect(report.statuses[0].restoreTestAgeSeconds).toBe(DAY);
    expect((await publishedMetrics()).find((m) => m.MetricName === Metrics.FORGED_POINTERS)!.Value).toBe(1);
  });

  test('given a report stating a finish within the skew of when S3 stored it, then it is believed: not forged', async () => {
    const storedAt = await writeReport('report-pg', new Date(Date.now() + 60_000).toISOString());
    const now = new Date(storedAt.getTime() + 3600_000);
    const report = await run([{ source: 'report-pg', maxAgeSeconds: DAY }], now);
    expect(report.statuses[0].forged).toBeUndefined();
    expect(report.statuses[0].restoreTestAgeSeconds).toBe(3600);
    expect((await publishedMetrics()).find((m) => m.MetricName === Metrics.FORGED_POINTERS)!.Value).toBe(0);
    expect(await publishedMessages()).toHaveLength(0);
  });

  test('given a latest.json forged into 2099, then the next honest backup still moves latest.json forward, and the check calls it fresh again', async () => {
    await forgeLatest('wedged-pg');
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const backup = await runAgent(['backup', '--source', 'wedged-pg', '--engine', 'postgres', '--bucket', s3.bucket, '--prefix', PREFIX,
      '--recipient', key.recipient, '--host', PG.host, '--port', String(PG.port), '--user', PG.user, '--database', database, '--json'],
    agentEnv({ ...s3.env, PGPASSWORD: PG.password }));
    expect(backup.code).toBe(0);
    const result = JSON.parse(backup.stdout) as { key: string; latestMoved: boolean };
    expect(result.latestMoved).toBe(true);

    const pointer = JSON.parse((await s3.getText(`${PREFIX}wedged-pg/latest.json`))!) as LatestPointer;
    expect(pointer.key).toBe(result.key);
    expect(pointer.startedAt).not.toBe(FORGED_TIME);
    expect(pointer.key).not.toBe(newer['wedged-pg'].key);

    const now = new Date();
    const report = await run([{ source: 'wedged-pg', maxAgeSeconds: DAY }], now);
    expect(report.statuses[0]).toMatchObject({ state: SourceState.FRESH, key: result.key, ageSeconds: ageFrom(await lastModified(result.key), now) });
    expect(report.statuses[0].forged).toBeUndefined();
    expect((await publishedMetrics()).find((m) => m.MetricName === Metrics.FORGED_POINTERS)!.Value).toBe(0);
    expect(await publishedMessages()).toHaveLength(0);
  });
});

describe('the legal hold moves past a forged pointer too', () => {
  test('given a held latest backup and a pointer forged into 2099, then an honest backup with --legal-hold takes the hold', async () => {
    // A bucket of its own with Object Lock, as BackupStore makes it.
    const locked = await motoBucket({ objectLock: { mode: ObjectLockRetentionMode.GOVERNANCE, days: 1 } });
    const agent = (extra: string[]) => runAgent(['backup', '--source', 'held-pg', '--engine', 'postgres', '--bucket', locked.bucket,
      '--recipient', key.recipient, '--host', PG.host, '--port', String(PG.port), '--user', PG.user, '--database', database, '--json', ...extra],
    agentEnv({ ...locked.env, PGPASSWORD: PG.password }));
    const first = JSON.parse((await agent(['--legal-hold'])).stdout) as { key: string };
    const pointer = JSON.parse((await locked.getText('held-pg/latest.json'))!) as LatestPointer;
    await locked.client.send(new PutObjectCommand({ Bucket: locked.bucket, Key: 'held-pg/latest.json',
      Body: JSON.stringify({ ...pointer, startedAt: FORGED_TIME, finishedAt: FORGED_TIME }) }));
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const run2 = await agent(['--legal-hold']);
    expect(run2.code).toBe(0);
    const second = JSON.parse(run2.stdout) as { key: string; latestMoved: boolean };
    expect(second.latestMoved).toBe(true);
    const hold = async (objectKey: string) =>
      (await locked.client.send(new GetObjectLegalHoldCommand({ Bucket: locked.bucket, Key: objectKey }))).LegalHold?.Status;
    expect(await hold(second.key)).toBe('ON');
    // The agent never releases a hold: the first backup keeps its own until the hold keeper judges it.
    expect(await hold(first.key)).toBe('ON');
  });
});
