/**
 * Freshness check, on a schedule: for each source it reads `latest.json`, HEADs the backup it names and reads
 * the newest restore-test report (and, for a restore-tested source without one, lists its oldest object), so its
 * cost is at most four requests per source however many backups exist. It publishes each source's backup age and
 * the fleet signals the alarms watch, and tells the topic which sources are in trouble.
 *
 * Ages come from times S3 sets, never from times the writer states: a backup's age from the LastModified of the
 * backup object latest.json names, a restore test's from the LastModified of its report. A task that can write
 * the store can write any startedAt or finishedAt it likes (2099, to look fresh for ever), but not those. A stated
 * time in the future, or later than the S3 time that bounds it by more than POINTER_CLOCK_SKEW_SECONDS, is its
 * own finding, a forged or skewed pointer: counted, alarmed and named, never fresh.
 *
 * The source list comes in the event (the schedule's input), not the environment: Lambda caps environment
 * variables at 4 KB in total, and a hundred sources with their thresholds do not fit there.
 */
import { StandardUnit } from '@aws-sdk/client-cloudwatch';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { forgedTime, parseLatest, parseRestoreTestPointer } from '../../lib/contract/manifest';
import { Metrics } from '../../lib/contract/metrics';
import { ReportsCopy, latestKey, reportsCopyProblem, restoreTestLatestKey, sourcePrefix } from '../../lib/contract/names';
import {
  MonitorClients, clientsFromEnv, datum, getStored, lastModified, mapBounded, messageOf, notify, publishMetrics, requiredEnv, secondsBetween,
} from '../shared/aws';
import { WalArchiveStatus, WalArchiveThresholds, checkWalArchive, describeWal, walMetrics, walNews, walThresholdsOf, walTroubled } from './wal-archive';
import {
  BinlogArchiveStatus, BinlogThresholds, NewestDump, binlogMetrics, binlogNews, binlogThresholdsOf, binlogTroubled, checkBinlogArchive, describeBinlog,
} from './binlog';

export interface FreshnessSource {
  readonly source: string;
  /** The backup age above which the source is stale. */
  readonly maxAgeSeconds: number;
  /**
   * The source is restore-tested (RestoreTesting said so through BackupMonitoring.expectRestoreTests): having no
   * restore-test report is then a finding, not the normal state of an untested source. See restoreTestAge.
   */
  readonly restoreTested?: boolean;
  /** The source archives its WAL continuously: watch its WAL archive and base backups too (see wal-archive.ts). */
  readonly wal?: WalArchiveThresholds;
  /** The source's MariaDB binlogs are streamed: watch its newest stream and its gaps from the newest dump (see binlog.ts). */
  readonly binlog?: BinlogThresholds;
}

/** The schedule's input. */
export interface FreshnessEvent {
  readonly sources: readonly FreshnessSource[];
}

export enum SourceState {
  FRESH = 'fresh',
  STALE = 'stale',
  /** No `latest.json`: no backup of this source ever passed verification. */
  NO_BACKUPS = 'no backups found',
  /** `latest.json` names an object that does not exist. */
  DANGLING = 'latest.json points to a missing backup',
  /**
   * latest.json states a time S3 contradicts (see forged): its age, from S3's time, is still published, but it is
   * never fresh.
   */
  FORGED = 'forged or skewed pointer',
  /** The check itself failed; the reason says why. */
  NOT_CHECKED = 'check failed',
}

export interface SourceStatus {
  readonly source: string;
  readonly state: SourceState;
  readonly maxAgeSeconds: number;
  /** Seconds since S3 stored the backup latest.json names (its LastModified), whatever the pointer says. */
  readonly ageSeconds?: number;
  readonly key?: string;
  /**
   * Seconds the source has gone without a restore test: since its newest report finished or, for a restore-tested
   * source that has no report, since its oldest stored backup started (see restoreTestAge).
   */
  readonly restoreTestAgeSeconds?: number;
  /** A restore-tested source with no restore-test report: restoreTestAgeSeconds counts from its oldest stored backup. */
  readonly neverRestoreTested?: boolean;
  /** Why the check failed, or what else went wrong (an unreadable restore-test report). */
  readonly problem?: string;
  /** What latest.json or the restore-test report states that S3's times contradict, in words; see SourceState.FORGED. */
  readonly forged?: readonly string[];
  /** Seconds since S3 stored the newest object found forged: a forgery is news in the first interval after it. */
  readonly forgedWrittenSecondsAgo?: number;
  /** For a source that archives its WAL: its newest WAL's and base backup's ages, and the gaps in its chain. */
  readonly wal?: WalArchiveStatus;
  /** For a source whose binlogs are streamed: its newest stream, the newest object's age, and the gaps from the newest dump. */
  readonly binlog?: BinlogArchiveStatus;
}

