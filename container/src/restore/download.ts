/**
 * Which backup to read, its manifest, and its bytes: the front half of `verify`, `restore` and
 * `restore-test`. The stored bytes pass through a tap that hashes and counts them, so the SHA-256
 * is checked against the manifest without a second read.
 */
import { createHash } from 'node:crypto';
import { Readable, Transform, TransformCallback } from 'node:stream';
import { GetObjectCommand, ListObjectVersionsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import {
  ContractError, DumpFormat, MANIFEST_SUFFIX, Manifest, dayPrefix, latestKey, manifestKeyFor, parseBackupKey, parseLatest, parseManifest, sourceNameProblem,
  sourcePrefix,
} from '../../../lib/contract';
import { OptionKind, OptionSpecs, ParsedArgs, SOURCE_OPTIONS } from '../shared/args';
import { AgentError, UsageError } from '../shared/errors';
import { log } from '../shared/log';
import { getText, listAll, s3Problem } from '../shared/s3';

export const SELECTION_OPTIONS: OptionSpecs = {
  ...SOURCE_OPTIONS,
  'key': { kind: OptionKind.STRING, placeholder: 'KEY', description: 'the backup object (default: the one latest.json names)' },
  'at': { kind: OptionKind.STRING, placeholder: 'ISO-TIME', description: 'the newest backup started at or before this time' },
  'version-id': { kind: OptionKind.STRING, placeholder: 'ID', description: 'an older version of the backup object (versioned buckets)' },
  'as-of': {
    kind: OptionKind.STRING, placeholder: 'ISO-TIME',
    description: 'read latest.json, the manifest, the dump and its companions each as the newest version S3 stored at or before this time ' +
      '(versioned buckets; after a compromise: the last time known good)',
  },
};

export interface BackupLocation {
  readonly bucket: string;
  readonly prefix?: string;
  readonly source: string;
  readonly key?: string;
  readonly at?: Date;
  readonly versionId?: string;
  /** Every object is read as the newest version S3 stored at or before this time (its LastModified, never a time written inside). */
  readonly asOf?: Date;
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/i;

/** --as-of: an ISO 8601 time with its zone, not in the future. */
export function parseAsOf(text: string, now: Date = new Date()): Date {
  const asOf = new Date(text);
  if (!ISO_TIME.test(text) || Number.isNaN(asOf.getTime())) {
    throw new UsageError(`--as-of must be an ISO 8601 time with its zone, such as 2026-11-26T03:00:00Z (got '${text}')`);
  }
  if (asOf.getTime() > now.getTime()) {
    throw new UsageError(`--as-of ${text} is in the future (it is ${now.toISOString()}): give the last time the bucket is known to have been good`);
  }
  return asOf;
}

export function backupLocation(args: ParsedArgs): BackupLocation {
  const source = args.requiredString('source');
  const nameProblem = sourceNameProblem(source);
  if (nameProblem) throw new UsageError(nameProblem);
  const key = args.string('key');
  const atText = args.string('at');
  if (key !== undefined && atText !== undefined) throw new UsageError('give --key or --at, not both');
  const at = atText === undefined ? undefined : new Date(atText);
  if (at && Number.isNaN(at.getTime())) throw new UsageError(`--at must be an ISO 8601 time such as 2026-11-26T03:00:00Z (got '${atText}')`);
  const versionId = args.string('version-id');
  const asOfText = args.string('as-of');
  if (asOfText !== undefined && atText !== undefined) {
    throw new UsageError('give --at or --as-of, not both: --at trusts the times written in latest.json and in the keys, which --as-of does not. ' +
      'To read an older backup as it was stored then, name it with --key and give --as-of');
  }
  if (asOfText !== undefined && versionId !== undefined) throw new UsageError('give --version-id or --as-of, not both: --as-of picks the version of every object read');
  const asOf = asOfText === undefined ? undefined : parseAsOf(asOfText);
  return { bucket: args.requiredString('bucket'), prefix: args.string('prefix'), source, key, at, versionId, asOf };
}

export interface SelectedBackup {
  readonly bucket: string;
  readonly key: string;
  readonly versionId?: string;
  readonly manifestKey: string;
  readonly manifest: Manifest;
  /** With --as-of: the version of each companion (by key) to read, that of the time given. */
  readonly companionVersionIds?: ReadonlyMap<string, string>;
}

export interface StoredVersion {
  readonly versionId: string;
  /** When S3 stored it: set by S3, not by its writer. */
  readonly lastModified: Date;
}

/**
 * The newest version of `key` that S3 stored at or before `asOf`, by its LastModified (set by S3; times written inside
 * pointers, manifests or keys are never trusted), from ListObjectVersions on the key itself, page by page: S3 lists a
 * key's versions newest first, before those of longer keys that start with it. Delete markers are passed over (what
 * was deleted is read as it was before). Fails, naming the key and its oldest version's time, when there is none.
 */
export async function versionAsOf(s3: S3Client, bucket: string, key: string, asOf: Date, pageSize?: number): Promise<StoredVersion> {
  let keyMarker: string | undefined;
  let versionIdMarker: string | undefined;
  let oldest: Date | undefined;
  for (;;) {
    let page;
    try {
      page = await s3.send(new ListObjectVersionsCommand({
        Bucket: bucket, Prefix: key, KeyMarker: keyMarker, VersionIdMarker: versionIdMarker, MaxKeys: pageSize,
      }));
    } catch (err) {
      throw s3Problem('ListObjectVersions', bucket, key, err);
    }
    for (const version of page.Versions ?? []) {
      if (version.Key !== key || !version.VersionId || !version.LastModified) continue;
      if (version.LastModified.getTime() <= asOf.getTime()) return { versionId: version.VersionId, lastModified: version.LastModified };
      if (!oldest || version.LastModified.getTime() < oldest.getTime()) oldest = version.LastModified;
    }
    if (!page.IsTruncated || page.NextKeyMarker !== key) break;
    keyMarker = page.NextKeyMarker;
    versionIdMarker = page.NextVersionIdMarker;
  }
  throw new AgentError(`s3://${bucket}/${key} has no version stored at or before ${asOf.toISOString()}: ` + (oldest
    ? `its oldest version was stored at ${oldest.toISOString()}. Give a later --as-of (\`aws s3api list-object-versions\` shows the versions)`
    : 'it has no version at all (check --bucket, --prefix, --source and --key)'));
}

/** The newest backup's key named by latest.json, with its start, or undefined when there is none. */
async function latestPointer(s3: S3Client, location: BackupLocation): Promise<{ key: string; startedAt: Date } | undefined> {
  const pointerKey = latestKey(location.prefix, location.source);
  const versionId = location.asOf ? (await versionAsOf(s3, location.bucket, pointerKey, location.asOf)).versionId : undefined;
  const pointer = await getText(s3, location.bucket, pointerKey, versionId);
  if (!pointer) return undefined;
  const parsed = parseLatest(pointer.text, `s3://${location.bucket}/${pointerKey}`);
  return { key: parsed.key, startedAt: new Date(parsed.startedAt) };
}

/** The day of the oldest backup: keys sort by date, and digits sort before latest.json and restore-tests/. */
async function oldestDay(s3: S3Client, bucket: string, base: string): Promise<Date | undefined> {
  let page;
  try {
    page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: base, MaxKeys: 1 }));
  } catch (err) {
    throw s3Problem('ListObjectsV2', bucket, base, err);
  }
  const day = /^(\d{4})\/(\d{2})\/(\d{2})\//.exec(page.Contents?.[0]?.Key?.slice(base.length) ?? '');
  return day ? new Date(Date.UTC(Number(day[1]), Number(day[2]) - 1, Number(day[3]))) : undefined;
}

