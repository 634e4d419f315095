/**
 * Every way a restore can go wrong ends the same way: a non-zero exit, a clear message naming what is
 * wrong (no stack trace), and no target reported as good. PostgreSQL streamed restores run in one
 * transaction, so these targets are also checked to hold nothing at all afterwards.
 */
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { manifestKeyFor } from '../../lib/contract';
import {
  AgeKey, AgentRun, PG, S3Emulator, agentEnv, createPgDatabase, createPgFixture, dropPgDatabase, flipStoredByte, freePort, logLines,
  makeAgeKey, pgQuery, prependPath, readerRole, replaceStored, runAgent, startAgent, startS3rver, startsLate, truncateStored, uniqueName,
} from '../support';

const source = 'faults-pg';
let s3: S3Emulator;
let key: AgeKey;
const database = uniqueName('rf_src');
const targets: string[] = [];
const keys: string[] = [];
let original: Buffer;

const env = () => agentEnv({ ...s3.env, PGPASSWORD: PG.password });

async function freshTarget(): Promise<string> {
  const name = uniqueName(`rf_t${targets.length}`);
  targets.push(name);
  await createPgDatabase(name);
  return name;
}

const restore = (target: string, ...extra: string[]) => runAgent(['restore', '--source', source, '--bucket', s3.bucket, '--key', keys[0],
  '--identity-file', key.identityFile, '--host', PG.host, '--port', String(PG.port), '--user', PG.user, '--database', target, '--load-as-connected-user', ...extra], env());
const verify = (...extra: string[]) => runAgent(['verify', '--source', source, '--bucket', s3.bucket, '--key', keys[0], ...extra], env());

async function tableCount(target: string): Promise<number> {
  const [row] = await pgQuery<{ n: string }>(target, "SELECT count(*) AS n FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')");
  return Number(row.n);
}

/** A failure a person can act on: exit 1, the words expected, and no stack trace. */
function expectCleanFailure(run: AgentRun, ...patterns: RegExp[]): void {
  expect(run.code).toBe(1);
  for (const pattern of patterns) expect(run.stderr).toMatch(pattern);
  expect(run.stderr).not.toMatch(/\n\s+at /);
  expect(run.stdout).toBe('');
}

beforeAll(async () => {
  s3 = await startS3rver();
  key = makeAgeKey();
  // ~4 MB of incompressible rows: many age chunks, so a damaged one sits mid-stream.
  await createPgFixture(database, { customers: 1000, blobRows: 60, blobKiB: 64 });
  for (let i = 0; i < 2; i++) {
    if (i) await new Promise((r) => setTimeout(r, 1100));
    const run = await runAgent(['backup', '--source', source, '--engine', 'postgres', '--bucket', s3.bucket, '--recipient', key.recipient,
      '--host', PG.host, '--port', String(PG.port), '--user', PG.user, '--database', database, '--json'], env());
    if (run.code !== 0) throw new Error(`backup failed: ${run.stderr}`);
    keys.push(JSON.parse(run.stdout).key);
  }
  original = await s3.getBytes(keys[0]);
});

afterEach(() => replaceStored(s3, keys[0], original));

afterAll(async () => {
  for (const target of targets) await dropPgDatabase(target);
  await dropPgDatabase(database);
  await pgQuery('postgres', `DROP ROLE IF EXISTS ${readerRole(database)}`);
  await s3?.stop();
});

test('a wrong identity: says the identity does not open the backup, restores nothing', async () => {
  const other = makeAgeKey();
  const target = await freshTarget();
  const run = await runAgent(['restore', '--source', source, '--bucket', s3.bucket, '--identity-file', other.identityFile,
    '--host', PG.host, '--port', String(PG.port), '--user', PG.user, '--database', target, '--load-as-connected-user'], env());
  expectCleanFailure(run, /the identity does not open s3:\/\/\S+ \(age: no identity matched any of the recipients\): it was encrypted to another key/,
    // The archive's table of contents is read before the load: the identity fails there, before the target is touched.
    /Nothing was restored: \S+ is unchanged/);
  expect(await tableCount(target)).toBe(0);
  expectCleanFailure(await verify('--identity-file', other.identityFile), /the identity does not open/);
});

