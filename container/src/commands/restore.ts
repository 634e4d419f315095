/**
 * `restorable restore`: a backup back into a database, at 3 a.m., without surprises. The work is in
 * ../restore/restore.ts (shared with restore-test); here are the options and the words.
 */
import { tmpdir } from 'node:os';
import { S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { ARCHIVE_OPTIONS, retrievalOptions } from '../restore/archive';
import { CommandSpec, OptionKind, ParsedArgs } from '../shared/args';
import { CONNECTION_OPTIONS, MONGODB_CONNECTION_OPTIONS, resolveConnection } from '../shared/connection';
import { SELECTION_OPTIONS, backupLocation } from '../restore/download';
import { UsageError } from '../shared/errors';
import { IDENTITY_OPTIONS, resolveIdentity } from '../restore/identity';
import { RestoreMode, RestoreResult, restoreBackup } from '../restore/restore';
import { PitrResult, formatPitrResult, runPitrRestore } from '../pitr/restore';
import { BinlogPitrResult, formatBinlogPitrResult, runBinlogPitrRestore } from '../binlog-pitr/restore';
import { Engine, binlogPrefix } from '../../../lib/contract';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { s3Problem } from '../shared/s3';

export const RESTORE_COMMAND: CommandSpec = {
  name: 'restore',
  summary: 'Restore a backup (latest, --key or --at; as stored at a time with --as-of) into a database: verified against its manifest, streamed or spooled. ' +
    'With --to TIME|latest, a point-in-time restore: a PostgreSQL source\'s into --data-dir from a base backup and the archived WAL; a MariaDB ' +
    'source whose binlogs are streamed into --database, from the newest dump with binlog coordinates and the binlogs after it.',
  options: {
    ...SELECTION_OPTIONS,
    ...IDENTITY_OPTIONS,
    ...CONNECTION_OPTIONS,
    ...MONGODB_CONNECTION_OPTIONS,
    'database': { kind: OptionKind.STRING, placeholder: 'NAME', description: 'target database; it must exist (MongoDB: may not yet) and be empty unless --clean' },
    'jobs': { kind: OptionKind.STRING, placeholder: 'N', description: 'spool the decrypted dump to disk, verify it, then pg_restore -j N (default 1: stream)' },
    'spool-dir': { kind: OptionKind.STRING, placeholder: 'DIR', description: 'where --jobs spools the decrypted dump (default: the temporary directory)' },
    'with-globals': { kind: OptionKind.FLAG, description: 'first create the backup\'s roles/users and grants, skipping those that exist' },
    'clean': { kind: OptionKind.FLAG, description: 'allow a non-empty target: drop and replace the objects the backup holds' },
    'owner': { kind: OptionKind.STRING, placeholder: 'ROLE', description: 'PostgreSQL, connected as a superuser: the role (without superuser rights) that owns what the restore creates; the backup\'s SQL runs with its rights' },
    'load-as-connected-user': { kind: OptionKind.FLAG, description: 'run the backup\'s SQL with the connecting user\'s rights even when they reach beyond its databases (a PostgreSQL superuser, a MariaDB login with FILE, SUPER or SET USER): only for a backup you trust' },
    ...ARCHIVE_OPTIONS,
    'to': { kind: OptionKind.STRING, placeholder: 'TIME|latest', description: 'point-in-time restore to this ISO 8601 time, or to the newest point stored. PostgreSQL (WAL-archived): needs --data-dir, and --port to start the server. ' +
      'MariaDB (binlogs streamed): needs --database; binlog times are whole seconds, so every transaction whose time is at or before TIME\'s second is replayed, in binlog order, up to the first after it' },
    'data-dir': { kind: OptionKind.STRING, placeholder: 'DIR', description: 'with --to: the new data directory (absent or empty)' },
    'wal-dir': { kind: OptionKind.STRING, placeholder: 'DIR', description: 'with --to: where the agent puts verified WAL for the server to replay (default DIR.wal)' },
    'pg-bin': { kind: OptionKind.STRING, placeholder: 'DIR', description: 'with --to and --port: the bin directory of a server of the source\'s major version (default: postgres on PATH)' },
    'json': { kind: OptionKind.FLAG, description: 'print the result as JSON' },
  },
};

type Deps = { readonly s3: S3Client; readonly secrets?: () => SecretsManagerClient };

/** Whether the store holds streamed binlogs of the source: then `--to` is a MariaDB point-in-time restore. */
async function hasBinlogs(s3: S3Client, bucket: string, prefix: string | undefined, source: string): Promise<boolean> {
  const base = binlogPrefix(prefix, source);
  try {
    return ((await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: base, MaxKeys: 1 }))).KeyCount ?? 0) > 0;
  } catch (err) {
    throw s3Problem('ListObjectsV2', bucket, base, err);
  }
}

/** `restore --to` of a MariaDB source whose binlogs are streamed: a dump, then the binlogs after it, into --database. */
async function runBinlogPointInTime(args: ParsedArgs, deps: Deps): Promise<BinlogPitrResult> {
  const other = ['key', 'at', 'version-id', 'as-of', 'jobs', 'with-globals', 'owner', 'data-dir', 'wal-dir', 'pg-bin', 'retrieval-tier', 'wait']
    .filter((name) => args.string(name) !== undefined || args.flag(name));
  if (other.length) {
    throw new UsageError(`--to restores the newest dump before the time and replays the binlogs after it: leave out ${other.map((n) => `--${n}`).join(', ')}`);
  }
  if (args.string('database') === undefined) throw new UsageError('--to needs --database NAME: the (empty) database the dump and the binlogs go into');
  const secrets = deps.secrets ?? (() => new SecretsManagerClient({}));
  const identity = await resolveIdentity(args.string('identity-file'), args.string('identity-secret-id'), secrets);
  try {
    return await runBinlogPitrRestore({
      bucket: args.requiredString('bucket'), prefix: args.string('prefix'), source: args.requiredString('source'), to: args.requiredString('to'),
      identityFile: identity.file, dropIdentity: () => identity.release(), clean: args.flag('clean'), asConnectedUser: args.flag('load-as-connected-user'),
      workDir: args.string('spool-dir'), connect: () => resolveConnection(Engine.MYSQL, args, process.env, deps.secrets?.()),
    }, deps);
  } finally {
    identity.release();
  }
}

