/**
 * The user's own restore-test checks: queries with an expected result, read from a JSON file (or given inline).
 *
 * PostgreSQL and MariaDB sources: SQL.
 *
 *   [ { "name": "orders exist",  "sql": "SELECT id FROM sales.orders LIMIT 10", "minRows": 10 },
 *     { "name": "one admin",     "sql": "SELECT count(*) FROM users WHERE admin", "equals": 1 },
 *     { "name": "orders recent", "sql": "SELECT max(placed_at) FROM sales.orders", "maxAgeSeconds": 86400 } ]
 *
 * `minRows`: the query returns at least that many rows. `equals`: the first column of the first row, compared as
 * text. `maxAgeSeconds`: the first column of the first row is a time at most that much older than the backup's
 * start (the restored data is a snapshot of that moment, so "now" would only measure the backup's own age).
 *
 * MongoDB sources: a collection and a query filter instead of SQL, with the same expectations (see mongo-checks.ts).
 *
 *   [ { "name": "paid orders",   "collection": "orders", "filter": {"status": "paid"}, "minRows": 10 },
 *     { "name": "one admin",     "collection": "users", "filter": {"role": "admin"}, "equals": 1 },
 *     { "name": "orders recent", "collection": "orders", "field": "placedAt", "maxAgeSeconds": 86400 } ]
 */
import { readFileSync } from 'node:fs';
import { Engine } from '../../../lib/contract';
import { UsageError } from '../shared/errors';
import { MONGO_CHECK_EXAMPLE, MongoQuery, checkMongoEntryFields, parseMongoQuery } from './mongo-checks';

export enum CheckKind {
  MIN_ROWS = 'minRows',
  EQUALS = 'equals',
  MAX_AGE_SECONDS = 'maxAgeSeconds',
}

/** What a check expects, whatever the query language. */
export interface CheckExpectation {
  readonly name: string;
  readonly kind: CheckKind;
  /** The expected minimum rows, exact value (as text) or maximum age in seconds. */
  readonly expected: number | string;
}

/** A check of a PostgreSQL or MariaDB source: one SQL query. */
export interface SqlCheck extends CheckExpectation {
  readonly sql: string;
}

/** A check of a MongoDB source: a collection, a filter and (for a value or a time) a field; never code. */
export interface MongoCheck extends CheckExpectation {
  readonly mongo: MongoQuery;
}

export type UserCheck = SqlCheck | MongoCheck;

export function isMongoCheck(check: UserCheck): check is MongoCheck {
  return 'mongo' in check;
}

export interface CheckOutcome {
  readonly name: string;
  readonly kind: CheckKind;
  readonly expected: number | string;
  /** What the query gave: a row count, a value, or an age in seconds; undefined when it failed to run. */
  readonly actual?: number | string | null;
  readonly passed: boolean;
  /** One line for a person: what was expected, what was found, and by how much it missed. */
  readonly detail: string;
}

const EXAMPLE = '[{"name": "orders exist", "sql": "SELECT id FROM orders LIMIT 10", "minRows": 10}]';

/** The expectation of an entry: exactly one of minRows, equals and maxAgeSeconds. */
function expectation(entry: Record<string, unknown>, at: string): Pick<CheckExpectation, 'kind' | 'expected'> {
  const kinds = Object.values(CheckKind).filter((k) => entry[k] !== undefined);
  if (kinds.length !== 1) {
    throw new UsageError(`${at} must have exactly one expectation, "minRows", "equals" or "maxAgeSeconds" (found ${kinds.length})`);
  }
  const kind = kinds[0];
  const raw = entry[kind];
  if (kind !== CheckKind.EQUALS && !(typeof raw === 'number' && Number.isFinite(raw) && raw >= 0)) {
    throw new UsageError(`${at}: "${kind}" must be a number of at least 0 (got ${JSON.stringify(raw)})`);
  }
  if (kind === CheckKind.EQUALS && (raw === null || typeof raw === 'object')) {
    throw new UsageError(`${at}: "equals" must be a string, number or boolean (got ${JSON.stringify(raw)})`);
  }
  return { kind, expected: kind === CheckKind.EQUALS ? String(raw) : (raw as number) };
}