export interface FreshnessReport {
  readonly statuses: readonly SourceStatus[];
  /** The largest age over its source's threshold; 0 when no source has a backup. */
  readonly stalenessRatio: number;
  readonly notified: boolean;
}

export interface FreshnessOptions {
  readonly now: Date;
  /** How often the check runs: a source that crossed its threshold within one interval is news. */
  readonly intervalSeconds: number;
  /**
   * Whose restore-test reports count: a vault's own tests' (ReportsCopy.VAULT, `restore-tests/vault/latest.json`),
   * never the primary's that replication brings to `restore-tests/latest.json`, or the vault's overdue alarm would
   * be met by them while the vault's own tests stopped.
   * @default - the top-level `restore-tests/latest.json`
   */
  readonly restoreTestReports?: ReportsCopy;
}

/** Requests in flight at once: enough to check a hundred sources in seconds, few enough to stay polite. */
const CONCURRENCY = 8;
const DAY_SECONDS = 86_400;

export async function checkFreshness(event: FreshnessEvent, clients: MonitorClients, options: FreshnessOptions): Promise<FreshnessReport> {
  const sources = validateEvent(event);
  const statuses = await mapBounded(sources, CONCURRENCY, async (s) => withContinuous(s, await checkSource(s, clients, options.now, options.restoreTestReports),
    clients, options.now));
  // A forged pointer's age is S3's, so it counts as any other: forged to look fresh, it is stale all the same.
  const withBackups = statuses.filter((s) => s.ageSeconds !== undefined &&
    (s.state === SourceState.FRESH || s.state === SourceState.STALE || s.state === SourceState.FORGED));
  const stalenessRatio = Math.max(0, ...withBackups.map((s) => s.ageSeconds! / s.maxAgeSeconds));

  const data = [
    ...withBackups.map((s) => datum(Metrics.BACKUP_AGE_SECONDS, s.ageSeconds!, StandardUnit.Seconds, s.source, options.now)),
    ...statuses.filter((s) => s.restoreTestAgeSeconds !== undefined)
      .map((s) => datum(Metrics.RESTORE_TEST_AGE_SECONDS, s.restoreTestAgeSeconds!, StandardUnit.Seconds, s.source, options.now)),
    datum(Metrics.FLEET_STALENESS_RATIO, stalenessRatio, StandardUnit.None, undefined, options.now),
    datum(Metrics.SOURCES_WITHOUT_BACKUP, statuses.filter((s) => s.state === SourceState.NO_BACKUPS || s.state === SourceState.DANGLING).length,
      StandardUnit.Count, undefined, options.now),
    datum(Metrics.SOURCES_NOT_CHECKED, statuses.filter((s) => s.problem !== undefined).length, StandardUnit.Count, undefined, options.now),
    datum(Metrics.FORGED_POINTERS, statuses.filter((s) => s.forged?.length).length, StandardUnit.Count, undefined, options.now),
  ];
  const restoreTestAges = statuses.flatMap((s) => s.restoreTestAgeSeconds ?? []);
  // Fleet-wide, the oldest restore test: one alarm watches every source.
  if (restoreTestAges.length) data.push(datum(Metrics.RESTORE_TEST_AGE_SECONDS, Math.max(...restoreTestAges), StandardUnit.Seconds, undefined, options.now));
  data.push(...walMetrics(statuses.flatMap((s) => s.wal ? [{ source: s.source, wal: s.wal }] : []), options.now));
  data.push(...binlogMetrics(statuses.flatMap((s) => s.binlog ? [{ source: s.source, binlog: s.binlog }] : []), options.now));
  await publishMetrics(clients.cloudwatch, data);

  for (const s of statuses) console.log(JSON.stringify(s));
  const notified = await notifyIfNews(statuses, clients, options);
  return { statuses, stalenessRatio, notified };
}

