/**
 * `restorable wal-push <path>`: PostgreSQL's archive_command. One WAL file → zstd → age → one write-once
 * S3 object, `{prefix}{source}/wal/{file}.zst.age`, whose user metadata records the SHA-256 of the file as PostgreSQL
 * wrote it and of the stored bytes (WAL_METADATA).
 *
 * PostgreSQL recycles a WAL segment once archive_command exits 0, so 0 means stored and verified (archiveWal in
 * wal/archive.ts: sealed to a temporary file, one conditional PUT with S3's SHA-256 check, a HEAD that reads it back).
 *
 * PostgreSQL retries a file after a crash, possibly one that was stored: the same file again exits 0 without a write
 * (the PUT's If-None-Match refuses it, and the stored object's recorded SHA-256 is compared).
 * A different file under a name already stored is two clusters or timelines archiving into one source, and fails.
 * WAL objects are tagged with the daily tier (WAL_TIER): point-in-time recovery reaches back as far as the daily tier
 * keeps base backups.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { sourceNameProblem, walFileProblem, walKey } from '../../../lib/contract';
import { CommandSpec, OptionKind, ParsedArgs, SOURCE_OPTIONS } from '../shared/args';
import { DEFAULT_ZSTD_LEVEL, RECIPIENT_ENV, RECIPIENT_OPTIONS, recipientFromArgs } from '../backup/encrypt';
import { onAbort } from '../shared/cleanup';
import { AgentError, UsageError } from '../shared/errors';
import { requireTools } from '../shared/tools';
import { ArchivedWal, archiveWal } from '../wal/archive';
import { FileDigest, digestFile } from '../wal/files';

export const WAL_PUSH_COMMAND: CommandSpec = {
  name: 'wal-push',
  summary: 'Archive one PostgreSQL WAL file, as archive_command (\'restorable wal-push %p --source … --bucket …\'): compress, encrypt and ' +
    'store it write-once under {source}/wal/, exiting 0 only once the stored object is verified. Idempotent for a file already ' +
    `stored with the same SHA-256. The recipient may also come from ${RECIPIENT_ENV}.`,
  positionals: [{ name: 'path', description: 'the WAL file to archive (archive_command\'s %p: a path relative to the data directory)' }],
  options: {
    ...SOURCE_OPTIONS,
    ...RECIPIENT_OPTIONS,
    'compression-level': { kind: OptionKind.STRING, placeholder: 'N', description: `zstd level 1-19 (default ${DEFAULT_ZSTD_LEVEL})` },
    'json': { kind: OptionKind.FLAG, description: 'print the result as JSON' },
  },
};

export type WalPushResult = ArchivedWal;

export interface WalPushDeps {
  readonly s3: S3Client;
  readonly env?: NodeJS.ProcessEnv;
}

/** --compression-level, checked: zstd's levels 1 to 19. */
export function compressionLevel(args: ParsedArgs): number {
  const level = Number(args.string('compression-level') ?? DEFAULT_ZSTD_LEVEL);
  if (!Number.isInteger(level) || level < 1 || level > 19) throw new UsageError(`--compression-level must be 1 to 19 (got '${args.string('compression-level')}')`);
  return level;
}

export async function runWalPush(args: ParsedArgs, deps: WalPushDeps): Promise<WalPushResult> {
  const path = args.positional('path');
  const file = basename(path);
  const fileProblem = walFileProblem(file);
  if (fileProblem) throw new UsageError(`refusing to archive ${path}: ${fileProblem}`);
  const source = args.requiredString('source');
  const nameProblem = sourceNameProblem(source);
  if (nameProblem) throw new UsageError(nameProblem);
  const bucket = args.requiredString('bucket');
  const recipient = recipientFromArgs(args, deps.env ?? process.env);
  const level = compressionLevel(args);
  requireTools(['zstd', 'age']);

  let expected: FileDigest;
  try {
    expected = await digestFile(path);
  } catch (err) {
    throw new AgentError(`cannot read the WAL file ${path}: ${(err as Error).message}`);
  }
  // No read before the write: the conditional PUT itself says whether the name is taken (a retry after a crash, rarely),
  // so that the common case is one PUT and one HEAD, and a role that may not list the bucket still tells absent from taken.
  const workDir = mkdtempSync(join(tmpdir(), 'restorable-wal-push-'));
  const remove = () => rmSync(workDir, { recursive: true, force: true });
  const forget = onAbort(remove);
  try {
    return await archiveWal({ s3: deps.s3, bucket, key: walKey(args.string('prefix'), source, file), file, path, expected, recipient, level, workDir });
  } catch (err) {
    // PostgreSQL keeps a file archive_command failed on and tries it again.
    throw err instanceof AgentError && !(err instanceof UsageError) ? new AgentError(`${err.message}; PostgreSQL keeps ${file} and retries`) : err;
  } finally {
    remove();
    forget();
  }
}

export function formatWalPushResult(r: WalPushResult): string {
  return r.stored
    ? `archived ${r.file}: s3://${r.bucket}/${r.key} (${r.size} bytes stored from ${r.plaintextSize}, plaintext SHA-256 ${r.plaintextSha256})`
    : `${r.file} was already archived with the same SHA-256 (${r.plaintextSha256}) at s3://${r.bucket}/${r.key}: nothing written`;
}
