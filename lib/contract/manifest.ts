/**
 * The manifest written beside every backup, and the latest pointer (design §3).
 * Unencrypted and free of secrets: freshness checks, size checks, restore tests and people read them.
 */
import { Tier } from './tiers';

export const MANIFEST_FORMAT_VERSION = 1;

export enum Engine {
  POSTGRES = 'postgres',
  MYSQL = 'mysql',
}

/** One table and the rows it held in the dump. */
export interface TableCount {
  readonly schema: string;
  readonly table: string;
  readonly rows: number;
}

/** An object written for a backup beside the dump: roles and grants. */
export interface Companion {
  readonly kind: 'globals';
  readonly key: string;
  readonly size: number;
  readonly sha256: string;
}

export interface Manifest {
  readonly formatVersion: number;
  readonly source: string;
  readonly engine: Engine;
  readonly database: string;
  readonly serverVersion: string;
  /** Versions of pg_dump/mysqldump, zstd, age and the agent. */
  readonly toolVersions: Record<string, string>;
  readonly tier: Tier;
  readonly startedAt: string;
  readonly finishedAt: string;
  /** The stored object: `{format}.zst.age`. */
  readonly key: string;
  readonly format: string;
  readonly size: number;
  /** SHA-256 of the stored (encrypted) bytes, hex. */
  readonly sha256: string;
  /** Size of the dump before compression and encryption. */
  readonly dumpSize: number;
  /** SHA-256 of the recipient string, so that a restorer can tell which identity opens this backup. */
  readonly recipientFingerprint: string;
  readonly tables: readonly TableCount[];
  readonly companions: readonly Companion[];
  /** Whether roles and grants were captured, and if not, why. */
  readonly globals: { readonly captured: boolean; readonly reason?: string };
  readonly warnings: readonly string[];
}

/** `{prefix}{source}/latest.json`: the newest backup that passed post-upload verification. */
export interface LatestPointer {
  readonly formatVersion: number;
  readonly source: string;
  readonly key: string;
  readonly manifestKey: string;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly tier: Tier;
  readonly size: number;
  readonly sha256: string;
}

/** Parses a manifest or throws an error that says which field is wrong. */
export function parseManifest(text: string, where: string): Manifest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(`manifest ${where} is not valid JSON`);
  }
  const m = value as Partial<Manifest>;
  const required: (keyof Manifest)[] = ['formatVersion', 'source', 'engine', 'key', 'size', 'sha256', 'startedAt', 'tables'];
  const missing = required.filter((field) => m[field] === undefined);
  if (missing.length) throw new Error(`manifest ${where} lacks ${missing.join(', ')}`);
  if (m.formatVersion !== MANIFEST_FORMAT_VERSION) {
    throw new Error(`manifest ${where} has format version ${m.formatVersion}; this agent reads version ${MANIFEST_FORMAT_VERSION}`);
  }
  return m as Manifest;
}

/** Parses a latest pointer or throws an error that names what is wrong. */
export function parseLatest(text: string, where: string): LatestPointer {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(`latest pointer ${where} is not valid JSON`);
  }
  const p = value as Partial<LatestPointer>;
  if (typeof p.key !== 'string' || typeof p.startedAt !== 'string') {
    throw new Error(`latest pointer ${where} lacks key or startedAt`);
  }
  return p as LatestPointer;
}

/**
 * What the freshness check needs from `{prefix}{source}/restore-tests/latest.json` (restoreTestLatestKey),
 * which each restore test rewrites with its newest report; the report may hold more fields.
 */
export interface RestoreTestPointer {
  readonly source: string;
  /** When the restore test finished (ISO 8601, UTC): RestoreTestAgeSeconds counts from here. */
  readonly finishedAt: string;
  readonly success: boolean;
  /** How long the restore took, in seconds: the measured RTO that `restorable status` reports. */
  readonly durationSeconds?: number;
  /** Why the test failed, in words for a person, when it did. */
  readonly reason?: string;
}

/** Parses a restore-test pointer or throws an error that names what is wrong. */
export function parseRestoreTestPointer(text: string, where: string): RestoreTestPointer {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(`restore-test report ${where} is not valid JSON`);
  }
  const p = value as Partial<RestoreTestPointer>;
  if (typeof p.finishedAt !== 'string' || Number.isNaN(Date.parse(p.finishedAt))) {
    throw new Error(`restore-test report ${where} lacks a valid finishedAt time`);
  }
  return p as RestoreTestPointer;
}
