/**
 * The freshness check's look at a source that archives its PostgreSQL WAL continuously: how old its newest archived
 * WAL is (the continuous RPO), how old its newest base backup is, and whether the WAL chain since that base backup is
 * whole, so that point-in-time recovery can reach every time after it.
 *
 * Its cost does not grow with the archive's history: one bounded GET of `base/latest.json`, one HEAD of the base
 * backup it names, one HEAD of a WAL segment (its size, which says how segment numbers roll over), and a listing of
 * `wal/` that starts after the base backup's first WAL file (StartAfter), never the whole archive. Keys sort by
 * timeline, then segment, and a timeline's history file sorts before its segments, so that listing holds exactly the
 * chain since the base backup and every later timeline.
 *
 * Everything here was written by a role that dumps, so it is untrusted input: the pointer is read with a size limit
 * and parsed by the contract's parser; a key that is not a WAL file name, or a segment number past the end of its log,
 * is counted and ignored; an unreadable pointer, a base backup it names that is missing, or too many objects to list
 * is a problem the source reports (and the check counts), never an exception past the handler. Ages come from the
 * times S3 sets: the LastModified of the newest WAL object and of the base backup object; a time the pointer states
 * that S3 contradicts is reported as forged, as for dumps.
 */
import { MetricDatum, StandardUnit } from '@aws-sdk/client-cloudwatch';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import type { ListedObject } from '../../lib/contract/binlog-coverage';
import { parseBaseBackupPointer } from '../../lib/contract/base-backup';
import { ContractError, forgedTime } from '../../lib/contract/manifest';
import { Metrics } from '../../lib/contract/metrics';
import { BASE_BACKUP_SUFFIX, STORED_SUFFIX, baseBackupPrefix, baseLatestKey, walKey, walPrefix } from '../../lib/contract/names';
import { WAL_METADATA, WalFileKind, walFileKind } from '../../lib/contract/wal';
import { MonitorClients, datum, getStored, isNotFound, lastModified, messageOf, s3Problem, secondsBetween } from '../shared/aws';
import { listAfter } from './listing';

/** A source's WAL archive thresholds, from the schedule's input (BackupMonitoring.addSource's walArchive). */
export interface WalArchiveThresholds {
  readonly maxAgeSeconds: number;
  readonly baseBackupMaxAgeSeconds: number;
}

/** A hole in the WAL chain since the base backup: what is missing, and when S3 stored the first object after it. */
export interface WalGap {
  readonly description: string;
  /** The LastModified of the first object past the hole: the first check that could see the gap ran after it. */
  readonly seenSince: Date;
}

export interface WalArchiveStatus {
  readonly thresholds: WalArchiveThresholds;
  /** The base backup base/latest.json names, when it names one that is stored. */
  readonly baseBackupKey?: string;
  /** Seconds since S3 stored that base backup object. */
  readonly baseBackupAgeSeconds?: number;
  /** The newest archived WAL file since the base backup, and seconds since S3 stored it. */
  readonly newestWalFile?: string;
  readonly walAgeSeconds?: number;
  /** Why point-in-time recovery has nothing to start from (no base backup, a pointer to a missing one), when so. */
  readonly noBaseBackup?: string;
  readonly gaps: readonly WalGap[];
  /** Listed keys under wal/ that are no WAL file the agent writes, or a segment number no server makes: ignored. */
  readonly strangeKeys: number;
  /** Stated times of base/latest.json that S3 contradicts. */
  readonly forged: readonly string[];
  /** Seconds since S3 stored base/latest.json, when it states a time S3 contradicts. */
  readonly forgedWrittenSecondsAgo?: number;
  /** Why the archive could not be fully checked (an unreadable pointer, an S3 error, too many objects). */
  readonly problem?: string;
}

/** A base backup pointer is a few hundred bytes; more is not one the agent writes, and is not read. */
export const MAX_BASE_POINTER_BYTES = 64 * 1024;
/**
 * Objects listed since the base backup before the check gives up on the chain: a day of 16 MiB segments at 100 MB/s
 * of WAL is about 5,400, plus a received partial every few seconds. More means the base backup is far too old.
 */
export const MAX_WAL_OBJECTS_LISTED = 100_000;
/** WAL segment sizes PostgreSQL allows: powers of two from 1 MiB to 1 GiB. */
const MIN_SEGMENT_BYTES = 1 << 20;
const MAX_SEGMENT_BYTES = 1 << 30;
const DEFAULT_SEGMENT_BYTES = 16 << 20;
/** Segment numbers per log file ("xlogid") for a segment size: the third 8-hex part runs up to this, then the second rolls over. */
const segmentsPerLog = (segmentBytes: number) => 0x1_0000_0000 / segmentBytes;

