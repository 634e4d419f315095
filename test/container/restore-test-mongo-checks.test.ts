/**
 * MongoDB restore-test checks without a server: the checks file's MongoDB entries are read strictly (a typo, a check
 * for another engine or one that would run server-side JavaScript is an error naming the check and the field), values
 * are read as text the way SQL checks compare them, and the comparison with the manifest speaks of collections and
 * documents (as does its report), leaving out the system collections a restore never loads.
 */
import { BSON, Binary, Long, ObjectId, Timestamp } from 'mongodb';
import { Engine } from '../../lib/contract';
import { CheckKind, checksProblem, parseChecks } from '../../container/src/restore-test/checks';
import { filterProblem } from '../../container/src/restore-test/mongo-checks';
import { pathValue, timeText, valueText } from '../../container/src/restore-test/mongo-scratch';
import { compareTables, parseTolerance } from '../../container/src/restore-test/validate';
import { formatReport } from '../../container/src/restore-test/report';

const parse = (checks: object[]) => parseChecks(JSON.stringify(checks), 'checks.json');

describe('MongoDB checks in the checks file', () => {
  test('a valid check: its filter read from Extended JSON into BSON values', () => {
    const [check] = parse([{ name: 'recent paid', collection: 'orders', filter: { status: 'paid', placedAt: { $gte: { $date: '2026-01-01T00:00:00Z' } },
      ref: { $oid: '0123456789abcdef01234567' }, cents: { $numberLong: '9007199254740993' }, name: { $regex: '^a', $options: 'i' } }, minRows: 3 }]);
    expect(check).toMatchObject({ name: 'recent paid', kind: CheckKind.MIN_ROWS, expected: 3, mongo: { collection: 'orders' } });
    const { filter } = (check as { mongo: { filter: Record<string, Record<string, unknown>> } }).mongo;
    expect(filter.placedAt.$gte).toEqual(new Date('2026-01-01T00:00:00Z'));
    expect(filter.ref).toEqual(new ObjectId('0123456789abcdef01234567'));
    expect(filter.cents).toBe(9007199254740993n);
    expect(BSON.EJSON.stringify(filter.name)).toBe('{"$regularExpression":{"pattern":"^a","options":"i"}}');
  });

  test('equals with a field and a sort, maxAgeSeconds with a field', () => {
    expect(parse([
      { name: 'a', collection: 'c', field: 'total', sort: { placedAt: -1 }, equals: 9.99 },
      { name: 'b', collection: 'c', field: 'at', maxAgeSeconds: 60 },
    ]).map((c) => ('mongo' in c ? c.mongo : undefined))).toEqual([
      { collection: 'c', filter: {}, field: 'total', sort: { placedAt: -1 } },
      { collection: 'c', filter: {}, field: 'at' },
    ]);
  });

  test.each([
    [{ collection: 'orders', filter: { $where: 'sleep(1e6)' }, minRows: 1 }, 'filter uses $where, which runs server-side JavaScript: a check never runs code'],
    [{ collection: 'orders', filter: { $expr: { $function: { body: 'x', args: [], lang: 'js' } } }, minRows: 1 }, 'filter uses $expr, which takes aggregation expressions'],
    [{ collection: 'orders', filter: { a: { $elemMatch: { $or: [{ b: { $function: {} } }] } } }, minRows: 1 }, 'filter.a.$elemMatch.$or[0].b uses $function, which runs server-side JavaScript'],
    [{ collection: 'orders', filter: { a: { $accumulator: {} } }, minRows: 1 }, 'filter.a uses $accumulator'],
    [{ collection: 'orders', filter: { a: { $code: 'function () { return 1 }' } }, minRows: 1 }, 'filter.a is JavaScript code ($code)'],
    [{ collection: 'orders', filter: { a: { $gte: 1, $lookup: 'x' } }, minRows: 1 }, 'filter.a uses $lookup, which is not an operator a check may use ($eq,'],
    [{ collection: 'orders', filter: { a: { $date: 'yesterday' } }, minRows: 1 }, 'filter.a is not a valid date'],
    [{ collection: 'orders', filter: { a: { $numberLong: 'many' } }, minRows: 1 }, '"filter" is not valid Extended JSON'],
    [{ collection: 'orders', filter: [], minRows: 1 }, '"filter" must be a JSON object'],
    [{ collection: 'orders', mapReduce: { map: 'function () {}' }, minRows: 1 }, 'unknown field "mapReduce": a check never runs mapReduce (server-side JavaScript)'],
    [{ collection: 'orders', pipeline: [{ $match: {} }], minRows: 1 }, 'unknown field "pipeline": a check never runs an aggregation pipeline'],
    [{ collection: 'orders', fitler: { a: 1 }, minRows: 1 }, 'unknown field "fitler"; a MongoDB check has "name", "collection", "filter"'],
    [{ collection: 'orders', minDocuments: 1 }, 'unknown field "minDocuments": write "minRows"'],
    [{ collection: 'orders', sql: 'SELECT 1', minRows: 1 }, 'has both "sql" and "collection"'],
    [{ collection: '', minRows: 1 }, '"collection" must be the name of a collection (got "")'],
    [{ collection: 'system.users', minRows: 1 }, 'a system collection'],
    [{ collection: 'a$b', minRows: 1 }, 'is not a MongoDB collection name'],
    [{ collection: 'orders' }, 'must have exactly one expectation'],
    [{ collection: 'orders', minRows: 1, equals: 1 }, 'must have exactly one expectation, "minRows", "equals" or "maxAgeSeconds" (found 2)'],
    [{ collection: 'orders', field: 'total', minRows: 1 }, '"minRows" counts the documents that match the filter, so "field" has no meaning there'],
    [{ collection: 'orders', maxAgeSeconds: 60 }, '"maxAgeSeconds" needs "field"'],
    [{ collection: 'orders', field: 'at', sort: { at: 1 }, maxAgeSeconds: 60 }, 'maxAgeSeconds always reads the newest value: remove it'],
    [{ collection: 'orders', sort: { at: 1 }, equals: 1 }, 'a count has no order: remove it'],
    [{ collection: 'orders', field: 'a', sort: { at: 'desc' }, equals: 1 }, '"sort" gives at "desc": use 1 (ascending) or -1 (descending)'],
    [{ collection: 'orders', field: '$a', equals: 1 }, '"field" \'$a\' is not a field path'],
    [{ collection: 'orders', field: 'a..b', equals: 1 }, '"field" \'a..b\' is not a field path'],
  ])('%j is refused: %s', (entry, message) => {
    expect(() => parse([{ name: 'n', ...entry }])).toThrow(message);
    expect(() => parse([{ name: 'n', ...entry }])).toThrow('checks.json, check 1 (\'n\')');
  });

  test('a filter nested past 32 levels is refused', () => {
    let filter: object = { a: 1 };
    for (let i = 0; i < 40; i++) filter = { $and: [filter] };
    expect(filterProblem(filter)).toMatch(/nests deeper than 32 levels/);
  });

  test('checks for the other kind of source are named', () => {
    const checks = parse([{ name: 'sql one', sql: 'SELECT 1', minRows: 1 }, { name: 'mongo one', collection: 'c', minRows: 1 }]);
    expect(checksProblem(Engine.MONGODB, checks)).toMatch(/^the backup is of a MongoDB source, and the checks 'sql one' are SQL: give each a "collection"/);
    expect(checksProblem(Engine.POSTGRES, checks)).toMatch(/^the backup is of a postgres source, and the checks 'mongo one' are MongoDB queries/);
    expect(checksProblem(Engine.MONGODB, checks.slice(1))).toBeUndefined();
  });
});

