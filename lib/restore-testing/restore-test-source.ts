/**
 * What a restore test checks for one source, and the agent command that runs it. Plain types and functions;
 * the construct that schedules the tests is RestoreTesting.
 */
import { Duration, Size, SizeRoundingBehavior } from 'aws-cdk-lib';
import { BackupSource, DatabaseFlavour } from '../backups/backup-source';
import { RestorableError, renamedPropProblems, wholeSeconds } from '../shared/errors';
import { ReportsCopy } from '../contract/names';
import { mongoCheckProblem } from './restore-test-mongo-checks';
import { ScratchConnection } from './restore-test-task';

/**
 * A query the restored database must answer as expected; give exactly one of `minRows`, `equals`, `maxAge`.
 * A failed check names itself in the report with what was expected and what came back. PostgreSQL, MariaDB and MySQL
 * sources give `sql`; MongoDB sources give `collection` (with an optional `filter`, and `field` for a value or a
 * time) instead: a MongoDB check only ever reads documents, never runs code (`$where`, `$function`, `$accumulator`,
 * `$expr` and `$code` are refused at synth and by the agent, which has no place for aggregation pipelines or commands
 * either and allows only query operators). The check reaches the agent as written, in JSON.
 */
export interface RestoreTestCheck {
  /** What the check proves, for example 'orders of the last day exist'. Unique per source. */
  readonly name: string;
  /**
   * The query, run in the restored database (PostgreSQL, MariaDB, MySQL).
   * @default - none: a MongoDB source's check gives `collection` instead
   */
  readonly sql?: string;
  /**
   * MongoDB sources: the collection the check reads, one of the backup's own (never a `system.` collection).
   * @default - none: an SQL source's check gives `sql` instead
   */
  readonly collection?: string;
  /**
   * MongoDB sources: the query filter, as Extended JSON (`{ placedAt: { $gte: { $date: '2026-01-01T00:00:00Z' } } }`),
   * with query operators only (`$eq $ne $gt $gte $lt $lte $in $nin $and $or $nor $not $exists $type $regex $options
   * $mod $all $elemMatch $size`). Give dates as `{ $date: '…' }`, ObjectIds as `{ $oid: '…' }` and 64-bit integers as
   * `{ $numberLong: '…' }`: a JavaScript Date, RegExp or BigInt is refused at synth, since JSON would not carry it as such.
   * @default - every document of the collection matches
   */
  readonly filter?: Record<string, unknown>;
  /**
   * MongoDB sources: with `equals`, the field (a dotted path) of the first matching document compared instead of
   * the count of matching documents; with `maxAge`, the time field whose newest value is checked.
   * @default - `equals` compares the count of matching documents; `maxAge` needs a field
   */
  readonly field?: string;
  /**
   * MongoDB sources, `equals` with a `field`: which matching document is the first, by up to 8 fields, each 1
   * (ascending) or -1 (descending), for example `{ placedAt: -1 }`.
   * @default - `_id` ascending: the first matching document by `_id`
   */
  readonly sort?: Record<string, number>;
  /**
   * The query returns at least this many rows (MongoDB: at least this many documents match the filter).
   * @default - not checked
   */
  readonly minRows?: number;
  /**
   * The first column of the first row, as text, equals this (MongoDB: the count of matching documents, or the
   * `field` of the first one).
   * @default - not checked
   */
  readonly equals?: string;
  /**
   * The first column of the first row is a time at most this much older than the backup's start (whole seconds),
   * for example `Duration.hours(1)` (MongoDB: the newest value of `field` among the matching documents).
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
   * How far row counts may differ from the manifest's. For a MongoDB source it relaxes only the comparison of the
   * restored database's document counts with the manifest's: the archive itself must hold exactly the manifest's
   * counts (the agent counts them as it reads the archive, before anything loads), so a backup whose archive and
   * manifest disagree fails the test whatever the tolerance.
   * @default RowCountTolerance.exact()
   */
  readonly tolerance?: RowCountTolerance;
  /**
   * The recovery time objective: an alarm fires when the measured restore (download to end of validation) takes longer.
   * @default - no RTO alarm
   */
  readonly rtoTarget?: Duration;
  /**
   * What this source's backups hold that a restore test leaves out on purpose, because loading it needs a superuser:
   * patterns matched against each left-out entry of the PostgreSQL archive, by its kind and name as `pg_restore -l`
   * prints them (without the owner, the name schema-qualified where it has a schema), `*` for any text and `?` for
   * one character, case ignored. For example `['EVENT TRIGGER audit_*', 'EXTENSION postgis']`. A left-out entry
   * that matches is listed in the report as expected; one that matches no pattern fails the test, naming it. A
   * change of owner (the objects are restored owned by the loading role) is always expected. MongoDB sources: the
   * namespaces of the archive that a restore leaves out, `database.collection`, such as `['catalog.system.js',
   * 'analytics.*']` (a restore loads only the backed-up database's own collections). Not for MariaDB or MySQL: their
   * restore leaves nothing out, since a command it refuses fails the load.
   * @default - none: every left-out entry fails the test
   */
  readonly expectLeftOut?: string[];
  /**
   * Test a point-in-time restore rather than the newest dump. For a PostgreSQL source whose WAL is archived
   * (walArchiving): the newest base backup before a minute ago and the archived WAL after it, replayed by a scratch
   * PostgreSQL server of the source's version booting from the restored data directory, which must promote having
   * recovered to at or before that time (and not more than `pointInTimeMaxGap` before it), with every table the newest
   * dump names; the report's `pitr` says the time recovered to and the measured restore time. For a MariaDB source
   * whose binlogs are streamed (binlogStreaming): the newest dump with binlog coordinates before a minute ago restored
   * into the scratch database and the streamed binlogs replayed up to that second, the last transaction applied at or
   * before it and not more than `pointInTimeMaxGap` before it, with every table the dump names; the report's
   * `binlogPitr` says the last transaction applied (file, position, GTID, time) and the measured restore time.
   * @default true for a source with walArchiving or binlogStreaming, false otherwise
   */
  readonly pointInTime?: boolean;
  /**
   * How much older than the target the last transaction a point-in-time restore test recovered may be: a source that
   * commits rarely needs more.
   * @default Duration.hours(1) with walArchiving; the source's binlogStreaming maxArchiveAge (5 minutes unless set) with binlogStreaming
   */
  readonly pointInTimeMaxGap?: Duration;
  /**
   * Where a point-in-time restore test recovers to: `'recent'`, a minute before the test (recovery must find a
   * transaction committed after it in the archive, or the test fails saying so), or `'latest'`, everything archived,
   * for a source that may commit nothing for longer than that.
   * @default 'recent'
   */
  readonly pointInTimeTarget?: 'recent' | 'latest';
}

