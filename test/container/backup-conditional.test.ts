/**
 * Conditional writes (design §3): backup objects are created with If-None-Match: * so that a key is never
 * overwritten, and latest.json moves with If-Match on the ETag the agent read, re-reading it when another run
 * moved it in between.
 *
 * Real, on moto's server (a versioned bucket, as BackupStore makes): every 412 here is the server's own answer.
 * Objects planted at the keys a run is about to use make it refuse the dump's CompleteMultipartUpload, the
 * companion's PUT or the manifest's PUT; another run's pointer, written just before the agent's latest.json
 * write goes out, makes it refuse If-None-Match: * or a stale If-Match. What the bucket holds afterwards (the
 * planted bytes, every version of latest.json, unfinished uploads) is read back.
 * Observed: SDK middleware records the conditional headers each request carries and, for the races, writes the
 * other run's pointer with a client of its own; it never answers in the server's place.
 */
import { GetObjectCommand, ListMultipartUploadsCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { DumpFormat, MANIFEST_FORMAT_VERSION, Tier, backupKey, globalsKeyFor, manifestKeyFor } from '../../lib/contract';
import { formatBackupResult } from '../../container/src/commands/backup';
import {
  AgeKey, MotoBucket, backupInProcess, createPgFixture, dropPgDatabase, makeAgeKey, motoBucket, pgQuery, readerRole, sharedMoto, uniqueName,
} from '../support';

let s3: MotoBucket;
/** A client without the middleware: what a concurrent backup run writes with. */
let other: S3Client;
let key: AgeKey;
const database = uniqueName('cond_src');

interface Sent {
  readonly command: string;
  readonly key: string;
  readonly ifNoneMatch?: string;
  readonly ifMatch?: string;
}
const sent: Sent[] = [];
/** Called for each request just before it goes to the server (for example to let another run write first). */
let beforeSending: ((request: Sent) => Promise<void>) | undefined;

beforeAll(async () => {
  s3 = await motoBucket({ versioned: true });
  other = new S3Client((await sharedMoto()).config());
  key = makeAgeKey();
  // Random bytes, 8 MiB: the dump goes up as a multipart upload.
  await createPgFixture(database, { customers: 50, blobRows: 8, blobKiB: 1024 });
  s3.client.middlewareStack.add((next, context) => async (args) => {
    const headers = (args.request as { headers: Record<string, string> }).headers;
    const request: Sent = {
      command: context.commandName!, key: (args.input as { Key: string }).Key,
      ifNoneMatch: headers['if-none-match'], ifMatch: headers['if-match'],
    };
    sent.push(request);
    await beforeSending?.(request);
    return next(args);
  }, { step: 'finalizeRequest', name: 'conditionalHeaders' });
});

afterAll(async () => {
  other?.destroy();
  await dropPgDatabase(database);
  await pgQuery('postgres', `DROP ROLE IF EXISTS ${readerRole(database)}`);
  await s3?.stop();
});

beforeEach(() => {
  sent.length = 0;
  beforeSending = undefined;
});

/** A backup of the fixture database, in this process, through the recorded client. */
const backup = (source: string, extra: string[] = []) =>
  backupInProcess({ s3: s3.client, bucket: s3.bucket, recipient: key.recipient, database }, source, extra);

const latestOps = (source: string) => sent.filter((s) => s.key === `${source}/latest.json`).map((s) => s.command);
const writesOf = (objectKey: string) => sent.filter((s) => s.key === objectKey && ['PutObjectCommand', 'CompleteMultipartUploadCommand'].includes(s.command));
const PLANTED = 'written by another run';

/**
 * Another run's objects at the keys a backup of `source` starting in the next 20 seconds would use: its dump
 * key, mapped by `keyFor`. Returns the planted keys.
 */
async function plant(source: string, keyFor: (dump: string) => string): Promise<string[]> {
  const now = Date.now();
  const keys = Array.from({ length: 20 }, (_, s) => keyFor(backupKey(undefined, source, new Date(now + s * 1000), DumpFormat.PG_CUSTOM)));
  await Promise.all(keys.map((k) => other.send(new PutObjectCommand({ Bucket: s3.bucket, Key: k, Body: PLANTED }))));
  return keys.sort();
}

/** The planted objects are as they were: one version each, the other run's bytes. */
async function expectUntouched(planted: string[]): Promise<void> {
  for (const k of planted) {
    expect({ k, versions: (await s3.versions(k)).length, text: await s3.getText(k) }).toEqual({ k, versions: 1, text: PLANTED });
  }
}

/** A pointer another run writes to latest.json, starting `offsetMs` from now; returns its key and the ETag S3 gave it. */
async function writeOtherPointer(source: string, offsetMs: number): Promise<{ key: string; etag: string }> {
  const at = new Date(Date.now() + offsetMs);
  const otherKey = `${source}/other-run-${at.getTime()}.pgdump.zst.age`;
  // The other run's backup is stored before its pointer, as the agent does: latest.json moves forward only past a
  // start that S3's LastModified of the object it names can vouch for.
  await other.send(new PutObjectCommand({ Bucket: s3.bucket, Key: otherKey, Body: 'x' }));
  const out = await other.send(new PutObjectCommand({
    Bucket: s3.bucket, Key: `${source}/latest.json`, ContentType: 'application/json',
    Body: JSON.stringify({
      formatVersion: MANIFEST_FORMAT_VERSION, source, key: otherKey, manifestKey: `${otherKey}.manifest.json`,
      startedAt: at.toISOString(), finishedAt: at.toISOString(), tier: Tier.HOURLY, size: 1, sha256: '0'.repeat(64),
    }),
  }));
  return { key: otherKey, etag: out.ETag! };
}

/** Every version of a source's latest.json, oldest first, as the key each one names. */
async function pointerHistory(source: string): Promise<string[]> {
  const versions = [...await s3.versions(`${source}/latest.json`)].reverse();
  const named: string[] = [];
  for (const v of versions) {
    const bytes = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: `${source}/latest.json`, VersionId: v.versionId }));
    named.push((JSON.parse(await bytes.Body!.transformToString()) as { key: string }).key);
  }
  return named;
}

