/**
 * Hold keeper, for a source added with a WAL archive: the holds of its base backups (`base/`) and of its archived WAL
 * (`wal/`). The base backup schedule holds each base backup and the WAL receiver each whole segment and history file
 * (never a received partial); only this releases them, on proof, as index.ts does for dumps.
 *
 * It keeps (ensures ON) the holds on
 * - the newest valid base backup, the one base/latest.json names, with its manifest, once the pointer agrees with its
 *   manifest and with the size S3 stored (otherwise the pointer is refused and counted in PointerMismatch); and
 * - the settled one: the newest base backup named by a passing restore-test report's `pitr.baseBackupKey` whose
 *   report S3 stored (its LastModified, never a time written in it) at least the release grace ago, with its manifest;
 * and releases (OFF) holds only below the settled base backup: first on WAL whole segments before its `startWalFile`
 * (and history files of older timelines), in order, and on each older base backup with its manifest once the WAL before
 * its start is released. A run is bounded (WAL_LIMITS) and may be cut short: a released base backup says the WAL before
 * it is released, so the next run lists wal/ from the newest one released (from the start when none is) and goes
 * on. With no settled proof nothing is released.
 *
 * The base/ folder is small (a base backup a day, bounded by retention) and listed whole; wal/ is listed in order up to
 * the settled base backup's first segment, never past it. Pointers, manifests and reports are read as untrusted
 * input: bounded reads, parse errors reported, never thrown past the handler.
 */
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { ContractError } from '../../lib/contract/manifest';
import { BaseBackupManifest, parseBaseBackupManifest, parseBaseBackupPointer } from '../../lib/contract/base-backup';
import {
  BASE_BACKUP_SUFFIX, LATEST_FILE, MANIFEST_SUFFIX, RESTORE_TESTS_DIR, STORED_SUFFIX, baseBackupPrefix, baseLatestKey, manifestKeyFor, sourcePrefix, walKey, walPrefix,
} from '../../lib/contract/names';
import { WalFileKind, walFileKind } from '../../lib/contract/wal';
import { mapBounded, messageOf } from '../shared/aws';
import {
  HOLD_CONCURRENCY, HoldKeeperClients, Listed, MAX_POINTER_BYTES, MAX_REPORTS_READ, MAX_REPORT_BYTES, Refused, SourceHolds, holdStatus, listPages, readBounded, s3Failure, setHold,
} from './index';

/** More than this under base/ is not a base backup history (one a day for three years is about 2,200 objects). */
export const MAX_BASE_OBJECTS = 10_000;
/** A base backup manifest is a few kilobytes. */
export const MAX_BASE_MANIFEST_BYTES = 1024 * 1024;
/** What one run may spend on a source's WAL: objects listed below the bound, and whole segments and history files whose hold is read. */
export interface WalLimits {
  readonly listed: number;
  readonly examined: number;
}
export const WAL_LIMITS: WalLimits = { listed: 200_000, examined: 20_000 };

/**
 * A WAL-archived source's base backup and WAL holds: `newest` is the base backup base/latest.json names, `settled` the
 * one a passing point-in-time report named at least the grace ago (the release boundary), `refused` why
 * base/latest.json was not followed.
 */
export type BaseBackupHolds = Pick<SourceHolds, 'newest' | 'settled' | 'refused' | 'held' | 'placed' | 'released' | 'problems'>;

/** Sets the hold of each key that does not have it already (`on`), noting the keys changed in `changed`. */
async function setHolds(clients: HoldKeeperClients, keys: readonly string[], on: boolean, changed: string[]): Promise<void> {
  await mapBounded(keys, HOLD_CONCURRENCY, async (key) => {
    if (await holdStatus(clients, key) === on) return;
    await setHold(clients, key, on);
    changed.push(key);
  });
}

