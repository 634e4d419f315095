/**
 * The freshness check over streamed MariaDB binlogs, on moto's server: streams, binlog objects and dumps stored in a
 * bucket there as the contract names them (binlog-store-fixtures), the metrics read back from moto's CloudWatch and the
 * notifications from a queue subscribed to the test's topic. Ages are reached without waiting by handing the check a
 * later `now`, and are computed from when S3 stored each object.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { BinlogStreamReason, Metrics, binlogObjectKey, binlogStreamId, binlogStreamKey } from '../../lib/contract';
import { BINLOG_CLOSE_GRACE_SECONDS, MAX_BINLOG_STREAM_BYTES } from '../../lib/contract/binlog-coverage';
import { FreshnessSource, checkFreshness, handler } from '../../lambda/freshness-check';
import { S3Emulator, uniqueName } from '../support';
import { SERVER_ID, putBinlog, putDump, putStream } from './binlog-store-fixtures';
import {
  handlerEnv, monitorBucket, monitorClients, monitorTestHooks, publishedMessages, publishedMetrics, topicArn, withEnv,
} from './monitor-fixtures';

const PREFIX = 'maria/';
const INTERVAL = 900;
const BINLOG = { maxAgeSeconds: 300 };
const FILE = (n: number) => `mariadb-bin.${String(n).padStart(6, '0')}`;
let s3: S3Emulator;

beforeAll(async () => {
  s3 = await monitorBucket();
});

monitorTestHooks(uniqueName('fresh_binlog_none'), () => s3);

const binlogSource = (source: string): FreshnessSource => ({ source, maxAgeSeconds: 86_400, binlog: BINLOG });
const run = (sources: FreshnessSource[], nowMs: number) => {
  const { clients, requests } = monitorClients(s3, PREFIX);
  return checkFreshness({ sources }, clients, { now: new Date(nowMs), intervalSeconds: INTERVAL }).then((report) => ({ report, requests }));
};
const metric = (metrics: { MetricName: string; Dimensions?: { Value: string }[]; Value: number }[], name: string, source?: string) =>
  metrics.find((m) => m.MetricName === name && (source === undefined ? !m.Dimensions : m.Dimensions?.[0].Value === source))?.Value;
const coordinates = (file: string, position = 1234) => ({ file, position, gtid: '0-1-42', serverId: SERVER_ID });
const hourAgo = () => new Date(Date.now() - 3_600_000);

describe('freshness check of streamed binlogs', () => {
  test('given a stream that holds the dump\'s file and every file after it, then it publishes the newest object\'s age and no gap, listing the stream from the dump\'s file on', async () => {
    // An older stream, and files of this one before the dump's: never listed.
    const old = await putStream(s3, PREFIX, 'whole-db', { at: new Date(Date.now() - 7_200_000) });
    await putBinlog(s3, PREFIX, 'whole-db', old, FILE(1));
    const stream = await putStream(s3, PREFIX, 'whole-db', { at: hourAgo(), reason: BinlogStreamReason.PURGED, detail: 'the server purged mariadb-bin.000001' });
    await putBinlog(s3, PREFIX, 'whole-db', stream, FILE(2));
    const dump = await putDump(s3, PREFIX, 'whole-db', coordinates(FILE(3)));
    for (const n of [3, 4]) await putBinlog(s3, PREFIX, 'whole-db', stream, FILE(n));
    await putBinlog(s3, PREFIX, 'whole-db', stream, FILE(5), { partialBytes: 0x1000 });
    const newest = await putBinlog(s3, PREFIX, 'whole-db', stream, FILE(5), { partialBytes: 0x2000 });
    const now = newest + 60_000;

    const { report, requests } = await run([binlogSource('whole-db')], now);
    const binlog = report.statuses[0].binlog!;
    expect(binlog).toMatchObject({ streamId: stream, dumpKey: dump.key, gaps: [], strangeKeys: 0, forged: [], newest: { name: `${FILE(5)}.partial.000000002000` } });
    expect(binlog.stream!.reason).toBe(BinlogStreamReason.PURGED);
    expect(binlog.ageSeconds).toBe(Math.round((now - newest) / 1000));
    expect(report.statuses[0].problem).toBeUndefined();
    // The dump side (latest.json, its backup, the restore-test report), then the manifest, the streams, stream.json, one stream listed, one HEAD.
    expect(requests).toEqual(['GetObjectCommand', 'HeadObjectCommand', 'GetObjectCommand',
      'GetObjectCommand', 'ListObjectsV2Command', 'GetObjectCommand', 'ListObjectsV2Command', 'HeadObjectCommand']);

    const metrics = await publishedMetrics();
    expect(metric(metrics, Metrics.BINLOG_ARCHIVE_AGE_SECONDS, 'whole-db')).toBe(binlog.ageSeconds);
    expect(metric(metrics, Metrics.BINLOG_GAPS, 'whole-db')).toBe(0);
    expect(metric(metrics, Metrics.BINLOG_GAPS)).toBe(0);
    expect(metric(metrics, Metrics.FLEET_BINLOG_STALENESS_RATIO)).toBeCloseTo(binlog.ageSeconds! / BINLOG.maxAgeSeconds, 6);
    expect(await publishedMessages()).toEqual([]);
  });

  test('given a stream that stopped, then the first check past its maxAge names the source, the newest object and the RPO it broke', async () => {
    const stream = await putStream(s3, PREFIX, 'quiet-db', { at: hourAgo() });
    await putDump(s3, PREFIX, 'quiet-db', coordinates(FILE(1)));
    const newest = await putBinlog(s3, PREFIX, 'quiet-db', stream, FILE(1), { partialBytes: 800 });
    const { report } = await run([binlogSource('quiet-db')], newest + (BINLOG.maxAgeSeconds + 60) * 1000);
    expect(report.notified).toBe(true);
    const [message] = await publishedMessages();
    expect(message.Message).toContain(`  binlogs: newest binlog object of stream ${stream} (${FILE(1)}.partial.000000000320) was stored ` +
      `${BINLOG.maxAgeSeconds + 60} s ago, over its ${BINLOG.maxAgeSeconds} s: the continuous RPO is broken`);
    expect(message.Message).not.toContain('run a dump now');
    expect(metric(await publishedMetrics(), Metrics.FLEET_BINLOG_STALENESS_RATIO)).toBeCloseTo((BINLOG.maxAgeSeconds + 60) / BINLOG.maxAgeSeconds, 6);
  });

  test('given a new stream after the dump because the server purged a file, then the gap alarms with the stream\'s reason and the dump to run', async () => {
    const first = await putStream(s3, PREFIX, 'purged-db', { at: new Date(Date.now() - 7_200_000) });
    await putDump(s3, PREFIX, 'purged-db', coordinates(FILE(3)), new Date(Date.now() - 7_000_000));
    await putBinlog(s3, PREFIX, 'purged-db', first, FILE(3));
    const detail = 'mariadb-bin.000004 is no longer on the server (its first is mariadb-bin.000006): the events after byte 812 of it were never streamed';
    const second = await putStream(s3, PREFIX, 'purged-db', { at: new Date(), firstFile: FILE(6), reason: BinlogStreamReason.PURGED, detail });
    const newest = await putBinlog(s3, PREFIX, 'purged-db', second, FILE(6), { partialBytes: 500 });

    const { report } = await run([binlogSource('purged-db')], newest + 30_000);
    expect(report.statuses[0].binlog!.gaps.map((g) => g.description)).toEqual([
      `the newest binlog stream, ${second}, does not hold the dump's ${FILE(3)}: it began ${report.statuses[0].binlog!.stream!.startedAt} at ${FILE(6)} ` +
      `(purged: ${detail}); the events from the dump's position to where the stream begins are not stored`,
    ]);
    const metrics = await publishedMetrics();
    expect(metric(metrics, Metrics.BINLOG_GAPS, 'purged-db')).toBe(1);
    expect(metric(metrics, Metrics.BINLOG_GAPS)).toBe(1);
    // The new stream's stream.json was stored within the last interval: news.
    expect(report.notified).toBe(true);
    const [message] = await publishedMessages();
    expect(message.Message).toContain('  binlogs: binlogs cannot be replayed from the newest dump');
    expect(message.Message).toContain(detail);
    expect(message.Message).toContain(`  binlogs: run a dump now: start purged-db's scheduled dump task, or \`restorable backup --source purged-db ` +
      `--bucket ${s3.bucket} --prefix ${PREFIX} --binlog-coordinates --recipient …\``);
  });

  test('given RESET MASTER after the dump, then a new stream begun by it is a gap; so is the dump\'s file name created anew in a stream begun after a lost spool', async () => {
    const dumpStart = new Date(Date.now() - 3_600_000);
    const created = new Date(dumpStart.getTime() + 1_800_000).toISOString();
    for (const [source, reason, detail] of [
      ['reset-db', BinlogStreamReason.RESET, 'the server\'s binlogs went back to mariadb-bin.000001'],
      ['respool-db', BinlogStreamReason.FIRST_START, 'the spool was empty: streaming from the server\'s oldest binlog'],
    ] as const) {
      const first = await putStream(s3, PREFIX, source, { at: new Date(Date.now() - 7_200_000) });
      await putDump(s3, PREFIX, source, coordinates(FILE(2)), dumpStart);
      await putBinlog(s3, PREFIX, source, first, FILE(2), { created: new Date(dumpStart.getTime() - 600_000).toISOString() });
      const second = await putStream(s3, PREFIX, source, { reason, detail });
      await putBinlog(s3, PREFIX, source, second, FILE(1), { created });
      await putBinlog(s3, PREFIX, source, second, FILE(2), { created, partialBytes: 300 });
    }

    const { report } = await run([binlogSource('reset-db'), binlogSource('respool-db')], Date.now());
    const [reset, respool] = report.statuses.map((s) => s.binlog!.gaps.map((g) => g.description));
    expect(reset).toEqual([expect.stringContaining(`began after the dump (${dumpStart.toISOString()}): it began`)]);
    expect(reset[0]).toContain(`(reset: the server's binlogs went back to mariadb-bin.000001); the dump's ${FILE(2)} names a file of the binlogs before it`);
    expect(respool).toEqual([expect.stringContaining(`the newest binlog stream's ${FILE(2)} was created ${created}, after the dump began (${dumpStart.toISOString()})`)]);
    expect(metric(await publishedMetrics(), Metrics.BINLOG_GAPS)).toBe(2);
  });

  test('given a missing file, or one stored only in part once later ones were, then each is a gap; a part stored a moment ago is not yet', async () => {
    const stream = await putStream(s3, PREFIX, 'holed-db', { at: hourAgo() });
    await putDump(s3, PREFIX, 'holed-db', coordinates(FILE(10)));
    await putBinlog(s3, PREFIX, 'holed-db', stream, FILE(10));
    // 11 was never stored; 12 only in part, then 13 whole and 14 growing.
    await putBinlog(s3, PREFIX, 'holed-db', stream, FILE(12), { partialBytes: 0x100 });
    const later = await putBinlog(s3, PREFIX, 'holed-db', stream, FILE(13));
    await putBinlog(s3, PREFIX, 'holed-db', stream, FILE(14), { partialBytes: 0x100 });

    const soon = await run([binlogSource('holed-db')], later + 10_000);
    expect(soon.report.statuses[0].binlog!.gaps.map((g) => g.description)).toEqual([`missing ${FILE(11)} (1 file) from the dump's ${FILE(10)} on`]);
    const { report } = await run([binlogSource('holed-db')], later + (BINLOG_CLOSE_GRACE_SECONDS + 10) * 1000);
    expect(report.statuses[0].binlog!.gaps.map((g) => g.description)).toEqual([
      `missing ${FILE(11)} (1 file) from the dump's ${FILE(10)} on`,
      `${FILE(12)} is stored only up to byte 256, never whole, though later files were stored`,
    ]);
  });

  test('given a stream that rolled over from 999999 to 1000000 (which sorts before it), then the stream is listed whole and nothing is missed', async () => {
    const stream = await putStream(s3, PREFIX, 'rolled-db', { at: hourAgo(), firstFile: FILE(999_998) });
    await putBinlog(s3, PREFIX, 'rolled-db', stream, FILE(999_998));
    await putDump(s3, PREFIX, 'rolled-db', coordinates(FILE(999_999)));
    await putBinlog(s3, PREFIX, 'rolled-db', stream, FILE(999_999));
    const newest = await putBinlog(s3, PREFIX, 'rolled-db', stream, 'mariadb-bin.1000000', { partialBytes: 64 });
    const { report, requests } = await run([binlogSource('rolled-db')], newest + 1000);
    expect(report.statuses[0].binlog).toMatchObject({ gaps: [], newest: { name: 'mariadb-bin.1000000.partial.000000000040' } });
    expect(requests.filter((r) => r === 'ListObjectsV2Command')).toHaveLength(3);
  });

  test('given a dump without coordinates, no dump at all, another server\'s stream, or a stream behind the dump, then each is a gap saying so', async () => {
    const s1 = await putStream(s3, PREFIX, 'nocoord-db', { at: hourAgo() });
    await putBinlog(s3, PREFIX, 'nocoord-db', s1, FILE(1));
    const { key } = await putDump(s3, PREFIX, 'nocoord-db', undefined);
    const s2 = await putStream(s3, PREFIX, 'nodump-db', { at: hourAgo() });
    await putBinlog(s3, PREFIX, 'nodump-db', s2, FILE(1));
    const s3id = await putStream(s3, PREFIX, 'other-db', { at: hourAgo(), serverId: 7, reason: BinlogStreamReason.SERVER_CHANGED, detail: 'server_id is 7, was 1' });
    await putDump(s3, PREFIX, 'other-db', coordinates(FILE(1)));
    await putBinlog(s3, PREFIX, 'other-db', s3id, FILE(1), { serverId: 7 });
    const s4 = await putStream(s3, PREFIX, 'behind-db', { at: hourAgo() });
    await putDump(s3, PREFIX, 'behind-db', coordinates(FILE(9)));
    await putBinlog(s3, PREFIX, 'behind-db', s4, FILE(8), { partialBytes: 10 });
    await putDump(s3, PREFIX, 'nostream-db', coordinates(FILE(1)));

    const { report } = await run(['nocoord-db', 'nodump-db', 'other-db', 'behind-db', 'nostream-db'].map(binlogSource), Date.now());
    const [nocoord, nodump, other, behind, nostream] = report.statuses.map((s) => s.binlog!.gaps.map((g) => g.description));
    expect(nocoord).toEqual([`the newest dump, ${key}, records no binlog coordinates (it was taken without --binlog-coordinates): a replay has nowhere to start`]);
    expect(nodump).toEqual(['there is no dump to start a replay from (no latest.json)']);
    expect(other[0]).toContain(`the newest binlog stream, ${s3id}, is of server_id 7, but the dump was taken on server_id ${SERVER_ID}: it began`);
    expect(behind).toEqual([`the newest binlog stream, ${s4}, has not reached the dump's ${FILE(9)}: is the binlog streamer running?`]);
    expect(nostream).toEqual([`no binlog stream under ${PREFIX}nostream-db/binlog/: nothing was streamed (is the binlog streamer running?)`]);
    // With no binlog object, the data at risk is since the dump.
    expect(report.statuses[4].binlog!.ageSeconds).toBe(report.statuses[4].ageSeconds);
    expect(metric(await publishedMetrics(), Metrics.BINLOG_GAPS)).toBe(5);
  });

  test('given what the streamer could write (an oversized, broken or foreign stream.json, a stream id in the future, keys that are no binlog), then each is counted and named, never thrown', async () => {
    for (const source of ['huge-db', 'broken-db', 'foreign-db', 'future-db']) await putDump(s3, PREFIX, source, coordinates(FILE(1)));
    const put = (key: string, body: string) => s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: body }));
    const hugeId = binlogStreamId(hourAgo());
    await put(binlogStreamKey(PREFIX, 'huge-db', hugeId), 'x'.repeat(MAX_BINLOG_STREAM_BYTES + 1));
    await putBinlog(s3, PREFIX, 'huge-db', hugeId, FILE(1));
    const brokenId = binlogStreamId(hourAgo());
    await put(binlogStreamKey(PREFIX, 'broken-db', brokenId), '{"stream": trunc');
    await putBinlog(s3, PREFIX, 'broken-db', brokenId, FILE(1));
    await put(`${PREFIX}broken-db/binlog/${brokenId}/not-a-binlog`, 'x');
    await put(`${PREFIX}broken-db/binlog/not-a-stream/x`, 'x');
    const foreign = await putStream(s3, PREFIX, 'other-source', { at: hourAgo() });
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: binlogStreamKey(PREFIX, 'foreign-db', foreign),
      Body: (await s3.getText(binlogStreamKey(PREFIX, 'other-source', foreign)))! }));
    await putBinlog(s3, PREFIX, 'foreign-db', foreign, FILE(1));
    const real = await putStream(s3, PREFIX, 'future-db', { at: hourAgo() });
    await putBinlog(s3, PREFIX, 'future-db', real, FILE(1));
    await put(binlogObjectKey(PREFIX, 'future-db', '2099-01-01_00-00-00Z', FILE(1)), 'x');

    const { report } = await run(['huge-db', 'broken-db', 'foreign-db', 'future-db'].map(binlogSource), Date.now());
    const [huge, broken, foreignStatus, future] = report.statuses;
    expect(huge.problem).toContain(`is ${MAX_BINLOG_STREAM_BYTES + 1} bytes, more than the ${MAX_BINLOG_STREAM_BYTES} it can be: not read`);
    expect(broken.problem).toContain('is not valid JSON');
    expect(broken.binlog!.strangeKeys).toBe(2);
    expect(foreignStatus.problem).toContain('of source "other-source": not followed');
    // The stream named for 2099 is passed over: the real one is checked, and the forgery named.
    expect(future.binlog!.streamId).toBe(real);
    expect(future.binlog!.gaps).toEqual([]);
    expect(future.forged).toEqual([expect.stringContaining('future-db/binlog/2099-01-01_00-00-00Z/ is named for a time in the future')]);
    // Without a stream.json the files are still judged: the dump's file is there.
    expect(huge.binlog!.gaps).toEqual([]);
    const metrics = await publishedMetrics();
    expect(metric(metrics, Metrics.SOURCES_NOT_CHECKED)).toBe(3);
    expect(metric(metrics, Metrics.FORGED_POINTERS)).toBe(1);
    expect(metric(metrics, Metrics.BINLOG_GAPS, 'huge-db')).toBeUndefined();
    expect(metric(metrics, Metrics.BINLOG_ARCHIVE_AGE_SECONDS, 'huge-db')).toBe(huge.binlog!.ageSeconds);
  });

  test('the Lambda entry point reads the binlog threshold from the schedule\'s input, and refuses a malformed entry', async () => {
    const env = handlerEnv({ BUCKET_NAME: s3.bucket, KEY_PREFIX: PREFIX, TOPIC_ARN: topicArn(), CHECK_INTERVAL_SECONDS: '900' });
    const report = await withEnv(env, () => handler({ sources: [binlogSource('whole-db')] }));
    expect(report.statuses[0].binlog!.gaps).toEqual([]);
    expect(metric(await publishedMetrics(), Metrics.BINLOG_ARCHIVE_AGE_SECONDS, 'whole-db')).toBe(report.statuses[0].binlog!.ageSeconds);
    await expect(withEnv(env, () => handler({ sources: [{ source: 'whole-db', maxAgeSeconds: 60, binlog: { maxAgeSeconds: 0 } }] })))
      .rejects.toThrow('binlog needs a positive maxAgeSeconds');
  });
});
