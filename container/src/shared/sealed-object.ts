/**
 * Storing one local file as a sealed object, as the WAL archiver and the binlog streamer both do: zstd → age → a sealed
 * file in a work directory (so that its own SHA-256 is known before it is sent), one PutObject with If-None-Match, S3's
 * own SHA-256 check of the bytes it received, a tier tag set at creation and the checksums as user metadata
 * (WAL_METADATA's names), then a HEAD that reads back what S3 holds. A single PUT is all or nothing: there is never a
 * partial object, nor a multipart upload to abort.
 *
 * A name already taken decides by what it holds: the same file (by its recorded plaintext SHA-256) is a success
 * without a write (a retry after a crash); anything else is the caller's conflict, and the stored object stays as it is.
 */
import { createReadStream, createWriteStream, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline as streamPipeline } from 'node:stream/promises';
import { ChecksumAlgorithm, HeadObjectCommandOutput, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { TIER_TAG, Tier, WAL_METADATA } from '../../../lib/contract';
import { Recipient, compressStage, compressedInputBytes, encryptStage } from '../backup/encrypt';
import { DigestTap, FileDigest } from '../wal/files';
import { AgentError } from './errors';
import { ProcessPipeline } from './pipeline';
import { headObject, s3Problem, setLegalHold, taggingHeader } from './s3';
import { AGENT_VERSION } from './version';

export interface SealedObject {
  readonly s3: S3Client;
  readonly bucket: string;
  readonly key: string;
  /** The name the object stands for (a WAL or binlog file name), for messages. */
  readonly file: string;
  /** The file to read. */
  readonly path: string;
  /** Only the first `length` bytes of it (a file still growing); the whole file when absent. */
  readonly length?: number;
  /** What the file must read as, when the caller digested it before: a file that reads differently while it is sealed changed under the agent, and nothing is stored. */
  readonly expected?: FileDigest;
  readonly recipient: Recipient;
  readonly level: number;
  /** Where the sealed file is written for the length of the PUT, then removed. */
  readonly workDir: string;
  readonly tier: Tier;
  /** User metadata besides the checksums, sizes, recipient and agent version. */
  readonly metadata?: Readonly<Record<string, string>>;
  /** Place an Object Lock legal hold on the stored object (also on one already stored by an earlier try). */
  readonly legalHold?: boolean;
  /** The error for a name that holds another file: `recorded` is its plaintext SHA-256 and size, when it records them. */
  readonly conflict: (where: string, recorded: { sha256?: string; size?: string }, plain: FileDigest) => AgentError;
  /** What is logged once stored. */
  readonly logStored: (fields: Record<string, string | number>) => void;
  readonly logAlreadyStored: (fields: Record<string, string | number>) => void;
}

export interface StoredObject {
  readonly file: string;
  readonly bucket: string;
  readonly key: string;
  /** False when the store already held this very file (a retry after a crash): nothing was written. */
  readonly stored: boolean;
  readonly size: number;
  readonly sha256: string;
  readonly plaintextSize: number;
  readonly plaintextSha256: string;
}

/** The file could not be read (ENOENT: a growing file finished and renamed in between). */
export class SealReadError extends AgentError {
  constructor(path: string, readonly cause: NodeJS.ErrnoException) {
    super(`could not read ${path}: ${cause.message}; nothing stored`);
    this.name = 'SealReadError';
  }
}

function base64OfHex(hex: string): string {
  return Buffer.from(hex, 'hex').toString('base64');
}

function alreadyStored(head: HeadObjectCommandOutput, o: SealedObject, plain: FileDigest): StoredObject {
  const metadata = head.Metadata ?? {};
  const recorded = metadata[WAL_METADATA.plaintextSha256];
  if (recorded !== plain.sha256) throw o.conflict(`s3://${o.bucket}/${o.key}`, { sha256: recorded, size: metadata[WAL_METADATA.plaintextSize] }, plain);
  o.logAlreadyStored({ file: o.file, key: o.key });
  return {
    file: o.file, bucket: o.bucket, key: o.key, stored: false, size: head.ContentLength ?? 0, sha256: metadata[WAL_METADATA.sha256] ?? '',
    plaintextSize: plain.size, plaintextSha256: plain.sha256,
  };
}

/** Compresses and encrypts the file (or its first `length` bytes) into `sealed`; the digests of what was read and written. */
async function seal(o: SealedObject, sealed: string): Promise<{ read: FileDigest; written: FileDigest; zstdRead: number }> {
  const input = new DigestTap();
  const source = createReadStream(o.path, o.length === undefined ? {} : { start: 0, end: o.length - 1 });
  let readError: NodeJS.ErrnoException | undefined;
  source.on('error', (err) => {
    readError = err;
    input.destroy(err);
  });
  source.pipe(input);
  const pipeline = new ProcessPipeline([compressStage(o.level), encryptStage(o.recipient)], { input, captureOutput: true });
  const output = new DigestTap();
  try {
    await Promise.all([pipeline.done, streamPipeline(pipeline.output!, output, createWriteStream(sealed, { mode: 0o600 }))]);
  } catch (err) {
    pipeline.kill();
    await pipeline.done.catch(() => undefined);
    if (readError) throw new SealReadError(o.path, readError);
    throw err instanceof AgentError ? err : new AgentError(`could not read ${o.path} or seal it: ${(err as Error).message}`);
  }
  // A read that failed ends zstd's input early, which zstd takes for the end: the error decides.
  if (readError) throw new SealReadError(o.path, readError);
  return { read: input.digest(), written: output.digest(), zstdRead: compressedInputBytes(pipeline.stderrOf('zstd')) };
}

/** Reads the stored object back (HEAD) and compares what S3 holds with what was sent. */
async function verifyStored(o: SealedObject, sent: FileDigest, plain: FileDigest): Promise<void> {
  const where = `s3://${o.bucket}/${o.key}`;
  const head = await headObject(o.s3, o.bucket, o.key);
  if (!head) throw new AgentError(`${where} was stored but a HEAD right after does not find it: not reporting it stored`);
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
  if (problems.length) throw new AgentError(`${where} does not match what was sent: it ${problems.join('; ')}. Not reporting it stored`);
}

async function putSealed(o: SealedObject, sealed: string, stored: FileDigest, plain: FileDigest): Promise<StoredObject | undefined> {
  try {
    await o.s3.send(new PutObjectCommand({
      Bucket: o.bucket,
      Key: o.key,
      Body: createReadStream(sealed),
      ContentLength: stored.size,
      ContentType: 'application/octet-stream',
      // S3 refuses the object unless the bytes it received have this SHA-256.
      ChecksumSHA256: base64OfHex(stored.sha256),
      // Named too, as S3 wants for a bucket with a default Object Lock retention (the SDK sends the value above).
      ChecksumAlgorithm: ChecksumAlgorithm.SHA256,
      Metadata: {
        ...o.metadata,
        [WAL_METADATA.plaintextSha256]: plain.sha256,
        [WAL_METADATA.plaintextSize]: String(plain.size),
        [WAL_METADATA.sha256]: stored.sha256,
        [WAL_METADATA.recipientFingerprint]: o.recipient.fingerprint,
        [WAL_METADATA.agentVersion]: AGENT_VERSION,
      },
      // The tier's lifecycle rule expires the object with the backups that need it.
      Tagging: taggingHeader({ [TIER_TAG]: o.tier }),
      // Write-once: the store's bucket policy refuses any other creation.
      IfNoneMatch: '*',
    }));
    return undefined;
  } catch (err) {
    const status = (err as S3ServiceException)?.$metadata?.httpStatusCode;
    // 412: the name is taken (a retry, or a concurrent store of the same file); 409: a concurrent conditional write in flight.
    if (status === 412 || status === 409) {
      const raced = await headObject(o.s3, o.bucket, o.key);
      if (raced) return alreadyStored(raced, o, plain);
    }
    throw s3Problem('PutObject', o.bucket, o.key, err);
  }
}

/** Seals, stores, verifies (and holds) one file; see the file's comment. */
export async function storeSealedObject(o: SealedObject): Promise<StoredObject> {
  const sealed = join(o.workDir, `${o.file}.zst.age`);
  try {
    const { read, written, zstdRead } = await seal(o, sealed);
    const expected = o.expected ?? { size: o.length ?? read.size, sha256: read.sha256 };
    if (read.sha256 !== expected.sha256 || read.size !== expected.size || zstdRead !== read.size) {
      throw new AgentError(`${o.path} changed while it was being stored (read ${expected.size} bytes with SHA-256 ${expected.sha256}, then ` +
        `${read.size} bytes with SHA-256 ${read.sha256}): nothing stored`);
    }
    const result = await putSealed(o, sealed, written, read) ?? await (async () => {
      await verifyStored(o, written, read);
      o.logStored({ file: o.file, key: o.key, size: written.size, plaintextSize: read.size });
      return { file: o.file, bucket: o.bucket, key: o.key, stored: true, size: written.size, sha256: written.sha256, plaintextSize: read.size, plaintextSha256: read.sha256 };
    })();
    if (o.legalHold) await setLegalHold(o.s3, o.bucket, o.key, true);
    return result;
  } finally {
    rmSync(sealed, { force: true });
  }
}
