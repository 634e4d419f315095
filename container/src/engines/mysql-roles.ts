/**
 * The roles companion of a MariaDB/MySQL backup, read as untrusted input. Whoever holds a dump task's credentials
 * can write a companion, so it is never piped to the client as it is: it is split into statements here, and only
 * statements of a few known shapes are kept, each rebuilt from its tokens (comments dropped), so that what runs is
 * exactly what was checked:
 *
 * - `CREATE USER [IF NOT EXISTS] account` with safe attributes only: a password or password hash, an authentication
 *   plugin of SAFE_PLUGINS, REQUIRE, resource limits, password expiry, account locking;
 * - `CREATE ROLE [IF NOT EXISTS] role`;
 * - `GRANT privileges ON` an object of the backed-up database (renamed to the target) `TO` accounts or roles the
 *   companion creates, privileges of OBJECT_PRIVILEGES only (WITH GRANT OPTION allowed there);
 * - `GRANT USAGE ON *.*` (the line SHOW GRANTS writes for every account), with the same safe attributes;
 * - `GRANT role TO account` and `SET DEFAULT ROLE role FOR account`, for roles and accounts the companion creates.
 *
 * Everything else is refused and named by its first words (never a password or its hash): any other privilege on
 * `*.*` (SUPER, FILE, PROCESS, SHUTDOWN, RELOAD, CREATE USER, SET USER, READ_ONLY ADMIN, GRANT OPTION…), PROXY,
 * `CREATE OR REPLACE`, SET GLOBAL, INSTALL PLUGIN/SONAME, client commands (`\!`, `system`, `source`), statements
 * holding executable comments, grants on other databases (they wait for their own database's restore), grants to
 * accounts that already existed or that the companion does not create.
 *
 * Statements about an account that already exists on the target are left alone (skipped), whatever they say, as
 * before: a restore never changes an existing account.
 */
import { Refusal } from './engine';

export enum TokenKind {
  WORD = 'word',
  /** A '…' or "…" literal, its value unescaped. */
  STRING = 'string',
  /** A `…` identifier, its value unescaped. */
  IDENT = 'ident',
  PUNCT = 'punct',
  /** A comment MariaDB/MySQL would execute: `/*! … *\/` or `/*M! … *\/`. */
  EXECUTABLE_COMMENT = 'executable-comment',
}

export interface Token {
  readonly kind: TokenKind;
  /** Words and punctuation as written; strings and identifiers unescaped. */
  readonly value: string;
  /** A quoted literal that never ends: the rest of the text went into it. */
  readonly unterminated?: boolean;
}

export interface Statement {
  readonly tokens: readonly Token[];
  /** A client command (`\!`, `system`, `source`…), which ends at the end of its line. */
  readonly clientCommand: boolean;
}

/** Commands the mysql client runs itself when they start a statement; they end at the end of the line. */
const CLIENT_COMMANDS = new Set(['system', 'source', 'tee', 'notee', 'pager', 'nopager', 'delimiter', 'connect', 'charset', 'prompt',
  'rehash', 'warnings', 'nowarning', 'quit', 'exit', 'edit', 'ego', 'go', 'print', 'status', 'help', 'clear', 'use']);

const isSpace = (c: string) => c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\v';
const isWordChar = (c: string) => /[A-Za-z0-9_$\u0080-\uffff]/.test(c);

/** Reads a quoted literal starting at `i` (the quote); returns its value and the index after it. */
function quoted(text: string, i: number, quote: string, backslashes: boolean): { value: string; end: number; unterminated?: boolean } {
  let value = '';
  let j = i + 1;
  while (j < text.length) {
    const c = text[j];
    if (backslashes && c === '\\' && j + 1 < text.length) {
      const n = text[j + 1];
      value += ({ n: '\n', t: '\t', r: '\r', '0': '\0', b: '\b', Z: '\x1a' } as Record<string, string>)[n] ?? n;
      j += 2;
    } else if (c === quote && text[j + 1] === quote) {
      value += quote;
      j += 2;
    } else if (c === quote) {
      return { value, end: j + 1 };
    } else {
      value += c;
      j += 1;
    }
  }
  // Unterminated: the rest of the text is the literal, and the statement is refused.
  return { value, end: text.length, unterminated: true };
}

