/**
 * The manifest written beside every backup, and the latest pointer.
 * Unencrypted and free of secrets: freshness checks, size checks, restore tests and people read them.
 */
import { BinlogCoordinates, binlogCoordinatesProblem } from './binlog';
import { Tier } from './tiers';

export const MANIFEST_FORMAT_VERSION = 1;

export enum Engine {
  POSTGRES = 'postgres',
  MYSQL = 'mysql',
  /** MongoDB and what speaks its wire protocol (Amazon DocumentDB, MongoDB Atlas): mongodump's archive. */
  MONGODB = 'mongodb',
}

/**
 * One table and the rows it held in the dump. For MongoDB: `schema` is the database, `table` the collection and
 * `rows` its documents, as counted in the archive stream itself.
 */
export interface TableCount {
  readonly schema: string;
  readonly table: string;
  readonly rows: number;
}

/** An object written for a backup beside the dump: roles and grants. */
export interface Companion {
  readonly kind: 'globals';
  readonly key: string;
  readonly size: number;
  readonly sha256: string;
}

export interface Manifest {
  readonly formatVersion: number;
  readonly source: string;
  readonly engine: Engine;
  readonly database: string;
  readonly serverVersion: string;
  /** Versions of pg_dump/mysqldump, zstd, age and the agent. */
  readonly toolVersions: Record<string, string>;
  readonly tier: Tier;
  readonly startedAt: string;
  readonly finishedAt: string;
  /** The stored object: `{format}.zst.age`. */
  readonly key: string;
  readonly format: string;
  readonly size: number;
  /** SHA-256 of the stored (encrypted) bytes, hex. */
  readonly sha256: string;
  /** Size of the dump before compression and encryption. */
  readonly dumpSize: number;
  /** SHA-256 of the recipient string, so that a restorer can tell which identity opens this backup. */
  readonly recipientFingerprint: string;
  readonly tables: readonly TableCount[];
  readonly companions: readonly Companion[];
  /** Whether roles and grants were captured, and if not, why. */
  readonly globals: { readonly captured: boolean; readonly reason?: string };
  readonly warnings: readonly string[];
  /**
   * Where the dump's consistent snapshot sits in the server's binlog, for a MariaDB source whose binlogs are streamed:
   * a point-in-time restore replays the binlogs from here.
   */
  readonly binlog?: BinlogCoordinates;
}

/** `{prefix}{source}/latest.json`: the newest backup that passed post-upload verification. */
export interface LatestPointer {
  readonly formatVersion: number;
  readonly source: string;
  readonly key: string;
  readonly manifestKey: string;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly tier: Tier;
  readonly size: number;
  readonly sha256: string;
}

/**
 * How far a pointer's or report's stated time may run ahead of the S3 time that bounds it (the LastModified of the
 * backup object a latest.json names, or of the report itself) before the monitoring calls it forged or skewed:
 * room for the clock of the task that wrote it, never for a time S3 contradicts.
 */
export const POINTER_CLOCK_SKEW_SECONDS = 300;

/**
 * What a stated time claims that S3 contradicts, in words, or undefined when it is believable: a time in the future,
 * or later than `bound` (an S3 LastModified the stated time must precede) by more than POINTER_CLOCK_SKEW_SECONDS.
 * `where` names the pointer, `boundIs` what S3 stored. The freshness check and `restorable status` both ask it.
 */
export function forgedTime(where: string, name: string, stated: string | undefined, bound: Date, boundIs: string, now: Date): string | undefined {
  if (stated === undefined) return undefined;
  const time = Date.parse(stated);
  if (Number.isNaN(time)) return `${where} has an invalid ${name} '${stated}'`;
  const skew = POINTER_CLOCK_SKEW_SECONDS * 1000;
  if (time > now.getTime() + skew) return `${where} states ${name} ${stated}, in the future (now is ${now.toISOString()})`;
  if (time > bound.getTime() + skew) {
    return `${where} states ${name} ${stated}, after S3 stored ${boundIs} (LastModified ${bound.toISOString()})`;
  }
  return undefined;
}

/**
 * A manifest or pointer that cannot be read. `message` names the object and what is wrong; `fix` says what a
 * person can do about it. The agent prints both on one line, without a stack trace.
 */
