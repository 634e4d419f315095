/**
 * `restorable wal-fetch <file> <dest>`: PostgreSQL's restore_command, the way back from wal-push.
 * `{prefix}{source}/wal/{file}.zst.age` → age -d → zstd -d → a temporary file beside `dest`, whose SHA-256 must be the
 * one wal-push recorded (and the stored bytes theirs) before it is renamed to `dest`: PostgreSQL never sees an
 * unverified file, nor part of one.
 *
 * PostgreSQL reads restore_command's exit status: non-zero means "not in the archive", and it asks for files that do
 * not exist (the next timeline's history file, the segment after the last) to learn where the archive ends. So a file
 * the archive does not hold exits 1 with one line and nothing else. Any other failure (a damaged object, an identity
 * that does not open it, S3 unreachable, a bad command line) exits WAL_FETCH_FAILED_EXIT, above 125, which PostgreSQL
 * treats as a hard failure and stops recovery on, instead of taking the file as absent and ending recovery early at a
 * point short of what the archive holds.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { WAL_METADATA, sourceNameProblem, walFileProblem, walKey } from '../../../lib/contract';
import { CommandSpec, ParsedArgs, SOURCE_OPTIONS } from '../shared/args';
import { onAbort } from '../shared/cleanup';
import { AgentError, UsageError } from '../shared/errors';
import { log } from '../shared/log';
import { ProcessPipeline } from '../shared/pipeline';
import { getObject } from '../shared/s3';
import { requireTools } from '../shared/tools';
import { IDENTITY_OPTIONS, Identity, resolveIdentity } from '../restore/identity';
import { decompressStage, decryptStage, explainDecryptFailure } from '../restore/decrypt';
import { VerifyingTap } from '../restore/download';
import { digestFile, publishFile } from '../wal/files';

export const WAL_FETCH_COMMAND: CommandSpec = {
  name: 'wal-fetch',
  summary: 'Fetch one archived PostgreSQL WAL file, as restore_command (\'restorable wal-fetch %f %p --source … --bucket … --identity-file …\'): ' +
    'decrypt and decompress it, and put it at the destination only once its SHA-256 is the one recorded when it was archived. ' +
    'Exits 1 for a file the archive does not hold, 255 for any other failure (PostgreSQL then stops recovery).',
  positionals: [
    { name: 'file', description: 'the WAL file\'s name (restore_command\'s %f)' },
    { name: 'dest', description: 'where to put it (restore_command\'s %p: a path relative to the data directory)' },
  ],
  options: {
    ...SOURCE_OPTIONS,
    ...IDENTITY_OPTIONS,
  },
};

/**
 * The exit status of every wal-fetch failure but "not in the archive": above 125, so that PostgreSQL stops recovery
 * (xlogarchive.c treats such a status, like a signal, as fatal) rather than end it early and promote.
 */
export const WAL_FETCH_FAILED_EXIT = 255;

/** The archive does not hold the file PostgreSQL asked for: an ordinary answer to restore_command, exit 1. */
export class WalNotArchived extends AgentError {
  constructor(message: string) {
    super(message, 1);
    this.name = 'WalNotArchived';
  }
}

/** wal-fetch's exit status for a failure: 1 only for a file not in the archive. */
export function walFetchExitCode(err: unknown): number {
  return err instanceof WalNotArchived ? 1 : WAL_FETCH_FAILED_EXIT;
}

export interface WalFetchResult {
  readonly file: string;
  readonly key: string;
  readonly dest: string;
  readonly size: number;
  readonly sha256: string;
}