/**
 * Splits SQL text into statements of tokens, as the mysql client and server would read it: `;` ends a statement
 * outside quotes and comments; `-- ` and `#` comments run to the end of the line, `/* *\/` comments are dropped unless
 * executable; a statement that starts with `\` or a client command word runs to the end of its line.
 */
export function splitStatements(text: string): Statement[] {
  const statements: Statement[] = [];
  let tokens: Token[] = [];
  let clientCommand = false;
  const finish = () => {
    if (tokens.length) statements.push({ tokens, clientCommand });
    tokens = [];
    clientCommand = false;
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (clientCommand) {
      // A client command's words, up to the end of its line.
      if (c === '\n') { finish(); i += 1; continue; }
      if (isSpace(c)) { i += 1; continue; }
      let j = i;
      while (j < text.length && !isSpace(text[j])) j += 1;
      tokens.push({ kind: TokenKind.WORD, value: text.slice(i, j) });
      i = j;
      continue;
    }
    if (isSpace(c)) { i += 1; continue; }
    if (c === ';') { finish(); i += 1; continue; }
    if (c === '#' || (c === '-' && text[i + 1] === '-' && (i + 2 >= text.length || isSpace(text[i + 2])))) {
      const end = text.indexOf('\n', i);
      i = end < 0 ? text.length : end + 1;
      continue;
    }
    if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      const stop = end < 0 ? text.length : end + 2;
      const body = text.slice(i + 2, end < 0 ? text.length : end);
      if (/^M?!/.test(body)) tokens.push({ kind: TokenKind.EXECUTABLE_COMMENT, value: text.slice(i, stop) });
      i = stop;
      continue;
    }
    if (tokens.length === 0 && c === '\\') {
      clientCommand = true;
      continue;
    }
    if (c === "'" || c === '"') {
      const { value, end, unterminated } = quoted(text, i, c, true);
      tokens.push({ kind: TokenKind.STRING, value, unterminated });
      i = end;
      continue;
    }
    if (c === '`') {
      const { value, end, unterminated } = quoted(text, i, '`', false);
      tokens.push({ kind: TokenKind.IDENT, value, unterminated });
      i = end;
      continue;
    }
    if (isWordChar(c)) {
      let j = i;
      while (j < text.length && isWordChar(text[j])) j += 1;
      const word = text.slice(i, j);
      if (tokens.length === 0 && CLIENT_COMMANDS.has(word.toLowerCase())) {
        clientCommand = true;
        continue;
      }
      tokens.push({ kind: TokenKind.WORD, value: word });
      i = j;
      continue;
    }
    tokens.push({ kind: TokenKind.PUNCT, value: c });
    i += 1;
  }
  finish();
  return statements;
}

const quoteString = (value: string) => `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\n/g, '\\n').replace(/\r/g, '\\r').replace(/\0/g, '\\0')}'`;
const quoteIdent = (value: string) => `\`${value.replace(/`/g, '``')}\``;

/** The SQL text of tokens, with nothing but what they say. */
export function renderTokens(tokens: readonly Token[]): string {
  let out = '';
  let previous: Token | undefined;
  for (const t of tokens) {
    const text = t.kind === TokenKind.STRING ? quoteString(t.value) : t.kind === TokenKind.IDENT ? quoteIdent(t.value) : t.value;
    const tight = previous !== undefined && (['@', '.', '('].includes(previous.value) && previous.kind === TokenKind.PUNCT
      || (t.kind === TokenKind.PUNCT && ['@', '.', ',', ')'].includes(t.value))
      || (t.kind === TokenKind.PUNCT && t.value === '(' && previous.kind === TokenKind.WORD));
    out += previous === undefined || tight ? text : ` ${text}`;
    previous = t;
  }
  return out;
}