/** Whether a source is archived continuously: its WAL (PostgreSQL) or its binlogs (MariaDB). */
const continuous = (source: BackupSource) => source.walArchiving !== undefined || source.binlogStreaming !== undefined;

/** Whether a source's restore tests are point-in-time restores: its WAL is archived or its binlogs streamed, unless pointInTime says otherwise. */
export function testsPointInTime(props: RestoreTestSourceProps): boolean {
  return props.pointInTime ?? continuous(props.source);
}

/** Whether a source's restore tests are point-in-time restores from WAL, which a scratch PostgreSQL server replays (the task's sidecar). */
export function testsWalPointInTime(props: RestoreTestSourceProps): boolean {
  return testsPointInTime(props) && props.source.walArchiving !== undefined;
}

/** What is wrong with a source's point-in-time settings, or undefined when they are valid. */
export function pointInTimeProblem(props: RestoreTestSourceProps): string | undefined {
  const name = props.source.name;
  if (props.pointInTime && props.source.engine.flavour === DatabaseFlavour.MONGODB) {
    return `pointInTime is for sources whose WAL or binlogs are archived, and '${name}' is MongoDB, which is dump-only: its restore ` +
      'tests load the newest dump; remove pointInTime';
  }
  if (props.pointInTime && !continuous(props.source)) {
    return props.source.engine.flavour === DatabaseFlavour.POSTGRES
      ? `pointInTime needs the source's WAL archived: give '${name}' walArchiving in DatabaseBackups, or remove pointInTime`
      : `pointInTime needs the source's binlogs streamed: give '${name}' binlogStreaming in DatabaseBackups, or remove pointInTime`;
  }
  if (props.pointInTimeTarget !== undefined) {
    if (!testsPointInTime(props)) return `pointInTimeTarget is for a point-in-time restore test, which '${name}' does not have: remove it`;
    if (props.pointInTimeTarget !== 'recent' && props.pointInTimeTarget !== 'latest') {
      return `pointInTimeTarget must be 'recent' or 'latest' (got ${JSON.stringify(props.pointInTimeTarget)})`;
    }
  }
  if (props.pointInTimeMaxGap !== undefined) {
    if (!testsPointInTime(props)) return `pointInTimeMaxGap is for a point-in-time restore test, which '${name}' does not have: remove it`;
    const problems: string[] = [];
    wholeSeconds(`source '${name}': pointInTimeMaxGap`, props.pointInTimeMaxGap, { min: 1, example: 'Duration.hours(1)' }, problems);
    return problems[0];
  }
  return undefined;
}