const DAY_MS = 86_400_000;

/**
 * The newest backup that started at or before `at`. latest.json answers when `at` is after it; otherwise
 * the date-partitioned prefixes are listed one day at a time, walking backwards from `at` and stopping at
 * the oldest backup's day. Backups without a manifest were never recorded as good and are skipped.
 */
async function newestAtOrBefore(s3: S3Client, location: BackupLocation, at: Date): Promise<string> {
  const { bucket, source } = location;
  const latest = await latestPointer(s3, location);
  if (latest && latest.startedAt.getTime() <= at.getTime()) return latest.key;
  const base = sourcePrefix(location.prefix, source);
  const oldest = await oldestDay(s3, bucket, base);
  const startOfDay = (d: Date) => Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
  if (oldest) {
    for (let day = startOfDay(at); day >= startOfDay(oldest); day -= DAY_MS) {
      const keys = new Set((await listAll(s3, bucket, dayPrefix(location.prefix, source, new Date(day)))).map((o) => o.Key!));
      const candidates = [...keys]
        .map((key) => ({ key, startedAt: parseBackupKey(key)?.startedAt.getTime() ?? Infinity }))
        .filter((c) => c.startedAt <= at.getTime())
        .sort((a, b) => b.startedAt - a.startedAt);
      for (const { key } of candidates) {
        if (keys.has(manifestKeyFor(key))) return key;
        log.warn('skipping a backup without a manifest: it was never recorded as good', { key });
      }
    }
  }
  throw new AgentError(`no backup of '${source}' started at or before ${at.toISOString()} in s3://${bucket}/${base}: ` +
    `run \`restorable list --source ${source} --bucket ${bucket}\` to see what exists`);
}

