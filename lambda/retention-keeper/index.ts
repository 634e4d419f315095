/**
 * Retention keeper, in the vault's account: turns each new object version of the vault into a COMPLIANCE lock.
 *
 * A replica keeps the retention of its source object (GOVERNANCE in the primary), which overrides the vault bucket's
 * default, and GOVERNANCE is a lock some principal can bypass. So on every "Object Created" event of the vault bucket
 * (replicas fire it too) this function reads the version's tier tag and lock, and puts
 * `COMPLIANCE until max(existing retain-until, LastModified + tier days)`: nobody, not even the vault account's root,
 * can then delete the version or shorten its lock before that date. It never shortens a lock and never weakens one.
 *
 * Everything it reads came from the primary account, which this vault must survive: the event (checked against the
 * one bucket and prefix it keeps), the tier tag (a value that is not a known tier gets the longest tier's days, and a
 * log line says so) and the existing lock. A lock beyond the longest the vault ever sets is refused rather than made
 * COMPLIANCE: a compromised primary could otherwise commit the vault to keeping an object for a century. The object
 * keeps its GOVERNANCE lock (which only the vault's break-glass can bypass) and the invocation fails, so that the
 * retries end in the dead-letter queue and its alarm. A version that no longer exists fails the same way.
 */
import {
  GetObjectTaggingCommand, HeadObjectCommand, ObjectLockRetentionMode, PutObjectRetentionCommand, S3Client,
} from '@aws-sdk/client-s3';
import { TIERS, TIER_TAG, Tier } from '../../lib/contract/tiers';
import { createS3Client, isNotFound, s3Problem } from '../shared/aws';

/** The part of an EventBridge "Object Created" event this function reads; every field is checked. */
export interface ObjectCreatedEvent {
  readonly 'source'?: unknown;
  readonly 'detail-type'?: unknown;
  readonly 'detail'?: {
    readonly bucket?: { readonly name?: unknown };
    readonly object?: { readonly 'key'?: unknown; readonly 'version-id'?: unknown };
  };
}

/** What the vault keeps, from the function's environment (the ReplicaStore sets it). */
export interface RetentionKeeperConfig {
  readonly bucket: string;
  /** The store's key prefix: objects outside it are not the vault's backups and are refused. */
  readonly prefix: string;
  /** COMPLIANCE days per tier, counted from the version's LastModified. */
  readonly tierDays: Readonly<Record<Tier, number>>;
  /** COMPLIANCE days of an untagged object (pointers, manifests, runbooks, reports): the vault's default lock. */
  readonly defaultDays: number;
}

/** What happened to one version. */
export enum RetentionAction {
  /** It had no lock, or a GOVERNANCE one: it is now COMPLIANCE. */
  LOCKED = 'locked',
  /** It was COMPLIANCE until too early: the date moved later. */
  EXTENDED = 'extended',
  /** It was COMPLIANCE until the target or later: left as it was. */
  KEPT = 'kept',
}

export interface RetentionResult {
  readonly key: string;
  readonly versionId: string;
  /** The tier tag's value as stored (untrusted), when there is one. */
  readonly tierTag?: string;
  /** The days the version is owed: its tier's, the longest tier's for an unknown tag, the default for none. */
  readonly days: number;
  readonly before: { readonly mode?: string; readonly retainUntil?: string };
  readonly retainUntil: string;
  readonly action: RetentionAction;
}

const DAY_MS = 86_400_000;
/** S3's longest key is 1,024 bytes. */
const MAX_KEY_BYTES = 1024;
const KEEPER_ACCESS = 'the retention keeper\'s role needs s3:GetObject*, GetObjectRetention, GetObjectVersionTagging, PutObjectRetention and ' +
  'BypassGovernanceRetention on the vault\'s objects, and the vault\'s write-once policy must exempt its path (ROLE_PATHS.retentionKeeper)';

/** The longest lock this keeper ever sets, in days: the most a version can be owed. */
export function ceilingDays(config: RetentionKeeperConfig): number {
  return Math.max(config.defaultDays, ...TIERS.map((t) => config.tierDays[t]));
}