interface BaseObject extends Listed {
  /** The base backup's key: its own, or the one its manifest describes. */
  readonly backup: string;
  readonly startedAt: number;
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** `{prefix}{source}/base/YYYY/MM/DD/{source}_{ts}Z.tar.zst.age` and its manifest, for this source only. */
function baseObjects(prefix: string, source: string, listed: readonly Listed[]): Map<string, BaseObject> {
  const pattern = new RegExp(`^(${escape(baseBackupPrefix(prefix, source))}(\\d{4})/(\\d{2})/(\\d{2})/${escape(source)}` +
    `_(\\d{4})-(\\d{2})-(\\d{2})_(\\d{2})-(\\d{2})-(\\d{2})Z${escape(BASE_BACKUP_SUFFIX)})(${escape(MANIFEST_SUFFIX)})?$`);
  const objects = new Map<string, BaseObject>();
  for (const item of listed) {
    const m = pattern.exec(item.key);
    if (!m || m[2] !== m[5] || m[3] !== m[6] || m[4] !== m[7]) continue;
    const startedAt = Date.UTC(+m[5], +m[6] - 1, +m[7], +m[8], +m[9], +m[10]);
    if (!Number.isNaN(startedAt)) objects.set(item.key, { ...item, backup: m[1], startedAt });
  }
  return objects;
}

function parsed<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof ContractError) throw new Refused(err.message);
    throw err;
  }
}

/** A base backup's manifest, read and checked against the stored backup, or a Refused that says why not. */
async function manifestOf(clients: HoldKeeperClients, source: string, backup: BaseObject): Promise<BaseBackupManifest> {
  const key = manifestKeyFor(backup.key);
  const text = await readBounded(clients, key, MAX_BASE_MANIFEST_BYTES, 'base backup manifest');
  if (text === undefined) throw new Refused(`base backup ${backup.key} has no manifest ${key}`);
  const manifest = parsed(() => parseBaseBackupManifest(text, `s3://${clients.bucket}/${key}`));
  const differs = (what: string) => new Refused(`base backup ${backup.key}: ${what}`);
  if (manifest.source !== source) throw differs(`its manifest is of source ${JSON.stringify(manifest.source)}`);
  if (manifest.key !== backup.key) throw differs(`its manifest describes ${JSON.stringify(manifest.key)}`);
  if (manifest.size !== backup.size) throw differs(`S3 stored ${backup.size} bytes and its manifest states ${manifest.size}`);
  if (parseInt(manifest.startWalFile.slice(0, 8), 16) !== manifest.timeline) {
    throw differs(`its manifest's startWalFile ${manifest.startWalFile} is not on its timeline ${manifest.timeline}`);
  }
  return manifest;
}

/** The base backup base/latest.json names, checked against its manifest and S3; undefined when there is none yet. */
async function newestValid(clients: HoldKeeperClients, source: string, objects: ReadonlyMap<string, BaseObject>): Promise<BaseObject | undefined> {
  const pointerKey = baseLatestKey(clients.prefix, source);
  const where = `s3://${clients.bucket}/${pointerKey}`;
  const text = await readBounded(clients, pointerKey, MAX_POINTER_BYTES, 'base/latest.json');
  if (text === undefined) return undefined;
  const pointer = parsed(() => parseBaseBackupPointer(text, where));
  const backup = objects.get(pointer.key);
  if (!backup || backup.backup !== backup.key) throw new Refused(`${where} names ${JSON.stringify(pointer.key)}, which is not a stored base backup of ${source}`);
  if (pointer.manifestKey !== manifestKeyFor(backup.key)) throw new Refused(`${where} names the manifest ${JSON.stringify(pointer.manifestKey)}, not its backup's`);
  const manifest = await manifestOf(clients, source, backup);
  for (const field of ['size', 'sha256', 'startWalFile', 'timeline'] as const) {
    if (pointer[field] !== manifest[field]) {
      throw new Refused(`${where} states ${field} ${JSON.stringify(pointer[field])} and the manifest of ${backup.key} ${JSON.stringify(manifest[field])}`);
    }
  }
  return backup;
}

/**
 * The base backup of the newest passing report with a `pitr` that S3 stored at or before `settledBy` (ms), looked for
 * in restore-tests/latest.json and then at most MAX_REPORTS_READ dated reports, newest first.
 */
