/**
 * MongoDB restores with the bundled agent against the services' FerretDB and the real mongorestore 100.10.0: a backup
 * verified and restored into another database name, document by document and index by index; a non-empty target
 * refused without --clean and replaced with it; and a planted archive (a backup is untrusted input) whose namespaces
 * outside the backed-up database, and whose system.js, are left out and named.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { BSON } from 'mongodb';
import { DumpFormat, Manifest, backupKey as keyFor, manifestKeyFor } from '../../lib/contract';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { parseMongoGlobals, reportMongoGlobals } from '../../container/src/engines/mongo-globals';
import { MongoSession } from '../../container/src/engines/mongodb';
import { plantedArchive } from './mongo-archive-builder';
import {
  AgeKey, MONGO, MONGO_TOOLS_DIR, S3Emulator, prependPath, agentEnv, createMongoFixture, dropMongoDatabase, makeAgeKey, mongoDocuments, mongoFixtureCounts, mongoIndexes,
  mongoToolsPath, runAgent, startS3rver, uniqueName, withMongo,
} from '../support';

const source = 'mongo-restore';
const customers = 2000;
let s3: S3Emulator;
let key: AgeKey;
let manifest: Manifest;
const database = uniqueName('rs_mongo');
const target = uniqueName('rs_mongo_copy');
const planted = uniqueName('rs_mongo_planted');
const spooled = uniqueName('rs_mongo_spooled');
const foreign = uniqueName('rs_mongo_foreign');
const hidden = uniqueName('rs_mongo_hidden');
const created = [database, target, planted, foreign, spooled, hidden];

const env = () => agentEnv({ ...s3.env, MONGODB_PASSWORD: MONGO.password, PATH: mongoToolsPath() });
const connection = (db: string) => ['--host', MONGO.host, '--port', String(MONGO.port), '--user', MONGO.user, '--auth-source', MONGO.authSource,
  '--auth-mechanism', MONGO.authMechanism, '--database', db];
const restore = (db: string, ...extra: string[]) => runAgent(['restore', '--source', source, '--bucket', s3.bucket, '--identity-file', key.identityFile,
  ...connection(db), ...extra], env());

beforeAll(async () => {
  s3 = await startS3rver();
  key = makeAgeKey();
  await createMongoFixture(database, customers);
  const run = await runAgent(['backup', '--source', source, '--engine', 'mongo', '--bucket', s3.bucket, '--recipient-file', key.recipientFile,
    ...connection(database), '--json'], env());
  if (run.code !== 0) throw new Error(`backup failed: ${run.stderr}`);
  manifest = JSON.parse((await s3.getText(JSON.parse(run.stdout).manifestKey))!) as Manifest;
}, 180_000);

afterAll(async () => {
  for (const db of created) await dropMongoDatabase(db).catch(() => undefined);
  await s3?.stop();
});

test('verify decrypts the archive and finds the manifest\'s document counts in it', async () => {
  const run = await runAgent(['verify', '--source', source, '--bucket', s3.bucket, '--identity-file', key.identityFile, '--json'], env());
  expect(run.stderr).not.toContain('restorable verify:');
  expect(run.code).toBe(0);
  const result = JSON.parse(run.stdout);
  expect(result.readFully).toBe(true);
  expect(result.checks.join('\n')).toContain('the mongodump archive is complete and holds the manifest\'s document counts');
}, 120_000);

test('restores into another database name, document by document; a non-empty target needs --clean', async () => {
  const run = await restore(target, '--json');
  expect(run.stderr).not.toContain('restorable restore:');
  expect(run.code).toBe(0);
  const result = JSON.parse(run.stdout);
  expect(result).toMatchObject({ engine: 'mongodb', mode: 'streamed', refused: [], loadedAs: MONGO.user });
  const expected = mongoFixtureCounts(customers);
  const [original, copy] = [await mongoDocuments(database), await mongoDocuments(target)];
  expect(Object.keys(copy).sort()).toEqual(Object.keys(expected).sort());
  for (const name of Object.keys(expected)) {
    expect(copy[name].length).toBe(expected[name]);
    expect(copy[name]).toEqual(original[name]);
  }
  expect(await mongoIndexes(target)).toEqual(await mongoIndexes(database));
  // The source database was read, never written.
  expect(Object.fromEntries(Object.entries(await mongoDocuments(database)).map(([n, d]) => [n, d.length]))).toEqual(expected);

  // Into the same target again: refused, naming what is there; with --clean, replaced (no duplicate keys).
  await withMongo((c) => c.db(target).collection<{ _id: number }>('customers').updateOne({ _id: 1 }, { $set: { name: 'changed after the restore' } }));
  const refused = await restore(target);
  expect(refused.code).not.toBe(0);
  expect(refused.stderr).toMatch(/is not empty \(4 objects: .*customers.*\).*--clean/s);
  const clean = await restore(target, '--clean');
  expect(clean.stderr).not.toContain('restorable restore:');
  expect(clean.code).toBe(0);
  expect(clean.stdout).toMatch(new RegExp(`into \\S+/${target}: 4 collections, ${customers * 6} documents per the manifest, SHA-256 verified, streamed, .*; mongorestore loaded it as `));
  expect(await mongoDocuments(target)).toEqual(original);
}, 300_000);

test('--jobs spools and verifies the archive first, then loads it through one mongorestore', async () => {
  const run = await restore(spooled, '--jobs', '2', '--json');
  expect(run.stderr).not.toContain('restorable restore:');
  expect(run.code).toBe(0);
  expect(JSON.parse(run.stdout)).toMatchObject({ mode: 'spooled', jobs: 2 });
  expect(run.stderr).toContain('mongodb loads its archive through one mongorestore');
  expect(await mongoDocuments(spooled)).toEqual(await mongoDocuments(database));
}, 120_000);

function seal(bytes: Buffer): Buffer {
  const compressed = spawnSync('zstd', ['-q', '-c'], { input: bytes });
  const sealed = spawnSync('age', ['-r', key.recipient], { input: compressed.stdout });
  if (compressed.status !== 0 || sealed.status !== 0) throw new Error(`sealing failed: ${compressed.stderr}${sealed.stderr}`);
  return sealed.stdout;
}

/** Stores a planted archive as a backup of the source, with a manifest holding `tables`; returns its key. */
async function plant(namespaces: Parameters<typeof plantedArchive>[0], tables: Manifest['tables'], minutes: number,
  alter = (b: Buffer) => b): Promise<string> {
  const dump = alter(plantedArchive(namespaces));
  const body = seal(dump);
  const plantedKey = keyFor(undefined, source, new Date(Date.parse(manifest.startedAt) + minutes * 60_000), DumpFormat.MONGO_ARCHIVE);
  const forged: Manifest = {
    ...manifest, key: plantedKey, size: body.length, sha256: createHash('sha256').update(body).digest('hex'), dumpSize: dump.length, tables, companions: [],
  };
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: plantedKey, Body: body }));
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: manifestKeyFor(plantedKey), Body: JSON.stringify(forged) }));
  return plantedKey;
}