/**
 * A deleted backup leaves delete markers on its dump and its manifest alike; restoring an older version of
 * the dump (--version-id) then reads the newest version of its manifest that is not a delete marker.
 */
async function newestManifestVersion(s3: S3Client, bucket: string, manifestKey: string): Promise<{ text: string } | undefined> {
  let listing;
  try {
    listing = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: manifestKey }));
  } catch (err) {
    throw s3Problem('ListObjectVersions', bucket, manifestKey, err);
  }
  const newest = (listing.Versions ?? []).filter((v) => v.Key === manifestKey)
    .sort((a, b) => (b.LastModified?.getTime() ?? 0) - (a.LastModified?.getTime() ?? 0))[0];
  if (!newest?.VersionId) return undefined;
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: manifestKey, VersionId: newest.VersionId }));
    log.info('the manifest is deleted; reading its newest version', { manifestKey, manifestVersionId: newest.VersionId });
    return { text: await out.Body!.transformToString('utf8') };
  } catch (err) {
    throw s3Problem('GetObject', bucket, manifestKey, err);
  }
}

/**
 * A recorded backup of a source (one with a manifest), from one listing of its prefix, or undefined when the first page
 * holds none: dated keys sort first, so the page holds the oldest backups. Tells a lost latest.json from a source
 * that never had a good backup.
 */
export async function someRecordedBackup(s3: S3Client, bucket: string, prefix: string | undefined, source: string): Promise<string | undefined> {
  const base = sourcePrefix(prefix, source);
  let page;
  try {
    page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: base }));
  } catch (err) {
    throw s3Problem('ListObjectsV2', bucket, base, err);
  }
  const manifest = (page.Contents ?? []).map((o) => o.Key ?? '')
    .find((key) => key.endsWith(MANIFEST_SUFFIX) && parseBackupKey(key.slice(0, -MANIFEST_SUFFIX.length))?.source === source);
  return manifest?.slice(0, -MANIFEST_SUFFIX.length);
}

/** Words for a missing latest.json when backups of the source are recorded: the pointer was lost, not the backups. */
export function lostPointerProblem(bucket: string, pointerKey: string, recorded: string): string {
  return `s3://${bucket}/${pointerKey} does not exist, yet backups are recorded beside it (the oldest: s3://${bucket}/${recorded}): ` +
    'the pointer was deleted or lost. Restore it from an older version (the bucket is versioned), or give --key or --at ' +
    '(`restorable list` shows the backups); the next backup writes a new one';
}

/**
 * Picks the backup (--key, --at, or latest.json) and reads its manifest, which must exist and describe it. With --as-of,
 * latest.json, the manifest, the dump and its companions are each read as the version S3 stored at or before that time.
 */
export async function selectBackup(s3: S3Client, location: BackupLocation): Promise<SelectedBackup> {
  const { bucket, source } = location;
  let key = location.key;
  if (key !== undefined) {
    if (parseBackupKey(key)?.source !== source || !key.startsWith(sourcePrefix(location.prefix, source))) {
      throw new UsageError(`--key ${key} is not a backup of '${source}' under ${sourcePrefix(location.prefix, source)}: ` +
        `keys look like ${sourcePrefix(location.prefix, source)}YYYY/MM/DD/${source}_YYYY-MM-DD_HH-MM-SSZ.{${Object.values(DumpFormat).join(',')}}.zst.age`);
    }
  } else if (location.at) {
    key = await newestAtOrBefore(s3, location, location.at);
  } else {
    const latest = await latestPointer(s3, location);
    if (!latest) {
      // Only to choose the words: a role that may not list the prefix gets the plain ones.
      const recorded = await someRecordedBackup(s3, bucket, location.prefix, source).catch(() => undefined);
      if (recorded) throw new AgentError(lostPointerProblem(bucket, latestKey(location.prefix, source), recorded));
      throw new AgentError(`s3://${bucket}/${latestKey(location.prefix, source)} does not exist: '${source}' has no recorded backup under ` +
        'this bucket and prefix (check --bucket, --prefix and --source, or give --key)');
    }
    key = latest.key;
  }
  const manifestKey = key.endsWith(MANIFEST_SUFFIX) ? key : manifestKeyFor(key);
  const { asOf } = location;
  const asOfVersion = async (k: string) => asOf ? (await versionAsOf(s3, bucket, k, asOf)).versionId : undefined;
  const manifestVersionId = await asOfVersion(manifestKey);
  const text = await getText(s3, bucket, manifestKey, manifestVersionId) ??
    (location.versionId ? await newestManifestVersion(s3, bucket, manifestKey) : undefined);
  if (!text) {
    throw new AgentError(`no manifest at s3://${bucket}/${manifestKey}: without it the backup cannot be checked (no SHA-256, no row counts), ` +
      `so it is not used. A backup without a manifest failed before it was recorded, or its manifest was deleted. ` +
      `Pick another with \`restorable list --source ${source} --bucket ${bucket}\`.`);
  }
  let manifest: Manifest;
  try {
    manifest = parseManifest(text.text, `s3://${bucket}/${manifestKey}`);
  } catch (err) {
    throw new AgentError(err instanceof ContractError ? `${err.message}: ${err.fix}` : (err as Error).message);
  }
  if (manifest.key !== key || manifest.source !== source) {
    throw new AgentError(`manifest s3://${bucket}/${manifestKey} describes ${manifest.source}'s ${manifest.key}, not ${key}: refusing to use it`);
  }
  const versionId = (await asOfVersion(key)) ?? location.versionId;
  const companionVersionIds = asOf
    ? new Map(await Promise.all(manifest.companions.map(async (c) => [c.key, (await asOfVersion(c.key))!] as const)))
    : undefined;
  log.info('backup selected', {
    key, startedAt: manifest.startedAt, size: manifest.size, versionId, ...(asOf ? { asOf: asOf.toISOString(), manifestVersionId } : {}),
  });
  return { bucket, key, versionId, manifestKey, manifest, companionVersionIds };
}

