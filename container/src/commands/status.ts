/**
 * `restorable status`: the answer that matters, per source. "If this database disappeared now, how long
 * until it is back, and with data from when?" The age of the newest good backup (latest.json) is the data
 * at risk, the actual RPO; the last restore test's measured duration (restore-tests/latest.json) is the RTO. In a
 * vault, `--reports vault` reads its own tests' restore-tests/vault/latest.json instead of the primary's replicated one.
 * The backup latest.json names is checked the cheap way: its manifest is there and describes it, and the object is
 * there with the manifest's size. Four small requests per source (and a listing when latest.json is missing), and one
 * delimited listing to find the sources. A source whose status cannot be read (a damaged or lost pointer, a damaged or
 * missing manifest, a missing or resized object, an S3 error) is 'unknown': the report says why, and statusFailure
 * makes the run fail.
 *
 * Ages come from times S3 sets, never from the times a pointer states: the newest backup's from the LastModified of
 * the object latest.json names (the HEAD that checks its size), the last restore test's from the LastModified of its
 * report (the GET that reads it). A stated time in the future, or after the S3 time that bounds it by more than
 * POINTER_CLOCK_SKEW_SECONDS (forgedTime, the freshness check's own rule), makes the source 'forged-pointer': the
 * report names the pointer and the time, and statusFailure makes the run fail.
 *
 * A source that archives its WAL continuously (it has base/latest.json) is at risk only since S3 stored its newest WAL
 * object: its RPO is that, in seconds, and its RTO the point-in-time restore its last restore test measured (the
 * report's pitr.restoreSeconds). One more GET per source (base/latest.json), and for such a source a HEAD and a listing
 * of its WAL from its newest base backup on (status-wal.ts).
 *
 * A MariaDB source whose binlogs are streamed (it has streams under binlog/) is at risk only since S3 stored the newest
 * binlog object of its newest stream, while that stream replays from its newest dump's coordinates; else since the dump,
 * and the status says why. Its RTO is the point-in-time restore its last restore test measured (binlogPitr.restoreSeconds).
 * One delimited listing of binlog/ per source, and for such a source a GET, a listing of its newest stream from the
 * dump's file on and a HEAD (status-binlog.ts).
 */
import { S3Client } from '@aws-sdk/client-s3';
import {
  ContractError, LatestPointer, SOURCE_NAME_PATTERN, forgedTime, latestKey, manifestKeyFor, normalisePrefix, parseLatest, parseManifest,
  ReportsCopy, parseRestoreTestPointer, restoreTestLatestKey,
} from '../../../lib/contract';
import type { BinlogDump } from '../../../lib/contract/binlog-coverage';
import { CommandSpec, OptionKind, ParsedArgs, REGION_OPTIONS } from '../shared/args';
import { lostPointerProblem, someRecordedBackup } from '../restore/download';
import { AgentError } from '../shared/errors';
import { REPORTS_OPTIONS, reportsCopy } from '../restore-test/report';
import { getText, headSizeAndLastModified } from '../shared/s3';
import { ContinuousStatus, continuousStatus } from './status-wal';
import { StreamedStatus, streamedStatus } from './status-binlog';
import { folderNames } from './status-reads';

export { folderNames } from './status-reads';

export const STATUS_COMMAND: CommandSpec = {
  name: 'status',
  summary: 'For every source: how old the newest good backup is (RPO), how long its last restore test took (RTO), and what that means.',
  options: {
    bucket: { kind: OptionKind.STRING, placeholder: 'BUCKET', description: 'the backup bucket, or its replica', required: true },
    prefix: { kind: OptionKind.STRING, placeholder: 'PREFIX', description: 'key prefix in the bucket (default: none)' },
    ...REGION_OPTIONS,
    ...REPORTS_OPTIONS,
    json: { kind: OptionKind.FLAG, description: 'print the status as JSON' },
  },
};

