/**
 * Counts the rows of each table in a mysqldump stream, as it flows, without buffering it.
 *
 * mysqldump writes each table's data as `INSERT INTO `name` VALUES (…),(…),…;` statements that
 * start a line (with a column list, `INSERT INTO `name` (`a`, `c`) VALUES …`, when the table has INVISIBLE
 * columns or --complete-insert is given: everything between the name and VALUES is skipped) (MariaDB 10.11 puts each tuple on a line of its own, older ones keep the statement on
 * one line). Rows are the top-level parenthesised tuples after VALUES. Strings may hold any
 * of `(`, `)`, `,`, `;` and quotes, escaped with backslashes (or doubled quotes), so the scanner
 * tracks string state byte by byte; binary columns are hex with --hex-blob. Input arrives in
 * arbitrary chunks, so all state survives chunk boundaries.
 */

const enum Mode {
  /** At the start of a line: matching it against the INSERT prefix. */
  LINE_START,
  /** Somewhere in a line that is not an INSERT: skip to the newline. */
  SKIP_LINE,
  /** Inside the backquoted table name. */
  TABLE_NAME,
  /** After the name, up to the VALUES keyword: a column list, if any, is skipped. */
  BEFORE_VALUES,
  /** After VALUES, before the first tuple's parenthesis. */
  AFTER_VALUES,
  /** In the VALUES list. */
  VALUES,
}

const PREFIX = Buffer.from('INSERT INTO `');
/** The keyword that ends the column list, matched case-insensitively (upper case here). */
const KEYWORD = Buffer.from('VALUES');
const NEWLINE = 0x0a;
const BACKQUOTE = 0x60;
const OPEN = 0x28;
const CLOSE = 0x29;
const SEMICOLON = 0x3b;
const BACKSLASH = 0x5c;
const SINGLE = 0x27;
const DOUBLE = 0x22;

/** ASCII letters, digits and `_`: a keyword must not be glued to one of these. */
function isWordByte(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a) || c === 0x5f;
}

export class SqlRowCounter {
  private readonly counts = new Map<string, number>();
  private mode = Mode.LINE_START;
  private matched = 0;
  private name: number[] = [];
  private pendingBackquote = false;
  private table = '';
  private depth = 0;
  /** The quote character of the string we are in, or 0. */
  private quote = 0;
  private escaped = false;
  /** Before VALUES: whether we are inside a backquoted column name, and how much of VALUES matched. */
  private inBackquote = false;
  private keywordMatched = 0;
  private previous = 0;

  /** Feeds the next chunk of the dump. */
  write(chunk: Uint8Array): void {
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i];
      switch (this.mode) {
        case Mode.VALUES:
          if (this.quote) {
            if (this.escaped) this.escaped = false;
            else if (c === BACKSLASH) this.escaped = true;
            else if (c === this.quote) this.quote = 0;
          } else if (c === SINGLE || c === DOUBLE) {
            this.quote = c;
          } else if (c === OPEN) {
            if (this.depth++ === 0) this.counts.set(this.table, (this.counts.get(this.table) ?? 0) + 1);
          } else if (c === CLOSE) {
            this.depth--;
          } else if (c === SEMICOLON && this.depth === 0) {
            this.mode = Mode.SKIP_LINE;
          }
          break;
        case Mode.LINE_START:
          if (c === PREFIX[this.matched]) {
            if (++this.matched === PREFIX.length) {
              this.mode = Mode.TABLE_NAME;
              this.name = [];
              this.pendingBackquote = false;
            }
          } else {
            this.mode = c === NEWLINE ? Mode.LINE_START : Mode.SKIP_LINE;
            this.matched = 0;
          }
          break;
        case Mode.SKIP_LINE:
          if (c === NEWLINE) {
            this.mode = Mode.LINE_START;
            this.matched = 0;
          }
          break;
        case Mode.TABLE_NAME:
          // A backquote inside a name is doubled; a single one ends the name.
          if (this.pendingBackquote) {
            this.pendingBackquote = false;
            if (c === BACKQUOTE) {
              this.name.push(c);
              break;
            }
            this.table = Buffer.from(this.name).toString('utf8');
            if (!this.counts.has(this.table)) this.counts.set(this.table, 0);
            this.mode = Mode.BEFORE_VALUES;
            this.inBackquote = false;
            this.keywordMatched = 0;
            this.previous = BACKQUOTE;
            i--; // this byte belongs to what follows the name
          } else if (c === BACKQUOTE) {
            this.pendingBackquote = true;
          } else {
            this.name.push(c);
          }
          break;
        case Mode.BEFORE_VALUES:
          // `INSERT INTO `t` (`a`, `c`) VALUES (`: a column list's parentheses are not a tuple, and its names
          // (backquoted; a doubled backquote toggles twice) may hold anything, VALUES and parentheses included.
          if (this.inBackquote) {
            if (c === BACKQUOTE) this.inBackquote = false;
          } else if (c === BACKQUOTE) {
            this.inBackquote = true;
            this.keywordMatched = 0;
          } else if (c === SEMICOLON) {
            this.mode = Mode.SKIP_LINE;
          } else if ((c & 0xdf) === KEYWORD[this.keywordMatched] && (this.keywordMatched > 0 || !isWordByte(this.previous))) {
            if (++this.keywordMatched === KEYWORD.length) this.mode = Mode.AFTER_VALUES;
          } else {
            this.keywordMatched = (c & 0xdf) === KEYWORD[0] && !isWordByte(this.previous) ? 1 : 0;
          }
          this.previous = c;
          break;
        case Mode.AFTER_VALUES:
          // The first parenthesis after VALUES starts the first tuple.
          if (c === OPEN) {
            this.mode = Mode.VALUES;
            this.depth = 0;
            this.quote = 0;
            this.escaped = false;
            i--;
          } else if (c === SEMICOLON) {
            this.mode = Mode.SKIP_LINE;
          }
          break;
      }
    }
  }

  /** Rows per table seen so far, including tables whose INSERTs held no rows. */
  result(): Map<string, number> {
    return new Map(this.counts);
  }

  /** True when the stream ended in the middle of a statement: the dump is incomplete. */
  get midStatement(): boolean {
    return this.mode === Mode.VALUES || this.mode === Mode.TABLE_NAME || this.mode === Mode.BEFORE_VALUES || this.mode === Mode.AFTER_VALUES;
  }
}
