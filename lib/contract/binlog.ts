/**
 * Streamed MariaDB binary logs, for point-in-time recovery: what the binlog streamer stores and what a restore and the
 * monitoring read back. Everything here is written by the streamer, the least trusted writer of a source's binlogs, so
 * every reader parses it with the functions below and cross-checks it against the verified bytes.
 *
 *   {prefix}{source}/binlog/{stream}/stream.json                          why and where the stream began (write-once)
 *   {prefix}{source}/binlog/{stream}/{file}.zst.age                       a closed binlog file, whole
 *   {prefix}{source}/binlog/{stream}/{file}.partial.{bytes}.zst.age       the growing file, up to its last whole event
 *   {…}/{object name without .zst.age}.index.json                         the index of each of those two (BinlogIndex)
 *
 * A stream is one unbroken run of a server's binlogs: a new one begins (with a new id) whenever the streamer cannot
 * carry on where it stopped: its spool is empty, the server purged a file it had not streamed, the server's binlogs
 * were reset, or the server is another one. Point-in-time recovery replays within one stream only.
 */
import { ContractError, isIsoTime } from './manifest';
import { STORED_SUFFIX, sourcePrefix, timestampLabel } from './names';
import { Tier } from './tiers';

/** Where a source's binlog streams live: `{prefix}{source}/binlog/`. */
export const BINLOG_DIR = 'binlog';
/** A stream's descriptor, written once when it begins. */
export const BINLOG_STREAM_FILE = 'stream.json';
/** The suffix of a binlog object's index, in place of `.zst.age`. */
export const BINLOG_INDEX_SUFFIX = '.index.json';
/** Binlog objects are tagged with the daily tier, as WAL is: recovery reaches back as far as daily dumps are kept. */
export const BINLOG_TIER = Tier.DAILY;
export const BINLOG_FORMAT_VERSION = 1;

/** A binlog file name as the server writes it: its log_bin basename, a dot, and a sequence number of 6 or more digits. */
export const BINLOG_FILE_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}\.[0-9]{6,10}$/;
/** A stream id: the UTC time it began, as in backup keys (`2026-12-02_15-40-00Z`). */
export const BINLOG_STREAM_PATTERN = /^\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}Z$/;
const PARTIAL_NAME = /^(.+)\.partial\.([0-9A-F]{12})$/;

/** `{prefix}{source}/binlog/`. */
export function binlogPrefix(prefix: string | undefined, source: string): string {
  return `${sourcePrefix(prefix, source)}${BINLOG_DIR}/`;
}

/** The id of a stream that began at `at`. */
export function binlogStreamId(at: Date): string {
  return `${timestampLabel(at)}Z`;
}

/** `{prefix}{source}/binlog/{stream}/`. */
export function binlogStreamPrefix(prefix: string | undefined, source: string, stream: string): string {
  return `${binlogPrefix(prefix, source)}${stream}/`;
}

export function binlogStreamKey(prefix: string | undefined, source: string, stream: string): string {
  return `${binlogStreamPrefix(prefix, source, stream)}${BINLOG_STREAM_FILE}`;
}

/** The stored name of the first `bytes` of a growing binlog file: `{file}.partial.{bytes, 12 hex digits}`. */
export function binlogPartialName(file: string, bytes: number): string {
  return `${file}.partial.${bytes.toString(16).toUpperCase().padStart(12, '0')}`;
}

/** `{…}/binlog/{stream}/{name}.zst.age`, where name is a file name or a binlogPartialName. */
export function binlogObjectKey(prefix: string | undefined, source: string, stream: string, name: string): string {
  return `${binlogStreamPrefix(prefix, source, stream)}${name}${STORED_SUFFIX}`;
}

/** The index beside a binlog object: its key with `.index.json` in place of `.zst.age`. */
export function binlogIndexKey(objectKey: string): string {
  if (!objectKey.endsWith(STORED_SUFFIX)) throw new Error(`'${objectKey}' is not a stored binlog object key`);
  return `${objectKey.slice(0, -STORED_SUFFIX.length)}${BINLOG_INDEX_SUFFIX}`;
}

/** A binlog object's name read back: the file, and for a partial the bytes it holds. */
export interface BinlogObjectName {
  readonly file: string;
  /** Set for a partial: how many bytes of the file it holds. */
  readonly partialBytes?: number;
}