test('a planted archive: namespaces outside the backed-up database and system.js are left out and named', async () => {
  const plantedKey = await plant([
    { db: manifest.database, collection: 'customers', docs: [{ _id: 1, name: 'kept' }, { _id: 2, name: 'kept too' }] },
    { db: manifest.database, collection: 'system.js', docs: [{ _id: 'f', value: new BSON.Code('function () { return 1; }') }] },
    { db: foreign, collection: 'secrets', docs: [{ _id: 1, planted: true }] },
    { db: 'admin', collection: 'system.users', docs: [{ _id: 'admin.evil', user: 'evil', db: 'admin' }] },
  ], [{ schema: manifest.database, table: 'customers', rows: 2 }, { schema: manifest.database, table: 'system.js', rows: 1 }], 1);

  const run = await restore(planted, '--key', plantedKey, '--json');
  expect(run.stderr).not.toContain('restorable restore:');
  expect(run.code).toBe(0);
  const result = JSON.parse(run.stdout);
  expect(result.refused.map((r: { what: string }) => r.what).sort()).toEqual([`${manifest.database}.system.js`, 'admin.system.users', `${foreign}.secrets`].sort());
  expect(result.refused.find((r: { what: string }) => r.what === `${foreign}.secrets`).why).toMatch(/outside the backed-up database/);
  const restored = await mongoDocuments(planted);
  expect(Object.keys(restored)).toEqual(['customers']);
  expect(restored.customers).toHaveLength(2);
  await withMongo(async (c) => {
    const names = (await c.db().admin().listDatabases({ nameOnly: true })).databases.map((d) => d.name);
    expect(names).not.toContain(foreign);
    expect(await c.db('admin').collection('system.users').countDocuments({ user: 'evil' }).catch(() => 0)).toBe(0);
  });
}, 120_000);