function validateEvent(event: FreshnessEvent): readonly FreshnessSource[] {
  if (!event || !Array.isArray(event.sources)) {
    throw new Error('the event has no sources list: the schedule passes {"sources":[{"source":"…","maxAgeSeconds":…}]}');
  }
  for (const s of event.sources) {
    if (typeof s.source !== 'string' || !(s.maxAgeSeconds > 0)) {
      throw new Error(`bad source entry ${JSON.stringify(s)}: each needs a source name and a positive maxAgeSeconds`);
    }
    if (s.restoreTested !== undefined && typeof s.restoreTested !== 'boolean') {
      throw new Error(`bad source entry ${JSON.stringify(s)}: restoreTested must be true or false`);
    }
    walThresholdsOf(s);
    binlogThresholdsOf(s);
  }
  return event.sources;
}

/** Four requests at most, whatever the number of backups; an error stays with its source. */
async function checkSource(config: FreshnessSource, clients: MonitorClients, now: Date, reports: ReportsCopy | undefined): Promise<SourceStatus> {
  const { source, maxAgeSeconds } = config;
  const base = { source, maxAgeSeconds };
  const pointerKey = latestKey(clients.prefix, source);
  try {
    const stored = await getStored(clients.s3, clients.bucket, pointerKey);
    if (stored === undefined) return { ...base, state: SourceState.NO_BACKUPS };
    const pointer = parseLatest(stored.text, `s3://${clients.bucket}/${pointerKey}`);
    // The age is the backup object's LastModified (one HEAD): S3 sets it, the task that wrote latest.json cannot.
    const backupStored = await lastModified(clients.s3, clients.bucket, pointer.key);
    if (!backupStored) return { ...base, state: SourceState.DANGLING, key: pointer.key };
    const ageSeconds = secondsBetween(backupStored, now);
    // A backup starts before its object is stored, and latest.json is written after the backup finished.
    const forged = [
      forgedTime('latest.json', 'startedAt', pointer.startedAt, backupStored, `the backup it names, ${pointer.key},`, now),
      forgedTime('latest.json', 'finishedAt', pointer.finishedAt, stored.lastModified, 'latest.json itself', now),
    ].filter((f): f is string => f !== undefined);
    const state = forged.length ? SourceState.FORGED : ageSeconds > maxAgeSeconds ? SourceState.STALE : SourceState.FRESH;
    const status: SourceStatus = {
      ...base, state, ageSeconds, key: pointer.key,
      ...forged.length ? { forged, forgedWrittenSecondsAgo: secondsBetween(stored.lastModified, now) } : {},
    };
    try {
      const tested = await restoreTestAge(config, clients, now, reports);
      if (!tested.forged) return { ...status, ...tested };
      return {
        ...status, ...tested, forged: [...status.forged ?? [], ...tested.forged],
        forgedWrittenSecondsAgo: Math.min(status.forgedWrittenSecondsAgo ?? Infinity, tested.forgedWrittenSecondsAgo!),
      };
    } catch (err) {
      return { ...status, problem: messageOf(err) };
    }
  } catch (err) {
    return { ...base, state: SourceState.NOT_CHECKED, problem: messageOf(err) };
  }
}

/**
 * Adds the continuous side of a source that archives its WAL or streams its binlogs: its problem (an unreadable
 * pointer or stream.json, an S3 error) joins the source's, so the source counts as not checked; its forged times join
 * the source's others.
 */
async function withContinuous(config: FreshnessSource, status: SourceStatus, clients: MonitorClients, now: Date): Promise<SourceStatus> {
  const walThresholds = walThresholdsOf(config);
  const binlogThresholds = binlogThresholdsOf(config);
  const wal = walThresholds && await checkWalArchive(config.source, walThresholds, clients, now);
  const binlog = binlogThresholds && await checkBinlogArchive(config.source, binlogThresholds, newestDump(status), clients, now);
  if (!wal && !binlog) return status;
  const problem = [status.problem, wal?.problem && `WAL archive: ${wal.problem}`, binlog?.problem && `binlogs: ${binlog.problem}`]
    .filter(Boolean).join('; ') || undefined;
  const forged = [...status.forged ?? [], ...wal?.forged ?? [], ...binlog?.forged ?? []];
  const forgedWrittenSecondsAgo = Math.min(status.forgedWrittenSecondsAgo ?? Infinity, wal?.forgedWrittenSecondsAgo ?? Infinity);
  return {
    ...status, ...wal ? { wal } : {}, ...binlog ? { binlog } : {},
    ...problem ? { problem } : {},
    ...forged.length ? { forged, ...Number.isFinite(forgedWrittenSecondsAgo) ? { forgedWrittenSecondsAgo } : {} } : {},
  };
}