/** One listed WAL object, with what its name says. */
interface WalObject {
  readonly file: string;
  readonly kind: WalFileKind;
  readonly timeline: number;
  /** log * segmentsPerLog + segment, for segments and partials; undefined for history files and backup labels. */
  readonly position?: number;
  readonly lastModified: Date;
}

/**
 * What to tell a person to do about a gap: run the source's task now (`lead`), or the agent's `command` with the
 * store's bucket and prefix; every time after it is restorable again.
 */
export function runNowAdvice(clients: MonitorClients, source: string, lead: string, command: string, flags = ''): string {
  const prefix = clients.prefix ? ` --prefix ${clients.prefix}` : '';
  return `${lead}, or \`restorable ${command} --source ${source} --bucket ${clients.bucket}${prefix}${flags} --recipient …\` with its connection ` +
    'options; every time after it is restorable again';
}

/** What to tell a person to do about a gap or a missing base backup: a new base backup makes every later time restorable. */
export const newBaseBackupAdvice = (clients: MonitorClients, source: string): string =>
  runNowAdvice(clients, source, `take a new base backup now: run ${source}'s base backup task`, 'basebackup');

/** The source's WAL archive: ages, gaps, and what went wrong; never throws. */
export async function checkWalArchive(source: string, thresholds: WalArchiveThresholds, clients: MonitorClients, now: Date): Promise<WalArchiveStatus> {
  const empty = { thresholds, gaps: [], strangeKeys: 0, forged: [] };
  const pointerKey = baseLatestKey(clients.prefix, source);
  const where = `s3://${clients.bucket}/${pointerKey}`;
  try {
    const stored = await getStored(clients.s3, clients.bucket, pointerKey, MAX_BASE_POINTER_BYTES);
    if (!stored) return { ...empty, noBaseBackup: `no base backup (no ${where})` };
    const pointer = parseBaseBackupPointer(stored.text, where);
    const basePrefix = baseBackupPrefix(clients.prefix, source);
    if (pointer.source !== source || !pointer.key.startsWith(basePrefix) || !pointer.key.endsWith(BASE_BACKUP_SUFFIX)) {
      return { ...empty, problem: `${where} names ${JSON.stringify(pointer.key)} of source ${JSON.stringify(pointer.source)}, not a base backup under ${basePrefix}: not followed` };
    }
    const baseStored = await lastModified(clients.s3, clients.bucket, pointer.key);
    if (!baseStored) return { ...empty, noBaseBackup: `${where} names a missing base backup, ${pointer.key}` };
    // A base backup starts before its object is stored, and its pointer is written after it finished.
    const forged = [
      forgedTime('base/latest.json', 'startedAt', pointer.startedAt, baseStored, `the base backup it names, ${pointer.key},`, now),
      forgedTime('base/latest.json', 'finishedAt', pointer.finishedAt, stored.lastModified, 'base/latest.json itself', now),
    ].filter((f): f is string => f !== undefined);
    const base = {
      ...empty,
      baseBackupKey: pointer.key,
      baseBackupAgeSeconds: secondsBetween(baseStored, now),
      forged,
      ...forged.length ? { forgedWrittenSecondsAgo: secondsBetween(stored.lastModified, now) } : {},
    };
    try {
      const chain = await walChainSince(source, pointer.startWalFile, clients, now);
      // Nothing archived since the base backup began: the newest WAL is older than the base backup, at least.
      return { ...base, ...chain, walAgeSeconds: chain.walAgeSeconds ?? base.baseBackupAgeSeconds };
    } catch (err) {
      return { ...base, problem: messageOf(err) };
    }
  } catch (err) {
    const problem = err instanceof ContractError ? `${err.message}: ${err.fix}` : messageOf(err);
    return { ...empty, problem };
  }
}