/** What is wrong with a check of a source of `flavour`, or undefined when it is valid. */
export function checkProblem(check: RestoreTestCheck, flavour: DatabaseFlavour): string | undefined {
  if (!check?.name) return 'every restore-test check needs a name';
  const queryProblem = flavour === DatabaseFlavour.MONGODB ? mongoCheckProblem(check) : check.collection !== undefined
    ? `check '${check.name}' names a collection, which is for MongoDB sources: give an sql query instead`
    : (!check.sql ? `check '${check.name}' needs an sql query` : undefined);
  if (queryProblem) return queryProblem;
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

/** What is wrong with a source's `expectLeftOut`, or undefined when it is valid. */
export function expectLeftOutProblem(props: RestoreTestSourceProps): string | undefined {
  const patterns = props.expectLeftOut;
  if (patterns === undefined) return undefined;
  const { source } = props;
  if (source.engine.flavour !== DatabaseFlavour.POSTGRES && source.engine.flavour !== DatabaseFlavour.MONGODB) {
    return `expectLeftOut is for PostgreSQL and MongoDB sources, and this one is ${source.engine}: a MariaDB or MySQL restore test leaves ` +
      'nothing out of the backup (a command the load refuses fails the test, naming it); remove expectLeftOut';
  }
  // MongoDB: the agent names a left-out namespace as database.collection; PostgreSQL: an entry as pg_restore -l prints it.
  const mongo = source.engine.flavour === DatabaseFlavour.MONGODB;
  const examples = mongo ? ['<database>.system.js', 'analytics.*'] : ['EVENT TRIGGER audit_*', 'EXTENSION postgis'];
  if (!Array.isArray(patterns)) return `expectLeftOut must be a list of patterns, for example ['${examples.join("', '")}']`;
  for (const pattern of patterns) {
    if (typeof pattern !== 'string' || !pattern.trim()) {
      return `expectLeftOut: every pattern must be a non-empty string (got ${JSON.stringify(pattern) ?? String(pattern)}), for example '${examples[0]}'`;
    }
    if (pattern.includes(';')) {
      return `expectLeftOut: the pattern '${pattern}' contains ';', which separates patterns for the agent: give each pattern as its own list item`;
    }
  }
  return undefined;
}

/** What a restore test spools beside the decrypted dump: the agent's headroom (64 MiB). */
const SPOOL_HEADROOM_MIB = 64;
/** The disk a restore test may need for a source of `expectedSize`: the scratch server's data, the dump, and room to spare. */
const DISK_MARGIN = Size.gibibytes(1);

/**
 * Why the restore-test task's ephemeral storage may be too small for a source, or undefined when it looks large
 * enough or the source states no expectedSize. The dump is spooled decrypted to that storage before the load, and
 * the scratch server's data lives there too: each can be about as large as the database, so this asks for twice
 * the expected size and 1 GiB to spare.
 */
export function diskShortfall(props: RestoreTestSourceProps, ephemeralStorageGiB: number): string | undefined {
  const expected = props.source.expectedSize;
  if (!expected || expected.isUnresolved()) return undefined;
  const none = { rounding: SizeRoundingBehavior.NONE };
  const neededGiB = (2 * expected.toMebibytes(none) + DISK_MARGIN.toMebibytes(none)) / 1024;
  if (neededGiB <= ephemeralStorageGiB) return undefined;
  const shown = (gib: number) => `${Math.ceil(gib * 100 - 1e-9) / 100} GiB`;
  return `source '${props.source.name}' expects up to ${shown(expected.toMebibytes(none) / 1024)} (expectedSize), and its restore test keeps ` +
    `the decrypted dump (the dump plus ${SPOOL_HEADROOM_MIB} MiB) and the scratch server's data on the task's ephemeral storage, ` +
    `${ephemeralStorageGiB} GiB: allow ${shown(neededGiB)} (twice expectedSize plus 1 GiB). ` +
    (Math.ceil(neededGiB) <= 200
      ? `Raise RestoreTesting's ephemeralStorageGiB to at least ${Math.ceil(neededGiB)}`
      : 'That is more than a Fargate task has (ephemeralStorageGiB, at most 200): set it to 200, and see whether the first test has room') +
    '; a test without room fails before it touches the scratch database, naming the space it needs';
}

export interface RestoreTestTarget {
  readonly bucket: string;
  readonly prefix: string;
  /** The bucket's region when it is not the task's (the DR replica). */
  readonly bucketRegion?: string;
  readonly identitySecretArn: string;
  readonly scratch: ScratchConnection;
  readonly database: string;
  /** Whose reports the test writes: a vault's own tests report under `restore-tests/vault/` (`--reports vault`). */
  readonly reports?: ReportsCopy;
  /** A point-in-time restore test's directory on the volume the task shares with the scratch server (`--pitr-dir`). */
  readonly pitrDir?: string;
}

/** The agent's arguments for one source's restore test: no secret, only where to find it. */
export function restoreTestCommand(props: RestoreTestSourceProps, target: RestoreTestTarget): string[] {
  // The agent's checks file counts the age in seconds.
  const checks = (props.checks ?? []).map(({ name, sql, collection, filter, field, sort, minRows, equals, maxAge }) =>
    ({ name, sql, collection, filter, field, sort, minRows, equals, maxAgeSeconds: maxAge?.toSeconds() }));
  const binlog = testsPointInTime(props) && props.source.binlogStreaming !== undefined;
  // Replay must reach as near the target as the stream is kept fresh: the source's maxArchiveAge, unless given.
  const maxGap = props.pointInTimeMaxGap ?? (binlog ? props.source.binlogStreaming!.maxArchiveAge : undefined);
  return [
    'restore-test', '--source', props.source.name, '--bucket', target.bucket,
    ...(target.prefix ? ['--prefix', target.prefix] : []),
    ...(target.bucketRegion ? ['--bucket-region', target.bucketRegion] : []),
    '--identity-secret-id', target.identitySecretArn,
    '--host', '127.0.0.1', '--port', String(target.scratch.port), '--user', target.scratch.user,
    // A point-in-time restore from WAL checks the database of the newest dump, in the cluster it recovered; one from
    // binlogs restores the dump into the scratch database and replays its binlogs there.
    ...(target.pitrDir ? ['--pitr-dir', target.pitrDir] : ['--database', target.database]),
    ...(binlog ? ['--binlog-pitr'] : []),
    ...(target.pitrDir || binlog ? [...(props.pointInTimeTarget ? ['--pitr-to', props.pointInTimeTarget] : []), ...(maxGap ? ['--pitr-max-gap', String(maxGap.toSeconds())] : [])] : []),
    ...(checks.length ? ['--checks-json', JSON.stringify(checks)] : []),
    ...(props.tolerance ? ['--tolerance', props.tolerance.argument] : []),
    ...(props.rtoTarget ? ['--rto-seconds', String(props.rtoTarget.toSeconds())] : []),
    ...(props.expectLeftOut?.length ? ['--expect-left-out', props.expectLeftOut.join(';')] : []),
    ...(target.reports ? ['--reports', target.reports] : []),
    '--publish-metrics', '--json',
  ];
}