/** The dump a binlog replay starts from, as the dump side found it. */
function newestDump(status: SourceStatus): NewestDump {
  if (status.state === SourceState.NO_BACKUPS) return 'none';
  return status.key === undefined ? 'unknown' : { key: status.key, ageSeconds: status.ageSeconds };
}

/**
 * How long the source has gone without a restore test, from `restore-tests/latest.json` (one GET): since S3
 * stored the report (its LastModified), not since the finishedAt it states, which is only checked against it.
 * In a vault, from `restore-tests/vault/latest.json`, its own tests' (`reports`): the primary's replicated reports
 * do not count there.
 *
 * A restore-tested source with no report yet counts from the start of its oldest stored backup instead: that
 * backup could have been restore-tested all along, so once it is older than the overdue window (8 days) a
 * weekly test has had more than a week to report and has not (its task never started, its report was never
 * written). The check stays stateless (it cannot remember when it first saw the source without a report) and
 * costs one LIST of a single key: backup keys start with the date (`{source}/{YYYY}/{MM}/{DD}/…`), which sorts
 * before `latest.json`, `restore-tests/` and `RUNBOOK.md`, so the first key under the source's prefix is its
 * oldest backup. The latest backup's time would not do: a source backed up hourly would never look overdue.
 * A source with long history that gains restore tests counts as overdue until its first test reports; run the
 * restore tests once (RestoreTesting.stateMachine) to clear it. A source that is not restore-tested and has no
 * report publishes no restore-test age.
 */
async function restoreTestAge(config: FreshnessSource, clients: MonitorClients, now: Date, reports: ReportsCopy | undefined):
Promise<Pick<SourceStatus, 'restoreTestAgeSeconds' | 'neverRestoreTested' | 'forged' | 'forgedWrittenSecondsAgo'>> {
  const key = restoreTestLatestKey(clients.prefix, config.source, reports);
  const stored = await getStored(clients.s3, clients.bucket, key);
  if (stored !== undefined) {
    const report = parseRestoreTestPointer(stored.text, `s3://${clients.bucket}/${key}`);
    const restoreTestAgeSeconds = secondsBetween(stored.lastModified, now);
    // The report is written once the test finished.
    const forged = forgedTime(key.slice(sourcePrefix(clients.prefix, config.source).length), 'finishedAt', report.finishedAt, stored.lastModified, 'the report itself', now);
    if (!forged) return { restoreTestAgeSeconds };
    return { restoreTestAgeSeconds, forged: [forged], forgedWrittenSecondsAgo: secondsBetween(stored.lastModified, now) };
  }
  if (!config.restoreTested) return {};
  const since = await oldestBackupStart(config.source, clients);
  return { restoreTestAgeSeconds: since ? secondsBetween(since, now) : 0, neverRestoreTested: true };
}

/** `…/{source}_{YYYY-MM-DD_HH-MM-SS}Z.…`: the start time in a backup's key, or in any of its companions' keys. */
const KEY_TIME = /\/[a-z0-9-]{1,48}_(\d{4})-(\d{2})-(\d{2})_(\d{2})-(\d{2})-(\d{2})Z\.[^/]+$/;

/** The start of the source's oldest stored backup (one LIST of one key), from its key or else its upload time. */
async function oldestBackupStart(source: string, clients: MonitorClients): Promise<Date | undefined> {
  const prefix = sourcePrefix(clients.prefix, source);
  let first;
  try {
    const out = await clients.s3.send(new ListObjectsV2Command({ Bucket: clients.bucket, Prefix: prefix, MaxKeys: 1 }));
    first = out.Contents?.[0];
  } catch (err) {
    throw new Error(`S3 ListObjectsV2 s3://${clients.bucket}/${prefix} failed, so the age of a source never restore-tested is unknown: ${messageOf(err)}` +
      ' (the function needs s3:ListBucket on the store: BackupStore.grantMonitorRead)');
  }
  const m = first?.Key ? KEY_TIME.exec(first.Key) : null;
  if (m) {
    const [, y, mo, d, h, mi, s] = m;
    return new Date(Date.UTC(+y, +mo - 1, +d, +h, +mi, +s));
  }
  return first?.LastModified;
}

/**
 * Stateless, so it cannot remember what it said before: it writes when a source went stale since the previous
 * run, and once a day (the first run after midnight UTC) with everything still wrong. The alarms notify on
 * every state change in between.
 */