async function settledBaseBackup(clients: HoldKeeperClients, source: string, listed: readonly Listed[], objects: ReadonlyMap<string, BaseObject>,
  settledBy: number, problems: string[]): Promise<BaseObject | undefined> {
  const reportsPrefix = `${sourcePrefix(clients.prefix, source)}${RESTORE_TESTS_DIR}/`;
  const latestReport = `${reportsPrefix}${LATEST_FILE}`;
  const reports = listed.filter((o) => o.key.startsWith(reportsPrefix) && o.key.endsWith('.json') && o.lastModified.getTime() <= settledBy);
  const dated = reports.filter((o) => o.key !== latestReport).sort((a, b) => (a.key < b.key ? 1 : a.key > b.key ? -1 : 0));
  for (const { key } of [...reports.filter((o) => o.key === latestReport), ...dated.slice(0, MAX_REPORTS_READ)]) {
    const where = `restore-test report s3://${clients.bucket}/${key}`;
    let report: { success?: unknown; source?: unknown; bucket?: unknown; pitr?: { baseBackupKey?: unknown } };
    try {
      report = JSON.parse(await readBounded(clients, key, MAX_REPORT_BYTES, 'restore-test report') ?? 'null') ?? {};
    } catch (err) {
      if (!(err instanceof Refused || err instanceof SyntaxError)) throw err;
      problems.push(`${where} is unreadable (${err instanceof SyntaxError ? 'not JSON' : err.message}): skipped`);
      continue;
    }
    if (typeof report !== 'object' || report.success !== true || typeof report.pitr?.baseBackupKey !== 'string') continue;
    if ((report.source ?? source) !== source || (report.bucket ?? clients.bucket) !== clients.bucket) continue;
    const backup = objects.get(report.pitr.baseBackupKey);
    if (backup && backup.backup === backup.key) return backup;
    problems.push(`${where} passed for ${JSON.stringify(report.pitr.baseBackupKey)}, which is not a stored base backup of ${source}: skipped`);
  }
  return undefined;
}

/** Where one run releases WAL holds, and what it may spend. */
interface WalRelease {
  /** List after this WAL file name: the start of the newest older base backup already released, when one is. */
  readonly from?: string;
  /** The settled base backup's first segment: the bound, never reached. */
  readonly startWalFile: string;
  readonly limits: WalLimits;
  /** Called once every WAL hold below the key `through` is released. */
  readonly onThrough: (through: string) => Promise<void>;
}

/**
 * Releases the holds on whole segments before `startWalFile` (and history files of older timelines), listing wal/
 * in order up to the bound. False when cut short by the limits: a log line says so, and the next run goes on.
 */
async function releaseWal(clients: HoldKeeperClients, source: string, r: WalRelease, released: string[]): Promise<boolean> {
  const prefix = walPrefix(clients.prefix, source);
  const bound = walKey(clients.prefix, source, r.startWalFile);
  const timeline = parseInt(r.startWalFile.slice(0, 8), 16);
  let listed = 0;
  let examined = 0;
  let token: string | undefined;
  for (;;) {
    let out;
    try {
      out = await clients.s3.send(new ListObjectsV2Command({
        Bucket: clients.bucket, Prefix: prefix, ContinuationToken: token, StartAfter: token || r.from === undefined ? undefined : `${prefix}${r.from}`,
      }));
    } catch (err) {
      throw s3Failure('ListObjectsV2', clients.bucket, prefix, err);
    }
    const below: string[] = [];
    let reached = false;
    let last: string | undefined;
    for (const o of out.Contents ?? []) {
      if (!o.Key) continue;
      if (o.Key >= bound) {
        reached = true;
        break;
      }
      listed++;
      last = o.Key;
      const file = o.Key.endsWith(STORED_SUFFIX) ? o.Key.slice(prefix.length, -STORED_SUFFIX.length) : '';
      const kind = walFileKind(file);
      if ((kind === WalFileKind.SEGMENT && file < r.startWalFile) || (kind === WalFileKind.HISTORY && parseInt(file.slice(0, 8), 16) < timeline)) below.push(o.Key);
    }
    const batch = below.slice(0, r.limits.examined - examined);
    examined += batch.length;
    await setHolds(clients, batch, false, released);
    const cut = batch.length < below.length;
    const through = cut ? below[batch.length] : reached ? bound : last === undefined ? undefined : `${last}\u0000`;
    if (through !== undefined) await r.onThrough(through);
    if (!cut && (reached || !out.IsTruncated || !out.NextContinuationToken)) return true;
    if (cut || examined >= r.limits.examined || listed >= r.limits.listed) {
      console.log(JSON.stringify({ source, message: `WAL hold release cut short after ${listed} objects listed and ${examined} holds read ` +
        `below ${r.startWalFile}; the next run goes on from the newest older base backup released` }));
      return false;
    }
    token = out.NextContinuationToken;
  }
}

/**
 * The holds below the settled base backup: WAL in order, and each older base backup (with its manifest) as soon as
 * the WAL before its start is released, so that a released base backup says where the next run may resume listing
 * wal/. Once the WAL reaches the bound, whatever else is older goes too (a base backup whose manifest is unreadable).
 */
