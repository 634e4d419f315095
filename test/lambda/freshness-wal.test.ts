/**
 * The freshness check over continuously archived WAL, on moto's server: base backups and WAL objects stored in a
 * bucket there under the names the agent gives them (the check never opens them, so their bytes do not matter; their
 * names, S3's LastModified and a segment's size metadata do), the metrics read back from moto's CloudWatch and the
 * notifications from a queue subscribed to the test's topic. Ages are reached without waiting by handing the check a
 * later `now`, and are computed from when S3 stored each object.
 */
import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { Metrics, Tier, WAL_METADATA, baseBackupKey, baseLatestKey, manifestKeyFor, receivedPartialName, walKey } from '../../lib/contract';
import { FreshnessSource, checkFreshness, handler } from '../../lambda/freshness-check';
import { MAX_BASE_POINTER_BYTES, chainGaps, segmentName, walObject } from '../../lambda/freshness-check/wal-archive';
import { S3Emulator, uniqueName } from '../support';
import {
  handlerEnv, monitorBucket, monitorClients, monitorTestHooks, publishedMessages, publishedMetrics, topicArn, withEnv,
} from './monitor-fixtures';

const PREFIX = 'pitr/';
const INTERVAL = 900;
const SEGMENT_BYTES = 16 << 20;
const WAL = { maxAgeSeconds: 300, baseBackupMaxAgeSeconds: 90_000 };
let s3: S3Emulator;

beforeAll(async () => {
  s3 = await monitorBucket();
});

monitorTestHooks(uniqueName('fresh_wal_none'), () => s3);

/** Stores one WAL object as the agent names it, with a segment's size metadata; returns when S3 stored it (ms). */
async function putWal(source: string, file: string, segmentBytes = SEGMENT_BYTES): Promise<number> {
  const key = walKey(PREFIX, source, file);
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: `sealed ${file}`, Metadata: { [WAL_METADATA.plaintextSize]: String(segmentBytes) } }));
  return storedAt(key);
}

async function storedAt(key: string): Promise<number> {
  const head = await s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }));
  return head.LastModified!.getTime();
}

/** A base backup of `source` that starts at `startWalFile`, and base/latest.json naming it; returns when S3 stored the backup (ms). */
async function putBaseBackup(source: string, startWalFile: string, pointer: Record<string, unknown> = {}): Promise<{ key: string; stored: number }> {
  const startedAt = new Date(Date.now() - 60_000);
  const key = baseBackupKey(PREFIX, source, startedAt);
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: 'sealed tar' }));
  const stored = await storedAt(key);
  await s3.client.send(new PutObjectCommand({
    Bucket: s3.bucket, Key: baseLatestKey(PREFIX, source), Body: JSON.stringify({
      formatVersion: 1, source, key, manifestKey: manifestKeyFor(key), startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(),
      tier: Tier.DAILY, size: 10, sha256: 'a'.repeat(64), timeline: parseInt(startWalFile.slice(0, 8), 16), startWalFile, ...pointer,
    }),
  }));
  return { key, stored };
}

const walSource = (source: string): FreshnessSource => ({ source, maxAgeSeconds: 86_400, wal: WAL });
const run = (sources: FreshnessSource[], nowMs: number) => {
  const { clients, requests } = monitorClients(s3, PREFIX);
  return checkFreshness({ sources }, clients, { now: new Date(nowMs), intervalSeconds: INTERVAL }).then((report) => ({ report, requests }));
};
const seg = (timeline: number, n: number) => segmentName(timeline, n, 0x100);
const metric = (metrics: { MetricName: string; Dimensions?: { Value: string }[]; Value: number }[], name: string, source?: string) =>
  metrics.find((m) => m.MetricName === name && (source === undefined ? !m.Dimensions : m.Dimensions?.[0].Value === source))?.Value;