export enum Readiness {
  /** A good backup, and the last restore test passed. */
  READY = 'ready',
  /** A good backup that was never restore-tested: nobody knows how long a restore takes, or whether it works. */
  NEVER_TESTED = 'never-tested',
  /** The last restore test failed: a restore may not work. */
  TEST_FAILED = 'test-failed',
  /** No good backup was ever recorded (no latest.json, and no manifest beside it): nothing to restore. */
  NO_BACKUP = 'no-backup',
  /**
   * The newest backup cannot be confirmed: a pointer or manifest that cannot be read, a latest.json that is missing
   * while backups are recorded, a pointer to a missing manifest or object, an object of another size, an S3 error.
   */
  UNKNOWN = 'unknown',
  /**
   * latest.json or the restore-test report states a time S3 contradicts: in the future, or after S3 stored what it
   * describes by more than POINTER_CLOCK_SKEW_SECONDS. Forged, or written by a clock far off; the ages shown are S3's.
   */
  FORGED_POINTER = 'forged-pointer',
}

export interface SourceStatus {
  readonly source: string;
  readonly readiness: Readiness;
  /** startedAt is what latest.json states; storedAt, the backup object's LastModified, is what ageSeconds counts from. */
  readonly newestBackup?: { readonly key: string; readonly startedAt: string; readonly storedAt: string; readonly ageSeconds: number };
  /** finishedAt is what the report states; storedAt, the report's LastModified, is what ageSeconds counts from. */
  readonly lastRestoreTest?: {
    readonly success: boolean;
    readonly finishedAt: string;
    readonly storedAt: string;
    readonly ageSeconds: number;
    readonly durationSeconds?: number;
    /**
     * The measured time of the test's point-in-time restore: its report's pitr.restoreSeconds for a WAL-archived source,
     * binlogPitr.restoreSeconds for a binlog-streamed one.
     */
    readonly pitrRestoreSeconds?: number;
    readonly reason?: string;
  };
  /**
   * For a source that archives its WAL continuously (it has base/latest.json): its newest base backup, its newest WAL,
   * and the continuous RPO, in seconds since S3 stored that WAL.
   */
  readonly continuous?: ContinuousStatus;
  /**
   * For a MariaDB source whose binlogs are streamed: its newest stream and why it began, its newest binlog object, the
   * continuous RPO in seconds since S3 stored it, and what keeps a replay from the newest dump from reaching it.
   */
  readonly binlog?: StreamedStatus;
  readonly problem?: string;
  /** For 'forged-pointer': each stated time S3 contradicts, naming the pointer, the time, and S3's. */
  readonly forged?: readonly string[];
  /** The plain answer, for a person. */
  readonly summary: string;
}

export interface StatusReport {
  readonly bucket: string;
  readonly prefix: string;
  readonly checkedAt: string;
  readonly sources: readonly SourceStatus[];
}

/** Reads of S3 in flight at once: enough to be quick over a hundred sources, few enough to stay polite. */
const CONCURRENCY = 8;

export async function runStatus(args: ParsedArgs, s3: S3Client, now: () => Date = () => new Date()): Promise<StatusReport> {
  const bucket = args.requiredString('bucket');
  const prefix = normalisePrefix(args.string('prefix'));
  const reports = reportsCopy(args);
  const names = await sourceNames(s3, bucket, prefix);
  const sources: SourceStatus[] = new Array(names.length);
  // One instant for the whole report: every age is counted from the checkedAt it states.
  const checkedAt = now();
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < names.length; i = next++) sources[i] = await sourceStatus(s3, bucket, prefix, names[i], checkedAt, reports);
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, names.length) }, worker));
  return { bucket, prefix, checkedAt: checkedAt.toISOString(), sources };
}

/** The sources are the bucket's first-level prefixes (under --prefix) that look like source names. */
async function sourceNames(s3: S3Client, bucket: string, prefix: string): Promise<string[]> {
  return (await folderNames(s3, bucket, prefix)).filter((name) => SOURCE_NAME_PATTERN.test(name)).sort();
}

interface Newest {
  readonly pointer: LatestPointer;
  /** The dump as a binlog replay starts from it: its start and binlog coordinates, from its manifest. */
  readonly dump: BinlogDump;
  /** When S3 stored the backup latest.json names, and latest.json itself. */
  readonly backupStored: Date;
  readonly pointerStored: Date;
}

/** S3's LastModified, which every GET and HEAD returns; its absence is a failure, never a reason to trust the stated time. */
function storedAt(date: Date | undefined, where: string): Date {
  if (!date) throw new AgentError(`S3 gave no LastModified for ${where}: the age cannot be taken from S3's time`);
  return date;
}

