/**
 * The freshness check on moto's server, over backups made by the real agent from a real PostgreSQL database:
 * the backups in a bucket there, the metrics read back from its CloudWatch, the notifications from a queue
 * subscribed to the test's topic. Staleness is reached without waiting by handing the check a later `now`;
 * the ages it must report are computed from when S3 stored each backup (its LastModified, which moto sets), not
 * from the `startedAt` the agent wrote.
 */
import { CopyObjectCommand, DeleteObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { LatestPointer, METRIC_NAMESPACE, Metrics, manifestKeyFor, parseBackupKey, backupKey, DumpFormat } from '../../lib/contract';
import { FreshnessEvent, FreshnessSource, SourceState, checkFreshness, handler } from '../../lambda/freshness-check';
import { AgeKey, S3Emulator, createPgFixture, makeAgeKey, uniqueName } from '../support';
import {
  backUp, handlerEnv, monitorBucket, monitorClients, monitorTestHooks, publishedMessages, publishedMetrics, topicArn, withEnv,
} from './monitor-fixtures';

const PREFIX = 'backups/';
const HOUR = 3600;
const DAY = 86_400;
const INTERVAL = 900;
const database = uniqueName('fresh_src');
let s3: S3Emulator;
let key: AgeKey;
const latest: Record<string, LatestPointer> = {};
/** When S3 stored the backup each source's latest.json names (its LastModified, epoch seconds): where ages count from. */
const storedAt: Record<string, number> = {};

const seconds = (iso: string) => Date.parse(iso) / 1000;
const at = (epochSeconds: number) => new Date(epochSeconds * 1000);
/** Keeps a time out of the daily-digest window (the first interval after midnight UTC). */
const outsideDigest = (t: number) => (t % DAY < INTERVAL ? t + INTERVAL : t);
const run = (sources: FreshnessSource[], now: number, prefix = PREFIX) =>
  checkFreshness({ sources }, monitorClients(s3, prefix).clients, { now: at(now), intervalSeconds: INTERVAL });

beforeAll(async () => {
  s3 = await monitorBucket();
  key = makeAgeKey();
  await createPgFixture(database, { customers: 200 });
  for (let i = 0; i < 3; i++) latest['fresh-pg'] = await backUp(s3, key, 'fresh-pg', database, PREFIX);
  latest['stale-pg'] = await backUp(s3, key, 'stale-pg', database, PREFIX);
  latest['dangling-pg'] = await backUp(s3, key, 'dangling-pg', database, PREFIX);
  for (const source of ['fresh-pg', 'stale-pg']) storedAt[source] = await lastModified(latest[source].key);
  // The backup latest.json names is lost: the pointer dangles.
  await s3.client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: latest['dangling-pg'].key }));
});

monitorTestHooks(database, () => s3);

async function lastModified(objectKey: string): Promise<number> {
  const head = await s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: objectKey }));
  return head.LastModified!.getTime() / 1000;
}

