/**
 * The agent's S3 access: a client that honours the SDK's endpoint variables (path-style when one is
 * set, as emulators and some gateways need), and the few object operations the commands share.
 */
import {
  GetObjectCommand, GetObjectCommandOutput, HeadObjectCommand, HeadObjectCommandOutput, ListObjectsV2Command, ObjectLockLegalHoldStatus, PutObjectCommand, PutObjectLegalHoldCommand,
  S3Client, S3ServiceException, _Object,
} from '@aws-sdk/client-s3';
import { AgentError } from './errors';

/** An S3 client in `region`, which the caller resolves (aws.ts): never a default one. */
export function createS3Client(region: string): S3Client {
  const endpoint = process.env.AWS_ENDPOINT_URL_S3 || process.env.AWS_ENDPOINT_URL || undefined;
  return new S3Client({
    ...(endpoint ? { endpoint, forcePathStyle: true } : {}),
    region,
  });
}

/** The tag header value for PutObject / CreateMultipartUpload: tags are set when the object is created. */
export function taggingHeader(tags: Record<string, string>): string {
  return new URLSearchParams(tags).toString();
}

function isNotFound(err: unknown): boolean {
  const e = err as S3ServiceException;
  return e?.name === 'NoSuchKey' || e?.name === 'NotFound' || e?.$metadata?.httpStatusCode === 404;
}

export function isDenied(err: unknown): boolean {
  const e = err as S3ServiceException;
  return e?.name === 'AccessDenied' || e?.name === 'Forbidden' || e?.$metadata?.httpStatusCode === 403;
}

/**
 * Whether a key is absent, asked by listing it: ListObjectsV2 with Prefix = the key itself and MaxKeys 1, which the
 * roles' s3:prefix-scoped ListBucket allows. The key sorts before every longer key it is a prefix of, so an answer
 * without it (empty, or naming a longer key) means absent. False when it is listed, or when the listing is refused
 * too: S3's 403 then stays unexplained.
 */
export async function listedAbsent(s3: S3Client, bucket: string, key: string): Promise<boolean> {
  try {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: key, MaxKeys: 1 }));
    return page.Contents?.[0]?.Key !== key;
  } catch {
    return false;
  }
}

/**
 * Reads an object, or undefined when it does not exist. A 404 is absence; a 403 is unknown, since S3 answers 403 for
 * a missing key to a principal that may not list it there: absence is then learnt by listing the key, and a 403 for a
 * key that is listed (or that cannot be listed) is a real error.
 */
async function unlessAbsent<T>(s3: S3Client, bucket: string, key: string, action: string, read: () => Promise<T>): Promise<T | undefined> {
  try {
    return await read();
  } catch (err) {
    if (isNotFound(err)) return undefined;
    if (isDenied(err) && await listedAbsent(s3, bucket, key)) return undefined;
    throw s3Problem(action, bucket, key, err);
  }
}

/** Words for an S3 failure that say which object and what to check. */
export function s3Problem(action: string, bucket: string, key: string, err: unknown): AgentError {
  const e = err as S3ServiceException & { code?: string };
  const detail = isDenied(err)
    ? 'access denied: check the task role allows it on this bucket and prefix' +
      (action === 'GetObject' || action === 'HeadObject'
        ? ' (S3 also answers access denied for a missing key to a role that may not list it: the agent then lists the key, and that was not ' +
          'allowed either, or listed it)'
        : '')
    : (e?.code === 'ECONNREFUSED' || e?.name === 'TimeoutError')
      ? `S3 endpoint unreachable (${e.message}): check AWS_ENDPOINT_URL_S3 / network`
      : `${e?.name ?? 'Error'}: ${e?.message ?? String(err)}`;
  return new AgentError(`S3 ${action} s3://${bucket}/${key} failed: ${detail}`);
}

export interface TextObject {
  readonly text: string;
  readonly etag?: string;
  /** When S3 stored it: set by S3, not by its writer. */
  readonly lastModified?: Date;
}

/** Reads a small object (optionally an older version) as text, or undefined when it does not exist. */
export async function getText(s3: S3Client, bucket: string, key: string, versionId?: string): Promise<TextObject | undefined> {
  return unlessAbsent(s3, bucket, key, 'GetObject', async () => {
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }));
    return { text: await out.Body!.transformToString('utf8'), etag: out.ETag, lastModified: out.LastModified };
  });
}

