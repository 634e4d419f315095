/**
 * What `restorable status` says of a source that archives its PostgreSQL WAL continuously: the data at risk is what
 * was written since S3 stored its newest WAL object (the continuous RPO, in seconds), and a point-in-time restore starts
 * from the base backup `base/latest.json` names. One bounded GET of that pointer (absent for a source that only dumps),
 * one HEAD of the base backup, and a listing of `wal/` from the base backup's first WAL file on (StartAfter), never
 * the whole archive.
 *
 * The pointer and the WAL objects were written by a role that dumps: the pointer is read with a size limit and by the
 * contract's parser, it must name a base backup of this source, and only keys with a WAL file's name count. Ages are
 * S3's times; a time the pointer states that S3 contradicts is reported as forged, as for dumps.
 */
import { S3Client } from '@aws-sdk/client-s3';
import {
  BASE_BACKUP_SUFFIX, STORED_SUFFIX, baseBackupPrefix, baseLatestKey, forgedTime, parseBaseBackupPointer, walFileKind, walPrefix,
} from '../../../lib/contract';
import { AgentError } from '../shared/errors';
import { headLastModified } from '../shared/s3';
import { getSmall, listAfter } from './status-reads';

/** The continuous side of a source's status. */
export interface ContinuousStatus {
  /** The base backup base/latest.json names, and when S3 stored it. */
  readonly baseBackupKey: string;
  readonly baseBackupStoredAt: string;
  readonly baseBackupAgeSeconds: number;
  /** The newest archived WAL file since that base backup, and when S3 stored it; absent when none was archived since. */
  readonly newestWalFile?: string;
  readonly newestWalStoredAt?: string;
  /** Seconds since S3 stored the newest WAL object: the data at risk. */
  readonly rpoSeconds?: number;
  /** Stated times of base/latest.json that S3 contradicts. */
  readonly forged: readonly string[];
}

/** A base backup pointer is a few hundred bytes. */
const MAX_POINTER_BYTES = 64 * 1024;
/** WAL objects listed since the base backup before status gives up: far more than a day of WAL. */
const MAX_WAL_LISTED = 100_000;

/** The source's continuous status, or undefined when it has no base/latest.json (it only dumps). Throws, in words, when it cannot be read. */
export async function continuousStatus(s3: S3Client, bucket: string, prefix: string, source: string, checkedAt: Date): Promise<ContinuousStatus | undefined> {
  const pointerKey = baseLatestKey(prefix, source);
  const where = `s3://${bucket}/${pointerKey}`;
  const out = await getSmall(s3, bucket, pointerKey, MAX_POINTER_BYTES, 'base backup pointer');
  if (!out) return undefined;
  const pointer = parseBaseBackupPointer(out.text, where);
  const basePrefix = baseBackupPrefix(prefix, source);
  if (pointer.source !== source || !pointer.key.startsWith(basePrefix) || !pointer.key.endsWith(BASE_BACKUP_SUFFIX)) {
    throw new AgentError(`base backup pointer ${where} names ${JSON.stringify(pointer.key)}, not a base backup of ${source} under ${basePrefix}`);
  }
  const baseStored = await headLastModified(s3, bucket, pointer.key);
  if (!baseStored) {
    throw new AgentError(`base backup pointer ${where} names s3://${bucket}/${pointer.key}, which does not exist: point-in-time restore has ` +
      `nothing to start from; take a new base backup (\`restorable basebackup --source ${source} …\`)`);
  }
  const forged = [
    forgedTime(`base backup pointer ${where}`, 'startedAt', pointer.startedAt, baseStored, `the base backup it names, ${pointer.key},`, checkedAt),
    forgedTime(`base backup pointer ${where}`, 'finishedAt', pointer.finishedAt, out.lastModified, 'the pointer itself', checkedAt),
  ].filter((f): f is string => f !== undefined);
  const ageOf = (stored: Date) => Math.max(0, Math.round((checkedAt.getTime() - stored.getTime()) / 1000));
  const newest = await newestWal(s3, bucket, walPrefix(prefix, source), pointer.startWalFile);
  return {
    baseBackupKey: pointer.key,
    baseBackupStoredAt: baseStored.toISOString(),
    baseBackupAgeSeconds: ageOf(baseStored),
    ...newest ? { newestWalFile: newest.file, newestWalStoredAt: newest.stored.toISOString(), rpoSeconds: ageOf(newest.stored) } : {},
    forged,
  };
}

/** The WAL object S3 stored last, from `startWalFile` on; of those stored in the same second, the later name. */
async function newestWal(s3: S3Client, bucket: string, prefix: string, startWalFile: string): Promise<{ file: string; stored: Date } | undefined> {
  // StartAfter the bare name: the start segment's own key (name + suffix) sorts after it, so it is listed.
  const listed = await listAfter(s3, bucket, prefix, `${prefix}${startWalFile}`, MAX_WAL_LISTED, () =>
    `s3://${bucket}/${prefix} holds more than ${MAX_WAL_LISTED} objects since the newest base backup's ${startWalFile}: ` +
    'the base backup is far too old, or something wrote objects there that are not WAL');
  let newest: { file: string; stored: Date } | undefined;
  for (const o of listed) {
    const file = o.key.endsWith(STORED_SUFFIX) ? o.key.slice(prefix.length, -STORED_SUFFIX.length) : undefined;
    if (!file || !walFileKind(file)) continue;
    if (!newest || o.lastModified >= newest.stored) newest = { file, stored: o.lastModified };
  }
  return newest;
}
