/**
 * `restorable restore`: a backup back into a database, at 3 a.m., without surprises. The work is in
 * ../restore/restore.ts (shared with restore-test); here are the options and the words.
 */
import { tmpdir } from 'node:os';
import { S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { ARCHIVE_OPTIONS, retrievalOptions } from '../restore/archive';
import { CommandSpec, OptionKind, ParsedArgs } from '../shared/args';
import { CONNECTION_OPTIONS, resolveConnection } from '../shared/connection';
import { SELECTION_OPTIONS, backupLocation } from '../restore/download';
import { UsageError } from '../shared/errors';
import { IDENTITY_OPTIONS, resolveIdentity } from '../restore/identity';
import { RestoreMode, RestoreResult, restoreBackup } from '../restore/restore';

export const RESTORE_COMMAND: CommandSpec = {
  name: 'restore',
  summary: 'Restore a backup (latest, --key or --at; as stored at a time with --as-of) into a database: verified against its manifest, streamed or spooled.',
  options: {
    ...SELECTION_OPTIONS,
    ...IDENTITY_OPTIONS,
    ...CONNECTION_OPTIONS,
    'database': { kind: OptionKind.STRING, placeholder: 'NAME', description: 'target database; it must exist and be empty unless --clean' },
    'jobs': { kind: OptionKind.STRING, placeholder: 'N', description: 'spool the decrypted dump to disk, verify it, then pg_restore -j N (default 1: stream)' },
    'spool-dir': { kind: OptionKind.STRING, placeholder: 'DIR', description: 'where --jobs spools the decrypted dump (default: the temporary directory)' },
    'with-globals': { kind: OptionKind.FLAG, description: 'first create the backup\'s roles/users and grants, skipping those that exist' },
    'clean': { kind: OptionKind.FLAG, description: 'allow a non-empty target: drop and replace the objects the backup holds' },
    'owner': { kind: OptionKind.STRING, placeholder: 'ROLE', description: 'PostgreSQL, connected as a superuser: the role (without superuser rights) that owns what the restore creates; the backup\'s SQL runs with its rights' },
    'load-as-connected-user': { kind: OptionKind.FLAG, description: 'run the backup\'s SQL with the connecting user\'s rights even when they reach beyond its databases (a PostgreSQL superuser, a MariaDB login with FILE, SUPER or SET USER): only for a backup you trust' },
    ...ARCHIVE_OPTIONS,
    'json': { kind: OptionKind.FLAG, description: 'print the result as JSON' },
  },
};

export async function runRestore(args: ParsedArgs, deps: { readonly s3: S3Client; readonly secrets?: () => SecretsManagerClient }): Promise<RestoreResult> {
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

export function formatRestoreResult(r: RestoreResult): string {
  const rows = r.tables.reduce((sum, t) => sum + t.rows, 0);
  const globals = r.globals ? `; roles created: ${r.globals.created.join(', ') || 'none'}, already there: ${r.globals.skipped.join(', ') || 'none'}` : '';
  const refused = [...r.refused, ...(r.globals?.refused ?? [])];
  return `restored s3://${r.bucket}/${r.key}${r.versionId ? ` (version ${r.versionId})` : ''} (backup of ${r.backupStartedAt}) into ${r.target}: ${r.tables.length} tables, ${rows} rows ` +
    `per the manifest, SHA-256 verified, ${r.mode}${r.mode === RestoreMode.SPOOLED ? ` with ${r.jobs} jobs` : ''}, ${r.durationSeconds.toFixed(1)} s${globals}` +
    `; the backup's SQL ran as ${r.loadedAs}${r.installed.length ? `; extensions installed first: ${r.installed.join(', ')}` : ''}` +
    (refused.length ? `\nleft out (a backup is untrusted input: what needs more rights than the load has is not run):\n${refused.map((x) => `  - ${x.what}: ${x.why}`).join('\n')}` : '');
}
