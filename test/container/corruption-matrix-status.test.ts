/**
 * The corruption matrix for what `restorable status` reads: latest.json, the manifest it names, and the object's size.
 * Each cell is a prefix of its own holding a healthy source and a damaged one, copies of one real backup: a pointer
 * that is not JSON or has the wrong shape, a pointer lost while backups are recorded, a manifest that is not JSON or
 * is missing, an object that is missing or of another size. `status` must report the damaged source as 'unknown',
 * naming the object and the problem, and the healthy one as usual; `verify` (which reads the same pointer) must
 * fail on it with the same words, without a stack trace.
 *
 * A latest.json that is missing while a manifest is stored beside it is damage (the pointer was lost, the backups
 * were not); with no manifest at all the source never had a good backup, and 'no-backup' is the answer, not a failure.
 *
 * A pointer that states a time S3 contradicts (latest.json naming a real backup but stating 2099, a passing restore-test
 * report stating 2099) is 'forged-pointer', naming the pointer and the time, and the ages shown are S3's LastModified.
 */
import { DeleteObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { latestKey, manifestKeyFor, restoreTestLatestKey, runbookKey, sourcePrefix } from '../../lib/contract';
import {
  AgentRun, PG, S3Emulator, agentEnv, createPgFixture, dropPgDatabase, makeAgeKey, pgQuery, readerRole, runAgent, startS3rver,
  truncateStored, uniqueName,
} from '../support';

const SEED = { prefix: 'seed/', source: 'seed-db' };
const database = uniqueName('cms_src');
let s3: S3Emulator;
let seedKey: string;

/** One cell's copy of the seed backup: a damaged source beside a healthy one, under a prefix of its own. */
interface Place {
  readonly prefix: string;
  readonly pointerKey: string;
  readonly backupKey: string;
  readonly manifestKey: string;
}

const put = (key: string, body: string | Buffer) => s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: body }));
const remove = (key: string) => s3.client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: key }));
const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
const url = (key: string) => escape(`s3://${s3.bucket}/${key}`);

/** Copies every object of the seed source to `source` under `prefix`, renaming keys and the names inside its JSON. */
async function copySeed(prefix: string, source: string): Promise<void> {
  const rename = (text: string) => text.split(sourcePrefix(SEED.prefix, SEED.source)).join(sourcePrefix(prefix, source)).split(`${SEED.source}_`).join(`${source}_`);
  const renameJson = (value: unknown): unknown => {
    if (typeof value === 'string') return value === SEED.source ? source : rename(value);
    if (Array.isArray(value)) return value.map(renameJson);
    if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, renameJson(v)]));
    return value;
  };
  for (const key of await s3.keys(sourcePrefix(SEED.prefix, SEED.source))) {
    const bytes = await s3.getBytes(key);
    await put(rename(key), key.endsWith('.json') ? JSON.stringify(renameJson(JSON.parse(bytes.toString('utf8')))) : bytes);
  }
  // Written at deploy time for every source. (It also keeps the emulator listing the source once latest.json is gone:
  // s3rver's delimited listing names only the prefixes that hold an object directly.)
  await put(runbookKey(prefix, source), '# runbook\n');
}

interface StatusCell {
  readonly name: string;
  readonly damage: (p: Place) => Promise<unknown> | void;
  /** What status says of the damaged source. */
  readonly problem: (p: Place) => RegExp;
  /** What verify (of the latest backup) says. */
  readonly verify: (p: Place) => RegExp;
}