/** Lists the chain from `startWalFile` on and reads its age and gaps. */
async function walChainSince(source: string, startWalFile: string, clients: MonitorClients, now: Date):
Promise<Pick<WalArchiveStatus, 'newestWalFile' | 'walAgeSeconds' | 'gaps' | 'strangeKeys'>> {
  const prefix = walPrefix(clients.prefix, source);
  const listed = await listSince(clients, prefix, startWalFile);
  const names = listed.map((o) => ({ file: o.key.slice(prefix.length, -STORED_SUFFIX.length), lastModified: o.lastModified, stored: o.key.endsWith(STORED_SUFFIX) }));
  const firstSegment = names.find((n) => n.stored && walFileKind(n.file) === WalFileKind.SEGMENT);
  const segmentBytes = firstSegment ? await segmentSize(clients, walKey(clients.prefix, source, firstSegment.file)) : DEFAULT_SEGMENT_BYTES;
  const perLog = segmentsPerLog(segmentBytes);
  const objects: WalObject[] = [];
  let strangeKeys = 0;
  for (const n of names) {
    const object = n.stored ? walObject(n.file, n.lastModified, perLog) : undefined;
    if (object) objects.push(object);
    else strangeKeys++;
  }
  // Listed in key order: of objects S3 stored in the same second, the later name is the newer.
  const newest = objects.reduce<WalObject | undefined>((a, b) => (!a || b.lastModified >= a.lastModified ? b : a), undefined);
  const start = walObject(startWalFile, new Date(0), perLog);
  return {
    newestWalFile: newest?.file,
    walAgeSeconds: newest && secondsBetween(newest.lastModified, now),
    gaps: start?.position === undefined ? [] : chainGaps(objects, start.timeline, start.position, perLog),
    strangeKeys,
  };
}

/** Every object after `startWalFile`'s key begins, up to MAX_WAL_OBJECTS_LISTED. */
function listSince(clients: MonitorClients, prefix: string, startWalFile: string): Promise<ListedObject[]> {
  // StartAfter the bare name: the start segment's own key (name + suffix) sorts after it, so it is listed.
  return listAfter(clients, prefix, `${prefix}${startWalFile}`, MAX_WAL_OBJECTS_LISTED, () =>
    `s3://${clients.bucket}/${prefix} holds more than ${MAX_WAL_OBJECTS_LISTED} WAL objects since the newest base backup's ` +
    `${startWalFile}: the chain was not checked; the base backup is far too old, or something wrote objects there that are not WAL`);
}

/** A whole segment's size from its metadata (written by the archiving agent): it fixes how segment numbers roll over. */
async function segmentSize(clients: MonitorClients, key: string): Promise<number> {
  let stated: string | undefined;
  try {
    const head = await clients.s3.send(new HeadObjectCommand({ Bucket: clients.bucket, Key: key }));
    stated = head.Metadata?.[WAL_METADATA.plaintextSize];
  } catch (err) {
    if (isNotFound(err)) return DEFAULT_SEGMENT_BYTES;
    throw s3Problem('HeadObject', clients.bucket, key, err);
  }
  const bytes = Number(stated);
  if (!(Number.isInteger(bytes) && bytes >= MIN_SEGMENT_BYTES && bytes <= MAX_SEGMENT_BYTES && (bytes & (bytes - 1)) === 0)) {
    throw new Error(`s3://${clients.bucket}/${key} states ${WAL_METADATA.plaintextSize} ${JSON.stringify(stated)}, not a WAL segment size ` +
      '(a power of two from 1 MiB to 1 GiB): the chain was not checked');
  }
  return bytes;
}

/** What a stored WAL file's name says, or undefined for a name no server archives or a segment number past its log's end. */
export function walObject(file: string, stored: Date, perLog: number): WalObject | undefined {
  const kind = walFileKind(file);
  if (!kind) return undefined;
  const timeline = parseInt(file.slice(0, 8), 16);
  if (timeline < 1) return undefined;
  if (kind === WalFileKind.HISTORY || kind === WalFileKind.BACKUP_LABEL) return { file, kind, timeline, lastModified: stored };
  const log = parseInt(file.slice(8, 16), 16);
  const segment = parseInt(file.slice(16, 24), 16);
  if (segment >= perLog) return undefined;
  return { file, kind, timeline, position: log * perLog + segment, lastModified: stored };
}

/** The 24-hex-digit name of a segment position on a timeline. */
export function segmentName(timeline: number, position: number, perLog: number): string {
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(8, '0');
  return `${hex(timeline)}${hex(Math.floor(position / perLog))}${hex(position % perLog)}`;
}

/**
 * The holes in the chain a restore replays from the base backup's start (`baseTimeline`, `startPosition`): on each
 * timeline, from where it starts to its newest segment or partial, every position must have a whole segment (a
 * received partial of a segment is its newest bytes only while it is the newest: it never fills a hole before it, and
 * the timeline's last segment may be a partial). A timeline after the base backup's needs its history file, and must
 * start no later than the segment after the previous timeline's last whole one (at a switch, the new timeline's first
 * segment holds the old one's data up to the switch).
 */
