/**
 * Every way a MongoDB backup or restore can go wrong ends as the PostgreSQL and MariaDB ones do: a non-zero exit, a
 * clear message naming what failed (no stack trace, no password), no new object or manifest, latest.json where it was,
 * and a restore target left without a single collection. The server killed mid-dump is a private FerretDB on a
 * port of its own, over the services' PostgreSQL database, SIGKILLed while mongodump is half way through a collection.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Binary } from 'mongodb';
import {
  AgeKey, AgentRun, MONGO, MONGO_TOOLS_DIR, PG, S3Emulator, agentEnv, createMongoFixture, dropMongoDatabase, flipStoredByte, freePort, makeAgeKey,
  mongoToolsPath, pathWithOnly, prependPath, replaceStored, runAgent, startAgent, startS3rver, startsLate, truncateStored, uniqueName, waitForPort,
  withMongo,
} from '../support';

const source = 'faults-mongo';
let s3: S3Emulator;
let key: AgeKey;
const small = uniqueName('mf_small');
const other = uniqueName('mf_other');
const big = uniqueName('mf_big');
const empty = uniqueName('mf_empty');
const targets: string[] = [];
const keys: string[] = [];
let original: Buffer;

const connection = (database: string, port = MONGO.port) => ['--host', MONGO.host, '--port', String(port), '--user', MONGO.user,
  '--auth-source', MONGO.authSource, '--auth-mechanism', MONGO.authMechanism, '--database', database];
const backupArgs = (database: string, port?: number) => ['backup', '--source', source, '--engine', 'mongodb', '--bucket', s3.bucket,
  '--recipient', key.recipient, ...connection(database, port), '--json'];
const env = (extra: Record<string, string> = {}) => agentEnv({ ...s3.env, MONGODB_PASSWORD: MONGO.password, PATH: mongoToolsPath(), ...extra });

interface BucketState { keys: string[]; latest: string | undefined }
const bucketState = async (): Promise<BucketState> => ({ keys: await s3.keys(), latest: await s3.getText(`${source}/latest.json`) });

/** A failure a person can act on: exit 1, the words expected, no stack trace, nothing on stdout. */
function expectCleanFailure(run: AgentRun, ...patterns: RegExp[]): void {
  expect(run.code).toBe(1);
  for (const pattern of patterns) expect(run.stderr).toMatch(pattern);
  expect(run.stderr).not.toMatch(/\n\s+at /);
  expect(run.stdout).toBe('');
}

/** Bytes the running mongodump whose arguments hold `marker` has written so far (stdout and stderr), from /proc; 0 before it starts. */
function bytesWrittenBy(marker: string): number {
  for (const pid of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (!args[0].endsWith('mongodump') || !args.includes(marker)) continue;
      return Number(/^wchar: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1] ?? 0);
    } catch {
      // gone, or not ours to read
    }
  }
  return 0;
}

async function collections(database: string): Promise<string[]> {
  return withMongo(async (c) => (await c.db(database).listCollections({}, { nameOnly: true }).toArray()).map((x) => x.name));
}

function freshTarget(): string {
  const name = uniqueName(`mf_t${targets.length}`);
  targets.push(name);
  return name;
}

const restore = (target: string, ...extra: string[]) => runAgent(['restore', '--source', source, '--bucket', s3.bucket, '--key', keys[0],
  '--identity-file', key.identityFile, ...connection(target), ...extra], env());
const verify = (...extra: string[]) => runAgent(['verify', '--source', source, '--bucket', s3.bucket, '--key', keys[0], ...extra], env());

beforeAll(async () => {
  s3 = await startS3rver();
  key = makeAgeKey();
  await createMongoFixture(small, 1500);
  await createMongoFixture(other, 300);
  // Two good backups: a latest.json that must not move, and another valid object to swap in.
  for (const database of [small, other]) {
    const run = await runAgent(backupArgs(database), env());
    if (run.code !== 0) throw new Error(`backup failed: ${run.stderr}`);
    keys.push(JSON.parse(run.stdout).key);
  }
  original = await s3.getBytes(keys[0]);
}, 180_000);

afterEach(() => replaceStored(s3, keys[0], original));

afterAll(async () => {
  for (const db of [small, other, big, empty, ...targets]) await dropMongoDatabase(db).catch(() => undefined);
  await s3?.stop();
});

