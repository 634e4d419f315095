/**
 * A MongoDB source's restore-test checks, left-out namespaces and tolerance as synth gives them to the agent: the
 * synthesized command (in the orchestrator's configuration) holds the checks as written, which the agent's own parser
 * takes as MongoDB checks; a bad check fails synth naming the source and the check; and whatever synth refuses the
 * agent refuses too, so synth says early what the agent would say at the test, never more.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App, Duration, Stack } from 'aws-cdk-lib';
import * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import { BackupKeys, BackupMonitoring, BackupStore, DatabaseBackups, RestoreTesting, RowCountTolerance, SourceEngine } from '../../../lib';
import { Engine } from '../../../lib/contract';
import { RestoreTestCheck, RestoreTestSourceProps, restoreTestCommand } from '../../../lib/restore-testing/restore-test-source';
import { SCRATCH_DATABASE, scratchConnection } from '../../../lib/restore-testing/restore-test-task';
import { checksProblem, isMongoCheck, parseChecks } from '../../../container/src/restore-test/checks';
import { leftOutPatterns } from '../../../container/src/commands/restore-test';
import { loadRefusals } from '../../../container/src/engines/mongo-restore';
import { ENV, optionOf, postgresSource, sampleSecret, sampleVpc } from '../database-backups-fixture';

type SourceTest = Omit<RestoreTestSourceProps, 'source'>;

/** A stack with a MongoDB source (catalog-db) and a PostgreSQL one (orders-db), and a RestoreTesting of both made on demand. */
function fleet(catalogTest: SourceTest, ordersTest: SourceTest = {}) {
  const app = new App();
  const stack = new Stack(app, 'S', { env: ENV });
  const store = new BackupStore(stack, 'Store');
  const keys = new BackupKeys(stack, 'Keys', { replicaRegion: 'eu-central-1', replicaKeyAlias: 'alias/dr-secrets' });
  const monitoring = new BackupMonitoring(stack, 'Monitoring', { store });
  const backups = new DatabaseBackups(stack, 'DatabaseBackups', { store, keys, monitoring, vpc: sampleVpc(stack) });
  const catalog = backups.addSource({
    name: 'catalog-db', engine: SourceEngine.mongodb('7.0'), secret: sampleSecret(stack, 'catalog-db'), database: 'catalog',
    endpoint: { hostname: 'catalog.example.internal', port: 27017 },
  });
  const orders = backups.addSource(postgresSource(stack, 'orders-db'));
  const create = () => new RestoreTesting(stack, 'RestoreTesting', {
    backups, store, keys, monitoring, sources: [{ source: catalog, ...catalogTest }, { source: orders, ...ordersTest }],
  });
  /** The agent's command for catalog-db, as the synthesized orchestrator configuration holds it. */
  const synthesizedCommand = (): string[] => {
    const testing = create();
    app.synth();
    const asset = testing.node.findChild('Orchestration').node.findChild('Code') as s3assets.Asset;
    return JSON.parse(readFileSync(join(app.outdir, asset.assetPath, 'config.json'), 'utf8')).sources['catalog-db'].commands.primary;
  };
  return { create, synthesizedCommand, catalog, orders };
}

/** The JSON the agent would be given for these checks of a source: restoreTestCommand's --checks-json. */
function checksJson(props: RestoreTestSourceProps): string {
  const command = restoreTestCommand(props, {
    bucket: 'bucket', prefix: '', identitySecretArn: 'arn:identity', scratch: scratchConnection(props.source.engine.flavour), database: SCRATCH_DATABASE,
  });
  return optionOf(command, '--checks-json') as string;
}

/** What the agent says of these checks for a backup of `engine`: its parser's refusal, or its engine mismatch, or undefined. */
function agentRefusal(json: string, engine: Engine): string | undefined {
  try {
    return checksProblem(engine, parseChecks(json, '--checks-json'));
  } catch (err) {
    return (err as Error).message;
  }
}