const CELLS: readonly StatusCell[] = [
  {
    name: 'latest.json is not JSON',
    damage: (p) => put(p.pointerKey, 'not json {'),
    problem: (p) => new RegExp(`latest pointer ${url(p.pointerKey)} is not valid JSON: restore it from an older version`),
    verify: (p) => new RegExp(`latest pointer ${url(p.pointerKey)} is not valid JSON: restore it from an older version`),
  },
  {
    name: 'latest.json of the wrong shape',
    damage: (p) => put(p.pointerKey, JSON.stringify({ latest: p.backupKey })),
    problem: (p) => new RegExp(`latest pointer ${url(p.pointerKey)} lacks key or startedAt: restore it from an older version`),
    verify: (p) => new RegExp(`latest pointer ${url(p.pointerKey)} lacks key or startedAt`),
  },
  {
    name: 'latest.json missing, its backups recorded',
    damage: (p) => remove(p.pointerKey),
    problem: (p) => new RegExp(`${url(p.pointerKey)} does not exist, yet backups are recorded beside it \\(the oldest: ${url(p.backupKey)}\\): ` +
      'the pointer was deleted or lost'),
    verify: (p) => new RegExp(`${url(p.pointerKey)} does not exist, yet backups are recorded beside it .*give --key or --at`),
  },
  {
    name: 'the manifest is not JSON',
    damage: (p) => put(p.manifestKey, '{"formatVersion": 1, "source": '),
    problem: (p) => new RegExp(`manifest ${url(p.manifestKey)} is not valid JSON: restore it from an older version`),
    verify: (p) => new RegExp(`manifest ${url(p.manifestKey)} is not valid JSON: restore it from an older version`),
  },
  {
    name: 'the manifest is missing',
    damage: (p) => remove(p.manifestKey),
    problem: (p) => new RegExp(`latest pointer ${url(p.pointerKey)} names ${url(p.backupKey)}, but there is no manifest at ${url(p.manifestKey)}`),
    verify: (p) => new RegExp(`no manifest at ${url(p.manifestKey)}: without it the backup cannot be checked`),
  },
  {
    name: 'the object is missing',
    damage: (p) => remove(p.backupKey),
    problem: (p) => new RegExp(`latest pointer ${url(p.pointerKey)} names ${url(p.backupKey)}, which does not exist: the newest backup was deleted or expired`),
    verify: (p) => new RegExp(`${url(p.backupKey)} does not exist, though its manifest does`),
  },
  {
    name: 'the object cut short',
    damage: (p) => truncateStored(s3, p.backupKey, 1000),
    problem: (p) => new RegExp(`${url(p.backupKey)} is 1000 bytes, its manifest recorded \\d+: it is damaged`),
    verify: (p) => new RegExp(`${url(p.backupKey)} does not match its manifest: read 1000 bytes`),
  },
];

const status = (prefix: string, ...extra: string[]) => runAgent(['status', '--bucket', s3.bucket, '--prefix', prefix, ...extra], agentEnv(s3.env));
const message = (run: AgentRun) => run.stderr.split('\n').filter((l) => l !== '' && !l.startsWith('{')).join('\n');

beforeAll(async () => {
  s3 = await startS3rver('status-matrix');
  await createPgFixture(database, { customers: 20 });
  const run = await runAgent(['backup', '--source', SEED.source, '--engine', 'postgres', '--bucket', s3.bucket, '--prefix', SEED.prefix,
    '--recipient', makeAgeKey().recipient, '--host', PG.host, '--port', String(PG.port), '--user', PG.user, '--database', database, '--json'],
  agentEnv({ ...s3.env, PGPASSWORD: PG.password }));
  if (run.code !== 0) throw new Error(`the backup the status matrix copies failed: ${run.stderr}`);
  seedKey = JSON.parse(run.stdout).key;
});

afterAll(async () => {
  await dropPgDatabase(database);
  await pgQuery('postgres', `DROP ROLE IF EXISTS ${readerRole(database)}`);
  await s3?.stop();
});

