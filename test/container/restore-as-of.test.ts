/**
 * `--as-of`: after a compromise of the primary account, the attacker can replicate new versions over every key of a
 * vault, including a forged but valid backup (the age recipient is public, and they write a manifest to match). The
 * vault keeps the genuine versions as noncurrent ones. Here a real PostgreSQL backup is made with the agent into a
 * versioned bucket on moto's server; then a backup of the attacker's data, made with the agent into a bucket of their
 * own, is written over the same keys (dump, roles companion, manifest, latest.json) as new versions. `restore` without
 * --as-of loads the forged data (the threat); `restore --as-of` a time between the two loads the genuine data, and
 * `verify --as-of` passes on it. Also the version picker alone, page by page, and the words for a wrong --as-of.
 */
import { ListObjectVersionsCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { LatestPointer, Manifest, latestKey } from '../../lib/contract';
import { parseAsOf, versionAsOf } from '../../container/src/restore/download';
import {
  AgeKey, MotoBucket, PG, TableStats, agentEnv, createPgDatabase, createPgFixture, dropPgDatabase, logLines, makeAgeKey, motoBucket, pgQuery, pgTableStats,
  readerRole, runAgent, uniqueName,
} from '../support';

const source = 'asof-pg';
const owner = uniqueName('asof_owner');
const database = uniqueName('asof_src');
const targets: string[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let vault: MotoBucket;
let attackerBucket: MotoBucket;
let key: AgeKey;
let genuine: { key: string; manifestKey: string; stats: Map<string, TableStats> };
let forgedStats: Map<string, TableStats>;
/** A time after the genuine backup was stored and before the forged one was written over it (S3 times have one-second resolution). */
let between: string;
/** Before anything was stored. */
let before: string;

const env = (bucket: MotoBucket) => agentEnv({ ...bucket.env, PGPASSWORD: PG.password });
const connection = ['--host', PG.host, '--port', String(PG.port), '--user', PG.user];

async function backupInto(bucket: MotoBucket): Promise<{ key: string; manifestKey: string }> {
  const run = await runAgent(['backup', '--source', source, '--engine', 'postgres', '--bucket', bucket.bucket, '--recipient', key.recipient,
    ...connection, '--database', database, '--json'], env(bucket));
  if (run.code !== 0) throw new Error(`backup failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as { key: string; manifestKey: string };
}

async function freshTarget(): Promise<string> {
  const name = uniqueName(`asof_t${targets.length}`);
  targets.push(name);
  await createPgDatabase(name);
  await pgQuery('postgres', `ALTER DATABASE ${name} OWNER TO ${owner}`);
  return name;
}

const restore = (target: string, ...extra: string[]) => runAgent(['restore', '--source', source, '--bucket', vault.bucket,
  '--identity-file', key.identityFile, ...connection, '--database', target, '--owner', owner, '--json', ...extra], env(vault));

const rowCounts = (tables: readonly { schema: string; table: string; rows: number }[]) => new Map(tables.map((t) => [`${t.schema}.${t.table}`, t.rows]));
const statRows = (stats: Map<string, TableStats>) => new Map([...stats].map(([name, s]) => [name, s.rows]));

beforeAll(async () => {
  await pgQuery('postgres', `DROP ROLE IF EXISTS ${owner}; CREATE ROLE ${owner} NOLOGIN`);
  [vault, attackerBucket] = await Promise.all([motoBucket({ versioned: true }), motoBucket()]);
  key = makeAgeKey();
  before = new Date(Date.now() - 2000).toISOString();
  await sleep(2100);
  await createPgFixture(database, { customers: 300 });
  genuine = { ...await backupInto(vault), stats: await pgTableStats(database) };
  await sleep(1500);
  between = new Date().toISOString();
  await sleep(1500);

  // The attacker's data, backed up by the agent into a bucket of their own: a valid backup, encrypted to the public recipient.
  await pgQuery(database, `DELETE FROM sales.orders WHERE id % 2 = 0;
    INSERT INTO sales.customers (name) SELECT 'forged ' || g FROM generate_series(1, 77) g;`);
  forgedStats = await pgTableStats(database);
  const forgedBackup = await backupInto(attackerBucket);
  const forgedManifest = JSON.parse((await attackerBucket.getText(forgedBackup.manifestKey))!) as Manifest;
  const genuineManifest = JSON.parse((await vault.getText(genuine.manifestKey))!) as Manifest;

  // ...replicated over the vault's keys as new versions: the dump, its roles companion, a manifest that matches them, and latest.json.
  const put = (k: string, body: Buffer | string) => vault.client.send(new PutObjectCommand({ Bucket: vault.bucket, Key: k, Body: body }));
  await put(genuine.key, await attackerBucket.getBytes(forgedBackup.key));
  const companions = forgedManifest.companions.map((c) => ({ ...c, key: genuineManifest.companions.find((g) => g.kind === c.kind)!.key }));
  for (const [i, c] of companions.entries()) await put(c.key, await attackerBucket.getBytes(forgedManifest.companions[i].key));
  await put(genuine.manifestKey, JSON.stringify({ ...forgedManifest, key: genuine.key, startedAt: genuineManifest.startedAt, companions }, null, 2));
  const pointer = JSON.parse((await attackerBucket.getText(latestKey(undefined, source)))!) as LatestPointer;
  await put(latestKey(undefined, source), JSON.stringify({ ...pointer, key: genuine.key, manifestKey: genuine.manifestKey }, null, 2));
  expect(forgedStats).not.toEqual(genuine.stats);
  expect((await vault.versions(genuine.key)).length).toBe(2);
}, 120_000);

afterAll(async () => {
  for (const target of targets) await dropPgDatabase(target);
  await dropPgDatabase(database);
  await pgQuery('postgres', `DROP ROLE IF EXISTS ${readerRole(database)}; DROP ROLE IF EXISTS ${owner}`);
});

describe('a vault whose keys were overwritten with a forged, valid backup', () => {
  test('without --as-of, restore reads the current versions: the forged data loads, its SHA-256 matching the forged manifest', async () => {
    const target = await freshTarget();
    const run = await restore(target);
    expect(run.stderr).not.toContain('restorable restore:');
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).key).toBe(genuine.key);
    expect(await pgTableStats(target)).toEqual(forgedStats);
  });

  test('--as-of a time between: latest.json, the manifest and the dump are read as stored then, and the genuine data loads', async () => {
    const target = await freshTarget();
    const run = await restore(target, '--as-of', between);
    expect(run.stderr).not.toContain('restorable restore:');
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout);
    const dumpVersions = await vault.versions(genuine.key);
    expect(result).toMatchObject({ key: genuine.key, versionId: dumpVersions[dumpVersions.length - 1].versionId });
    expect(await pgTableStats(target)).toEqual(genuine.stats);
    expect(rowCounts(result.tables)).toEqual(statRows(genuine.stats));
    const selected = logLines(run.stderr).filter((l) => l.msg === 'backup selected');
    expect(selected).toEqual([expect.objectContaining({ asOf: new Date(between).toISOString(), versionId: result.versionId })]);
    const manifestVersions = await vault.versions(genuine.manifestKey);
    expect(selected[0].manifestVersionId).toBe(manifestVersions[manifestVersions.length - 1].versionId);
  });

  test('verify --as-of passes on the genuine versions, the roles companion included; the current ones are the forged', async () => {
    const verify = (...extra: string[]) => runAgent(['verify', '--source', source, '--bucket', vault.bucket, '--identity-file', key.identityFile,
      '--json', ...extra], env(vault));
    const asOf = await verify('--as-of', between);
    expect(asOf.stderr).not.toContain('restorable verify:');
    expect(asOf.code).toBe(0);
    const result = JSON.parse(asOf.stdout);
    const genuineManifest = JSON.parse((await vault.getText(genuine.manifestKey))!) as Manifest; // the current, forged one
    expect(result.sha256).not.toBe(genuineManifest.sha256);
    expect(result.checks).toEqual(expect.arrayContaining(['the globals companion matches its SHA-256', 'pg_restore read the whole archive']));
    // Named by --key, the same backup as stored then.
    const byKey = await verify('--key', genuine.key, '--as-of', between);
    expect(byKey.code).toBe(0);
    expect(JSON.parse(byKey.stdout).sha256).toBe(result.sha256);
    // The current versions pass too: a forged backup is valid, which is why --as-of exists.
    const current = await verify();
    expect(current.code).toBe(0);
    expect(JSON.parse(current.stdout).sha256).toBe(genuineManifest.sha256);
  });

  test('restore-test --as-of a time between: the genuine versions pass, every table\'s rows as the genuine manifest recorded', async () => {
    const scratch = uniqueName(`asof_t${targets.length}`);
    targets.push(scratch);
    await createPgDatabase(scratch);
    const run = await runAgent(['restore-test', '--source', source, '--bucket', vault.bucket, '--identity-file', key.identityFile, ...connection,
      '--database', scratch, '--as-of', between, '--json'], env(vault));
    expect(run.stderr).not.toContain('restorable restore-test:');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as { success: boolean; key: string; tables: { table: string; expected: number; actual: number }[] };
    expect(report).toMatchObject({ success: true, key: genuine.key });
    expect(new Map(report.tables.map((t) => [t.table, t.actual]))).toEqual(statRows(genuine.stats));
  });

  test('--as-of before the first backup: no version then, naming the key and its oldest version\'s time', async () => {
    const target = await freshTarget();
    const run = await restore(target, '--as-of', before);
    expect(run.code).toBe(1);
    const versions = await vault.client.send(new ListObjectVersionsCommand({
      Bucket: vault.bucket, Prefix: latestKey(undefined, source),
    }));
    const oldest = versions.Versions!.map((v) => v.LastModified!.getTime()).sort((a, b) => a - b)[0];
    expect(run.stderr).toContain(`s3://${vault.bucket}/${latestKey(undefined, source)} has no version stored at or before ` +
      `${new Date(before).toISOString()}: its oldest version was stored at ${new Date(oldest).toISOString()}`);
    expect(await pgTableStats(target)).toEqual(new Map());
  });

  test('a wrong --as-of is a usage error, in words', async () => {
    const target = await freshTarget();
    const bad = await restore(target, '--as-of', 'yesterday');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--as-of must be an ISO 8601 time with its zone, such as 2026-11-26T03:00:00Z (got 'yesterday')");
    const future = await restore(target, '--as-of', '2999-01-01T00:00:00Z');
    expect(future.code).toBe(2);
    expect(future.stderr).toContain('--as-of 2999-01-01T00:00:00Z is in the future');
    const both = await restore(target, '--as-of', between, '--at', between);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('give --at or --as-of, not both');
  });

  test('the picker pages through a key\'s versions on moto (one per page), past the longer keys listed after it', async () => {
    const versions = await vault.versions(genuine.key);
    const picked = await versionAsOf(vault.client, vault.bucket, genuine.key, new Date(between), 1);
    expect(picked.versionId).toBe(versions[versions.length - 1].versionId);
    expect((await versionAsOf(vault.client, vault.bucket, genuine.key, new Date(), 1)).versionId).toBe(versions[0].versionId);
  });
});

