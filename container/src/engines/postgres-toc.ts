/**
 * An archive's table of contents (`pg_restore -l`), read before any of it runs. A backup is untrusted input, so the
 * entries that need a superuser, or that reach outside the restored database, are left out of the load (`-L`) and
 * reported by name: event triggers, procedural languages, extensions outside an allow-list, foreign-data wrappers and
 * servers, subscriptions and publications, access methods, text-search parsers and templates, privileges on system
 * objects, and default privileges or ownership for roles the loading role may not act as. Allow-listed extensions are
 * left out of the load too: a privileged session that runs no backup content installs them first.
 */
import { Refusal } from './engine';

/**
 * Extensions a restore installs. Each is shipped with PostgreSQL's contrib and marked trusted (PostgreSQL 13 and
 * later let a database owner install it: nothing in it reaches the server's files, programs or other databases),
 * except pg_stat_statements, which only exposes statistics. Left out on purpose: dblink and postgres_fdw (connections
 * out of the server), file_fdw and adminpack (server files), and the inspection tools that need a superuser
 * (pageinspect, pg_surgery, pg_visibility, pg_buffercache, amcheck).
 */
export const ALLOWED_EXTENSIONS: readonly string[] = ['plpgsql', 'pgcrypto', 'citext', 'hstore', 'pg_trgm', 'uuid-ossp', 'ltree', 'btree_gin',
  'btree_gist', 'tablefunc', 'unaccent', 'fuzzystrmatch', 'intarray', 'cube', 'earthdistance', 'pg_stat_statements'];

/** Entry types pg_dump writes, longest first so that `TABLE DATA` is not read as `TABLE`. */
const DESCS = ['MATERIALIZED VIEW DATA', 'TEXT SEARCH CONFIGURATION', 'TEXT SEARCH DICTIONARY', 'TEXT SEARCH TEMPLATE', 'TEXT SEARCH PARSER',
  'FOREIGN DATA WRAPPER', 'PUBLICATION TABLES IN SCHEMA', 'PUBLICATION TABLE', 'PROCEDURAL LANGUAGE', 'SEQUENCE OWNED BY', 'MATERIALIZED VIEW',
  'OPERATOR FAMILY', 'OPERATOR CLASS', 'FOREIGN TABLE', 'EVENT TRIGGER', 'USER MAPPING', 'ACCESS METHOD', 'DEFAULT ACL', 'FK CONSTRAINT',
  'SEQUENCE SET', 'TABLE DATA', 'LARGE OBJECT', 'TABLE ATTACH', 'INDEX ATTACH', 'SERVER', 'SUBSCRIPTION', 'PUBLICATION', 'STATISTICS',
  'SHELL TYPE', 'CHECK CONSTRAINT', 'DEFAULT', 'CONSTRAINT', 'COLLATION', 'CONVERSION', 'TRANSFORM', 'AGGREGATE', 'PROCEDURE', 'FUNCTION',
  'OPERATOR', 'SEQUENCE', 'TRIGGER', 'EXTENSION', 'COMMENT', 'DATABASE', 'ENCODING', 'STDSTRINGS', 'SEARCHPATH', 'SECURITY LABEL', 'SCHEMA',
  'DOMAIN', 'INDEX', 'TABLE', 'BLOBS', 'BLOB', 'VIEW', 'TYPE', 'POLICY', 'RULE', 'CAST', 'ACL'].sort((a, b) => b.length - a.length);

export interface TocEntry {
  /** The line as pg_restore -l printed it, for -L. */
  readonly line: string;
  readonly id: number;
  readonly desc: string;
  /** '-' when the entry has none. */
  readonly namespace: string;
  /** The rest: the name and, where pg_restore prints one, the owner as the last word. */
  readonly rest: string;
}

/** `219; 1259 66101 TABLE public t alice`; comment lines (`;`) and unknown types are returned as undefined. */
export function parseTocLine(line: string): TocEntry | undefined {
  const m = /^(\d+); \d+ \d+ (.*)$/.exec(line);
  if (!m) return undefined;
  const desc = DESCS.find((d) => m[2].startsWith(`${d} `));
  if (!desc) return { line, id: Number(m[1]), desc: m[2].split(' ')[0], namespace: '-', rest: m[2].split(' ').slice(1).join(' ') };
  const after = m[2].slice(desc.length + 1);
  const space = after.indexOf(' ');
  return { line, id: Number(m[1]), desc, namespace: space < 0 ? after : after.slice(0, space), rest: space < 0 ? '' : after.slice(space + 1) };
}

/** The owner pg_restore prints last, or '' for entries without one (extensions, comments on them, ACLs of some types). */
export function ownerOf(entry: TocEntry): string {
  if (entry.rest.endsWith(' ')) return '';
  const words = entry.rest.split(' ');
  return words.length > 1 ? words[words.length - 1] : '';
}

/** The entry's name without its owner. */
export function nameOf(entry: TocEntry): string {
  const owner = ownerOf(entry);
  const name = owner ? entry.rest.slice(0, entry.rest.length - owner.length - 1) : entry.rest.trimEnd();
  return entry.namespace === '-' ? name : `${entry.namespace}.${name}`;
}

export const describeEntry = (entry: TocEntry) => `${entry.desc} ${nameOf(entry)}`;