/** The bucket, key and version the event names, refused unless it is an Object Created event of the kept bucket and prefix. */
export function parseEvent(event: ObjectCreatedEvent, config: RetentionKeeperConfig): { key: string; versionId: string } {
  const where = 'the event';
  if (event?.source !== 'aws.s3' || event['detail-type'] !== 'Object Created') {
    throw new Error(`${where} is not an S3 "Object Created" event (source ${JSON.stringify(event?.source)}, detail-type ` +
      `${JSON.stringify(event?.['detail-type'])}): the vault's EventBridge rule sends only those`);
  }
  const bucket = event.detail?.bucket?.name;
  if (bucket !== config.bucket) {
    throw new Error(`${where} names bucket ${JSON.stringify(bucket)}, not the vault's ${config.bucket}: refused, this function keeps one bucket`);
  }
  const key = event.detail?.object?.key;
  if (typeof key !== 'string' || !key || Buffer.byteLength(key) > MAX_KEY_BYTES) {
    throw new Error(`${where} has no usable object key (${JSON.stringify(key)?.slice(0, 100)}): S3 keys are 1 to ${MAX_KEY_BYTES} bytes`);
  }
  if (!key.startsWith(config.prefix)) {
    throw new Error(`${where} names s3://${bucket}/${key}, outside the store's prefix '${config.prefix}': refused`);
  }
  const versionId = event.detail?.object?.['version-id'];
  if (typeof versionId !== 'string' || !versionId || versionId.length > 1024 || versionId === 'null') {
    throw new Error(`${where} names s3://${bucket}/${key} without a version id (${JSON.stringify(versionId)}): the vault is versioned, and ` +
      'locking "the current version" could lock another one than the event speaks of');
  }
  return { key, versionId };
}

/** The days a version is owed by its tier tag, and the log line when the tag is not to be trusted. */
export function owedDays(tierTag: string | undefined, config: RetentionKeeperConfig): { days: number; warning?: string } {
  if (tierTag === undefined) return { days: config.defaultDays };
  if ((TIERS as readonly string[]).includes(tierTag)) return { days: Math.max(config.tierDays[tierTag as Tier], config.defaultDays) };
  const longest = ceilingDays(config);
  return {
    days: longest,
    warning: `tag ${TIER_TAG}=${JSON.stringify(tierTag.slice(0, 64))} is not a known tier (${TIERS.join(', ')}): locked for the longest ` +
      `tier's ${longest} days instead. Something other than Restorable's agent tagged it; find the writer in the primary account`,
  };
}

/** An S3 failure in words, with what the role needs when access was denied. */
function problem(action: string, config: RetentionKeeperConfig, key: string, versionId: string, err: unknown): Error {
  return s3Problem(action, config.bucket, `${key} (version ${versionId})`, err, KEEPER_ACCESS);
}

/** HeadObject of the version; EventBridge keys may come URL-encoded, so the decoded key is tried when the given one is absent. */
async function headVersion(s3: S3Client, config: RetentionKeeperConfig, key: string, versionId: string) {
  const candidates = [key];
  try {
    const decoded = decodeURIComponent(key.replace(/\+/g, ' '));
    if (decoded !== key && decoded.startsWith(config.prefix)) candidates.push(decoded);
  } catch {
    // Not URL-encoded: the key as given is the only candidate.
  }
  for (const candidate of candidates) {
    try {
      return { key: candidate, head: await s3.send(new HeadObjectCommand({ Bucket: config.bucket, Key: candidate, VersionId: versionId })) };
    } catch (err) {
      if (!isNotFound(err)) throw problem('HeadObject', config, candidate, versionId, err);
    }
  }
  throw new Error(`s3://${config.bucket}/${key} version ${versionId} does not exist: it was deleted before its COMPLIANCE lock could be set, ` +
    'or never existed. In a vault only break-glass can delete a locked version: find who deleted it (CloudTrail data events, the access ' +
    'logs), and check that the primary still holds the backup');
}

async function tierTagOf(s3: S3Client, config: RetentionKeeperConfig, key: string, versionId: string): Promise<string | undefined> {
  try {
    const out = await s3.send(new GetObjectTaggingCommand({ Bucket: config.bucket, Key: key, VersionId: versionId }));
    return out.TagSet?.find((t) => t.Key === TIER_TAG)?.Value;
  } catch (err) {
    throw problem('GetObjectTagging', config, key, versionId, err);
  }
}

