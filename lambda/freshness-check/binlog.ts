/**
 * The freshness check's look at a MariaDB source whose binlogs are streamed: how old the newest object of its newest
 * stream is (the continuous RPO, BinlogArchiveAgeSeconds), and whether that stream replays without a gap from the
 * newest dump's binlog coordinates to its newest event (BinlogArchiveGaps): readBinlogCoverage, which `restorable
 * status` shares, says both. Here the newest dump's manifest is read (one bounded GET) for its coordinates, and the
 * findings become metrics and the message's lines, each with what to do.
 *
 * Never throws: what the streamer and the dump task wrote is untrusted, so an unreadable stream.json or manifest, or
 * too many objects, is a problem the source reports (and SourcesNotChecked counts).
 */
import { MetricDatum, StandardUnit } from '@aws-sdk/client-cloudwatch';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { BinlogCoverage, BinlogDump, BinlogStoreReader, readBinlogCoverage } from '../../lib/contract/binlog-coverage';
import { ContractError, parseManifest } from '../../lib/contract/manifest';
import { Metrics } from '../../lib/contract/metrics';
import { manifestKeyFor } from '../../lib/contract/names';
import { MonitorClients, datum, getStored, isNotFound, messageOf, s3Problem, secondsBetween } from '../shared/aws';
import { folderNames, listAfter } from './listing';
import { runNowAdvice } from './wal-archive';

/** A source's binlog thresholds, from the schedule's input (BackupMonitoring.addSource's binlog). */
export interface BinlogThresholds {
  readonly maxAgeSeconds: number;
}

export interface BinlogArchiveStatus extends Omit<BinlogCoverage, 'newest'> {
  readonly thresholds: BinlogThresholds;
  /** The dump a replay would start from: latest.json's. */
  readonly dumpKey?: string;
  /** The newest binlog object of the newest stream, and when S3 stored it. */
  readonly newest?: { readonly name: string; readonly storedAt: string };
  /** Seconds since S3 stored that object or, with none, the newest dump: the data at risk. */
  readonly ageSeconds?: number;
}

/** A manifest lists its tables: a few megabytes at most. */
export const MAX_MANIFEST_BYTES = 8 << 20;

/** What the dump side of the check knew: latest.json's backup and its age, or that there is none, or that it could not be read. */
export type NewestDump = { readonly key: string; readonly ageSeconds?: number } | 'none' | 'unknown';

/** What to tell a person to do about a gap: a dump with coordinates makes every later time restorable again. */
export const newDumpAdvice = (clients: MonitorClients, source: string): string =>
  runNowAdvice(clients, source, `run a dump now: start ${source}'s scheduled dump task`, 'backup', ' --binlog-coordinates');

/** The source's binlog coverage from its newest dump, its age, and what went wrong; never throws. */
export async function checkBinlogArchive(source: string, thresholds: BinlogThresholds, newestDump: NewestDump, clients: MonitorClients, now: Date):
Promise<BinlogArchiveStatus> {
  const base = { thresholds, gaps: [], strangeKeys: 0, forged: [], ...typeof newestDump === 'object' ? { dumpKey: newestDump.key } : {} };
  try {
    const dump = typeof newestDump === 'object' ? await readDump(clients, newestDump.key) : undefined;
    const coverage = await readBinlogCoverage(binlogReader(clients), clients.prefix, source, dump, now);
    const dumpAge = typeof newestDump === 'object' ? newestDump.ageSeconds : undefined;
    const ageSeconds = coverage.newest ? secondsBetween(coverage.newest.storedAt, now) : dumpAge;
    return {
      ...base, ...coverage,
      // Latest.json could not be read: the dump side reports that, and no gap is judged without a dump to judge from.
      ...newestDump === 'unknown' ? { gaps: [] } : {},
      newest: coverage.newest && { name: coverage.newest.name, storedAt: coverage.newest.storedAt.toISOString() },
      ...ageSeconds !== undefined ? { ageSeconds } : {},
    };
  } catch (err) {
    return { ...base, problem: err instanceof ContractError ? `${err.message}: ${err.fix}` : messageOf(err) };
  }
}

/** The newest dump's key, start and coordinates, from its manifest (bounded, parsed, and it must describe that dump). */
async function readDump(clients: MonitorClients, key: string): Promise<BinlogDump> {
  const manifestKey = manifestKeyFor(key);
  const where = `s3://${clients.bucket}/${manifestKey}`;
  const stored = await getStored(clients.s3, clients.bucket, manifestKey, MAX_MANIFEST_BYTES);
  if (!stored) throw new Error(`latest.json names ${key}, whose manifest ${where} does not exist: its binlog coordinates are unknown`);
  const manifest = parseManifest(stored.text, where);
  if (manifest.key !== key) throw new Error(`manifest ${where} describes ${manifest.key}, not ${key}, which latest.json names: not followed`);
  return { key, startedAt: manifest.startedAt, ...manifest.binlog ? { binlog: manifest.binlog } : {} };
}

