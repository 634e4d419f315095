/**
 * The planned binlog objects, fetched and verified into the restore's private work directory before anything is
 * replayed: each object's stored bytes against the SHA-256 recorded with them, the decrypted file against its
 * recorded plaintext SHA-256 and size (wal-fetch's checks, shared), then a walk of the file's events compared with the
 * index the plan used (the streamer wrote both and is the least trusted writer), and a look at the queries in the
 * range replayed (guard.ts). The walk also says which event group replay ends with: the last one before the stop.
 */
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { AgentError } from '../shared/errors';
import { log } from '../shared/log';
import { fetchWalFile } from '../commands/wal-fetch';
import { BinlogGroup, binlogIndexProblem, walkBinlogFile } from '../binlog/events';
import { findBinlogStatement } from './guard';
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
}

const refuse = (bucket: string, p: PlannedBinlog, problem: string) => new AgentError(`the binlog object s3://${bucket}/${p.key} does not agree with its ` +
  `index: ${problem}. It was written by the binlog streamer, which may be compromised: nothing was replayed. Restore to a time before ${p.file}, ` +
  'or from a dump taken after it');

export async function fetchBinlogs(s3: S3Client, bucket: string, plan: readonly PlannedBinlog[], dir: string, identityFile: string): Promise<FetchedBinlogs> {
  const paths: string[] = [];
  let bytes = 0;
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
    const walk = await walkBinlogFile(path, p.file, undefined, (group) => {
      if (group.start >= p.from && group.end <= p.to) last = group;
    });
    const problem = binlogIndexProblem(p.index, walk);
    if (problem) throw refuse(bucket, p, problem);
    const refused = await findBinlogStatement(path, p.file, p.from, p.to);
    if (refused) {
      throw new AgentError(`${p.file} (s3://${bucket}/${p.key}) holds a query at position ${refused.position} that would run a BINLOG statement ` +
        `(${JSON.stringify(refused.text)}): a binlog's row events reach the server as BINLOG statements, which apply rows without table privileges, ` +
        'so a query carrying one could write anywhere, the mysql schema included. Nothing was replayed. Restore to a time before it, or read ' +
        'the binlog (mariadb-binlog) and replay by hand what you trust');
    }
    if (last) lastGroup = { file: p.file, position: last.end, gtid: last.gtid || undefined, time: last.time };
    paths.push(path);
    bytes += fetched.size;
    log.info('binlog fetched and verified', { file: p.file, key: p.key, size: fetched.size, from: p.from, to: p.to });
  }
  return { paths, bytes, lastGroup };
}