test('a planted archive whose prelude hides a collection mongorestore would load (typed a view, or named system.buckets.) is refused before anything loads, as is a name no server can hold or a CRC that does not match', async () => {
  const kept = { db: manifest.database, collection: 'customers', docs: [{ _id: 1, name: 'kept' }] };
  const manifestOf = [{ schema: manifest.database, table: 'customers', rows: 1 }];
  // Given --clean, mongorestore would drop the target's `users` and insert the planted documents in its place.
  await withMongo((c) => c.db(hidden).collection<{ _id: string }>('users').insertMany([{ _id: 'alice' }, { _id: 'bob' }]));
  const asView = await plant([kept, { db: manifest.database, collection: 'users', preludeType: 'view', docs: [{ _id: 'mallory', planted: true }] }], manifestOf, 2);
  const run = await restore(hidden, '--key', asView, '--clean');
  expect(run.code).toBe(1);
  expect(run.stderr).toMatch(/users: the prelude calls it a view but its metadata makes it a collection/);
  expect(await mongoDocuments(hidden)).toEqual({ users: ['{"_id":"alice"}', '{"_id":"bob"}'] });

  const buckets = await plant([kept, { db: manifest.database, collection: 'system.buckets.foo', docs: [{ _id: 1 }, { _id: 2 }] }],
    [...manifestOf, { schema: manifest.database, table: 'system.buckets.foo', rows: 2 }], 3);
  const second = await restore(hidden, '--key', buckets, '--clean');
  expect(second.code).toBe(1);
  expect(second.stderr).toMatch(/system\.buckets\.foo, a buckets collection, which mongodump never does/);
  expect(Object.keys(await mongoDocuments(hidden))).toEqual(['users']);

  // A name no server can hold, made to forge the report's lines and erase the terminal's: refused, never printed.
  const forged = await plant([kept, { db: manifest.database, collection: 'system.js\n  - nothing left out\u001b[2K', docs: [] }], manifestOf, 4);
  const third = await restore(hidden, '--key', forged, '--clean');
  expect(third.code).toBe(1);
  expect(third.stderr).toMatch(/the prelude names a collection name of \S+ that MongoDB does not allow/);
  expect(third.stderr).not.toMatch(/nothing left out|\u001b/);
  expect(Object.keys(await mongoDocuments(hidden))).toEqual(['users']);

  // mongorestore checks a namespace's CRC only once its documents are in: the agent checks it before anything loads.
  const crc = await plant([kept, { db: manifest.database, collection: 'orders', docs: [{ _id: 1 }, { _id: 2 }] }],
    [...manifestOf, { schema: manifest.database, table: 'orders', rows: 2 }], 5, (b) => {
      const altered = Buffer.from(b);
      altered[altered.length - 4 - 1 - 8] ^= 1;
      return altered;
    });
  const fourth = await restore(hidden, '--key', crc, '--clean');
  expect(fourth.code).toBe(1);
  expect(fourth.stderr).toMatch(/the documents of \S+\.orders do not match the CRC of its end/);
  expect(Object.keys(await mongoDocuments(hidden))).toEqual(['users']);
}, 120_000);

