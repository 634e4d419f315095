/**
 * Where a MariaDB dump sits in its server's binary log, read from the dump itself as it streams by (as the row counter
 * reads it). `mariadb-dump --single-transaction --master-data=2 --gtid` takes the position of its own consistent
 * snapshot (SHOW STATUS LIKE 'binlog_snapshot_%' inside the snapshot transaction, then BINLOG_GTID_POS of it), with no
 * global read lock, and writes it as two comment lines (MariaDB 10.11):
 *
 *   -- CHANGE MASTER TO MASTER_LOG_FILE='bin.000001', MASTER_LOG_POS=1217;       in the header, before any table
 *   -- SET GLOBAL gtid_slave_pos='0-1-5';                                           after the routines, near the end
 *
 * The database's own objects can hold such lines too (a routine's body is dumped as written, comments and all), so
 * the position is taken from the header only (before the first line that is not a comment), and the GTID from the
 * last such line (the routines come before it). A data line never starts with `--`: strings are escaped on one line.
 */
import { BINLOG_FILE_PATTERN } from '../../../lib/contract';

const CHANGE_MASTER = /^-- CHANGE MASTER TO MASTER_LOG_FILE='([^']*)', MASTER_LOG_POS=(\d{1,20});\s*$/;
const GTID_LINE = /^-- SET GLOBAL gtid_slave_pos='([0-9,-]*)';\s*$/;
/** The most of a line kept to match it: every line looked for is far shorter, and a row's line can be gigabytes. */
const KEPT = 512;
const NEWLINE = 0x0a;

/** The binlog position a dump records, as read; serverId comes from the server. */
export interface DumpPosition {
  readonly file: string;
  readonly position: number;
  readonly gtid?: string;
}

export class DumpCoordinatesReader {
  private line: number[] = [];
  private inHeader = true;
  private file?: string;
  private position?: number;
  private gtid?: string;
  /** A position line that did not read as one: said when the coordinates are asked for. */
  private problem?: string;

  write(chunk: Uint8Array): void {
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i];
      if (c === NEWLINE) {
        this.endLine();
      } else if (this.line.length < KEPT) {
        this.line.push(c);
      }
    }
  }

  private endLine(): void {
    const text = Buffer.from(this.line).toString('latin1');
    this.line = [];
    if (this.inHeader) {
      if (text !== '' && !text.startsWith('--') && !text.startsWith('/*')) {
        this.inHeader = false;
      } else if (text.startsWith('-- CHANGE MASTER TO MASTER_LOG_FILE=') && this.file === undefined) {
        const m = CHANGE_MASTER.exec(text);
        if (!m || !BINLOG_FILE_PATTERN.test(m[1]) || !Number.isSafeInteger(Number(m[2]))) this.problem = `an unreadable position line: ${JSON.stringify(text.slice(0, 120))}`;
        else {
          this.file = m[1];
          this.position = Number(m[2]);
        }
      }
    }
    const gtid = GTID_LINE.exec(text);
    if (gtid) this.gtid = gtid[1];
  }

  /** The position the dump recorded, or why there is none. Called once the dump ended. */
  result(): DumpPosition | { readonly problem: string } {
    if (this.line.length) this.endLine();
    if (this.problem) return { problem: this.problem };
    if (this.file === undefined || this.position === undefined) return { problem: 'no binlog position line (-- CHANGE MASTER TO MASTER_LOG_FILE=…) in its header' };
    return { file: this.file, position: this.position, ...(this.gtid ? { gtid: this.gtid } : {}) };
  }
}
