/** The freshness check's bounded S3 listings: of a folder's subfolders, and of the objects after a key. */
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { ListedObject } from '../../lib/contract/binlog-coverage';
import { MonitorClients, s3Problem } from '../shared/aws';

/**
 * Every object under `prefix` whose key sorts after `startAfter` (every one without), in key order. Past `limit` it
 * throws `tooMany()`: what was written there is untrusted, and a listing must not run for ever.
 */
export async function listAfter(clients: MonitorClients, prefix: string, startAfter: string | undefined, limit: number, tooMany: () => string):
Promise<ListedObject[]> {
  const listed: ListedObject[] = [];
  let token: string | undefined;
  do {
    let out;
    try {
      out = await clients.s3.send(new ListObjectsV2Command({
        Bucket: clients.bucket, Prefix: prefix, ContinuationToken: token, ...token || startAfter === undefined ? {} : { StartAfter: startAfter },
      }));
    } catch (err) {
      throw s3Problem('ListObjectsV2', clients.bucket, prefix, err);
    }
    for (const o of out.Contents ?? []) if (o.Key && o.LastModified) listed.push({ key: o.Key, lastModified: o.LastModified });
    if (listed.length > limit) throw new Error(tooMany());
    token = out.IsTruncated ? out.NextContinuationToken : undefined;
  } while (token);
  return listed;
}

/** Folders right under `prefix` beyond this many are not read: a source's binlog streams are a few dozen. */
const MAX_FOLDERS = 10_000;

/** The names of the folders right under `prefix`, without the slash (a delimited listing, bounded). */
export async function folderNames(clients: MonitorClients, prefix: string): Promise<string[]> {
  const names: string[] = [];
  let token: string | undefined;
  do {
    let out;
    try {
      out = await clients.s3.send(new ListObjectsV2Command({ Bucket: clients.bucket, Prefix: prefix, Delimiter: '/', ContinuationToken: token }));
    } catch (err) {
      throw s3Problem('ListObjectsV2', clients.bucket, prefix, err);
    }
    for (const p of out.CommonPrefixes ?? []) if (p.Prefix) names.push(p.Prefix.slice(prefix.length, -1));
    if (names.length > MAX_FOLDERS) throw new Error(`s3://${clients.bucket}/${prefix} holds more than ${MAX_FOLDERS} folders: not read; see what wrote them`);
    token = out.IsTruncated ? out.NextContinuationToken : undefined;
  } while (token);
  return names;
}
