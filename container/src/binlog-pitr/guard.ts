/**
 * A look at every event a binlog replay would hand to mariadb-binlog, before any of it runs. mariadb-binlog turns
 * events into text for the client: row events become BINLOG statements (which need BINLOG REPLAY and apply rows
 * without the table privileges the replaying account would otherwise need: checked on MariaDB 10.11, an account with
 * rights on one database and BINLOG REPLAY wrote rows into the mysql schema), query events reach the client as they
 * are stored, and many events are printed as comment lines holding names from the binlog (a table map's database and
 * table, the format description's server version, a checkpoint's file name, a user variable's name, a rotate's next
 * file). A newline in such a name ends the comment and the client runs the next line: a table created with a newline
 * in its name by any application user is enough. So this is an allow-list over EVERY event of the bytes replayed:
 *
 * - only the event types a ROW-format replay needs; any other type (incidents, LOAD DATA's blocks, compressed events,
 *   encryption, XA…) is refused in words;
 * - every name mariadb-binlog prints must hold no byte below 0x20 and no 0x7f (an annotation, printed line by line
 *   behind `#Q>`, may hold tabs and line breaks);
 * - a query's text must not hold the letters b-i-n-l-o-g in any case, anywhere (quoted or not, whatever byte comes
 *   before them): in a ROW-format binlog queries are DDL and transaction control, and no tokenising can know how the
 *   server will read bytes under the character set a forged event chooses;
 * - a query's time zone and catalog, printed inside quotes, must hold no quote, backslash or control byte, and a
 *   status variable this walk does not know is refused.
 *
 * It streams over the verified local file, holding one event at a time, and counts the groups of the range replayed
 * that touch the dumped database (a table map or a query naming it) and those of other databases, which mariadb-binlog
 * leaves out.
 */
import { createReadStream } from 'node:fs';
import { AgentError } from '../shared/errors';

const HEADER = 19;
/** The longest event read whole (queries, annotations): a longer one is refused unread. */
export const MAX_QUERY_BYTES = 64 * 1024 * 1024;

const QUERY = 2;
const STOP = 3;
const ROTATE = 4;
const INTVAR = 5;
const RAND = 13;
const USER_VAR = 14;
const FORMAT_DESCRIPTION = 15;
const XID = 16;
const TABLE_MAP = 19;
const ANNOTATE_ROWS = 160;
const BINLOG_CHECKPOINT = 161;
const GTID = 162;
const GTID_LIST = 163;

/** The event types a ROW-format replay needs, by name for messages. */
const ALLOWED = new Map<number, string>([
  [FORMAT_DESCRIPTION, 'format description'], [GTID, 'GTID'], [GTID_LIST, 'GTID list'], [BINLOG_CHECKPOINT, 'binlog checkpoint'], [QUERY, 'query'],
  [TABLE_MAP, 'table map'], [23, 'write rows v1'], [24, 'update rows v1'], [25, 'delete rows v1'], [30, 'write rows'], [31, 'update rows'],
  [32, 'delete rows'], [XID, 'XID'], [ANNOTATE_ROWS, 'annotate rows'], [INTVAR, 'intvar'], [RAND, 'rand'], [USER_VAR, 'user variable'],
  [ROTATE, 'rotate'], [STOP, 'stop'],
]);
/** Event types read whole (the others only by their header). */
const READ_WHOLE = new Set([FORMAT_DESCRIPTION, QUERY, TABLE_MAP, ANNOTATE_ROWS, BINLOG_CHECKPOINT, USER_VAR, ROTATE]);

const WORD = Buffer.from('binlog');

/** Whether text holds the ASCII letters b-i-n-l-o-g, in any case, anywhere. */
export function holdsBinlogStatement(text: Buffer): boolean {
  for (let i = 0; i + WORD.length <= text.length; i++) {
    let j = 0;
    while (j < WORD.length && (text[i + j] | 0x20) === WORD[j]) j++;
    if (j === WORD.length) return true;
  }
  return false;
}

/** The first byte mariadb-binlog would print raw into a comment or quoted string that is not allowed there, or -1. */
function controlByte(bytes: Buffer, allowLineBreaks = false): number {
  for (const c of bytes) {
    if (allowLineBreaks && (c === 0x09 || c === 0x0a || c === 0x0d)) continue;
    if (c < 0x20 || c === 0x7f) return c;
  }
  return -1;
}

