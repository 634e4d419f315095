/**
 * Restore tests load a MariaDB/MySQL dump as an account made for the load, with rights on the scratch database
 * alone: no FILE, no SUPER, and no SET USER. A dump names a DEFINER for every view, trigger, routine and event
 * (Sakila's have them), and creating an object for another definer needs SET USER or SUPER. Those are exactly the
 * rights the load must not have: with them, the backup (untrusted input) could name root as the definer of a
 * trigger that fires while rows load, or of a SQL SECURITY DEFINER view or routine that validation calls, and run
 * with root's rights, FILE included. So, for restore tests only, every DEFINER clause becomes DEFINER=CURRENT_USER:
 * the objects then belong to the loader and run with its rights, which is all a restore test needs to prove the
 * backup loads and holds its rows. A real restore keeps the dump's definers.
 *
 * This filter is for honest dumps; it is no boundary. A crafted dump may hide a DEFINER from it (in a long line, or
 * split across lines): the server then refuses the object, and the restore test fails, as it should.
 */
import { Transform, TransformCallback } from 'node:stream';

/** Lines mysqldump writes row data on: passed through untouched, never buffered. */
const ROWS = Buffer.from('INSERT INTO ');
/** A statement line longer than this is passed through as it is (mysqldump writes short DDL lines). */
export const MAX_REWRITTEN_LINE = 1024 * 1024;

const NAME = String.raw`(?:\x60(?:[^\x60]|\x60\x60)*\x60|'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*"|[A-Za-z0-9_$.%-]+)`;
const DEFINER = new RegExp(String.raw`\bDEFINER\s*=\s*(?!CURRENT_USER\b)${NAME}(?:\s*@\s*${NAME})?`, 'gi');

/** One line (not row data), with every DEFINER clause naming an account rewritten to DEFINER=CURRENT_USER. */
export function rewriteDefiners(line: string): string {
  return line.replace(DEFINER, 'DEFINER=CURRENT_USER');
}

enum Mode {
  /** At the start of a line, not yet knowing whether it holds rows. */
  START,
  /** Collecting a statement line to rewrite. */
  COLLECT,
  /** Passing the rest of the line through (row data, or a line too long to rewrite). */
  PASS,
}

/** A streaming DEFINER rewriter over a SQL dump; bytes are kept as they are (read and written as latin1). */
export class DefinerRewriter extends Transform {
  private mode = Mode.START;
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    let start = 0;
    while (start < chunk.length) {
      const newline = chunk.indexOf(10, start);
      const end = newline < 0 ? chunk.length : newline + 1;
      this.feed(chunk.subarray(start, end), newline >= 0);
      start = end;
    }
    callback();
  }

  override _flush(callback: TransformCallback): void {
    this.emitPending(this.mode !== Mode.PASS);
    callback();
  }

  private feed(piece: Buffer, endsLine: boolean): void {
    if (this.mode === Mode.PASS) {
      this.push(piece);
      if (endsLine) this.mode = Mode.START;
      return;
    }
    this.pending.push(piece);
    this.pendingBytes += piece.length;
    if (this.mode === Mode.START && (this.pendingBytes >= ROWS.length || endsLine)) {
      const head = Buffer.concat(this.pending).subarray(0, ROWS.length);
      if (head.equals(ROWS)) {
        this.emitPending(false);
        this.mode = endsLine ? Mode.START : Mode.PASS;
        return;
      }
      this.mode = Mode.COLLECT;
    }
    if (this.pendingBytes > MAX_REWRITTEN_LINE) {
      this.emitPending(false);
      this.mode = endsLine ? Mode.START : Mode.PASS;
      return;
    }
    if (endsLine) {
      this.emitPending(true);
      this.mode = Mode.START;
    }
  }

  private emitPending(rewrite: boolean): void {
    if (this.pendingBytes === 0) return;
    const bytes = Buffer.concat(this.pending);
    this.pending = [];
    this.pendingBytes = 0;
    this.push(rewrite ? Buffer.from(rewriteDefiners(bytes.toString('latin1')), 'latin1') : bytes);
  }
}
