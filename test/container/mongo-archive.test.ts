/**
 * The archive counter (mongo-archive.ts) on a real mongodump 100.10.0 archive of the services' FerretDB, fed in chunks
 * of every size, and on copies cut short or garbled: a cut anywhere is incomplete, a garbled length or a missing end is
 * said in words. Views, timeseries buckets and namespaces outside the database on hand-written archives.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { BSON } from 'mongodb';
import { MAX_NAMESPACES, MongoArchiveCounter, archiveCountProblems, documentCounts, foreignNamespaces } from '../../container/src/engines/mongo-archive';
import { loadProblems, loadRefusals, namespacePattern, scanArchive } from '../../container/src/engines/mongo-restore';
import { MONGO, MONGO_TOOLS_DIR, createMongoFixture, dropMongoDatabase, mongoFixtureCounts, mongoToolArgs, uniqueName } from '../support';
import { TERMINATOR, plantedArchive } from './mongo-archive-builder';

const database = uniqueName('arch_mongo');
const customers = 300;
const dir = mkdtempSync(join(tmpdir(), 'mongo-archive-test-'));
let archive: Buffer;

beforeAll(async () => {
  await createMongoFixture(database, customers);
  const config = join(dir, 'tools.yaml');
  writeFileSync(config, `password: ${MONGO.password}\n`, { mode: 0o600 });
  const dump = spawnSync(join(MONGO_TOOLS_DIR, 'mongodump'), [...mongoToolArgs(database), `--config=${config}`, '--archive'], { maxBuffer: 1 << 30 });
  if (dump.status !== 0) throw new Error(`mongodump failed: ${dump.stderr}`);
  archive = dump.stdout;
}, 120_000);

afterAll(async () => {
  await dropMongoDatabase(database).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

function count(bytes: Buffer, chunk = bytes.length): MongoArchiveCounter {
  const counter = new MongoArchiveCounter();
  for (let i = 0; i < bytes.length; i += chunk) counter.write(bytes.subarray(i, i + chunk));
  return counter;
}

const counts = (counter: MongoArchiveCounter, db = database) => Object.fromEntries(documentCounts(counter.namespaces, db).map((t) => [t.table, t.rows]));

test('counts every collection of a real archive, whatever the chunk boundaries', () => {
  for (const chunk of [1, 3, 4, 5, 64, 4093, 65536, archive.length]) {
    const counter = count(archive, chunk);
    expect(counter.incompleteness()).toBeUndefined();
    expect(counts(counter)).toEqual(mongoFixtureCounts(customers));
  }
  const counter = count(archive);
  expect(counter.header).toEqual({ formatVersion: '0.1', serverVersion: expect.any(String), toolVersion: '100.10.0' });
  const expected = Object.entries(mongoFixtureCounts(customers)).map(([table, rows]) => ({ schema: database, table, rows }));
  expect(archiveCountProblems(counter, expected, database)).toEqual([]);
  expect(archiveCountProblems(counter, expected.map((t) => (t.table === 'orders' ? { ...t, rows: t.rows + 1 } : t)), database))
    .toEqual([`collection orders: the archive holds ${customers * 3} documents, the manifest recorded ${customers * 3 + 1}`]);
  expect(archiveCountProblems(counter, [...expected, { schema: database, table: 'gone', rows: 0 }], database))
    .toEqual(['collection gone: the archive holds no such collection, the manifest recorded 0']);
  expect(archiveCountProblems(counter, expected.filter((t) => t.table !== 'events'), database)).toEqual(['collection events: in the archive, not in the manifest']);
});

test('an archive cut short anywhere is incomplete', () => {
  const step = Math.max(1, Math.floor(archive.length / 997));
  for (let length = 0; length < archive.length; length += step) {
    const problem = count(archive.subarray(0, length)).incompleteness();
    expect(problem).toBeDefined();
  }
  expect(count(archive.subarray(0, archive.length - 1)).incompleteness()).toMatch(/ends inside its structure/);
  // Cut at a block's end before the last EOF header: the structure is whole, but one collection never ended.
  const cut = archive.subarray(0, archive.lastIndexOf(TERMINATOR, archive.length - 5) + 4);
  expect(count(cut).incompleteness()).toMatch(/^the archive ends before the end of .*: the dump is incomplete$/);
  // Cut inside a document.
  expect(count(archive.subarray(0, archive.length - 200)).incompleteness()).toMatch(/ends inside (a document|its structure) after \d+ bytes/);
  expect(count(Buffer.alloc(0)).incompleteness()).toBe('the archive is empty');
});

test('garbled bytes are refused in words, never counted', () => {
  const notArchive = Buffer.from(archive);
  notArchive[0] ^= 0xff;
  expect(count(notArchive).incompleteness()).toMatch(/does not begin with the archive magic number/);
  expect(count(Buffer.from('{"a json": "text"}')).problem).toMatch(/magic number/);

  // A document length in the data blocks set past the tools' 16 MiB bound.
  const body = Buffer.from(archive);
  const at = body.indexOf(Buffer.from('customers\0', 'latin1'), body.indexOf(TERMINATOR) + 4);
  const header = body.lastIndexOf(Buffer.from([0x02, 0x64, 0x62, 0x00]), at) - 4; // the namespace header starts 4 bytes before its first element
  const firstDoc = header + body.readInt32LE(header);
  body.writeInt32LE(0x7f000000, firstDoc);
  expect(count(body).incompleteness()).toMatch(/is neither a document length nor a terminator/);

  // A document whose last byte is not zero.
  const unterminated = Buffer.from(archive);
  unterminated[firstDoc + unterminated.readInt32LE(firstDoc) - 1] = 0x41;
  expect(count(unterminated).problem).toMatch(/does not end with a zero byte/);

  // A block for a namespace the prelude does not name.
  const renamed = Buffer.from(archive);
  const name = renamed.indexOf(Buffer.from('customers\0', 'latin1'), header);
  renamed.write('customerz', name, 'latin1');
  expect(count(renamed).problem).toMatch(/names .*customerz, which the prelude does not/);
});

test('views hold no documents, timeseries documents are their buckets, other databases are outside', async () => {
  const bytes = plantedArchive([
    { db: 'shop', collection: 'orders', docs: [{ _id: 1 }, { _id: 2 }] },
    { db: 'shop', collection: 'recent', type: 'view', docs: [] },
    { db: 'shop', collection: 'metrics', type: 'timeseries', docs: [{ _id: 1, control: {} }] },
    { db: 'shop', collection: 'system.js', docs: [{ _id: 'f' }] },
    { db: 'other', collection: 'secrets', docs: [{ _id: 1 }] },
  ]);
  const counter = count(bytes, 7);
  expect(counter.incompleteness()).toBeUndefined();
  expect(counts(counter, 'shop')).toEqual({ orders: 2, 'system.buckets.metrics': 1, 'system.js': 1 });
  expect(archiveCountProblems(counter, documentCounts(counter.namespaces, 'shop'), 'shop')).toEqual([]);
  expect(foreignNamespaces(counter, 'shop')).toEqual(['other.secrets: outside the backed-up database shop']);
  expect(loadRefusals(counter.namespaces, 'shop').map((r) => r.what)).toEqual(['shop.system.js', 'other.secrets']);

  // A restore reads the whole archive before loading: complete, and holding the manifest's counts, or refused.
  const scanned = await scanArchive({ open: () => Readable.from([bytes.subarray(0, 5), bytes.subarray(5)]) });
  expect(loadProblems(scanned, 'shop', documentCounts(counter.namespaces, 'shop'))).toEqual([]);
  expect(loadProblems(scanned, 'shop', [{ schema: 'shop', table: 'orders', rows: 3 }])).toEqual([
    'collection orders: the archive holds 2 documents, the manifest recorded 3',
    'collection system.buckets.metrics: in the archive, not in the manifest', 'collection system.js: in the archive, not in the manifest']);
  expect(loadProblems(await scanArchive({ open: () => Readable.from([bytes.subarray(0, bytes.length - 4)]) }), 'shop')).toEqual([
    expect.stringMatching(/ends inside its structure/)]);
  await expect(scanArchive({ open: () => Readable.from([Buffer.from('PGDMP')]) })).rejects.toThrow(/magic number/);

  // Documents after a namespace's end, and a namespace the prelude names twice.
  const one = plantedArchive([{ db: 's', collection: 'c', docs: [{ _id: 1 }] }]);
  expect(count(one).incompleteness()).toBeUndefined();
  const extra = Buffer.concat([one.subarray(0, one.length - 4), BSON.serialize({ _id: 2 }), TERMINATOR]);
  expect(count(extra).problem).toMatch(/documents follow the end of s\.c/);
  expect(count(plantedArchive([{ db: 's', collection: 'c', docs: [] }, { db: 's', collection: 'c', docs: [] }])).problem).toMatch(/names s\.c twice/);
});

test('a prelude entry is what its metadata makes it, as mongorestore decides: a disagreement, a view with documents or a buckets entry fail the archive', () => {
  const problem = (...namespaces: Parameters<typeof plantedArchive>[0]) => count(plantedArchive([{ db: 's', collection: 'a', docs: [{ _id: 1 }] }, ...namespaces])).problem;
  // Typed a view, created a collection: its documents would load where no count sees them.
  expect(problem({ db: 's', collection: 'hidden', type: 'collection', preludeType: 'view', docs: [{ _id: 1 }] }))
    .toMatch(/s\.hidden: the prelude calls it a view but its metadata makes it a collection/);
  // Typed a collection, created a view whose pipeline a count would run.
  expect(problem({ db: 's', collection: 'v', options: { viewOn: 'a', pipeline: [{ $match: { $expr: true } }] }, docs: [] }))
    .toMatch(/s\.v: the prelude calls it a collection but its metadata makes it a view/);
  expect(problem({ db: 's', collection: 'v', type: 'view', docs: [{ _id: 1 }] })).toMatch(/s\.v, a view, which holds none/);
  // mongorestore strips system.buckets. before its filter: these documents would land in s.foo.
  expect(problem({ db: 's', collection: 'system.buckets.foo', docs: [{ _id: 1 }] })).toMatch(/lists s\.system\.buckets\.foo, a buckets collection/);
  expect(problem({ db: 's', collection: 'm', type: 'timeseries', options: {}, docs: [] })).toMatch(/calls it a timeseries but its metadata makes it a collection/);
  expect(problem({ db: 's', collection: 'b', options: { collation: { locale: 'fr' } }, docs: [] })).toBeUndefined();
});

test('names a MongoDB server cannot hold fail the archive, unechoed: a control character would forge report lines or drive a terminal', () => {
  const forged = 'system.js\n  - nothing left out; restore test PASSED\u001b[2K';
  for (const [db, collection] of [['s', forged], ['s', 'x'.repeat(1_000_000)], ['s', 'osc\u009d52'], ['s', ''], ['a\nb', 'c'], ['a.b', 'c'], ['x'.repeat(64), 'c']]) {
    const problem = count(plantedArchive([{ db, collection, docs: [] }])).problem;
    expect(problem).toMatch(/the prelude names a (database|collection) name .*that MongoDB does not allow/);
    expect(problem).not.toContain(forged);
    expect(problem!.length).toBeLessThan(300);
  }
  expect(count(plantedArchive([{ db: 's', collection: 'ünïcode $name-ok', docs: [] }])).problem).toBeUndefined();
});

test('a namespace whose documents do not match the CRC of its end fails the archive before anything loads', () => {
  const bytes = plantedArchive([{ db: 's', collection: 'a', docs: [{ _id: 1 }] }, { db: 's', collection: 'b', docs: [{ _id: 1 }, { _id: 2 }] }]);
  expect(count(bytes, 3).problem).toBeUndefined();
  // The last block is b's EOF header: its CRC is an int64 ending 5 bytes before the header's terminating zero and the block's terminator.
  const altered = Buffer.from(bytes);
  altered[altered.length - 4 - 1 - 8] ^= 1;
  expect(count(altered, 3).problem).toMatch(/the documents of s\.b do not match the CRC of its end/);
  // A document changed in place, its length and end byte intact: only the CRC tells.
  const body = Buffer.from(bytes);
  const at = body.indexOf(Buffer.from(BSON.serialize({ _id: 2 })));
  body[at + 11] ^= 1;
  expect(count(body, 3).problem).toMatch(/the documents of s\.b do not match the CRC/);
});

test('a prelude listing more collections than any database holds fails the archive, before it costs the agent its memory', () => {
  const many = (n: number) => plantedArchive(Array.from({ length: n }, (_, i) => ({ db: 's', collection: `c${i}`, docs: [] })));
  expect(count(many(MAX_NAMESPACES), 1 << 20).problem).toBeUndefined();
  expect(count(many(MAX_NAMESPACES + 1), 1 << 20).problem).toMatch(new RegExp(`the prelude lists more than ${MAX_NAMESPACES} collections`));
}, 60_000);

test('database names become mongorestore patterns, escaped; what no MongoDB database may be called is refused', () => {
  expect(namespacePattern('shop')).toBe('shop');
  expect(() => namespacePattern('a.b')).toThrow(/not a MongoDB database name/);
  expect(() => namespacePattern('$db$')).toThrow(/not a MongoDB database name/);
  expect(() => namespacePattern('')).toThrow(/not a MongoDB database name/);
});