describe.each(CELLS.map((cell, i) => ({ ...cell, i })))('$name', (cell) => {
  const prefix = `cell-${cell.i}/`;
  let place: Place;
  let json: AgentRun;
  let text: AgentRun;
  let verify: AgentRun;

  beforeAll(async () => {
    await copySeed(prefix, 'healthy-db');
    await copySeed(prefix, 'damaged-db');
    const backupKey = seedKey.split(sourcePrefix(SEED.prefix, SEED.source)).join(sourcePrefix(prefix, 'damaged-db')).split(`${SEED.source}_`).join('damaged-db_');
    place = { prefix, pointerKey: latestKey(prefix, 'damaged-db'), backupKey, manifestKey: manifestKeyFor(backupKey) };
    await cell.damage(place);
    [json, text, verify] = await Promise.all([status(prefix, '--json'), status(prefix),
      runAgent(['verify', '--source', 'damaged-db', '--bucket', s3.bucket, '--prefix', prefix], agentEnv(s3.env))]);
  });

  test('status --json: the damaged source is unknown, with the object and the problem; the healthy one is unaffected', () => {
    expect(json.stderr).not.toMatch(/\n\s+at /);
    const report = JSON.parse(json.stdout);
    expect(report.sources.map((s: { source: string; readiness: string }) => [s.source, s.readiness])).toEqual([['damaged-db', 'unknown'], ['healthy-db', 'never-tested']]);
    expect(report.sources[0].problem).toMatch(new RegExp(`^${cell.problem(place).source}`));
    expect(report.sources[0].summary).toMatch(new RegExp(`^damaged-db: status unknown: ${cell.problem(place).source}`));
  });

  test('status: the table says unknown, and the damaged source\'s line names the object and the problem', () => {
    expect(text.stderr).not.toMatch(/\n\s+at /);
    const lines = text.stdout.trimEnd().split('\n');
    expect(lines.find((l) => l.startsWith('damaged-db '))).toMatch(/\s+unknown$/);
    expect(lines.find((l) => l.startsWith('damaged-db: '))).toMatch(new RegExp(`^damaged-db: status unknown: ${cell.problem(place).source}`));
  });

  // `status` prints its report either way; a source it cannot read also makes the exit code non-zero, as
  // restore-test's failing report does.
  test('status, status --json: exit 1, and stderr names the damaged source\'s object and problem', () => {
    for (const run of [json, text]) {
      expect({ code: run.code, message: message(run) }).toEqual({
        code: 1,
        message: expect.stringMatching(new RegExp(`^restorable status: the status of 1 of 2 sources could not be read:\n  - damaged-db: ${cell.problem(place).source}`)),
      });
    }
  });

  test('verify of the latest backup: exit 1, naming the object and the problem, nothing on stdout', () => {
    expect({ code: verify.code, message: message(verify), stackTrace: /\n\s+at /.test(verify.stderr), stdout: verify.stdout }).toEqual({
      code: 1, message: expect.stringMatching(new RegExp(`^restorable verify: .*${cell.verify(place).source}`)), stackTrace: false, stdout: '',
    });
  });
});

test('no latest.json and no manifest (a source whose first backup has not run): no-backup, not a failure', async () => {
  const prefix = 'new-source/';
  await put(runbookKey(prefix, 'new-db'), '# written at deploy time\n');
  // A backup that failed before it was recorded leaves an object without a manifest: still nothing to restore.
  await put(`${sourcePrefix(prefix, 'new-db')}2026/11/30/new-db_2026-11-30_03-00-00Z.pgdump.zst.age`, 'an unfinished upload');
  await copySeed(prefix, 'healthy-db');
  const run = await status(prefix, '--json');
  expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
  expect(JSON.parse(run.stdout).sources.map((s: { source: string; readiness: string }) => [s.source, s.readiness]))
    .toEqual([['healthy-db', 'never-tested'], ['new-db', 'no-backup']]);
});

const FORGED_TIME = '2099-01-01T00:00:00.000Z';
const storedAt = async (key: string) => (await s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }))).LastModified!.toISOString();

interface ForgedCell {
  readonly name: string;
  readonly forge: (p: Place) => Promise<unknown>;
  /** The pointer that states the forged time, and the time it states. */
  readonly pointer: (p: Place) => string;
  readonly field: string;
}

const FORGED_CELLS: readonly ForgedCell[] = [
  {
    name: 'latest.json states startedAt 2099, naming a real backup',
    forge: async (p) => put(p.pointerKey, JSON.stringify({ ...JSON.parse((await s3.getBytes(p.pointerKey)).toString('utf8')), startedAt: FORGED_TIME })),
    pointer: (p) => `latest pointer s3://${s3.bucket}/${p.pointerKey}`,
    field: 'startedAt',
  },
  {
    name: 'the restore-test report states finishedAt 2099, success true',
    forge: (p) => put(restoreTestLatestKey(p.prefix, 'damaged-db'),
      JSON.stringify({ source: 'damaged-db', finishedAt: FORGED_TIME, success: true, durationSeconds: 60 })),
    pointer: (p) => `restore-test report s3://${s3.bucket}/${restoreTestLatestKey(p.prefix, 'damaged-db')}`,
    field: 'finishedAt',
  },
];