/** Words after which a statement may carry a secret: what is reported stops before them. */
const SECRET_LEAD = new Set(['IDENTIFIED', 'PASSWORD', 'USING', 'AS', 'BY', 'VIA']);
const WHAT_TOKENS = 16;

/** A word that may be a password hash or a key (mysql_native_password hashes are 40 hex digits after '*'). */
const secretLike = (t: Token) => t.kind === TokenKind.WORD && (/^[0-9A-F]{32,}$/i.test(t.value) || t.value.length > 40);

/**
 * A statement's first words, for a report: never past a word that may lead to a password or its hash, nor a
 * string that is not part of an account.
 */
export function describeStatement(statement: Statement): string {
  const shown: Token[] = [];
  const tokens = statement.tokens;
  for (let i = 0; i < tokens.length && shown.length < WHAT_TOKENS; i++) {
    const t = tokens[i];
    const forAccount = t.value.toUpperCase() === 'PASSWORD' && tokens[i + 1]?.value.toUpperCase() === 'FOR';
    if (t.kind === TokenKind.WORD && SECRET_LEAD.has(t.value.toUpperCase()) && !forAccount) break;
    if ((t.kind === TokenKind.PUNCT && t.value === '=') || t.kind === TokenKind.EXECUTABLE_COMMENT || secretLike(t)) break;
    if (t.kind === TokenKind.STRING && tokens[i + 1]?.value !== '@' && tokens[i - 1]?.value !== '@') break;
    shown.push(t);
  }
  const words = statement.clientCommand ? shown.map((t) => t.value).join(' ') : renderTokens(shown);
  const text = words.length > 120 ? `${words.slice(0, 119)}…` : words;
  return shown.length < tokens.length ? `${text} …` : text;
}

/** Authentication plugins whose use on a scratch or target server lets nobody in without a password. */
export const SAFE_PLUGINS = new Set(['mysql_native_password', 'ed25519', 'caching_sha2_password', 'sha256_password', 'mysql_old_password']);

/** Privileges that act on one database's objects: all a restored grant may give. */
export const OBJECT_PRIVILEGES = new Set(['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'CREATE', 'DROP', 'INDEX', 'ALTER', 'REFERENCES', 'EXECUTE',
  'TRIGGER', 'EVENT', 'LOCK TABLES', 'CREATE TEMPORARY TABLES', 'CREATE VIEW', 'SHOW VIEW', 'CREATE ROUTINE', 'ALTER ROUTINE', 'DELETE HISTORY',
  'ALL', 'ALL PRIVILEGES', 'USAGE']);

/** Words an account's attributes may hold, in CREATE USER and after a GRANT's grantees. */
const ATTRIBUTE_WORDS = new Set(['IDENTIFIED', 'BY', 'PASSWORD', 'VIA', 'WITH', 'USING', 'AS', 'OR', 'REQUIRE', 'NONE', 'SSL', 'X509', 'SUBJECT',
  'ISSUER', 'CIPHER', 'AND', 'MAX_QUERIES_PER_HOUR', 'MAX_UPDATES_PER_HOUR', 'MAX_CONNECTIONS_PER_HOUR', 'MAX_USER_CONNECTIONS',
  'MAX_STATEMENT_TIME', 'EXPIRE', 'NEVER', 'DEFAULT', 'INTERVAL', 'DAY', 'ACCOUNT', 'LOCK', 'UNLOCK']);

/** An account as mysql.user names it: `user@host` (roles: `role@`). */
export interface Account {
  readonly user: string;
  readonly host: string;
  /** No host was written: a role of that name, if there is one, or user@'%'. */
  readonly hostDefaulted?: boolean;
}