/** What the guard counted in the range replayed. */
export interface GuardedRange {
  /** Whole groups that start in the range. */
  readonly groups: number;
  /** ...of which a table map or query names the dumped database. */
  readonly databaseGroups: number;
  /** Whether an event starts at `from` (or the range read ends there): replay does not begin inside one. */
  readonly fromAtEvent: boolean;
}

class Refusal extends AgentError {}

/** Reads the query event's status variables; refuses one it does not know, and a quoted string that could leave its quotes. */
function checkStatusVariables(vars: Buffer, where: string): void {
  const quoted = (value: Buffer, what: string) => {
    if (controlByte(value) >= 0 || value.includes(0x27) || value.includes(0x5c)) {
      throw new Refusal(`${where}: the query's ${what} ${JSON.stringify(value.toString('latin1'))} holds a quote, backslash or control byte, which mariadb-binlog would print inside quotes`);
    }
  };
  const fixed: Record<number, number> = { 0: 4, 1: 8, 3: 4, 4: 6, 7: 2, 8: 2, 9: 8, 10: 4, 13: 3, 128: 3, 129: 8, 130: 1 };
  let i = 0;
  while (i < vars.length) {
    const code = vars[i++];
    if (fixed[code] !== undefined) {
      i += fixed[code];
    } else if (code === 2) { // catalog (length, name, NUL)
      const length = vars[i];
      i += 1 + length + 1;
    } else if (code === 5 || code === 6) { // time zone, catalog: length, name
      const length = vars[i];
      quoted(vars.subarray(i + 1, i + 1 + length), code === 5 ? 'time zone' : 'catalog');
      i += 1 + length;
    } else if (code === 11) { // invoker: user, host
      const user = vars[i];
      const host = vars[i + 1 + user];
      i += 2 + user + host;
    } else if (code === 12) { // updated databases: a count, then NUL-terminated names
      const count = vars[i++];
      for (let n = 0; n < count && count !== 254 && i < vars.length; n++) {
        const end = vars.indexOf(0, i);
        i = end < 0 ? vars.length : end + 1;
      }
    } else {
      throw new Refusal(`${where}: a query with status variable ${code}, which this restore does not read`);
    }
    if (i > vars.length) throw new Refusal(`${where}: the query's status variables run past their length`);
  }
}

/** The database a query or table map names, read from an event (header included, checksum excluded). */
function checkEvent(type: number, event: Buffer, where: string): string | undefined {
  const body = event.subarray(HEADER);
  const name = (bytes: Buffer, what: string, allowLineBreaks = false) => {
    const c = controlByte(bytes, allowLineBreaks);
    if (c >= 0) {
      throw new Refusal(`${where}: the ${what} ${JSON.stringify(bytes.subarray(0, 200).toString('latin1'))} holds the byte 0x${c.toString(16).padStart(2, '0')}, ` +
        'and mariadb-binlog prints it raw where a line break or control byte would turn the rest into SQL the client runs');
    }
    return bytes;
  };
  const short = () => new Refusal(`${where}: a ${ALLOWED.get(type)} event too short to read`);
  switch (type) {
    case FORMAT_DESCRIPTION: {
      if (body.length < 52) throw short();
      const version = body.subarray(2, 52);
      const end = version.indexOf(0);
      name(version.subarray(0, end < 0 ? version.length : end), 'server version');
      return undefined;
    }
    case QUERY: {
      if (body.length < 13) throw short();
      const dbLength = body[8];
      const statusLength = body.readUInt16LE(11);
      if (13 + statusLength + dbLength + 1 > body.length) throw short();
      checkStatusVariables(body.subarray(13, 13 + statusLength), where);
      const db = name(body.subarray(13 + statusLength, 13 + statusLength + dbLength), 'query\'s database');
      const text = body.subarray(13 + statusLength + dbLength + 1);
      if (holdsBinlogStatement(text)) {
        throw new Refusal(`${where}: a query whose text holds the word BINLOG (${JSON.stringify(text.subarray(0, 200).toString('latin1'))}): a binlog's row ` +
          'events reach the server as BINLOG statements, which apply rows without table privileges, so a query carrying one could write anywhere, ' +
          'the mysql schema included');
      }
      return db.toString('latin1');
    }
    case TABLE_MAP: {
      // table id (6), flags (2), database (length, name, NUL), table (length, name, NUL), ...
      if (body.length < 9) throw short();
      const dbLength = body[8];
      if (body.length < 9 + dbLength + 2) throw short();
      const db = name(body.subarray(9, 9 + dbLength), 'table map\'s database');
      const tableLength = body[9 + dbLength + 1];
      if (body.length < 9 + dbLength + 2 + tableLength) throw short();
      name(body.subarray(9 + dbLength + 2, 9 + dbLength + 2 + tableLength), 'table map\'s table name');
      return db.toString('latin1');
    }
    case ANNOTATE_ROWS:
      // Printed line by line, each behind `#Q> `: tabs and line breaks stay comments.
      name(body, 'annotated statement', true);
      return undefined;
    case BINLOG_CHECKPOINT: {
      if (body.length < 4) throw short();
      name(body.subarray(4, 4 + body.readUInt32LE(0)), 'checkpoint\'s file name');
      return undefined;
    }
    case USER_VAR: {
      if (body.length < 4) throw short();
      name(body.subarray(4, 4 + body.readUInt32LE(0)), 'user variable\'s name');
      return undefined;
    }
    case ROTATE:
      name(body.subarray(8), 'rotate\'s next file');
      return undefined;
    default:
      return undefined;
  }
}