/** Makes one version's lock COMPLIANCE until at least its LastModified plus the days it is owed. */
export async function keepRetention(event: ObjectCreatedEvent, s3: S3Client, config: RetentionKeeperConfig,
  log: (line: string) => void = console.log): Promise<RetentionResult> {
  const named = parseEvent(event, config);
  const { key, head } = await headVersion(s3, config, named.key, named.versionId);
  const versionId = named.versionId;
  const where = `s3://${config.bucket}/${key} version ${versionId}`;
  if (!head.LastModified) throw new Error(`${where}: S3 returned no Last-Modified, so the lock's start is unknown`);
  const tierTag = await tierTagOf(s3, config, key, versionId);
  const owed = owedDays(tierTag, config);
  if (owed.warning) log(`${where}: ${owed.warning}`);

  const mode = head.ObjectLockMode;
  const existing = head.ObjectLockRetainUntilDate;
  const before = { mode, retainUntil: existing?.toISOString() };
  const target = new Date(head.LastModified.getTime() + owed.days * DAY_MS);
  // First, whatever the mode: a COMPLIANCE lock the primary set beyond the ceiling arrives with the replica, and must
  // alarm rather than pass as kept (the vault would pay for it, undeletable, for as long as the primary chose).
  const ceiling = new Date(head.LastModified.getTime() + ceilingDays(config) * DAY_MS);
  if (existing && existing > ceiling) {
    const undo = mode === ObjectLockRetentionMode.COMPLIANCE
      ? 'It came COMPLIANCE-locked from the primary, and nobody can shorten that: it is stored and billed until then.'
      : 'Refused to make that COMPLIANCE, which nobody could undo; the version keeps its lock, which only the vault\'s break-glass can bypass.';
    throw new Error(`${where} is locked (${mode}) until ${existing.toISOString()}, beyond the longest this vault keeps anything ` +
      `(${ceilingDays(config)} days, until ${ceiling.toISOString()}). ${undo} Find what set it in the primary account; if the ` +
      'primary\'s lock is meant to be that long, give the vault keep counts or a default lock at least as long');
  }
  if (mode === ObjectLockRetentionMode.COMPLIANCE && existing && existing >= target) {
    return { key, versionId, tierTag, days: owed.days, before, retainUntil: existing.toISOString(), action: RetentionAction.KEPT };
  }
  const retainUntil = existing && existing > target ? existing : target;
  try {
    await s3.send(new PutObjectRetentionCommand({
      Bucket: config.bucket,
      Key: key,
      VersionId: versionId,
      Retention: { Mode: ObjectLockRetentionMode.COMPLIANCE, RetainUntilDate: retainUntil },
      // Changing GOVERNANCE to COMPLIANCE is a change to a governance lock: S3 wants the bypass header for it.
      BypassGovernanceRetention: mode === ObjectLockRetentionMode.GOVERNANCE ? true : undefined,
    }));
  } catch (err) {
    throw problem('PutObjectRetention', config, key, versionId, err);
  }
  const action = mode === ObjectLockRetentionMode.COMPLIANCE ? RetentionAction.EXTENDED : RetentionAction.LOCKED;
  return { key, versionId, tierTag, days: owed.days, before, retainUntil: retainUntil.toISOString(), action };
}

function wholeDaysEnv(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 36500) {
    throw new Error(`environment variable ${name} holds ${JSON.stringify(value)}, not a whole number of days from 1 to 36500: the ReplicaStore construct sets it`);
  }
  return value;
}

/** The configuration from the environment the ReplicaStore sets: BUCKET_NAME, KEY_PREFIX, TIER_DAYS (JSON) and DEFAULT_DAYS. */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): RetentionKeeperConfig {
  const bucket = env.BUCKET_NAME;
  if (!bucket) throw new Error('environment variable BUCKET_NAME is not set: the ReplicaStore construct sets it');
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(env.TIER_DAYS ?? '') as Record<string, unknown>;
  } catch {
    throw new Error(`environment variable TIER_DAYS is not JSON (${JSON.stringify(env.TIER_DAYS)}): the ReplicaStore construct sets it`);
  }
  const tierDays = Object.fromEntries(TIERS.map((t) => [t, wholeDaysEnv(`TIER_DAYS.${t}`, parsed?.[t])])) as Record<Tier, number>;
  return { bucket, prefix: env.KEY_PREFIX ?? '', tierDays, defaultDays: wholeDaysEnv('DEFAULT_DAYS', Number(env.DEFAULT_DAYS)) };
}

export async function handler(event: ObjectCreatedEvent): Promise<RetentionResult> {
  const result = await keepRetention(event, createS3Client(), configFromEnv());
  console.log(JSON.stringify(result));
  return result;
}
