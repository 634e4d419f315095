/**
 * Where the binlog streamer puts what it streams: each binlog object sealed and stored as WAL is (storeSealedObject),
 * tagged with the daily tier, with the server and the file's creation time as metadata, then its index beside it;
 * stream.json once when a stream begins. Every PUT is write-once (If-None-Match) and tagged, as the streamer's grant
 * requires; nothing is ever read back but a HEAD of what was just stored.
 */
import { S3Client } from '@aws-sdk/client-s3';
import {
  BINLOG_METADATA, BINLOG_TIER, BinlogStream, TIER_TAG, binlogIndexKey, binlogObjectKey, binlogPartialName, binlogStreamKey,
} from '../../../lib/contract';
import { Recipient } from '../backup/encrypt';
import { AgentError } from '../shared/errors';
import { log } from '../shared/log';
import { putJson } from '../shared/s3';
import { storeSealedObject } from '../shared/sealed-object';
import { BinlogWalk, binlogIndexOf } from './events';

/** The store holds a different binlog object under this name: another server, or a streamer that lost its spool's state. */
export class BinlogConflict extends AgentError {
  constructor(message: string) {
    super(message);
    this.name = 'BinlogConflict';
  }
}

export interface BinlogStore {
  /** Stores a new stream's stream.json; false when a stream of that id exists already. */
  startStream(stream: BinlogStream): Promise<boolean>;
  /** Stores a spool file, whole or (`partial`) up to `walk.size`, and its index. Returns the object's key. */
  storeFile(stream: string, path: string, file: string, walk: BinlogWalk, partial: boolean): Promise<string>;
}

export interface S3BinlogStoreSettings {
  readonly s3: S3Client;
  readonly bucket: string;
  readonly prefix?: string;
  readonly source: string;
  readonly recipient: Recipient;
  readonly level: number;
  readonly workDir: string;
  /** A legal hold on each whole file (never on a partial, which its whole file supersedes). */
  readonly legalHold: boolean;
}

export function s3BinlogStore(o: S3BinlogStoreSettings): BinlogStore {
  const tags = { [TIER_TAG]: BINLOG_TIER };
  return {
    startStream: (stream) => putJson(o.s3, o.bucket, binlogStreamKey(o.prefix, o.source, stream.stream), stream, { tags, ifMatch: '*' }),
    storeFile: async (stream, path, file, walk, partial) => {
      const name = partial ? binlogPartialName(file, walk.size) : file;
      const key = binlogObjectKey(o.prefix, o.source, stream, name);
      const index = binlogIndexOf(walk, { source: o.source, stream, file, key });
      await storeSealedObject({
        s3: o.s3, bucket: o.bucket, key, file: name, path, length: walk.size, expected: { size: walk.size, sha256: walk.sha256 },
        recipient: o.recipient, level: o.level, workDir: o.workDir, tier: BINLOG_TIER, legalHold: o.legalHold && !partial,
        metadata: { [BINLOG_METADATA.serverId]: String(index.serverId), [BINLOG_METADATA.created]: index.created },
        conflict: (where, recorded, plain) => new BinlogConflict(`the store holds a different ${name} at ${where} (SHA-256 ${recorded.sha256 ?? 'not recorded'}, ` +
          `${recorded.size ?? '?'} bytes) than this server's (SHA-256 ${plain.sha256}, ${plain.size} bytes) in stream ${stream}: another server or streamer ` +
          `writes into the same source, or the spool was replaced. Check that --source names this server alone and that one streamer runs; the stored ` +
          `object is kept (keys are write-once). Removing the spool's state.json starts a new stream`),
        logStored: (fields) => log.info(partial ? 'binlog partial stored' : 'binlog file stored', { ...fields, stream, groupsEnd: index.groupsEnd }),
        logAlreadyStored: (fields) => log.info('binlog object already stored with the same SHA-256; nothing written', fields),
      });
      // Written after the object, so that an index always has its object; the same bytes give the same index.
      await putJson(o.s3, o.bucket, binlogIndexKey(key), index, { tags, ifMatch: '*' });
      return key;
    },
  };
}

