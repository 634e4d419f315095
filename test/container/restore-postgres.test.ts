/**
 * `restorable restore` and `verify` for PostgreSQL 15: two real backups by the bundled agent in the S3
 * emulator, restored into fresh databases (and a fresh cluster), compared table by table with the
 * source as it was at each backup: row counts and content checksums.
 */
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Manifest } from '../../lib/contract';
import {
  AgeKey, ClusterAddress, EmbeddedPostgres, PG, S3Emulator, TableStats, agentEnv, clusterQuery, clusterTableStats, createPgDatabase,
  createPgFixture, dropPgDatabase, logLines, makeAgeKey, pgQuery, pgTableStats, readerRole, runAgent, startEmbeddedPostgres, startS3rver,
  uniqueName,
} from '../support';

const source = 'restore-pg';
/** The role that owns the restored objects: the tests connect as a superuser, so the load runs with this role's rights. */
const owner = uniqueName('rs_owner');
let s3: S3Emulator;
let key: AgeKey;
const database = uniqueName('rs_src');
const targets: string[] = [];
const backups: { key: string; finishedAt: string; stats: Map<string, TableStats> }[] = [];

const env = () => agentEnv({ ...s3.env, PGPASSWORD: PG.password });
const backup = async () => {
  const run = await runAgent(['backup', '--source', source, '--engine', 'postgres', '--bucket', s3.bucket, '--recipient', key.recipient,
    '--host', PG.host, '--port', String(PG.port), '--user', PG.user, '--database', database, '--json'], env());
  if (run.code !== 0) throw new Error(`backup failed: ${run.stderr}`);
  const result = JSON.parse(run.stdout) as { key: string; manifestKey: string };
  const manifest = JSON.parse((await s3.getText(result.manifestKey))!) as Manifest;
  backups.push({ key: result.key, finishedAt: manifest.finishedAt, stats: await pgTableStats(database) });
};

async function freshTarget(): Promise<string> {
  const name = uniqueName(`rs_t${targets.length}`);
  targets.push(name);
  await createPgDatabase(name);
  await pgQuery('postgres', `ALTER DATABASE ${name} OWNER TO ${owner}`);
  return name;
}

const restore = (target: string, ...extra: string[]) => runAgent(['restore', '--source', source, '--bucket', s3.bucket,
  '--identity-file', key.identityFile, '--host', PG.host, '--port', String(PG.port), '--user', PG.user, '--database', target, '--owner', owner, '--json', ...extra],
{ ...env(), RESTORABLE_PROGRESS_MS: '20' });

beforeAll(async () => {
  await pgQuery('postgres', `DROP ROLE IF EXISTS ${owner}; CREATE ROLE ${owner} NOLOGIN`);
  s3 = await startS3rver();
  key = makeAgeKey();
  // Some incompressible rows make the object big enough for progress lines.
  await createPgFixture(database, { customers: 2000, blobRows: 60, blobKiB: 64 });
  await backup();
  await new Promise((r) => setTimeout(r, 1100)); // keys have one-second resolution
  await pgQuery(database, `DELETE FROM sales.orders WHERE id % 10 = 0;
    INSERT INTO sales.customers (name) SELECT 'after the first backup ' || g FROM generate_series(1, 500) g;`);
  await backup();
  expect(backups[1].stats).not.toEqual(backups[0].stats);
});

afterAll(async () => {
  for (const target of targets) await dropPgDatabase(target);
  await dropPgDatabase(database);
  await pgQuery('postgres', `DROP ROLE IF EXISTS ${readerRole(database)}; DROP ROLE IF EXISTS ${owner}`);
  await s3?.stop();
});

