/**
 * The roles companion (pg_dumpall --globals-only) is untrusted input: whoever holds a dump task's credentials can
 * write one. It is never run as it is. Each statement is read into tokens and matched against a short list of
 * shapes (CREATE ROLE, ALTER ROLE … WITH safe attributes, GRANT of a role, COMMENT ON ROLE); the agent then writes
 * the statements it runs itself, from the names and attributes it read. Anything else is refused and reported by
 * its first words, with string literals left out, so that no password hash reaches a report or a log.
 */
import { Refusal } from './engine';

export type Token =
  | { readonly kind: 'word'; readonly text: string }
  | { readonly kind: 'ident'; readonly text: string }
  | { readonly kind: 'string'; readonly text: string }
  | { readonly kind: 'number'; readonly text: string }
  | { readonly kind: 'punct'; readonly text: string };

/** Splits SQL into statements of tokens; quotes and comments are honoured, so a `;` inside a string ends nothing. */
export function tokenize(sql: string): { statements: Token[][]; problem?: string } {
  const statements: Token[][] = [];
  let current: Token[] = [];
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i];
    if (/\s/.test(c)) { i++; continue; }
    if (c === '-' && sql[i + 1] === '-') { while (i < n && sql[i] !== '\n') i++; continue; }
    if (c === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      if (end < 0) return { statements, problem: 'an unterminated comment' };
      i = end + 2;
      continue;
    }
    // psql meta-commands (\restrict, \connect…) sit on lines of their own; they are read as one token each.
    if (c === '\\' && current.length === 0) {
      const end = sql.indexOf('\n', i);
      const line = sql.slice(i, end < 0 ? n : end).trim();
      statements.push([{ kind: 'punct', text: line }]);
      i = end < 0 ? n : end;
      continue;
    }
    if (c === '"' || c === "'") {
      let text = '';
      let j = i + 1;
      for (;;) {
        if (j >= n) return { statements, problem: 'an unterminated quote' };
        if (sql[j] === c) {
          if (sql[j + 1] === c) { text += c; j += 2; continue; }
          break;
        }
        text += sql[j++];
      }
      current.push({ kind: c === '"' ? 'ident' : 'string', text });
      i = j + 1;
      continue;
    }
    const word = /^[A-Za-z_][A-Za-z0-9_$]*/.exec(sql.slice(i, i + 200));
    if (word) { current.push({ kind: 'word', text: word[0] }); i += word[0].length; continue; }
    const num = /^-?\d+/.exec(sql.slice(i, i + 40));
    if (num) { current.push({ kind: 'number', text: num[0] }); i += num[0].length; continue; }
    if (c === ';') {
      if (current.length) statements.push(current);
      current = [];
      i++;
      continue;
    }
    current.push({ kind: 'punct', text: c });
    i++;
  }
  if (current.length) statements.push(current);
  return { statements };
}

/** A statement's first words, for a report: names as they are, every string literal as '…'. */
export function describeStatement(tokens: readonly Token[], max = 8): string {
  const words = tokens.slice(0, max).map((t) => (t.kind === 'string' ? "'…'" : t.kind === 'ident' ? `"${t.text.replace(/"/g, '""')}"` : t.text));
  return `${words.join(' ')}${tokens.length > max ? ' …' : ''}`;
}

/** Role attributes a restored role may have: none of them reaches the server's files, programs or other roles. */
const SAFE_ATTRIBUTES = new Set(['NOSUPERUSER', 'INHERIT', 'NOINHERIT', 'NOCREATEROLE', 'CREATEDB', 'NOCREATEDB', 'LOGIN', 'NOLOGIN',
  'NOREPLICATION', 'NOBYPASSRLS']);

/** Why an attribute is refused. */
const UNSAFE_ATTRIBUTES: Record<string, string> = {
  SUPERUSER: 'SUPERUSER would give the role every right on the server, its files and programs included',
  CREATEROLE: 'CREATEROLE lets a role grant itself predefined roles such as pg_execute_server_program',
  REPLICATION: 'REPLICATION lets a role stream the whole cluster\'s data',
  BYPASSRLS: 'BYPASSRLS lets a role read past every row-level security policy',
  PASSWORD: 'a roles companion never holds passwords (pg_dumpall runs with --no-role-passwords): one that does was not written by the agent',
  ENCRYPTED: 'a roles companion never holds passwords (pg_dumpall runs with --no-role-passwords): one that does was not written by the agent',
  UNENCRYPTED: 'a roles companion never holds passwords (pg_dumpall runs with --no-role-passwords): one that does was not written by the agent',
};

/** Session settings pg_dumpall's preamble sets; they change nothing the agent runs, so they are read and not run. */
const PREAMBLE_SETTINGS = new Set(['default_transaction_read_only', 'client_encoding', 'standard_conforming_strings']);

/** Meta-commands pg_dumpall writes (\restrict and \unrestrict guard psql); the agent runs no psql, so they do nothing. */
const PREAMBLE_META = /^\\(un)?restrict\s+[A-Za-z0-9]+$/;

