/**
 * The vault's retention keeper on moto's server, in an account of its own (moto takes a 12-digit access key id for
 * the account): a bucket with Object Lock and a COMPLIANCE default, as a vault ReplicaStore makes it, and objects put
 * the way replication leaves them (with the source's GOVERNANCE lock and tier tag in the request). The keeper's
 * verdict is read back from the server with HeadObject.
 *
 * What moto enforces, and what it does not: it refuses to delete a COMPLIANCE version even with
 * x-amz-bypass-governance-retention (asserted below), but it lets anyone shorten a COMPLIANCE date or turn it back to
 * GOVERNANCE, which S3 refuses. So "never shortens" is asserted on what the keeper asks for, not on moto refusing it.
 */
import { randomBytes } from 'node:crypto';
import {
  CreateBucketCommand, DeleteObjectCommand, HeadObjectCommand, ObjectLockRetentionMode, PutObjectCommand, PutObjectLockConfigurationCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Tier } from '../../lib/contract/tiers';
import {
  ObjectCreatedEvent, RetentionAction, RetentionKeeperConfig, configFromEnv, handler, keepRetention,
} from '../../lambda/retention-keeper';
import { sharedMoto } from '../support/moto';

const DAY_MS = 86_400_000;
const VAULT_ACCOUNT = '444455556666';
const PREFIX = 'backups/';
let s3: S3Client;
let bucket: string;
let config: RetentionKeeperConfig;
let endpoint: string;

