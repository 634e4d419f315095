/**
 * Storing one WAL file, as wal-push and wal-receive both do: sealed, stored write-once, verified (storeSealedObject in
 * shared/sealed-object.ts, which the binlog streamer shares), tagged with the daily tier, and for whole segments and
 * history files optionally held.
 *
 * A name already taken decides by what it holds: the same file (by its recorded plaintext SHA-256) is a success
 * without a write (a retry after a crash); anything else is a WalConflict, and the stored object stays as it is.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { WAL_METADATA, WAL_TIER, WalFileKind, walFileKind } from '../../../lib/contract';
import { Recipient } from '../backup/encrypt';
import { AgentError } from '../shared/errors';
import { log } from '../shared/log';
import { SealReadError, StoredObject, storeSealedObject } from '../shared/sealed-object';
import { FileDigest } from './files';

export interface WalObject {
  readonly s3: S3Client;
  readonly bucket: string;
  readonly key: string;
  /** The name the object stands for (a WAL file name), for messages. */
  readonly file: string;
  /** The file to read. */
  readonly path: string;
  /** Only the first `length` bytes of it (a received partial, still growing); the whole file when absent. */
  readonly length?: number;
  /**
   * What the file must read as, when the caller digested it before (wal-push): a file that reads differently while
   * it is sealed changed under the agent, and nothing is stored.
   */
  readonly expected?: FileDigest;
  readonly recipient: Recipient;
  readonly level: number;
  /** Where the sealed file is written for the length of the PUT, then removed. */
  readonly workDir: string;
  /**
   * Place an Object Lock legal hold on the stored object (also on one already stored by an earlier try), when it is a
   * whole segment or a timeline history file: those the hold keeper releases once a newer base backup's restore test
   * is settled. Received partials (thousands a day, each superseded by its whole segment) and backup labels are never
   * held; the bucket's default lock protects them.
   */
  readonly legalHold?: boolean;
}

export type ArchivedWal = StoredObject;

/** The archive holds a different file under this name: another cluster or timeline archives into the same source. */
export class WalConflict extends AgentError {
  constructor(message: string) {
    super(message);
    this.name = 'WalConflict';
  }
}

/** The file could not be read (ENOENT: a received partial finished and renamed in between). */
export const WalReadError = SealReadError;

function conflictMessage(o: WalObject, where: string, recorded: { sha256?: string; size?: string }, plain: FileDigest): string {
  if (recorded.sha256 === undefined) {
    return `${where} already exists but records no plaintext SHA-256 (x-amz-meta-${WAL_METADATA.plaintextSha256}): it was not ` +
      `written by the agent, so this ${o.file} cannot be told apart from it. Find out what wrote it; it is kept (keys are write-once)`;
  }
  return `the archive holds a different ${o.file} at ${where} (SHA-256 ${recorded.sha256}, ${recorded.size ?? '?'} ` +
    `bytes) than this server's (SHA-256 ${plain.sha256}, ${plain.size} bytes): another cluster or timeline archives into the same ` +
    'source. Check that --source and --prefix name this cluster alone (a restored copy or a promoted standby must archive ' +
    'under a source of its own), and compare `pg_controldata`\'s "Database system identifier" with the cluster that wrote ' +
    'the archive. The stored object is kept (keys are write-once)';
}

/** The WAL files a legal hold is placed on: the hold keeper releases these below the settled base backup. */
const HELD_KINDS: ReadonlySet<WalFileKind> = new Set([WalFileKind.SEGMENT, WalFileKind.HISTORY]);

/** Seals, stores, verifies (and holds) one WAL file; see the file's comment. */
export function archiveWal(o: WalObject): Promise<ArchivedWal> {
  return storeSealedObject({
    ...o, tier: WAL_TIER, legalHold: o.legalHold === true && HELD_KINDS.has(walFileKind(o.file)!),
    conflict: (where, recorded, plain) => new WalConflict(conflictMessage(o, where, recorded, plain)),
    logStored: (fields) => log.info('wal file archived', fields),
    logAlreadyStored: (fields) => log.info('wal file already archived with the same SHA-256; nothing written', fields),
  });
}