test('an identity file that holds a public key is refused before anything is read', async () => {
  const run = await restore(await freshTarget(), '--identity-file', key.recipientFile);
  expect(run.code).toBe(2);
  expect(run.stderr).toMatch(/is not an age identity: .*it holds a public key/);
});

test('one byte flipped in the stored copy: streamed, spooled and verify all fail, and no target keeps anything', async () => {
  flipStoredByte(s3, keys[0], Math.floor(original.length / 2));

  const streamed = await freshTarget();
  const run = await restore(streamed);
  expectCleanFailure(run, /is damaged or truncated: age could not authenticate its bytes/, /must not be trusted/);
  expect(await tableCount(streamed)).toBe(0); // pg_restore's single transaction was rolled back

  const spooled = await freshTarget();
  const spooledRun = await restore(spooled, '--jobs', '2');
  expectCleanFailure(spooledRun, /is damaged or truncated: age could not authenticate its bytes/, /Nothing was restored: \S+ is unchanged/);
  expect(await tableCount(spooled)).toBe(0);

  const verified = await verify();
  expectCleanFailure(verified, /does not match its manifest: read (\d+) bytes with SHA-256 [0-9a-f]{64}, the manifest recorded \1 bytes with SHA-256/);
  expectCleanFailure(await verify('--identity-file', key.identityFile), /does not match its manifest/);
});

test('a truncated stored copy: the restore fails on it, verify names both sizes', async () => {
  truncateStored(s3, keys[0], Math.floor(original.length / 3));
  const target = await freshTarget();
  expectCleanFailure(await restore(target), /damaged or truncated|does not match its manifest/, /must not be trusted/);
  expect(await tableCount(target)).toBe(0);
  expectCleanFailure(await verify(), new RegExp(`read ${Math.floor(original.length / 3)} bytes .*recorded ${original.length} bytes`));
});

test('another valid backup in its place: age decrypts it, the SHA-256 at the end does not match, pg_restore never commits', async () => {
  replaceStored(s3, keys[0], await s3.getBytes(keys[1]));
  const target = await freshTarget();
  const run = await restore(target);
  expectCleanFailure(run, /does not match its manifest/, /the target must not be trusted/);
  expect(await tableCount(target)).toBe(0);
});

test('a missing manifest: the backup is not used', async () => {
  const manifestKey = manifestKeyFor(keys[0]);
  const manifest = (await s3.getText(manifestKey))!;
  await s3.client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: manifestKey }));
  try {
    const target = await freshTarget();
    expectCleanFailure(await restore(target), new RegExp(`no manifest at s3://${s3.bucket}/${manifestKey}: without it the backup cannot be checked`));
    expect(await tableCount(target)).toBe(0);
    expectCleanFailure(await verify(), /no manifest at/);
  } finally {
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: manifestKey, Body: manifest }));
  }
});

test('a target that cannot be reached: fails before downloading anything', async () => {
  const run = await restore('nowhere', '--port', String(await freePort()));
  expectCleanFailure(run, /could not connect to PostgreSQL as \S+@127\.0\.0\.1:\d+\/nowhere: .*ECONNREFUSED/);
  expect(logLines(run.stderr).map((l) => l.msg)).not.toContain('restore started');
});

test('stopped by SIGTERM after spooling: exit 143, says the target must not be trusted, and the spooled dump is gone', async () => {
  const spoolDir = mkdtempSync(join(tmpdir(), 'restorable-spool-test-'));
  const agent = startAgent(['restore', '--source', source, '--bucket', s3.bucket, '--identity-file', key.identityFile, '--host', PG.host,
    '--port', String(PG.port), '--user', PG.user, '--database', await freshTarget(), '--jobs', '2', '--spool-dir', spoolDir, '--load-as-connected-user'],
  { ...env(), PATH: prependPath(startsLate('pg_restore', 30)) });
  for (let i = 0; i < 200 && !agent.stderr().includes('dump spooled and verified'); i++) await new Promise((r) => setTimeout(r, 50));
  expect(readdirSync(spoolDir)).toHaveLength(1);
  agent.child.kill('SIGTERM');
  const run = await agent.finished;
  expect(run.code).toBe(143);
  expect(run.stderr).toContain('stopped by SIGTERM: the restore did not complete, and the target database must not be trusted');
  expect(readdirSync(spoolDir)).toEqual([]);
});
