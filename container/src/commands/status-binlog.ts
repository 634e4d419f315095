/**
 * What `restorable status` says of a MariaDB source whose binlogs are streamed (it has streams under `binlog/`): the
 * data at risk is what was written since S3 stored the newest binlog object of its newest stream (the continuous RPO,
 * in seconds), unless that stream cannot be replayed from the newest dump's coordinates: then it is everything since
 * that dump, and the status says why (the stream's reason and detail, a missing file) and that a dump is due. The
 * conclusions are readBinlogCoverage's, which the freshness check shares: a delimited listing of `binlog/`, a bounded
 * GET of the newest stream's stream.json, a listing of that stream from the dump's file on, and one HEAD.
 *
 * Everything under binlog/ was written by the streamer, the least trusted writer: what cannot be read makes the
 * source's status unknown, in words; a stream id in the future is named as forged.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { BinlogStreamReason, binlogPrefix } from '../../../lib/contract';
import { BinlogDump, BinlogStoreReader, readBinlogCoverage } from '../../../lib/contract/binlog-coverage';
import { AgentError } from '../shared/errors';
import { headObject } from '../shared/s3';
import { folderNames, getSmall, listAfter } from './status-reads';

/** The streamed side of a source's status. */
export interface StreamedStatus {
  /** The newest stream, when it began, and why (its stream.json's reason and detail). */
  readonly stream?: string;
  readonly streamStartedAt?: string;
  readonly reason?: BinlogStreamReason;
  readonly detail?: string;
  /** The newest binlog object of that stream (file, or file.partial.bytes), and when S3 stored it. */
  readonly newestObject?: string;
  readonly newestStoredAt?: string;
  /** Seconds since S3 stored that object: the data at risk while the stream replays from the newest dump. */
  readonly rpoSeconds?: number;
  /** Why the binlogs cannot be replayed from the newest dump to the newest event, in words; empty when they can. */
  readonly gaps: readonly string[];
  /** Stream ids named for a time in the future. */
  readonly forged: readonly string[];
}

/** The source's streamed status, or undefined when nothing is under its binlog/ (it only dumps). Throws, in words, when it cannot be read. */
export async function streamedStatus(s3: S3Client, bucket: string, prefix: string, source: string, dump: BinlogDump | undefined, checkedAt: Date):
Promise<StreamedStatus | undefined> {
  const reader = statusReader(s3, bucket);
  if (!(await reader.folders(binlogPrefix(prefix, source))).length) return undefined;
  const coverage = await readBinlogCoverage(reader, prefix, source, dump, checkedAt);
  if (coverage.problem) throw new AgentError(`binlogs: ${coverage.problem}`);
  const { stream, newest } = coverage;
  return {
    ...coverage.streamId ? { stream: coverage.streamId } : {},
    ...stream ? { streamStartedAt: stream.startedAt, reason: stream.reason, detail: stream.detail } : {},
    ...newest ? {
      newestObject: newest.name, newestStoredAt: newest.storedAt.toISOString(),
      rpoSeconds: Math.max(0, Math.round((checkedAt.getTime() - newest.storedAt.getTime()) / 1000)),
    } : {},
    gaps: coverage.gaps.map((g) => g.description),
    forged: coverage.forged,
  };
}

/** The store as readBinlogCoverage reads it, through the agent's S3 helpers; the delimited listing is made once. */
function statusReader(s3: S3Client, bucket: string): BinlogStoreReader {
  const folders = new Map<string, Promise<string[]>>();
  return {
    folders: (prefix) => {
      if (!folders.has(prefix)) folders.set(prefix, folderNames(s3, bucket, prefix));
      return folders.get(prefix)!;
    },
    objectsAfter: (prefix, startAfter, limit) => listAfter(s3, bucket, prefix, startAfter, limit, () =>
      `s3://${bucket}/${prefix} holds more than ${limit} objects from the newest dump's binlog file on: the dump is far too old, ` +
      'or something wrote objects there that are no binlog'),
    small: (key, maxBytes) => getSmall(s3, bucket, key, maxBytes, 'binlog stream'),
    metadata: async (key) => (await headObject(s3, bucket, key))?.Metadata,
  };
}
