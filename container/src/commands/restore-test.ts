/**
 * `restorable restore-test`: restore the latest backup into a scratch database with the agent's restore path,
 * validate it against the manifest (tables, row counts) and the user's checks, measure the restore (the RTO),
 * store a report beside the source's backups, and publish the results as metrics.
 *
 * The proof comes from restoring: a restore that fails (a corrupted object, a wrong identity) is a failed test
 * with a report too. Exit code 0 only when everything passed.
 */
import { tmpdir } from 'node:os';
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { Engine, ReportsCopy } from '../../../lib/contract';
import { ARCHIVE_OPTIONS, retrievalOptions } from '../restore/archive';
import { CommandSpec, OptionKind, ParsedArgs } from '../shared/args';
import { UserCheck, checksProblem, parseChecks, readChecksFile } from '../restore-test/checks';
import { CONNECTION_OPTIONS, Connection, MONGODB_CONNECTION_OPTIONS, describeConnection, resolveConnection } from '../shared/connection';
import { BackupLocation, SELECTION_OPTIONS, backupLocation, selectBackup } from '../restore/download';
import { AgentError, UsageError, redactor } from '../shared/errors';
import { IDENTITY_OPTIONS, Identity, resolveIdentity } from '../restore/identity';
import { log } from '../shared/log';
import { publishRestoreTest, shouldPublish } from '../restore-test/metrics';
import {
  REPORTS_OPTIONS, ReportedRefusal, RestoreTestReport, REPORT_FORMAT_VERSION, formatReport, reportKey, reportsCopy, storeReport,
} from '../restore-test/report';
import { RestoreResult, restoreBackup } from '../restore/restore';
import { EXACT, RecordedBackup, Validation, openScratch, parseTolerance, validateRestore } from '../restore-test/validate';
import { PITR_TEST_OPTIONS, PitrTarget, PitrTestRun, PitrTestSettings, pitrTestSettings, runPitrTest } from '../restore-test/pitr';
import { BINLOG_PITR_TEST_OPTIONS, BinlogPitrTestRun, binlogPitrTestSettings, runBinlogPitrTest } from '../restore-test/binlog-pitr';

export const RESTORE_TEST_COMMAND: CommandSpec = {
  name: 'restore-test',
  summary: 'Restore the latest backup into an empty scratch database, validate it against its manifest and your checks, and report the measured RTO.',
  options: {
    ...SELECTION_OPTIONS,
    'bucket-region': { kind: OptionKind.STRING, placeholder: 'REGION', description: 'the bucket\'s region, when it differs from --region (a DR replica)' },
    ...IDENTITY_OPTIONS,
    ...CONNECTION_OPTIONS,
    ...MONGODB_CONNECTION_OPTIONS,
    'database': { kind: OptionKind.STRING, placeholder: 'NAME', description: 'the empty scratch database to restore into' },
    'checks': { kind: OptionKind.STRING, placeholder: 'FILE',
      description: 'JSON file of checks: [{"name","sql","minRows"|"equals"|"maxAgeSeconds"}]; MongoDB: [{"name","collection","filter","field"?,"minRows"|"equals"|"maxAgeSeconds"}]' },
    'checks-json': { kind: OptionKind.STRING, placeholder: 'JSON', description: 'the same checks inline (for task definitions, where no file exists)' },
    'tolerance': { kind: OptionKind.STRING, placeholder: 'N|P%', description: 'allowed row-count difference per table: rows (5) or percent (0.5%); default exact' },
    'rto-seconds': { kind: OptionKind.STRING, placeholder: 'N', description: 'the RTO target: also publish the duration as a share of it' },
    'expect-left-out': { kind: OptionKind.STRING, placeholder: 'PATTERN[;…]', description: 'entries this source\'s backups hold that a restore leaves out (such as \'EVENT TRIGGER *\'): notes, not failures' },
    'spool-dir': { kind: OptionKind.STRING, placeholder: 'DIR', description: 'where the verified, decrypted dump waits for the load (default: the temporary directory; it needs the dump\'s size free)' },
    ...ARCHIVE_OPTIONS,
    ...REPORTS_OPTIONS,
    ...PITR_TEST_OPTIONS,
    ...BINLOG_PITR_TEST_OPTIONS,
    'publish-metrics': { kind: OptionKind.FLAG, description: 'publish CloudWatch metrics (automatic on ECS)' },
    'json': { kind: OptionKind.FLAG, description: 'print the report as JSON' },
  },
};