beforeAll(async () => {
  const moto = await sharedMoto();
  endpoint = moto.endpoint;
  s3 = new S3Client({ ...moto.config(), credentials: { accessKeyId: VAULT_ACCOUNT, secretAccessKey: 'testing' } });
  bucket = `vault-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  await s3.send(new CreateBucketCommand({ Bucket: bucket, ObjectLockEnabledForBucket: true }));
  await s3.send(new PutObjectLockConfigurationCommand({
    Bucket: bucket,
    ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: { Mode: ObjectLockRetentionMode.COMPLIANCE, Days: 7 } } },
  }));
  config = { bucket, prefix: PREFIX, tierDays: { [Tier.HOURLY]: 1, [Tier.DAILY]: 10, [Tier.WEEKLY]: 28, [Tier.MONTHLY]: 372 }, defaultDays: 7 };
});

afterAll(() => s3?.destroy());

interface Put { key: string; versionId: string; lastModified: Date }

/** An object as replication leaves it: the source's lock and tags come with the request. */
async function replicate(key: string, options: { tier?: string; mode?: ObjectLockRetentionMode; days?: number } = {}): Promise<Put> {
  const lock = options.mode
    ? { ObjectLockMode: options.mode, ObjectLockRetainUntilDate: new Date(Date.now() + (options.days ?? 7) * DAY_MS) }
    : {};
  const out = await s3.send(new PutObjectCommand({
    Bucket: bucket, Key: `${PREFIX}${key}`, Body: `age-encrypted ${key}`,
    Tagging: options.tier === undefined ? undefined : `backup-tier=${encodeURIComponent(options.tier)}`, ...lock,
  }));
  const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: `${PREFIX}${key}`, VersionId: out.VersionId }));
  return { key: `${PREFIX}${key}`, versionId: out.VersionId!, lastModified: head.LastModified! };
}

function created(put: { key: string; versionId?: string }, bucketName = bucket): ObjectCreatedEvent {
  return {
    'source': 'aws.s3',
    'detail-type': 'Object Created',
    'detail': { bucket: { name: bucketName }, object: { 'key': put.key, 'version-id': put.versionId } },
  };
}

async function lockOf(put: Put): Promise<{ mode?: string; until?: number }> {
  const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: put.key, VersionId: put.versionId }));
  return { mode: head.ObjectLockMode, until: head.ObjectLockRetainUntilDate?.getTime() };
}

const days = (put: Put, n: number) => put.lastModified.getTime() + n * DAY_MS;

describe('retention keeper on moto', () => {
  test('given a replica with the primary\'s GOVERNANCE lock, when the keeper runs, then it is COMPLIANCE until LastModified + its tier\'s days', async () => {
    const put = await replicate('orders-db/daily-1.dump.age', { tier: 'daily', mode: ObjectLockRetentionMode.GOVERNANCE, days: 7 });
    const result = await keepRetention(created(put), s3, config);
    expect(result).toMatchObject({ action: RetentionAction.LOCKED, tierTag: 'daily', days: 10, before: { mode: 'GOVERNANCE' } });
    expect(await lockOf(put)).toEqual({ mode: 'COMPLIANCE', until: days(put, 10) });
  });

  test('given a version the keeper made COMPLIANCE, when it is deleted with the governance bypass, then moto refuses and the version stays', async () => {
    const put = await replicate('orders-db/daily-2.dump.age', { tier: 'daily', mode: ObjectLockRetentionMode.GOVERNANCE, days: 7 });
    await keepRetention(created(put), s3, config);
    await expect(s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: put.key, VersionId: put.versionId, BypassGovernanceRetention: true })))
      .rejects.toMatchObject({ name: 'AccessDenied' });
    expect((await lockOf(put)).mode).toBe('COMPLIANCE');
  });

  test('control: the same GOVERNANCE version, not kept, is deleted with the bypass', async () => {
    const put = await replicate('orders-db/daily-3.dump.age', { tier: 'daily', mode: ObjectLockRetentionMode.GOVERNANCE, days: 7 });
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: put.key, VersionId: put.versionId, BypassGovernanceRetention: true }));
    await expect(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: put.key, VersionId: put.versionId }))).rejects.toMatchObject({ name: 'NotFound' });
  });

  test('given a COMPLIANCE lock already longer than the tier\'s, when the keeper runs, then it is left as it is', async () => {
    const put = await replicate('orders-db/hourly-1.dump.age', { tier: 'hourly', mode: ObjectLockRetentionMode.COMPLIANCE, days: 30 });
    const before = await lockOf(put);
    const result = await keepRetention(created(put), s3, config);
    expect(result.action).toBe(RetentionAction.KEPT);
    expect(await lockOf(put)).toEqual(before);
  });

  test('given a COMPLIANCE lock shorter than the tier\'s, when the keeper runs, then its date moves later', async () => {
    const put = await replicate('orders-db/weekly-1.dump.age', { tier: 'weekly', mode: ObjectLockRetentionMode.COMPLIANCE, days: 3 });
    expect((await keepRetention(created(put), s3, config)).action).toBe(RetentionAction.EXTENDED);
    expect(await lockOf(put)).toEqual({ mode: 'COMPLIANCE', until: days(put, 28) });
  });

  test('given a GOVERNANCE lock longer than the tier\'s but within the vault\'s longest, when the keeper runs, then COMPLIANCE keeps that date', async () => {
    const put = await replicate('orders-db/hourly-2.dump.age', { tier: 'hourly', mode: ObjectLockRetentionMode.GOVERNANCE, days: 30 });
    const before = await lockOf(put);
    expect((await keepRetention(created(put), s3, config)).action).toBe(RetentionAction.LOCKED);
    expect(await lockOf(put)).toEqual({ mode: 'COMPLIANCE', until: before.until });
  });

  test('given a tier tag that is no tier, when the keeper runs, then it locks for the longest tier\'s days and says so', async () => {
    const put = await replicate('orders-db/odd.dump.age', { tier: 'forever-ish', mode: ObjectLockRetentionMode.GOVERNANCE, days: 1 });
    const lines: string[] = [];
    const result = await keepRetention(created(put), s3, config, (line) => lines.push(line));
    expect(result).toMatchObject({ tierTag: 'forever-ish', days: 372, action: RetentionAction.LOCKED });
    expect(await lockOf(put)).toEqual({ mode: 'COMPLIANCE', until: days(put, 372) });
    expect(lines).toEqual([expect.stringMatching(/backup-tier="forever-ish" is not a known tier \(hourly, daily, weekly, monthly\): locked for the longest tier's 372 days/)]);
  });

  test('given an untagged object (a pointer), when the keeper runs, then it gets the vault\'s default lock days', async () => {
    const put = await replicate('orders-db/latest.json', { mode: ObjectLockRetentionMode.GOVERNANCE, days: 1 });
    expect(await keepRetention(created(put), s3, config)).toMatchObject({ days: 7, action: RetentionAction.LOCKED });
    expect(await lockOf(put)).toEqual({ mode: 'COMPLIANCE', until: days(put, 7) });
  });

  test('given an hourly backup, when the keeper runs, then it is locked at least the vault\'s default lock days', async () => {
    const put = await replicate('orders-db/hourly-3.dump.age', { tier: 'hourly', mode: ObjectLockRetentionMode.GOVERNANCE, days: 1 });
    expect(await keepRetention(created(put), s3, config)).toMatchObject({ days: 7 });
    expect(await lockOf(put)).toEqual({ mode: 'COMPLIANCE', until: days(put, 7) });
  });

  test('given a lock beyond the longest the vault keeps anything, when the keeper runs, then it refuses and the version stays GOVERNANCE', async () => {
    const put = await replicate('orders-db/century.dump.age', { tier: 'monthly', mode: ObjectLockRetentionMode.GOVERNANCE, days: 36000 });
    await expect(keepRetention(created(put), s3, config)).rejects.toThrow(
      /locked \(GOVERNANCE\) until .* beyond the longest this vault keeps anything \(372 days, .*\)\. Refused to make that COMPLIANCE/);
    expect((await lockOf(put)).mode).toBe('GOVERNANCE');
  });

  test('given a COMPLIANCE lock from the primary beyond the longest the vault keeps anything, when the keeper runs, then it fails so that the alarm says so', async () => {
    const put = await replicate('orders-db/century-compliance.dump.age', { tier: 'monthly', mode: ObjectLockRetentionMode.COMPLIANCE, days: 36000 });
    await expect(keepRetention(created(put), s3, config)).rejects.toThrow(
      /locked \(COMPLIANCE\) until .* beyond the longest this vault keeps anything \(372 days, .*\)\. It came COMPLIANCE-locked from the primary/);
  });

  test('given a deleted version, when the keeper runs, then it fails saying the version is gone and where to look', async () => {
    const put = await replicate('orders-db/gone.dump.age', { tier: 'daily', mode: ObjectLockRetentionMode.GOVERNANCE, days: 1 });
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: put.key, VersionId: put.versionId, BypassGovernanceRetention: true }));
    await expect(keepRetention(created(put), s3, config)).rejects.toThrow(
      new RegExp(`s3://${bucket}/${put.key} version ${put.versionId} does not exist: it was deleted before its COMPLIANCE lock could be set`));
  });

  test('given a key that was never there, when the keeper runs, then it fails the same way', async () => {
    await expect(keepRetention(created({ key: `${PREFIX}orders-db/never.dump.age`, versionId: 'abc' }), s3, config))
      .rejects.toThrow(/never.dump.age version abc does not exist/);
  });

  test('given events that are not the vault\'s, when the keeper runs, then it refuses them in words and touches nothing', async () => {
    const put = await replicate('orders-db/daily-4.dump.age', { tier: 'daily', mode: ObjectLockRetentionMode.GOVERNANCE, days: 1 });
    await expect(keepRetention(created(put, 'someone-elses-bucket'), s3, config)).rejects.toThrow(/names bucket "someone-elses-bucket", not the vault's/);
    await expect(keepRetention(created({ key: put.key }), s3, config)).rejects.toThrow(/without a version id/);
    await expect(keepRetention(created({ key: 'elsewhere/x', versionId: put.versionId }), s3, config)).rejects.toThrow(/outside the store's prefix 'backups\/'/);
    await expect(keepRetention({ ...created(put), 'detail-type': 'Object Deleted' }, s3, config)).rejects.toThrow(/is not an S3 "Object Created" event/);
    await expect(keepRetention(null as unknown as ObjectCreatedEvent, s3, config)).rejects.toThrow(/is not an S3 "Object Created" event/);
    expect((await lockOf(put)).mode).toBe('GOVERNANCE');
  });

  test('given the environment the construct sets, when the handler runs, then it keeps the version and logs one JSON line', async () => {
    const put = await replicate('orders-db/monthly-1.dump.age', { tier: 'monthly', mode: ObjectLockRetentionMode.GOVERNANCE, days: 7 });
    const env = {
      AWS_ENDPOINT_URL_S3: endpoint, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: VAULT_ACCOUNT, AWS_SECRET_ACCESS_KEY: 'testing',
      BUCKET_NAME: bucket, KEY_PREFIX: PREFIX, TIER_DAYS: JSON.stringify(config.tierDays), DEFAULT_DAYS: '7',
    };
    const saved = { ...process.env };
    const log = jest.spyOn(console, 'log').mockImplementation(() => undefined);
    Object.assign(process.env, env);
    try {
      expect(await handler(created(put))).toMatchObject({ action: RetentionAction.LOCKED, days: 372 });
      expect(log).toHaveBeenCalledWith(expect.stringContaining('"action":"locked"'));
    } finally {
      log.mockRestore();
      for (const name of Object.keys(env)) {
        if (saved[name] === undefined) delete process.env[name];
        else process.env[name] = saved[name];
      }
    }
    expect(await lockOf(put)).toEqual({ mode: 'COMPLIANCE', until: days(put, 372) });
  });

  test('given a broken environment, when the configuration is read, then it names the variable', () => {
    expect(() => configFromEnv({ BUCKET_NAME: 'b', TIER_DAYS: '{"hourly":1,"daily":7,"weekly":28}', DEFAULT_DAYS: '7' }))
      .toThrow(/TIER_DAYS.monthly holds undefined, not a whole number of days/);
    expect(() => configFromEnv({ TIER_DAYS: '{}' })).toThrow(/BUCKET_NAME is not set/);
    expect(() => configFromEnv({ BUCKET_NAME: 'b', TIER_DAYS: 'x' })).toThrow(/TIER_DAYS is not JSON/);
    expect(configFromEnv({ BUCKET_NAME: 'b', TIER_DAYS: JSON.stringify(config.tierDays), DEFAULT_DAYS: '7' }))
      .toEqual({ bucket: 'b', prefix: '', tierDays: config.tierDays, defaultDays: 7 });
  });
});