export function chainGaps(objects: readonly WalObject[], baseTimeline: number, startPosition: number, perLog: number): WalGap[] {
  const gaps: WalGap[] = [];
  const segments = objects.filter((o) => o.position !== undefined && o.timeline >= baseTimeline);
  const timelines = [...new Set([baseTimeline, ...segments.map((o) => o.timeline)])].sort((a, b) => a - b);
  /** When S3 stored the first object past `position` of `timeline`, or on a later timeline. */
  const firstStoredAfter = (timeline: number, position: number) => objects
    .filter((o) => o.timeline > timeline || (o.timeline === timeline && o.position !== undefined && o.position > position))
    .reduce((a, o) => (o.lastModified < a ? o.lastModified : a), new Date(8.64e15));
  let previous = { timeline: baseTimeline, lastWhole: startPosition - 1 };
  for (const timeline of timelines) {
    const mine = segments.filter((o) => o.timeline === timeline);
    const name = (position: number) => segmentName(timeline, position, perLog);
    const wholes = mine.filter((o) => o.kind === WalFileKind.SEGMENT).map((o) => o.position!);
    let from = startPosition;
    if (timeline !== baseTimeline) {
      from = Math.min(...mine.map((o) => o.position!));
      if (!objects.some((o) => o.timeline === timeline && o.kind === WalFileKind.HISTORY)) {
        gaps.push({
          description: `timeline ${timeline} (from ${name(from)}) has no history file ${name(0).slice(0, 8)}.history: ` +
            `a restore cannot follow the switch from timeline ${previous.timeline}`,
          seenSince: mine.reduce((a, o) => (o.lastModified < a ? o.lastModified : a), mine[0].lastModified),
        });
      }
      // At a switch the new timeline's first segment holds the old one's data up to the switch point.
      const expected = previous.lastWhole + 1;
      if (from > expected) gaps.push(hole(previous.timeline, expected, from - 1, `before timeline ${timeline} begins at ${name(from)}`));
    }
    if (mine.length) {
      // Every position before the newest must be a whole segment; the newest may be a partial.
      const newest = Math.max(...mine.map((o) => o.position!));
      let present = from - 1;
      for (const p of [...new Set([...wholes.filter((w) => w >= from), newest])].sort((a, b) => a - b)) {
        if (p > present + 1) gaps.push(hole(timeline, present + 1, p - 1, `on timeline ${timeline}`));
        present = p;
      }
    }
    previous = { timeline, lastWhole: wholes.length ? Math.max(...wholes) : from - 1 };
  }
  return gaps;

  function hole(timeline: number, first: number, last: number, where: string): WalGap {
    const count = last - first + 1;
    return {
      description: `missing ${segmentName(timeline, first, perLog)}${count > 1 ? ` to ${segmentName(timeline, last, perLog)}` : ''} ` +
        `(${count} segment${count > 1 ? 's' : ''}) ${where}`,
      seenSince: firstStoredAfter(timeline, last),
    };
  }
}

/** Whether a source's WAL archive is in any trouble worth a line of the check's message. */
export function walTroubled(wal: WalArchiveStatus): boolean {
  return walFindings(wal).length > 0;
}

/** Whether something in the archive went wrong within the last interval, by S3's clock: the previous run could not have said it. */
export function walNews(wal: WalArchiveStatus, now: Date, intervalSeconds: number): boolean {
  const { thresholds: t } = wal;
  const crossed = (age: number | undefined, max: number) => age !== undefined && age > max && age - intervalSeconds <= max;
  return crossed(wal.walAgeSeconds, t.maxAgeSeconds) || crossed(wal.baseBackupAgeSeconds, t.baseBackupMaxAgeSeconds) ||
    wal.gaps.some((g) => secondsBetween(g.seenSince, now) <= intervalSeconds);
}

