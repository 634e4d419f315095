/**
 * What a restore test checks for one source, and the agent command that runs it. Plain types and functions;
 * the construct that schedules the tests is RestoreTesting.
 */
import { Duration } from 'aws-cdk-lib';
import { BackupSource } from '../backups/backup-source';
import { RestorableError, renamedPropProblems, wholeSeconds } from '../shared/errors';
import { ScratchConnection } from './restore-test-task';

/**
 * A query the restored database must answer as expected; give exactly one of `minRows`, `equals`, `maxAge`.
 * A failed check names itself in the report with what was expected and what came back.
 */
export interface RestoreTestCheck {
  /** What the check proves, for example 'orders of the last day exist'. Unique per source. */
  readonly name: string;
  /** The query, run in the restored database. */
  readonly sql: string;
  /**
   * The query returns at least this many rows.
   * @default - not checked
   */
  readonly minRows?: number;
  /**
   * The first column of the first row, as text, equals this.
   * @default - not checked
   */
  readonly equals?: string;
  /**
   * The first column of the first row is a time at most this much older than the backup's start (whole seconds),
   * for example `Duration.hours(1)`.
   * @default - not checked
   */
  readonly maxAge?: Duration;
}

/** How far a restored table's row count may differ from the count the manifest recorded. */
export class RowCountTolerance {
  /** Every table has exactly the recorded rows. */
  public static exact(): RowCountTolerance {
    return new RowCountTolerance('0');
  }

  /** Up to `rows` more or fewer rows per table. */
  public static rows(rows: number): RowCountTolerance {
    if (!Number.isInteger(rows) || rows < 0) throw new RestorableError(`RowCountTolerance.rows(${rows})`, 'rows must be a whole number of rows, at least 0');
    return new RowCountTolerance(String(rows));
  }

  /** Up to `percent` per cent of each table's recorded count. */
  public static percent(percent: number): RowCountTolerance {
    if (!(percent >= 0 && percent <= 100)) throw new RestorableError(`RowCountTolerance.percent(${percent})`, 'percent must be a percentage from 0 to 100');
    return new RowCountTolerance(`${percent}%`);
  }

  private constructor(
    /** The agent's `--tolerance` argument. */
    public readonly argument: string,
  ) {}
}

/** One source's restore test. */
export interface RestoreTestSourceProps {
  /** The source, as DatabaseBackups returns it. */
  readonly source: BackupSource;
  /**
   * Queries the restored database must answer as expected, beyond the tables and row counts.
   * @default - tables and row counts only
   */
  readonly checks?: RestoreTestCheck[];
  /**
   * How far row counts may differ from the manifest's.
   * @default RowCountTolerance.exact()
   */
  readonly tolerance?: RowCountTolerance;
  /**
   * The recovery time objective: an alarm fires when the measured restore (download to end of validation) takes longer.
   * @default - no RTO alarm
   */
  readonly rtoTarget?: Duration;
}

/** What is wrong with a check, or undefined when it is valid. */
export function checkProblem(check: RestoreTestCheck): string | undefined {
  if (!check?.name || !check.sql) return 'every restore-test check needs a name and an sql query';
  const [renamed] = renamedPropProblems(check, { maxAgeSeconds: 'use maxAge: Duration.hours(1)' }, `check '${check.name}': `);
  if (renamed) return renamed;
  const expectations = [check.minRows, check.equals, check.maxAge].filter((e) => e !== undefined).length;
  if (expectations !== 1) return `check '${check.name}' must have exactly one of minRows, equals and maxAge (it has ${expectations})`;
  if (check.minRows !== undefined && !(Number.isInteger(check.minRows) && check.minRows >= 0)) {
    return `check '${check.name}': minRows must be a whole number of at least 0 (got ${check.minRows})`;
  }
  const problems: string[] = [];
  if (check.maxAge !== undefined) wholeSeconds(`check '${check.name}': maxAge`, check.maxAge, { min: 0, example: 'Duration.hours(1)' }, problems);
  return problems[0];
}

export interface RestoreTestTarget {
  readonly bucket: string;
  readonly prefix: string;
  /** The bucket's region when it is not the task's (the DR replica). */
  readonly bucketRegion?: string;
  readonly identitySecretArn: string;
  readonly scratch: ScratchConnection;
  readonly database: string;
}

/** The agent's arguments for one source's restore test: no secret, only where to find it. */
export function restoreTestCommand(props: RestoreTestSourceProps, target: RestoreTestTarget): string[] {
  // The agent's checks file counts the age in seconds.
  const checks = (props.checks ?? []).map(({ name, sql, minRows, equals, maxAge }) => ({ name, sql, minRows, equals, maxAgeSeconds: maxAge?.toSeconds() }));
  return [
    'restore-test', '--source', props.source.name, '--bucket', target.bucket,
    ...(target.prefix ? ['--prefix', target.prefix] : []),
    ...(target.bucketRegion ? ['--bucket-region', target.bucketRegion] : []),
    '--identity-secret-id', target.identitySecretArn,
    '--host', '127.0.0.1', '--port', String(target.scratch.port), '--user', target.scratch.user, '--database', target.database,
    ...(checks.length ? ['--checks-json', JSON.stringify(checks)] : []),
    ...(props.tolerance ? ['--tolerance', props.tolerance.argument] : []),
    ...(props.rtoTarget ? ['--rto-seconds', String(props.rtoTarget.toSeconds())] : []),
    '--publish-metrics', '--json',
  ];
}