export interface WalFetchDeps {
  readonly s3: S3Client;
  /** A client for the identity secret, in the region its ARN names. */
  readonly secrets: (secretId: string) => SecretsManagerClient;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;
/** The largest WAL file fetched: segments are at most 1 GiB (PostgreSQL's --wal-segsize limit). */
export const MAX_WAL_BYTES = 1024 * 1024 * 1024;

export async function runWalFetch(args: ParsedArgs, deps: WalFetchDeps): Promise<WalFetchResult> {
  const file = args.positional('file');
  const fileProblem = walFileProblem(file);
  if (fileProblem) throw new UsageError(fileProblem);
  const dest = resolve(args.positional('dest'));
  const source = args.requiredString('source');
  const nameProblem = sourceNameProblem(source);
  if (nameProblem) throw new UsageError(nameProblem);
  const bucket = args.requiredString('bucket');
  const identityFile = args.string('identity-file');
  const identitySecret = args.string('identity-secret-id');
  if ((identityFile === undefined) === (identitySecret === undefined)) {
    throw new UsageError('give exactly one of --identity-file FILE or --identity-secret-id ID (the age identity that opens the archive)');
  }
  requireTools(['age', 'zstd']);

  const key = walKey(args.string('prefix'), source, file);
  return fetchWalFile(deps.s3, bucket, key, file, dest, () => resolveIdentity(identityFile, identitySecret, deps.secrets));
}

/**
 * Fetches one stored object of the WAL's kind (a WAL file, a streamed binlog: the same metadata) to `dest`, at most
 * `maxSize` bytes, verified: the stored bytes against the SHA-256 recorded with them, the
 * decrypted file against its recorded plaintext SHA-256 and size, before it is renamed into place. `openIdentity` is
 * asked for only once the object exists (a file not in the archive needs no key). Throws WalNotArchived when the
 * object does not exist.
 */
export async function fetchWalFile(s3: S3Client, bucket: string, key: string, file: string, dest: string,
  openIdentity: () => Promise<Identity>, maxSize = MAX_WAL_BYTES): Promise<WalFetchResult> {
  const where = `s3://${bucket}/${key}`;
  const object = await getObject(s3, bucket, key);
  if (!object) throw new WalNotArchived(`${file} is not in the archive (${where})`);
  const body = object.Body as Readable;
  const metadata = object.Metadata ?? {};
  const plaintextSha256 = metadata[WAL_METADATA.plaintextSha256];
  const plaintextSize = Number(metadata[WAL_METADATA.plaintextSize]);
  const storedSha256 = metadata[WAL_METADATA.sha256];
  if (!SHA256_HEX.test(plaintextSha256 ?? '') || !SHA256_HEX.test(storedSha256 ?? '') || !Number.isSafeInteger(plaintextSize)) {
    body.destroy();
    throw new AgentError(`${where} does not record the SHA-256s and size wal-push writes (x-amz-meta-${WAL_METADATA.plaintextSha256}, ` +
      `-${WAL_METADATA.sha256}, -${WAL_METADATA.plaintextSize}): refusing to hand on a file that cannot be verified`);
  }
  if (plaintextSize < 0 || plaintextSize > maxSize) {
    body.destroy();
    throw new AgentError(`${where} records a size of ${plaintextSize} bytes (x-amz-meta-${WAL_METADATA.plaintextSize}), more than the ` +
      `${maxSize} bytes such a file may hold here: refusing to fetch it`);
  }

  let identity;
  try {
    identity = await openIdentity();
  } catch (err) {
    body.destroy();
    throw err;
  }
  // Beside dest, so that the rename is atomic; a name PostgreSQL ignores in pg_wal.
  const tmp = join(dirname(dest), `.${basename(dest)}.restorable-${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
  const removeTmp = () => rmSync(tmp, { force: true });
  const forget = onAbort(removeTmp);
  try {
    // The stored bytes must be the ones wal-push sent: a mismatch stops age and zstd before they finish.
    const tap = new VerifyingTap(where, { size: object.ContentLength ?? -1, sha256: storedSha256! }, () => pipeline.kill());
    body.on('error', (err) => {
      tap.downloadError = err;
      tap.destroy(err);
    }).pipe(tap);
    tap.on('close', () => body.destroy());
    const pipeline = new ProcessPipeline([decryptStage(identity.file), decompressStage()], { input: tap, captureOutput: true });
    // Written by the agent, counted as it goes: an object that decompresses past its recorded size is stopped there,
    // not once the disk has filled.
    const output = pipeline.output!;
    const out = createWriteStream(tmp, { flags: 'wx', mode: 0o600 });
    const written = new Promise<void>((done, failed) => {
      out.on('error', (err) => {
        pipeline.kill();
        failed(err);
      });
      out.on('close', done);
    });
    let bytes = 0;
    let overflow = false;
    output.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > plaintextSize && !overflow) {
        overflow = true;
        pipeline.kill();
        output.unpipe(out);
        output.destroy();
        out.destroy();
      }
    });
    output.pipe(out);
    const tooLong = () => new AgentError(`${file} from ${where} decompresses to more than the ${plaintextSize} bytes recorded when it was ` +
      `archived: stopped there; nothing was written to ${dest}`);
    try {
      await pipeline.done;
    } catch (err) {
      if (overflow) throw tooLong();
      // What went wrong with the bytes themselves says more than age's or zstd's reaction to it.
      if (tap.problem) throw new AgentError(`${tap.problem}: the stored object is damaged; nothing was written to ${dest}`);
      if (tap.downloadError) throw new AgentError(`downloading ${where} failed: ${tap.downloadError.message}; nothing was written to ${dest}`);
      throw explainDecryptFailure(err, where, undefined);
    } finally {
      await written.catch(() => undefined);
    }
    if (overflow) throw tooLong();
    await written;
    if (tap.problem) throw new AgentError(`${tap.problem}: the stored object is damaged; nothing was written to ${dest}`);
    const restored = await digestFile(tmp);
    if (restored.sha256 !== plaintextSha256 || restored.size !== plaintextSize) {
      throw new AgentError(`${file} from ${where} decrypts to ${restored.size} bytes with SHA-256 ${restored.sha256}, but ${plaintextSize} bytes ` +
        `with SHA-256 ${plaintextSha256} were archived: nothing was written to ${dest}`);
    }
    publishFile(tmp, dest);
    log.info('wal file fetched', { file, key, size: restored.size });
    return { file, key, dest, size: restored.size, sha256: restored.sha256 };
  } catch (err) {
    removeTmp();
    throw err;
  } finally {
    identity.release();
    forget();
  }
}

export function formatWalFetchResult(r: WalFetchResult): string {
  return `fetched ${r.file} to ${r.dest} (${r.size} bytes, SHA-256 ${r.sha256} as archived)`;
}
