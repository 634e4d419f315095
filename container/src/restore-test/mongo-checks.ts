/**
 * A MongoDB source's restore-test checks: a collection, a query filter and an expectation, written in the same checks
 * file (or --checks-json) where SQL sources write SQL, and read as strictly: a typo is an error naming the check and
 * the field, not a check that quietly counts nothing.
 *
 *   { "name": "paid orders", "collection": "orders", "filter": {"status": "paid", "total": {"$gte": 10}}, "minRows": 100 }
 *       at least 100 documents match the filter (counted by the server);
 *   { "name": "one admin", "collection": "users", "filter": {"role": "admin"}, "equals": 1 }
 *       exactly one document matches (`equals` without `field` compares the count);
 *   { "name": "first order", "collection": "orders", "field": "total", "sort": {"placedAt": 1}, "equals": 9.99 }
 *       the field of the first matching document, in `sort` order (default `_id` ascending), as text;
 *   { "name": "orders recent", "collection": "orders", "field": "placedAt", "maxAgeSeconds": 86400 }
 *       the field's newest value (a date, an ObjectId's time, a timestamp, or ISO text) is at most that much older
 *       than the backup's start.
 *
 * The filter is Extended JSON ({"$date": "2026-01-01T00:00:00Z"}, {"$oid": "…"}, {"$numberLong": "…"}), and its
 * operators are allow-listed: comparison, logic, element, array, $regex and $mod. A check never runs server-side
 * JavaScript: $where, $function, $accumulator and $expr (whose expressions may hold $function) are refused, as are
 * JavaScript code values; there is no place for a pipeline, mapReduce or a command. A check reads a collection, so
 * the restored database's views (whose pipelines come from the backup) are never queried by one either.
 */
import { BSON, Document } from 'mongodb';
import { UsageError } from '../shared/errors';

export const MONGO_CHECK_EXAMPLE = '{"name": "paid orders", "collection": "orders", "filter": {"status": "paid"}, "minRows": 10}';

/** What a MongoDB check asks of the restored database. */
export interface MongoQuery {
  readonly collection: string;
  /** The filter as the server receives it: Extended JSON read into BSON values, its operators allow-listed. */
  readonly filter: Document;
  /** equals: the field whose value is compared (without it, the count is); maxAgeSeconds: the time field. */
  readonly field?: string;
  /** equals with a field: which matching document is the first. */
  readonly sort?: Readonly<Record<string, 1 | -1>>;
}

/** Query operators a check may use: none runs code. */
export const ALLOWED_OPERATORS: ReadonlySet<string> = new Set([
  '$eq', '$ne', '$gt', '$gte', '$lt', '$lte', '$in', '$nin',
  '$and', '$or', '$nor', '$not',
  '$exists', '$type',
  '$regex', '$options', '$mod',
  '$all', '$elemMatch', '$size',
]);

/** Operators that run server-side JavaScript, or take aggregation expressions that may. */
const CODE_OPERATORS: Readonly<Record<string, string>> = {
  $where: 'runs server-side JavaScript',
  $function: 'runs server-side JavaScript',
  $accumulator: 'runs server-side JavaScript',
  $expr: 'takes aggregation expressions, which may run server-side JavaScript ($function)',
};

const ENTRY_KEYS = new Set(['name', 'collection', 'filter', 'field', 'sort', 'minRows', 'equals', 'maxAgeSeconds']);

/** Entry keys a person may try, and what to write instead. */
const ENTRY_HINTS: Readonly<Record<string, string>> = {
  minDocuments: 'write "minRows": it counts the documents that match the filter',
  minCount: 'write "minRows": it counts the documents that match the filter',
  count: 'write "equals" for an exact count of the documents that match, or "minRows" for a minimum',
  query: 'write the query as "filter"',
  find: 'write the query as "filter"',
  projection: 'a check reads one "field"; no projection is needed',
  pipeline: 'a check never runs an aggregation pipeline (one may run server-side JavaScript): use "filter" with "minRows", "equals" or "maxAgeSeconds"',
  aggregate: 'a check never runs an aggregation pipeline (one may run server-side JavaScript): use "filter" with "minRows", "equals" or "maxAgeSeconds"',
  mapReduce: 'a check never runs mapReduce (server-side JavaScript): use "filter" with "minRows", "equals" or "maxAgeSeconds"',
  command: 'a check never runs a database command: use "filter" with "minRows", "equals" or "maxAgeSeconds"',
  sql: 'a check is SQL (PostgreSQL, MariaDB) or a MongoDB query, not both',
};

/** How deep a filter may nest: far beyond a real check, short of a stack a crafted one could exhaust. */
const MAX_DEPTH = 32;

/** A collection name a check may read: the backup's own collections, never the server's system collections. */
function collectionProblem(name: unknown): string | undefined {
  if (typeof name !== 'string' || name === '') return `"collection" must be the name of a collection (got ${JSON.stringify(name)})`;
  if (name.startsWith('system.')) return `"collection" names ${name}, a system collection: a check reads the backup's own collections`;
  if (/[$\0]/.test(name) || Buffer.byteLength(name) > 255) return `"collection" '${name}' is not a MongoDB collection name (no $ or NUL, at most 255 bytes)`;
  return undefined;
}

