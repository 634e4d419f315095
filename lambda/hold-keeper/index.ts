/**
 * Hold keeper, on a schedule: the only principal that releases Object Lock legal holds. The dump tasks place a hold
 * on each backup latest.json names, but may never release one (the bucket policy denies it), so that a compromised
 * dump task cannot let the last good backup expire.
 *
 * It trusts proof, not pointers. Per source it keeps (ensures ON) the holds on
 * - the newest valid backup, the one latest.json names, with its manifest and globals companion, once the pointer
 *   agrees with its manifest and with what S3 stored; and
 * - the newest backup whose restore test passed, as the restore-test reports say (only restore-test roles may write
 *   under restore-tests/), with its manifest and companion;
 * - the newest backup whose proof is settled: its passing restore-test report was stored (the LastModified S3 set on
 *   the report object, never a time written inside it) at least the release grace ago (RELEASE_AFTER_SECONDS, 7 days
 *   by default), with its manifest and companion;
 * and releases (OFF) a hold only on a backup older than that settled one. With no settled proof nothing is released.
 * The grace is there because a dump role holds the public age recipient: it can write a decryptable fake backup
 * that passes its restore test against its own manifest. Without the grace the next run would release the hold on
 * the last real proven backup at once; with it, the size, freshness and restore-test alarms (and a person) have the
 * grace to notice the fake before any older hold goes. A source that has never had a restore-test report releases
 * nothing: a manifest the dump role wrote is never enough to release a hold.
 *
 * latest.json and every manifest are written by the dump role, so they are read as untrusted input: bounded reads,
 * keys that must lie under the source's prefix and name one of its backups, sizes S3 could store. A pointer that
 * fails any of that, or whose size or SHA-256 differs from its manifest's, or whose object's stored size differs from
 * the manifest's, is refused: not counted as the newest backup, logged, and published as PointerMismatch. Which
 * backup is older comes from both the time in its key and the LastModified S3 set, so neither a key nor a clock of
 * the writer's choosing can make a newer backup look older.
 *
 * A listing of the source's dated folders and its reports (never wal/ or base/) gives every backup object, its size and
 * LastModified; a GetObjectLegalHold follows for each one older than the settled backup (a dump task may place holds
 * anywhere under its prefix). A source that cannot be checked (an S3 error, an unreadable report) is reported and the
 * others go on; the invocation fails at the end, so the errors alarm fires. The event lists the sources, and those
 * that archive WAL, whose base backup and WAL holds base-backups.ts keeps on a point-in-time restore test's proof.
 */