export const accountName = (a: Account) => `${a.user}@${a.host}`;

class Refused extends Error {}

/** Reads statement tokens left to right. */
class Reader {
  private i = 0;
  constructor(private readonly tokens: readonly Token[]) {}

  get done(): boolean {
    return this.i >= this.tokens.length;
  }

  peek(offset = 0): Token | undefined {
    return this.tokens[this.i + offset];
  }

  next(): Token {
    const t = this.tokens[this.i];
    if (!t) throw new Refused('it ends early');
    this.i += 1;
    return t;
  }

  /** Whether the next token is this word (case-insensitive); consumes it if so. */
  accept(word: string): boolean {
    const t = this.peek();
    if (t?.kind === TokenKind.WORD && t.value.toUpperCase() === word) {
      this.i += 1;
      return true;
    }
    return false;
  }

  acceptPunct(p: string): boolean {
    const t = this.peek();
    if (t?.kind === TokenKind.PUNCT && t.value === p) {
      this.i += 1;
      return true;
    }
    return false;
  }

  expect(word: string): void {
    if (!this.accept(word)) throw new Refused(`expected ${word}`);
  }

  /** A name: a word, a `quoted` identifier or a 'string'. */
  name(): string {
    const t = this.next();
    if (t.kind === TokenKind.WORD || t.kind === TokenKind.IDENT || t.kind === TokenKind.STRING) return t.value;
    throw new Refused(`'${t.value}' is not a name`);
  }

  account(role = false): Account {
    const t = this.peek();
    if (t?.kind === TokenKind.WORD && ['CURRENT_USER', 'CURRENT_ROLE', 'PUBLIC'].includes(t.value.toUpperCase())) {
      throw new Refused(`it names ${t.value.toUpperCase()}`);
    }
    const user = this.name();
    if (this.acceptPunct('@')) return { user, host: this.name() };
    return { user, host: role ? '' : '%', hostDefaulted: !role };
  }

  rest(): Token[] {
    const rest = this.tokens.slice(this.i);
    this.i = this.tokens.length;
    return [...rest];
  }
}

/** Checks an account's attributes (after CREATE USER's account, or a GRANT's grantees). */
function checkAttributes(tokens: readonly Token[], grant: boolean): void {
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    const previous = tokens[i - 1]?.value.toUpperCase();
    // The plugin after VIA, IDENTIFIED WITH or OR, however it is quoted.
    if (previous === 'VIA' || previous === 'OR' || (previous === 'WITH' && tokens[i - 2]?.value.toUpperCase() === 'IDENTIFIED')) {
      if (!SAFE_PLUGINS.has(t.value.toLowerCase())) throw new Refused(`the authentication plugin ${t.value} is not one of ${[...SAFE_PLUGINS].join(', ')}`);
      continue;
    }
    if (t.kind === TokenKind.STRING) continue;
    if (t.kind === TokenKind.WORD && /^\d+$/.test(t.value)) continue;
    if (t.kind === TokenKind.PUNCT && ['(', ')'].includes(t.value)) continue;
    if (t.kind === TokenKind.WORD && ATTRIBUTE_WORDS.has(t.value.toUpperCase())) continue;
    if (grant && t.kind === TokenKind.WORD && ['GRANT', 'OPTION'].includes(t.value.toUpperCase())) continue;
    throw new Refused(`'${t.value}' is not an account attribute this restore applies`);
  }
}

/** What one allowed statement does. */
export type Allowed =
  | { readonly kind: 'create'; readonly account: Account; readonly role: boolean; readonly sql: string }
  | { readonly kind: 'grant'; readonly grantees: readonly Account[]; readonly roles: readonly Account[]; readonly sql: string }
  | { readonly kind: 'other-database'; readonly grantees: readonly Account[]; readonly database: string; readonly sql: string };

