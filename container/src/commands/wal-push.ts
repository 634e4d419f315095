/**
 * `restorable wal-push <path>`: PostgreSQL's archive_command. One WAL file → zstd → age → one write-once
 * S3 object, `{prefix}{source}/wal/{file}.zst.age`, whose user metadata records the SHA-256 of the file as PostgreSQL
 * wrote it and of the stored bytes (WAL_METADATA).
 *
 * PostgreSQL recycles a WAL segment once archive_command exits 0, so 0 means stored and verified: the object is
 * spooled (compressed and encrypted) to a temporary file first, so that its own SHA-256 is known before it is sent,
 * then sent in one PutObject with If-None-Match and S3's own SHA-256 check of the bytes it received, then read back
 * with HEAD. A single PUT is all or nothing: there is never a partial object, nor a multipart upload to abort.
 *
 * PostgreSQL retries a file after a crash, possibly one that was stored: the same file again exits 0 without a write
 * (the PUT's If-None-Match refuses it, and the stored object's recorded SHA-256 is compared).
 * A different file under a name already stored is two clusters or timelines archiving into one source, and fails.
 * WAL objects carry no tier tag: the store's housekeeping keeps untagged objects, and WAL retention (as long as the
 * oldest base backup that needs it) comes with base backups.
 */
