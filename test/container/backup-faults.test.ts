/**
 * Every way a backup can go wrong ends the same way: a non-zero exit, a clear message naming what
 * failed (no stack trace, no password), no manifest, no new object, and latest.json where it was.
 */
import {
  AgeKey, AgentRun, MYSQL, PG, S3Emulator, agentEnv, createMysqlFixture, createPgDatabase, createPgFixture, cuttingProxy,
  dropMysqlDatabase, dropPgDatabase, failsAfterLastByte, logLines, makeAgeKey, pathWithOnly, pgQuery, prependPath,
  readerRole, runAgent, startAgent, startS3rver, startsLate, uniqueName, wrapperDir,
} from '../support';

const source = 'faults-pg';
let s3: S3Emulator;
let key: AgeKey;
const small = uniqueName('flt_small');
const large = uniqueName('flt_large');
const empty = uniqueName('flt_empty');
const maria = uniqueName('flt_maria');
const created: string[] = [];

const args = (database: string, extra: string[] = []) => ['backup', '--source', source, '--engine', 'postgres', '--bucket', s3.bucket,
  '--recipient', key.recipient, '--host', PG.host, '--port', String(PG.port), '--user', PG.user, '--database', database, ...extra];
const env = (extra: Record<string, string> = {}) => agentEnv({ ...s3.env, PGPASSWORD: PG.password, ...extra });

interface BucketState { keys: string[]; latest: string | undefined }
const bucketState = async (): Promise<BucketState> => ({ keys: await s3.keys(), latest: await s3.getText(`${source}/latest.json`) });

/** The invariants of a failed backup. */
async function expectCleanFailure(run: AgentRun, before: BucketState, message: RegExp): Promise<void> {
  expect(run.code).not.toBe(0);
  expect(run.stdout).toBe('');
  expect(run.stderr).toMatch(message);
  expect(run.stderr).not.toMatch(/^\s+at /m); // no stack trace
  expect(await bucketState()).toEqual(before);
}

beforeAll(async () => {
  s3 = await startS3rver();
  key = makeAgeKey();
  await createPgFixture(small, { customers: 500 });
  await createPgFixture(large, { customers: 20_000, blobRows: 24, blobKiB: 1024 });
  await createPgDatabase(empty);
  created.push(small, large, empty);
  // One good backup first, so that there is a latest.json that must not move.
  const good = await runAgent(args(small), env());
  expect(good.stderr).not.toContain('restorable backup:');
  expect(good.code).toBe(0);
}, 180_000);

afterAll(async () => {
  for (const db of created) {
    await dropPgDatabase(db);
    await pgQuery('postgres', `DROP ROLE IF EXISTS ${readerRole(db)}`);
  }
  dropMysqlDatabase(maria);
  await s3?.stop();
});

test('the database connection killed mid-dump', async () => {
  const before = await bucketState();
  // zstd starts late, so pg_dump blocks on a full pipe in the middle of its first COPY: a moment to kill it.
  const agent = startAgent(args(large), env({ PATH: prependPath(startsLate('zstd', 3)) }));
  let terminated = 0;
  for (let i = 0; i < 100 && terminated === 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const rows = await pgQuery<{ ok: boolean }>('postgres',
      "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'COPY %' AND pid <> pg_backend_pid()", [large]);
    terminated = rows.filter((r) => r.ok).length;
  }
  expect(terminated).toBe(1);
  const run = await agent.finished;
  await expectCleanFailure(run, before, /stage 'pg_dump' exited with code 1:[\s\S]*(terminating connection|server closed the connection)/);
});

test.each(['pg_dump', 'age'])('%s failing after writing all its output leaves nothing committed', async (command) => {
  const before = await bucketState();
  const run = await runAgent(args(small), env({ PATH: prependPath(failsAfterLastByte(command)) }));
  await expectCleanFailure(run, before, new RegExp(`stage '${command}' exited with code 1:\\s+${command}: simulated failure after the last byte`));
});