/**
 * The backup latest.json names, with S3's times, or undefined when there is none and no backup was ever recorded. Throws, naming the
 * object and what is wrong, when the pointer is lost or damaged, or names a backup whose manifest or object is not
 * there as recorded.
 */
async function newestBackup(s3: S3Client, bucket: string, prefix: string, source: string): Promise<Newest | undefined> {
  const pointerKey = latestKey(prefix, source);
  const text = await getText(s3, bucket, pointerKey);
  if (!text) {
    const recorded = await someRecordedBackup(s3, bucket, prefix, source);
    if (recorded) throw new AgentError(lostPointerProblem(bucket, pointerKey, recorded));
    return undefined;
  }
  const pointer = parseLatest(text.text, `s3://${bucket}/${pointerKey}`);
  const where = `s3://${bucket}/${pointer.key}`;
  const manifestKey = manifestKeyFor(pointer.key);
  const [manifestText, head] = await Promise.all([getText(s3, bucket, manifestKey), headSizeAndLastModified(s3, bucket, pointer.key)]);
  const size = head?.size;
  if (!manifestText) {
    throw new AgentError(`latest pointer s3://${bucket}/${pointerKey} names ${where}, but there is no manifest at s3://${bucket}/${manifestKey}: ` +
      'without it the backup cannot be checked, and restore does not use it');
  }
  const manifest = parseManifest(manifestText.text, `s3://${bucket}/${manifestKey}`);
  if (manifest.key !== pointer.key) {
    throw new AgentError(`manifest s3://${bucket}/${manifestKey} describes ${manifest.key}, not ${pointer.key}, which latest pointer s3://${bucket}/${pointerKey} names`);
  }
  if (head === undefined) {
    throw new AgentError(`latest pointer s3://${bucket}/${pointerKey} names ${where}, which does not exist: the newest backup was deleted or expired`);
  }
  if (size !== manifest.size) {
    throw new AgentError(`${where} is ${size} bytes, its manifest recorded ${manifest.size}: it is damaged (\`restorable verify\` says more)`);
  }
  return {
    pointer,
    dump: { key: manifest.key, startedAt: manifest.startedAt, ...manifest.binlog ? { binlog: manifest.binlog } : {} },
    backupStored: storedAt(head.lastModified, where),
    pointerStored: storedAt(text.lastModified, `s3://${bucket}/${pointerKey}`),
  };
}