async function releaseBelow(clients: HoldKeeperClients, source: string, settled: BaseObject, startWalFile: string, objects: ReadonlyMap<string, BaseObject>,
  held: readonly string[], limits: WalLimits, released: string[]): Promise<void> {
  const storedAt = new Map([...objects.values()].filter((o) => o.backup === o.key).map((o) => [o.key, o.lastModified.getTime()]));
  const older = [...objects.values()].filter((o) => !held.includes(o.key) && o.startedAt < settled.startedAt &&
    (storedAt.get(o.backup) ?? o.lastModified.getTime()) <= settled.lastModified.getTime());
  const startOf = async (b: BaseObject) => (await manifestOf(clients, source, b).catch((err: unknown) => {
    if (err instanceof Refused) return undefined;
    throw err;
  }))?.startWalFile;
  const backups = await mapBounded(older.filter((o) => o.backup === o.key), HOLD_CONCURRENCY, async (b) => ({ b, on: await holdStatus(clients, b.key) }));
  const newestOff = backups.filter((x) => !x.on).sort((x, y) => y.b.startedAt - x.b.startedAt)[0];
  const resumeAt = newestOff && await startOf(newestOff.b);
  const pending = await mapBounded(backups.filter((x) => x.on), HOLD_CONCURRENCY, async ({ b }) => ({ b, start: await startOf(b) }));
  const family = (b: BaseObject) => [b.key, manifestKeyFor(b.key)].filter((k) => objects.has(k) && !held.includes(k));
  const done = await releaseWal(clients, source, {
    from: resumeAt !== undefined && resumeAt < startWalFile ? resumeAt : undefined, startWalFile, limits,
    onThrough: async (through) => {
      const due = pending.filter((p) => p.start !== undefined && walKey(clients.prefix, source, p.start) <= through);
      for (const p of due) pending.splice(pending.indexOf(p), 1);
      await setHolds(clients, due.flatMap((p) => family(p.b)), false, released);
    },
  }, released);
  if (done) await setHolds(clients, older.map((o) => o.key), false, released);
}

/** One WAL-archived source's base backup and WAL holds; `listed` holds its restore-test reports as index.ts listed them. */
export async function keepBaseBackups(clients: HoldKeeperClients, source: string, listed: readonly Listed[], settledBy: number,
  limits = WAL_LIMITS): Promise<BaseBackupHolds> {
  const placed: string[] = [];
  const released: string[] = [];
  const problems: string[] = [];
  const base: Listed[] = [];
  const result = (rest: Partial<BaseBackupHolds>): BaseBackupHolds => ({ held: [], ...rest, placed: placed.sort(), released: released.sort(), problems });
  try {
    await listPages(clients, baseBackupPrefix(clients.prefix, source), undefined, (out) => {
      for (const o of out.Contents ?? []) if (o.Key && o.LastModified) base.push({ key: o.Key, size: o.Size ?? 0, lastModified: o.LastModified });
      if (base.length > MAX_BASE_OBJECTS) throw new Error(`s3://${clients.bucket}/${baseBackupPrefix(clients.prefix, source)} holds more than ${MAX_BASE_OBJECTS} objects, far more than a base backup history: not kept`);
    });
    const objects = baseObjects(clients.prefix, source, base);
    let refused: string | undefined;
    const newest = await newestValid(clients, source, objects).catch((err: unknown) => {
      if (!(err instanceof Refused)) throw err;
      refused = err.message;
      return undefined;
    });
    const settled = await settledBaseBackup(clients, source, listed, objects, settledBy, problems);
    const held = [...new Set([newest, settled].flatMap((b) => b ? [b.key, manifestKeyFor(b.key)] : []).filter((k) => objects.has(k)))].sort();
    await setHolds(clients, held, true, placed);
    const done = { newest: newest?.key, settled: settled?.key, refused, held };
    if (!settled) return result(done);
    let manifest: BaseBackupManifest;
    try {
      manifest = await manifestOf(clients, source, settled);
    } catch (err) {
      if (!(err instanceof Refused)) throw err;
      problems.push(`the settled ${err.message}: nothing released`);
      return result(done);
    }
    await releaseBelow(clients, source, settled, manifest.startWalFile, objects, held, limits, released);
    return result(done);
  } catch (err) {
    problems.push(messageOf(err));
    return result({});
  }
}