describe('values a MongoDB check reads', () => {
  test('as text, the way SQL checks compare them', () => {
    expect(valueText('x')).toBe('x');
    expect(valueText(9.5)).toBe('9.5');
    expect(valueText(true)).toBe('true');
    expect(valueText(9007199254740993n)).toBe('9007199254740993');
    expect(valueText(Long.fromString('9007199254740993'))).toBe('9007199254740993');
    expect(valueText(new Date('2026-01-02T03:04:05Z'))).toBe('2026-01-02T03:04:05.000Z');
    expect(valueText(new ObjectId('0123456789abcdef01234567'))).toBe('0123456789abcdef01234567');
    expect(valueText(new Binary(Buffer.from([1, 255])))).toBe('01ff');
    expect(valueText({ a: 1 })).toBe('{"a":1}');
    expect(valueText(null)).toBeNull();
    expect(valueText(undefined)).toBeNull();
  });

  test('times: a date, an ObjectId\'s creation second, a timestamp\'s second', () => {
    expect(timeText(new Date('2026-01-02T03:04:05Z'))).toBe('2026-01-02T03:04:05.000Z');
    expect(timeText(ObjectId.createFromTime(1_767_323_045))).toBe('2026-01-02T03:04:05.000Z');
    expect(timeText(new Timestamp({ t: 1_767_323_045, i: 7 }))).toBe('2026-01-02T03:04:05.000Z');
  });

  test('dotted paths, through arrays', () => {
    const doc = { a: { b: 1 }, lines: [{ sku: 'x' }, { sku: 'y' }], d: new Date(0) };
    expect(pathValue(doc, 'a.b')).toBe(1);
    expect(pathValue(doc, 'lines.sku')).toEqual(['x', 'y']);
    expect(pathValue(doc, 'lines.1.sku')).toBe('y');
    expect(pathValue(doc, 'd.x')).toBeUndefined();
    expect(pathValue(doc, 'missing.x')).toBeUndefined();
  });
});