describe('the version picker', () => {
  const at = (s: string) => new Date(s);
  const s3 = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
  const mock = mockClient(s3);
  afterEach(() => mock.reset());

  test('pages on with the key and version markers until it finds the newest version at or before the time; delete markers and longer keys are passed over', async () => {
    mock.on(ListObjectVersionsCommand)
      .resolvesOnce({
        IsTruncated: true, NextKeyMarker: 'k', NextVersionIdMarker: 'v3',
        Versions: [{ Key: 'k', VersionId: 'v4', LastModified: at('2026-12-01T05:00:00Z') }, { Key: 'k', VersionId: 'v3', LastModified: at('2026-12-01T04:00:00Z') }],
        DeleteMarkers: [{ Key: 'k', VersionId: 'd1', LastModified: at('2026-12-01T02:30:00Z') }],
      })
      .resolvesOnce({
        IsTruncated: true, NextKeyMarker: 'k', NextVersionIdMarker: 'v1',
        Versions: [{ Key: 'k', VersionId: 'v2', LastModified: at('2026-12-01T02:00:00Z') }, { Key: 'k', VersionId: 'v1', LastModified: at('2026-12-01T01:00:00Z') }],
      });
    const picked = await versionAsOf(s3, 'b', 'k', at('2026-12-01T03:00:00Z'), 2);
    expect(picked).toEqual({ versionId: 'v2', lastModified: at('2026-12-01T02:00:00Z') });
    const calls = mock.calls().map((c) => c.args[0].input);
    expect(calls).toEqual([
      { Bucket: 'b', Prefix: 'k', KeyMarker: undefined, VersionIdMarker: undefined, MaxKeys: 2 },
      { Bucket: 'b', Prefix: 'k', KeyMarker: 'k', VersionIdMarker: 'v3', MaxKeys: 2 },
    ]);
  });

  test('the time itself counts (at or before); a page that moves on to another key ends the search', async () => {
    mock.on(ListObjectVersionsCommand).resolvesOnce({
      IsTruncated: true, NextKeyMarker: 'k.manifest.json', NextVersionIdMarker: 'm1',
      Versions: [{ Key: 'k', VersionId: 'v2', LastModified: at('2026-12-01T02:00:00Z') }, { Key: 'k.manifest.json', VersionId: 'm1', LastModified: at('2026-12-01T00:00:00Z') }],
    });
    expect((await versionAsOf(s3, 'b', 'k', at('2026-12-01T02:00:00Z'))).versionId).toBe('v2');
    mock.reset();
    mock.on(ListObjectVersionsCommand).resolvesOnce({
      IsTruncated: true, NextKeyMarker: 'k.manifest.json', NextVersionIdMarker: 'm1',
      Versions: [{ Key: 'k', VersionId: 'v2', LastModified: at('2026-12-01T02:00:00Z') }, { Key: 'k', VersionId: 'v1', LastModified: at('2026-12-01T01:00:00Z') },
        { Key: 'k.manifest.json', VersionId: 'm1', LastModified: at('2026-12-01T00:00:00Z') }],
    });
    await expect(versionAsOf(s3, 'b', 'k', at('2026-12-01T00:30:00Z'))).rejects.toThrow('s3://b/k has no version stored at or before ' +
      '2026-12-01T00:30:00.000Z: its oldest version was stored at 2026-12-01T01:00:00.000Z. Give a later --as-of');
    expect(mock.calls()).toHaveLength(1);
  });

  test('a key without any version says so', async () => {
    mock.on(ListObjectVersionsCommand).resolvesOnce({ IsTruncated: false, Versions: [] });
    await expect(versionAsOf(s3, 'b', 'k', at('2026-12-01T00:30:00Z'))).rejects.toThrow('s3://b/k has no version stored at or before ' +
      '2026-12-01T00:30:00.000Z: it has no version at all');
  });

  test('--as-of is an ISO 8601 time with its zone, not in the future', () => {
    const now = at('2026-12-02T10:00:00Z');
    expect(parseAsOf('2026-12-01T03:00:00Z', now)).toEqual(at('2026-12-01T03:00:00Z'));
    expect(parseAsOf('2026-12-01T04:00:00.250+01:00', now)).toEqual(at('2026-12-01T03:00:00.250Z'));
    for (const text of ['2026-12-01', '2026-12-01T03:00:00', 'Dec 1 2026', '2026-13-01T03:00:00Z']) {
      expect(() => parseAsOf(text, now)).toThrow(`--as-of must be an ISO 8601 time with its zone, such as 2026-11-26T03:00:00Z (got '${text}')`);
    }
    expect(() => parseAsOf('2026-12-02T10:00:01Z', now)).toThrow('--as-of 2026-12-02T10:00:01Z is in the future (it is 2026-12-02T10:00:00.000Z)');
  });
});