/** Entries never loaded from a backup, and why. */
const NEVER: Record<string, string> = {
  'EVENT TRIGGER': 'event triggers need a superuser, and would run on every later DDL command in the database',
  'PROCEDURAL LANGUAGE': 'languages are created by a superuser; an untrusted one runs code on the server as its operating-system user',
  'FOREIGN DATA WRAPPER': 'foreign-data wrappers need a superuser and reach outside the database',
  'SERVER': 'foreign servers reach outside the database',
  'USER MAPPING': 'user mappings hold credentials for foreign servers',
  'SUBSCRIPTION': 'subscriptions need a superuser and connect to other servers',
  'PUBLICATION': 'publications set up replication out of the server',
  'PUBLICATION TABLE': 'publications set up replication out of the server',
  'PUBLICATION TABLES IN SCHEMA': 'publications set up replication out of the server',
  'ACCESS METHOD': 'access methods need a superuser and load server code',
  'TEXT SEARCH PARSER': 'text-search parsers need a superuser and load server code',
  'TEXT SEARCH TEMPLATE': 'text-search templates need a superuser and load server code',
};

const SYSTEM_SCHEMAS = new Set(['pg_catalog', 'information_schema']);

export interface TocPlan {
  /** The -L list: the entries to load, in the archive's order. */
  readonly list: string;
  readonly refused: readonly Refusal[];
  /** Allow-listed extensions the privileged session installs before the load. */
  readonly extensions: readonly string[];
  /** Every owner the kept entries name. */
  readonly owners: ReadonlyMap<string, number>;
  readonly kept: number;
}

/**
 * Decides which entries load. `mayActAs` tells whether the loading role may act as a role (own its objects, set its
 * default privileges); `allowed` is the extension allow-list.
 */
export function planToc(listing: string, mayActAs: (role: string) => boolean, allowed: readonly string[] = ALLOWED_EXTENSIONS): TocPlan {
  const entries = listing.split('\n').map(parseTocLine).filter((e): e is TocEntry => e !== undefined);
  const refused: Refusal[] = [];
  const extensions: string[] = [];
  const kept: TocEntry[] = [];
  const refusedExtensions = new Set<string>();
  for (const entry of entries) {
    if (entry.desc === 'EXTENSION') {
      const name = nameOf(entry);
      if (allowed.includes(name)) extensions.push(name);
      else {
        refusedExtensions.add(name);
        refused.push({ what: describeEntry(entry), why: `${name} is not one of the extensions a restore installs (${allowed.join(', ')})` });
      }
      continue;
    }
    // An extension's comment belongs to it: installed, it comes from the extension itself; refused, it goes with it.
    if (entry.desc === 'COMMENT' && /^EXTENSION /.test(entry.rest)) continue;
    const never = NEVER[entry.desc];
    if (never) { refused.push({ what: describeEntry(entry), why: never }); continue; }
    if ((entry.desc === 'ACL' || entry.desc === 'COMMENT' || entry.desc === 'SECURITY LABEL') && SYSTEM_SCHEMAS.has(entry.namespace)) {
      refused.push({ what: describeEntry(entry), why: 'it changes a system object, which belongs to a superuser: pg_read_file and its kind are never granted from a backup' });
      continue;
    }
    if (entry.desc === 'ACL' && /^(LANGUAGE|FOREIGN DATA WRAPPER|FOREIGN SERVER|SERVER) /.test(entry.rest)) {
      refused.push({ what: describeEntry(entry), why: 'privileges on languages and foreign servers are a superuser\'s to change' });
      continue;
    }
    if (entry.desc === 'DEFAULT ACL' && ownerOf(entry) && !mayActAs(ownerOf(entry))) {
      refused.push({ what: describeEntry(entry), why: `default privileges for ${ownerOf(entry)} need a role that may act as ${ownerOf(entry)}, and the load's may not` });
      continue;
    }
    kept.push(entry);
  }
  const owners = new Map<string, number>();
  for (const entry of kept) {
    const owner = ownerOf(entry);
    // pg_restore changes the owner of objects only: a privilege, a comment or a label names the object's owner, changes none.
    if (owner && !['ACL', 'DEFAULT ACL', 'COMMENT', 'SECURITY LABEL'].includes(entry.desc)) owners.set(owner, (owners.get(owner) ?? 0) + 1);
  }
  return { list: `${kept.map((e) => e.line).join('\n')}\n`, refused, extensions, owners, kept: kept.length };
}

/** `CREATE EXTENSION IF NOT EXISTS citext WITH SCHEMA ext;` lines of a script: the schema each extension was in. */
export function extensionSchemas(script: string): Map<string, string> {
  const schemas = new Map<string, string>();
  const re = /^CREATE EXTENSION IF NOT EXISTS ("(?:[^"]|"")+"|[a-z_][a-z0-9_$-]*) WITH SCHEMA ("(?:[^"]|"")+"|[a-z_][a-z0-9_$]*);$/gm;
  const unquote = (s: string) => (s.startsWith('"') ? s.slice(1, -1).replace(/""/g, '"') : s);
  for (const m of script.matchAll(re)) schemas.set(unquote(m[1]), unquote(m[2]));
  return schemas;
}