import { CloudWatchClient, StandardUnit } from '@aws-sdk/client-cloudwatch';
import {
  GetObjectCommand, GetObjectLegalHoldCommand, ListObjectsV2Command, ListObjectsV2CommandOutput, ObjectLockLegalHoldStatus, PutObjectLegalHoldCommand, S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { ContractError, parseLatest, parseManifest } from '../../lib/contract/manifest';
import { Metrics } from '../../lib/contract/metrics';
import {
  GLOBALS_JSON_SUFFIX, GLOBALS_SUFFIX, LATEST_FILE, MANIFEST_SUFFIX, RESTORE_TESTS_DIR, globalsKeyFor, manifestKeyFor, sourceNameProblem, sourcePrefix,
} from '../../lib/contract/names';
import { createS3Client, datum, isNotFound, mapBounded, messageOf, publishMetrics, s3Problem } from '../shared/aws';
import { BaseBackupHolds, keepBaseBackups } from './base-backups';

/** The schedule's input: the names of the sources whose holds this function keeps. */
export interface HoldKeeperEvent {
  readonly sources: readonly string[];
  /** Those of them that archive WAL: their base backup and WAL holds are kept too (base-backups.ts). */
  readonly walArchived?: readonly string[];
}

/** Where the hold keeper reads, holds and reports. */
export interface HoldKeeperClients {
  readonly s3: S3Client;
  readonly cloudwatch: CloudWatchClient;
  readonly bucket: string;
  readonly prefix: string;
}

/** How long a passing restore-test report must have been stored before it may release older holds, and when it is now. */
export interface HoldKeeperOptions {
  /** The release grace, in seconds: 0 releases as soon as a newer backup passes. @default DEFAULT_RELEASE_AFTER_SECONDS (7 days) */
  readonly releaseAfterSeconds?: number;
  /** keepSource: keep the base backup and WAL holds too (keepHolds reads it from the event). */
  readonly walArchived?: boolean;
}

/** A week: the size, freshness and restore-test alarms, and a person, have that long to notice a fake backup. */
export const DEFAULT_RELEASE_AFTER_SECONDS = 7 * 24 * 3600;

/** What decided which holds may be released. */
export enum HoldRule {
  /**
   * Restore tests have reported: holds older than the newest backup whose passing report was stored at least the
   * release grace ago are released.
   */
  PROVEN = 'proven',
  /** No restore-test report ever: the newest valid backup is held, and nothing is released. */
  NEWEST_VALID = 'newest valid',
}

export interface SourceHolds {
  readonly source: string;
  readonly rule?: HoldRule;
  /** The newest valid backup (the dump key latest.json names), when latest.json was followed. */
  readonly newest?: string;
  /** The newest backup whose restore test passed, when a report says so. */
  readonly proven?: string;
  /**
   * The newest backup whose passing report was stored at least the release grace ago: the release boundary. Absent
   * when no read report is that old, and then nothing is released.
   */
  readonly settled?: string;
  /** Why latest.json was refused, when it was: the source is counted in PointerMismatch. */
  readonly refused?: string;
  /** Every key that keeps its hold (the newest valid, the newest proven and the settled backup, with manifests and companions). */
  readonly held: readonly string[];
  /** Keys whose hold was OFF and is now ON. */
  readonly placed: readonly string[];
  /** Keys whose hold was released. */
  readonly released: readonly string[];
  /** Why the source could not be (fully) kept: S3 errors, unreadable reports. Any of these fails the invocation. */
  readonly problems: readonly string[];
  /** A WAL-archived source's base backup and WAL holds; its refusal and problems are also the source's. */
  readonly base?: BaseBackupHolds;
}

export interface HoldKeeperReport {
  readonly sources: readonly SourceHolds[];
  /** The sources with problems: the invocation fails when there is any. */
  readonly failed: readonly string[];
}

/** Sources kept at once, and hold requests in flight per source. */
const SOURCE_CONCURRENCY = 4;
export const HOLD_CONCURRENCY = 8;
/** Bounded reads: more than this is not a pointer, a manifest or a report the agent writes, and is not read. */
export const MAX_POINTER_BYTES = 64 * 1024;
export const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;
export const MAX_REPORT_BYTES = 4 * 1024 * 1024;
/** More objects than this under one source is not a backup history (a daily backup for a year is about 1,100). */
export const MAX_OBJECTS_PER_SOURCE = 50_000;
/**
 * How many dated reports are read, newest first, to find the newest passed restore test when the latest failed; and
 * as many again, from the newest stored the release grace ago, to find the settled one.
 */
export const MAX_REPORTS_READ = 20;
/** S3's largest object is 50 TB: a size beyond is absurd. */
const MAX_OBJECT_BYTES = 50e12;
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** One listed object under the source's prefix. */
export interface Listed {
  readonly key: string;
  readonly size: number;
  readonly lastModified: Date;
}

/** A listed object that belongs to a backup: its dump, its manifest or its globals companion. */
interface BackupObject extends Listed {
  /** The key without its suffix, shared by a backup's objects: `…/{source}_{YYYY-MM-DD_HH-MM-SS}Z`. */
  readonly stem: string;
  /** The start time in the key, in ms. */
  readonly startedAt: number;
  readonly kind: 'dump' | 'manifest' | 'globals';
}

/** A backup picked to keep its hold: its dump key, its key time and the LastModified S3 set on the dump. */
interface Backup {
  readonly key: string;
  readonly startedAt: number;
  readonly storedAt: number;
}

/** latest.json or a manifest that must not be followed; the message says why. */
export class Refused extends Error {}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** `{prefix}{source}/YYYY/MM/DD/{source}_{YYYY-MM-DD_HH-MM-SS}Z.{rest}`, for this source only. */
function backupObjectPattern(prefix: string, source: string): RegExp {
  return new RegExp(`^(${escape(sourcePrefix(prefix, source))}(\\d{4})/(\\d{2})/(\\d{2})/${escape(source)}` +
    '_(\\d{4})-(\\d{2})-(\\d{2})_(\\d{2})-(\\d{2})-(\\d{2})Z)\\.([a-z]+\\.zst\\.age(?:\\.manifest\\.json)?|globals\\.sql\\.zst\\.age)$');
}

/** Reads a listed key as a backup object of the source, or undefined when it is none (latest.json, reports, anything else). */
function backupObject(pattern: RegExp, item: Listed): BackupObject | undefined {
  const m = pattern.exec(item.key);
  if (!m) return undefined;
  const [, stem, dy, dm, dd, y, mo, d, h, mi, s, rest] = m;
  // The day folder is the key time's day: a key that says otherwise is not one the agent writes.
  if (dy !== y || dm !== mo || dd !== d) return undefined;
  const startedAt = Date.UTC(+y, +mo - 1, +d, +h, +mi, +s);
  if (Number.isNaN(startedAt)) return undefined;
  const kind = [GLOBALS_SUFFIX, GLOBALS_JSON_SUFFIX].includes(`.${rest}`) ? 'globals' : rest.endsWith(MANIFEST_SUFFIX) ? 'manifest' : 'dump';
  return { ...item, stem, startedAt, kind };
}

function isSaneSize(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && value <= MAX_OBJECT_BYTES;
}

/** What the hold keeper's role needs, said when S3 denies it access. */
const KEEPER_ACCESS = 'the hold keeper\'s role needs s3:ListBucket on the source\'s prefix and s3:GetObject, s3:GetObjectLegalHold and ' +
  's3:PutObjectLegalHold on its objects (the HoldKeeper construct grants them to sources added with addSource)';

export function s3Failure(action: string, bucket: string, key: string, err: unknown): Error {
  return s3Problem(action, bucket, key, err, KEEPER_ACCESS);
}

/** A small object as text, or undefined when absent; bigger than `maxBytes` is refused unread. */
export async function readBounded(clients: HoldKeeperClients, key: string, maxBytes: number, what: string): Promise<string | undefined> {
  let out;
  try {
    out = await clients.s3.send(new GetObjectCommand({ Bucket: clients.bucket, Key: key }));
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw s3Failure('GetObject', clients.bucket, key, err);
  }
  const length = out.ContentLength ?? 0;
  if (length > maxBytes) {
    (out.Body as { destroy?: () => void } | undefined)?.destroy?.();
    throw new Refused(`${what} s3://${clients.bucket}/${key} is ${length} bytes, more than the ${maxBytes} a real one takes: not read`);
  }
  const text = await out.Body!.transformToString('utf8');
  if (text.length > maxBytes) throw new Refused(`${what} s3://${clients.bucket}/${key} is more than ${maxBytes} bytes: not read`);
  return text;
}

/**
 * What the keeper reads under a source's prefix, at most MAX_OBJECTS_PER_SOURCE objects: its dated backups (the
 * `{YYYY}/` folders, found with one delimited listing) and its restore-test reports, never its archived WAL and base
 * backups (`wal/`, `base/`), which hold thousands of objects and none it keeps here.
 */
async function listSource(clients: HoldKeeperClients, prefix: string): Promise<Listed[]> {
  const listed: Listed[] = [];
  const folders: string[] = [];
  await listPages(clients, prefix, '/', (out) => {
    for (const p of out.CommonPrefixes ?? []) if (p.Prefix && /^\d{4}\/$/.test(p.Prefix.slice(prefix.length))) folders.push(p.Prefix);
  });
  for (const folder of [...folders, `${prefix}${RESTORE_TESTS_DIR}/`]) {
    await listPages(clients, folder, undefined, (out) => {
      for (const o of out.Contents ?? []) {
        if (o.Key && o.LastModified) listed.push({ key: o.Key, size: o.Size ?? 0, lastModified: o.LastModified });
      }
      if (listed.length > MAX_OBJECTS_PER_SOURCE) {
        throw new Error(`s3://${clients.bucket}/${prefix} holds more than ${MAX_OBJECTS_PER_SOURCE} backup objects and reports, far more than a ` +
          'backup history: not kept; see what wrote them');
      }
    });
  }
  return listed;
}

/** Every page of a listing, each handed to `onPage` as it arrives. */
export async function listPages(clients: HoldKeeperClients, prefix: string, delimiter: string | undefined,
  onPage: (out: ListObjectsV2CommandOutput) => void): Promise<void> {
  let token: string | undefined;
  do {
    let out;
    try {
      out = await clients.s3.send(new ListObjectsV2Command({ Bucket: clients.bucket, Prefix: prefix, Delimiter: delimiter, ContinuationToken: token }));
    } catch (err) {
      throw s3Failure('ListObjectsV2', clients.bucket, prefix, err);
    }
    onPage(out);
    token = out.IsTruncated ? out.NextContinuationToken : undefined;
  } while (token);
}

/**
 * The newest valid backup, from latest.json, or a Refused that says why latest.json is not followed.
 * undefined when there is no latest.json (no backup of the source was ever completed).
 */
async function newestValid(clients: HoldKeeperClients, source: string, objects: ReadonlyMap<string, BackupObject>): Promise<Backup | undefined> {
  const prefix = sourcePrefix(clients.prefix, source);
  const pointerKey = `${prefix}${LATEST_FILE}`;
  const where = `s3://${clients.bucket}/${pointerKey}`;
  const text = await readBounded(clients, pointerKey, MAX_POINTER_BYTES, 'latest.json');
  if (text === undefined) return undefined;
  let pointer;
  try {
    pointer = parseLatest(text, where);
  } catch (err) {
    if (err instanceof ContractError) throw new Refused(err.message);
    throw err;
  }
  const dump = objects.get(pointer.key);
  if (!dump || dump.kind !== 'dump') {
    const inPrefix = typeof pointer.key === 'string' && pointer.key.startsWith(prefix);
    throw new Refused(inPrefix
      ? `${where} names ${JSON.stringify(pointer.key)}, which is not a stored backup of ${source}`
      : `${where} names ${JSON.stringify(pointer.key)}, outside the source's prefix ${prefix}: not followed`);
  }
  const manifestKey = manifestKeyFor(dump.key);
  if (pointer.manifestKey !== undefined && pointer.manifestKey !== manifestKey) {
    throw new Refused(`${where} names the manifest ${JSON.stringify(pointer.manifestKey)}, not its backup's ${manifestKey}: not followed`);
  }
  const manifestText = await readBounded(clients, manifestKey, MAX_MANIFEST_BYTES, 'manifest');
  if (manifestText === undefined) throw new Refused(`${where} names ${dump.key}, whose manifest ${manifestKey} does not exist`);
  let manifest;
  try {
    manifest = parseManifest(manifestText, `s3://${clients.bucket}/${manifestKey}`);
  } catch (err) {
    if (err instanceof ContractError) throw new Refused(err.message);
    throw err;
  }
  const differs = (what: string) => new Refused(`${where} names ${dump.key}, but ${what}`);
  if (manifest.source !== source) throw differs(`its manifest is of source ${JSON.stringify(manifest.source)}`);
  if (manifest.key !== dump.key) throw differs(`its manifest describes ${JSON.stringify(manifest.key)}`);
  if (!isSaneSize(manifest.size) || typeof manifest.sha256 !== 'string' || !SHA256_HEX.test(manifest.sha256)) {
    throw differs(`its manifest states size ${JSON.stringify(manifest.size)} and SHA-256 ${JSON.stringify(manifest.sha256)}, not a real object's`);
  }
  if (pointer.size !== manifest.size) throw differs(`latest.json states size ${JSON.stringify(pointer.size)} and its manifest ${manifest.size}`);
  if (pointer.sha256 !== manifest.sha256) throw differs(`latest.json states SHA-256 ${JSON.stringify(pointer.sha256)} and its manifest ${manifest.sha256}`);
  if (dump.size !== manifest.size) throw differs(`S3 stored ${dump.size} bytes and its manifest states ${manifest.size}`);
  const companions = Array.isArray(manifest.companions) ? manifest.companions : [];
  for (const c of companions) {
    const companion = typeof c?.key === 'string' ? objects.get(c.key) : undefined;
    if (!companion || c.key !== globalsKeyFor(dump.key)) {
      throw differs(`its manifest names the companion ${JSON.stringify(c?.key)}, which is not its stored globals ${globalsKeyFor(dump.key)}`);
    }
    if (companion.size !== c.size) throw differs(`S3 stored ${companion.size} bytes of ${c.key} and its manifest states ${JSON.stringify(c.size)}`);
  }
  return { key: dump.key, startedAt: dump.startedAt, storedAt: dump.lastModified.getTime() };
}

interface Proof {
  /** Whether the source has any restore-test report at all. */
  readonly tested: boolean;
  readonly proven?: Backup;
  /** The backup of the newest passing report stored at or before `settledBy`. */
  readonly settled?: Backup;
  readonly problems: readonly string[];
}

/**
 * The newest backup whose restore test passed, and the newest whose passing report S3 stored at or before
 * `settledBy` (ms). Each is looked for in restore-tests/latest.json and the dated reports, newest first: at most
 * MAX_REPORTS_READ dated reports for each (a report read for one is not read again for the other), so that restore
 * tests run more often than MAX_REPORTS_READ times in the grace still leave a settled report in reach. Only
 * restore-test roles may write these; they are still read with bounds, a report's backup must be a stored backup of
 * this source, and when a report was stored is the LastModified of its listing, never a time written in it.
 */
async function newestProven(clients: HoldKeeperClients, source: string, listed: readonly Listed[],
  objects: ReadonlyMap<string, BackupObject>, settledBy: number): Promise<Proof> {
  const reportsPrefix = `${sourcePrefix(clients.prefix, source)}${RESTORE_TESTS_DIR}/`;
  const latestReport = `${reportsPrefix}${LATEST_FILE}`;
  const reports = listed.filter((o) => o.key.startsWith(reportsPrefix) && o.key.endsWith('.json'));
  const latest = reports.filter((o) => o.key === latestReport);
  const dated = reports.filter((o) => o.key !== latestReport).sort((a, b) => (a.key < b.key ? 1 : a.key > b.key ? -1 : 0));
  if (!reports.length) return { tested: false, problems: [] };
  const problems: string[] = [];
  const read = new Map<string, Backup | undefined>();

  /** The stored backup a report passed for, or undefined (failed, unreadable, of another copy): read once. */
  async function passed(key: string): Promise<Backup | undefined> {
    if (read.has(key)) return read.get(key);
    const backup = await readReport(key);
    read.set(key, backup);
    return backup;
  }
  async function readReport(key: string): Promise<Backup | undefined> {
    const where = `restore-test report s3://${clients.bucket}/${key}`;
    let report: unknown;
    try {
      const text = await readBounded(clients, key, MAX_REPORT_BYTES, 'restore-test report');
      if (text === undefined) return undefined;
      report = JSON.parse(text);
    } catch (err) {
      if (err instanceof Refused || err instanceof SyntaxError) {
        problems.push(`${where} is unreadable (${err instanceof SyntaxError ? 'not JSON' : err.message}): skipped`);
        return undefined;
      }
      throw err;
    }
    const r = (typeof report === 'object' && report !== null ? report : {}) as { success?: unknown; key?: unknown; bucket?: unknown; source?: unknown; pitr?: unknown };
    if (r.success !== true || r.pitr !== undefined) return undefined; // a point-in-time test proves a base backup: base-backups.ts
    if (r.source !== undefined && r.source !== source) {
      problems.push(`${where} is a report of source ${JSON.stringify(r.source)}: skipped`);
      return undefined;
    }
    if (r.bucket !== undefined && r.bucket !== clients.bucket) return undefined; // a test of another copy of the store
    const dump = typeof r.key === 'string' ? objects.get(r.key) : undefined;
    if (!dump || dump.kind !== 'dump') {
      problems.push(`${where} passed for ${JSON.stringify(r.key)}, which is not a stored backup of ${source}: skipped`);
      return undefined;
    }
    return { key: dump.key, startedAt: dump.startedAt, storedAt: dump.lastModified.getTime() };
  }
  async function first(candidates: readonly Listed[]): Promise<Backup | undefined> {
    for (const o of candidates) {
      const backup = await passed(o.key);
      if (backup) return backup;
    }
    return undefined;
  }

  const proven = await first([...latest, ...dated.slice(0, MAX_REPORTS_READ)]);
  const isSettled = (o: Listed) => o.lastModified.getTime() <= settledBy;
  const settled = proven && await first([...latest.filter(isSettled), ...dated.filter(isSettled).slice(0, MAX_REPORTS_READ)]);
  return { tested: true, proven, settled, problems };
}

/** A backup's dump, manifest and globals companion, those that are stored. */
function family(backup: Backup, objects: ReadonlyMap<string, BackupObject>): string[] {
  return [backup.key, manifestKeyFor(backup.key), globalsKeyFor(backup.key)].filter((k) => objects.has(k));
}

export async function holdStatus(clients: HoldKeeperClients, key: string): Promise<boolean> {
  try {
    const out = await clients.s3.send(new GetObjectLegalHoldCommand({ Bucket: clients.bucket, Key: key }));
    return out.LegalHold?.Status === ObjectLockLegalHoldStatus.ON;
  } catch (err) {
    // S3's answer for an object that never had a legal hold.
    if ((err as S3ServiceException)?.name === 'NoSuchObjectLockConfiguration') return false;
    throw s3Failure('GetObjectLegalHold', clients.bucket, key, err);
  }
}

export async function setHold(clients: HoldKeeperClients, key: string, on: boolean): Promise<void> {
  try {
    await clients.s3.send(new PutObjectLegalHoldCommand({
      Bucket: clients.bucket,
      Key: key,
      LegalHold: { Status: on ? ObjectLockLegalHoldStatus.ON : ObjectLockLegalHoldStatus.OFF },
    }));
  } catch (err) {
    throw s3Failure('PutObjectLegalHold', clients.bucket, key, err);
  }
}

/** One source: everything that goes wrong stays with it. */
export async function keepSource(source: string, clients: HoldKeeperClients, now = new Date(),
  options: HoldKeeperOptions = {}): Promise<SourceHolds> {
  const releaseAfterSeconds = options.releaseAfterSeconds ?? DEFAULT_RELEASE_AFTER_SECONDS;
  const placed: string[] = [];
  const released: string[] = [];
  const problems: string[] = [];
  const result = (rest: Partial<SourceHolds>): SourceHolds => ({ source, held: [], ...rest, placed, released, problems });
  const nameProblem = sourceNameProblem(source);
  if (nameProblem) {
    problems.push(nameProblem);
    return result({});
  }
  try {
    const listed = await listSource(clients, sourcePrefix(clients.prefix, source));
    const pattern = backupObjectPattern(clients.prefix, source);
    const objects = new Map<string, BackupObject>();
    for (const item of listed) {
      const object = backupObject(pattern, item);
      if (object) objects.set(object.key, object);
    }

    let newest: Backup | undefined;
    let refused: string | undefined;
    try {
      newest = await newestValid(clients, source, objects);
    } catch (err) {
      if (!(err instanceof Refused)) throw err;
      refused = err.message;
    }
    const settledBy = now.getTime() - releaseAfterSeconds * 1000;
    const proof = await newestProven(clients, source, listed, objects, settledBy);
    problems.push(...proof.problems);
    const rule = proof.tested ? HoldRule.PROVEN : HoldRule.NEWEST_VALID;
    // Nothing is released without settled proof: a source never restore-tested, whose tests never passed, or whose
    // newest pass is younger than the grace (and no older pass was read), releases nothing.
    const boundary = proof.tested ? proof.settled : undefined;

    const held = [...new Set([newest, proof.proven, proof.settled].flatMap((b) => b ? family(b, objects) : []))];
    const keep = new Set(held);
    await mapBounded(held, HOLD_CONCURRENCY, async (key) => {
      if (await holdStatus(clients, key)) return;
      await setHold(clients, key, true);
      placed.push(key);
    });

    if (boundary) {
      // A backup's time, by S3: the LastModified of its dump (or, for a lone manifest or companion, its own).
      const storedAt = new Map<string, number>();
      for (const o of objects.values()) if (o.kind === 'dump') storedAt.set(o.stem, o.lastModified.getTime());
      const older = [...objects.values()].filter((o) => !keep.has(o.key) && o.startedAt < boundary.startedAt &&
        (storedAt.get(o.stem) ?? o.lastModified.getTime()) <= boundary.storedAt);
      await mapBounded(older, HOLD_CONCURRENCY, async (o) => {
        if (!await holdStatus(clients, o.key)) return;
        await setHold(clients, o.key, false);
        released.push(o.key);
      });
    }
    placed.sort();
    released.sort();
    const base = options.walArchived ? await keepBaseBackups(clients, source, listed, settledBy) : undefined;
    problems.push(...base?.problems ?? []);
    return result({ rule, newest: newest?.key, proven: proof.proven?.key, settled: proof.settled?.key, refused: refused ?? base?.refused, held: held.sort(), base });
  } catch (err) {
    problems.push(messageOf(err));
    return result({});
  }
}

function validateEvent(event: HoldKeeperEvent): readonly string[] {
  const names = (list: unknown) => Array.isArray(list) && list.every((s) => typeof s === 'string');
  if (!event || !names(event.sources) || (event.walArchived !== undefined && !names(event.walArchived))) {
    throw new Error('the event has no sources list: the schedule passes {"sources":["…"],"walArchived":["…"]}');
  }
  return [...new Set(event.sources)];
}

export async function keepHolds(event: HoldKeeperEvent, clients: HoldKeeperClients, now = new Date(),
  options: HoldKeeperOptions = {}): Promise<HoldKeeperReport> {
  const sources = validateEvent(event);
  const results = await mapBounded(sources, SOURCE_CONCURRENCY, (source) => keepSource(source, clients, now, { ...options, walArchived: event.walArchived?.includes(source) }));
  for (const r of results) console.log(JSON.stringify(r));
  const refused = results.filter((r) => r.refused !== undefined);
  await publishMetrics(clients.cloudwatch, [
    datum(Metrics.POINTER_MISMATCH, refused.length, StandardUnit.Count, undefined, now),
    ...refused.map((r) => datum(Metrics.POINTER_MISMATCH, 1, StandardUnit.Count, r.source, now)),
  ]);
  return { sources: results, failed: results.filter((r) => r.problems.length).map((r) => r.source) };
}

export async function handler(event: HoldKeeperEvent): Promise<HoldKeeperReport> {
  const bucket = process.env.BUCKET_NAME;
  if (!bucket) throw new Error('environment variable BUCKET_NAME is not set: the HoldKeeper construct sets it');
  const grace = process.env.RELEASE_AFTER_SECONDS;
  if (grace !== undefined && !/^\d{1,9}$/.test(grace)) {
    throw new Error(`environment variable RELEASE_AFTER_SECONDS is ${JSON.stringify(grace)}, not a whole number of seconds: the HoldKeeper construct ` +
      'sets it from releaseAfter');
  }
  const clients: HoldKeeperClients = { s3: createS3Client(), cloudwatch: new CloudWatchClient({}), bucket, prefix: process.env.KEY_PREFIX ?? '' };
  const report = await keepHolds(event, clients, new Date(), { releaseAfterSeconds: grace === undefined ? undefined : Number(grace) });
  if (report.failed.length) {
    const lines = report.sources.filter((r) => r.problems.length).map((r) => `${r.source}: ${r.problems.join('; ')}`);
    throw new Error(`the hold keeper could not keep the holds of ${report.failed.length} source(s): ${lines.join(' | ')}`);
  }
  return report;
}
