/**
 * A PostgreSQL 15 backup, end to end: the bundled agent against the local server and the S3
 * emulator, then a restore with standard tools into a fresh database, compared table by table.
 */
import { createHash } from 'node:crypto';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { Manifest, LatestPointer, Tier, tierFor } from '../../lib/contract';
import {
  AgeKey, S3Emulator, agentEnv, createPgDatabase, createPgFixture, decryptToText, download, dropPgDatabase, logLines, makeAgeKey,
  PG, pgQuery, pgTableStats, prependPath, readerRole, restorePg, runAgent, sh, startS3rver, uniqueName, wrapperDir,
} from '../support';
import { partSizeFor } from '../../container/src/backup/upload';

const source = 'orders-pg';
let s3: S3Emulator;
let key: AgeKey;
const database = uniqueName('bk_src');
const restored = uniqueName('bk_restored');

const env = () => agentEnv({ ...s3.env, PGPASSWORD: PG.password });
const backupArgs = () => ['backup', '--source', source, '--engine', 'postgres', '--bucket', s3.bucket, '--recipient', key.recipient,
  '--host', PG.host, '--port', String(PG.port), '--user', PG.user, '--database', database, '--json'];

beforeAll(async () => {
  s3 = await startS3rver();
  key = makeAgeKey();
  await createPgFixture(database, { customers: 3000 });
});

afterAll(async () => {
  await dropPgDatabase(database);
  await dropPgDatabase(restored);
  await pgQuery('postgres', `DROP ROLE IF EXISTS ${readerRole(database)}`);
  await s3?.stop();
});

describe('backup of PostgreSQL', () => {
  let first: { key: string; manifestKey: string; tier: Tier; size: number };

  test('stores the dump, a manifest and latest.json, and logs only JSON on stderr', async () => {
    const run = await runAgent(backupArgs(), env());
    expect(run.stderr).not.toContain('restorable backup:');
    expect(run.code).toBe(0);
    first = JSON.parse(run.stdout);
    expect(first.key).toMatch(new RegExp(`^${source}/\\d{4}/\\d{2}/\\d{2}/${source}_\\d{4}-\\d{2}-\\d{2}_\\d{2}-\\d{2}-\\d{2}Z\\.pgdump\\.zst\\.age$`));
    expect(first.tier).toBe(Tier.MONTHLY); // the first backup ever
    // Every stderr line is a JSON log record.
    const lines = run.stderr.trim().split('\n');
    expect(lines.length).toBe(logLines(run.stderr).length);
    expect(logLines(run.stderr).map((l) => l.msg)).toEqual(expect.arrayContaining(['backup started', 'backup finished']));

    const manifest = JSON.parse((await s3.getText(first.manifestKey))!) as Manifest;
    const latest = JSON.parse((await s3.getText(`${source}/latest.json`))!) as LatestPointer;
    expect(latest).toMatchObject({ key: first.key, manifestKey: first.manifestKey, sha256: manifest.sha256, size: manifest.size });
    expect(manifest).toMatchObject({ source, engine: 'postgres', database, tier: Tier.MONTHLY, format: 'pgdump', globals: { captured: true } });
    expect(manifest.serverVersion).toMatch(/^PostgreSQL 15\./);
    expect(Object.keys(manifest.toolVersions).sort()).toEqual(['age', 'pg_dump', 'restorable', 'zstd']);
    const stored = await s3.getBytes(first.key);
    expect(stored.length).toBe(manifest.size);
    expect(createHash('sha256').update(stored).digest('hex')).toBe(manifest.sha256);
    expect(stored.subarray(0, 21).toString()).toBe('age-encryption.org/v1');
    expect(manifest.companions).toHaveLength(1);
    expect(manifest.companions[0].key).toMatch(/\.globals\.sql\.zst\.age$/);
  });

  test('restores with age, zstd and pg_restore: same rows and content as the source and as the manifest', async () => {
    const manifest = JSON.parse((await s3.getText(first.manifestKey))!) as Manifest;
    await createPgDatabase(restored);
    const file = await download(s3, first.key);
    restorePg(file, key.identityFile, restored);
    // The manifest's dump size is the size of what pg_restore read.
    expect(Number(sh(`age -d -i '${key.identityFile}' '${file}' | zstd -d | wc -c`).trim())).toBe(manifest.dumpSize);

    const source = await pgTableStats(database);
    const copy = await pgTableStats(restored);
    expect([...copy.keys()]).toEqual([...source.keys()]);
    expect(copy).toEqual(source);
    expect(source.get('sales.orders')!.rows).toBe(9000);
    expect(source.get('public.audit_log')!.rows).toBe(9000);
    const fromManifest = new Map(manifest.tables.map((t) => [`${t.schema}.${t.table}`, t.rows]));
    expect(fromManifest).toEqual(new Map([...source].map(([name, s]) => [name, s.rows])));

    // Functions, triggers, views and grants came back.
    const [total] = await pgQuery<{ same: boolean }>(restored, 'SELECT sales.order_total(7) = (SELECT sum(amount) FROM sales.orders WHERE customer_id = 7) AS same');
    expect(total.same).toBe(true);
    await pgQuery(restored, "INSERT INTO sales.orders (customer_id, amount, placed_at) VALUES (1, 1, now())");
    const [audit] = await pgQuery<{ n: string }>(restored, 'SELECT count(*) AS n FROM public.audit_log');
    expect(Number(audit.n)).toBe(9001); // the trigger fired
    const [view] = await pgQuery<{ n: string }>(restored, 'SELECT count(*) AS n FROM sales.customer_totals');
    expect(Number(view.n)).toBe(3000);
    const [grant] = await pgQuery<{ ok: boolean }>(restored, `SELECT has_table_privilege('${readerRole(database)}', 'sales.customer_totals', 'SELECT') AS ok`);
    expect(grant.ok).toBe(true);
  });

  test('the roles companion decrypts with standard tools and holds the role, without passwords', async () => {
    const manifest = JSON.parse((await s3.getText(first.manifestKey))!) as Manifest;
    const sql = decryptToText(await download(s3, manifest.companions[0].key), key.identityFile);
    expect(sql).toContain(`CREATE ROLE ${readerRole(database)}`);
    expect(sql).not.toMatch(/PASSWORD '/);
  });

  test('a second backup the same hour is hourly, moves latest.json, and list shows both newest first', async () => {
    await new Promise((r) => setTimeout(r, 1100)); // keys have one-second resolution
    const run = await runAgent(backupArgs(), env());
    expect(run.code).toBe(0);
    const second = JSON.parse(run.stdout);
    // The tier follows from the previous backup's start (hourly, unless the two straddle midnight UTC).
    const starts = await Promise.all([first.manifestKey, second.manifestKey].map(async (k) => new Date(JSON.parse((await s3.getText(k))!).startedAt)));
    expect(second.tier).toBe(tierFor(starts[1], starts[0]));
    if (starts[0].getUTCDate() === starts[1].getUTCDate()) expect(second.tier).toBe(Tier.HOURLY);
    const latest = JSON.parse((await s3.getText(`${source}/latest.json`))!) as LatestPointer;
    expect(latest.key).toBe(second.key);

    const list = await runAgent(['list', '--source', source, '--bucket', s3.bucket, '--json'], env());
    expect(list.code).toBe(0);
    const rows = JSON.parse(list.stdout);
    expect(rows.map((r: { key: string }) => r.key)).toEqual([second.key, first.key]);
    expect(rows[0]).toMatchObject({ tier: second.tier, storageClass: 'STANDARD', latest: true, tables: 5 });
    expect(rows[1]).toMatchObject({ tier: Tier.MONTHLY, latest: false, size: first.size });
    const text = await runAgent(['list', '--source', source, '--bucket', s3.bucket], env());
    expect(text.stdout).toContain(`${second.key}  (latest)`);
  });

  test('latest.json moves forward by S3\'s times: a pointer stating 2999 does not hold back a backup that started after S3 stored what it names', async () => {
    // A backup that started later stays (backup-conditional's overtaken run); a stated start S3 cannot vouch for does not.
    const future: LatestPointer = {
      formatVersion: 1, source, key: `${source}/2999/01/01/${source}_2999-01-01_00-00-00Z.pgdump.zst.age`,
      manifestKey: 'x', startedAt: '2999-01-01T00:00:00.000Z', finishedAt: '2999-01-01T00:01:00.000Z', tier: Tier.MONTHLY, size: 1, sha256: 'x',
    };
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: future.key, Body: 'x' }));
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `${source}/latest.json`, Body: JSON.stringify(future) }));
    await new Promise((r) => setTimeout(r, 1100));
    const run = await runAgent(backupArgs(), env());
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result.latestMoved).toBe(true);
    expect(await s3.getText(result.manifestKey)).toBeDefined();
    expect(JSON.parse((await s3.getText(`${source}/latest.json`))!).key).toBe(result.key);
  });
});