test('every object of a backup is created with If-None-Match: *, the multipart dump on its completion, and stored once', async () => {
  const { result } = await backup('created-once');
  expect(writesOf(result.key)).toEqual([expect.objectContaining({ command: 'CompleteMultipartUploadCommand', ifNoneMatch: '*' })]);
  const stored = await s3.keys('created-once/');
  expect(stored).toHaveLength(4); // dump, roles companion, manifest, latest.json
  for (const k of stored) {
    // The first latest.json is created only if none exists yet, like the rest.
    expect({ k, writes: writesOf(k).map((w) => [w.ifNoneMatch, w.ifMatch]) }).toEqual({ k, writes: [['*', undefined]] });
    expect(await s3.versions(k)).toHaveLength(1);
  }
});

test('a dump key that already exists: the server refuses to complete the upload, the run fails, nothing is committed', async () => {
  const planted = await plant('taken', (dump) => dump);
  await expect(backup('taken')).rejects.toThrow(new RegExp(`stage 'upload' failed: S3 upload to s3://${s3.bucket}/taken/\\S+ failed: ` +
    'PreconditionFailed.*Nothing was committed'));
  // Only the refused completion touched a planted key: the parts went up, and the upload was aborted.
  const toPlanted = sent.filter((s) => planted.includes(s.key));
  expect(toPlanted.map((s) => s.command)).toContain('CompleteMultipartUploadCommand');
  expect(toPlanted.filter((s) => ['PutObjectCommand', 'CompleteMultipartUploadCommand'].includes(s.command))
    .every((s) => s.ifNoneMatch === '*')).toBe(true);
  expect(await s3.keys('taken/')).toEqual(planted);
  await expectUntouched(planted);
  const uploads = await s3.client.send(new ListMultipartUploadsCommand({ Bucket: s3.bucket, Prefix: 'taken/' }));
  expect(uploads.Uploads ?? []).toEqual([]);
});

test('a companion key that already exists: the server refuses its PUT, the run fails before the manifest', async () => {
  const planted = await plant('roles-taken', globalsKeyFor);
  await expect(backup('roles-taken')).rejects.toThrow(new RegExp(`stage 'upload' failed: S3 upload to s3://${s3.bucket}/roles-taken/\\S+ failed: ` +
    'PreconditionFailed'));
  await expectUntouched(planted);
  const stored = await s3.keys('roles-taken/');
  expect(stored.some((k) => k.endsWith('.manifest.json') || k.endsWith('/latest.json'))).toBe(false);
});

test('a manifest that already exists: the server refuses its PUT, the run fails and latest.json is not written', async () => {
  const planted = await plant('manifest-taken', manifestKeyFor);
  await expect(backup('manifest-taken')).rejects.toThrow(new RegExp(`a manifest already exists at s3://${s3.bucket}/manifest-taken/\\S+\\.manifest\\.json: ` +
    'two backups started in the same second\\?'));
  await expectUntouched(planted);
  expect(await s3.versions('manifest-taken/latest.json')).toEqual([]);
});