/** Parses the checks file's text, with an error that names the entry and the field that is wrong. */
export function parseChecks(text: string, where: string): UserCheck[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${where} is not valid JSON (${(err as Error).message}); it should look like ${EXAMPLE} (MongoDB: ${MONGO_CHECK_EXAMPLE})`);
  }
  const list = Array.isArray(value) ? value : (value as { checks?: unknown })?.checks;
  if (!Array.isArray(list)) throw new UsageError(`${where} must hold a JSON array of checks (or {"checks": [...]}), for example ${EXAMPLE}`);
  const names = new Set<string>();
  return list.map((entry: Record<string, unknown>, i): UserCheck => {
    const at = `${where}, check ${i + 1}`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new UsageError(`${at} is not a JSON object: give each check as {"name": ..., ...}`);
    if (typeof entry.name !== 'string' || entry.name.trim() === '') throw new UsageError(`${at} has no "name": give each check a name that says what it proves`);
    if (names.has(entry.name)) throw new UsageError(`${at}: the name '${entry.name}' is used twice; names identify failures in the report`);
    names.add(entry.name);
    const named = `${at} ('${entry.name}')`;
    if (entry.collection !== undefined) {
      if (entry.sql !== undefined) throw new UsageError(`${named} has both "sql" and "collection": a check is SQL (PostgreSQL, MariaDB) or a MongoDB query, not both`);
      checkMongoEntryFields(entry, named);
      const expected = expectation(entry, named);
      return { name: entry.name, ...expected, mongo: parseMongoQuery(entry, expected.kind, named) };
    }
    if (typeof entry.sql !== 'string' || entry.sql.trim() === '') {
      throw new UsageError(`${named} has no "sql" query (a MongoDB source's check names a "collection" instead: ${MONGO_CHECK_EXAMPLE})`);
    }
    return { name: entry.name, sql: entry.sql, ...expectation(entry, named) };
  });
}

/** Why these checks cannot run against a restored database of `engine`, or undefined when they can. */
export function checksProblem(engine: Engine, checks: readonly UserCheck[]): string | undefined {
  const mongo = engine === Engine.MONGODB;
  const wrong = checks.filter((c) => isMongoCheck(c) !== mongo);
  if (!wrong.length) return undefined;
  const names = wrong.map((c) => `'${c.name}'`).join(', ');
  return mongo
    ? `the backup is of a MongoDB source, and the checks ${names} are SQL: give each a "collection", an optional "filter" and an expectation, for example ${MONGO_CHECK_EXAMPLE}`
    : `the backup is of a ${engine} source, and the checks ${names} are MongoDB queries ("collection"): give each an "sql" query, for example ${EXAMPLE}`;
}

export function readChecksFile(file: string): UserCheck[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read --checks ${file}: ${(err as Error).message}`);
  }
  return parseChecks(text, `--checks ${file}`);
}

/** A query's result: rows of column values as text (null stays null). */
export type QueryRows = readonly (readonly (string | null)[])[];

/** A minRows check's outcome from a count the server made (SQL rows, or MongoDB documents). */
export function minRowsOutcome(check: CheckExpectation, count: number, unit = 'rows'): CheckOutcome {
  const expected = check.expected as number;
  const passed = count >= expected;
  return { name: check.name, kind: check.kind, expected, actual: count, passed,
    detail: `expected at least ${expected} ${unit}, got ${count}${passed ? '' : ` (${expected - count} short)`}` };
}

/** Judges a check against its query's rows; `backupStartedAt` anchors maxAgeSeconds. */
export function judge(check: CheckExpectation, rows: QueryRows, backupStartedAt: Date): CheckOutcome {
  const base = { name: check.name, kind: check.kind, expected: check.expected };
  const first = rows[0]?.[0] ?? null;
  switch (check.kind) {
    case CheckKind.MIN_ROWS: {
      const passed = rows.length >= (check.expected as number);
      return { ...base, actual: rows.length, passed,
        detail: `expected at least ${check.expected} rows, got ${rows.length}${passed ? '' : ` (${(check.expected as number) - rows.length} short)`}` };
    }
    case CheckKind.EQUALS: {
      const passed = first === check.expected;
      const numeric = first !== null && Number.isFinite(Number(first)) && Number.isFinite(Number(check.expected));
      const by = !passed && numeric ? ` (off by ${Number(first) - Number(check.expected)})` : '';
      return { ...base, actual: first, passed, detail: `expected ${JSON.stringify(check.expected)}, got ${JSON.stringify(first)}${by}` };
    }
    case CheckKind.MAX_AGE_SECONDS: {
      const newest = first === null ? NaN : Date.parse(first);
      if (Number.isNaN(newest)) {
        return { ...base, actual: first, passed: false, detail: `expected a time in the first column, got ${JSON.stringify(first)} (no rows, or not a timestamp)` };
      }
      const age = Math.round((backupStartedAt.getTime() - newest) / 1000);
      const passed = age <= (check.expected as number);
      return { ...base, actual: age, passed,
        detail: `newest row ${age} s older than the backup, at most ${check.expected} s allowed${passed ? '' : ` (${age - (check.expected as number)} s too old)`}` };
    }
  }
}