/** Privileges up to ON; returns their names (upper case, words joined by one space). */
function privileges(r: Reader): string[] {
  const names: string[] = [];
  for (;;) {
    const words: string[] = [];
    while (r.peek()?.kind === TokenKind.WORD && !['ON'].includes(r.peek()!.value.toUpperCase())) words.push(r.next().value.toUpperCase());
    if (words.length === 0) throw new Refused('it grants no privilege');
    if (r.acceptPunct('(')) {
      // A column list.
      while (!r.acceptPunct(')')) {
        r.name();
        r.acceptPunct(',');
      }
    }
    names.push(words.join(' '));
    if (!r.acceptPunct(',')) return names;
  }
}

function grantees(r: Reader): Account[] {
  const accounts = [r.account()];
  while (r.acceptPunct(',')) accounts.push(r.account());
  return accounts;
}

/**
 * Checks one statement against the allowed shapes. `sourceDatabase` is the database the backup was taken from;
 * `targetDatabase` the one it is restored into (grants move to it). Returns what it does, or throws Refused.
 */
function allow(statement: Statement, sourceDatabase: string, targetDatabase: string): Allowed {
  if (statement.clientCommand) throw new Refused('a client command, which a roles companion never holds');
  if (statement.tokens.some((t) => t.unterminated)) throw new Refused('a quoted string or name in it never ends');
  if (statement.tokens.some((t) => t.kind === TokenKind.EXECUTABLE_COMMENT)) {
    throw new Refused('it holds an executable comment (/*! … */), which would run SQL this check does not see');
  }
  const r = new Reader(statement.tokens);
  if (r.accept('CREATE')) {
    if (r.accept('OR')) throw new Refused('CREATE OR REPLACE would replace an existing account');
    const role = r.accept('ROLE');
    if (!role) r.expect('USER');
    if (r.accept('IF')) { r.expect('NOT'); r.expect('EXISTS'); }
    const account = r.account(role);
    if (r.acceptPunct(',')) throw new Refused('it creates several accounts in one statement');
    const rest = r.rest();
    if (role) {
      if (rest.length) throw new Refused('a role is created with nothing more (WITH ADMIN names another account)');
    } else {
      checkAttributes(rest, false);
    }
    return { kind: 'create', account, role, sql: `CREATE ${role ? 'ROLE' : 'USER'} ${renderTokens(statement.tokens.slice(2))}` };
  }
  if (r.accept('GRANT')) {
    if (r.peek()?.kind === TokenKind.WORD && r.peek()!.value.toUpperCase() === 'PROXY') throw new Refused('PROXY lets an account act as another');
    // GRANT role TO account: no ON.
    const on = statement.tokens.findIndex((t) => t.kind === TokenKind.WORD && t.value.toUpperCase() === 'ON');
    const to = statement.tokens.findIndex((t) => t.kind === TokenKind.WORD && t.value.toUpperCase() === 'TO');
    if (to < 0) throw new Refused('it names no grantee');
    if (on < 0 || on > to) {
      const roles = [r.account(true)];
      while (r.acceptPunct(',')) roles.push(r.account(true));
      r.expect('TO');
      const accounts = grantees(r);
      if (r.accept('WITH')) { r.expect('ADMIN'); r.expect('OPTION'); }
      if (!r.done) throw new Refused(`'${r.peek()!.value}' after the grantees`);
      return { kind: 'grant', grantees: accounts, roles, sql: renderTokens(statement.tokens) };
    }
    const names = privileges(r);
    r.expect('ON');
    for (const kind of ['TABLE', 'PROCEDURE', 'FUNCTION', 'PACKAGE']) if (r.accept(kind)) { if (kind === 'PACKAGE') r.accept('BODY'); break; }
    // The object: *.*, db.*, db.name. A bare name or * means the client's current database: ambiguous here.
    const databaseToken = r.next();
    if (!r.acceptPunct('.')) throw new Refused('the object names no database');
    const objectToken = r.next();
    const globalObject = databaseToken.kind === TokenKind.PUNCT && databaseToken.value === '*';
    if (globalObject && !(objectToken.kind === TokenKind.PUNCT && objectToken.value === '*')) throw new Refused('the object is not *.*, db.* or db.name');
    if (!globalObject && databaseToken.kind === TokenKind.PUNCT) throw new Refused('the object is not *.*, db.* or db.name');
    if (!(objectToken.kind !== TokenKind.PUNCT || objectToken.value === '*')) throw new Refused('the object is not *.*, db.* or db.name');
    const objectEnd = statement.tokens.indexOf(objectToken) + 1;
    r.expect('TO');
    const accounts = grantees(r);
    const rest = r.rest();
    const grantOption = rest.some((t, i) => t.value.toUpperCase() === 'GRANT' && rest[i + 1]?.value.toUpperCase() === 'OPTION');
    if (globalObject) {
      const dangerous = names.filter((n) => n !== 'USAGE');
      if (dangerous.length) throw new Refused(`${dangerous.join(', ')} on *.* reaches beyond the restored database`);
      if (grantOption) throw new Refused('GRANT OPTION on *.* reaches beyond the restored database');
    } else {
      const unknown = names.filter((n) => !OBJECT_PRIVILEGES.has(n));
      if (unknown.length) throw new Refused(`${unknown.join(', ')} is not a privilege on one database's objects`);
    }
    checkAttributes(rest, true);
    if (!globalObject && databaseToken.value !== sourceDatabase) {
      return { kind: 'other-database', grantees: accounts, database: databaseToken.value, sql: renderTokens(statement.tokens) };
    }
    // Grants on the backed-up database follow it to the target's name.
    const tokens = statement.tokens.map((t, i) => (!globalObject && t === databaseToken && i < objectEnd
      ? { kind: TokenKind.IDENT, value: targetDatabase } : t));
    return { kind: 'grant', grantees: accounts, roles: [], sql: renderTokens(tokens) };
  }
  if (r.accept('SET')) {
    if (!r.accept('DEFAULT')) throw new Refused('SET changes settings or passwords: only SET DEFAULT ROLE is applied');
    r.expect('ROLE');
    const none = r.accept('NONE');
    const role = none ? undefined : r.account(true);
    r.expect('FOR');
    const account = r.account();
    if (!r.done) throw new Refused(`'${r.peek()!.value}' after the account`);
    return { kind: 'grant', grantees: [account], roles: role ? [role] : [], sql: renderTokens(statement.tokens) };
  }
  throw new Refused('not a statement a roles companion holds (CREATE USER, CREATE ROLE, GRANT, SET DEFAULT ROLE)');
}

