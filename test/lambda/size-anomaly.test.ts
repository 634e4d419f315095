/**
 * The size-anomaly check on moto's server, over backups made by the real agent into a bucket there. The database
 * holds incompressible blobs, so the stored size follows the data: four normal backups, then 80% of the blobs go
 * and the fifth backup shrinks the way a broken dump would. The metrics are read back from moto's CloudWatch, the
 * notifications from a queue subscribed to the test's topic.
 */
import { LatestPointer, Manifest, METRIC_NAMESPACE } from '../../lib/contract';
import { SizeEvent, checkSize, handler, median } from '../../lambda/size-anomaly';
import { AgeKey, S3Emulator, createPgFixture, makeAgeKey, pgQuery, uniqueName } from '../support';
import {
  backUp, handlerEnv, monitorBucket, monitorClients, monitorTestHooks, publishedMessages, publishedMetrics, topicArn, withEnv,
} from './monitor-fixtures';

const SOURCE = 'sized-pg';
const database = uniqueName('size_src');
const BLOBS = 30;
let s3: S3Emulator;
let key: AgeKey;
const normal: LatestPointer[] = [];
let shrunk: LatestPointer;

/** What the EventBridge rule hands the function: the S3 event's detail and the covered sources' limits. */
const eventFor = (pointer: LatestPointer, limits: SizeEvent['sources'] = {}): SizeEvent =>
  ({ detail: { bucket: { name: s3.bucket }, object: { key: pointer.manifestKey } }, sources: limits });

beforeAll(async () => {
  s3 = await monitorBucket();
  key = makeAgeKey();
  await createPgFixture(database, { customers: 100, blobRows: BLOBS, blobKiB: 64 });
  for (let i = 0; i < 4; i++) normal.push(await backUp(s3, key, SOURCE, database));
  await pgQuery(database, `DELETE FROM public.blobs WHERE id > ${BLOBS * 0.2}`);
  shrunk = await backUp(s3, key, SOURCE, database);
});

monitorTestHooks(database, () => s3);

