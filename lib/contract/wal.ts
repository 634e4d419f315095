/**
 * Archived PostgreSQL WAL, for point-in-time recovery: which files PostgreSQL hands an archive, and what each stored WAL object
 * records about itself. A WAL object is `{prefix}{source}/wal/{file}.zst.age` (walKey in names.ts): zstd, then age,
 * as a dump is, written once by a single PUT with If-None-Match. Its checksums are S3 user metadata on the object
 * itself (x-amz-meta-…), written in the same PUT: there is never an object without them, nor a second key to lose.
 */
import { Tier } from './tiers';

/** The kinds of file PostgreSQL archives (archive_command's %f) and asks back (restore_command's %f). */
export enum WalFileKind {
  /** `000000010000000000000001`: timeline, log and segment, 8 hex digits each. */
  SEGMENT = 'segment',
  /** `000000010000000000000001.partial`: the last, unfinished segment of a timeline left at a promotion. */
  PARTIAL = 'partial',
  /** `00000002.history`: how a timeline branched off its parent. */
  HISTORY = 'history',
  /** `000000010000000000000002.00000028.backup`: a base backup's label, with its start and stop positions. */
  BACKUP_LABEL = 'backup',
  /**
   * `000000010000000000000003.partial.00A1C000`: the unfinished segment a WAL receiver is writing, uploaded every few
   * seconds as it grows; the suffix is how many bytes of it were written (8 hex digits), so that each upload is a
   * new write-once key and the newest sorts last. Never asked for by PostgreSQL: a restore to the latest point
   * uses the newest one of a segment that was never archived whole.
   */
  RECEIVED_PARTIAL = 'received-partial',
}

const WAL_FILE_PATTERNS: ReadonlyArray<readonly [WalFileKind, RegExp]> = [
  [WalFileKind.SEGMENT, /^[0-9A-F]{24}$/],
  [WalFileKind.PARTIAL, /^[0-9A-F]{24}\.partial$/],
  [WalFileKind.HISTORY, /^[0-9A-F]{8}\.history$/],
  [WalFileKind.BACKUP_LABEL, /^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$/],
  [WalFileKind.RECEIVED_PARTIAL, /^[0-9A-F]{24}\.partial\.[0-9A-F]{8}$/],
];

/**
 * The tier WAL objects are tagged with, so that the store's lifecycle expires them: point-in-time recovery reaches back
 * as far as the daily tier keeps base backups. Older points are the weekly and monthly base backups themselves,
 * which are self-contained (their WAL is inside the tar) and need no archived WAL.
 */
export const WAL_TIER = Tier.DAILY;

/** The received-partial name of `segment` with `bytes` of it written: `{segment}.partial.{bytes, 8 hex digits}`. */
export function receivedPartialName(segment: string, bytes: number): string {
  return `${segment}.partial.${bytes.toString(16).toUpperCase().padStart(8, '0')}`;
}

/** A replication slot name as PostgreSQL allows it, checked at synth and by the receiver alike. */
export const SLOT_NAME_PATTERN = /^[a-z0-9_]{1,63}$/;

/** The kind of a WAL file name (no directory), or undefined when PostgreSQL would not archive a file of that name. */
export function walFileKind(file: string): WalFileKind | undefined {
  return WAL_FILE_PATTERNS.find(([, pattern]) => pattern.test(file))?.[0];
}

/** Returns an error message for a name that is not a WAL file PostgreSQL archives, or undefined when it is one. */
export function walFileProblem(file: string): string | undefined {
  if (walFileKind(file)) return undefined;
  return `'${file}' is not a WAL file name PostgreSQL archives: expected a segment (24 hex digits, such as 000000010000000000000001), ` +
    'a segment with .partial, a timeline history file (00000002.history) or a backup label (000000010000000000000002.00000028.backup)';
}

/**
 * The user metadata of a stored WAL object (S3 sends each as `x-amz-meta-{name}`; names are lower case). Set in the
 * PUT that creates the object, so they cannot change afterwards without a new object, which write-once refuses.
 */
export const WAL_METADATA = {
  /** SHA-256 (hex) of the WAL file as PostgreSQL wrote it: what a fetch must reproduce before PostgreSQL sees it. */
  plaintextSha256: 'plaintext-sha256',
  /** The WAL file's size in bytes, before compression and encryption. */
  plaintextSize: 'plaintext-size',
  /** SHA-256 (hex) of the stored (compressed and encrypted) bytes, as in a manifest's `sha256`. */
  sha256: 'sha256',
  /** SHA-256 of the recipient lines, as in a manifest's `recipientFingerprint`: which identity opens it. */
  recipientFingerprint: 'recipient-fingerprint',
  /** The agent version that archived it. */
  agentVersion: 'restorable-version',
} as const;