import { createReadStream, createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { pipeline as streamPipeline } from 'node:stream/promises';
import { HeadObjectCommandOutput, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { WAL_METADATA, sourceNameProblem, walFileProblem, walKey } from '../../../lib/contract';
import { CommandSpec, OptionKind, ParsedArgs, SOURCE_OPTIONS } from '../shared/args';
import { DEFAULT_ZSTD_LEVEL, RECIPIENT_ENV, RECIPIENT_OPTIONS, Recipient, compressStage, compressedInputBytes, encryptStage, recipientFromArgs } from '../backup/encrypt';
import { onAbort } from '../shared/cleanup';
import { AgentError, UsageError } from '../shared/errors';
import { log } from '../shared/log';
import { ProcessPipeline } from '../shared/pipeline';
import { headObject, s3Problem } from '../shared/s3';
import { requireTools } from '../shared/tools';
import { AGENT_VERSION } from '../shared/version';
import { DigestTap, FileDigest, digestFile } from '../wal/files';

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

export interface WalPushResult {
  readonly file: string;
  readonly bucket: string;
  readonly key: string;
  /** False when the archive already held this very file (a retry after a crash): nothing was written. */
  readonly stored: boolean;
  readonly size: number;
  readonly sha256: string;
  readonly plaintextSize: number;
  readonly plaintextSha256: string;
}

export interface WalPushDeps {
  readonly s3: S3Client;
  readonly env?: NodeJS.ProcessEnv;
}

function base64OfHex(hex: string): string {
  return Buffer.from(hex, 'hex').toString('base64');
}

/**
 * What the archive already holds under this name decides: the same file (by its recorded plaintext SHA-256) is a
 * success without a write; anything else is refused, and the object stays as it is (write-once).
 */
function alreadyStored(head: HeadObjectCommandOutput, file: string, bucket: string, key: string, plain: FileDigest): WalPushResult {
  const metadata = head.Metadata ?? {};
  const recorded = metadata[WAL_METADATA.plaintextSha256];
  const where = `s3://${bucket}/${key}`;
  if (recorded === undefined) {
    throw new AgentError(`${where} already exists but records no plaintext SHA-256 (x-amz-meta-${WAL_METADATA.plaintextSha256}): it was not ` +
      `written by wal-push, so this ${file} cannot be told apart from it. Find out what wrote it; it is kept (keys are write-once)`);
  }
  if (recorded !== plain.sha256) {
    throw new AgentError(`the archive holds a different ${file} at ${where} (SHA-256 ${recorded}, ${metadata[WAL_METADATA.plaintextSize] ?? '?'} ` +
      `bytes) than this server's (SHA-256 ${plain.sha256}, ${plain.size} bytes): another cluster or timeline archives into the same ` +
      'source. Check that --source and --prefix name this cluster alone (a restored copy or a promoted standby must archive ' +
      'under a source of its own), and compare `pg_controldata`\'s "Database system identifier" with the cluster that wrote ' +
      'the archive. The stored object is kept (keys are write-once); PostgreSQL keeps this file and retries until it is resolved');
  }
  log.info('wal file already archived with the same SHA-256; nothing written', { file, key });
  return {
    file, bucket, key, stored: false, size: head.ContentLength ?? 0, sha256: metadata[WAL_METADATA.sha256] ?? '',
    plaintextSize: plain.size, plaintextSha256: plain.sha256,
  };
}

/** Compresses and encrypts the WAL file into `spool`; returns the digests of what was read and what was written. */
async function seal(path: string, spool: string, recipient: Recipient, level: number): Promise<{ read: FileDigest; written: FileDigest; zstdRead: number }> {
  const input = new DigestTap();
  const source = createReadStream(path);
  source.on('error', (err) => input.destroy(err));
  source.pipe(input);
  const pipeline = new ProcessPipeline([compressStage(level), encryptStage(recipient)], { input, captureOutput: true });
  const output = new DigestTap();
  try {
    await Promise.all([pipeline.done, streamPipeline(pipeline.output!, output, createWriteStream(spool, { mode: 0o600 }))]);
  } catch (err) {
    pipeline.kill();
    await pipeline.done.catch(() => undefined);
    throw err instanceof AgentError ? err : new AgentError(`could not read ${path} or spool it: ${(err as Error).message}`);
  }
  return { read: input.digest(), written: output.digest(), zstdRead: compressedInputBytes(pipeline.stderrOf('zstd')) };
}

/** Reads the stored object back (HEAD) and compares what S3 holds with what was sent. */
async function verifyStored(s3: S3Client, bucket: string, key: string, sent: FileDigest, plain: FileDigest): Promise<void> {
  const where = `s3://${bucket}/${key}`;
  const head = await headObject(s3, bucket, key);
  if (!head) throw new AgentError(`${where} was stored but a HEAD right after does not find it: not reporting it archived`);
  const metadata = head.Metadata ?? {};
  const problems = [
    head.ContentLength !== sent.size ? `holds ${head.ContentLength ?? 'no'} bytes, ${sent.size} were sent` : undefined,
    metadata[WAL_METADATA.sha256] !== sent.sha256 ? `records SHA-256 ${metadata[WAL_METADATA.sha256] ?? 'none'}, ${sent.sha256} was sent` : undefined,
    metadata[WAL_METADATA.plaintextSha256] !== plain.sha256
      ? `records plaintext SHA-256 ${metadata[WAL_METADATA.plaintextSha256] ?? 'none'}, the file's is ${plain.sha256}` : undefined,
    // S3 checked the bytes against this on receipt; it answers it back where it keeps one (single-part objects).
    head.ChecksumSHA256 !== undefined && head.ChecksumSHA256 !== base64OfHex(sent.sha256)
      ? `has S3 checksum ${head.ChecksumSHA256}, ${base64OfHex(sent.sha256)} was sent` : undefined,
  ].filter((p): p is string => p !== undefined);
  if (problems.length) throw new AgentError(`${where} does not match what was sent: it ${problems.join('; ')}. Not reporting it archived`);
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
  const level = Number(args.string('compression-level') ?? DEFAULT_ZSTD_LEVEL);
  if (!Number.isInteger(level) || level < 1 || level > 19) throw new UsageError(`--compression-level must be 1 to 19 (got '${args.string('compression-level')}')`);
  requireTools(['zstd', 'age']);

  const key = walKey(args.string('prefix'), source, file);
  let plain: FileDigest;
  try {
    plain = await digestFile(path);
  } catch (err) {
    throw new AgentError(`cannot read the WAL file ${path}: ${(err as Error).message}`);
  }
  // No read before the write: the conditional PUT itself says whether the name is taken (a retry after a crash, rarely),
  // so that the common case is one PUT and one HEAD, and a role that may not list the bucket still tells absent from taken.
  const dir = mkdtempSync(join(tmpdir(), 'restorable-wal-push-'));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  const forget = onAbort(remove);
  try {
    const spool = join(dir, `${file}.zst.age`);
    const sealed = await seal(path, spool, recipient, level);
    // PostgreSQL does not change a file it hands to archive_command; if it changed anyway, nothing is stored.
    if (sealed.read.sha256 !== plain.sha256 || sealed.read.size !== plain.size || sealed.zstdRead !== plain.size) {
      throw new AgentError(`${path} changed while it was being archived (read ${plain.size} bytes with SHA-256 ${plain.sha256}, then ` +
        `${sealed.read.size} bytes with SHA-256 ${sealed.read.sha256}): nothing stored; PostgreSQL will retry`);
    }
    const stored = sealed.written;
    try {
      await deps.s3.send(new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: createReadStream(spool),
        ContentLength: stored.size,
        ContentType: 'application/octet-stream',
        // S3 refuses the object unless the bytes it received have this SHA-256.
        ChecksumSHA256: base64OfHex(stored.sha256),
        Metadata: {
          [WAL_METADATA.plaintextSha256]: plain.sha256,
          [WAL_METADATA.plaintextSize]: String(plain.size),
          [WAL_METADATA.sha256]: stored.sha256,
          [WAL_METADATA.recipientFingerprint]: recipient.fingerprint,
          [WAL_METADATA.agentVersion]: AGENT_VERSION,
        },
        // Write-once: the store's bucket policy refuses any other creation.
        IfNoneMatch: '*',
      }));
    } catch (err) {
      const status = (err as S3ServiceException)?.$metadata?.httpStatusCode;
      // 412: the name is taken (a retry, or a concurrent push of the same file); 409: a concurrent conditional write in flight.
      if (status === 412 || status === 409) {
        const raced = await headObject(deps.s3, bucket, key);
        if (raced) return alreadyStored(raced, file, bucket, key, plain);
      }
      throw s3Problem('PutObject', bucket, key, err);
    }
    await verifyStored(deps.s3, bucket, key, stored, plain);
    log.info('wal file archived', { file, key, size: stored.size, plaintextSize: plain.size });
    return { file, bucket, key, stored: true, size: stored.size, sha256: stored.sha256, plaintextSize: plain.size, plaintextSha256: plain.sha256 };
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