describe('freshness check', () => {
  const sources: FreshnessSource[] = [
    { source: 'fresh-pg', maxAgeSeconds: DAY },
    { source: 'stale-pg', maxAgeSeconds: HOUR },
    { source: 'empty-pg', maxAgeSeconds: DAY },
    { source: 'dangling-pg', maxAgeSeconds: DAY },
  ];

  test('given fresh, stale, empty and dangling sources, then it publishes each age, the fleet signals, and names the offenders', async () => {
    // Five minutes after stale-pg crossed its one-hour threshold: news, so it notifies.
    const now = storedAt['stale-pg'] + HOUR + 300;
    const freshAge = Math.round(now - storedAt['fresh-pg']);
    const report = await run(sources, now);

    expect(report.statuses.map((s) => [s.source, s.state])).toEqual([
      ['fresh-pg', SourceState.FRESH], ['stale-pg', SourceState.STALE], ['empty-pg', SourceState.NO_BACKUPS], ['dangling-pg', SourceState.DANGLING],
    ]);
    const metrics = await publishedMetrics();
    expect(metrics.every((m) => m.Namespace === METRIC_NAMESPACE && m.Namespace === 'Restorable')).toBe(true);
    expect(metrics.map(({ MetricName, Dimensions, Value, Unit }) => ({ MetricName, Dimensions, Value, Unit }))).toEqual([
      { MetricName: 'BackupAgeSeconds', Dimensions: [{ Name: 'Source', Value: 'fresh-pg' }], Value: freshAge, Unit: 'Seconds' },
      { MetricName: 'BackupAgeSeconds', Dimensions: [{ Name: 'Source', Value: 'stale-pg' }], Value: HOUR + 300, Unit: 'Seconds' },
      { MetricName: 'FleetStalenessRatio', Dimensions: undefined, Value: (HOUR + 300) / HOUR, Unit: 'None' },
      { MetricName: 'ForgedOrSkewedPointers', Dimensions: undefined, Value: 0, Unit: 'Count' },
      { MetricName: 'SourcesNotChecked', Dimensions: undefined, Value: 0, Unit: 'Count' },
      { MetricName: 'SourcesWithoutBackup', Dimensions: undefined, Value: 2, Unit: 'Count' },
    ]);
    expect(Metrics.BACKUP_AGE_SECONDS).toBe('BackupAgeSeconds');

    const [message, ...more] = await publishedMessages();
    expect(more).toHaveLength(0);
    expect(message.TopicArn).toBe(topicArn());
    expect(message.Subject).toContain('stale-pg');
    expect(message.Message).toContain(`- stale-pg: stale, newest backup is 1.1 h old (${HOUR + 300} s), threshold 1.0 h (3600 s)`);
    expect(message.Message).toContain('- empty-pg: no backups found');
    expect(message.Message).toContain(`- dangling-pg: latest.json points to a missing backup, ${latest['dangling-pg'].key}`);
    expect(message.Message).not.toContain('fresh-pg');
  });

  test('given a source that has been stale for longer than one interval, then it does not notify again outside the daily digest', async () => {
    const now = outsideDigest(storedAt['stale-pg'] + 3 * HOUR);
    const report = await run(sources, now);
    expect(report.statuses.find((s) => s.source === 'stale-pg')!.state).toBe(SourceState.STALE);
    expect(report.notified).toBe(false);
    expect(await publishedMessages()).toHaveLength(0);
    // The alarm still sees it: the fleet signal is published on every run.
    expect((await publishedMetrics()).find((m) => m.MetricName === 'FleetStalenessRatio')!.Value).toBe(Math.round(now - storedAt['stale-pg']) / HOUR);
  });

  test('given the first run after midnight UTC, then the digest names every source still in trouble', async () => {
    const nextMidnight = Math.ceil(storedAt['stale-pg'] / DAY) * DAY + 2 * DAY;
    const report = await run(sources, nextMidnight + 60);
    expect(report.notified).toBe(true);
    const [message] = await publishedMessages();
    for (const source of ['stale-pg', 'empty-pg', 'dangling-pg']) expect(message.Message).toContain(`- ${source}: `);
    // Two days later, fresh-pg (threshold one day) is stale too.
    expect(message.Message).toContain('- fresh-pg: stale');
  });

  test('given a corrupt latest.json for one source, then the others are still checked and the failure is counted and named', async () => {
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `${PREFIX}broken-pg/latest.json`, Body: '{"key": trunc' }));
    const now = storedAt['stale-pg'] + HOUR + 60;
    const report = await run([{ source: 'broken-pg', maxAgeSeconds: DAY }, ...sources], now);

    const broken = report.statuses[0];
    expect(broken).toMatchObject({ source: 'broken-pg', state: SourceState.NOT_CHECKED });
    expect(broken.problem).toBe(`latest pointer s3://${s3.bucket}/${PREFIX}broken-pg/latest.json is not valid JSON`);
    expect(report.statuses.slice(1).map((s) => s.state)).toEqual([SourceState.FRESH, SourceState.STALE, SourceState.NO_BACKUPS, SourceState.DANGLING]);
    const metrics = await publishedMetrics();
    expect(metrics.find((m) => m.MetricName === 'SourcesNotChecked')!.Value).toBe(1);
    expect(metrics.filter((m) => m.MetricName === 'BackupAgeSeconds').map((m) => m.Dimensions![0].Value)).toEqual(['fresh-pg', 'stale-pg']);
    expect((await publishedMessages())[0].Message).toContain('- broken-pg: check failed: latest pointer');
  });

  test('given a restore-test report, then it publishes RestoreTestAgeSeconds per source and the oldest for the fleet', async () => {
    // Hand-made: the restore-test command writes this file; the contract is restore-tests/latest.json with finishedAt.
    // finishedAt is a day before S3 stored the report: believable, but the age counts from when S3 stored it.
    const reportKey = `${PREFIX}fresh-pg/restore-tests/latest.json`;
    const finishedAt = new Date(Date.now() - DAY * 1000).toISOString();
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: reportKey, Body: JSON.stringify({ source: 'fresh-pg', finishedAt, success: true }) }));
    const now = await lastModified(reportKey) + 2 * DAY;
    const report = await run([{ source: 'fresh-pg', maxAgeSeconds: 3 * DAY }], now);

    const expected = 2 * DAY;
    expect(report.statuses[0].forged).toBeUndefined();
    expect(report.statuses[0].restoreTestAgeSeconds).toBe(expected);
    const restore = (await publishedMetrics()).filter((m) => m.MetricName === 'RestoreTestAgeSeconds');
    expect(restore.map((m) => [m.Dimensions, m.Value, m.Unit])).toEqual([
      [[{ Name: 'Source', Value: 'fresh-pg' }], expected, 'Seconds'],
      [undefined, expected, 'Seconds'],
    ]);
    expect(await publishedMessages()).toHaveLength(0);
  });

  test('given 3 backups or 300, then the check makes the same number of S3 requests', async () => {
    // 300 pointer-consistent backups, copied from a real one hour by hour into their date-partitioned keys.
    const newest = latest['fresh-pg'];
    const manifest = manifestKeyFor(newest.key);
    const start = parseBackupKey(newest.key)!.startedAt.getTime();
    let last = '';
    for (let i = 299; i >= 0; i--) {
      last = backupKey(PREFIX, 'many-pg', new Date(start - i * HOUR * 1000), DumpFormat.PG_CUSTOM);
      await s3.client.send(new CopyObjectCommand({ Bucket: s3.bucket, Key: last, CopySource: `${s3.bucket}/${newest.key}` }));
      await s3.client.send(new CopyObjectCommand({ Bucket: s3.bucket, Key: manifestKeyFor(last), CopySource: `${s3.bucket}/${manifest}` }));
    }
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `${PREFIX}many-pg/latest.json`,
      Body: JSON.stringify({ ...newest, source: 'many-pg', key: last, manifestKey: manifestKeyFor(last) }) }));
    expect((await s3.keys(`${PREFIX}many-pg/`)).filter((k) => k.endsWith('.pgdump.zst.age'))).toHaveLength(300);
    expect((await s3.keys(`${PREFIX}fresh-pg/`)).filter((k) => k.endsWith('.pgdump.zst.age'))).toHaveLength(3);

    const countRequests = async (source: string) => {
      const { clients, requests } = monitorClients(s3, PREFIX);
      const event: FreshnessEvent = { sources: [{ source, maxAgeSeconds: DAY }] };
      const report = await checkFreshness(event, clients, { now: at(seconds(newest.startedAt) + 60), intervalSeconds: INTERVAL });
      expect(report.statuses[0].state).toBe(SourceState.FRESH);
      return requests;
    };
    const few = await countRequests('fresh-pg');
    const many = await countRequests('many-pg');
    expect(few).toEqual(['GetObjectCommand', 'HeadObjectCommand', 'GetObjectCommand']);
    expect(many).toEqual(few);
  });

  test('the Lambda entry point takes the bucket, prefix, topic and interval from the environment the construct sets', async () => {
    const report = await withEnv(handlerEnv({ BUCKET_NAME: s3.bucket, KEY_PREFIX: PREFIX, TOPIC_ARN: topicArn(), CHECK_INTERVAL_SECONDS: '900' }),
      () => handler({ sources: [{ source: 'fresh-pg', maxAgeSeconds: DAY }, { source: 'empty-pg', maxAgeSeconds: DAY }] }));
    expect(report.statuses.map((s) => s.state)).toEqual([SourceState.FRESH, SourceState.NO_BACKUPS]);
    // The handler's own clients, built from that environment, published and notified in the test's account.
    expect((await publishedMetrics()).find((m) => m.MetricName === 'SourcesWithoutBackup')!.Value).toBe(1);
    const messages = await publishedMessages();
    expect(messages).toHaveLength(report.notified ? 1 : 0);
    for (const message of messages) expect(message.Message).toContain('- empty-pg: no backups found');
  });

  test('given an event without a sources list, then it fails with a message that shows the expected input', async () => {
    await expect(checkFreshness({} as FreshnessEvent, monitorClients(s3, PREFIX).clients, { now: new Date(), intervalSeconds: INTERVAL }))
      .rejects.toThrow('the event has no sources list: the schedule passes {"sources":[{"source":"…","maxAgeSeconds":…}]}');
  });
});