describe('freshness check of a WAL archive', () => {
  test('given a whole chain since the base backup and a newer received partial, then it publishes the WAL and base backup ages and no gap, listing only from the base backup on', async () => {
    // Segments before the base backup's start, with a hole among them: never listed, never a gap.
    await putWal('whole-pg', seg(1, 0x01));
    await putWal('whole-pg', seg(1, 0x03));
    const base = await putBaseBackup('whole-pg', seg(1, 0x05));
    for (const n of [0x05, 0x06, 0x07]) await putWal('whole-pg', seg(1, n));
    await putWal('whole-pg', receivedPartialName(seg(1, 0x08), 0x2000));
    const newest = await putWal('whole-pg', receivedPartialName(seg(1, 0x08), 0x4000));
    const now = newest + 120_000;

    const { report, requests } = await run([walSource('whole-pg')], now);
    const wal = report.statuses[0].wal!;
    expect(wal).toMatchObject({ baseBackupKey: base.key, newestWalFile: `${seg(1, 8)}.partial.00004000`, gaps: [], strangeKeys: 0 });
    expect(wal.walAgeSeconds).toBe(Math.round((now - newest) / 1000));
    expect(wal.baseBackupAgeSeconds).toBe(Math.round((now - base.stored) / 1000));
    // The dumps' latest.json (absent), then base/latest.json, a HEAD of its backup, one LIST from the start segment on, one segment's size.
    expect(requests).toEqual(['GetObjectCommand', 'GetObjectCommand', 'HeadObjectCommand', 'ListObjectsV2Command', 'HeadObjectCommand']);

    const metrics = await publishedMetrics();
    expect(metric(metrics, Metrics.WAL_ARCHIVE_AGE_SECONDS, 'whole-pg')).toBe(wal.walAgeSeconds);
    expect(metric(metrics, Metrics.BASE_BACKUP_AGE_SECONDS, 'whole-pg')).toBe(wal.baseBackupAgeSeconds);
    expect(metric(metrics, Metrics.WAL_GAPS, 'whole-pg')).toBe(0);
    expect(metric(metrics, Metrics.WAL_GAPS)).toBe(0);
    expect(metric(metrics, Metrics.FLEET_WAL_STALENESS_RATIO)).toBeCloseTo(wal.walAgeSeconds! / WAL.maxAgeSeconds, 6);
    expect(metric(metrics, Metrics.FLEET_BASE_BACKUP_STALENESS_RATIO)).toBeCloseTo(wal.baseBackupAgeSeconds! / WAL.baseBackupMaxAgeSeconds, 6);
    expect(await publishedMessages()).toEqual([]);
  });

  test('given WAL that stopped arriving, then the first check past its maxAge names the source and the RPO it broke', async () => {
    const { key } = await putBaseBackup('quiet-pg', seg(1, 0x02));
    const newest = await putWal('quiet-pg', seg(1, 0x02));
    const { report } = await run([walSource('quiet-pg')], newest + (WAL.maxAgeSeconds + 60) * 1000);
    expect(report.notified).toBe(true);
    const [message] = await publishedMessages();
    expect(message.Message).toContain(`  WAL archive: newest archived WAL (${seg(1, 0x02)}) was stored ${WAL.maxAgeSeconds + 60} s ago, over its ` +
      `${WAL.maxAgeSeconds} s: the continuous RPO is broken`);
    expect(message.Message).not.toContain('take a new base backup');
    expect(report.statuses[0].wal!.baseBackupKey).toBe(key);
    expect(metric(await publishedMetrics(), Metrics.FLEET_WAL_STALENESS_RATIO)).toBeCloseTo((WAL.maxAgeSeconds + 60) / WAL.maxAgeSeconds, 6);
  });

  test('given a missing segment that a later received partial does not fill, then it publishes the gap, alarms, and asks for a new base backup', async () => {
    await putBaseBackup('holed-pg', seg(1, 0x10));
    await putWal('holed-pg', seg(1, 0x10));
    // 0x11 was never archived whole: only a partial of it, then 0x12 and a partial of 0x13.
    await putWal('holed-pg', receivedPartialName(seg(1, 0x11), 0x1000));
    await putWal('holed-pg', seg(1, 0x12));
    const newest = await putWal('holed-pg', receivedPartialName(seg(1, 0x13), 0x1000));

    const { report } = await run([walSource('holed-pg')], newest + 60_000);
    expect(report.statuses[0].wal!.gaps.map((g) => g.description)).toEqual([`missing ${seg(1, 0x11)} (1 segment) on timeline 1`]);
    const metrics = await publishedMetrics();
    expect(metric(metrics, Metrics.WAL_GAPS, 'holed-pg')).toBe(1);
    expect(metric(metrics, Metrics.WAL_GAPS)).toBe(1);
    // The hole appeared within the last interval: news.
    expect(report.notified).toBe(true);
    const [message] = await publishedMessages();
    expect(message.Message).toContain(`WAL archive: gap in the WAL since base backup`);
    expect(message.Message).toContain(`missing ${seg(1, 0x11)}`);
    expect(message.Message).toContain(`take a new base backup now: run holed-pg's base backup task, or \`restorable basebackup --source holed-pg --bucket ${s3.bucket} --prefix ${PREFIX}`);
  });

  test('given a timeline switch, then its history file is required, and the new timeline must begin where the old one ended', async () => {
    await putBaseBackup('switch-pg', seg(1, 0x20));
    for (const n of [0x20, 0x21]) await putWal('switch-pg', seg(1, n));
    await putWal('switch-pg', `${seg(1, 0x22)}.partial`);
    await putWal('switch-pg', seg(2, 0x22));
    const newest = await putWal('switch-pg', seg(2, 0x23));

    const before = await run([walSource('switch-pg')], newest + 60_000);
    expect(before.report.statuses[0].wal!.gaps.map((g) => g.description)).toEqual([
      `timeline 2 (from ${seg(2, 0x22)}) has no history file 00000002.history: a restore cannot follow the switch from timeline 1`,
    ]);

    await putWal('switch-pg', '00000002.history');
    const after = await run([walSource('switch-pg')], newest + 60_000);
    expect(after.report.statuses[0].wal!.gaps).toEqual([]);
  });

  test('given no base backup, or one whose pointer names a missing object, then the source counts as having a gap: nothing to start from', async () => {
    await putWal('nobase-pg', seg(1, 1));
    const { key } = await putBaseBackup('lostbase-pg', seg(1, 1));
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: baseLatestKey(PREFIX, 'lostbase-pg'), Body: JSON.stringify({
      formatVersion: 1, source: 'lostbase-pg', key: `${key.slice(0, -20)}_gone.tar.zst.age`, manifestKey: 'x', startedAt: '2026-01-01T00:00:00Z',
      finishedAt: '2026-01-01T00:00:01Z', tier: 'daily', size: 1, sha256: 'b'.repeat(64), timeline: 1, startWalFile: seg(1, 1),
    }) }));
    const { report } = await run([walSource('nobase-pg'), walSource('lostbase-pg')], Date.now());
    expect(report.statuses[0].wal!.noBaseBackup).toBe(`no base backup (no s3://${s3.bucket}/${baseLatestKey(PREFIX, 'nobase-pg')})`);
    expect(report.statuses[1].wal!.noBaseBackup).toContain('names a missing base backup');
    const metrics = await publishedMetrics();
    expect(metric(metrics, Metrics.WAL_GAPS)).toBe(2);
    expect(metric(metrics, Metrics.WAL_ARCHIVE_AGE_SECONDS, 'nobase-pg')).toBeUndefined();
    expect(metric(metrics, Metrics.SOURCES_NOT_CHECKED)).toBe(0);
  });

  test('given what a dumping role could write (an oversized or broken pointer, a pointer outside base/, objects that are no WAL), then each is counted and named, never thrown', async () => {
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: baseLatestKey(PREFIX, 'huge-pg'), Body: 'x'.repeat(MAX_BASE_POINTER_BYTES + 1) }));
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: baseLatestKey(PREFIX, 'broken-pg'), Body: '{"key": trunc' }));
    await putBaseBackup('outside-pg', seg(1, 1), { key: `${PREFIX}other-pg/base/2026/01/01/other-pg_2026-01-01_00-00-00Z.tar.zst.age` });
    await putBaseBackup('strange-pg', seg(1, 1));
    await putWal('strange-pg', seg(1, 1));
    await putWal('strange-pg', 'not-a-wal-file');
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `${PREFIX}strange-pg/wal/${seg(1, 2)}`, Body: 'no suffix' }));

    const { report } = await run(['huge-pg', 'broken-pg', 'outside-pg', 'strange-pg'].map(walSource), Date.now());
    const [huge, broken, outside, strange] = report.statuses;
    expect(huge.problem).toContain(`is ${MAX_BASE_POINTER_BYTES + 1} bytes, more than the ${MAX_BASE_POINTER_BYTES} it can be: not read`);
    expect(broken.problem).toContain('is not valid JSON');
    expect(outside.problem).toContain('not a base backup under');
    expect(strange.problem).toBeUndefined();
    expect(strange.wal!.strangeKeys).toBe(2);
    const metrics = await publishedMetrics();
    expect(metric(metrics, Metrics.SOURCES_NOT_CHECKED)).toBe(3);
    // A chain that could not be read publishes no gap flag: not 0 (whole), not 1.
    expect(metric(metrics, Metrics.WAL_GAPS, 'broken-pg')).toBeUndefined();
    expect(metric(metrics, Metrics.WAL_GAPS, 'strange-pg')).toBe(0);
  });

  test('given a pointer that states times S3 contradicts, then the source is named forged, as for dumps', async () => {
    await putBaseBackup('forged-pg', seg(1, 1), { startedAt: '2099-01-01T00:00:00Z' });
    await putWal('forged-pg', seg(1, 1));
    const { report } = await run([walSource('forged-pg')], Date.now());
    expect(report.statuses[0].forged).toEqual([expect.stringContaining('base/latest.json states startedAt 2099-01-01T00:00:00Z, in the future')]);
    expect(metric(await publishedMetrics(), Metrics.FORGED_POINTERS)).toBe(1);
  });

  test('the Lambda entry point reads the wal thresholds from the schedule\'s input, and refuses a malformed entry', async () => {
    const env = handlerEnv({ BUCKET_NAME: s3.bucket, KEY_PREFIX: PREFIX, TOPIC_ARN: topicArn(), CHECK_INTERVAL_SECONDS: '900' });
    const report = await withEnv(env, () => handler({ sources: [walSource('whole-pg')] }));
    expect(report.statuses[0].wal!.gaps).toEqual([]);
    expect(metric(await publishedMetrics(), Metrics.WAL_ARCHIVE_AGE_SECONDS, 'whole-pg')).toBe(report.statuses[0].wal!.walAgeSeconds);
    await expect(withEnv(env, () => handler({ sources: [{ source: 'whole-pg', maxAgeSeconds: 60, wal: { maxAgeSeconds: 0 } as never }] })))
      .rejects.toThrow('wal needs a positive maxAgeSeconds and baseBackupMaxAgeSeconds');
  });
});

