/**
 * The planned binlog objects, fetched and verified into the restore's private work directory before anything is
 * replayed: each object's stored bytes against the SHA-256 recorded with them, the decrypted file against its
 * recorded plaintext SHA-256 and size (wal-fetch's checks, shared), then a walk of the file's events compared with the
 * index the plan used (the streamer wrote both and is the least trusted writer), and a look at the queries in the
 * range replayed (guard.ts). The walk also says which event group replay ends with: the last one before the stop.
 *
 * Each local copy is then cut at the object's stop (a mark after the target, or the end of its last whole group):
 * mariadb-binlog's --stop-position applies to its last file only, and would print every other file to its last byte,
 * a torn transaction after a server crash, or whatever a forged file holds after its last group, included. What is
 * left of each file is exactly what the guard read and what is replayed.
 */
import { truncateSync } from 'node:fs';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { AgentError } from '../shared/errors';
import { log } from '../shared/log';
import { fetchWalFile } from '../commands/wal-fetch';
import { BinlogGroup, binlogIndexProblem, walkBinlogFile } from '../binlog/events';
import { GuardedRange, guardBinlogFile } from './guard';
import { PlannedBinlog } from './select';

/** The last event group a replay applies. */
export interface LastGroup {
  readonly file: string;
  /** Where the group ends: the position replay reached. */
  readonly position: number;
  readonly gtid?: string;
  /** Unix seconds. */
  readonly time: number;
}

export interface FetchedBinlogs {
  /** The local files, in replay order. */
  readonly paths: readonly string[];
  readonly bytes: number;
  readonly lastGroup?: LastGroup;
  /** Whole groups in the ranges replayed, and those of them that touch the dumped database (the others are left out). */
  readonly groups: number;
  readonly databaseGroups: number;
}

const refuse = (bucket: string, p: PlannedBinlog, problem: string) => new AgentError(`the binlog object s3://${bucket}/${p.key} does not agree with its ` +
  `index: ${problem}. It was written by the binlog streamer, which may be compromised: nothing was replayed. Restore to a time before ${p.file}, ` +
  'or from a dump taken after it');

/**
 * Cuts a verified local copy at its stop (what lies after it is never replayed, whatever it holds) and reads every
 * event left that mariadb-binlog prints (guard.ts).
 */
export async function cutAndGuard(path: string, file: string, from: number, to: number, database: string): Promise<GuardedRange> {
  truncateSync(path, Math.max(to, from));
  return guardBinlogFile(path, file, from, Math.max(to, from), database);
}

export async function fetchBinlogs(s3: S3Client, bucket: string, plan: readonly PlannedBinlog[], dir: string, identityFile: string,
  database: string): Promise<FetchedBinlogs> {
  const paths: string[] = [];
  let bytes = 0;
  let groups = 0;
  let databaseGroups = 0;
  let lastGroup: LastGroup | undefined;
  const identity = async () => ({ file: identityFile, release: () => undefined });
  for (const p of plan) {
    const path = join(dir, p.file);
    // Never decompressed past the size the index gives: the metadata must say the same.
    const fetched = await fetchWalFile(s3, bucket, p.key, p.file, path, identity, p.index.size);
    if (fetched.size !== p.index.size || fetched.sha256 !== p.index.sha256) {
      throw refuse(bucket, p, `it holds ${fetched.size} bytes with SHA-256 ${fetched.sha256}, its index says ${p.index.size} bytes with SHA-256 ${p.index.sha256}`);
    }
    let last: BinlogGroup | undefined;
    let splits: BinlogGroup | undefined;
    const walk = await walkBinlogFile(path, p.file, undefined, (group) => {
      if (group.start >= p.from && group.end <= p.to) last = group;
      if (group.start < p.from && p.from < group.end) splits = group;
    });
    const problem = binlogIndexProblem(p.index, walk);
    if (problem) throw refuse(bucket, p, problem);
    try {
      const guarded = await cutAndGuard(path, p.file, p.from, p.to, database);
      if (!guarded.fromAtEvent || splits) {
        throw new AgentError(`the dump's binlog position ${p.file}:${p.from} is ${splits ? `inside the transaction ${splits.gtid} (${splits.start}-${splits.end})`
          : 'not where an event starts'}: a dump's position is the end of a transaction. The dump's manifest (written by the dump task) or the binlog is ` +
          'wrong; replaying from there would read bytes inside an event as events. Nothing was replayed: restore from another dump');
      }
      groups += guarded.groups;
      databaseGroups += guarded.databaseGroups;
    } catch (err) {
      throw new AgentError(`s3://${bucket}/${p.key}: ${(err as Error).message}`);
    }
    if (last) lastGroup = { file: p.file, position: last.end, gtid: last.gtid || undefined, time: last.time };
    paths.push(path);
    bytes += fetched.size;
    log.info('binlog fetched and verified', { file: p.file, key: p.key, size: fetched.size, from: p.from, to: p.to });
  }
  return { paths, bytes, lastGroup, groups, databaseGroups };
}
