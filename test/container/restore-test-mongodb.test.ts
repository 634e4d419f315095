/**
 * `restorable restore-test` of a MongoDB source, end to end: a real backup by the bundled agent (mongodump 100.10.0
 * against the services' FerretDB) into the S3 emulator, then restore tests into fresh scratch databases on the same
 * server, each under a unique name (in AWS, the restore-test task's MongoDB sidecar). One passes, with the collection
 * set, every document count and the user's checks as queries; the others fail with a stored report naming why: a
 * manifest whose counts disagree with the archive (the manifest comes from the dump task, so it is crafted in the
 * bucket as an attacker or a bug would write it), checks that do not hold, and a scratch database that is not empty.
 * A planted backup's namespaces outside its database fail the test unless declared; its users and roles are listed.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { BSON } from 'mongodb';
import { DumpFormat, Manifest, backupKey as keyFor, globalsKeyFor, manifestKeyFor, restoreTestLatestKey } from '../../lib/contract';
import { plantedArchive } from './mongo-archive-builder';
import {
  AgeKey, MONGO, S3Emulator, agentEnv, createMongoFixture, dropMongoDatabase, makeAgeKey, mongoDocuments, mongoFixtureCounts, mongoToolsPath,
  runAgent, startS3rver, uniqueName, withMongo,
} from '../support';

const source = 'rt-mongo';
const customers = 300;
const database = uniqueName('rt_mongo');
const scratches: string[] = [];
/** The fixture's collections and counts, with a heartbeat written just before the backup. */
const counts: Record<string, number> = { ...mongoFixtureCounts(customers), heartbeats: 1 };
/**
 * How failure lines name the services' login: its password is its name, and failures pass through the agent's
 * redactor, which masks the password wherever it appears.
 */
const redactedUser = MONGO.password === MONGO.user ? '***' : MONGO.user;
let s3: S3Emulator;
let key: AgeKey;
let backupKey: string;
let manifestKey: string;

const env = () => agentEnv({ ...s3.env, MONGODB_PASSWORD: MONGO.password, PATH: mongoToolsPath() });
const connection = (db: string) => ['--host', MONGO.host, '--port', String(MONGO.port), '--user', MONGO.user, '--auth-source', MONGO.authSource,
  '--auth-mechanism', MONGO.authMechanism, '--database', db];

/** Checks that hold on the fixture: counts with filters (Extended JSON dates), a field's value, and a recent time. */
const CHECKS = [
  { name: 'customers exist', collection: 'customers', minRows: customers },
  { name: 'orders since June 2024', collection: 'orders', filter: { placedAt: { $gte: { $date: '2024-06-01T00:00:00Z' } }, total: { $gt: 0 } }, minRows: customers * 3 - 1 },
  { name: 'clicks', collection: 'events', filter: { kind: { $in: ['click'] } }, equals: customers },
  { name: 'first customer', collection: 'customers', filter: { 'address.city': 'Zürich' }, field: 'email', sort: { _id: 1 }, equals: 'customer0@example.com' },
  // Past 2^53, so that only an exact 64-bit comparison finds the one customer.
  { name: 'one 64-bit lifetime', collection: 'customers', filter: { lifetimeCents: { $numberLong: '9007199254740993' } }, equals: 1 },
  { name: 'a 64-bit balance', collection: 'customers', filter: { _id: 2 }, field: 'lifetimeCents', equals: '9007199254740994' },
  { name: 'heartbeat recent', collection: 'heartbeats', field: 'at', maxAgeSeconds: 3600 },
];

/** Runs a restore test into `scratch` (a new unique name unless given); returns the exit code and the JSON report. */
async function restoreTest(extra: string[] = [], scratch = newScratch()) {
  const run = await runAgent(['restore-test', '--source', source, '--bucket', s3.bucket, '--identity-file', key.identityFile,
    ...connection(scratch), '--json', ...extra], env());
  expect(run.stdout).not.toBe('');
  return { ...run, scratch, report: JSON.parse(run.stdout) };
}

function newScratch(): string {
  const name = uniqueName(`rt_mongo_scratch_${scratches.length}`);
  scratches.push(name);
  return name;
}

async function collectionsOf(db: string): Promise<string[]> {
  return withMongo(async (c) => (await c.db(db).listCollections({}, { nameOnly: true }).toArray()).map((x) => x.name).sort());
}

