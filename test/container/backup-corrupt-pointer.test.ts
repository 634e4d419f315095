/**
 * A latest.json or manifest that cannot be read stops a backup (or a listing) with one clear line that names
 * the object and says how to repair it: no stack trace, nothing stored. A startedAt that is not a time is
 * refused too, since pointers are compared by startedAt and garbage would freeze the pointer for good.
 */
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import {
  AgeKey, AgentRun, PG, S3Emulator, agentEnv, createPgFixture, dropPgDatabase, makeAgeKey, pgQuery, readerRole, runAgent,
  startS3rver, uniqueName,
} from '../support';

const source = 'corrupt-pg';
const database = uniqueName('corrupt_ptr');
const pointerKey = `${source}/latest.json`;
let s3: S3Emulator;
let key: AgeKey;

const backupArgs = () => ['backup', '--source', source, '--engine', 'postgres', '--bucket', s3.bucket, '--recipient', key.recipient,
  '--host', PG.host, '--port', String(PG.port), '--user', PG.user, '--database', database, '--json'];
const env = () => agentEnv({ ...s3.env, PGPASSWORD: PG.password });
const put = (k: string, body: string) => s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: k, Body: body }));

/** One line for a person: exit 1, nothing on stdout, no stack trace, no "unexpected error". */
function expectOneLineFailure(run: AgentRun, command: string, message: RegExp): void {
  expect(run.code).toBe(1);
  expect(run.stdout).toBe('');
  expect(run.stderr).not.toMatch(/^\s+at /m);
  expect(run.stderr).not.toContain('unexpected error');
  const lines = run.stderr.split('\n').filter((l) => l.startsWith(`restorable ${command}:`));
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(message);
}

beforeAll(async () => {
  s3 = await startS3rver();
  key = makeAgeKey();
  await createPgFixture(database, { customers: 50 });
}, 120_000);

afterAll(async () => {
  await dropPgDatabase(database);
  await pgQuery('postgres', `DROP ROLE IF EXISTS ${readerRole(database)}`);
  await s3?.stop();
});

const REPAIR = 'restore it from an older version (the bucket is versioned) or delete it; the next backup will then be monthly';

test('a latest.json that is not JSON: names the pointer and how to repair it, stores nothing', async () => {
  await put(pointerKey, '{"formatVersion":1,"key":"corrupt-pg/20');
  const before = await s3.keys();
  const run = await runAgent(backupArgs(), env());
  expectOneLineFailure(run, 'backup', new RegExp(`latest pointer s3://${s3.bucket}/${pointerKey} is not valid JSON: ${REPAIR.replace(/[()]/g, '\\$&')}$`));
  expect(await s3.keys()).toEqual(before);
});

test('a latest.json whose startedAt is not a time is refused rather than compared', async () => {
  // 'zzz' sorts after every real time: accepted, it would keep latest.json from ever moving again.
  await put(pointerKey, JSON.stringify({ formatVersion: 1, source, key: `${source}/x.pgdump.zst.age`, manifestKey: 'x', startedAt: 'zzz' }));
  const before = await s3.keys();
  const run = await runAgent(backupArgs(), env());
  expectOneLineFailure(run, 'backup', /latest pointer s3:\/\/\S+\/corrupt-pg\/latest\.json has startedAt "zzz", which is not an ISO 8601 UTC time: restore it/);
  expect(await s3.keys()).toEqual(before);
});

test('a JSON value that is not an object (null) is a clean failure too', async () => {
  await put(pointerKey, 'null');
  const run = await runAgent(backupArgs(), env());
  expectOneLineFailure(run, 'backup', /latest pointer \S+ is not a JSON object: restore it/);
});

test('once the pointer is deleted, as the message says, the next backup is monthly and moves it', async () => {
  await s3.client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: pointerKey }));
  const run = await runAgent(backupArgs(), env());
  expect(run.stderr).not.toContain('restorable backup:');
  expect(run.code).toBe(0);
  const result = JSON.parse(run.stdout);
  expect(result.tier).toBe('monthly');
  expect(JSON.parse((await s3.getText(pointerKey))!).key).toBe(result.key);
}, 60_000);

test('a manifest with a startedAt that is not a time: list names it and how to repair it', async () => {
  const manifestKey = (await s3.keys(`${source}/`)).find((k) => k.endsWith('.manifest.json'))!;
  const manifest = JSON.parse((await s3.getText(manifestKey))!);
  await put(manifestKey, JSON.stringify({ ...manifest, startedAt: 'yesterday' }));
  const run = await runAgent(['list', '--source', source, '--bucket', s3.bucket], env());
  expectOneLineFailure(run, 'list', new RegExp(`manifest s3://${s3.bucket}/${manifestKey.replace(/\./g, '\\.')} has startedAt "yesterday", ` +
    'which is not an ISO 8601 UTC time: restore it from an older version \\(the bucket is versioned\\)'));
});