async function sourceStatus(s3: S3Client, bucket: string, prefix: string, source: string, checkedAt: Date,
  reports: ReportsCopy | undefined): Promise<SourceStatus> {
  const ageOf = (stored: Date) => Math.max(0, Math.round((checkedAt.getTime() - stored.getTime()) / 1000));
  try {
    const testKey = restoreTestLatestKey(prefix, source, reports);
    const newest = newestBackup(s3, bucket, prefix, source);
    const [latest, testText, continuous, binlog] = await Promise.all([
      newest, getText(s3, bucket, testKey), continuousStatus(s3, bucket, prefix, source, checkedAt),
      newest.then((n) => streamedStatus(s3, bucket, prefix, source, n?.dump, checkedAt)),
    ]);
    const test = testText && parseRestoreTestPointer(testText.text, `s3://${bucket}/${testKey}`);
    const testStored = testText && storedAt(testText.lastModified, `s3://${bucket}/${testKey}`);
    const pointerKey = latestKey(prefix, source);
    // A backup starts before its object is stored, latest.json is written after it finished, a report after its test.
    const forged = [
      latest && forgedTime(`latest pointer s3://${bucket}/${pointerKey}`, 'startedAt', latest.pointer.startedAt, latest.backupStored,
        `the backup it names, ${latest.pointer.key},`, checkedAt),
      latest && forgedTime(`latest pointer s3://${bucket}/${pointerKey}`, 'finishedAt', latest.pointer.finishedAt, latest.pointerStored,
        'latest.json itself', checkedAt),
      test && testStored && forgedTime(`restore-test report s3://${bucket}/${testKey}`, 'finishedAt', test.finishedAt, testStored,
        'the report itself', checkedAt),
      ...continuous?.forged ?? [],
      ...binlog?.forged ?? [],
    ].filter((f): f is string => typeof f === 'string');
    const pitrSeconds = test?.pitr?.restoreSeconds ?? test?.binlogPitr?.restoreSeconds;
    const status = {
      source,
      newestBackup: latest ? {
        key: latest.pointer.key, startedAt: latest.pointer.startedAt, storedAt: latest.backupStored.toISOString(), ageSeconds: ageOf(latest.backupStored),
      } : undefined,
      lastRestoreTest: test && testStored ? {
        success: test.success === true, finishedAt: test.finishedAt, storedAt: testStored.toISOString(), ageSeconds: ageOf(testStored),
        ...(typeof test.durationSeconds === 'number' ? { durationSeconds: test.durationSeconds } : {}),
        // Read defensively: an older report has none, and only a real number of seconds is shown.
        ...(typeof pitrSeconds === 'number' && Number.isFinite(pitrSeconds) && pitrSeconds >= 0 ? { pitrRestoreSeconds: pitrSeconds } : {}),
        ...(test.reason ? { reason: test.reason } : {}),
      } : undefined,
      ...continuous ? { continuous } : {},
      ...binlog ? { binlog } : {},
    };
    if (forged.length) {
      const problem = `forged or skewed pointer: ${forged.join('; ')}`;
      const readiness = Readiness.FORGED_POINTER;
      return { ...status, readiness, forged, problem, summary: summarise({ ...status, readiness, forged }) };
    }
    // A base backup with its WAL is something to restore, even before the first dump.
    const readiness = !status.newestBackup && !status.continuous ? Readiness.NO_BACKUP
      : !status.lastRestoreTest ? Readiness.NEVER_TESTED
        : status.lastRestoreTest.success ? Readiness.READY : Readiness.TEST_FAILED;
    return { ...status, readiness, summary: summarise({ ...status, readiness }) };
  } catch (err) {
    const problem = err instanceof ContractError ? `${err.message}: ${err.fix}` : (err as Error).message;
    return { source, readiness: Readiness.UNKNOWN, problem, summary: `${source}: status unknown: ${problem}` };
  }
}

/**
 * The error that makes the exit code non-zero when some source's status could not be read, or some pointer states a
 * time S3 contradicts, naming each; else undefined.
 */
export function statusFailure(report: StatusReport): AgentError | undefined {
  const unknown = report.sources.filter((s) => s.readiness === Readiness.UNKNOWN);
  const forged = report.sources.filter((s) => s.readiness === Readiness.FORGED_POINTER);
  if (unknown.length === 0 && forged.length === 0) return undefined;
  const list = (sources: readonly SourceStatus[]) => sources.map((s) => `  - ${s.source}: ${s.problem}`).join('\n');
  return new AgentError([
    ...unknown.length ? [`the status of ${unknown.length} of ${report.sources.length} sources could not be read:\n${list(unknown)}`] : [],
    ...forged.length ? [`${forged.length} of ${report.sources.length} sources have a forged or skewed pointer, a stated time S3 contradicts ` +
      `(its ages are S3's times):\n${list(forged)}`] : [],
  ].join('\n'));
}

/** "3 minutes", "2 hours": rounded the way a person would say it, and never "0 seconds". */
export function humanDuration(seconds: number): string {
  const unit = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  if (seconds < 90) return unit(Math.max(1, Math.round(seconds)), 'second');
  if (seconds < 90 * 60) return unit(Math.round(seconds / 60), 'minute');
  if (seconds < 48 * 3600) return unit(Math.round(seconds / 3600), 'hour');
  return unit(Math.round(seconds / 86400), 'day');
}