async function putObject(k: string, body: string | Buffer): Promise<void> {
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: k, Body: body }));
}

/** Runs `fn` with the manifest replaced by `edit(manifest)`, restoring the original afterwards. */
async function withManifest(edit: (m: Manifest) => Manifest, fn: () => Promise<void>): Promise<void> {
  const original = (await s3.getText(manifestKey))!;
  await putObject(manifestKey, JSON.stringify(edit(JSON.parse(original) as Manifest)));
  try {
    await fn();
  } finally {
    await putObject(manifestKey, original);
  }
}

beforeAll(async () => {
  s3 = await startS3rver();
  key = makeAgeKey();
  await createMongoFixture(database, customers);
  await withMongo((c) => c.db(database).collection('heartbeats').insertOne({ _id: 1 as never, at: new Date() }));
  const run = await runAgent(['backup', '--source', source, '--engine', 'mongodb', '--bucket', s3.bucket, '--recipient-file', key.recipientFile,
    ...connection(database), '--json'], env());
  if (run.code !== 0) throw new Error(`the backup these tests restore failed: ${run.stderr}`);
  ({ key: backupKey, manifestKey } = JSON.parse(run.stdout));
}, 180_000);

afterAll(async () => {
  for (const db of [database, ...scratches]) await dropMongoDatabase(db).catch(() => undefined);
  await s3?.stop();
});

test('passes: the collection set and every document count as recorded, the checks hold as queries, and the report is stored', async () => {
  const run = await restoreTest(['--checks-json', JSON.stringify(CHECKS)]);
  expect(run.stderr).not.toContain('restorable restore-test:');
  expect(run.code).toBe(0);
  const { report } = run;
  const manifest = JSON.parse((await s3.getText(manifestKey))!) as Manifest;
  expect(manifest.tables.map((t) => [t.table, t.rows])).toEqual(Object.entries(counts).sort(([a], [b]) => a.localeCompare(b)));
  expect(report).toMatchObject({ source, engine: 'mongodb', success: true, key: backupKey, failures: [], tablesChecked: Object.keys(counts).length,
    rowsChecked: Object.values(counts).reduce((a, b) => a + b, 0), target: `${MONGO.user}@${MONGO.host}:${MONGO.port}/${run.scratch}` });
  expect(report.tables).toContainEqual({ table: 'orders', expected: customers * 3, actual: customers * 3, passed: true,
    detail: `collection orders: ${customers * 3} documents, as recorded` });
  expect(report.tables).toContainEqual({ table: 'empty_things', expected: 0, actual: 0, passed: true, detail: 'collection empty_things: 0 documents, as recorded' });
  expect(report.checks.map((c: { name: string; passed: boolean; detail: string }) => [c.name, c.passed])).toEqual(CHECKS.map((c) => [c.name, true]));
  expect(report.checks[0].detail).toBe(`expected at least ${customers} documents, got ${customers}`);
  expect(report.durationSeconds).toBeGreaterThan(0);
  // FerretDB has no usersInfo: the manifest says why, and the report lists no users to recreate.
  expect(manifest.globals.reason).toMatch(/usersInfo/);
  expect(report.refused).toEqual([]);
  // What the validation counted is the backup, document by document.
  expect(await mongoDocuments(run.scratch)).toEqual(await mongoDocuments(database));
  expect(JSON.parse((await s3.getText(report.reportKey))!)).toEqual(report);
  expect(JSON.parse((await s3.getText(restoreTestLatestKey(undefined, source)))!)).toMatchObject({ finishedAt: report.finishedAt, success: true });
}, 120_000);