export interface RoleAttributes {
  readonly flags: readonly string[];
  readonly connectionLimit?: number;
  readonly validUntil?: string;
}

export type RoleStatement =
  | { readonly kind: 'create'; readonly role: string; readonly attributes: RoleAttributes }
  | { readonly kind: 'alter'; readonly role: string; readonly attributes: RoleAttributes }
  | { readonly kind: 'grant'; readonly roles: readonly string[]; readonly members: readonly string[]; readonly admin: boolean }
  | { readonly kind: 'comment'; readonly role: string; readonly comment: string | null };

/** A refused statement; `role` is the role a CREATE or ALTER ROLE was about (one that exists is left alone anyway). */
export interface RefusedStatement extends Refusal {
  readonly role?: string;
}

export interface ReadCompanion {
  /** Accepted statements, each with its first words as the companion wrote them (for a report). */
  readonly statements: readonly (RoleStatement & { readonly what: string })[];
  readonly refused: readonly RefusedStatement[];
}

const upper = (t: Token | undefined) => (t?.kind === 'word' ? t.text.toUpperCase() : undefined);
const isName = (t: Token | undefined): t is Token => t?.kind === 'word' || t?.kind === 'ident';
/** Unquoted names fold to lower case, as the server folds them. */
const nameOf = (t: Token) => (t.kind === 'word' ? t.text.toLowerCase() : t.text);

/** Predefined roles (pg_*) carry server rights (pg_execute_server_program, pg_read_server_files…): never granted from a backup. */
export const isPredefined = (role: string) => /^pg_/i.test(role);

function attributes(tokens: readonly Token[], from: number): { attributes?: RoleAttributes; why?: string } {
  const flags: string[] = [];
  let connectionLimit: number | undefined;
  let validUntil: string | undefined;
  let i = from;
  if (upper(tokens[i]) === 'WITH') i++;
  while (i < tokens.length) {
    const word = upper(tokens[i]);
    if (word === undefined) return { why: 'it is not a list of role attributes' };
    if (UNSAFE_ATTRIBUTES[word]) return { why: UNSAFE_ATTRIBUTES[word] };
    if (SAFE_ATTRIBUTES.has(word)) { flags.push(word); i++; continue; }
    if (word === 'CONNECTION' && upper(tokens[i + 1]) === 'LIMIT' && tokens[i + 2]?.kind === 'number') {
      connectionLimit = Number(tokens[i + 2].text);
      i += 3;
      continue;
    }
    if (word === 'VALID' && upper(tokens[i + 1]) === 'UNTIL' && tokens[i + 2]?.kind === 'string' && /^[0-9A-Za-z :.+-]{1,40}$/.test(tokens[i + 2].text)) {
      validUntil = tokens[i + 2].text;
      i += 3;
      continue;
    }
    return { why: `${word} is not one of the role attributes a restore sets (${[...SAFE_ATTRIBUTES].join(', ')}, CONNECTION LIMIT, VALID UNTIL)` };
  }
  return { attributes: { flags, connectionLimit, validUntil } };
}

/** Names separated by commas, from `from` until a word in `stop` or the end; undefined when it is not that. */
function nameList(tokens: readonly Token[], from: number, stop: readonly string[]): { names: string[]; next: number } | undefined {
  const names: string[] = [];
  let i = from;
  for (;;) {
    if (!isName(tokens[i]) || stop.includes(upper(tokens[i]) ?? '')) return undefined;
    names.push(nameOf(tokens[i]));
    i++;
    if (tokens[i]?.kind === 'punct' && tokens[i].text === ',') { i++; continue; }
    return { names, next: i };
  }
}

