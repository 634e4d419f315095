/**
 * A PostgreSQL base backup: `pg_basebackup -Ft -X fetch` (the data directory as one tar, with the WAL it needs to be
 * consistent), zstd, then age, stored at baseBackupKey() with a manifest beside it (manifestKeyFor) and the newest one
 * named by `{source}/base/latest.json` (baseLatestKey). A point-in-time restore starts from the newest base backup that
 * finished before its target and replays archived WAL from `startWalFile` onward.
 *
 * Manifests and pointers are read back from the bucket, so they are untrusted input: the parsers check every field a
 * restore relies on and throw a ContractError naming the object and the field.
 */
import { ContractError, Engine, LatestPointer, isIsoTime } from './manifest';
import { Tier } from './tiers';

export const BASE_BACKUP_FORMAT_VERSION = 1;

export interface BaseBackupManifest {
  readonly formatVersion: number;
  readonly kind: 'basebackup';
  readonly source: string;
  readonly engine: Engine.POSTGRES;
  /** The server's major version, from the backup's PG_VERSION (a restore needs server binaries of this version). */
  readonly serverVersion: string;
  /** pg_control's database system identifier: WAL of another cluster does not apply to this backup. */
  readonly systemIdentifier: string;
  /** The timeline the backup started on. */
  readonly timeline: number;
  /** Where the backup's WAL starts and ends, as PostgreSQL writes an LSN (`0/2000028`). */
  readonly startLsn: string;
  readonly endLsn: string;
  /** The WAL segment that holds startLsn: replay of archived WAL starts here. */
  readonly startWalFile: string;
  /** The last WAL segment inside the tar (-X fetch): the backup is consistent once this is replayed. */
  readonly endWalFile: string;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly tier: Tier;
  /** The stored object: `.tar.zst.age`. */
  readonly key: string;
  readonly size: number;
  /** SHA-256 of the stored (encrypted) bytes, hex. */
  readonly sha256: string;
  /** Size of the tar before compression and encryption. */
  readonly tarSize: number;
  /** SHA-256 of the recipient lines: which identity opens it. */
  readonly recipientFingerprint: string;
  readonly toolVersions: Record<string, string>;
  readonly warnings: readonly string[];
}

/** `{prefix}{source}/base/latest.json`: the newest base backup that passed post-upload verification, a latest pointer with its WAL start. */
export interface BaseBackupPointer extends LatestPointer {
  readonly timeline: number;
  readonly startWalFile: string;
}

const LSN = /^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/;
const SEGMENT = /^[0-9A-F]{24}$/;
const SHA256 = /^[0-9a-f]{64}$/;
const SYSTEM_IDENTIFIER = /^[0-9]{1,20}$/;
const TIERS = new Set<string>(Object.values(Tier));

const isCount = (value: unknown) => typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
const isTimeline = (value: unknown) => typeof value === 'number' && Number.isSafeInteger(value) && value >= 1 && value <= 0xffffffff;
const isString = (value: unknown) => typeof value === 'string';

type Check = readonly [string, (value: unknown) => boolean, string];

/** Every field a restore relies on, what it must look like, and the words for it. */
const POINTER_CHECKS: readonly Check[] = [
  ['formatVersion', (v) => v === BASE_BACKUP_FORMAT_VERSION, `format version ${BASE_BACKUP_FORMAT_VERSION}`],
  ['source', isString, 'a source name'],
  ['key', isString, 'the stored object\'s key'],
  ['startedAt', isIsoTime, 'an ISO 8601 UTC time'],
  ['finishedAt', isIsoTime, 'an ISO 8601 UTC time'],
  ['tier', (v) => typeof v === 'string' && TIERS.has(v), `a tier (${[...TIERS].join(', ')})`],
  ['size', isCount, 'a byte count'],
  ['sha256', (v) => typeof v === 'string' && SHA256.test(v), 'a SHA-256 in hex'],
  ['timeline', isTimeline, 'a timeline number'],
  ['startWalFile', (v) => typeof v === 'string' && SEGMENT.test(v), 'a WAL segment name (24 hex digits)'],
];

const MANIFEST_CHECKS: readonly Check[] = [
  ...POINTER_CHECKS,
  ['kind', (v) => v === 'basebackup', '\'basebackup\''],
  ['engine', (v) => v === Engine.POSTGRES, `'${Engine.POSTGRES}'`],
  ['serverVersion', isString, 'a server version'],
  ['systemIdentifier', (v) => typeof v === 'string' && SYSTEM_IDENTIFIER.test(v), 'a database system identifier (digits)'],
  ['startLsn', (v) => typeof v === 'string' && LSN.test(v), 'an LSN such as 0/2000028'],
  ['endLsn', (v) => typeof v === 'string' && LSN.test(v), 'an LSN such as 0/2000100'],
  ['endWalFile', (v) => typeof v === 'string' && SEGMENT.test(v), 'a WAL segment name (24 hex digits)'],
  ['tarSize', isCount, 'a byte count'],
  ['recipientFingerprint', isString, 'a recipient fingerprint'],
];

const FIX = 'restore it from an older version (the bucket is versioned), or take a new base backup with `restorable basebackup`';

function parseChecked(text: string, what: string, checks: readonly Check[]): Record<string, unknown> {
  const bad = (problem: string) => new ContractError(`${what} ${problem}`, FIX);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw bad('is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad('is not a JSON object');
  const record = value as Record<string, unknown>;
  const wrong = checks.filter(([field, ok]) => !ok(record[field]));
  if (wrong.length) {
    throw bad(`has ${wrong.map(([field, , expected]) => `${field} ${JSON.stringify(record[field]) ?? 'missing'} (expected ${expected})`).join('; ')}`);
  }
  return record;
}

/** Parses a base backup manifest, or throws a ContractError naming the object and each wrong field. */
export function parseBaseBackupManifest(text: string, where: string): BaseBackupManifest {
  const manifest = parseChecked(text, `base backup manifest ${where}`, MANIFEST_CHECKS);
  if (!Array.isArray(manifest.warnings)) manifest.warnings = [];
  if (typeof manifest.toolVersions !== 'object' || manifest.toolVersions === null) manifest.toolVersions = {};
  return manifest as unknown as BaseBackupManifest;
}

/** Parses `base/latest.json`, or throws a ContractError naming the object and each wrong field. */
export function parseBaseBackupPointer(text: string, where: string): BaseBackupPointer {
  return parseChecked(text, `base backup pointer ${where}`, [...POINTER_CHECKS, ['manifestKey', isString, 'the manifest\'s key']]) as unknown as BaseBackupPointer;
}