test('another run creates latest.json between the read and the first write: 412 on If-None-Match, then If-Match on its ETag', async () => {
  let otherPointer: { key: string; etag: string } | undefined;
  beforeSending = async (request) => {
    if (!otherPointer && request.command === 'PutObjectCommand' && request.key === 'first-raced/latest.json') {
      otherPointer = await writeOtherPointer('first-raced', -60_000); // a run that started earlier
    }
  };
  const { result, logged } = await backup('first-raced');
  expect(result.latestMoved).toBe(true);
  // Read for the tier, read, write (412), read again, write.
  expect(latestOps('first-raced')).toEqual(['GetObjectCommand', 'GetObjectCommand', 'PutObjectCommand', 'GetObjectCommand', 'PutObjectCommand']);
  expect(writesOf('first-raced/latest.json').map((w) => [w.ifNoneMatch, w.ifMatch])).toEqual([['*', undefined], [undefined, otherPointer!.etag]]);
  expect(await pointerHistory('first-raced')).toEqual([otherPointer!.key, result.key]);
  expect(logged).toContain('latest.json changed while moving it');
});

test('a 412 on the latest.json write makes the agent re-read it and move it with If-Match on the new ETag', async () => {
  const first = (await backup('raced')).result;
  sent.length = 0;
  let otherPointer: { key: string; etag: string } | undefined;
  beforeSending = async (request) => {
    if (!otherPointer && request.command === 'PutObjectCommand' && request.key === 'raced/latest.json') {
      // Another run, which started earlier, moves the pointer between our read and our write.
      otherPointer = await writeOtherPointer('raced', -60_000);
    }
  };
  const { result, logged } = await backup('raced');
  expect(result.latestMoved).toBe(true);
  expect(latestOps('raced')).toEqual(['GetObjectCommand', 'GetObjectCommand', 'PutObjectCommand', 'GetObjectCommand', 'PutObjectCommand']);
  const writes = writesOf('raced/latest.json');
  expect(writes.every((w) => w.ifMatch && w.ifNoneMatch === undefined)).toBe(true);
  expect(writes[1].ifMatch).toBe(otherPointer!.etag);
  expect(writes[0].ifMatch).not.toBe(otherPointer!.etag);
  // The refused write left no version: the first backup's pointer, the other run's, then ours.
  expect(await pointerHistory('raced')).toEqual([first.key, otherPointer!.key, result.key]);
  expect(logged).toContain('latest.json changed while moving it');
});

test('a 412 because a backup that started later moved latest.json: the agent re-reads it and leaves it there', async () => {
  const first = (await backup('overtaken')).result;
  sent.length = 0;
  let newer: { key: string; etag: string } | undefined;
  beforeSending = async (request) => {
    if (!newer && request.command === 'PutObjectCommand' && request.key === 'overtaken/latest.json') {
      newer = await writeOtherPointer('overtaken', 60_000);
    }
  };
  const { result } = await backup('overtaken');
  expect(result.latestMoved).toBe(false);
  expect(latestOps('overtaken')).toEqual(['GetObjectCommand', 'GetObjectCommand', 'PutObjectCommand', 'GetObjectCommand']);
  expect(await pointerHistory('overtaken')).toEqual([first.key, newer!.key]);
  // The backup itself and its manifest are stored all the same.
  expect(await s3.keys('overtaken/')).toEqual(expect.arrayContaining([result.key, result.manifestKey]));
  expect(formatBackupResult(result)).toContain('latest.json left at a newer backup');
});

test('latest.json that keeps changing under concurrent runs: the run fails after five tries and says the backup is stored', async () => {
  const others: string[] = [];
  beforeSending = async (request) => {
    if (request.command === 'PutObjectCommand' && request.key === 'churning/latest.json') others.push((await writeOtherPointer('churning', -60_000)).key);
  };
  await expect(backup('churning')).rejects.toThrow(
    `latest.json at s3://${s3.bucket}/churning/latest.json kept changing under concurrent backups; the backup and its manifest are stored`);
  expect(latestOps('churning').filter((c) => c === 'PutObjectCommand')).toHaveLength(5);
  // Every one of the agent's five writes was refused: only the other runs' pointers were stored.
  expect(await pointerHistory('churning')).toEqual(others);
});