describe('given a MongoDB source with checks, expected left-out namespaces and a tolerance', () => {
  const checks: RestoreTestCheck[] = [
    { name: 'products listed', collection: 'products', filter: { listed: true, price: { $gte: 1 }, $or: [{ tags: { $in: ['new'] } }, { stock: { $gt: 0 } }] }, minRows: 100 },
    { name: 'one catalog', collection: 'catalogs', equals: '1' },
    { name: 'newest price', collection: 'prices', field: 'amount', sort: { updatedAt: -1, _id: 1 }, equals: '9.99' },
    { name: 'prices fresh', collection: 'prices', filter: { updatedAt: { $gte: { $date: '2026-01-01T00:00:00Z' } }, sku: { $numberLong: '9007199254740993' } }, field: 'updatedAt', maxAge: Duration.hours(6) },
  ];
  const { synthesizedCommand } = fleet({ checks, expectLeftOut: ['catalog.system.js'], tolerance: RowCountTolerance.percent(1) });
  const command = synthesizedCommand();

  test('then the synthesized command holds the checks as written, maxAge in seconds and nothing left undefined', () => {
    expect(JSON.parse(optionOf(command, '--checks-json') as string)).toStrictEqual([
      { name: 'products listed', collection: 'products', filter: { listed: true, price: { $gte: 1 }, $or: [{ tags: { $in: ['new'] } }, { stock: { $gt: 0 } }] }, minRows: 100 },
      { name: 'one catalog', collection: 'catalogs', equals: '1' },
      { name: 'newest price', collection: 'prices', field: 'amount', sort: { updatedAt: -1, _id: 1 }, equals: '9.99' },
      { name: 'prices fresh', collection: 'prices', filter: { updatedAt: { $gte: { $date: '2026-01-01T00:00:00Z' } }, sku: { $numberLong: '9007199254740993' } }, field: 'updatedAt', maxAgeSeconds: 21600 },
    ]);
    // No key with an undefined value reaches the agent, which refuses unknown or misplaced fields.
    expect(optionOf(command, '--checks-json')).not.toMatch(/"sql"|null/);
  });

  test('then the agent reads them as MongoDB checks of a MongoDB backup, with the Extended JSON read into BSON values', () => {
    const parsed = parseChecks(optionOf(command, '--checks-json') as string, '--checks-json');
    expect(checksProblem(Engine.MONGODB, parsed)).toBeUndefined();
    expect(parsed.map((c) => [c.name, c.kind, c.expected, isMongoCheck(c)])).toEqual([
      ['products listed', 'minRows', 100, true], ['one catalog', 'equals', '1', true],
      ['newest price', 'equals', '9.99', true], ['prices fresh', 'maxAgeSeconds', 21600, true],
    ]);
    const fresh = parsed[3];
    if (!isMongoCheck(fresh)) throw new Error('not a MongoDB check');
    expect(fresh.mongo.filter.updatedAt.$gte).toEqual(new Date('2026-01-01T00:00:00Z'));
    expect(fresh.mongo.filter.sku).toBe(9007199254740993n);
  });

  test('then the expected namespace reaches the agent, whose patterns match it as a restore names it, and nothing else it leaves out', () => {
    expect(optionOf(command, '--expect-left-out')).toBe('catalog.system.js');
    const patterns = leftOutPatterns(optionOf(command, '--expect-left-out') as string);
    const refused = loadRefusals([
      { db: 'catalog', collection: 'system.js' }, { db: 'admin', collection: 'system.users' }, { db: 'other', collection: 'products' },
    ].map((ns) => ({ ...ns, type: 'collection', dataCollection: ns.collection, documents: 0, ended: true })), 'catalog');
    expect(refused.map((r) => [r.what, patterns.some((p) => p.test(r.what))]))
      .toEqual([['catalog.system.js', true], ['admin.system.users', false], ['other.products', false]]);
  });

  test('then the tolerance reaches the agent', () => {
    expect(optionOf(command, '--tolerance')).toBe('1%');
  });
});

/** A check that builds the same filter twice over: a filter that contains itself. */
const cyclic: Record<string, unknown> = { status: 'paid' };
cyclic.again = { $and: [cyclic] };