async function notifyIfNews(statuses: readonly SourceStatus[], clients: MonitorClients, options: FreshnessOptions): Promise<boolean> {
  const troubled = statuses.filter((s) => s.state !== SourceState.FRESH || s.problem !== undefined || s.forged?.length || (s.wal && walTroubled(s.wal)) ||
    (s.binlog && binlogTroubled(s.binlog)));
  if (!troubled.length) return false;
  const newlyStale = troubled.filter((s) => s.state === SourceState.STALE && s.ageSeconds! - options.intervalSeconds <= s.maxAgeSeconds);
  // Stored within the last interval by S3's clock: a forgery the previous run could not have seen.
  const newlyForged = troubled.filter((s) => s.forged?.length && s.forgedWrittenSecondsAgo! <= options.intervalSeconds);
  const newlyWal = troubled.filter((s) => (s.wal && walNews(s.wal, options.now, options.intervalSeconds)) ||
    (s.binlog && binlogNews(s.binlog, options.now, options.intervalSeconds)));
  const dailyDigest = (options.now.getTime() / 1000) % DAY_SECONDS < options.intervalSeconds;
  if (!newlyStale.length && !newlyForged.length && !newlyWal.length && !dailyDigest) return false;
  const names = troubled.map((s) => s.source);
  const subject = `Restorable: ${troubled.length} backup source(s) need attention: ${names.join(', ')}`;
  return notify(clients, subject, [
    `Freshness check of s3://${clients.bucket}/${clients.prefix} at ${options.now.toISOString()}:`,
    '',
    ...troubled.flatMap((s) => [describeStatus(s), ...s.wal ? describeWal(s.wal, clients, s.source) : [],
      ...s.binlog ? describeBinlog(s.binlog, clients, s.source) : []]),
  ]);
}

function hours(seconds: number): string {
  return `${(seconds / 3600).toFixed(1)} h`;
}

export function describeStatus(s: SourceStatus): string {
  const line = describeState(s);
  if (!s.forged?.length) return line;
  const age = s.ageSeconds === undefined ? '' : ` (by S3's time the newest backup is ${hours(s.ageSeconds)} old, ${s.ageSeconds} s)`;
  return `${line}${s.state === SourceState.FORGED ? '' : '; also'} forged or skewed pointer${age}: ${s.forged.join('; ')}`;
}

function describeState(s: SourceStatus): string {
  switch (s.state) {
    case SourceState.STALE:
      return `- ${s.source}: stale, newest backup is ${hours(s.ageSeconds!)} old (${s.ageSeconds} s), threshold ${hours(s.maxAgeSeconds)} (${s.maxAgeSeconds} s)` +
        (s.problem ? `; also: ${s.problem}` : '');
    case SourceState.NO_BACKUPS:
      return `- ${s.source}: no backups found (no latest.json): no backup of this source ever completed`;
    case SourceState.DANGLING:
      return `- ${s.source}: latest.json points to a missing backup, ${s.key}`;
    case SourceState.NOT_CHECKED:
      return `- ${s.source}: check failed: ${s.problem}`;
    case SourceState.FORGED:
      return `- ${s.source}:` + (s.problem ? ` ${s.problem};` : '');
    case SourceState.FRESH:
      return `- ${s.source}: fresh (${hours(s.ageSeconds!)} old)` + (s.problem ? `, but ${s.problem}` : '');
  }
}

/**
 * RESTORE_TESTS_SUBDIR: the restore-test reports that count (`vault` in a vault, which BackupMonitoring sets), or
 * none for the top-level ones. A name it does not know stops the check rather than read the wrong reports.
 */
export function restoreTestReportsFromEnv(env: NodeJS.ProcessEnv = process.env): ReportsCopy | undefined {
  const name = env.RESTORE_TESTS_SUBDIR;
  if (!name) return undefined;
  const problem = reportsCopyProblem(name);
  if (problem) throw new Error(`RESTORE_TESTS_SUBDIR: ${problem}`);
  return name as ReportsCopy;
}

export async function handler(event: FreshnessEvent): Promise<FreshnessReport> {
  const intervalSeconds = Number(requiredEnv('CHECK_INTERVAL_SECONDS'));
  return checkFreshness(event, clientsFromEnv(), { now: new Date(), intervalSeconds, restoreTestReports: restoreTestReportsFromEnv() });
}
