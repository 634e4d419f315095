/**
 * The restore-test report: written to `{prefix}{source}/restore-tests/{timestamp}.json` and copied to
 * `restore-tests/latest.json` (the RestoreTestPointer the freshness check and `status` read), printed with
 * --json, and summarised for a person otherwise. With `--reports vault` (a vault's own tests), both live under
 * `restore-tests/vault/` instead, apart from the reports replication brings from the primary.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { Engine, ReportsCopy, RestoreTestPointer, reportsCopyProblem, restoreTestLatestKey, restoreTestsPrefix, timestampLabel } from '../../../lib/contract';
import { CheckOutcome } from './checks';
import { Refusal } from '../engines/engine';
import { OptionKind, OptionSpecs, ParsedArgs } from '../shared/args';
import { AgentError, UsageError } from '../shared/errors';
import { log } from '../shared/log';
import { getText, putJson } from '../shared/s3';
import { TableOutcome } from './validate';

export const REPORT_FORMAT_VERSION = 1;

/** Something the restore left out of the backup, whether the source declared it, and which part of the backup held it. */
export interface ReportedRefusal extends Refusal {
  /** Declared by the source (--expect-left-out), or a note by nature (ownership, the roles companion): it fails nothing. */
  readonly expected: boolean;
  /** The dump (an archive entry, an owner) or the roles companion (a statement). */
  readonly from: 'dump' | 'roles';
}

/**
 * The pointer's `durationSeconds` runs from the start of the download to the end of validation (the measured
 * RTO; absent when the restore failed), and its `reason` joins the failures.
 */
export interface RestoreTestReport extends RestoreTestPointer {
  readonly formatVersion: number;
  readonly bucket: string;
  /** The restored backup's engine, when one was selected: MongoDB's tables are collections, its rows documents. */
  readonly engine?: Engine;
  /** The backup restored, when one was selected. */
  readonly key?: string;
  readonly backupStartedAt?: string;
  /** Where it was restored: user@host:port/database. */
  readonly target?: string;
  readonly startedAt: string;
  /** How old the restored backup was when the test finished. */
  readonly restoredBackupAgeSeconds?: number;
  readonly tablesChecked: number;
  readonly rowsChecked: number;
  readonly tables: readonly TableOutcome[];
  readonly checks: readonly CheckOutcome[];
  /**
   * What the restore left out of the backup, a backup being untrusted input: what would need more rights than the
   * load has, by name and why. An unexpected entry of the dump is also among the failures. Absent when the restore
   * stopped before its load was planned.
   */
  readonly refused?: readonly ReportedRefusal[];
  /** Every failure, one line each, naming the table, check or step and by how much it missed. */
  readonly failures: readonly string[];
  /** Where the report was stored. */
  readonly reportKey: string;
  /** Why the result could not be recorded everywhere (metrics, report): the run then fails although the test passed. */
  readonly recordingProblems?: readonly string[];
}

/** Which restore tests' reports a command writes or reads: every command that touches restore-tests/ takes it. */
export const REPORTS_OPTIONS: OptionSpecs = {
  'reports': {
    kind: OptionKind.STRING, placeholder: 'vault',
    description: 'the reports of a vault\'s own restore tests, under restore-tests/vault/, apart from those replicated from the primary (default: restore-tests/)',
  },
};

/** The --reports option, checked: undefined for the top-level reports. */
export function reportsCopy(args: ParsedArgs): ReportsCopy | undefined {
  const text = args.string('reports');
  if (text === undefined) return undefined;
  const problem = reportsCopyProblem(text);
  if (problem) throw new UsageError(`--reports: ${problem}`);
  return text as ReportsCopy;
}

export function reportKey(prefix: string | undefined, source: string, finishedAt: Date, reports?: ReportsCopy): string {
  return `${restoreTestsPrefix(prefix, source, reports)}${source}_${timestampLabel(finishedAt)}Z.json`;
}

/** How many times restore-tests/latest.json is read and written before concurrent writers fail the run. */
export const POINTER_ATTEMPTS = 5;

