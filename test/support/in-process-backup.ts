/**
 * A PostgreSQL backup run in this process rather than as a child, so that a test can watch the S3 client's
 * requests with SDK middleware (their order, their headers), or answer one where no server can be made to fail.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { parseCommandArgs } from '../../container/src/shared/args';
import { BACKUP_COMMAND, BackupResult, runBackup } from '../../container/src/commands/backup';
import { PG } from './postgres';

export interface InProcessBackup {
  readonly s3: S3Client;
  readonly bucket: string;
  readonly recipient: string;
  readonly database: string;
}

/** Backs up `database` as `source`; returns the result and everything the agent logged to stderr. */
export async function backupInProcess(target: InProcessBackup, source: string, extra: string[] = []): Promise<{ result: BackupResult; logged: string }> {
  // Keys have one-second resolution: each backup of a source starts in a second of its own.
  await new Promise((resolve) => setTimeout(resolve, 1100 - (Date.now() % 1000)));
  const args = parseCommandArgs(BACKUP_COMMAND, ['--source', source, '--engine', 'postgres', '--bucket', target.bucket,
    '--recipient', target.recipient, '--host', PG.host, '--port', String(PG.port), '--user', PG.user, '--database', target.database, ...extra]);
  const logged: string[] = [];
  const stderr = jest.spyOn(process.stderr, 'write').mockImplementation((chunk) => { logged.push(String(chunk)); return true; });
  const savedPassword = process.env.PGPASSWORD;
  process.env.PGPASSWORD = PG.password;
  try {
    return { result: await runBackup(args, { s3: target.s3 }), logged: logged.join('') };
  } finally {
    stderr.mockRestore();
    if (savedPassword === undefined) delete process.env.PGPASSWORD;
    else process.env.PGPASSWORD = savedPassword;
  }
}