/** A dotted path to a field: segments neither empty nor starting with $ (an operator), no NUL. */
function fieldPathProblem(path: unknown, what: string): string | undefined {
  if (typeof path !== 'string' || path === '') return `${what} must be a field name or dotted path such as "address.city" (got ${JSON.stringify(path)})`;
  if (path.includes('\0') || path.split('.').some((s) => s === '' || s.startsWith('$'))) {
    return `${what} '${path}' is not a field path: dotted names, none empty or starting with $`;
  }
  return undefined;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/** What is wrong with a filter (already read from Extended JSON), or undefined: operators allow-listed, no code. */
export function filterProblem(value: unknown, path = 'filter', depth = 0): string | undefined {
  if (depth > MAX_DEPTH) return `${path} nests deeper than ${MAX_DEPTH} levels`;
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) {
      const problem = filterProblem(item, `${path}[${i}]`, depth + 1);
      if (problem) return problem;
    }
    return undefined;
  }
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? `${path} is not a valid date` : undefined;
  const bsonType = (value as { _bsontype?: string } | null)?._bsontype;
  if (bsonType === 'Code') return `${path} is JavaScript code ($code): a check never runs server-side JavaScript`;
  if (bsonType !== undefined || !isPlainObject(value)) return undefined;
  for (const [key, item] of Object.entries(value)) {
    if (key.includes('\0')) return `${path} has a key with a NUL character`;
    if (key.startsWith('$')) {
      if (CODE_OPERATORS[key]) return `${path} uses ${key}, which ${CODE_OPERATORS[key]}: a check never runs code; use the query operators (${[...ALLOWED_OPERATORS].join(', ')})`;
      if (!ALLOWED_OPERATORS.has(key)) return `${path} uses ${key}, which is not an operator a check may use (${[...ALLOWED_OPERATORS].join(', ')})`;
    }
    const problem = filterProblem(item, `${path}.${key}`, depth + 1);
    if (problem) return problem;
  }
  return undefined;
}

/** The filter of an entry: a JSON object of Extended JSON, read into BSON values and checked. */
function readFilter(raw: unknown, at: string): Document {
  if (raw === undefined) return {};
  if (!isPlainObject(raw)) throw new UsageError(`${at}: "filter" must be a JSON object, such as {"status": "paid"} (got ${JSON.stringify(raw)})`);
  let filter: Document;
  try {
    // 64-bit integers as bigint: {"$numberLong": "9007199254740993"} stays exact (the driver sends a bigint as a long).
    filter = BSON.EJSON.deserialize(raw, { relaxed: true, useBigInt64: true }) as Document;
  } catch (err) {
    throw new UsageError(`${at}: "filter" is not valid Extended JSON: ${(err as Error).message}`);
  }
  if (!isPlainObject(filter)) throw new UsageError(`${at}: "filter" must be a query document, such as {"status": "paid"}; it reads as a single value`);
  const problem = filterProblem(filter);
  if (problem) throw new UsageError(`${at}: ${problem}`);
  return filter;
}

function readSort(raw: unknown, at: string): Record<string, 1 | -1> {
  if (!isPlainObject(raw) || Object.keys(raw).length === 0 || Object.keys(raw).length > 8) {
    throw new UsageError(`${at}: "sort" must be an object of 1 to 8 fields, each 1 (ascending) or -1 (descending), such as {"placedAt": -1} (got ${JSON.stringify(raw)})`);
  }
  for (const [field, direction] of Object.entries(raw)) {
    const problem = fieldPathProblem(field, '"sort"');
    if (problem) throw new UsageError(`${at}: ${problem}`);
    if (direction !== 1 && direction !== -1) throw new UsageError(`${at}: "sort" gives ${field} ${JSON.stringify(direction)}: use 1 (ascending) or -1 (descending)`);
  }
  return raw as Record<string, 1 | -1>;
}

/** Refuses a field a MongoDB check does not have, with what to write instead where a person may have meant something. */
export function checkMongoEntryFields(entry: Record<string, unknown>, at: string): void {
  for (const key of Object.keys(entry)) {
    if (ENTRY_KEYS.has(key)) continue;
    const hint = ENTRY_HINTS[key] ?? (CODE_OPERATORS[key] ? `a check never runs code (${key} ${CODE_OPERATORS[key]})` : undefined);
    throw new UsageError(`${at} has an unknown field "${key}"${hint ? `: ${hint}` : ''}; a MongoDB check has ${[...ENTRY_KEYS].map((k) => `"${k}"`).join(', ')}`);
  }
}

/**
 * Reads the MongoDB query of a checks-file entry that names a "collection"; `kind` is its expectation (minRows, equals
 * or maxAgeSeconds). Throws a UsageError naming the check and what is wrong.
 */
export function parseMongoQuery(entry: Record<string, unknown>, kind: string, at: string): MongoQuery {
  checkMongoEntryFields(entry, at);
  const collection = collectionProblem(entry.collection);
  if (collection) throw new UsageError(`${at}: ${collection}`);
  const filter = readFilter(entry.filter, at);
  const field = entry.field;
  if (field !== undefined) {
    const problem = fieldPathProblem(field, '"field"');
    if (problem) throw new UsageError(`${at}: ${problem}`);
    if (kind === 'minRows') throw new UsageError(`${at}: "minRows" counts the documents that match the filter, so "field" has no meaning there: remove it`);
  } else if (kind === 'maxAgeSeconds') {
    throw new UsageError(`${at}: "maxAgeSeconds" needs "field", the time field whose newest value is compared, such as "placedAt"`);
  }
  if (entry.sort !== undefined && !(kind === 'equals' && field !== undefined)) {
    throw new UsageError(`${at}: "sort" chooses the document whose "field" "equals" compares; ${kind === 'maxAgeSeconds' ? 'maxAgeSeconds always reads the newest value' : 'a count has no order'}: remove it`);
  }
  return {
    collection: entry.collection as string, filter,
    ...(field !== undefined ? { field: field as string } : {}),
    ...(entry.sort !== undefined ? { sort: readSort(entry.sort, at) } : {}),
  };
}