export interface PutJsonOptions {
  /** Set at creation (PutObject's Tagging), never afterwards. */
  readonly tags?: Record<string, string>;
  /** Write only if the object still has this ETag (or, with '*', does not exist yet). */
  readonly ifMatch?: string;
}

/** Writes a small JSON object. Returns false when a condition (ifMatch) did not hold, and the caller may read again. */
export async function putJson(s3: S3Client, bucket: string, key: string, value: unknown, options: PutJsonOptions = {}): Promise<boolean> {
  try {
    await s3.send(new PutObjectCommand({
      Bucket: bucket,
      Key: key,
      Body: `${JSON.stringify(value, null, 2)}\n`,
      ContentType: 'application/json',
      ...(options.tags ? { Tagging: taggingHeader(options.tags) } : {}),
      ...(options.ifMatch === '*' ? { IfNoneMatch: '*' } : options.ifMatch ? { IfMatch: options.ifMatch } : {}),
    }));
    return true;
  } catch (err) {
    const status = (err as S3ServiceException)?.$metadata?.httpStatusCode;
    // 412: the condition failed; 409: a concurrent conditional write; 404 on If-Match: the object went away in between.
    if (options.ifMatch && (status === 412 || status === 409)) return false;
    if (options.ifMatch && options.ifMatch !== '*' && (err as S3ServiceException)?.name === 'NoSuchKey') return false;
    throw s3Problem('PutObject', bucket, key, err);
  }
}

export async function headSize(s3: S3Client, bucket: string, key: string): Promise<number | undefined> {
  return (await headSizeAndLastModified(s3, bucket, key))?.size;
}

/** An object's size and LastModified (one HEAD), or undefined when it does not exist. */
export async function headSizeAndLastModified(s3: S3Client, bucket: string, key: string):
Promise<{ readonly size?: number; readonly lastModified?: Date } | undefined> {
  return unlessAbsent(s3, bucket, key, 'HeadObject', async () => {
    const out = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return { size: out.ContentLength, lastModified: out.LastModified };
  });
}

/** An object's HEAD (its size, user metadata and, where S3 keeps one, its SHA-256 checksum), or undefined when it does not exist. */
export async function headObject(s3: S3Client, bucket: string, key: string): Promise<HeadObjectCommandOutput | undefined> {
  return unlessAbsent(s3, bucket, key, 'HeadObject', () => s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: 'ENABLED' })));
}

/** An object's GET (its body as a stream, its size and user metadata), or undefined when it does not exist. */
export async function getObject(s3: S3Client, bucket: string, key: string): Promise<GetObjectCommandOutput | undefined> {
  return unlessAbsent(s3, bucket, key, 'GetObject', () => s3.send(new GetObjectCommand({ Bucket: bucket, Key: key })));
}

/** An object's LastModified, set by S3 and not by its writer, or undefined when it does not exist (one HEAD). */
export async function headLastModified(s3: S3Client, bucket: string, key: string): Promise<Date | undefined> {
  return (await headSizeAndLastModified(s3, bucket, key))?.lastModified;
}

/** Every object under a prefix (paginated). */
export async function listAll(s3: S3Client, bucket: string, prefix: string): Promise<_Object[]> {
  const objects: _Object[] = [];
  let token: string | undefined;
  do {
    let page;
    try {
      page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    } catch (err) {
      throw s3Problem('ListObjectsV2', bucket, prefix, err);
    }
    objects.push(...(page.Contents ?? []));
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return objects;
}

/**
 * Places (on) or releases (off) the Object Lock legal hold on an object's current version. The bucket must have
 * Object Lock, and the caller s3:PutObjectLegalHold on the key.
 */
export async function setLegalHold(s3: S3Client, bucket: string, key: string, on: boolean): Promise<void> {
  try {
    await s3.send(new PutObjectLegalHoldCommand({
      Bucket: bucket,
      Key: key,
      LegalHold: { Status: on ? ObjectLockLegalHoldStatus.ON : ObjectLockLegalHoldStatus.OFF },
    }));
  } catch (err) {
    const e = err as S3ServiceException;
    // S3 says "Object Lock Configuration" here, "ObjectLockConfiguration" on PutObject; S3-compatible servers vary.
    if (e?.name === 'InvalidRequest' && /object\s*lock/i.test(e.message ?? '')) {
      throw new AgentError(`S3 PutObjectLegalHold s3://${bucket}/${key} failed: the bucket has no Object Lock ` +
        '(legal holds need a bucket created with Object Lock; run the backup without --legal-hold for this bucket)');
    }
    throw s3Problem('PutObjectLegalHold', bucket, key, err);
  }
}
