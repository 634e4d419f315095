/**
 * A walk over a MariaDB binary log's event headers, as the streamer stores a file and as a restore checks what it
 * fetched: where each whole event ends, which events make up each transaction (event group), and when each group
 * committed. From it comes the index stored beside every binlog object (BinlogIndex), so the walk is the one place
 * that says where replay to a time must stop.
 *
 * The format (binlog v4, as MariaDB 10.x writes it): 4 magic bytes, then events, each a 19-byte header (timestamp,
 * type, server_id, length, the position after it, flags) and a body; with binlog_checksum CRC32 (the default) every
 * event ends with a CRC32 of the rest of it, which the walk checks. The first event, the format description, says
 * whether checksums are on and when the server created the file. A group starts with a GTID event and ends with an
 * XID event (a transactional commit), a COMMIT or ROLLBACK query, an XA PREPARE, or, for a GTID flagged standalone
 * (DDL), the one query after it. Files end with a ROTATE (naming the next file) or a STOP event, or with neither when
 * the server was killed.
 *
 * The walk streams: it holds the header and at most a small part of one event's body, never a file.
 */
import { createHash, Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { crc32 } from 'node:zlib';
import { BINLOG_FILE_PATTERN, BINLOG_FORMAT_VERSION, BinlogIndex } from '../../../lib/contract';
import { AgentError } from '../shared/errors';

export const BINLOG_MAGIC = Buffer.from([0xfe, 0x62, 0x69, 0x6e]);
export const EVENT_HEADER_BYTES = 19;
/** The largest event a server can write (max_allowed_packet's ceiling); longer is a damaged file. */
const MAX_EVENT_BYTES = 1024 * 1024 * 1024;
/** The most of a query event's body read to see whether it is COMMIT or ROLLBACK. */
const QUERY_HEAD_BYTES = 4096;

export enum BinlogEventType {
  QUERY = 2,
  STOP = 3,
  ROTATE = 4,
  FORMAT_DESCRIPTION = 15,
  XID = 16,
  XA_PREPARE = 38,
  GTID = 162,
  QUERY_COMPRESSED = 165,
}

/** The flag the server sets in the format description while the file is open; cleared in place when it closes. */
const BINLOG_IN_USE_FLAG = 0x1;
const GTID_STANDALONE_FLAG = 0x1;
const CHECKSUM_CRC32 = 1;

/** A file that does not read as a binlog: damaged, cut in the middle of an event where it should be whole, or not one. */
export class BinlogFormatError extends AgentError {
  constructor(message: string) {
    super(message);
    this.name = 'BinlogFormatError';
  }
}

/** The last whole event group (transaction) of a walk. */
export interface BinlogGroup {
  readonly start: number;
  readonly end: number;
  /** The time of its latest event, Unix seconds: when it committed, to the second. */
  readonly time: number;
  /** domain-server-sequence, from its GTID event. */
  readonly gtid: string;
}

/** What a walk found. Positions are byte offsets in the file, as the server numbers them. */
export interface BinlogWalk {
  /** The end of the last whole event (4 for a file of the magic bytes alone, 0 before them). */
  readonly size: number;
  /** SHA-256 (hex) of the bytes up to `size`. */
  readonly sha256: string;
  /** SHA-256 of the bytes from the end of the format description to `size`: what a re-fetched copy must repeat. */
  readonly afterFormatSha256: string;
  /** Bytes after `size`: the start of an event not (yet) whole. */
  readonly trailing: number;
  readonly events: number;
  /** From the format description, once it is whole. */
  readonly format?: { readonly serverId: number; readonly created: number; readonly serverVersion: string; readonly end: number };
  /** The last event is a ROTATE or a STOP. */
  readonly closed: boolean;
  readonly nextFile?: string;
  /** The end of the last event outside an unfinished group: replay of these bytes ends there at the latest. */
  readonly groupsEnd: number;
  readonly lastGroup?: BinlogGroup;
  /** [time, start] of each group whose time is later than that of every group before it in the file. */
  readonly marks: ReadonlyArray<readonly [number, number]>;
}

interface OpenGroup {
  start: number;
  time: number;
  gtid: string;
  standalone: boolean;
}

/** Feed it a binlog file's bytes from its start with push(), then read the walk with result(). */
export class BinlogWalker {
  private position = 0;
  /** Every byte pushed. */
  private consumed = 0;
  private readonly header = Buffer.alloc(EVENT_HEADER_BYTES);
  private headerFill = 0;
  /** The event being read: its header fields, and how much of it has been seen. */
  private event?: { start: number; type: number; timestamp: number; serverId: number; length: number; next: number; flags: number; seen: number };
  private body: Buffer[] = [];
  private bodyKept = 0;
  private bodyWanted = 0;
  private crc = 0;
  private readonly stored = Buffer.alloc(4);
  private checksums = false;
  private readonly hash: Hash = createHash('sha256');
  private afterFormat?: Hash;
  private wholeHash?: Hash;
  private wholeAfterFormat?: Hash;
  private size = 0;
  private events = 0;
  private format?: BinlogWalk['format'];
  private lastType?: number;
  private nextFile?: string;
  private group?: OpenGroup;
  private groupsEnd = 0;
  private lastGroup?: BinlogGroup;
  private readonly marks: Array<readonly [number, number]> = [];

  /**
   * @param name the file's name, for messages
   * @param onGroup called with each whole group, in order
   */
  constructor(private readonly name: string, private readonly onGroup?: (group: BinlogGroup) => void) {}

  push(chunk: Buffer): void {
    this.consumed += chunk.length;
    let offset = 0;
    let boundary = -1;
    let hashed = 0;
    while (offset < chunk.length) {
      if (this.position < 4) {
        const take = Math.min(4 - this.position, chunk.length - offset);
        for (let i = 0; i < take; i++) {
          if (chunk[offset + i] !== BINLOG_MAGIC[this.position + i]) throw new BinlogFormatError(`${this.name} does not start with a binlog's magic bytes (fe 62 69 6e): it is not a binlog file`);
        }
        offset += take;
        this.position += take;
        if (this.position === 4) {
          boundary = offset;
          this.size = 4;
          this.groupsEnd = 4;
        }
        continue;
      }
      if (!this.event) {
        const take = Math.min(EVENT_HEADER_BYTES - this.headerFill, chunk.length - offset);
        chunk.copy(this.header, this.headerFill, offset, offset + take);
        this.headerFill += take;
        offset += take;
        if (this.headerFill < EVENT_HEADER_BYTES) continue;
        this.beginEvent();
        this.consume(this.header);
        continue;
      }
      const take = Math.min(this.event.length - this.event.seen, chunk.length - offset);
      this.consume(chunk.subarray(offset, offset + take));
      offset += take;
      if (this.event.seen === this.event.length) {
        const format = this.event.type === BinlogEventType.FORMAT_DESCRIPTION;
        this.endEvent();
        boundary = offset;
        if (format) {
          this.hash.update(chunk.subarray(hashed, offset));
          hashed = offset;
          this.afterFormat = createHash('sha256');
        }
      }
    }
    // Hashed up to the last whole event in this chunk, a copy kept, then the rest.
    if (boundary >= hashed) {
      this.update(chunk.subarray(hashed, boundary));
      this.wholeHash = this.hash.copy();
      this.wholeAfterFormat = this.afterFormat?.copy();
      hashed = boundary;
    }
    this.update(chunk.subarray(hashed));
  }

  private update(bytes: Buffer): void {
    this.hash.update(bytes);
    this.afterFormat?.update(bytes);
  }

  private beginEvent(): void {
    const h = this.header;
    const event = {
      start: this.position, timestamp: h.readUInt32LE(0), type: h[4], serverId: h.readUInt32LE(5), length: h.readUInt32LE(9),
      next: h.readUInt32LE(13), flags: h.readUInt16LE(17), seen: 0,
    };
    const where = `${this.name} at position ${event.start}`;
    if (this.lastType === BinlogEventType.ROTATE || this.lastType === BinlogEventType.STOP) {
      throw new BinlogFormatError(`${where}: an event after the file's ${this.lastType === BinlogEventType.ROTATE ? 'ROTATE' : 'STOP'} event, which ends a file`);
    }
    const minimum = EVENT_HEADER_BYTES + (this.checksums ? 4 : 0);
    if (event.length < minimum || event.length > MAX_EVENT_BYTES) throw new BinlogFormatError(`${where}: an event of ${event.length} bytes, which no server writes: the file is damaged`);
    if (event.next !== event.start + event.length) {
      throw new BinlogFormatError(`${where}: the event says the next one is at ${event.next}, but it is ${event.length} bytes long (so ${event.start + event.length}): the file is damaged or spliced`);
    }
    if (this.events === 0 && event.type !== BinlogEventType.FORMAT_DESCRIPTION) throw new BinlogFormatError(`${where}: the first event is not a format description (type ${event.type})`);
    this.event = event;
    this.body = [];
    this.bodyKept = 0;
    this.bodyWanted = this.wantedBody(event.type, event.length);
    this.crc = 0;
  }

  /** How much of an event (header included) is kept to read it. */
  private wantedBody(type: number, length: number): number {
    switch (type) {
      case BinlogEventType.FORMAT_DESCRIPTION:
      case BinlogEventType.GTID:
      case BinlogEventType.ROTATE:
        return Math.min(length, 64 * 1024);
      case BinlogEventType.QUERY:
        return Math.min(length, QUERY_HEAD_BYTES);
      default:
        return 0;
    }
  }

  private consume(bytes: Buffer): void {
    const e = this.event!;
    if (this.bodyKept < this.bodyWanted) {
      const keep = bytes.subarray(0, this.bodyWanted - this.bodyKept);
      this.body.push(Buffer.from(keep));
      this.bodyKept += keep.length;
    }
    if (this.checksums || this.events === 0) {
      // The last 4 bytes are the stored CRC32 (for the format description, whatever its setting says).
      const crcEnd = e.length - 4;
      const covered = Math.max(0, Math.min(bytes.length, crcEnd - e.seen));
      if (covered > 0 && e.type !== BinlogEventType.FORMAT_DESCRIPTION) this.crc = crc32(bytes.subarray(0, covered), this.crc);
      for (let i = covered; i < bytes.length; i++) this.stored[e.seen + i - crcEnd] = bytes[i];
    }
    e.seen += bytes.length;
  }

  private endEvent(): void {
    const e = this.event!;
    const where = `${this.name} at position ${e.start}`;
    const kept = Buffer.concat(this.body);
    if (e.type === BinlogEventType.FORMAT_DESCRIPTION) this.readFormat(kept, e);
    if (this.checksums) {
      let crc = this.crc;
      if (e.type === BinlogEventType.FORMAT_DESCRIPTION) {
        // The server clears the in-use flag in place when it closes the file; the checksum is of the event without it.
        const copy = Buffer.from(kept.subarray(0, e.length - 4));
        copy.writeUInt16LE(copy.readUInt16LE(17) & ~BINLOG_IN_USE_FLAG, 17);
        crc = crc32(copy);
      }
      if (crc !== this.stored.readUInt32LE(0)) throw new BinlogFormatError(`${where}: the event fails its CRC32 check: the file is damaged`);
    }
    const bodyEnd = e.length - (this.checksums ? 4 : 0);
    const groupEnds = (() => {
      switch (e.type) {
        case BinlogEventType.GTID:
          this.beginGroup(kept, e);
          return false;
        case BinlogEventType.XID:
        case BinlogEventType.XA_PREPARE:
          return this.group !== undefined;
        case BinlogEventType.QUERY:
          return this.group !== undefined && (this.group.standalone || isCommitOrRollback(kept, bodyEnd, this.format));
        case BinlogEventType.QUERY_COMPRESSED:
          return this.group?.standalone === true;
        case BinlogEventType.ROTATE:
          this.nextFile = readRotate(kept, bodyEnd, where);
          return false;
        default:
          return false;
      }
    })();
    const end = e.start + e.length;
    if (this.group) this.group.time = Math.max(this.group.time, e.timestamp);
    if (groupEnds) {
      const g = this.group!;
      this.lastGroup = { start: g.start, end, time: g.time, gtid: g.gtid };
      this.onGroup?.(this.lastGroup);
      if (this.marks.length === 0 || g.time > this.marks[this.marks.length - 1][0]) this.marks.push([g.time, g.start]);
      this.group = undefined;
    }
    if (!this.group) this.groupsEnd = end;
    this.position = end;
    this.size = end;
    this.events++;
    this.lastType = e.type;
    this.event = undefined;
    this.headerFill = 0;
  }

  private readFormat(kept: Buffer, e: { start: number; length: number; timestamp: number; serverId: number }): void {
    if (e.start !== 4 || kept.length < EVENT_HEADER_BYTES + 57 + 5) throw new BinlogFormatError(`${this.name}: the format description at position ${e.start} is not one MariaDB writes`);
    const version = kept.subarray(EVENT_HEADER_BYTES + 2, EVENT_HEADER_BYTES + 52);
    const serverVersion = version.subarray(0, version.indexOf(0) >= 0 ? version.indexOf(0) : version.length).toString('latin1');
    const algorithm = kept[e.length - 5];
    if (algorithm !== 0 && algorithm !== CHECKSUM_CRC32) throw new BinlogFormatError(`${this.name}: checksum algorithm ${algorithm} is not one MariaDB writes`);
    this.checksums = algorithm === CHECKSUM_CRC32;
    this.format = { serverId: e.serverId, created: e.timestamp, serverVersion, end: e.start + e.length };
  }

  private beginGroup(kept: Buffer, e: { start: number; timestamp: number; serverId: number }): void {
    const body = kept.subarray(EVENT_HEADER_BYTES);
    if (body.length < 13) throw new BinlogFormatError(`${this.name} at position ${e.start}: a GTID event too short to read`);
    const sequence = body.readBigUInt64LE(0);
    const domain = body.readUInt32LE(8);
    // A GTID while a group is open: that group never ended (a server killed mid-write); it is not counted.
    this.group = { start: e.start, time: e.timestamp, gtid: `${domain}-${e.serverId}-${sequence}`, standalone: (body[12] & GTID_STANDALONE_FLAG) !== 0 };
  }

  /** The walk so far. Bytes after the last whole event are counted in `trailing`, never in `size`. */
  result(): BinlogWalk {
    const whole = this.position === this.size && !this.event && this.headerFill === 0;
    const hash = whole ? this.hash.copy() : this.wholeHash?.copy() ?? createHash('sha256');
    const after = whole ? this.afterFormat?.copy() : this.wholeAfterFormat?.copy();
    const size = this.size;
    return {
      size, sha256: size === 0 ? createHash('sha256').digest('hex') : hash.digest('hex'), afterFormatSha256: (after ?? createHash('sha256')).digest('hex'),
      trailing: this.consumed - size, events: this.events, format: this.format,
      closed: this.lastType === BinlogEventType.ROTATE || this.lastType === BinlogEventType.STOP, nextFile: this.nextFile,
      groupsEnd: this.groupsEnd, lastGroup: this.lastGroup, marks: [...this.marks],
    };
  }
}

/** A query event's text is COMMIT or ROLLBACK (it ends a group that is not standalone). */
function isCommitOrRollback(kept: Buffer, bodyEnd: number, format: BinlogWalk['format']): boolean {
  if (!format) return false;
  // Query post-header: thread id (4), exec time (4), database length (1), error code (2), status variables' length (2).
  const post = EVENT_HEADER_BYTES;
  if (kept.length < post + 13) return false;
  const dbLength = kept[post + 8];
  const statusLength = kept.readUInt16LE(post + 11);
  const textStart = post + 13 + statusLength + dbLength + 1;
  const text = kept.subarray(textStart, Math.min(bodyEnd, kept.length, textStart + 16)).toString('latin1').trim().toUpperCase();
  return text === 'COMMIT' || text === 'ROLLBACK';
}

function readRotate(kept: Buffer, bodyEnd: number, where: string): string {
  const name = kept.subarray(EVENT_HEADER_BYTES + 8, Math.min(bodyEnd, kept.length)).toString('latin1');
  if (!BINLOG_FILE_PATTERN.test(name)) throw new BinlogFormatError(`${where}: a ROTATE event names ${JSON.stringify(name)}, which is not a binlog file name`);
  return name;
}

/** Walks a file (or its first `length` bytes) as it is now. */
export async function walkBinlogFile(path: string, name: string, length?: number, onGroup?: (group: BinlogGroup) => void): Promise<BinlogWalk> {
  const walker = new BinlogWalker(name, onGroup);
  if (length === 0) return walker.result();
  for await (const chunk of createReadStream(path, length === undefined ? {} : { start: 0, end: length - 1 })) walker.push(chunk as Buffer);
  return walker.result();
}

/** Where the index's object sits, besides what the walk found. */
export interface BinlogIndexPlace {
  readonly source: string;
  readonly stream: string;
  readonly file: string;
  readonly key: string;
}

/** The index of a walked object (BinlogIndex). The walk must be of whole events and have read the format description. */
export function binlogIndexOf(walk: BinlogWalk, place: BinlogIndexPlace): BinlogIndex {
  if (!walk.format) throw new BinlogFormatError(`${place.file}: no whole format description, so there is nothing to index`);
  return {
    formatVersion: BINLOG_FORMAT_VERSION, source: place.source, stream: place.stream, file: place.file, key: place.key,
    size: walk.size, sha256: walk.sha256, serverId: walk.format.serverId, created: new Date(walk.format.created * 1000).toISOString(),
    closed: walk.closed, ...(walk.nextFile ? { nextFile: walk.nextFile } : {}), groupsEnd: walk.groupsEnd,
    ...(walk.lastGroup ? { lastGroupTime: new Date(walk.lastGroup.time * 1000).toISOString() } : {}),
    marks: walk.marks,
  };
}

/**
 * What is wrong with a stored index, compared with the walk of the bytes it indexes, or undefined when they agree: a
 * reader's check, since the streamer that wrote the index is the least trusted writer.
 */
export function binlogIndexProblem(index: BinlogIndex, walk: BinlogWalk): string | undefined {
  if (walk.trailing !== 0) return `the object's bytes end ${walk.trailing} bytes into an event, where an object ends at a whole event`;
  const expected = binlogIndexOf(walk, index);
  for (const field of ['size', 'sha256', 'serverId', 'created', 'closed', 'nextFile', 'groupsEnd', 'lastGroupTime'] as const) {
    if (index[field] !== expected[field]) return `its index says ${field} ${JSON.stringify(index[field])}, the bytes give ${JSON.stringify(expected[field])}`;
  }
  if (JSON.stringify(index.marks) !== JSON.stringify(expected.marks)) return 'its index lists other times and positions (marks) than the bytes give';
  return undefined;
}