test('roles that cannot be read are recorded in the manifest and warned about; the backup itself succeeds', async () => {
  // pg_dumpall --no-role-passwords works for any login on PostgreSQL 15; a managed service may still refuse it.
  const refusing = wrapperDir('pg_dumpall', () => 'echo "pg_dumpall: error: query failed: ERROR:  permission denied for table pg_authid" >&2\nexit 1');
  const run = await runAgent([...backupArgs().map((a) => (a === source ? 'orders-pg-noroles' : a))], { ...env(), PATH: prependPath(refusing) });
  expect(run.stderr).not.toContain('restorable backup:');
  expect(run.code).toBe(0);
  const result = JSON.parse(run.stdout);
  const manifest = JSON.parse((await s3.getText(result.manifestKey))!) as Manifest;
  expect(manifest.globals).toEqual({ captured: false, reason: expect.stringContaining('permission denied for table pg_authid') });
  expect(manifest.companions).toEqual([]);
  expect(manifest.warnings).toEqual([expect.stringContaining('roles and grants were not captured')]);
  expect(logLines(run.stderr).filter((l) => l.level === 'warn')).toHaveLength(1);
  expect(result.warnings).toEqual(manifest.warnings);
});

describe('backup with --expected-size', () => {
  test('sizes the upload parts from the expected size when it exceeds the database\'s own estimate', async () => {
    const args = backupArgs().map((a) => (a === source ? 'orders-pg-sized' : a));
    const run = await runAgent([...args, '--expected-size', '200G'], env());
    expect(run.code).toBe(0);
    const started = logLines(run.stderr).find((l) => l.msg === 'backup started')!;
    expect(started.estimatedBytes).toBe(200 * 1024 ** 3);
    expect(started.partSize).toBe(partSizeFor(200 * 1024 ** 3));
    // 200 GiB twice over in at most 8,000 parts: well above the 5 MiB minimum a small database gets.
    expect(started.partSize).toBeGreaterThan(50 * 1024 ** 2);
  });

  test('rejects an expected size that is not a size, naming the option', async () => {
    const run = await runAgent([...backupArgs(), '--expected-size', 'lots'], env());
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("--expected-size must be a whole number, optionally with k, M or G (got 'lots')");
  });
});