test('after a load, a collection the manifest does not hold is named, and what was there before the load is not', async () => {
  const db = uniqueName('rs_mongo_check');
  created.push(db);
  await withMongo((c) => c.db(db).collection<{ _id: number }>('before').insertOne({ _id: 1 }));
  const session = new MongoSession({ host: MONGO.host, port: MONGO.port, user: MONGO.user, password: MONGO.password, database: db,
    mongo: { authSource: MONGO.authSource, authMechanism: MONGO.authMechanism, tls: false } }, { sourceDatabase: 'shop' });
  try {
    const archive = plantedArchive([{ db: 'shop', collection: 'customers', docs: [{ _id: 1 }] }]);
    await session.planLoad({ open: () => Readable.from([archive]) }, { scratch: false, createdRoles: [], asConnectedUser: false });
    await withMongo((c) => c.db(db).collection<{ _id: number }>('customers').insertOne({ _id: 1 }));
    const tables = [{ schema: 'shop', table: 'customers', rows: 1 }];
    await expect(session.checkLoaded(tables)).resolves.toBeUndefined();
    await withMongo((c) => c.db(db).collection<{ _id: number }>('stray').insertOne({ _id: 1 }));
    await expect(session.checkLoaded(tables)).rejects.toThrow(/differs from the backup's manifest: stray: a collection the backup's manifest does not hold$/);
  } finally {
    await session.close();
  }
}, 60_000);

test('mongorestore gets an environment made for it: no AWS credentials, no password variable, nothing else of the agent\'s', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mongo-env-'));
  const seen = join(dir, 'env.txt');
  writeFileSync(join(dir, 'mongorestore'), `#!/bin/sh\nenv > '${seen}'\n{ pwd; ls -A; } > '${seen}.cwd'\nexec '${join(MONGO_TOOLS_DIR, 'mongorestore')}' "$@"\n`, { mode: 0o755 });
  const db = uniqueName('rs_mongo_env');
  created.push(db);
  const run = await runAgent(['restore', '--source', source, '--bucket', s3.bucket, '--identity-file', key.identityFile, '--key', manifest.key,
    ...connection(db)], { ...env(), PATH: prependPath(dir, env().PATH), AWS_SESSION_TOKEN: 'agent-only-token' });
  expect(run.stderr).not.toContain('restorable restore:');
  expect(run.code).toBe(0);
  const names = readFileSync(seen, 'utf8').split('\n').map((line) => line.split('=')[0]).filter((name) => name && !['PWD', 'SHLVL', '_'].includes(name));
  expect(names.sort()).toEqual(['HOME', 'LANG', 'PATH', 'TZ']);
  // It runs in its empty private HOME, where no path an archive names can find a file.
  const home = readFileSync(seen, 'utf8').split('\n').find((line) => line.startsWith('HOME='))!.slice('HOME='.length);
  expect(readFileSync(`${seen}.cwd`, 'utf8')).toBe(`${home}\n`);
  rmSync(dir, { recursive: true, force: true });
}, 120_000);

test('users and roles from a backup are reported for a person to recreate, never created', () => {
  // The companion as a real MongoDB writes it (usersInfo without credentials, rolesInfo with privileges); FerretDB has neither command.
  const text = BSON.EJSON.stringify({
    format: 'restorable-mongodb-users-roles/1', database: 'shop',
    users: [{ _id: 'shop.app', user: 'app', db: 'shop', roles: [{ role: 'readWrite', db: 'shop' }, { role: 'reporting', db: 'shop' }] }],
    roles: [{ role: 'reporting', db: 'shop', privileges: [{ resource: { db: 'shop', collection: 'orders' }, actions: ['find'] }], roles: [] }],
  }, { relaxed: false });
  const refused = reportMongoGlobals(parseMongoGlobals(text), 'shop', 'shop_copy');
  expect(refused.map((r) => r.what)).toEqual(['role reporting@shop', 'user app@shop']);
  expect(refused[1].why).toMatch(/never creates users.*createUser.*readWrite@shop, reporting@shop/);
  expect(refused[0].why).toMatch(/createRole.*1 privileges/);
  expect(() => parseMongoGlobals('{not json')).toThrow(/not Extended JSON/);
});