describe('backup', () => {
  test('the server killed mid-dump: mongodump fails, nothing is stored, latest.json stays', async () => {
    // ~30 MB of incompressible documents, far more than mongodump's cursor batches and the pipes hold.
    await withMongo(async (c) => {
      const docs = (start: number) => Array.from({ length: 1000 }, (_, i) => ({ _id: start + i, blob: new Binary(Buffer.from(Array.from({ length: 1024 }, () => Math.floor(Math.random() * 256)))) }));
      for (let start = 0; start < 30_000; start += 1000) await c.db(big).collection<{ _id: number; blob: Binary }>('blobs').insertMany(docs(start));
    });
    const port = await freePort();
    const server: ChildProcess = spawn(join(MONGO_TOOLS_DIR, 'ferretdb'), [`127.0.0.1:${port}`, `postgres://${PG.host}:${PG.port}/restorable_ferretdb`],
      { stdio: 'ignore' });
    try {
      await waitForPort(port, 15_000, 'a private FerretDB');
      const before = await bucketState();
      // zstd starts late, so mongodump blocks on a full pipe inside the collection: the server is killed once mongodump
      // has written documents (its /proc io counter past the prelude), not while it still lists and counts.
      const agent = startAgent(backupArgs(big, port), env({ PATH: prependPath(startsLate('zstd', 8), mongoToolsPath()) }));
      let written = 0;
      for (let i = 0; i < 300 && written < 100_000; i++) {
        await new Promise((r) => setTimeout(r, 100));
        written = bytesWrittenBy(`--db=${big}`);
      }
      expect(written).toBeGreaterThanOrEqual(100_000);
      server.kill('SIGKILL');
      await new Promise((r) => server.once('exit', r));
      expect(server.signalCode).toBe('SIGKILL');
      const run = await agent.finished;
      expectCleanFailure(run, new RegExp(`stage 'mongodump' exited with code 1:[\\s\\S]*Failed: .*${big}\\.blobs.*(socket was unexpectedly closed|connection refused|EOF)`));
      expect(run.stderr).not.toMatch(/creating intents|getting count/);
      expect(await bucketState()).toEqual(before);
    } finally {
      server.kill('SIGKILL');
    }
  }, 300_000);

  test('mongodump exiting 0 with an archive cut short: not stored', async () => {
    const before = await bucketState();
    const cutting = mkdtempSync(join(tmpdir(), 'mongodump-cut-'));
    const dump = join(MONGO_TOOLS_DIR, 'mongodump');
    writeFileSync(join(cutting, 'mongodump'), `#!/bin/bash\ncase "$1" in --version) exec '${dump}' "$@";; esac\n'${dump}' "$@" | head -c 100000\nexit 0\n`);
    chmodSync(join(cutting, 'mongodump'), 0o755);
    const run = await runAgent(backupArgs(small), env({ PATH: prependPath(cutting, mongoToolsPath()) }));
    expectCleanFailure(run, /mongodump exited 0 but the archive ends inside (a document|its structure) after 100000 bytes: the dump is incomplete: not storing it/);
    expect(await bucketState()).toEqual(before);
  }, 120_000);

  test('a wrong password: a clear message, and the password appears nowhere', async () => {
    const before = await bucketState();
    const password = 'Wr0ng-Mongo-Pa55word';
    const run = await runAgent(backupArgs(small), env({ MONGODB_PASSWORD: password }));
    expectCleanFailure(run, /could not connect to MongoDB as restorable@127\.0\.0\.1:\d+\/\S+ \(auth source \$external\): .*(auth|password)/i);
    expect(run.stdout + run.stderr).not.toContain(password);
    expect(await bucketState()).toEqual(before);
  });

  test('a database with no collections', async () => {
    const before = await bucketState();
    const run = await runAgent(backupArgs(empty), env());
    expectCleanFailure(run, new RegExp(`database '${empty}' has no collections: refusing to store an empty backup`));
    expect(await bucketState()).toEqual(before);
  });

  test('mongodump missing from PATH: named, with the package to install', async () => {
    const before = await bucketState();
    const run = await runAgent(backupArgs(small), env({ PATH: pathWithOnly(['zstd', 'age']) }));
    expectCleanFailure(run, /mongodump was not found on PATH: install .*Database Tools/);
    expect(await bucketState()).toEqual(before);
  });
});

describe('restore', () => {
  test('a wrong identity: says the identity does not open the backup; the target gets nothing', async () => {
    const otherKey = makeAgeKey();
    const target = freshTarget();
    const run = await restore(target, '--identity-file', otherKey.identityFile);
    expectCleanFailure(run, /the identity does not open s3:\/\/\S+ .*it was encrypted to another key/, /Nothing was restored: \S+ is unchanged/);
    expect(await collections(target)).toEqual([]);
  });

  test('one byte flipped in the stored copy: restore and verify fail, the target gets nothing', async () => {
    flipStoredByte(s3, keys[0], Math.floor(original.length * 0.8));
    const target = freshTarget();
    expectCleanFailure(await restore(target), /damaged or truncated|does not match its manifest/, /Nothing was restored: \S+ is unchanged/);
    expect(await collections(target)).toEqual([]);
    expectCleanFailure(await verify(), /does not match its manifest/);
    expectCleanFailure(await verify('--identity-file', key.identityFile), /does not match its manifest/);
  });

  test('a truncated stored copy: the target gets nothing', async () => {
    truncateStored(s3, keys[0], Math.floor(original.length * 0.7));
    const target = freshTarget();
    expectCleanFailure(await restore(target), /damaged or truncated|does not match its manifest|ended/, /Nothing was restored/);
    expect(await collections(target)).toEqual([]);
  });

  test('another valid backup in its place: age decrypts it, the SHA-256 does not match, nothing is loaded', async () => {
    replaceStored(s3, keys[0], await s3.getBytes(keys[1]));
    const target = freshTarget();
    expectCleanFailure(await restore(target), /does not match its manifest/, /Nothing was restored: \S+ is unchanged/);
    expect(await collections(target)).toEqual([]);
  });

  test('the honest object restores after all that', async () => {
    const target = freshTarget();
    const run = await restore(target);
    expect(run.stderr).not.toContain('restorable restore:');
    expect(run.code).toBe(0);
    expect((await collections(target)).sort()).toEqual(['customers', 'empty_things', 'events', 'orders']);
  }, 120_000);
});