/**
 * The account a statement is about, read leniently: CREATE USER/ROLE's account, the first grantee of GRANT, the
 * account of SET DEFAULT ROLE … FOR. Undefined when there is none to read.
 */
function subjectOf(statement: Statement): Account | undefined {
  const words = statement.tokens.map((t) => (t.kind === TokenKind.WORD ? t.value.toUpperCase() : ''));
  let at: number;
  if (words[0] === 'CREATE' && (words[1] === 'USER' || words[1] === 'ROLE')) at = words[2] === 'IF' ? 5 : 2;
  else if (words[0] === 'GRANT') at = words.indexOf('TO') + 1;
  else if (words[0] === 'SET' && words[1] === 'DEFAULT') at = words.indexOf('FOR') + 1;
  else return undefined;
  if (at <= 0) return undefined;
  try {
    return new Reader(statement.tokens.slice(at)).account(words[1] === 'ROLE');
  } catch {
    return undefined;
  }
}

export interface RolesPlan {
  /** Accounts and roles to create, in order: `user@host` (roles: `role@`). */
  readonly created: readonly string[];
  /** Accounts and roles the companion names that already exist: left alone, their statements unapplied. */
  readonly skipped: readonly string[];
  readonly refused: readonly Refusal[];
  /** CREATE USER / CREATE ROLE statements, rebuilt from their tokens. */
  readonly creates: readonly string[];
  /** GRANT / SET DEFAULT ROLE statements for after the load, on the target database's name. */
  readonly grants: readonly string[];
  /** Grants on other databases' objects, which this restore does not bring. */
  readonly elsewhere: number;
  /** The passwords and hashes the companion holds, for the redactor (a failing statement is echoed by the client). */
  readonly secrets: readonly string[];
}

