/**
 * Streams a pipeline's output into one S3 object: SHA-256 and size computed on the fly, the tier
 * tag set at creation, memory bounded by queueSize × partSize, and the end of the stream held back
 * until every producer has exited 0, because lib-storage completes the upload (or makes a single
 * PutObject of a small input) as soon as its input ends.
 */
import { createHash } from 'node:crypto';
import { Readable, Transform, TransformCallback } from 'node:stream';
import { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { AgentError } from '../shared/errors';
import { StageFailure } from '../shared/pipeline';
import { s3Problem, taggingHeader } from '../shared/s3';

const MiB = 1024 * 1024;
const MIN_PART = 5 * MiB;
/**
 * The largest part: with 2 parts in flight, lib-storage's buffers stay under ~128 MiB whatever the database's
 * size. 10,000 such parts hold 625 GiB (671 GB) of stored (compressed and encrypted) data.
 */
export const MAX_PART = 64 * MiB;
/** S3's limit on the parts of one multipart upload. */
const S3_MAX_PARTS = 10_000;
/** The largest stored object the capped parts can hold. */
export const MAX_STORED_BYTES = S3_MAX_PARTS * MAX_PART;
/** Below S3's 10,000, so that an estimate that is somewhat low still fits. */
const TARGET_PARTS = 8000;

function gib(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(bytes % 1024 ** 3 === 0 ? 0 : 1)} GiB`;
}

/**
 * A part size for a stream of about `estimatedBytes` (the database's size, a generous bound for its
 * compressed dump), in whole MiB: at least 5 MiB, enough for twice the estimate in 8,000 parts, and at
 * most 64 MiB, so that memory stays flat. Throws before anything is dumped when the estimate is more than
 * 10,000 capped parts can hold.
 */
export function partSizeFor(estimatedBytes: number): number {
  if (estimatedBytes > MAX_STORED_BYTES) {
    throw new AgentError(`the database is estimated at ${gib(estimatedBytes)} (the larger of the server's own estimate and ` +
      `--expected-size), more than one backup object can hold: ${S3_MAX_PARTS.toLocaleString('en-US')} parts of at most ${MAX_PART / MiB} MiB, ` +
      `${gib(MAX_STORED_BYTES)} stored. Split the database into several sources (for example one per schema or database), ` +
      `each under ${gib(MAX_STORED_BYTES)}, or build the agent with a larger MAX_PART (container/src/backup/upload.ts; each MiB more costs 2 MiB of memory).`);
  }
  const wanted = Math.ceil((2 * Math.max(0, estimatedBytes)) / TARGET_PARTS / MiB) * MiB;
  return Math.min(MAX_PART, Math.max(MIN_PART, wanted));
}

/** Parts in flight: fewer when parts are large, so that queueSize × partSize stays at or under 128 MiB. */
export function queueSizeFor(partSize: number): number {
  return partSize > 16 * MiB ? 2 : 4;
}

export interface StreamUploadOptions {
  readonly s3: S3Client;
  readonly bucket: string;
  readonly key: string;
  readonly tags: Record<string, string>;
  readonly partSize: number;
  readonly contentType?: string;
  readonly source: Readable;
  /** What writes `source`: the object may complete only if `done` resolves; `kill` stops it when the upload fails. */
  readonly producers: { readonly done: Promise<void>; kill(): void };
  /** The last word before the object completes (for example a minimum size); throw to refuse. */
  readonly beforeComplete?: (streamedBytes: number) => void;
}

export interface StoredObject {
  readonly key: string;
  readonly size: number;
  readonly sha256: string;
}

/** Hashes and counts what passes, and ends only once the producers succeeded. */
class SealingTap extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;

  constructor(private readonly producersDone: Promise<void>, private readonly beforeComplete?: (bytes: number) => void) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.producersDone.then(() => {
      this.beforeComplete?.(this.bytes);
      callback();
    }).catch((err: Error) => callback(err));
  }
}

export class StreamUpload {
  private readonly tap: SealingTap;
  private readonly upload: Upload;
  private uploaded = 0;
  private producerError?: Error;

  constructor(private readonly options: StreamUploadOptions) {
    options.producers.done.catch((err: Error) => { this.producerError = err; });
    this.tap = new SealingTap(options.producers.done, options.beforeComplete);
    options.source.on('error', (err) => this.tap.destroy(err));
    options.source.pipe(this.tap);
    this.upload = new Upload({
      client: options.s3,
      partSize: options.partSize,
      queueSize: queueSizeFor(options.partSize),
      params: {
        Bucket: options.bucket,
        Key: options.key,
        Body: this.tap,
        ContentType: options.contentType ?? 'application/octet-stream',
        Tagging: taggingHeader(options.tags),
        // Keys are never overwritten: refuse to complete if the key already exists.
        IfNoneMatch: '*',
      },
    });
    this.upload.on('httpUploadProgress', (progress) => { this.uploaded = progress.loaded ?? this.uploaded; });
  }

  /** Bytes read from the producers so far. */
  get streamedBytes(): number {
    return this.tap.bytes;
  }

  get uploadedBytes(): number {
    return this.uploaded;
  }

  /** Resolves once the object is complete; on failure the multipart upload is aborted and nothing is committed. */
  async done(): Promise<StoredObject> {
    try {
      await this.upload.done();
    } catch (err) {
      // A producer's failure reaches lib-storage as a stream error: report the producer, not the upload.
      if (this.producerError) throw this.producerError;
      this.tap.destroy();
      this.options.producers.kill();
      await this.options.producers.done.catch(() => undefined);
      const raced = this.producerError as Error | undefined;
      if (raced instanceof StageFailure && !raced.exit.killedByAgent) throw raced;
      if (err instanceof AgentError) throw err;
      const problem = s3Problem('upload to', this.options.bucket, this.options.key, err);
      throw new AgentError(`stage 'upload' failed: ${problem.message}. Nothing was committed; an incomplete multipart upload, ` +
        'if one could not be aborted, is removed by the bucket\'s AbortIncompleteMultipartUpload rule.');
    }
    return { key: this.options.key, size: this.tap.bytes, sha256: this.tap.hash.digest('hex') };
  }
}