/** What is wrong with the archive, one finding a line; forged times are the caller's to say, with the source's others. */
function walFindings(wal: WalArchiveStatus): string[] {
  const { thresholds: t } = wal;
  return [
    ...wal.noBaseBackup ? [`${wal.noBaseBackup}: point-in-time recovery has nothing to start from`] : [],
    ...wal.walAgeSeconds !== undefined && wal.walAgeSeconds > t.maxAgeSeconds
      ? [`newest archived WAL${wal.newestWalFile ? ` (${wal.newestWalFile})` : ' (none since the base backup)'} was stored ${wal.walAgeSeconds} s ago, ` +
        `over its ${t.maxAgeSeconds} s: the continuous RPO is broken (is the WAL receiver or archive_command running?)`]
      : [],
    ...wal.baseBackupAgeSeconds !== undefined && wal.baseBackupAgeSeconds > t.baseBackupMaxAgeSeconds
      ? [`newest base backup ${wal.baseBackupKey} was stored ${wal.baseBackupAgeSeconds} s ago, over its ${t.baseBackupMaxAgeSeconds} s`]
      : [],
    ...wal.gaps.length ? [`gap in the WAL since base backup ${wal.baseBackupKey}: ${wal.gaps.map((g) => g.description).join('; ')}; ` +
      'point-in-time recovery cannot replay past it']
      : [],
    ...wal.strangeKeys ? [`${wal.strangeKeys} object(s) under wal/ that are no WAL file a server archives: ignored; see what wrote them`] : [],
  ];
}

/** The message lines of a troubled archive, with the advice a gap or a missing base backup needs. */
export function describeWal(wal: WalArchiveStatus, clients: MonitorClients, source: string): string[] {
  // Its problem, if any, is the source's ("check failed" or "but …"), said once by the caller.
  const findings = walFindings(wal);
  if (wal.gaps.length || wal.noBaseBackup) findings.push(newBaseBackupAdvice(clients, source));
  return findings.map((f) => `  WAL archive: ${f}`);
}

/** Whether the source counts in WalArchiveGaps: its chain has a hole, or there is no base backup to start from. */
export function hasWalGap(wal: WalArchiveStatus): boolean {
  return wal.gaps.length > 0 || wal.noBaseBackup !== undefined;
}

/** The archive's metrics: per source its ages and gap flag, and fleet-wide the worst ratios and how many sources have a gap. */
export function walMetrics(archives: readonly { source: string; wal: WalArchiveStatus }[], now: Date): MetricDatum[] {
  if (!archives.length) return [];
  const worst = (ratios: number[]) => Math.max(0, ...ratios);
  return [
    ...archives.flatMap(({ source, wal }) => [
      ...wal.walAgeSeconds !== undefined ? [datum(Metrics.WAL_ARCHIVE_AGE_SECONDS, wal.walAgeSeconds, StandardUnit.Seconds, source, now)] : [],
      ...wal.baseBackupAgeSeconds !== undefined ? [datum(Metrics.BASE_BACKUP_AGE_SECONDS, wal.baseBackupAgeSeconds, StandardUnit.Seconds, source, now)] : [],
      // Not published when the chain could not be read: SourcesNotChecked says so, and a 0 would say it is whole.
      ...wal.problem === undefined || wal.noBaseBackup ? [datum(Metrics.WAL_GAPS, hasWalGap(wal) ? 1 : 0, StandardUnit.Count, source, now)] : [],
    ]),
    datum(Metrics.WAL_GAPS, archives.filter(({ wal }) => hasWalGap(wal)).length, StandardUnit.Count, undefined, now),
    datum(Metrics.FLEET_WAL_STALENESS_RATIO,
      worst(archives.flatMap(({ wal }) => wal.walAgeSeconds === undefined ? [] : [wal.walAgeSeconds / wal.thresholds.maxAgeSeconds])), StandardUnit.None, undefined, now),
    datum(Metrics.FLEET_BASE_BACKUP_STALENESS_RATIO,
      worst(archives.flatMap(({ wal }) => wal.baseBackupAgeSeconds === undefined ? [] : [wal.baseBackupAgeSeconds / wal.thresholds.baseBackupMaxAgeSeconds])),
      StandardUnit.None, undefined, now),
  ];
}

/** Checks a schedule entry's `wal` object, or throws naming it: the input comes from BackupMonitoring, and a typo must not pass silently. */
export function walThresholdsOf(entry: unknown): WalArchiveThresholds | undefined {
  const wal = (entry as { wal?: unknown }).wal;
  if (wal === undefined) return undefined;
  const t = wal as Partial<WalArchiveThresholds> | null;
  if (typeof t !== 'object' || t === null || !(Number(t.maxAgeSeconds) > 0) || !(Number(t.baseBackupMaxAgeSeconds) > 0)) {
    throw new Error(`bad source entry ${JSON.stringify(entry)}: wal needs a positive maxAgeSeconds and baseBackupMaxAgeSeconds`);
  }
  return { maxAgeSeconds: Number(t.maxAgeSeconds), baseBackupMaxAgeSeconds: Number(t.baseBackupMaxAgeSeconds) };
}
