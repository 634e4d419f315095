/**
 * Where a restore test records its result, under the store's bucket policy: the dated report created with
 * If-None-Match: * and restore-tests/latest.json moved with If-Match on the ETag read (If-None-Match: * when there is
 * none), both untagged (the policy lets nothing tag restore-tests/), re-reading the pointer when another test moved
 * it in between.
 *
 * Real, on moto's server with the real SDK: the writes, their conditions, every 412 and what the bucket holds.
 * Played by a relay (UnlistedRelay): S3's 403 for a missing key to a restore-test role, whose ListBucket is limited to
 * its source's prefix, and another restore test writing the pointer just before this one's write goes out.
 */
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { restoreTestLatestKey } from '../../lib/contract';
import { POINTER_ATTEMPTS, RestoreTestReport, reportKey, storeReport } from '../../container/src/restore-test/report';
import { MotoBucket, motoBucket, sharedMoto } from '../support';
import { UnlistedRelay } from './unlisted-relay';

let s3: MotoBucket;
let relay: UnlistedRelay;
let client: S3Client;
const PREFIX = 'prod/';

beforeAll(async () => {
  s3 = await motoBucket({ versioned: true });
  relay = new UnlistedRelay(s3.endpoint, s3.bucket, PREFIX);
  client = new S3Client({ ...(await sharedMoto()).config(), endpoint: await relay.start() });
  jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
});

afterAll(async () => {
  client?.destroy();
  await relay?.stop();
  await s3?.stop();
});

beforeEach(() => {
  relay.requests.length = 0;
  relay.before = undefined;
});

function report(source: string, finishedAt: Date, success = true): RestoreTestReport {
  return {
    formatVersion: 1, source, bucket: s3.bucket, success, finishedAt: finishedAt.toISOString(), startedAt: finishedAt.toISOString(),
    durationSeconds: 12, tablesChecked: 3, rowsChecked: 30, tables: [], checks: [], failures: [], reportKey: reportKey(PREFIX, source, finishedAt),
  };
}

const writesOf = (key: string) => relay.requests.filter((r) => r.method === 'PUT' && r.key === key)
  .map((r) => ({ ifNoneMatch: r.ifNoneMatch, ifMatch: r.ifMatch === undefined ? undefined : 'etag', tagging: r.tagging, status: r.status }));

test('the first report: the pointer reads 403, is listed and found absent, and both are created untagged with If-None-Match', async () => {
  const first = report('orders-db', new Date('2026-11-01T10:00:00Z'));
  const pointer = restoreTestLatestKey(PREFIX, 'orders-db');

  expect(await storeReport(client, s3.bucket, PREFIX, first)).toBeUndefined();

  expect(writesOf(first.reportKey)).toEqual([{ ifNoneMatch: '*', ifMatch: undefined, tagging: undefined, status: 200 }]);
  expect(relay.requests.filter((r) => r.key === pointer || r.list).map((r) => `${r.method} ${r.list ? `list ${r.list.prefix}` : r.key} ${r.status}`))
    .toEqual([`GET ${pointer} 403`, `GET list ${pointer} 200`, `PUT ${pointer} 200`]);
  expect(writesOf(pointer)).toEqual([{ ifNoneMatch: '*', ifMatch: undefined, tagging: undefined, status: 200 }]);
  expect(JSON.parse((await s3.getText(pointer))!)).toMatchObject({ finishedAt: first.finishedAt, success: true });
  expect(JSON.parse((await s3.getText(first.reportKey))!)).toMatchObject({ finishedAt: first.finishedAt });

  // The next one moves the pointer by its ETag.
  relay.requests.length = 0;
  const second = report('orders-db', new Date('2026-11-02T10:00:00Z'), false);
  expect(await storeReport(client, s3.bucket, PREFIX, second)).toBeUndefined();
  expect(writesOf(pointer)).toEqual([{ ifNoneMatch: undefined, ifMatch: 'etag', tagging: undefined, status: 200 }]);
  expect(JSON.parse((await s3.getText(pointer))!)).toMatchObject({ finishedAt: second.finishedAt, success: false });
  expect(await s3.versions(pointer)).toHaveLength(2);
});

test('another test moves the pointer between the read and the write: 412, read again, moved by the new ETag', async () => {
  const pointer = restoreTestLatestKey(PREFIX, 'raced-db');
  await storeReport(client, s3.bucket, PREFIX, report('raced-db', new Date('2026-11-01T10:00:00Z')));
  const theirs = report('raced-db', new Date('2026-11-02T09:00:00Z'));
  let raced = false;
  relay.before = async (r) => {
    if (r.method === 'PUT' && r.key === pointer && !raced) {
      raced = true;
      await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: pointer, Body: JSON.stringify(theirs) }));
    }
  };
  relay.requests.length = 0;
  const ours = report('raced-db', new Date('2026-11-02T10:00:00Z'));

  expect(await storeReport(client, s3.bucket, PREFIX, ours)).toBeUndefined();

  expect(writesOf(pointer)).toEqual([
    { ifNoneMatch: undefined, ifMatch: 'etag', tagging: undefined, status: 412 },
    { ifNoneMatch: undefined, ifMatch: 'etag', tagging: undefined, status: 200 },
  ]);
  expect(JSON.parse((await s3.getText(pointer))!)).toMatchObject({ finishedAt: ours.finishedAt });
});

test('a pointer that keeps changing is a recording problem naming the key, and the dated report is stored', async () => {
  const pointer = restoreTestLatestKey(PREFIX, 'busy-db');
  relay.before = async (r) => {
    if (r.method === 'PUT' && r.key === pointer) {
      await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: pointer, Body: JSON.stringify(report('busy-db', new Date())) }));
    }
  };
  const ours = report('busy-db', new Date('2026-11-03T10:00:00Z'));

  const problem = await storeReport(client, s3.bucket, PREFIX, ours);

  expect(problem).toMatch(new RegExp(`the report could not be stored: s3://${s3.bucket}/prod/busy-db/restore-tests/latest\\.json kept changing ` +
    `under concurrent restore tests \\(${POINTER_ATTEMPTS} tries\\)`));
  expect(writesOf(pointer)).toHaveLength(POINTER_ATTEMPTS);
  expect(await s3.getText(ours.reportKey)).toBeDefined();
});

test('a dated report that already exists is never replaced: the server refuses it and the run says so', async () => {
  const finishedAt = new Date('2026-11-04T10:00:00Z');
  const planted = report('twice-db', finishedAt);
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: planted.reportKey, Body: 'planted' }));

  const problem = await storeReport(client, s3.bucket, PREFIX, report('twice-db', finishedAt, false));

  expect(problem).toMatch(/a report already exists at .*twice-db_2026-11-04_10-00-00Z\.json/);
  expect(writesOf(planted.reportKey)).toEqual([{ ifNoneMatch: '*', ifMatch: undefined, tagging: undefined, status: 412 }]);
  expect(await s3.getText(planted.reportKey)).toBe('planted');
  expect(await s3.getText(restoreTestLatestKey(PREFIX, 'twice-db'))).toBeUndefined();
});
