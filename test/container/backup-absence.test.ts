/**
 * Absence under a prefix-scoped ListBucket: S3 answers 403, not 404, for a missing key to a role whose ListBucket is
 * limited by s3:prefix (the dump role). The agent never reads a 403 as "absent": it lists the exact key as the prefix
 * (MaxKeys 1, which the condition allows), and only a listing without that key means absent; otherwise the 403 is
 * an error, named.
 *
 * Real, on moto's server with the real SDK: the backups, the conditional writes and what the bucket holds afterwards.
 * Played by a relay (UnlistedRelay): S3's 403 for a missing key, and a refused listing, which moto cannot be made to
 * answer (its S3 answers 404 to anyone).
 */
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { LatestPointer } from '../../lib/contract';
import { getText, headSize } from '../../container/src/shared/s3';
import {
  AgeKey, MotoBucket, backupInProcess, createPgFixture, dropPgDatabase, makeAgeKey, motoBucket, pgQuery, readerRole, sharedMoto, uniqueName,
} from '../support';
import { UnlistedRelay } from './unlisted-relay';

let s3: MotoBucket;
let relay: UnlistedRelay;
/** The agent's client: through the relay, as the dump role sees S3. */
let client: S3Client;
let key: AgeKey;
const database = uniqueName('absent_src');

beforeAll(async () => {
  s3 = await motoBucket({ versioned: true });
  relay = new UnlistedRelay(s3.endpoint, s3.bucket);
  client = new S3Client({ ...(await sharedMoto()).config(), endpoint: await relay.start() });
  key = makeAgeKey();
  await createPgFixture(database, { customers: 20 });
});

afterAll(async () => {
  client?.destroy();
  await relay?.stop();
  await dropPgDatabase(database);
  await pgQuery('postgres', `DROP ROLE IF EXISTS ${readerRole(database)}`);
  await s3?.stop();
});

beforeEach(() => {
  relay.requests.length = 0;
  relay.listing = 'allowed';
  relay.deny = undefined;
});

const backup = (source: string) => backupInProcess({ s3: client, bucket: s3.bucket, recipient: key.recipient, database }, source);

test('a first backup: latest.json reads 403, the agent lists that exact key, finds nothing, and creates it with If-None-Match', async () => {
  const { result } = await backup('first');

  expect(result.latestMoved).toBe(true);
  const latest = JSON.parse((await s3.getText('first/latest.json'))!) as LatestPointer;
  expect(latest.key).toBe(result.key);
  const [read, list] = relay.requests.filter((r) => r.key === 'first/latest.json' || r.list?.prefix === 'first/latest.json');
  expect(read).toMatchObject({ method: 'GET', key: 'first/latest.json', status: 403 });
  expect(list).toMatchObject({ method: 'GET', key: '', list: { prefix: 'first/latest.json', maxKeys: 1 }, status: 200 });
  const writes = relay.requests.filter((r) => r.method === 'PUT' && r.key === 'first/latest.json');
  expect(writes).toEqual([expect.objectContaining({ ifNoneMatch: '*', ifMatch: undefined, status: 200 })]);

  // The second finds it (a 200, no listing) and moves it by its ETag.
  relay.requests.length = 0;
  const second = (await backup('first')).result;
  expect(second.latestMoved).toBe(true);
  expect(relay.requests.filter((r) => r.list?.prefix === 'first/latest.json')).toEqual([]);
  expect(relay.requests.filter((r) => r.method === 'PUT' && r.key === 'first/latest.json'))
    .toEqual([expect.objectContaining({ ifNoneMatch: undefined, ifMatch: expect.any(String), status: 200 })]);
});

test('a listing that names only a longer key (latest.json.old) still means latest.json is absent', async () => {
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'longer/latest.json.old', Body: '{}' }));
  expect(await getText(client, s3.bucket, 'longer/latest.json')).toBeUndefined();
  expect(await headSize(client, s3.bucket, 'longer/latest.json')).toBeUndefined();
  expect(relay.requests.map((r) => `${r.method} ${r.list ? `list ${r.list.prefix}` : r.key} ${r.status}`)).toEqual([
    'GET longer/latest.json 403', 'GET list longer/latest.json 200', 'HEAD longer/latest.json 403', 'GET list longer/latest.json 200',
  ]);
});

test('a 403 for a key the listing shows is a real error, never absence', async () => {
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'present/latest.json', Body: '{}' }));
  relay.deny = (r) => r.key === 'present/latest.json';
  try {
    await expect(getText(client, s3.bucket, 'present/latest.json')).rejects.toThrow(
      new RegExp(`S3 GetObject s3://${s3.bucket}/present/latest\\.json failed: access denied`));
    await expect(headSize(client, s3.bucket, 'present/latest.json')).rejects.toThrow(/S3 HeadObject .* failed: access denied/);
    expect(relay.requests.filter((r) => r.list)).toEqual([
      expect.objectContaining({ list: { prefix: 'present/latest.json', maxKeys: 1 }, status: 200 }),
      expect.objectContaining({ list: { prefix: 'present/latest.json', maxKeys: 1 }, status: 200 }),
    ]);
  } finally {
    relay.deny = undefined;
  }
});

test('when the listing is refused too, a missing latest.json is an access-denied error naming the key, and nothing is written as latest.json', async () => {
  relay.listing = 'denied';
  await expect(backup('unlistable')).rejects.toThrow(
    new RegExp(`S3 GetObject s3://${s3.bucket}/unlistable/latest\\.json failed: access denied: .*the agent then lists the key, and that was not allowed`));
  expect(await s3.getText('unlistable/latest.json')).toBeUndefined();
  expect(relay.requests.filter((r) => r.method === 'PUT')).toEqual([]);
});