/** `restore --to`: the point-in-time branch; the dump options do not apply. */
async function runPointInTime(args: ParsedArgs, deps: { readonly s3: S3Client; readonly secrets?: () => SecretsManagerClient }): Promise<PitrResult> {
  const dumpOnly = ['key', 'at', 'version-id', 'as-of', 'database', 'jobs', 'spool-dir', 'with-globals', 'clean', 'owner', 'load-as-connected-user']
    .filter((name) => args.string(name) !== undefined || args.flag(name));
  if (dumpOnly.length) throw new UsageError(`--to restores a base backup and WAL, not a dump: leave out ${dumpOnly.map((n) => `--${n}`).join(', ')}`);
  const dataDir = args.string('data-dir');
  if (!dataDir) throw new UsageError('--to needs --data-dir DIR: the new data directory the server will run from');
  const portText = args.string('port');
  const port = portText === undefined ? undefined : Number(portText);
  if (port !== undefined && (!Number.isInteger(port) || port <= 0 || port > 65535)) throw new UsageError(`--port must be a TCP port number (got '${portText}')`);
  const secrets = deps.secrets ?? (() => new SecretsManagerClient({}));
  const identity = await resolveIdentity(args.string('identity-file'), args.string('identity-secret-id'), secrets);
  try {
    return await runPitrRestore({
      bucket: args.requiredString('bucket'), prefix: args.string('prefix'), source: args.requiredString('source'), to: args.requiredString('to'),
      dataDir, walDir: args.string('wal-dir'), identityFile: identity.file, dropIdentity: () => identity.release(), port, pgBin: args.string('pg-bin'),
    }, deps);
  } finally {
    identity.release();
  }
}

export async function runRestore(args: ParsedArgs, deps: Deps): Promise<RestoreResult | PitrResult | BinlogPitrResult> {
  if (args.string('to') !== undefined) {
    // What the store holds decides: a source with streamed binlogs is MariaDB's; otherwise base backups and WAL.
    const binlogs = args.string('data-dir') === undefined && await hasBinlogs(deps.s3, args.requiredString('bucket'), args.string('prefix'), args.requiredString('source'));
    return binlogs ? runBinlogPointInTime(args, deps) : runPointInTime(args, deps);
  }
  const location = backupLocation(args);
  const jobsText = args.string('jobs') ?? '1';
  const jobs = Number(jobsText);
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > 64) throw new UsageError(`--jobs must be a whole number from 1 to 64 (got '${jobsText}')`);
  const retrieval = retrievalOptions(args);
  const secrets = deps.secrets ?? (() => new SecretsManagerClient({}));
  const owner = args.string('owner');
  if (owner !== undefined && args.flag('load-as-connected-user')) throw new UsageError('give --owner ROLE or --load-as-connected-user, not both');
  const identity = await resolveIdentity(args.string('identity-file'), args.string('identity-secret-id'), secrets);
  try {
    return await restoreBackup({
      location, identityFile: identity.file, jobs, clean: args.flag('clean'), withGlobals: args.flag('with-globals'),
      spoolDir: args.string('spool-dir') ?? tmpdir(), retrieval, owner, asConnectedUser: args.flag('load-as-connected-user'),
      connect: (engine) => resolveConnection(engine, args, process.env, deps.secrets?.()),
    }, deps);
  } finally {
    identity.release();
  }
}

export function formatRestoreResult(result: RestoreResult | PitrResult | BinlogPitrResult): string {
  if ('baseBackupKey' in result) return formatPitrResult(result);
  if ('dumpKey' in result) return formatBinlogPitrResult(result);
  const r = result;
  const rows = r.tables.reduce((sum, t) => sum + t.rows, 0);
  const globals = r.globals ? `; roles created: ${r.globals.created.join(', ') || 'none'}, already there: ${r.globals.skipped.join(', ') || 'none'}` : '';
  const refused = [...r.refused, ...(r.globals?.refused ?? [])];
  const mongo = r.engine === Engine.MONGODB;
  return `restored s3://${r.bucket}/${r.key}${r.versionId ? ` (version ${r.versionId})` : ''} (backup of ${r.backupStartedAt}) into ${r.target}: ` +
    `${r.tables.length} ${mongo ? 'collections' : 'tables'}, ${rows} ${mongo ? 'documents' : 'rows'} ` +
    `per the manifest, SHA-256 verified, ${r.mode}${r.mode === RestoreMode.SPOOLED ? ` with ${r.jobs} jobs` : ''}, ${r.durationSeconds.toFixed(1)} s${globals}` +
    `; ${mongo ? 'mongorestore loaded it' : 'the backup\'s SQL ran'} as ${r.loadedAs}${r.installed.length ? `; extensions installed first: ${r.installed.join(', ')}` : ''}` +
    (refused.length ? `\nleft out (a backup is untrusted input: what needs more rights than the load has is not run):\n${refused.map((x) => `  - ${x.what}: ${x.why}`).join('\n')}` : '');
}