describe('given a MongoDB source\'s check that the agent would refuse', () => {
  test.each<[string, RestoreTestCheck, string]>([
    ['$where', { name: 'c', collection: 'a', filter: { $where: 'this.total > 10' }, minRows: 1 },
      "check 'c': filter uses $where, which runs server-side JavaScript: a check never runs code; use the query operators, such as $eq, $gte, $in and $regex"],
    ['$function deep in $and', { name: 'c', collection: 'a', filter: { $and: [{ a: 1 }, { b: { $function: { body: 'return 1', args: [], lang: 'js' } } }] }, minRows: 1 },
      "check 'c': filter.$and[1].b uses $function, which runs server-side JavaScript"],
    ['$accumulator', { name: 'c', collection: 'a', filter: { a: { $accumulator: {} } }, minRows: 1 }, "check 'c': filter.a uses $accumulator, which runs server-side JavaScript"],
    ['$expr', { name: 'c', collection: 'a', filter: { $expr: { $gt: ['$a', '$b'] } }, equals: '1' },
      "check 'c': filter uses $expr, which takes aggregation expressions, which may run server-side JavaScript ($function)"],
    ['a $code value', { name: 'c', collection: 'a', filter: { a: { $in: [{ $code: 'function () { return 1 }' }] } }, minRows: 1 },
      "check 'c': filter.a.$in[0] uses $code, which is a JavaScript value ($code), which the server could run"],
    ['a field that is an operator', { name: 'c', collection: 'a', field: 'total.$gt', equals: '1' }, "check 'c': field 'total.$gt' is not a field path: dotted names, none empty or starting with $"],
    ['a field with an empty segment', { name: 'c', collection: 'a', field: 'a..b', equals: '1' }, "check 'c': field 'a..b' is not a field path"],
    ['a sort by 2', { name: 'c', collection: 'a', field: 'x', sort: { placedAt: 2 }, equals: '1' }, "check 'c': sort gives placedAt 2: use 1 (ascending) or -1 (descending)"],
    ['an empty sort', { name: 'c', collection: 'a', field: 'x', sort: {}, equals: '1' }, "check 'c': sort must be an object of 1 to 8 fields"],
    ['a sort by nine fields', { name: 'c', collection: 'a', field: 'x', sort: Object.fromEntries('abcdefghi'.split('').map((f) => [f, 1])), equals: '1' },
      "check 'c': sort must be an object of 1 to 8 fields"],
    ['a sort without equals', { name: 'c', collection: 'a', field: 'x', sort: { x: 1 }, maxAge: Duration.hours(1) }, "check 'c': sort chooses the document whose field equals compares"],
    ['a collection name past 255 bytes', { name: 'c', collection: 'é'.repeat(128), minRows: 1 }, "check 'c' needs the collection it reads (a MongoDB collection name, no $ or NUL, at most 255 bytes)"],
    ['sql and a collection', { name: 'c', sql: 'SELECT 1', collection: 'a', minRows: 1 }, "check 'c' has an sql query, and the source is MongoDB"],
    ['neither sql nor a collection', { name: 'c', minRows: 1 }, "check 'c' needs the collection it reads"],
  ])('given %s, then synth refuses it naming the source and the check, and so does the agent', (_, check, message) => {
    const { create, catalog } = fleet({ checks: [check] });
    expect(create).toThrow(`S/RestoreTesting: source 'catalog-db': ${message}`);
    expect(agentRefusal(checksJson({ source: catalog, checks: [check] }), Engine.MONGODB)).toBeDefined();
  });

  test.each<[string, RestoreTestCheck, string]>([
    ['a collection', { name: 'c', collection: 'orders', minRows: 1 }, "check 'c' names a collection, which is for MongoDB sources: give an sql query instead"],
    ['sql and a collection', { name: 'c', sql: 'SELECT 1', collection: 'orders', minRows: 1 }, "check 'c' names a collection, which is for MongoDB sources"],
    ['neither', { name: 'c', minRows: 1 }, "check 'c' needs an sql query"],
  ])('given a PostgreSQL source\'s check with %s, then synth refuses it naming the source and the check, and so does the agent', (_, check, message) => {
    const { create, orders } = fleet({}, { checks: [check] });
    expect(create).toThrow(`S/RestoreTesting: source 'orders-db': ${message}`);
    expect(agentRefusal(checksJson({ source: orders, checks: [check] }), Engine.POSTGRES)).toBeDefined();
  });
});

describe('given a MongoDB check\'s filter that JSON would not carry to the agent as written', () => {
  test.each<[string, Record<string, unknown>, string]>([
    ['a Date', { placedAt: { $gte: new Date('2026-01-01T00:00:00Z') } },
      "filter.placedAt.$gte is a JavaScript Date, which would reach the agent as a plain string: write it in Extended JSON, { $date: '2026-01-01T00:00:00.000Z' }"],
    ['a RegExp', { name: /^acme/i }, 'filter.name is a JavaScript RegExp, which JSON cannot carry: write { $regex: "^acme", $options: \'i\' }'],
    ['a BigInt', { sku: 9007199254740993n }, "filter.sku is a BigInt, which JSON cannot carry: write it in Extended JSON, { $numberLong: '9007199254740993' }"],
    ['an undefined field', { status: undefined }, 'filter.status is undefined, which JSON leaves out (the filter would match more than it says): give it a value, or remove it'],
    ['NaN', { total: { $gt: NaN } }, 'filter.total.$gt is NaN, which JSON cannot carry: give a finite number'],
    ['a Map', { tags: new Map([['a', 1]]) }, 'filter.tags is a Map, not a plain object: write it in Extended JSON'],
    ['itself', cyclic, 'filter.again.$and[0] contains itself'],
  ])('given %s, then synth refuses it naming where it is and what to write', (_, filter, message) => {
    const { create } = fleet({ checks: [{ name: 'c', collection: 'orders', filter, minRows: 1 }] });
    expect(create).toThrow(`S/RestoreTesting: source 'catalog-db': check 'c': ${message}`);
  });
});

describe('expectLeftOut on a MongoDB source', () => {
  test('given a pattern with ;, then synth refuses it, since ; separates patterns for the agent', () => {
    const { create } = fleet({ expectLeftOut: ['catalog.system.js;admin.*'] });
    expect(create).toThrow("S/RestoreTesting: source 'catalog-db': expectLeftOut: the pattern 'catalog.system.js;admin.*' contains ';'");
  });

  test('given a blank pattern, then synth refuses it with a MongoDB example', () => {
    const { create } = fleet({ expectLeftOut: [' '] });
    expect(create).toThrow("S/RestoreTesting: source 'catalog-db': expectLeftOut: every pattern must be a non-empty string (got \" \"), for example '<database>.system.js'");
  });
});