/** Reads a stored object's name (the part after the stream's prefix, without `.zst.age`), or undefined if it is not one. */
export function parseBinlogObjectName(name: string): BinlogObjectName | undefined {
  const partial = PARTIAL_NAME.exec(name);
  if (partial) return BINLOG_FILE_PATTERN.test(partial[1]) ? { file: partial[1], partialBytes: parseInt(partial[2], 16) } : undefined;
  return BINLOG_FILE_PATTERN.test(name) ? { file: name } : undefined;
}

/** The sequence number of a binlog file name, which orders a server's files (names compare by it, not as strings). */
export function binlogSequence(file: string): number {
  return Number(file.slice(file.lastIndexOf('.') + 1));
}

/** Why a stream began. */
export enum BinlogStreamReason {
  /** The streamer's spool held nothing: a first start, or a lost spool. */
  FIRST_START = 'first-start',
  /** The file the streamer was on is no longer on the server ("Could not find first log file"): what it held after that is lost. */
  PURGED = 'purged',
  /** The server's binlogs start again (RESET MASTER): the same names now hold other events. */
  RESET = 'reset',
  /** The server has another server_id, or the file the streamer was on holds other events: another server. */
  SERVER_CHANGED = 'server-changed',
}

/** `stream.json`: written once when a stream begins. */
export interface BinlogStream {
  readonly formatVersion: number;
  readonly source: string;
  readonly stream: string;
  readonly startedAt: string;
  readonly serverId: number;
  readonly serverVersion: string;
  /** The file the stream starts with, from its first byte. */
  readonly firstFile: string;
  readonly reason: BinlogStreamReason;
  /** In words, for a person: what was found, and what it means for recovery. */
  readonly detail: string;
  /** Where the stream before this one stopped, when the spool knew. */
  readonly previous?: { readonly stream: string; readonly file: string; readonly bytes: number };
}

/**
 * The index of one stored binlog object, built as it was uploaded: where recovery to a time must stop. Event times in
 * a binlog are whole seconds and are when each statement started, so they are not in order; a restore replays a
 * prefix of the binlog, stopping before the first event group whose time is after the target. `marks` lists, in
 * order, each group whose time is later than every group before it in the file: `[time in Unix seconds, the group's
 * start position]`. The first mark after the target is where replay stops; with none, the whole object replays.
 */
export interface BinlogIndex {
  readonly formatVersion: number;
  readonly source: string;
  readonly stream: string;
  readonly file: string;
  /** The indexed object's key. */
  readonly key: string;
  /** The bytes of the file the object holds (all of it when closed), always ending at a whole event. */
  readonly size: number;
  /** SHA-256 of those bytes (hex): the same as the object's plaintext-sha256 metadata. */
  readonly sha256: string;
  readonly serverId: number;
  /** When the server created the file: its format description event's time (ISO 8601, UTC). */
  readonly created: string;
  /** True when the file ends with a rotate or stop event: it is whole, and no more is written to it. */
  readonly closed: boolean;
  /** The file the server went on to, from the rotate event, when there is one. */
  readonly nextFile?: string;
  /** The end of the last whole event group (transaction): where replay of this object ends at the latest. */
  readonly groupsEnd: number;
  /** The time of the last whole event group (ISO 8601, UTC), if any. */
  readonly lastGroupTime?: string;
  readonly marks: ReadonlyArray<readonly [number, number]>;
}

/** Where a dump sits in its server's binlog, read from the consistent snapshot (mariadb-dump --master-data=2 --gtid). */
export interface BinlogCoordinates {
  readonly file: string;
  readonly position: number;
  /** The server's binlog GTID position at the snapshot (gtid_binlog_pos), when it reported one. */
  readonly gtid?: string;
  readonly serverId: number;
}

/** The user metadata of a stored binlog object, besides the WAL_METADATA names it shares (checksums, sizes). */
export const BINLOG_METADATA = {
  serverId: 'server-id',
  /** The file's creation time (ISO 8601): tells a re-created file of the same name from the one before it. */
  created: 'binlog-created',
} as const;

const BINLOG_FIX = 'it was written by the binlog streamer, which may be compromised: restore from a dump and the binlogs of another stream, ' +
  'or delete the object (the bucket is versioned) and take a new dump';

function parseObject(text: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ContractError(`${what} is not valid JSON`, BINLOG_FIX);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ContractError(`${what} is not a JSON object`, BINLOG_FIX);
  return value as Record<string, unknown>;
}