describe('restore of PostgreSQL', () => {
  let latestTarget: string;

  test('the latest backup, streamed: every table matches the source at that backup, with progress on stderr', async () => {
    latestTarget = await freshTarget();
    const run = await restore(latestTarget);
    expect(run.stderr).not.toContain('restorable restore:');
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result).toMatchObject({ key: backups[1].key, mode: 'streamed', jobs: 1, engine: 'postgres' });
    // The source's objects belong to a superuser: their ownership is left out, and said so; the rest loads as the owner.
    expect(result.refused).toEqual([{ what: expect.stringMatching(/^ownership by restorable \(\d+ entries\)$/),
      why: `restorable is a superuser: the objects are restored owned by ${owner}` }]);
    expect(result.loadedAs).toMatch(new RegExp(`^restorable_load_[0-9a-f]{12} as ${owner}$`));
    expect(await pgQuery(latestTarget, "SELECT DISTINCT tableowner AS o FROM pg_tables WHERE schemaname IN ('sales', 'public')")).toEqual([{ o: owner }]);
    // The temporary loading role is gone.
    expect(await pgQuery('postgres', "SELECT rolname FROM pg_roles WHERE rolname = $1", [result.loadedAs.split(' ')[0]])).toEqual([]);
    expect(result.durationSeconds).toBeGreaterThan(0);
    expect(await pgTableStats(latestTarget)).toEqual(backups[1].stats);
    expect(new Map(result.tables.map((t: { schema: string; table: string; rows: number }) => [`${t.schema}.${t.table}`, t.rows])))
      .toEqual(new Map([...backups[1].stats].map(([name, s]) => [name, s.rows])));
    const progress = logLines(run.stderr).filter((l) => l.msg === 'progress');
    expect(progress.length).toBeGreaterThan(0);
    expect(progress[0]).toEqual(expect.objectContaining({ stage: 'restore', bytes: expect.any(Number), totalBytes: result.size, mbPerSec: expect.any(Number) }));
    expect(progress.some((l) => typeof l.etaSeconds === 'number')).toBe(true);
  });

  test('connected as a superuser, without --owner: refused before the target is touched', async () => {
    const target = await freshTarget();
    const run = await runAgent(['restore', '--source', source, '--bucket', s3.bucket, '--identity-file', key.identityFile, '--host', PG.host,
      '--port', String(PG.port), '--user', PG.user, '--database', target], env());
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('is a superuser: a backup is untrusted input');
    expect(run.stderr).toContain('--owner ROLE');
    expect(await pgTableStats(target)).toEqual(new Map());
    // Said explicitly, the connecting superuser loads it (the table of contents is still filtered).
    const trusted = await runAgent(['restore', '--source', source, '--bucket', s3.bucket, '--identity-file', key.identityFile, '--host', PG.host,
      '--port', String(PG.port), '--user', PG.user, '--database', target, '--load-as-connected-user', '--json'], env());
    expect(trusted.code).toBe(0);
    expect(JSON.parse(trusted.stdout)).toMatchObject({ loadedAs: 'restorable', refused: [] });
    expect(await pgTableStats(target)).toEqual(backups[1].stats);
  });

  test('connected as a role without superuser rights, it loads as that role, and only needs no flag', async () => {
    const target = await freshTarget();
    const login = uniqueName('rs_login');
    await pgQuery('postgres', `CREATE ROLE ${login} LOGIN PASSWORD 'restorable'; GRANT ${owner} TO ${login}`);
    try {
      const run = await runAgent(['restore', '--source', source, '--bucket', s3.bucket, '--identity-file', key.identityFile, '--host', PG.host,
        '--port', String(PG.port), '--user', login, '--database', target, '--json'], env());
      expect(run.stderr).not.toContain('restorable restore:');
      expect(run.code).toBe(0);
      expect(JSON.parse(run.stdout)).toMatchObject({ loadedAs: login, refused: [{ what: expect.stringMatching(/^ownership by restorable/) }] });
      expect(await pgTableStats(target)).toEqual(backups[1].stats);
    } finally {
      await pgQuery('postgres', `REASSIGN OWNED BY ${login} TO ${owner}`).catch(() => undefined);
      await pgQuery(target, `REASSIGN OWNED BY ${login} TO ${owner}`).catch(() => undefined);
      await pgQuery('postgres', `DROP ROLE IF EXISTS ${login}`).catch(() => undefined);
    }
  });

  test('--at a time between the two backups restores the first one', async () => {
    const target = await freshTarget();
    const run = await restore(target, '--at', backups[0].finishedAt);
    expect(run.stderr).not.toContain('restorable restore:');
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).key).toBe(backups[0].key);
    expect(await pgTableStats(target)).toEqual(backups[0].stats);
    // Before the first backup there is nothing to restore.
    const none = await restore(await freshTarget(), '--at', '2001-01-01T00:00:00Z');
    expect(none.code).toBe(1);
    expect(none.stderr).toContain(`no backup of '${source}' started at or before 2001-01-01T00:00:00.000Z`);
  });

  test('--jobs 2 spools the verified dump and runs pg_restore -j 2; the spool is removed', async () => {
    const target = await freshTarget();
    const spoolDir = mkdtempSync(join(tmpdir(), 'restorable-spool-test-'));
    const run = await restore(target, '--jobs', '2', '--spool-dir', spoolDir);
    expect(run.stderr).not.toContain('restorable restore:');
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ key: backups[1].key, mode: 'spooled', jobs: 2, spoolSeconds: expect.any(Number) });
    expect(logLines(run.stderr).map((l) => l.msg)).toContain('dump spooled and verified');
    expect(readdirSync(spoolDir)).toEqual([]);
    expect(await pgTableStats(target)).toEqual(backups[1].stats);
  });

  test('refuses a non-empty target without --clean, and leaves it untouched', async () => {
    const before = await pgTableStats(latestTarget);
    const run = await restore(latestTarget, '--key', backups[0].key);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/the target \S+@127\.0\.0\.1:\d+\/\S+ is not empty \(\d+ objects: .*\).*add --clean/);
    expect(run.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(await pgTableStats(latestTarget)).toEqual(before);
  });

  test('--clean over a non-empty, changed target brings back exactly the backup', async () => {
    await pgQuery(latestTarget, `DELETE FROM sales.orders WHERE id % 3 = 0; UPDATE sales.customers SET name = 'changed' WHERE id < 50;
      INSERT INTO public.empty_table VALUES (1), (2);`);
    expect(await pgTableStats(latestTarget)).not.toEqual(backups[1].stats);
    const run = await restore(latestTarget, '--clean');
    expect(run.stderr).not.toContain('restorable restore:');
    expect(run.code).toBe(0);
    expect(await pgTableStats(latestTarget)).toEqual(backups[1].stats);
  });

  describe('--with-globals into a fresh cluster', () => {
    let cluster: EmbeddedPostgres;
    let at: ClusterAddress;
    beforeAll(async () => {
      cluster = await startEmbeddedPostgres();
      at = { host: '127.0.0.1', port: cluster.port, user: cluster.user };
    });
    afterAll(() => cluster?.stop());

    test('the role comes back with its grant; existing roles are left alone; the data matches', async () => {
      await clusterQuery(at, 'postgres', 'CREATE ROLE restorer NOLOGIN');
      await clusterQuery(at, 'postgres', 'CREATE DATABASE restored OWNER restorer');
      const role = readerRole(database);
      expect(await clusterQuery(at, 'postgres', `SELECT 1 FROM pg_roles WHERE rolname = '${role}'`)).toEqual([]);
      const run = await runAgent(['restore', '--source', source, '--bucket', s3.bucket, '--identity-file', key.identityFile,
        '--host', at.host, '--port', String(at.port), '--user', at.user, '--database', 'restored', '--with-globals', '--owner', 'restorer', '--json'],
      agentEnv({ ...s3.env }));
      expect(run.stderr).not.toContain('restorable restore:');
      expect(run.code).toBe(0);
      const result = JSON.parse(run.stdout);
      expect(result.globals.created).toContain(role);
      expect(result.globals.skipped).toContain('restorable');
      const [grant] = await clusterQuery<{ ok: boolean }>(at, 'restored', `SELECT has_table_privilege('${role}', 'sales.customer_totals', 'SELECT') AS ok`);
      expect(grant.ok).toBe(true);
      expect(await clusterTableStats(at, 'restored')).toEqual(backups[1].stats);
    });
  });
});

describe('verify of PostgreSQL', () => {
  test('without an identity: size and SHA-256 of the object and its companion', async () => {
    const run = await runAgent(['verify', '--source', source, '--bucket', s3.bucket, '--json'], env());
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result).toMatchObject({ key: backups[1].key, readFully: false });
    expect(result.checks).toEqual([expect.stringContaining('SHA-256'), 'the globals companion matches its SHA-256']);
  });

  test('with an identity: decrypted and read to the end by pg_restore', async () => {
    const run = await runAgent(['verify', '--source', source, '--bucket', s3.bucket, '--key', backups[0].key, '--identity-file', key.identityFile], env());
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`verified s3://${s3.bucket}/${backups[0].key}`);
    expect(run.stdout).toContain('pg_restore read the whole archive');
  });
});