describe.each(FORGED_CELLS.map((cell, i) => ({ ...cell, i })))('$name', (cell) => {
  const prefix = `forged-${cell.i}/`;
  let place: Place;
  let json: AgentRun;
  let text: AgentRun;
  const forged = () => new RegExp(`${escape(cell.pointer(place))} states ${cell.field} ${escape(FORGED_TIME)}, in the future`);

  beforeAll(async () => {
    await copySeed(prefix, 'healthy-db');
    await copySeed(prefix, 'damaged-db');
    const backupKey = seedKey.split(sourcePrefix(SEED.prefix, SEED.source)).join(sourcePrefix(prefix, 'damaged-db')).split(`${SEED.source}_`).join('damaged-db_');
    place = { prefix, pointerKey: latestKey(prefix, 'damaged-db'), backupKey, manifestKey: manifestKeyFor(backupKey) };
    await cell.forge(place);
    [json, text] = await Promise.all([status(prefix, '--json'), status(prefix)]);
  });

  test('status --json: forged-pointer, naming the pointer and the time; the ages are from the LastModified S3 set', async () => {
    const report = JSON.parse(json.stdout);
    expect(report.sources.map((s: { source: string; readiness: string }) => [s.source, s.readiness]))
      .toEqual([['damaged-db', 'forged-pointer'], ['healthy-db', 'never-tested']]);
    const damaged = report.sources[0];
    expect(damaged.problem).toMatch(new RegExp(`^forged or skewed pointer: ${forged().source}`));
    expect(damaged.forged).toEqual([expect.stringMatching(forged())]);
    const ageFrom = (stored: string) => Math.round((Date.parse(report.checkedAt) - Date.parse(stored)) / 1000);
    expect(damaged.newestBackup.storedAt).toBe(await storedAt(place.backupKey));
    expect(damaged.newestBackup.ageSeconds).toBe(ageFrom(damaged.newestBackup.storedAt));
    expect(damaged.newestBackup.ageSeconds).toBeLessThan(300);
    if (cell.field === 'finishedAt') {
      expect(damaged.lastRestoreTest).toMatchObject({ success: true, finishedAt: FORGED_TIME, storedAt: await storedAt(restoreTestLatestKey(prefix, 'damaged-db')) });
      expect(damaged.lastRestoreTest.ageSeconds).toBe(ageFrom(damaged.lastRestoreTest.storedAt));
    } else {
      expect(damaged.newestBackup.startedAt).toBe(FORGED_TIME);
    }
    expect(damaged.summary).toMatch(new RegExp(`^damaged-db: FORGED OR SKEWED POINTER: ${forged().source}.*By S3's times, the newest backup was stored \\d+ seconds? ago`));
  });

  test('status: the table says forged-pointer with S3\'s ages, and the line names the pointer and the time', () => {
    const lines = text.stdout.trimEnd().split('\n');
    expect(lines.find((l) => l.startsWith('damaged-db '))).toMatch(/^damaged-db\s+\d+ seconds? ago\s+.*forged-pointer$/);
    expect(lines.find((l) => l.startsWith('damaged-db: '))).toMatch(new RegExp(`^damaged-db: FORGED OR SKEWED POINTER: ${forged().source}`));
  });

  test('status, status --json: exit 1, and stderr names the forged pointer and the time', () => {
    for (const run of [json, text]) {
      expect({ code: run.code, message: message(run), stackTrace: /\n\s+at /.test(run.stderr) }).toEqual({
        code: 1,
        message: expect.stringMatching(new RegExp('^restorable status: 1 of 2 sources have a forged or skewed pointer, a stated time S3 contradicts ' +
          `\\(its ages are S3's times\\):\n  - damaged-db: forged or skewed pointer: ${forged().source}`)),
        stackTrace: false,
      });
    }
  });
});
