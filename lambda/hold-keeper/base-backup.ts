/**
 * The hold keeper's part in continuous archiving: the newest base backup, the one `base/latest.json` names, keeps its
 * legal hold (with its manifest), as the newest dump does. The pointer and the manifest are written by a role that
 * dumps, so they are followed only when they agree: a base backup of this source under its base/ folder, whose stored
 * size and the manifest's size and SHA-256 are the pointer's. Nothing under base/ or wal/ is released here: a base
 * backup that only its own role vouches for must never let an older one's hold go.
 */
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { parseBaseBackupManifest, parseBaseBackupPointer } from '../../lib/contract/base-backup';
import { ContractError } from '../../lib/contract/manifest';
import { BASE_BACKUP_SUFFIX, baseBackupPrefix, baseLatestKey, manifestKeyFor } from '../../lib/contract/names';
import { isNotFound } from '../shared/aws';

/** How the keeper reads a small object it does not trust: bounded, undefined when absent. */
export type BoundedRead = (key: string, maxBytes: number, what: string) => Promise<string | undefined>;

/** The keys that keep their holds, or why base/latest.json was refused; none when the source has no base backup. */
export type NewestBaseBackup = { readonly keys: readonly string[] } | { readonly refused: string };

const MAX_POINTER_BYTES = 64 * 1024;
const MAX_MANIFEST_BYTES = 1024 * 1024;
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The newest base backup and its manifest, when base/latest.json names one that agrees with what is stored. */
export async function newestBaseBackup(s3: S3Client, bucket: string, prefix: string, source: string, read: BoundedRead,
  headProblem: (key: string, err: unknown) => Error): Promise<NewestBaseBackup> {
  const pointerKey = baseLatestKey(prefix, source);
  const where = `s3://${bucket}/${pointerKey}`;
  const text = await read(pointerKey, MAX_POINTER_BYTES, 'base/latest.json');
  if (text === undefined) return { keys: [] };
  try {
    const pointer = parseBaseBackupPointer(text, where);
    const pattern = new RegExp(`^${escape(baseBackupPrefix(prefix, source))}\\d{4}/\\d{2}/\\d{2}/${escape(source)}_` +
      `\\d{4}-\\d{2}-\\d{2}_\\d{2}-\\d{2}-\\d{2}Z${escape(BASE_BACKUP_SUFFIX)}$`);
    const refuse = (why: string) => ({ refused: `${where} names ${JSON.stringify(pointer.key)}, but ${why}: not followed` });
    if (pointer.source !== source || !pattern.test(pointer.key)) return refuse(`that is not a base backup of ${source}`);
    const manifestKey = manifestKeyFor(pointer.key);
    if (pointer.manifestKey !== manifestKey) return refuse(`its manifest is named ${JSON.stringify(pointer.manifestKey)}, not ${manifestKey}`);
    const stored = await storedSize(s3, bucket, pointer.key, headProblem);
    if (stored === undefined) return refuse('it does not exist');
    if (stored !== pointer.size) return refuse(`S3 stored ${stored} bytes and the pointer states ${pointer.size}`);
    const manifestText = await read(manifestKey, MAX_MANIFEST_BYTES, 'base backup manifest');
    if (manifestText === undefined) return refuse(`its manifest ${manifestKey} does not exist`);
    const manifest = parseBaseBackupManifest(manifestText, `s3://${bucket}/${manifestKey}`);
    if (manifest.key !== pointer.key || manifest.size !== pointer.size || manifest.sha256 !== pointer.sha256) {
      return refuse(`its manifest describes ${JSON.stringify(manifest.key)} of ${manifest.size} bytes and SHA-256 ${manifest.sha256}`);
    }
    return { keys: [pointer.key, manifestKey] };
  } catch (err) {
    if (err instanceof ContractError) return { refused: err.message };
    throw err;
  }
}

async function storedSize(s3: S3Client, bucket: string, key: string, headProblem: (key: string, err: unknown) => Error): Promise<number | undefined> {
  try {
    return (await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).ContentLength;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw headProblem(key, err);
  }
}