/** The longest text field of a stream.json: room for a detail in words, not for a flood. */
const MAX_STREAM_TEXT = 2000;

const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/** What is wrong with binlog coordinates, or undefined when they are well formed. */
export function binlogCoordinatesProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return 'is not an object';
  const c = value as Partial<Record<keyof BinlogCoordinates, unknown>>;
  if (typeof c.file !== 'string' || !BINLOG_FILE_PATTERN.test(c.file)) return `has file ${JSON.stringify(c.file)}, which is not a binlog file name`;
  if (!isCount(c.position) || c.position < 4) return `has position ${JSON.stringify(c.position)}, which is not a binlog position`;
  if (c.gtid !== undefined && (typeof c.gtid !== 'string' || !/^(\d+-\d+-\d+)?(,\d+-\d+-\d+)*$/.test(c.gtid))) return `has gtid ${JSON.stringify(c.gtid)}`;
  if (!isCount(c.serverId)) return `has serverId ${JSON.stringify(c.serverId)}`;
  return undefined;
}

/** Parses a stream.json or throws a ContractError naming what is wrong. */
export function parseBinlogStream(text: string, where: string): BinlogStream {
  const what = `binlog stream ${where}`;
  const s = parseObject(text, what);
  const bad = (field: string) => new ContractError(`${what} has an invalid ${field}: ${JSON.stringify(s[field])}`, BINLOG_FIX);
  if (s.formatVersion !== BINLOG_FORMAT_VERSION) throw bad('formatVersion');
  if (typeof s.stream !== 'string' || !BINLOG_STREAM_PATTERN.test(s.stream)) throw bad('stream');
  if (!isIsoTime(s.startedAt)) throw bad('startedAt');
  if (!isCount(s.serverId)) throw bad('serverId');
  if (typeof s.firstFile !== 'string' || !BINLOG_FILE_PATTERN.test(s.firstFile)) throw bad('firstFile');
  if (!Object.values(BinlogStreamReason).includes(s.reason as BinlogStreamReason)) throw bad('reason');
  // Printed by status, alarm messages and restore errors: no control characters (a terminal's escapes, forged lines).
  for (const field of ['source', 'serverVersion', 'detail'] as const) {
    const value = s[field];
    if (typeof value !== 'string' || value.length > MAX_STREAM_TEXT || /[\u0000-\u001f\u007f-\u009f]/.test(value)) throw bad(field);
  }
  return s as unknown as BinlogStream;
}

/** Parses an index or throws a ContractError naming what is wrong. The marks are checked to be in order. */
export function parseBinlogIndex(text: string, where: string): BinlogIndex {
  const what = `binlog index ${where}`;
  const x = parseObject(text, what);
  const bad = (field: string) => new ContractError(`${what} has an invalid ${field}`, BINLOG_FIX);
  if (x.formatVersion !== BINLOG_FORMAT_VERSION) throw bad('formatVersion');
  if (typeof x.file !== 'string' || !BINLOG_FILE_PATTERN.test(x.file)) throw bad('file');
  if (typeof x.key !== 'string' || typeof x.stream !== 'string' || typeof x.source !== 'string') throw bad('key, stream or source');
  if (!isCount(x.size) || !isCount(x.groupsEnd) || (x.groupsEnd as number) > (x.size as number)) throw bad('size or groupsEnd');
  if (typeof x.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(x.sha256)) throw bad('sha256');
  if (!isCount(x.serverId)) throw bad('serverId');
  if (!isIsoTime(x.created)) throw bad('created');
  if (typeof x.closed !== 'boolean') throw bad('closed');
  if (x.nextFile !== undefined && (typeof x.nextFile !== 'string' || !BINLOG_FILE_PATTERN.test(x.nextFile))) throw bad('nextFile');
  if (x.lastGroupTime !== undefined && !isIsoTime(x.lastGroupTime)) throw bad('lastGroupTime');
  if (!Array.isArray(x.marks)) throw bad('marks');
  let last: readonly [number, number] = [-1, 3];
  for (const mark of x.marks as unknown[]) {
    if (!Array.isArray(mark) || mark.length !== 2 || !isCount(mark[0]) || !isCount(mark[1])) throw bad('marks');
    if (mark[0] <= last[0] || mark[1] <= last[1] || mark[1] > (x.groupsEnd as number)) throw bad('marks (out of order)');
    last = mark as unknown as readonly [number, number];
  }
  return x as unknown as BinlogIndex;
}