test('the S3 endpoint stopped in the middle of a multipart upload', async () => {
  const before = await bucketState();
  const proxy = await cuttingProxy(s3.port, 7 * 1024 * 1024, () => s3.kill());
  const run = await runAgent(args(large), env({ AWS_ENDPOINT_URL_S3: proxy.endpoint }));
  expect(await proxy.cut).toBeGreaterThan(5 * 1024 * 1024); // at least one part was on its way
  await proxy.close();
  await s3.restart();
  await expectCleanFailure(run, before, /stage 'upload' failed: S3 upload to s3:\/\/backups\/faults-pg\/.+ failed: S3 endpoint unreachable/);
  // The agent stopped its pipeline: no pg_dump is left reading the database.
  const dumps = await pgQuery('postgres', "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'pg_dump'", [large]);
  expect(dumps).toEqual([]);
});

test('a database with no tables', async () => {
  const before = await bucketState();
  const run = await runAgent(args(empty), env());
  await expectCleanFailure(run, before, new RegExp(`database '${empty}' has no tables: refusing to store an empty backup`));
});

test('a dump under the configured minimum size', async () => {
  const before = await bucketState();
  const run = await runAgent(args(small, ['--min-size', '1G']), env());
  await expectCleanFailure(run, before, /the dump is \d+ bytes, under the minimum of 1073741824 \(--min-size\): refusing to store it/);
});

test('wrong PostgreSQL credentials: a clear message, and the password appears nowhere', async () => {
  const before = await bucketState();
  const password = 'Wr0ng-Secret-Pa55word';
  const run = await runAgent(args(small), env({ PGPASSWORD: password }));
  await expectCleanFailure(run, before, /could not connect to PostgreSQL as restorable@127\.0\.0\.1:\d+\/\S+: password authentication failed/);
  expect(run.stdout + run.stderr).not.toContain(password);
});

test('wrong MariaDB credentials: a clear message, and the password appears nowhere', async () => {
  createMysqlFixture(maria, 10);
  const before = await bucketState();
  const password = 'Wr0ng-Maria-Pa55word';
  const run = await runAgent(['backup', '--source', source, '--engine', 'mysql', '--bucket', s3.bucket, '--recipient', key.recipient,
    '--host', MYSQL.host, '--port', String(MYSQL.port), '--user', MYSQL.user, '--database', maria], agentEnv({ ...s3.env, MYSQL_PWD: password }));
  await expectCleanFailure(run, before, /could not connect to MySQL\/MariaDB as restorable@127\.0\.0\.1:\d+\/\S+: ERROR 1045 \(28000\): Access denied/);
  expect(run.stdout + run.stderr).not.toContain(password);
});

test('a mysqldump that exits 0 with its output cut inside an INSERT: refused before its object completes', async () => {
  createMysqlFixture(maria, 10);
  const before = await bucketState();
  // The real dump, cut a few bytes into its first INSERT, and a clean exit.
  const cut = wrapperDir('mysqldump', (real) => `'${real}' "$@" | awk '/^INSERT INTO/ { printf "%s", substr($0, 1, 40); exit } { print }'; exit 0`);
  const run = await runAgent(['backup', '--source', source, '--engine', 'mysql', '--bucket', s3.bucket, '--recipient', key.recipient,
    '--host', MYSQL.host, '--port', String(MYSQL.port), '--user', MYSQL.user, '--database', maria],
  agentEnv({ ...s3.env, MYSQL_PWD: MYSQL.password, PATH: prependPath(cut) }));
  await expectCleanFailure(run, before, /the mysqldump output ended inside an INSERT statement: the dump is incomplete/);
});

test.each([['zstd', 'apt-get install zstd'], ['age', 'apt-get install age']])('%s missing from PATH', async (missing, hint) => {
  const before = await bucketState();
  const present = ['pg_dump', 'pg_dumpall', 'zstd', 'age'].filter((c) => c !== missing);
  const run = await runAgent(args(small), env({ PATH: pathWithOnly(present) }));
  await expectCleanFailure(run, before, new RegExp(`${missing} was not found on PATH: install .*${hint}`));
});

test('progress is logged as JSON lines with bytes, rate and stage while a dump runs', async () => {
  const run = await runAgent(args(large), env({ PATH: prependPath(startsLate('zstd', 1)) }));
  expect(run.code).toBe(0);
  const progress = logLines(run.stderr).filter((l) => l.msg === 'progress');
  expect(progress.length).toBeGreaterThan(0);
  expect(progress[0]).toEqual(expect.objectContaining({ stage: 'dump', bytes: expect.any(Number), mbPerSec: expect.any(Number), uploadedBytes: expect.any(Number) }));
});
