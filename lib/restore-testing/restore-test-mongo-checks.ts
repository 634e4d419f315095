/**
 * A MongoDB source's restore-test checks as synth vets them: a collection, a filter without code and of values JSON
 * carries as written, a field path and a sort. A subset of what the agent refuses when it reads its checks file
 * (container/src/restore-test/mongo-checks.ts), said at synth, naming the check.
 */
import type { RestoreTestCheck } from './restore-test-source';

/**
 * Keys of a MongoDB filter that run server-side JavaScript, or take aggregation expressions that may: the agent
 * refuses them in a filter (`$code` is Extended JSON for a JavaScript value), and synth refuses them anywhere in one.
 */
const MONGO_CODE_KEYS: Readonly<Record<string, string>> = {
  $where: 'runs server-side JavaScript',
  $function: 'runs server-side JavaScript',
  $accumulator: 'runs server-side JavaScript',
  $expr: 'takes aggregation expressions, which may run server-side JavaScript ($function)',
  $code: 'is a JavaScript value ($code), which the server could run',
};

/** A dotted field path, as the agent takes it: segments neither empty nor starting with $ (an operator), no NUL. */
function fieldPathProblem(path: unknown, what: string): string | undefined {
  if (typeof path !== 'string' || path === '') return `${what} must be a field name or dotted path such as 'address.city' (got ${JSON.stringify(path) ?? String(path)})`;
  if (path.includes('\0') || path.split('.').some((s) => s === '' || s.startsWith('$'))) {
    return `${what} '${path}' is not a field path: dotted names, none empty or starting with $`;
  }
  return undefined;
}

const isPlainObject = (value: object) => [Object.prototype, null].includes(Object.getPrototypeOf(value));

/**
 * What is wrong with a MongoDB filter as the app wrote it, or undefined: code operators anywhere, and values that
 * JSON would not carry to the agent as written (a Date would arrive as a string, a RegExp as {}, an undefined field
 * not at all), each named by its path. The agent vets the rest (its operator allow-list and Extended JSON).
 */
function filterValueProblem(value: unknown, path: string, ancestors: readonly object[] = []): string | undefined {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return undefined;
  if (typeof value === 'number') return Number.isFinite(value) ? undefined : `${path} is ${value}, which JSON cannot carry: give a finite number`;
  if (value instanceof Date) {
    const iso = Number.isNaN(value.getTime()) ? '2026-01-01T00:00:00Z' : value.toISOString();
    return `${path} is a JavaScript Date, which would reach the agent as a plain string: write it in Extended JSON, { $date: '${iso}' }`;
  }
  if (value instanceof RegExp) {
    const options = value.flags.replace(/[^ims]/g, ''); // the flags MongoDB's $options shares with JavaScript
    return `${path} is a JavaScript RegExp, which JSON cannot carry: write { $regex: ${JSON.stringify(value.source)}${options ? `, $options: '${options}'` : ''} }`;
  }
  if (typeof value === 'bigint') return `${path} is a BigInt, which JSON cannot carry: write it in Extended JSON, { $numberLong: '${value}' }`;
  if (typeof value !== 'object') {
    return `${path} is ${value === undefined ? 'undefined, which JSON leaves out (the filter would match more than it says)' : `a ${typeof value}, which JSON cannot carry`}: give it a value, or remove it`;
  }
  if (ancestors.includes(value)) return `${path} contains itself`;
  const within = [...ancestors, value];
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) {
      const problem = filterValueProblem(item, `${path}[${i}]`, within);
      if (problem) return problem;
    }
    return undefined;
  }
  if (!isPlainObject(value)) return `${path} is a ${value.constructor?.name ?? 'non-plain object'}, not a plain object: write it in Extended JSON`;
  for (const [key, item] of Object.entries(value)) {
    if (MONGO_CODE_KEYS[key]) return `${path} uses ${key}, which ${MONGO_CODE_KEYS[key]}: a check never runs code; use the query operators, such as $eq, $gte, $in and $regex`;
    const problem = filterValueProblem(item, `${path}.${key}`, within);
    if (problem) return problem;
  }
  return undefined;
}

/** A sort as the agent takes it: 1 to 8 field paths, each 1 (ascending) or -1 (descending). */
function sortProblem(sort: unknown): string | undefined {
  const fields = typeof sort === 'object' && sort !== null && !Array.isArray(sort) && isPlainObject(sort) ? Object.entries(sort) : [];
  if (fields.length < 1 || fields.length > 8) {
    return `sort must be an object of 1 to 8 fields, each 1 (ascending) or -1 (descending), such as { placedAt: -1 } (got ${JSON.stringify(sort) ?? String(sort)})`;
  }
  for (const [field, direction] of fields) {
    const problem = fieldPathProblem(field, 'sort');
    if (problem) return problem;
    if (direction !== 1 && direction !== -1) return `sort gives ${field} ${JSON.stringify(direction) ?? String(direction)}: use 1 (ascending) or -1 (descending)`;
  }
  return undefined;
}

/**
 * The query of a MongoDB source's check: a collection, a filter object without code, a field path and a sort; a
 * subset of what the agent refuses when it reads the checks (container/src/restore-test/mongo-checks.ts), said at synth.
 */
export function mongoCheckProblem(check: RestoreTestCheck): string | undefined {
  const example = "for example { name: 'paid orders', collection: 'orders', filter: { status: 'paid' }, minRows: 10 }";
  if (check.sql !== undefined) return `check '${check.name}' has an sql query, and the source is MongoDB: give a collection and a filter instead, ${example}`;
  if (typeof check.collection !== 'string' || check.collection === '' || /[$\0]/.test(check.collection) || Buffer.byteLength(check.collection) > 255) {
    return `check '${check.name}' needs the collection it reads (a MongoDB collection name, no $ or NUL, at most 255 bytes), ${example}`;
  }
  if (check.collection.startsWith('system.')) return `check '${check.name}' reads ${check.collection}, a system collection: a check reads the backup's own collections`;
  if (check.filter !== undefined && (typeof check.filter !== 'object' || check.filter === null || Array.isArray(check.filter))) {
    return `check '${check.name}': filter must be a query document, such as { status: 'paid' }`;
  }
  const shape = (check.filter !== undefined ? filterValueProblem(check.filter, 'filter') : undefined)
    ?? (check.field !== undefined ? fieldPathProblem(check.field, 'field') : undefined)
    ?? (check.sort !== undefined ? sortProblem(check.sort) : undefined);
  if (shape) return `check '${check.name}': ${shape}`;
  if (check.maxAge !== undefined && check.field === undefined) return `check '${check.name}': maxAge needs the time field whose newest value it checks (field)`;
  if (check.minRows !== undefined && check.field !== undefined) return `check '${check.name}': minRows counts the documents that match the filter, so field has no meaning there: remove it`;
  if (check.sort !== undefined && (check.field === undefined || check.equals === undefined)) return `check '${check.name}': sort chooses the document whose field equals compares; give field and equals, or remove sort`;
  return undefined;
}