export interface RestoreTestDeps {
  readonly s3: S3Client;
  readonly cloudwatch?: () => CloudWatchClient;
  readonly secrets?: () => SecretsManagerClient;
  readonly now?: () => Date;
}

function userChecks(args: ParsedArgs): UserCheck[] {
  const file = args.string('checks');
  const inline = args.string('checks-json');
  if (file !== undefined && inline !== undefined) throw new UsageError('give --checks FILE or --checks-json JSON, not both');
  if (file !== undefined) return readChecksFile(file);
  return inline !== undefined ? parseChecks(inline, '--checks-json') : [];
}

/** A secret in another region (the DR replica's) is read in that region. */
function secretsClientFor(secretId: string | undefined): () => SecretsManagerClient {
  const region = /^arn:[^:]+:secretsmanager:([^:]+):/.exec(secretId ?? '')?.[1];
  return () => new SecretsManagerClient(region ? { region } : {});
}

function s3ForRegion(s3: S3Client, region: string | undefined): S3Client {
  if (!region) return s3;
  const endpoint = process.env.AWS_ENDPOINT_URL_S3 || process.env.AWS_ENDPOINT_URL || undefined;
  return new S3Client({ region, ...(endpoint ? { endpoint, forcePathStyle: true } : {}) });
}

/**
 * What a restore test left out is expected when it matches one of these patterns (`*` any text, `?` one character,
 * case ignored): the source's own `--expect-left-out`, and ownership changes, always. A scratch database's owners
 * prove nothing about the data: the objects and rows are all there, owned by the loading role.
 */
export const ALWAYS_EXPECTED = ['ownership by *'];

