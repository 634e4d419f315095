/**
 * The bounded reads `restorable status` makes of what other roles wrote (base backup pointers, WAL, binlog streams):
 * a small object refused unread past its limit, and a listing from a key on that stops past its limit.
 */
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import type { ListedObject } from '../../../lib/contract/binlog-coverage';
import { AgentError } from '../shared/errors';
import { getObject, s3Problem } from '../shared/s3';

/** A small object's text and LastModified, or undefined when absent; refused unread when larger than `maxBytes`. */
export async function getSmall(s3: S3Client, bucket: string, key: string, maxBytes: number, what: string):
Promise<{ text: string; lastModified: Date } | undefined> {
  const where = `s3://${bucket}/${key}`;
  const out = await getObject(s3, bucket, key);
  if (!out) return undefined;
  if ((out.ContentLength ?? 0) > maxBytes) {
    (out.Body as { destroy?: () => void } | undefined)?.destroy?.();
    throw new AgentError(`${what} ${where} is ${out.ContentLength} bytes, more than the ${maxBytes} a real one takes: not read`);
  }
  const text = await out.Body!.transformToString('utf8');
  if (!out.LastModified) throw new AgentError(`S3 gave no LastModified for ${where}: the age cannot be taken from S3's time`);
  return { text, lastModified: out.LastModified };
}

/** Every object under `prefix` whose key sorts after `startAfter` (every one without), in key order; past `limit`, `tooMany()` is thrown. */
export async function listAfter(s3: S3Client, bucket: string, prefix: string, startAfter: string | undefined, limit: number, tooMany: () => string):
Promise<ListedObject[]> {
  const listed: ListedObject[] = [];
  let token: string | undefined;
  do {
    let page;
    try {
      page = await s3.send(new ListObjectsV2Command({
        Bucket: bucket, Prefix: prefix, ContinuationToken: token, ...token || startAfter === undefined ? {} : { StartAfter: startAfter },
      }));
    } catch (err) {
      throw s3Problem('ListObjectsV2', bucket, prefix, err);
    }
    for (const o of page.Contents ?? []) if (o.Key && o.LastModified) listed.push({ key: o.Key, lastModified: o.LastModified });
    if (listed.length > limit) throw new AgentError(tooMany());
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return listed;
}

/** The names of the folders right under `prefix` (one delimited listing, paginated), without the slash. */
export async function folderNames(s3: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const names: string[] = [];
  let token: string | undefined;
  do {
    let page;
    try {
      page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, Delimiter: '/', ContinuationToken: token }));
    } catch (err) {
      throw s3Problem('ListObjectsV2', bucket, prefix, err);
    }
    for (const p of page.CommonPrefixes ?? []) if (p.Prefix) names.push(p.Prefix.slice(prefix.length, -1));
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return names;
}