function summarise(s: Omit<SourceStatus, 'summary'>): string {
  const backup = s.newestBackup;
  const test = s.lastRestoreTest;
  if (s.forged?.length) {
    return `${s.source}: FORGED OR SKEWED POINTER: ${s.forged.join('; ')}. By S3's times, ` +
      (backup ? `the newest backup was stored ${humanDuration(backup.ageSeconds)} ago` : 'there is no good backup') +
      (test ? ` and the last restore test (${test.success ? 'passed' : 'FAILED'}) reported ${humanDuration(test.ageSeconds)} ago` : '') +
      '; find out who wrote it: a task that can write the store should not state times S3 contradicts.';
  }
  const continuous = s.continuous;
  if (!backup && !continuous) return `${s.source}: NO GOOD BACKUP: there is nothing to restore; check its backup job.`;
  const held = continuous ? dataAtRisk(continuous) : s.binlog ? streamedAtRisk(s.binlog, backup?.ageSeconds)
    : `data from ${humanDuration(backup!.ageSeconds)} ago`;
  const data = `with ${held}`;
  if (!test) {
    return `${s.source}: NEVER RESTORE-TESTED: how long a restore takes, and whether it works, is unknown; ` +
      `the newest backup holds ${held}.`;
  }
  const tested = `${humanDuration(test.ageSeconds)} ago, ${test.finishedAt}`;
  if (!test.success) {
    // One line per source: a reason of several lines (a restore's own words) is joined.
    return `${s.source}: LAST RESTORE TEST FAILED (${tested})${test.reason ? `: ${test.reason.replace(/\s*\n\s*/g, ' ')}` : ''}; a restore may not work. ` +
      `The newest backup holds ${held}.`;
  }
  const measured = test.pitrRestoreSeconds ?? test.durationSeconds;
  const rto = measured === undefined ? 'an unmeasured time' : `about ${humanDuration(measured)}` +
    (test.pitrRestoreSeconds === undefined ? '' : ` (a point-in-time restore, measured at ${test.pitrRestoreSeconds} s)`);
  return `${s.source}: back online in ${rto}, ${data} (restore test passed ${tested}).`;
}

/** What a WAL-archived source would lose: the seconds since its newest WAL, or, with none since its base backup, that backup's age. */
function dataAtRisk(c: ContinuousStatus): string {
  if (c.rpoSeconds === undefined) {
    return `data from its base backup, ${humanDuration(c.baseBackupAgeSeconds)} ago (no WAL archived since: check its WAL archiving)`;
  }
  return `data from ${c.rpoSeconds} seconds ago (continuous WAL archive)`;
}

/** What a binlog-streamed source would lose: the seconds since its newest binlog object, or, when its binlogs cannot be replayed, since its dump. */
function streamedAtRisk(b: StreamedStatus, dumpAgeSeconds: number | undefined): string {
  const since = `data from its newest dump, ${humanDuration(dumpAgeSeconds!)} ago`;
  if (b.gaps.length) return `${since} (its binlogs cannot be replayed past it: ${b.gaps.join('; ')}; run a dump now)`;
  if (b.rpoSeconds === undefined) return `${since} (no binlog streamed since: check its binlog streamer)`;
  return `data from ${b.rpoSeconds} seconds ago (streamed binlogs, stream ${b.stream}${b.reason ? ` began: ${b.reason}` : ''})`;
}

export function formatStatus(report: StatusReport): string {
  if (report.sources.length === 0) return `no sources under s3://${report.bucket}/${report.prefix}`;
  const rows = report.sources.map((s) => [
    s.source,
    s.continuous?.rpoSeconds !== undefined ? `${s.continuous.rpoSeconds} s ago (WAL)`
      : s.binlog?.rpoSeconds !== undefined && !s.binlog.gaps.length ? `${s.binlog.rpoSeconds} s ago (binlog)`
        : s.newestBackup ? `${humanDuration(s.newestBackup.ageSeconds)} ago` : '-',
    s.lastRestoreTest ? `${s.lastRestoreTest.success ? 'passed' : 'FAILED'} ${humanDuration(s.lastRestoreTest.ageSeconds)} ago` : 'never',
    s.lastRestoreTest?.pitrRestoreSeconds !== undefined ? `${s.lastRestoreTest.pitrRestoreSeconds} s (PITR)`
      : s.lastRestoreTest?.durationSeconds !== undefined ? humanDuration(s.lastRestoreTest.durationSeconds) : '-',
    s.readiness,
  ]);
  const header = ['SOURCE', 'NEWEST BACKUP (RPO)', 'LAST RESTORE TEST', 'RESTORE TOOK (RTO)', 'READINESS'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const table = [header, ...rows].map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]))).join('  '));
  return [...table, '', ...report.sources.map((s) => s.summary)].join('\n');
}