describe('size anomaly check', () => {
  test('given a backup the size of the ones before it, then it publishes its size and a ratio near 1, and stays quiet', async () => {
    const newest = normal[3];
    const earlier = normal.slice(0, 3).map((p) => p.size);
    const report = await checkSize(eventFor(newest), monitorClients(s3, '').clients);

    expect(report).toMatchObject({ source: SOURCE, key: newest.key, sizeBytes: newest.size, history: [...earlier].reverse(), anomalies: [], notified: false });
    const ratio = newest.size / median(earlier);
    expect(ratio).toBeGreaterThan(0.9);
    expect(ratio).toBeLessThan(1.1);
    const metrics = await publishedMetrics();
    expect(metrics.every((m) => m.Namespace === METRIC_NAMESPACE)).toBe(true);
    expect(metrics.map(({ MetricName, Dimensions, Value, Unit }) => ({ MetricName, Dimensions, Value, Unit }))).toEqual([
      { MetricName: 'BackupSizeBytes', Dimensions: [{ Name: 'Source', Value: SOURCE }], Value: newest.size, Unit: 'Bytes' },
      { MetricName: 'BackupSizeRatio', Dimensions: [{ Name: 'Source', Value: SOURCE }], Value: ratio, Unit: 'None' },
      { MetricName: 'FleetMinSizeRatio', Dimensions: undefined, Value: ratio / 0.5, Unit: 'None' },
    ]);
    expect(await publishedMessages()).toHaveLength(0);
  });

  test('given a sudden 80% drop, then the ratio falls under the floor and the topic hears which source and by how much', async () => {
    const sizes = normal.map((p) => p.size);
    const med = median(sizes);
    const ratio = shrunk.size / med;
    expect(ratio).toBeLessThan(0.35); // the fixture really shrank

    const report = await checkSize(eventFor(shrunk), monitorClients(s3, '').clients);
    expect(report!.ratio).toBe(ratio);
    expect(report!.medianBytes).toBe(med);
    const metrics = await publishedMetrics();
    expect(metrics.find((m) => m.MetricName === 'BackupSizeRatio')).toMatchObject({ Dimensions: [{ Name: 'Source', Value: SOURCE }], Value: ratio });
    expect(metrics.find((m) => m.MetricName === 'FleetMinSizeRatio')).toMatchObject({ Dimensions: undefined, Value: ratio / 0.5 });

    const [message, ...more] = await publishedMessages();
    expect(more).toHaveLength(0);
    expect(message.TopicArn).toBe(topicArn());
    expect(message.Subject).toBe(`Restorable: backup of ${SOURCE} looks broken (size anomaly)`);
    expect(message.Message).toContain(`Backup ${shrunk.key} of source ${SOURCE}:`);
    expect(message.Message).toContain(`- size dropped to ${(ratio * 100).toFixed(0)}% of the median of the 4 previous backups (${shrunk.size} bytes against ${med} bytes; floor 50%)`);
  });

  test('given a source minimum above the backup size, then it is an anomaly even with a normal ratio', async () => {
    const newest = normal[3];
    const minSizeBytes = newest.size * 2;
    const report = await checkSize(eventFor(newest, { [SOURCE]: { minSizeBytes, ratioFloor: 0.2 } }), monitorClients(s3, '').clients);
    expect(report!.anomalies).toEqual([`size ${newest.size} bytes is under the minimum of ${minSizeBytes} bytes`]);
    // The fleet signal is the tighter of ratio / floor and size / minimum.
    expect((await publishedMetrics()).find((m) => m.MetricName === 'FleetMinSizeRatio')!.Value).toBe(0.5);
    expect((await publishedMessages())[0].Message).toContain(`size ${newest.size} bytes is under the minimum`);
  });

  test('given the first backup of a source, then it publishes the size only: there is nothing to compare with', async () => {
    const report = await checkSize(eventFor(normal[0]), monitorClients(s3, '').clients);
    expect(report).toMatchObject({ history: [], anomalies: [], notified: false });
    expect((await publishedMetrics()).map((m) => m.MetricName)).toEqual(['BackupSizeBytes']);
    expect(await publishedMessages()).toHaveLength(0);
  });

  test('reads are bounded: one GET of the manifest and one LIST per day, at most historyDays', async () => {
    const { clients, requests } = monitorClients(s3, '');
    await checkSize(eventFor(shrunk), clients, { defaultRatioFloor: 0.5, historyCount: 10, historyDays: 7 });
    expect(requests).toEqual(['GetObjectCommand', ...Array(7).fill('ListObjectsV2Command')]);
    // Enough history found on the first day: no further listing.
    requests.length = 0;
    await checkSize(eventFor(shrunk), clients, { defaultRatioFloor: 0.5, historyCount: 3, historyDays: 7 });
    expect(requests).toEqual(['GetObjectCommand', 'ListObjectsV2Command']);
  });

  test('the Lambda entry point takes the bucket, topic and size settings from the environment the construct sets', async () => {
    const report = await withEnv(handlerEnv({ BUCKET_NAME: s3.bucket, KEY_PREFIX: '', TOPIC_ARN: topicArn(), DEFAULT_RATIO_FLOOR: '0.1', HISTORY_COUNT: '2', HISTORY_DAYS: '3' }),
      () => handler(eventFor(shrunk)));
    // A floor of 0.1 lets the shrunken backup pass; the median comes from the two newest earlier backups only.
    expect(report).toMatchObject({ history: [normal[3].size, normal[2].size], anomalies: [], notified: false });
    // The handler's own clients, built from that environment, published in the test's account.
    const ratio = shrunk.size / median([normal[3].size, normal[2].size]);
    expect(report).toMatchObject({ ratio, fleetSignal: ratio / 0.1 });
    expect((await publishedMetrics()).map(({ MetricName, Dimensions, Value }) => ({ MetricName, Dimensions, Value }))).toEqual([
      { MetricName: 'BackupSizeBytes', Dimensions: [{ Name: 'Source', Value: SOURCE }], Value: shrunk.size },
      { MetricName: 'BackupSizeRatio', Dimensions: [{ Name: 'Source', Value: SOURCE }], Value: ratio },
      { MetricName: 'FleetMinSizeRatio', Dimensions: undefined, Value: ratio / 0.1 },
    ]);
    expect(await publishedMessages()).toHaveLength(0);
  });

  test('given an object that is not a manifest, then it is ignored without a read', async () => {
    const { clients, requests } = monitorClients(s3, '');
    const manifest = JSON.parse((await s3.getText(shrunk.manifestKey))!) as Manifest;
    expect(await checkSize({ detail: { bucket: { name: s3.bucket }, object: { key: manifest.key } } }, clients)).toBeUndefined();
    expect(requests).toEqual([]);
  });
});