describe('collections against the manifest', () => {
  const manifest = { engine: Engine.MONGODB, startedAt: '2026-11-26T03:00:00Z', tables: [
    { schema: 'shop', table: 'orders', rows: 1000 }, { schema: 'shop', table: 'empty', rows: 0 },
    { schema: 'shop', table: 'system.js', rows: 2 }, { schema: 'shop', table: 'system.buckets.weather', rows: 4 },
  ] };

  test('counts in documents; a missing and an extra collection named; system.js (never loaded) left to the refusals', () => {
    const outcomes = compareTables(manifest, new Map([['orders', 999], ['empty', 0], ['system.buckets.weather', 4], ['extra', 3]]), parseTolerance(undefined));
    expect(outcomes.map((o) => o.detail)).toEqual([
      'collection orders: 999 documents restored, the manifest recorded 1000 (-1; 0 allowed)',
      'collection empty: 0 documents, as recorded',
      'collection system.buckets.weather: 4 documents, as recorded',
      'collection extra (3 documents) is in the restored database but not in the manifest',
    ]);
    expect(compareTables(manifest, new Map([['empty', 0], ['system.buckets.weather', 4]]), parseTolerance('1'))[0].detail)
      .toBe('collection orders is missing from the restored database (the manifest recorded 1000 documents)');
  });
});

test('a MongoDB report speaks of collections and documents', () => {
  const report = {
    formatVersion: 1, source: 's', success: true, bucket: 'b', engine: Engine.MONGODB, startedAt: '2026-11-26T03:00:00Z', finishedAt: '2026-11-26T03:01:00Z',
    tablesChecked: 5, rowsChecked: 1501, tables: [], checks: [], failures: [], reportKey: 's/restore-tests/x.json',
  };
  expect(formatReport(report)).toContain('  checked     5 collections, 1501 documents, 0 user checks');
  expect(formatReport({ ...report, engine: Engine.POSTGRES })).toContain('  checked     5 tables, 1501 rows, 0 user checks');
});
