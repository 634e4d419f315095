/**
 * A look at the SQL a binlog replay would run, before any of it runs. Replaying row events needs BINLOG statements,
 * and so the BINLOG REPLAY privilege; a BINLOG statement's row events are applied without the table privileges the
 * replaying account would otherwise need (checked here on MariaDB 10.11: an account with rights on one database and
 * BINLOG REPLAY wrote rows into a table of the mysql schema). mariadb-binlog writes such statements only for the row
 * events of the database it is told (--database), but a query event's text reaches the client as it is stored: a
 * forged binlog could carry `BINLOG '…'` (or `BINLOG @a, @b`) in a query and, through it, rows for mysql.global_priv.
 * So every query event in the range replayed is read here, and one whose text holds the word BINLOG outside a quoted
 * string or name is refused; its text is read both with and without backslash escapes (the sql_mode a forged event
 * sets decides which the server uses), so that no quoting trick hides the word. Comments count as text.
 *
 * The walk streams over the verified local file, from the replay's start to its stop, holding one query at a time.
 */
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { AgentError } from '../shared/errors';

const HEADER = 19;
const QUERY = 2;
const QUERY_COMPRESSED = 165;
const FORMAT_DESCRIPTION = 15;
/** The query event's fixed part (thread id, execution time, database length, error code, status variables' length). */
const QUERY_POST_HEADER = 13;
/** The longest query read: a longer one is refused unread (max_allowed_packet is rarely near it). */
export const MAX_QUERY_BYTES = 64 * 1024 * 1024;

const isWordByte = (c: number) => (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a) || c === 0x5f || c === 0x24 || c >= 0x80;
const WORD = Buffer.from('binlog');

function wordAt(text: Buffer, start: number, end: number): boolean {
  if (end - start !== WORD.length) return false;
  for (let i = 0; i < WORD.length; i++) if ((text[start + i] | 0x20) !== WORD[i]) return false;
  return true;
}

function scan(text: Buffer, backslashEscapes: boolean): boolean {
  let quote = 0;
  let wordStart = -1;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text[i] : 0x20;
    if (quote) {
      if (backslashEscapes && c === 0x5c && quote !== 0x60) i++;
      else if (c === quote) quote = 0;
      continue;
    }
    if (isWordByte(c)) {
      if (wordStart < 0) wordStart = i;
      continue;
    }
    if (wordStart >= 0 && wordAt(text, wordStart, i)) return true;
    wordStart = -1;
    if (c === 0x27 || c === 0x22 || c === 0x60) quote = c;
  }
  return false;
}

/** Whether SQL text holds the word BINLOG outside quoted strings and names, read with or without backslash escapes. */
export function holdsBinlogStatement(text: Buffer): boolean {
  return scan(text, true) || scan(text, false);
}

/** Whether events carry a CRC32 at their end, from the file's format description (the first event). */
async function checksummed(path: string, file: string): Promise<boolean> {
  const handle = await open(path, 'r');
  try {
    const head = Buffer.alloc(4 + HEADER);
    await handle.read(head, 0, head.length, 0);
    const length = head.readUInt32LE(4 + 9);
    if (head[4 + 4] !== FORMAT_DESCRIPTION || length < HEADER + 57 || length > 4096) throw new AgentError(`${file} does not begin with a format description event`);
    const event = Buffer.alloc(length);
    await handle.read(event, 0, length, 4);
    // binlog version (2), server version (50), creation time (4), header length (1), then one post-header length per type.
    if (event[HEADER + 56] !== HEADER || event[HEADER + 57 + QUERY - 1] !== QUERY_POST_HEADER) {
      throw new AgentError(`${file} describes its events in a layout this restore does not read (header ${event[HEADER + 56]} bytes, query ` +
        `post-header ${event[HEADER + 57 + QUERY - 1]}): refusing to replay it`);
    }
    // MariaDB ends the format description with the checksum algorithm (1 = CRC32) and the event's own checksum.
    return event[length - 5] === 1;
  } finally {
    await handle.close();
  }
}

/** A query event in the range that would run a BINLOG statement: where it is, and the start of its text. */
export interface RefusedQuery {
  readonly position: number;
  readonly text: string;
}

/**
 * Reads every query event that starts in [from, to) of a verified binlog file (positions at event starts) and returns
 * the first whose text holds a BINLOG statement, or undefined. A compressed query event (log_bin_compress) is refused.
 */
export async function findBinlogStatement(path: string, file: string, from: number, to: number): Promise<RefusedQuery | undefined> {
  if (to <= from) return undefined;
  const crc = await checksummed(path, file) ? 4 : 0;
  let buffer: Buffer = Buffer.alloc(0);
  let position = from;
  /** Bytes of an event not read (only its header was needed) still to pass over. */
  let skip = 0;
  for await (const read of createReadStream(path, { start: from, end: to - 1, highWaterMark: 1024 * 1024 })) {
    let chunk = read as Buffer;
    if (skip) {
      const passed = Math.min(skip, chunk.length);
      skip -= passed;
      chunk = chunk.subarray(passed);
    }
    buffer = buffer.length ? Buffer.concat([buffer, chunk]) : chunk;
    while (buffer.length >= HEADER) {
      const type = buffer[4];
      const length = buffer.readUInt32LE(9);
      if (length < HEADER) throw new AgentError(`${file}: an event at ${position} is ${length} bytes long, shorter than its header`);
      if (type === QUERY_COMPRESSED) {
        throw new AgentError(`${file}: the query event at ${position} is compressed (log_bin_compress), which this restore does not read before ` +
          'replaying: restore to a time before it, or replay by hand after reading it (mariadb-binlog shows it)');
      }
      if (type === QUERY) {
        if (length > MAX_QUERY_BYTES) throw new AgentError(`${file}: the query event at ${position} is ${length} bytes, more than the ${MAX_QUERY_BYTES} read before a replay`);
        if (buffer.length < length) break;
        const statusLength = buffer.readUInt16LE(HEADER + 11);
        const dbLength = buffer[HEADER + 8];
        const textStart = HEADER + QUERY_POST_HEADER + statusLength + dbLength + 1;
        const text = buffer.subarray(Math.min(textStart, length - crc), length - crc);
        if (holdsBinlogStatement(text)) return { position, text: text.subarray(0, 200).toString('utf8') };
      } else if (buffer.length < length) {
        skip = length - buffer.length;
        buffer = Buffer.alloc(0);
        position += length;
        break;
      }
      buffer = buffer.subarray(length);
      position += length;
    }
  }
  return undefined;
}
