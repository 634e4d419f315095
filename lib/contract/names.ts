/**
 * Object key contract. Shared by the constructs, the Lambda handlers and the agent,
 * so it must never import aws-cdk-lib.
 *
 *   {prefix}{source}/{YYYY}/{MM}/{DD}/{source}_{YYYY-MM-DD_HH-MM-SS}Z.{ext}
 */

/** What a source name may look like: it becomes part of S3 keys, IAM conditions and metric dimensions. */
export const SOURCE_NAME_PATTERN = /^[a-z0-9-]{1,48}$/;

/** Returns an error message for a bad source name, or undefined when it is valid. */
export function sourceNameProblem(name: string): string | undefined {
  if (SOURCE_NAME_PATTERN.test(name)) return undefined;
  return `source name '${name}' is invalid: use 1 to 48 characters of a-z, 0-9 and '-' (for example 'orders-db')`;
}

/** The dump formats an engine produces; each becomes `{format}.zst.age` on the stored object. */
export enum DumpFormat {
  PG_CUSTOM = 'pgdump',
  SQL = 'sql',
  /** mongodump --archive: the whole database in one stream, collections interleaved in blocks. */
  MONGO_ARCHIVE = 'archive',
}

export const STORED_SUFFIX = '.zst.age';
export const MANIFEST_SUFFIX = '.manifest.json';
/** The roles and grants companion of a SQL engine's backup. */
export const GLOBALS_SUFFIX = `.globals.sql${STORED_SUFFIX}`;
/** The users and roles companion of a MongoDB backup: usersInfo and rolesInfo as JSON, for a person to read. */
export const GLOBALS_JSON_SUFFIX = `.globals.json${STORED_SUFFIX}`;
export const LATEST_FILE = 'latest.json';
export const RESTORE_TESTS_DIR = 'restore-tests';
export const RUNBOOK_FILE = 'RUNBOOK.md';
/** Where a source's archived PostgreSQL WAL lives: `{prefix}{source}/wal/`. */
export const WAL_DIR = 'wal';
/** Where a source's PostgreSQL base backups live: `{prefix}{source}/base/`, apart from its logical dumps. */
export const BASE_DIR = 'base';
/** A base backup's stored object: a tar of the data directory (pg_basebackup -Ft -X fetch), zstd, then age. */
export const BASE_BACKUP_SUFFIX = `.tar${STORED_SUFFIX}`;

/** A prefix is empty or ends with '/': normalise what users type. */
export function normalisePrefix(prefix: string | undefined): string {
  if (!prefix) return '';
  const trimmed = prefix.replace(/^\/+/, '');
  return trimmed === '' || trimmed.endsWith('/') ? trimmed : `${trimmed}/`;
}

/** Everything that belongs to one source lives under this prefix. */
export function sourcePrefix(prefix: string | undefined, source: string): string {
  return `${normalisePrefix(prefix)}${source}/`;
}

export function latestKey(prefix: string | undefined, source: string): string {
  return `${sourcePrefix(prefix, source)}${LATEST_FILE}`;
}

/**
 * Which restore tests' reports: the copy's own tests keep theirs apart from the reports replication brings.
 * `vault`: a vault's restore tests, run in its own account, report under `restore-tests/vault/`, a subdirectory
 * the vault's bucket policy lets no replication write (the primary replicates its own reports, every key). A vault's
 * own runbook lives under such a subdirectory too: `{source}/vault/RUNBOOK.md` (runbookKey).
 */
export enum ReportsCopy {
  VAULT = 'vault',
}

/** Returns an error message for a bad ReportsCopy name (`--reports`, RESTORE_TESTS_SUBDIR), or undefined when it is valid. */
export function reportsCopyProblem(name: string): string | undefined {
  const known = Object.values(ReportsCopy) as string[];
  if (known.includes(name)) return undefined;
  return `'${name}' names no restore-test reports: use ${known.map((k) => `'${k}'`).join(' or ')}, or leave it out for the top-level reports`;
}

/**
 * `{prefix}{source}/restore-tests/`, where a source's restore-test reports live; `{…}/restore-tests/vault/` for
 * those of a vault's own tests (ReportsCopy.VAULT).
 */
export function restoreTestsPrefix(prefix: string | undefined, source: string, reports?: ReportsCopy): string {
  return `${sourcePrefix(prefix, source)}${RESTORE_TESTS_DIR}/${reports ? `${reports}/` : ''}`;
}

/**
 * `{prefix}{source}/restore-tests/latest.json`: the newest restore-test report of a source, rewritten by each
 * restore test beside its own dated report, so that the freshness check reads it with one GET. It is a JSON
 * object with at least `finishedAt` (ISO 8601, UTC) and `success`: see RestoreTestPointer in manifest.ts.
 * A vault's own tests move `restore-tests/vault/latest.json` instead (ReportsCopy.VAULT).
 */
export function restoreTestLatestKey(prefix: string | undefined, source: string, reports?: ReportsCopy): string {
  return `${restoreTestsPrefix(prefix, source, reports)}${LATEST_FILE}`;
}