export class ContractError extends Error {
  constructor(message: string, readonly fix: string) {
    super(message);
    this.name = 'ContractError';
  }
}

/** An ISO 8601 UTC time as the agent writes it (`Date.toISOString()`), with or without fractional seconds. */
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;

/** Whether `value` is a real ISO 8601 UTC time: pointers are compared as strings, so garbage must not pass. */
export function isIsoTime(value: unknown): value is string {
  return typeof value === 'string' && ISO_TIME.test(value) && !Number.isNaN(Date.parse(value));
}

function isObject(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Checks startedAt and, when present, finishedAt; returns what is wrong, if anything. */
function timeProblem(value: { startedAt?: unknown; finishedAt?: unknown }): string | undefined {
  if (!isIsoTime(value.startedAt)) return `has startedAt ${JSON.stringify(value.startedAt)}, which is not an ISO 8601 UTC time`;
  if (value.finishedAt !== undefined && !isIsoTime(value.finishedAt)) {
    return `has finishedAt ${JSON.stringify(value.finishedAt)}, which is not an ISO 8601 UTC time`;
  }
  return undefined;
}

const MANIFEST_FIX = 'restore it from an older version (the bucket is versioned), or delete it together with its backup';

/** Parses a manifest or throws a ContractError that says which field is wrong. */
export function parseManifest(text: string, where: string): Manifest {
  const bad = (what: string, fix = MANIFEST_FIX) => new ContractError(`manifest ${where} ${what}`, fix);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw bad('is not valid JSON');
  }
  if (!isObject(value)) throw bad('is not a JSON object');
  const m = value as Partial<Manifest>;
  const required: (keyof Manifest)[] = ['formatVersion', 'source', 'engine', 'key', 'size', 'sha256', 'startedAt', 'tables'];
  const missing = required.filter((field) => m[field] === undefined);
  if (missing.length) throw bad(`lacks ${missing.join(', ')}`);
  if (m.formatVersion !== MANIFEST_FORMAT_VERSION) {
    throw bad(`has format version ${m.formatVersion}; this agent reads version ${MANIFEST_FORMAT_VERSION}`,
      'use an agent that reads that version, or restore the manifest from an older version (the bucket is versioned)');
  }
  const times = timeProblem(m);
  if (times) throw bad(times);
  const coordinates = m.binlog === undefined ? undefined : binlogCoordinatesProblem(m.binlog);
  if (coordinates) throw bad(`binlog coordinates ${coordinates}`);
  return m as Manifest;
}

/** Parses a latest pointer or throws a ContractError that names what is wrong. */
export function parseLatest(text: string, where: string): LatestPointer {
  const bad = (what: string) => new ContractError(`latest pointer ${where} ${what}`,
    'restore it from an older version (the bucket is versioned) or delete it; the next backup will then be monthly');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw bad('is not valid JSON');
  }
  if (!isObject(value)) throw bad('is not a JSON object');
  const p = value as Partial<LatestPointer>;
  if (typeof p.key !== 'string' || p.startedAt === undefined) throw bad('lacks key or startedAt');
  const times = timeProblem(p);
  if (times) throw bad(times);
  return p as LatestPointer;
}

/**
 * What the freshness check needs from `{prefix}{source}/restore-tests/latest.json` (restoreTestLatestKey),
 * which each restore test rewrites with its newest report; the report may hold more fields.
 */
export interface RestoreTestPointer {
  readonly source: string;
  /** When the restore test finished (ISO 8601, UTC): RestoreTestAgeSeconds counts from here. */
  readonly finishedAt: string;
  readonly success: boolean;
  /** How long the restore took, in seconds: the measured RTO that `restorable status` reports. */
  readonly durationSeconds?: number;
  /** Why the test failed, in words for a person, when it did. */
  readonly reason?: string;
  /** The point-in-time restore of a WAL-archived PostgreSQL source, when the test made one. */
  readonly pitr?: RestoreTestPitr;
  /** The point-in-time restore of a MariaDB source whose binlogs are streamed, when the test made one. */
  readonly binlogPitr?: RestoreTestBinlogPitr;
}

/**
 * A restore test's point-in-time restore of a binlog-streamed MariaDB source: a dump, then its binlogs replayed from the
 * dump's coordinates up to a recent time. `restoreSeconds` is the measured PITR restore time that `restorable status` reports.
 */