test('fails when the manifest\'s count for a collection disagrees with the archive, before anything is loaded', async () => {
  const bumped = (m: Manifest): Manifest => ({ ...m, tables: m.tables.map((t) => (t.table === 'orders' ? { ...t, rows: t.rows + 1 } : t)) });
  await withManifest(bumped, async () => {
    // A tolerance relaxes the comparison of the restored database, never the archive's: the manifest's counts are read
    // from the archive stream, so a difference there is a manifest that lies about the backup.
    const run = await restoreTest(['--tolerance', '5']);
    expect(run.code).toBe(1);
    expect(run.report).toMatchObject({ success: false, tablesChecked: 0 });
    expect(run.report.failures).toHaveLength(1);
    const [failure] = run.report.failures as string[];
    expect(failure).toMatch(/^the restore failed: the backup's archive is not what its manifest recorded, so none of it is loaded:/);
    expect(failure).toContain(`collection orders: the archive holds ${customers * 3} documents, the manifest recorded ${customers * 3 + 1}`);
    expect(failure).toContain(`Nothing was restored: ${redactedUser}@${MONGO.host}:${MONGO.port}/${run.scratch} is unchanged`);
    expect(run.stderr).toContain(`the restore test of ${source} failed`);
    expect(await collectionsOf(run.scratch)).toEqual([]);
    expect(JSON.parse((await s3.getText(restoreTestLatestKey(undefined, source)))!)).toMatchObject({ success: false, reason: failure });
  });
  // A collection the manifest leaves out (the archive holds it) is named too.
  await withManifest((m) => ({ ...m, tables: m.tables.filter((t) => t.table !== 'events') }), async () => {
    const run = await restoreTest();
    expect(run.code).toBe(1);
    expect(run.report.failures[0]).toContain('collection events: in the archive, not in the manifest');
    expect(await collectionsOf(run.scratch)).toEqual([]);
  });
}, 180_000);

test('fails on checks that do not hold or name a missing collection, with the expected and actual values', async () => {
  const failing = [
    { name: 'too many orders', collection: 'orders', equals: customers * 3 + 5 },
    { name: 'orders recent', collection: 'orders', field: 'placedAt', maxAgeSeconds: 86_400 },
    { name: 'vip customers', collection: 'customers', filter: { tags: 'vip', visits: { $gte: 1000 } }, minRows: 1 },
    { name: 'typo', collection: 'ordres', minRows: 1 },
  ];
  const run = await restoreTest(['--checks-json', JSON.stringify([...CHECKS, ...failing])]);
  expect(run.code).toBe(1);
  expect(run.report.tables.every((t: { passed: boolean }) => t.passed)).toBe(true);
  const failures = run.report.failures as string[];
  expect(failures).toHaveLength(4);
  expect(failures[0]).toBe(`check 'too many orders': expected "${customers * 3 + 5}", got "${customers * 3}" (off by -5)`);
  // The newest order of the fixture was placed on 2024-06-01 plus (3 × customers - 1) minutes.
  expect(failures[1]).toMatch(/^check 'orders recent': newest row \d+ s older than the backup, at most 86400 s allowed \(\d+ s too old\)$/);
  expect(failures[2]).toBe('check \'vip customers\': expected at least 1 documents, got 0 (1 short)');
  expect(failures[3]).toMatch(/^check 'typo': the query failed: collection ordres does not exist in the restored database \(it holds customers, empty_things, events, heartbeats, orders\)$/);
}, 120_000);

test('fails on a scratch database that is not empty, leaving it as it was', async () => {
  const scratch = newScratch();
  await withMongo((c) => c.db(scratch).collection('leftover').insertOne({ kept: true }));
  const run = await restoreTest([], scratch);
  expect(run.code).toBe(1);
  expect(run.report.failures).toHaveLength(1);
  expect(run.report.failures[0]).toMatch(new RegExp(`^the restore failed: the target ${redactedUser.replace(/\*/g, '\\*')}@${MONGO.host}:${MONGO.port}/${scratch} is not empty \\(1 objects: leftover\\)`));
  expect(await collectionsOf(scratch)).toEqual(['leftover']);
}, 120_000);

test('checks written for another engine, or running code, are refused before anything is restored', async () => {
  const sqlRun = await runAgent(['restore-test', '--source', source, '--bucket', s3.bucket, '--identity-file', key.identityFile, ...connection(newScratch()),
    '--checks-json', JSON.stringify([{ name: 'orders', sql: 'SELECT 1', minRows: 1 }])], env());
  expect(sqlRun.code).toBe(2);
  expect(sqlRun.stderr).toContain('the backup is of a MongoDB source, and the checks \'orders\' are SQL: give each a "collection"');
  const code = await runAgent(['restore-test', '--source', source, '--bucket', s3.bucket, '--identity-file', key.identityFile, ...connection(newScratch()),
    '--checks-json', JSON.stringify([{ name: 'js', collection: 'orders', filter: { $where: 'sleep(100000) || true' }, minRows: 1 }])], env());
  expect(code.code).toBe(2);
  expect(code.stderr).toContain('filter uses $where, which runs server-side JavaScript: a check never runs code');
}, 60_000);

/** Compressed and encrypted to the test's recipient, as the agent stores an object. */
function seal(bytes: Buffer): Buffer {
  const compressed = spawnSync('zstd', ['-q', '-c'], { input: bytes });
  const sealed = spawnSync('age', ['-r', key.recipient], { input: compressed.stdout });
  if (compressed.status !== 0 || sealed.status !== 0) throw new Error(`sealing failed: ${compressed.stderr}${sealed.stderr}`);
  return sealed.stdout;
}

test('a planted backup: what lies outside its database fails the test unless declared; its users and roles are listed, never created', async () => {
  const manifest = JSON.parse((await s3.getText(manifestKey))!) as Manifest;
  const foreign = uniqueName('rt_mongo_foreign');
  scratches.push(foreign);
  const dump = plantedArchive([
    { db: database, collection: 'customers', docs: [{ _id: 1, name: 'kept' }, { _id: 2, name: 'kept too' }] },
    { db: database, collection: 'system.js', docs: [{ _id: 'f', value: new BSON.Code('function () { return 1; }') }] },
    { db: foreign, collection: 'secrets', docs: [{ _id: 1, planted: true }] },
  ]);
  // The users and roles companion as a real MongoDB's usersInfo and rolesInfo give it (FerretDB has neither).
  const companion = Buffer.from(BSON.EJSON.stringify({
    format: 'restorable-mongodb-users-roles/1', database,
    users: [{ _id: `${database}.app`, user: 'app', db: database, roles: [{ role: 'readWrite', db: database }] }],
    roles: [{ role: 'reporting', db: database, privileges: [{ resource: { db: database, collection: 'orders' }, actions: ['find'] }], roles: [] }],
  }, { relaxed: false }));
  const [body, globals] = [seal(dump), seal(companion)];
  const plantedKey = keyFor(undefined, source, new Date(Date.parse(manifest.startedAt) + 60_000), DumpFormat.MONGO_ARCHIVE);
  const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  const forged: Manifest = {
    ...manifest, key: plantedKey, size: body.length, sha256: sha256(body), dumpSize: dump.length,
    tables: [{ schema: database, table: 'customers', rows: 2 }, { schema: database, table: 'system.js', rows: 1 }],
    companions: [{ kind: 'globals', key: globalsKeyFor(plantedKey), size: globals.length, sha256: sha256(globals) }],
  };
  await putObject(plantedKey, body);
  await putObject(globalsKeyFor(plantedKey), globals);
  await putObject(manifestKeyFor(plantedKey), JSON.stringify(forged));

  const run = await restoreTest(['--key', plantedKey]);
  expect(run.code).toBe(1);
  expect(run.report.failures).toEqual([
    expect.stringMatching(new RegExp(`^left out of the restore, and not expected for this source: ${database}\\.system\\.js \\(stored server-side JavaScript`)),
    expect.stringMatching(new RegExp(`^left out of the restore, and not expected for this source: ${foreign}\\.secrets \\(outside the backed-up database`)),
  ]);
  expect(run.report.tables).toEqual([{ table: 'customers', expected: 2, actual: 2, passed: true, detail: 'collection customers: 2 documents, as recorded' }]);
  const roles = run.report.refused.filter((r: { from: string }) => r.from === 'roles');
  expect(roles.map((r: { what: string; expected: boolean }) => [r.what, r.expected])).toEqual([[`role reporting@${database}`, true], [`user app@${database}`, true]]);
  expect(await collectionsOf(run.scratch)).toEqual(['customers']);
  expect(await collectionsOf(foreign)).toEqual([]);

  // Declared, the same backup passes: the users and roles stay notes for a person.
  const declared = await restoreTest(['--key', plantedKey, '--expect-left-out', `${database}.system.js;${foreign}.*`]);
  expect(declared.report.failures).toEqual([]);
  expect(declared.code).toBe(0);
  expect(declared.report.refused).toHaveLength(4);
}, 120_000);