/**
 * `{prefix}{source}/RUNBOOK.md`: a source's disaster-recovery runbook, written by the primary's account (and carried to
 * a vault by replication). `{…}/vault/RUNBOOK.md` (ReportsCopy.VAULT) for a vault's own, written by the vault's account
 * under a subdirectory the vault's bucket policy lets no replication write.
 */
export function runbookKey(prefix: string | undefined, source: string, copy?: ReportsCopy): string {
  return `${sourcePrefix(prefix, source)}${copy ? `${copy}/` : ''}${RUNBOOK_FILE}`;
}

/**
 * `{prefix}{source}/wal/{file}.zst.age`: one archived WAL file (a segment, a `.partial` segment, a timeline history
 * file or a backup label) under the name PostgreSQL gave it, written once. See wal.ts for the names it accepts.
 */
export function walKey(prefix: string | undefined, source: string, file: string): string {
  return `${sourcePrefix(prefix, source)}${WAL_DIR}/${file}${STORED_SUFFIX}`;
}

/** `{prefix}{source}/wal/`: every archived WAL object of a source, and nothing else. */
export function walPrefix(prefix: string | undefined, source: string): string {
  return `${sourcePrefix(prefix, source)}${WAL_DIR}/`;
}

/** `{prefix}{source}/base/`: a source's base backups, their manifests and their latest.json. */
export function baseBackupPrefix(prefix: string | undefined, source: string): string {
  return `${sourcePrefix(prefix, source)}${BASE_DIR}/`;
}

/**
 * `{prefix}{source}/base/latest.json`: the newest base backup that passed post-upload verification, moved forward
 * only, as latest.json is for dumps.
 */
export function baseLatestKey(prefix: string | undefined, source: string): string {
  return `${baseBackupPrefix(prefix, source)}${LATEST_FILE}`;
}

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

/**
 * `{prefix}{source}/base/{YYYY}/{MM}/{DD}/{source}_{YYYY-MM-DD_HH-MM-SS}Z.tar.zst.age`: the base backup that
 * started at `startedAt`. Its manifest is manifestKeyFor(key).
 */
export function baseBackupKey(prefix: string | undefined, source: string, startedAt: Date): string {
  const dir = `${startedAt.getUTCFullYear()}/${pad(startedAt.getUTCMonth() + 1)}/${pad(startedAt.getUTCDate())}`;
  return `${baseBackupPrefix(prefix, source)}${dir}/${source}_${timestampLabel(startedAt)}Z${BASE_BACKUP_SUFFIX}`;
}

/** `YYYY-MM-DD_HH-MM-SS`, in UTC. */
export function timestampLabel(at: Date): string {
  return `${at.getUTCFullYear()}-${pad(at.getUTCMonth() + 1)}-${pad(at.getUTCDate())}` +
    `_${pad(at.getUTCHours())}-${pad(at.getUTCMinutes())}-${pad(at.getUTCSeconds())}`;
}

/** The key of the dump object for a backup that started at `startedAt`. */
export function backupKey(prefix: string | undefined, source: string, startedAt: Date, format: DumpFormat): string {
  const dir = `${startedAt.getUTCFullYear()}/${pad(startedAt.getUTCMonth() + 1)}/${pad(startedAt.getUTCDate())}`;
  return `${sourcePrefix(prefix, source)}${dir}/${source}_${timestampLabel(startedAt)}Z.${format}${STORED_SUFFIX}`;
}

/** The base of a backup key without its format: companions hang off it. */
function backupStem(key: string): string {
  return key.replace(/\.[a-z]+\.zst\.age$/, '');
}

export function manifestKeyFor(backupKey: string): string {
  return `${backupKey}${MANIFEST_SUFFIX}`;
}

/** A backup's users and roles companion: JSON beside a MongoDB archive, SQL beside the others. */
export function globalsKeyFor(backupKey: string): string {
  const json = backupKey.endsWith(`.${DumpFormat.MONGO_ARCHIVE}${STORED_SUFFIX}`);
  return `${backupStem(backupKey)}${json ? GLOBALS_JSON_SUFFIX : GLOBALS_SUFFIX}`;
}

const BACKUP_KEY = /\/([a-z0-9-]{1,48})_(\d{4})-(\d{2})-(\d{2})_(\d{2})-(\d{2})-(\d{2})Z\.([a-z]+)\.zst\.age$/;

/** Reads the source, start time and format back out of a backup key, or undefined if it is not one. */
export function parseBackupKey(key: string): { source: string; startedAt: Date; format: string } | undefined {
  const m = BACKUP_KEY.exec(key);
  if (!m) return undefined;
  const [, source, y, mo, d, h, mi, s, format] = m;
  return { source, startedAt: new Date(Date.UTC(+y, +mo - 1, +d, +h, +mi, +s)), format };
}

/** The key prefix that holds one UTC day of a source's backups: lets readers list a bounded slice. */
export function dayPrefix(prefix: string | undefined, source: string, day: Date): string {
  return `${sourcePrefix(prefix, source)}${day.getUTCFullYear()}/${pad(day.getUTCMonth() + 1)}/${pad(day.getUTCDate())}/`;
}