export function leftOutPatterns(text: string | undefined): RegExp[] {
  const patterns = [...ALWAYS_EXPECTED, ...(text ?? '').split(';').map((p) => p.trim()).filter(Boolean)];
  return patterns.map((p) => new RegExp(`^${p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i'));
}

/**
 * Whether the test fails on what was left out: an entry of the dump that the source did not declare fails it (the
 * restored database lacks something the backup holds, and a planted backup shows up here); the roles companion's
 * refusals are reported without failing, since a role or grant that matters fails the load or the checks anyway.
 */
export function reportRefusals(restored: Pick<RestoreResult, 'refused' | 'globals'>, patterns: readonly RegExp[]): { refused: ReportedRefusal[]; failures: string[] } {
  const refused: ReportedRefusal[] = [
    ...restored.refused.map((r) => ({ ...r, expected: patterns.some((p) => p.test(r.what)), from: 'dump' as const })),
    ...(restored.globals?.refused ?? []).map((r) => ({ ...r, expected: true, from: 'roles' as const })),
  ];
  const failures = refused.filter((r) => !r.expected).map((r) => `left out of the restore, and not expected for this source: ${r.what} (${r.why}); ` +
    'if the source holds it on purpose, declare it with --expect-left-out');
  return { refused, failures };
}

export async function runRestoreTest(args: ParsedArgs, deps: RestoreTestDeps): Promise<RestoreTestReport> {
  const now = deps.now ?? (() => new Date());
  const location = backupLocation(args);
  const checks = userChecks(args);
  const tolerance = parseTolerance(args.string('tolerance'));
  const publish = shouldPublish(args.flag('publish-metrics'));
  const rtoText = args.string('rto-seconds');
  const rtoSeconds = rtoText === undefined ? undefined : Number(rtoText);
  if (rtoSeconds !== undefined && !(Number.isInteger(rtoSeconds) && rtoSeconds > 0)) throw new UsageError(`--rto-seconds must be a whole number of seconds above 0 (got '${rtoText}')`);
  const retrieval = retrievalOptions(args);
  const reports = reportsCopy(args);
  const patterns = leftOutPatterns(args.string('expect-left-out'));
  const s3 = s3ForRegion(deps.s3, args.string('bucket-region'));
  const secretId = args.string('identity-secret-id');
  const pitrSettings = pitrTestSettings(args, now());
  if (pitrSettings && args.string('spool-dir') !== undefined) throw new UsageError('--spool-dir is for a test of the newest dump, not with --pitr-dir');
  const binlogSettings = binlogPitrTestSettings(args, now());
  const identity = await resolveIdentity(args.string('identity-file'), secretId, deps.secrets ?? secretsClientFor(secretId));
  const pointInTimeEngine = pitrSettings ? Engine.POSTGRES : binlogSettings ? Engine.MYSQL : undefined;
  const pointInTimeMismatch = pointInTimeEngine && checksProblem(pointInTimeEngine, checks);
  if (pointInTimeMismatch) {
    identity.release();
    throw new UsageError(pointInTimeMismatch);
  }
  if (pitrSettings) {
    return recordPitrTest(args, deps, { location, settings: pitrSettings, identity, checks, s3, publish, rtoSeconds, reports });
  }
  if (binlogSettings) {
    return recordBinlogPitrTest(args, deps, { location, settings: binlogSettings, identity, checks, s3, publish, rtoSeconds, reports }, patterns);
  }

  const started = now();
  let manifest: RecordedBackup | undefined;
  let connection: Connection | undefined;
  let key: string | undefined;
  let validation: Validation | undefined;
  let refused: ReportedRefusal[] | undefined;
  const failures: string[] = [];
  // What the test was doing, so that a failure names the step it stopped at.
  let step = 'the restore failed';
  try {
    // Selected once, so the report names the backup even when its restore fails; a wrong identity is said plainly
    // by the restore path, which knows from age's own words.
    const selected = await selectBackup(s3, location);
    key = selected.key;
    manifest = selected.manifest;
    // Checks written for another engine are the task's mistake, said before anything is downloaded.
    const mismatch = checksProblem(selected.manifest.engine, checks);
    if (mismatch) throw new UsageError(mismatch);
    // A scratch server has none of the source's roles, and the dump's owners and grants name them: apply the
    // roles the backup captured first (existing ones are left alone). A MongoDB backup's users and roles are listed
    // in the report for a person to recreate, never created (the load needs none of them).
    const withGlobals = selected.manifest.companions.some((c) => c.kind === 'globals');
    if (!withGlobals && selected.manifest.engine === Engine.MONGODB) {
      log.info(`the backup has no users and roles companion (${selected.manifest.globals.reason ?? 'not captured'}): the report lists none to recreate`);
    } else if (!withGlobals) {
      log.warn(`the backup has no roles companion (${selected.manifest.globals.reason ?? 'not captured'}): owners and grants naming missing roles will fail the restore`);
    }
    // The dump is verified and decrypted to disk and the identity dropped before any of the backup's SQL runs; the
    // load and the validation run as a role without superuser rights (see engines/postgres-load.ts).
    const restored = await restoreBackup({
      location: { ...location, key: selected.key, at: undefined }, identityFile: identity.file, jobs: 1, clean: false, withGlobals,
      spoolDir: args.string('spool-dir') ?? tmpdir(), retrieval, scratch: true, dropIdentity: () => identity.release(),
      connect: async (engine: Engine) => {
        connection = await resolveConnection(engine, args, process.env, deps.secrets?.());
        return connection;
      },
      whileLoaded: async (loaded) => {
        step = 'validating the restored database failed';
        const db = await openScratch(selected.manifest.engine, loaded);
        try {
          validation = await validateRestore(db, selected.manifest, checks, tolerance);
        } finally {
          await db.close();
        }
      },
    }, { s3 });
    const judged = reportRefusals(restored, patterns);
    refused = judged.refused;
    failures.push(...judged.failures);
    failures.push(...validation!.failures);
  } catch (err) {
    // Once the test has started, whatever stops it (a database's own error, such as a permission the scratch user
    // lacks, included) is a failed test: reported, stored and published like any other failure.
    if (err instanceof UsageError) throw err;
    failures.push(`${step}: ${redactor.redact(err instanceof Error ? err.message : String(err))}`);
  } finally {
    identity.release();
  }
  const finished = now();
  const success = failures.length === 0;
  const report: RestoreTestReport = {
    formatVersion: REPORT_FORMAT_VERSION,
    source: location.source,
    success,
    bucket: location.bucket,
    ...(manifest ? { engine: manifest.engine } : {}),
    key,
    backupStartedAt: manifest?.startedAt,
    target: connection ? describeConnection(connection) : undefined,
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    durationSeconds: validation ? (finished.getTime() - started.getTime()) / 1000 : undefined,
    restoredBackupAgeSeconds: manifest ? Math.round((finished.getTime() - Date.parse(manifest.startedAt)) / 1000) : undefined,
    tablesChecked: validation?.tables.length ?? 0,
    rowsChecked: validation?.rowsChecked ?? 0,
    tables: validation?.tables ?? [],
    checks: validation?.checks ?? [],
    failures,
    reason: success ? undefined : failures.join('; '),
    refused,
    reportKey: reportKey(location.prefix, location.source, finished, reports),
  };
  // A record, not the failure: that is said once, by the run's failure line.
  log.info('restore test finished', { source: report.source, success, durationSeconds: report.durationSeconds,
    failures: failures.length, tolerance: tolerance === EXACT ? 'exact' : JSON.stringify(tolerance) });
  return recordReport(report, { deps, s3, prefix: location.prefix, publish, rtoSeconds, reports, at: finished });
}

interface Recording {
  readonly deps: RestoreTestDeps;
  readonly s3: S3Client;
  readonly prefix?: string;
  readonly publish: boolean;
  readonly rtoSeconds?: number;
  readonly reports?: ReportsCopy;
  readonly at: Date;
}

/** Publishes the metrics and stores the report; what could not be recorded is added to it, and fails the run. */
async function recordReport(report: RestoreTestReport, { deps, s3, prefix, publish, rtoSeconds, reports, at: finished }: Recording): Promise<RestoreTestReport> {
  const { success } = report;
  // The metrics carry the restore's own verdict; a result that cannot be recorded also fails the run.
  const metricProblem = publish
    ? await publishRestoreTest((deps.cloudwatch ?? (() => new CloudWatchClient({})))(), {
      source: report.source, success, restoreDurationSeconds: report.durationSeconds, restoredBackupAgeSeconds: report.restoredBackupAgeSeconds, rtoSeconds, at: finished,
    })
    : undefined;
  const withProblems = (problems: (string | undefined)[]): RestoreTestReport => {
    const recordingProblems = problems.filter((p): p is string => p !== undefined);
    return recordingProblems.length ? { ...report, recordingProblems } : report;
  };
  const storeProblem = await storeReport(s3, report.bucket, prefix, withProblems([metricProblem]), reports);
  return withProblems([metricProblem, storeProblem]);
}

interface PitrTestRequest<S extends PitrTarget = PitrTestSettings> {
  readonly location: BackupLocation;
  readonly settings: S;
  readonly identity: Identity;
  readonly checks: readonly UserCheck[];
  readonly s3: S3Client;
  readonly publish: boolean;
  readonly rtoSeconds?: number;
  readonly reports?: ReportsCopy;
}

/**
 * The restore test of a WAL-archived source (--pitr-dir): a point-in-time restore to a recent time, replayed by the
 * server that shares the directory, checked, reported with its `pitr` and measured: the duration is the PITR restore's.
 */
async function recordPitrTest(args: ParsedArgs, deps: RestoreTestDeps, request: PitrTestRequest): Promise<RestoreTestReport> {
  const now = deps.now ?? (() => new Date());
  const { location, settings, identity } = request;
  const started = now();
  // The database checked is --database, or the newest dump's; the server is first reached in its own.
  const connection = await resolveConnection(Engine.POSTGRES, args, { ...process.env, PGDATABASE: process.env.PGDATABASE ?? 'postgres' }, deps.secrets?.()).catch((err: Error) => {
    identity.release();
    throw err;
  });
  let run: PitrTestRun;
  try {
    run = await runPitrTest({
      location, settings, identityFile: identity.file, dropIdentity: () => identity.release(), connection, database: args.string('database'), checks: request.checks,
    }, request.s3);
  } finally {
    identity.release();
  }
  const report = pointInTimeReport(request, started, now(), {
    ...run, key: run.pitr?.baseBackupKey, backupStartedAt: run.baseBackupStartedAt, recoveredTo: run.pitr?.recoveredTo, ...(run.pitr ? { pitr: run.pitr } : {}),
  });
  log.info('point-in-time restore test finished', { source: report.source, success: report.success, durationSeconds: report.durationSeconds,
    targetTime: run.pitr?.targetTime, recoveredTo: run.pitr?.recoveredTo, restoreSeconds: run.pitr?.restoreSeconds, failures: run.failures.length });
  return recordReport(report, { deps, s3: request.s3, prefix: request.location.prefix, publish: request.publish, rtoSeconds: request.rtoSeconds, reports: request.reports, at: new Date(report.finishedAt) });
}

/** What a point-in-time restore test found, for its report. */
interface PointInTimeOutcome extends Pick<RestoreTestReport, 'key' | 'backupStartedAt' | 'pitr' | 'binlogPitr' | 'refused'> {
  readonly target?: Connection;
  readonly validation?: Validation;
  readonly recoveredTo?: string;
  readonly failures: readonly string[];
}

/** The report of a point-in-time restore test: the duration is the restore's and the checks', the data as old as the last transaction recovered. */
function pointInTimeReport(request: Pick<PitrTestRequest<PitrTarget>, 'location' | 'reports'>, started: Date, finished: Date, run: PointInTimeOutcome): RestoreTestReport {
  const { location } = request;
  const success = run.failures.length === 0;
  const recoveredTo = run.recoveredTo ? Date.parse(run.recoveredTo) : undefined;
  return {
    formatVersion: REPORT_FORMAT_VERSION, source: location.source, success, bucket: location.bucket,
    key: run.key, backupStartedAt: run.backupStartedAt,
    target: run.target ? describeConnection(run.target) : undefined,
    startedAt: started.toISOString(), finishedAt: finished.toISOString(),
    durationSeconds: run.validation ? (finished.getTime() - started.getTime()) / 1000 : undefined,
    restoredBackupAgeSeconds: recoveredTo === undefined ? undefined : Math.round((finished.getTime() - recoveredTo) / 1000),
    tablesChecked: run.validation?.tables.length ?? 0, rowsChecked: 0,
    tables: run.validation?.tables ?? [], checks: run.validation?.checks ?? [],
    failures: run.failures, reason: success ? undefined : run.failures.join('; '),
    ...(run.refused ? { refused: run.refused } : {}),
    ...(run.pitr ? { pitr: run.pitr } : {}),
    ...(run.binlogPitr ? { binlogPitr: run.binlogPitr } : {}),
    reportKey: reportKey(location.prefix, location.source, finished, request.reports),
  };
}

/**
 * The restore test of a binlog-streamed MariaDB source (--binlog-pitr): the newest dump with coordinates restored into
 * the scratch database and the binlogs replayed to a recent time, checked, reported with its `binlogPitr` and measured.
 */
async function recordBinlogPitrTest(args: ParsedArgs, deps: RestoreTestDeps, request: PitrTestRequest<PitrTarget>, patterns: readonly RegExp[]): Promise<RestoreTestReport> {
  const started = (deps.now ?? (() => new Date()))();
  const { identity } = request;
  let run: BinlogPitrTestRun;
  try {
    run = await runBinlogPitrTest({
      location: request.location, settings: request.settings, identityFile: identity.file, dropIdentity: () => identity.release(), checks: request.checks,
      workDir: args.string('spool-dir'), connect: () => resolveConnection(Engine.MYSQL, args, process.env, deps.secrets?.()),
    }, request.s3);
  } finally {
    identity.release();
  }
  const judged = run.dump ? reportRefusals(run.dump, patterns) : undefined;
  const report = pointInTimeReport(request, started, (deps.now ?? (() => new Date()))(), {
    ...run, failures: [...run.failures, ...(judged?.failures ?? [])], key: run.binlogPitr?.dumpKey, backupStartedAt: run.dumpStartedAt,
    recoveredTo: run.binlogPitr?.recoveredTo, refused: judged?.refused, ...(run.binlogPitr ? { binlogPitr: run.binlogPitr } : {}),
  });
  log.info('binlog point-in-time restore test finished', { source: report.source, success: report.success, durationSeconds: report.durationSeconds,
    targetTime: run.binlogPitr?.targetTime, recoveredTo: run.binlogPitr?.recoveredTo, lastFile: run.binlogPitr?.lastEvent.file,
    lastPosition: run.binlogPitr?.lastEvent.position, lastGtid: run.binlogPitr?.lastEvent.gtid,
    restoreSeconds: run.binlogPitr?.restoreSeconds, failures: report.failures.length });
  return recordReport(report, { deps, s3: request.s3, prefix: request.location.prefix, publish: request.publish, rtoSeconds: request.rtoSeconds, reports: request.reports, at: new Date(report.finishedAt) });
}

export { formatReport as formatRestoreTestReport };

/** Whether the run succeeds: the restore test passed and its result was recorded. */
export function restoreTestPassed(report: RestoreTestReport): boolean {
  return report.success && !report.recordingProblems?.length;
}

/** The error that makes the exit code non-zero, naming every failure. */
export function restoreTestFailure(report: RestoreTestReport): AgentError {
  const problems = [...report.failures, ...(report.recordingProblems ?? [])];
  return new AgentError(`the restore test of ${report.source} ${report.success ? 'passed, but its result was not recorded' : 'failed'}:\n` +
    `${problems.map((f) => `  - ${f}`).join('\n')}`);
}