export interface RestoreTestBinlogPitr {
  /** The time replay was asked to stop at (ISO 8601, UTC). */
  readonly targetTime: string;
  /** The time of the last event group replayed (ISO 8601, UTC, whole seconds as the binlog records them). */
  readonly recoveredTo: string;
  /** The dump the restore started from. */
  readonly dumpKey: string;
  /** How many binlog objects were fetched, verified and replayed. */
  readonly binlogFilesReplayed: number;
  /** The last event group applied: its file, end position and GTID. */
  readonly lastEvent: { readonly file: string; readonly position: number; readonly gtid?: string };
  /** From the start of the dump's download until the last binlog event was applied. */
  readonly restoreSeconds: number;
}

/**
 * A restore test's point-in-time restore: a base backup and the archived WAL after it, replayed by a PostgreSQL
 * server up to a recent time. `restoreSeconds` is the measured PITR restore time that `restorable status` reports.
 */
export interface RestoreTestPitr {
  /** The time recovery was asked to stop at (ISO 8601, UTC). */
  readonly targetTime: string;
  /** The commit time of the last transaction recovery replayed (ISO 8601, UTC): at or before targetTime. */
  readonly recoveredTo: string;
  /** The base backup the restore started from. */
  readonly baseBackupKey: string;
  /** How many WAL files were fetched, verified and handed to the server. */
  readonly walFilesReplayed: number;
  /** From the start of the base backup's download until the server was out of recovery. */
  readonly restoreSeconds: number;
}

/**
 * What a restore test of a WAL-archived source leaves in its directory (`restore-test --pitr-dir DIR`, a volume it
 * shares with the server that replays it): the restored data directory, the WAL the agent fetched and verified, the
 * server's whole configuration (the base backup's own set aside), and the marker that tells the server to start. The
 * server, a sidecar of the source's version in AWS, starts `postgres -D DIR/data -c config_file=DIR/server.conf` once
 * the marker is there, its output to DIR/server.log, where the agent reads how far recovery went.
 */
export const PITR_TEST_FILES = {
  dataDir: 'data',
  walDir: 'wal',
  config: 'server.conf',
  ready: 'ready',
  serverLog: 'server.log',
} as const;

/** What is wrong with a report's `pitr`, or undefined when it is well formed. */
export function restoreTestPitrProblem(value: unknown): string | undefined {
  if (!isObject(value)) return 'is not an object';
  const p = value as Partial<Record<keyof RestoreTestPitr, unknown>>;
  for (const name of ['targetTime', 'recoveredTo'] as const) {
    if (typeof p[name] !== 'string' || Number.isNaN(Date.parse(p[name] as string))) return `lacks a valid ${name}`;
  }
  if (typeof p.baseBackupKey !== 'string' || p.baseBackupKey === '') return 'lacks baseBackupKey';
  if (!(Number.isInteger(p.walFilesReplayed) && (p.walFilesReplayed as number) >= 0)) return 'lacks a whole walFilesReplayed';
  if (!(typeof p.restoreSeconds === 'number' && Number.isFinite(p.restoreSeconds) && p.restoreSeconds >= 0)) return 'lacks a valid restoreSeconds';
  return undefined;
}

const RESTORE_TEST_FIX = 'delete it (the next restore test writes a new one) or restore it from an older version (the bucket is versioned)';

/** Parses a restore-test pointer or throws an error that names what is wrong. */
export function parseRestoreTestPointer(text: string, where: string): RestoreTestPointer {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ContractError(`restore-test report ${where} is not valid JSON`, RESTORE_TEST_FIX);
  }
  const p = (isObject(value) ? value : {}) as Partial<RestoreTestPointer>;
  if (typeof p.finishedAt !== 'string' || Number.isNaN(Date.parse(p.finishedAt))) {
    throw new ContractError(`restore-test report ${where} lacks a valid finishedAt time`, RESTORE_TEST_FIX);
  }
  const pitrProblem = p.pitr === undefined ? undefined : restoreTestPitrProblem(p.pitr);
  if (pitrProblem) throw new ContractError(`restore-test report ${where}: its pitr ${pitrProblem}`, RESTORE_TEST_FIX);
  return p as RestoreTestPointer;
}