describe('WAL chain gaps', () => {
  const at = new Date(0);
  const objects = (perLog: number, ...files: string[]) => files.map((f) => walObject(f, at, perLog)!);

  test('a log rolls over after its last segment: 16 MiB segments after ...FF, 64 MiB ones after ...3F', () => {
    expect(chainGaps(objects(0x100, '0000000100000000000000FE', '0000000100000000000000FF', '000000010000000100000000'), 1, 0xFE, 0x100)).toEqual([]);
    expect(chainGaps(objects(0x40, '00000001000000000000003F', '000000010000000100000000'), 1, 0x3F, 0x40)).toEqual([]);
    // A name past its log's end is no segment a server with that size makes.
    expect(walObject('000000010000000000000040', at, 0x40)).toBeUndefined();
  });

  test('a hole of many segments is one range; the first segment missing is a hole too; a far-off forged name costs no loop', () => {
    const gaps = chainGaps(objects(0x100, seg(1, 5), seg(1, 9), receivedPartialName(seg(1, 0xA), 8)), 1, 4, 0x100);
    expect(gaps.map((g) => g.description)).toEqual([
      `missing ${seg(1, 4)} (1 segment) on timeline 1`,
      `missing ${seg(1, 6)} to ${seg(1, 8)} (3 segments) on timeline 1`,
    ]);
    expect(chainGaps(objects(0x100, seg(1, 1), '00000001FFFFFFFF000000FF'), 1, 1, 0x100)[0].description)
      .toContain('segments) on timeline 1');
  });

  test('a new timeline that begins after the old one\'s last whole segment leaves a hole between them', () => {
    const gaps = chainGaps(objects(0x100, seg(1, 1), seg(1, 2), '00000002.history', seg(2, 5)), 1, 1, 0x100);
    expect(gaps.map((g) => g.description)).toEqual([`missing ${seg(1, 3)} to ${seg(1, 4)} (2 segments) before timeline 2 begins at ${seg(2, 5)}`]);
  });
});
