/**
 * Conditional writes (design §3): backup objects are created with If-None-Match: * so that a key is never
 * overwritten, and latest.json moves with If-Match on the ETag the agent read, re-reading it when another run
 * moved it in between. The emulator ignores both headers, so SDK middleware records the headers each request
 * carries on the wire and answers 412 where a real bucket would; everything else reaches the emulator.
 */
import {
  CompleteMultipartUploadCommand, PutObjectCommand, S3Client, S3ServiceException,
} from '@aws-sdk/client-s3';
import { MANIFEST_FORMAT_VERSION, Tier } from '../../lib/contract';
import { formatBackupResult } from '../../container/src/commands/backup';
import { AgeKey, S3Emulator, backupInProcess, createPgFixture, dropPgDatabase, makeAgeKey, pgQuery, readerRole, startS3rver, uniqueName } from '../support';

let s3: S3Emulator;
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
/** Called for each request before it is sent; throw to answer in the emulator's place. */
let intercept: ((request: Sent) => Promise<void>) | undefined;

function preconditionFailed(): S3ServiceException {
  return new S3ServiceException({
    name: 'PreconditionFailed', $fault: 'client', $metadata: { httpStatusCode: 412 },
    message: 'At least one of the pre-conditions you specified did not hold',
  });
}

beforeAll(async () => {
  s3 = await startS3rver();
  other = new S3Client({ endpoint: s3.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
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
    await intercept?.(request);
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
  intercept = undefined;
});

/** A backup of the fixture database, in this process, through the intercepted client. */
const backup = (source: string, extra: string[] = []) =>
  backupInProcess({ s3: s3.client, bucket: s3.bucket, recipient: key.recipient, database }, source, extra);

const latestOps = (source: string) => sent.filter((s) => s.key === `${source}/latest.json`).map((s) => s.command);

/** A pointer another run writes to latest.json, starting `offsetMs` from now. */
async function writeOtherPointer(source: string, offsetMs: number): Promise<string> {
  const at = new Date(Date.now() + offsetMs);
  const otherKey = `${source}/other-run-${at.getTime()}.pgdump.zst.age`;
  await other.send(new PutObjectCommand({
    Bucket: s3.bucket, Key: `${source}/latest.json`, ContentType: 'application/json',
    Body: JSON.stringify({
      formatVersion: MANIFEST_FORMAT_VERSION, source, key: otherKey, manifestKey: `${otherKey}.manifest.json`,
      startedAt: at.toISOString(), finishedAt: at.toISOString(), tier: Tier.HOURLY, size: 1, sha256: '0'.repeat(64),
    }),
  }));
  return otherKey;
}

test('every object of a backup is created with If-None-Match: *, the multipart dump on its completion', async () => {
  const { result } = await backup('created-once');
  const dump = sent.filter((s) => s.key === result.key);
  const complete = dump.filter((s) => s.command === CompleteMultipartUploadCommand.name);
  expect(complete).toHaveLength(1);
  expect(complete[0].ifNoneMatch).toBe('*');
  expect(dump.some((s) => s.command === PutObjectCommand.name)).toBe(false);
  // The companion and the manifest are small single PUTs: each refuses an existing key too.
  const others = sent.filter((s) => s.key !== result.key && !s.key.endsWith('/latest.json')
    && [PutObjectCommand.name, CompleteMultipartUploadCommand.name].includes(s.command));
  expect(others.map((s) => s.key).sort()).toEqual(expect.arrayContaining([result.manifestKey]));
  expect(others.length).toBeGreaterThanOrEqual(2);
  for (const s of others) expect(s.ifNoneMatch).toBe('*');
  // The first latest.json is created only if none exists yet.
  const latest = sent.filter((s) => s.key === 'created-once/latest.json' && s.command === PutObjectCommand.name);
  expect(latest).toEqual([expect.objectContaining({ ifNoneMatch: '*', ifMatch: undefined })]);
});

test('a dump key that already exists (412 on completion) fails the run: no manifest, latest.json untouched', async () => {
  // What S3 answers when the key exists and the request says If-None-Match: *.
  intercept = async (request) => {
    if (request.command === CompleteMultipartUploadCommand.name && request.ifNoneMatch === '*') throw preconditionFailed();
  };
  await expect(backup('taken')).rejects.toThrow(/stage 'upload' failed: S3 upload to s3:\/\/backups\/taken\/\S+ failed: PreconditionFailed.*Nothing was committed/);
  expect(await s3.keys('taken/')).toEqual([]);
});

test('a 412 on the latest.json write makes the agent re-read it and move it with If-Match on the new ETag', async () => {
  await backup('raced');
  sent.length = 0;
  let raced = false;
  intercept = async (request) => {
    if (!raced && request.command === PutObjectCommand.name && request.key === 'raced/latest.json') {
      // Another run, which started earlier, moved the pointer between our read and our write.
      raced = true;
      await writeOtherPointer('raced', -60_000);
      throw preconditionFailed();
    }
  };
  const { result, logged } = await backup('raced');
  expect(raced).toBe(true);
  expect(result.latestMoved).toBe(true);
  // Read for the tier, read, write (412), read again, write.
  expect(latestOps('raced')).toEqual(['GetObjectCommand', 'GetObjectCommand', 'PutObjectCommand', 'GetObjectCommand', 'PutObjectCommand']);
  const writes = sent.filter((s) => s.key === 'raced/latest.json' && s.command === PutObjectCommand.name);
  expect(writes.every((w) => w.ifMatch && w.ifNoneMatch === undefined)).toBe(true);
  expect(writes[1].ifMatch).not.toBe(writes[0].ifMatch); // the ETag of what the other run wrote
  expect(JSON.parse((await s3.getText('raced/latest.json'))!).key).toBe(result.key);
  expect(logged).toContain('latest.json changed while moving it');
});

test('a 412 because a backup that started later moved latest.json: the agent re-reads it and leaves it there', async () => {
  await backup('overtaken');
  sent.length = 0;
  let newer: string | undefined;
  intercept = async (request) => {
    if (!newer && request.command === PutObjectCommand.name && request.key === 'overtaken/latest.json') {
      newer = await writeOtherPointer('overtaken', 60_000);
      throw preconditionFailed();
    }
  };
  const { result } = await backup('overtaken');
  expect(result.latestMoved).toBe(false);
  expect(latestOps('overtaken')).toEqual(['GetObjectCommand', 'GetObjectCommand', 'PutObjectCommand', 'GetObjectCommand']);
  expect(JSON.parse((await s3.getText('overtaken/latest.json'))!).key).toBe(newer);
  // The backup itself and its manifest are stored all the same.
  expect(await s3.keys('overtaken/')).toEqual(expect.arrayContaining([result.key, result.manifestKey]));
  expect(formatBackupResult(result)).toContain('latest.json left at a newer backup');
});

test('latest.json that keeps changing under concurrent runs: the run fails after five tries and says the backup is stored', async () => {
  intercept = async (request) => {
    if (request.command === PutObjectCommand.name && request.key === 'churning/latest.json') throw preconditionFailed();
  };
  await expect(backup('churning')).rejects.toThrow(
    'latest.json at s3://backups/churning/latest.json kept changing under concurrent backups; the backup and its manifest are stored');
  expect(latestOps('churning').filter((c) => c === PutObjectCommand.name)).toHaveLength(5);
});