/** The store as readBinlogCoverage reads it, through the handler's bounded S3 reads. */
function binlogReader(clients: MonitorClients): BinlogStoreReader {
  return {
    folders: (prefix) => folderNames(clients, prefix),
    objectsAfter: (prefix, startAfter, limit) => listAfter(clients, prefix, startAfter, limit, () =>
      `s3://${clients.bucket}/${prefix} holds more than ${limit} objects from the newest dump's binlog file on: the binlogs were not checked; ` +
      'the dump is far too old, or something wrote objects there that are no binlog'),
    small: (key, maxBytes) => getStored(clients.s3, clients.bucket, key, maxBytes),
    metadata: async (key) => {
      try {
        return (await clients.s3.send(new HeadObjectCommand({ Bucket: clients.bucket, Key: key }))).Metadata ?? {};
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw s3Problem('HeadObject', clients.bucket, key, err);
      }
    },
  };
}

/** Whether the source counts in BinlogArchiveGaps. */
export function hasBinlogGap(binlog: BinlogArchiveStatus): boolean {
  return binlog.gaps.length > 0;
}

/** Whether something went wrong within the last interval, by S3's clock: the age crossed its limit, or a gap was stored. */
export function binlogNews(binlog: BinlogArchiveStatus, now: Date, intervalSeconds: number): boolean {
  const age = binlog.ageSeconds;
  const max = binlog.thresholds.maxAgeSeconds;
  return (age !== undefined && age > max && age - intervalSeconds <= max) ||
    binlog.gaps.some((g) => g.seenSince !== undefined && secondsBetween(g.seenSince, now) <= intervalSeconds);
}

/** What is wrong with the binlogs, one finding a line; forged stream ids are the caller's to say, with the source's others. */
function binlogFindings(binlog: BinlogArchiveStatus): string[] {
  const { maxAgeSeconds } = binlog.thresholds;
  const stream = binlog.streamId ? ` of stream ${binlog.streamId}` : '';
  return [
    ...binlog.ageSeconds !== undefined && binlog.ageSeconds > maxAgeSeconds
      ? [(binlog.newest ? `newest binlog object${stream} (${binlog.newest.name}) was stored ${binlog.ageSeconds} s ago` : `no binlog object stored; the newest dump was stored ${binlog.ageSeconds} s ago`) +
        `, over its ${maxAgeSeconds} s: the continuous RPO is broken (is the binlog streamer service running? a server that writes nothing streams nothing)`]
      : [],
    ...binlog.gaps.length ? [`binlogs cannot be replayed from the newest dump${binlog.dumpKey ? ` ${binlog.dumpKey}` : ''} to the newest streamed event: ` +
      `${binlog.gaps.map((g) => g.description).join('; ')}`]
      : [],
    ...binlog.strangeKeys ? [`${binlog.strangeKeys} key(s) under binlog/ that are no stream or binlog object: ignored; see what wrote them`] : [],
  ];
}

/** Whether the binlogs are in any trouble worth a line of the check's message. */
export function binlogTroubled(binlog: BinlogArchiveStatus): boolean {
  return binlogFindings(binlog).length > 0;
}

/** The message lines of troubled binlogs, with the advice a gap needs. */
export function describeBinlog(binlog: BinlogArchiveStatus, clients: MonitorClients, source: string): string[] {
  // Its problem, if any, is the source's ("check failed" or "but …"), said once by the caller.
  const findings = binlogFindings(binlog);
  if (binlog.gaps.length) findings.push(newDumpAdvice(clients, source));
  return findings.map((f) => `  binlogs: ${f}`);
}

/** Per source its age and gap flag, and fleet-wide the worst age over its limit and how many sources have a gap. */
export function binlogMetrics(archives: readonly { source: string; binlog: BinlogArchiveStatus }[], now: Date): MetricDatum[] {
  if (!archives.length) return [];
  return [
    ...archives.flatMap(({ source, binlog }) => [
      ...binlog.ageSeconds !== undefined ? [datum(Metrics.BINLOG_ARCHIVE_AGE_SECONDS, binlog.ageSeconds, StandardUnit.Seconds, source, now)] : [],
      // Not published when the binlogs could not be judged: SourcesNotChecked says so, and a 0 would say they replay.
      ...binlog.problem === undefined || hasBinlogGap(binlog) ? [datum(Metrics.BINLOG_GAPS, hasBinlogGap(binlog) ? 1 : 0, StandardUnit.Count, source, now)] : [],
    ]),
    datum(Metrics.BINLOG_GAPS, archives.filter(({ binlog }) => hasBinlogGap(binlog)).length, StandardUnit.Count, undefined, now),
    datum(Metrics.FLEET_BINLOG_STALENESS_RATIO,
      Math.max(0, ...archives.flatMap(({ binlog }) => binlog.ageSeconds === undefined ? [] : [binlog.ageSeconds / binlog.thresholds.maxAgeSeconds])),
      StandardUnit.None, undefined, now),
  ];
}

/** Checks a schedule entry's `binlog` object, or throws naming it: the input comes from BackupMonitoring, and a typo must not pass silently. */
export function binlogThresholdsOf(entry: unknown): BinlogThresholds | undefined {
  const binlog = (entry as { binlog?: unknown }).binlog;
  if (binlog === undefined) return undefined;
  const t = binlog as Partial<BinlogThresholds> | null;
  if (typeof t !== 'object' || t === null || !(Number(t.maxAgeSeconds) > 0)) {
    throw new Error(`bad source entry ${JSON.stringify(entry)}: binlog needs a positive maxAgeSeconds`);
  }
  return { maxAgeSeconds: Number(t.maxAgeSeconds) };
}