/**
 * Reads every event of a verified binlog file (positions from its start, at event boundaries) up to `to`, the end of
 * what is replayed, and throws in words at the first that mariadb-binlog must not print. `from` is where replay starts:
 * mariadb-binlog prints the file's format description and the events from there on (checked on 10.11: a checkpoint
 * before the start position is not printed), so those are the events checked, and groups before it are not counted.
 */
export async function guardBinlogFile(path: string, file: string, from: number, to: number, database: string): Promise<GuardedRange> {
  let crc = 0;
  let buffer: Buffer = Buffer.alloc(0);
  let position = 4;
  let skip = 0;
  let groups = 0;
  let databaseGroups = 0;
  let inGroup = false;
  let touches = false;
  let fromAtEvent = from === 4 || from === to;
  const endGroup = () => {
    if (inGroup && touches) databaseGroups++;
    inGroup = false;
    touches = false;
  };
  const wanted = Buffer.from(database, 'utf8');
  try {
    if (to <= 4) return { groups: 0, databaseGroups: 0, fromAtEvent };
    for await (const read of createReadStream(path, { start: 4, end: to - 1, highWaterMark: 1024 * 1024 })) {
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
        const where = `${file} at position ${position}`;
        if (position === from) fromAtEvent = true;
        // mariadb-binlog prints the format description and then the events from the start position on, nothing before.
        const printed = position === 4 || position >= from;
        if (printed && !ALLOWED.has(type)) {
          throw new Refusal(`${where}: an event of type ${type}, which a ROW-format replay does not need and this restore does not pass to mariadb-binlog ` +
            '(incidents, LOAD DATA blocks, compressed events (log_bin_compress), encryption and XA are among them)');
        }
        if (length < HEADER + crc) throw new Refusal(`${where}: an event of ${length} bytes, shorter than its header`);
        if (printed && READ_WHOLE.has(type)) {
          if (length > MAX_QUERY_BYTES) throw new Refusal(`${where}: a ${ALLOWED.get(type)} event of ${length} bytes, more than the ${MAX_QUERY_BYTES} read before a replay`);
          if (buffer.length < length) break;
          if (type === FORMAT_DESCRIPTION) {
            if (position !== 4) throw new Refusal(`${where}: a second format description`);
            crc = buffer[length - 5] === 1 ? 4 : 0;
          }
          const db = checkEvent(type, buffer.subarray(0, length - (type === FORMAT_DESCRIPTION ? 4 : crc)), where);
          if (position >= from && db !== undefined && wanted.equals(Buffer.from(db, 'latin1'))) touches = true;
        } else if (buffer.length < length) {
          skip = length - buffer.length;
          buffer = Buffer.alloc(0);
          position += length;
          if (type === GTID) {
            endGroup();
            inGroup = position - length >= from;
            if (inGroup) groups++;
          } else if (type === XID) endGroup();
          break;
        }
        if (type === GTID) {
          endGroup();
          inGroup = position >= from;
          if (inGroup) groups++;
        } else if (type === XID) endGroup();
        buffer = buffer.subarray(length);
        position += length;
      }
    }
    endGroup();
    if (buffer.length || skip) throw new Refusal(`${file}: the range replayed ends at ${to}, inside the event at ${position}`);
  } catch (err) {
    if (err instanceof Refusal) {
      throw new AgentError(`${err.message}. Nothing was replayed: restore to a time before it, or read the binlog (mariadb-binlog) and replay by hand what you trust`);
    }
    throw err;
  }
  return { groups, databaseGroups, fromAtEvent };
}