/**
 * Ties two reads of one object together: the first records the ETag S3 answered with, the second asks for that one
 * (If-Match), so that a table of contents read first describes the very bytes loaded after it.
 */
export interface ReadPin {
  etag?: string;
}

/** The stored bytes of an object (optionally an older version, or the one a pin names), as a stream. */
export async function openObject(s3: S3Client, bucket: string, key: string, versionId?: string, pin?: ReadPin): Promise<Readable> {
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId, IfMatch: pin?.etag }));
    if (pin && pin.etag === undefined) pin.etag = out.ETag;
    return out.Body as Readable;
  } catch (err) {
    if (pin?.etag !== undefined && (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode === 412) {
      throw new AgentError(`s3://${bucket}/${key} changed while it was being restored (its table of contents was read from another version): ` +
        'restore again, naming the version with --version-id');
    }
    throw s3Problem('GetObject', bucket, key, err);
  }
}

/** Starts downloading an object into a tap; a failed download fails the tap, and so its readers. */
export async function downloadInto(s3: S3Client, bucket: string, key: string, versionId: string | undefined, tap: VerifyingTap,
  pin?: ReadPin): Promise<void> {
  const body = await openObject(s3, bucket, key, versionId, pin);
  body.on('error', (err) => {
    tap.downloadError = err;
    tap.destroy(err);
  }).pipe(tap);
  // A reader that gave up (a failed restore) closes the tap: stop downloading too.
  tap.on('close', () => body.destroy());
}

export interface Expected {
  readonly size: number;
  readonly sha256: string;
}

/** Words for stored bytes that differ from what the manifest recorded. */
export function integrityProblem(where: string, expected: Expected, size: number, sha256: string): string | undefined {
  if (size === expected.size && sha256 === expected.sha256) return undefined;
  return `${where} does not match its manifest: read ${size} bytes with SHA-256 ${sha256}, ` +
    `the manifest recorded ${expected.size} bytes with SHA-256 ${expected.sha256}`;
}

/**
 * Hashes and counts the stored bytes. The end of the stream passes on only if they match the manifest,
 * so a consumer never sees a clean end of a wrong object; on a mismatch `onMismatch` runs first (to stop
 * the consumers), then the stream fails.
 */
export class VerifyingTap extends Transform {
  private readonly hash = createHash('sha256');
  bytes = 0;
  /** Set once the end was reached: the mismatch, or undefined when the bytes matched. */
  problem?: string;
  /** Set when the download itself failed (the tap then fails too). */
  downloadError?: Error;

  constructor(private readonly where: string, private readonly expected: Expected, private readonly onMismatch: () => void = () => undefined) {
    super();
    // Its owner reads failures from `problem` and `downloadError`; pipe() does not pass errors on.
    this.on('error', () => undefined);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.problem = integrityProblem(this.where, this.expected, this.bytes, this.hash.digest('hex'));
    if (!this.problem) return callback();
    this.onMismatch();
    callback(new AgentError(this.problem));
  }
}

/** Logs bytes, rate and ETA for a transfer of known size. */
export function progressSample(tap: VerifyingTap, total: number): () => { bytes: number; totalBytes: number; percent: number; etaSeconds?: number } {
  const started = Date.now();
  return () => {
    const elapsed = (Date.now() - started) / 1000;
    const rate = tap.bytes / Math.max(0.001, elapsed);
    return {
      bytes: tap.bytes, totalBytes: total, percent: Math.round((1000 * tap.bytes) / Math.max(1, total)) / 10,
      etaSeconds: tap.bytes > 0 ? Math.round((total - tap.bytes) / rate) : undefined,
    };
  };
}