/** Strings that follow a word leading to a secret: passwords, hashes, plugin arguments. */
function secretsOf(statement: Statement): string[] {
  return statement.tokens.filter((t, i) => t.kind === TokenKind.STRING && statement.tokens.slice(Math.max(0, i - 2), i)
    .some((p) => SECRET_LEAD.has(p.value.toUpperCase()))).map((t) => t.value).filter((v) => v.length > 0);
}

/**
 * Reads a roles companion into what a restore applies, skips and refuses. `existing` holds the target's accounts
 * as `user@host`.
 */
export function planRoles(sql: string, existing: ReadonlySet<string>, sourceDatabase: string, targetDatabase: string): RolesPlan {
  const created: string[] = [];
  const skipped: string[] = [];
  const refused: Refusal[] = [];
  const creates: string[] = [];
  const grants: string[] = [];
  let elsewhere = 0;
  const secrets: string[] = [];
  const skip = (name: string) => { if (!skipped.includes(name)) skipped.push(name); };
  // A grantee written without a host is the role of that name when there is one.
  const nameOf = (a: Account) => (a.hostDefaulted && (created.includes(`${a.user}@`) || existing.has(`${a.user}@`)) ? `${a.user}@` : accountName(a));
  // Accounts and roles first, so that a grant may name a role the companion creates further down.
  const later: { statement: Statement; allowed: Exclude<Allowed, { kind: 'create' }> }[] = [];
  for (const statement of splitStatements(sql)) {
    secrets.push(...secretsOf(statement));
    // Statements about an account that already exists are left alone, whatever they say.
    const subject = !statement.clientCommand ? subjectOf(statement) : undefined;
    if (subject && existing.has(nameOf(subject))) {
      skip(nameOf(subject));
      continue;
    }
    let allowed: Allowed;
    try {
      allowed = allow(statement, sourceDatabase, targetDatabase);
    } catch (err) {
      if (!(err instanceof Refused)) throw err;
      refused.push({ what: describeStatement(statement), why: err.message });
      continue;
    }
    if (allowed.kind !== 'create') {
      later.push({ statement, allowed });
      continue;
    }
    const name = accountName(allowed.account);
    if (existing.has(name)) skip(name);
    else if (!created.includes(name)) {
      created.push(name);
      creates.push(allowed.sql);
    }
  }
  for (const { statement, allowed } of later) {
    // Left alone when it is about an existing account; refused when it names one the companion does not create.
    const names = allowed.grantees.map(nameOf);
    if (names.some((n) => existing.has(n))) {
      names.filter((n) => existing.has(n)).forEach(skip);
      continue;
    }
    const strangers = [...names, ...(allowed.kind === 'grant' ? allowed.roles.map(accountName) : [])].filter((n) => !created.includes(n));
    if (strangers.length) {
      refused.push({ what: describeStatement(statement), why: `${strangers.join(', ')} is not created by this companion (grants go to accounts and roles it creates)` });
      continue;
    }
    if (allowed.kind === 'other-database') {
      elsewhere += 1;
      refused.push({ what: describeStatement(statement),
        why: `it is on database ${allowed.database}, which this restore does not bring: apply it once that database is restored` });
      continue;
    }
    grants.push(allowed.sql);
  }
  return { created, skipped, refused, creates, grants, elsewhere, secrets };
}
