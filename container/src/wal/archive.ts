/**
 * Storing one WAL file, as wal-push and wal-receive both do: sealed, stored write-once, verified (storeSealedObject in
 * shared/sealed-object.ts, which the binlog streamer shares), tagged with the daily tier, and for whole segments and
 * history files optionally held.
 *
 * A name already taken decides by what it holds: the same file (by its recorded plaintext SHA-256) is a success
 * without a write (a retry after a crash); anything else is a WalConflict, and the stored object stays as it is.
 */
import { WAL_METADATA, WAL_TIER, WalFileKind, walFileKind } from '../../../lib/contract';
import { AgentError } from '../shared/errors';
import { log } from '../shared/log';
import { SealReadError, SealedObject, StoredObject, storeSealedObject } from '../shared/sealed-object';
import { FileDigest } from './files';

/** One WAL file to store: what storeSealedObject takes, less what WAL always sets (its tier, metadata and messages). */
export interface WalObject extends Omit<SealedObject, 'tier' | 'metadata' | 'conflict' | 'logStored' | 'logAlreadyStored'> {
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