function readStatement(tokens: readonly Token[]): RoleStatement | { why: string; role?: string } | 'preamble' {
  const first = tokens[0];
  if (first.kind === 'punct' && first.text.startsWith('\\')) {
    return PREAMBLE_META.test(first.text) ? 'preamble' : { why: 'a psql meta-command: the agent runs no psql, and a companion written by it holds none but \\restrict' };
  }
  const [a, b] = [upper(tokens[0]), upper(tokens[1])];
  if (a === 'SET') {
    const name = tokens[1]?.kind === 'word' ? tokens[1].text.toLowerCase() : '';
    return PREAMBLE_SETTINGS.has(name) && tokens.length === 4 ? 'preamble' : { why: 'a restore sets no server or session settings from a backup' };
  }
  if ((a === 'CREATE' && (b === 'ROLE' || b === 'USER')) || (a === 'ALTER' && (b === 'ROLE' || b === 'USER'))) {
    if (!isName(tokens[2])) return { why: 'it names no role' };
    const role = nameOf(tokens[2]);
    if (isPredefined(role)) return { why: `${role} is a predefined role's name` };
    const next = upper(tokens[3]);
    if (a === 'ALTER' && (next === 'SET' || next === 'RESET' || next === 'IN')) {
      return { role, why: 'ALTER ROLE … SET changes server settings for a role\'s sessions (session_preload_libraries loads code into the server)' };
    }
    if (a === 'ALTER' && next === 'RENAME') return { role, why: 'renaming a role is not a shape a roles companion has' };
    const read = attributes(tokens, 3);
    if (!read.attributes) return { role, why: read.why! };
    if (a === 'ALTER' && tokens.length === 3) return { why: 'it changes nothing' };
    const login = b === 'USER' && a === 'CREATE' && !read.attributes.flags.includes('NOLOGIN') ? ['LOGIN'] : [];
    return { kind: a === 'CREATE' ? 'create' : 'alter', role, attributes: { ...read.attributes, flags: [...read.attributes.flags, ...login] } };
  }
  if (a === 'GRANT') {
    if (tokens.some((t) => upper(t) === 'ON')) return { why: 'a roles companion grants roles; privileges on objects travel in the dump' };
    const roles = nameList(tokens, 1, ['TO']);
    if (!roles || upper(tokens[roles.next]) !== 'TO') return { why: 'it is not GRANT role TO role' };
    const members = nameList(tokens, roles.next + 1, ['WITH', 'GRANTED']);
    if (!members) return { why: 'it is not GRANT role TO role' };
    let i = members.next;
    let admin = false;
    if (upper(tokens[i]) === 'WITH' && upper(tokens[i + 1]) === 'ADMIN' && upper(tokens[i + 2]) === 'OPTION') { admin = true; i += 3; }
    // GRANTED BY names who granted it at the source; the agent grants it here, as itself.
    if (upper(tokens[i]) === 'GRANTED' && upper(tokens[i + 1]) === 'BY' && isName(tokens[i + 2])) i += 3;
    if (i !== tokens.length) return { why: 'it is not GRANT role TO role' };
    const predefined = roles.names.find(isPredefined);
    if (predefined) return { why: `${predefined} is a predefined role, which carries server rights: a restore never grants one` };
    return { kind: 'grant', roles: roles.names, members: members.names, admin };
  }
  if (a === 'COMMENT' && b === 'ON' && upper(tokens[2]) === 'ROLE' && isName(tokens[3]) && upper(tokens[4]) === 'IS' && tokens.length === 6
    && (tokens[5].kind === 'string' || upper(tokens[5]) === 'NULL')) {
    return { kind: 'comment', role: nameOf(tokens[3]), comment: tokens[5].kind === 'string' ? tokens[5].text : null };
  }
  if (b === 'TABLESPACE' || tokens.some((t) => upper(t) === 'TABLESPACE')) {
    return { why: 'tablespaces name directories on the server: a restore uses the target\'s default tablespace' };
  }
  return { why: 'it is none of the statements a roles companion holds (CREATE ROLE, ALTER ROLE … WITH attributes, GRANT role TO role, COMMENT ON ROLE)' };
}

/** Reads a roles companion into the statements the allow-list accepts, and the refusals. */
export function readCompanion(sql: string): ReadCompanion {
  const { statements: raw, problem } = tokenize(sql);
  const statements: (RoleStatement & { what: string })[] = [];
  const refused: RefusedStatement[] = [];
  for (const tokens of raw) {
    const read = readStatement(tokens);
    if (read === 'preamble') continue;
    if ('why' in read) refused.push({ what: describeStatement(tokens), why: read.why, ...(read.role !== undefined ? { role: read.role } : {}) });
    else statements.push({ ...read, what: describeStatement(tokens) });
  }
  if (problem) refused.push({ what: 'the rest of the companion', why: `it ends in ${problem}` });
  return { statements, refused };
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function quoteLiteral(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

/** The statement the agent runs for an accepted one: written from the names and attributes read, never copied. */
export function roleSql(statement: RoleStatement): string {
  const attrs = (a: RoleAttributes) => [
    ...a.flags,
    ...(a.connectionLimit !== undefined ? [`CONNECTION LIMIT ${a.connectionLimit}`] : []),
    ...(a.validUntil !== undefined ? [`VALID UNTIL ${quoteLiteral(a.validUntil)}`] : []),
  ].join(' ');
  switch (statement.kind) {
    case 'create': return `CREATE ROLE ${quoteIdent(statement.role)}${statement.attributes.flags.length || statement.attributes.connectionLimit !== undefined
      || statement.attributes.validUntil !== undefined ? ` WITH ${attrs(statement.attributes)}` : ''}`;
    case 'alter': return `ALTER ROLE ${quoteIdent(statement.role)} WITH ${attrs(statement.attributes)}`;
    case 'grant': return `GRANT ${statement.roles.map(quoteIdent).join(', ')} TO ${statement.members.map(quoteIdent).join(', ')}${statement.admin ? ' WITH ADMIN OPTION' : ''}`;
    case 'comment': return `COMMENT ON ROLE ${quoteIdent(statement.role)} IS ${statement.comment === null ? 'NULL' : quoteLiteral(statement.comment)}`;
  }
}