/**
 * Stores the dated report, then the pointer; a failure to store is returned (for the run's failure line), never
 * hidden. Both are written untagged (the bucket policy lets nothing tag restore-tests/, since a tier tag would expire
 * them), so dated reports stay until someone removes them. The dated report is created with If-None-Match: *, never
 * replacing one; restore-tests/latest.json with If-Match on the ETag just read, or If-None-Match: * when there is
 * none, read again when another test moved it in between, as the backup moves latest.json. With `reports`, the
 * pointer moved is that subdirectory's (`restore-tests/vault/latest.json`); the top-level one is left alone.
 */
export async function storeReport(s3: S3Client, bucket: string, prefix: string | undefined, report: RestoreTestReport,
  reports?: ReportsCopy): Promise<string | undefined> {
  try {
    if (!await putJson(s3, bucket, report.reportKey, report, { ifMatch: '*' })) {
      throw new AgentError(`a report already exists at s3://${bucket}/${report.reportKey}: two restore tests of '${report.source}' finished in the same second?`);
    }
    await movePointer(s3, bucket, restoreTestLatestKey(prefix, report.source, reports), report);
    log.info('restore-test report stored', { key: report.reportKey });
    return undefined;
  } catch (err) {
    return `the report could not be stored: ${(err as Error).message}`;
  }
}

async function movePointer(s3: S3Client, bucket: string, key: string, report: RestoreTestReport): Promise<void> {
  for (let attempt = 1; attempt <= POINTER_ATTEMPTS; attempt++) {
    const current = await getText(s3, bucket, key);
    if (await putJson(s3, bucket, key, report, { ifMatch: current?.etag ?? '*' })) return;
    log.info('restore-tests/latest.json changed while moving it; reading it again', { attempt });
  }
  throw new AgentError(`s3://${bucket}/${key} kept changing under concurrent restore tests (${POINTER_ATTEMPTS} tries); ` +
    `the dated report s3://${bucket}/${report.reportKey} is stored`);
}

const seconds = (n: number | undefined) => (n === undefined ? '-' : `${n.toFixed(1)} s`);

export function formatReport(r: RestoreTestReport): string {
  const lines = [
    `restore test of ${r.source}: ${r.success ? 'PASSED' : 'FAILED'}`,
    ...(r.key ? [`  backup      s3://${r.bucket}/${r.key} (started ${r.backupStartedAt})`] : []),
    ...(r.target ? [`  restored to ${r.target}`] : []),
    ...(r.pitr ? [`  recovered   to ${r.pitr.recoveredTo || '-'} (target ${r.pitr.targetTime}), ${r.pitr.walFilesReplayed} WAL files replayed, ` +
      `${seconds(r.pitr.restoreSeconds)} until the server was out of recovery`] : []),
    ...(r.binlogPitr ? [`  recovered   to ${r.binlogPitr.recoveredTo || '-'} (target ${r.binlogPitr.targetTime}), ${r.binlogPitr.binlogFilesReplayed} binlog files ` +
      `replayed, the last transaction ending at ${r.binlogPitr.lastEvent.file}:${r.binlogPitr.lastEvent.position}` +
      `${r.binlogPitr.lastEvent.gtid ? ` (GTID ${r.binlogPitr.lastEvent.gtid})` : ''}, ${seconds(r.binlogPitr.restoreSeconds)} from the dump's download to it`] : []),
    `  duration    ${seconds(r.durationSeconds)} (download to end of validation: the measured RTO)`,
    `  data age    ${seconds(r.restoredBackupAgeSeconds)}`,
    r.engine === Engine.MONGODB
      ? `  checked     ${r.tablesChecked} collections, ${r.rowsChecked} documents, ${r.checks.length} user checks`
      : `  checked     ${r.tablesChecked} tables, ${r.rowsChecked} rows, ${r.checks.length} user checks`,
    `  report      s3://${r.bucket}/${r.reportKey}`,
  ];
  if (r.refused?.length) {
    lines.push('left out (a backup is untrusted input):',
      ...r.refused.map((x) => `  - ${x.what}: ${x.why}${x.expected ? '' : ' (not expected for this source)'}`));
  }
  if (r.failures.length) lines.push('failures:', ...r.failures.map((f) => `  - ${f}`));
  if (r.recordingProblems?.length) lines.push('not recorded:', ...r.recordingProblems.map((p) => `  - ${p}`));
  return lines.join('\n');
}
