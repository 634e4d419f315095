/**
 * `restorable basebackup` against a real PostgreSQL 15 server and moto's S3, with the bundled agent: the data
 * directory's tar (pg_basebackup -Ft -X fetch) is stored encrypted under {source}/base/ with a manifest whose
 * positions are the server's own, base/latest.json moves forward, the stored tar opens with the identity and holds a
 * data directory. A tar cut short is refused and nothing is recorded; a server that cannot be reached says so. And
 * what `restore --to` refuses before any server runs: a base backup whose tar holds more than plain files and
 * directories, a data directory that is not empty, a time without its zone. And a restore without a server: the data
 * directory, given a configuration when the base backup held none, recovers once a server starts it.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { GetObjectLegalHoldCommand, GetObjectTaggingCommand, ObjectLockRetentionMode, PutObjectCommand } from '@aws-sdk/client-s3';
import {
  MANIFEST_SUFFIX, TIER_TAG, Tier, baseBackupKey, baseBackupPrefix, baseLatestKey, manifestKeyFor, parseBaseBackupManifest, parseBaseBackupPointer,
} from '../../lib/contract';
import { AgeKey, MotoBucket, agentEnv, clusterQuery, makeAgeKey, motoBucket, requireAgentBundle, runAgent } from '../support';
import { Pg15Cluster, PG15_BIN, clusterOwnedDir, startPg15Cluster } from '../support/pg-wal-cluster';

jest.setTimeout(120_000);

const source = 'base-pg';
let s3: MotoBucket;
let key: AgeKey;
let primary: Pg15Cluster;
let restored: Pg15Cluster | undefined;
const leftovers: string[] = [];

const basebackup = (extra: string[] = [], env: Record<string, string> = {}) => runAgent(['basebackup', '--source', source, '--bucket', s3.bucket,
  '--recipient', key.recipient, '--host', primary.host, '--port', String(primary.port), '--user', primary.user, '--json', ...extra],
{ ...agentEnv(s3.env), PATH: `${PG15_BIN}:${process.env.PATH}`, ...env });

/** Stores `bytes` as a base backup of `src` a minute old, with a manifest that is `like`'s but for its source, key, size and SHA-256. */
async function storeAsBaseBackup(src: string, bytes: Buffer, like: string): Promise<string> {
  const stored = baseBackupKey(undefined, src, new Date(Date.now() - 60_000));
  const manifest = { ...JSON.parse((await s3.getText(like))!), source: src, key: stored, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: stored, Body: bytes }));
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: manifestKeyFor(stored), Body: JSON.stringify(manifest) }));
  return stored;
}

beforeAll(async () => {
  requireAgentBundle();
  s3 = await motoBucket({ objectLock: { mode: ObjectLockRetentionMode.GOVERNANCE, days: 1 } });
  key = makeAgeKey();
  primary = await startPg15Cluster();
  await clusterQuery(primary, 'postgres', 'CREATE TABLE t (id int PRIMARY KEY, note text NOT NULL)');
  await clusterQuery(primary, 'postgres', 'INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 5000) g');
});

afterAll(async () => {
  for (const dir of leftovers) rmSync(dir, { recursive: true, force: true });
  restored?.destroy();
  primary?.destroy();
  await s3?.stop();
});

describe('restorable basebackup', () => {
  let first: { key: string; manifestKey: string; startWalFile: string; endWalFile: string; timeline: number; tier: string };

  it('stores the data directory\'s tar encrypted under base/, with a manifest of the server\'s own WAL positions, and moves base/latest.json', async () => {
    const [before] = await clusterQuery<{ file: string; id: string }>(primary, 'postgres',
      'SELECT pg_walfile_name(pg_current_wal_lsn()) AS file, (SELECT system_identifier::text FROM pg_control_system()) AS id');
    const run = await basebackup(['--legal-hold']);
    expect({ code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({ code: 0, stderr: '' });
    first = JSON.parse(run.stdout);
    const [after] = await clusterQuery<{ file: string }>(primary, 'postgres', 'SELECT pg_walfile_name(pg_current_wal_lsn()) AS file');
    expect(first.key.startsWith(baseBackupPrefix(undefined, source))).toBe(true);
    expect(first.key).toMatch(/_\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}Z\.tar\.zst\.age$/);
    expect(first.tier).toBe(Tier.MONTHLY);

    const manifest = parseBaseBackupManifest((await s3.getText(first.manifestKey))!, first.manifestKey);
    expect(manifest).toMatchObject({ kind: 'basebackup', source, engine: 'postgres', serverVersion: '15', systemIdentifier: before.id, timeline: 1, key: first.key });
    // The backup's WAL lies between where the server was before and after it; a checkpoint starts it on a new segment.
    expect(manifest.startWalFile >= before.file && manifest.startWalFile <= after.file).toBe(true);
    expect(manifest.endWalFile >= manifest.startWalFile && manifest.endWalFile <= after.file).toBe(true);
    expect(manifest.startLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(manifest.endLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(manifest.tarSize).toBeGreaterThan(20 * 1024 * 1024);
    expect(manifest.toolVersions.pg_basebackup).toContain('15');

    const pointer = parseBaseBackupPointer((await s3.getText(baseLatestKey(undefined, source)))!, 'latest');
    expect(pointer).toMatchObject({ key: first.key, manifestKey: manifestKeyFor(first.key), startWalFile: manifest.startWalFile, timeline: 1, sha256: manifest.sha256 });
    for (const k of [first.key, first.manifestKey]) {
      const tags = await s3.client.send(new GetObjectTaggingCommand({ Bucket: s3.bucket, Key: k }));
      expect(tags.TagSet).toEqual([{ Key: TIER_TAG, Value: Tier.MONTHLY }]);
      const hold = await s3.client.send(new GetObjectLegalHoldCommand({ Bucket: s3.bucket, Key: k }));
      expect(hold.LegalHold?.Status).toBe('ON');
    }

    // The stored bytes open with the identity and are a data directory with its WAL.
    const dir = mkdtempSync(join(tmpdir(), 'restorable-basebackup-open-'));
    leftovers.push(dir);
    writeFileSync(join(dir, 'stored'), await s3.getBytes(first.key));
    execFileSync('sh', ['-c', `age -d -i ${key.identityFile} stored | zstd -d -q | tar -x -C . -f -`], { cwd: dir });
    const label = execFileSync('cat', [join(dir, 'backup_label')]).toString();
    expect(label).toContain(`START WAL LOCATION: ${manifest.startLsn} (file ${manifest.startWalFile})`);
    expect(execFileSync('cat', [join(dir, 'PG_VERSION')]).toString().trim()).toBe('15');
    expect(execFileSync('ls', [join(dir, 'pg_wal')]).toString()).toContain(manifest.endWalFile);
  });

  it('a second base backup the same hour is hourly and moves base/latest.json forward', async () => {
    await new Promise((r) => setTimeout(r, 1100)); // keys have whole seconds
    const run = await basebackup();
    expect(run.code).toBe(0);
    const second = JSON.parse(run.stdout);
    expect(second.tier).toBe(Tier.HOURLY);
    expect(second.latestMoved).toBe(true);
    expect(second.startWalFile > first.startWalFile).toBe(true);
    expect(parseBaseBackupPointer((await s3.getText(baseLatestKey(undefined, source)))!, 'latest').key).toBe(second.key);
  });

  it('refuses a tar cut short even when pg_basebackup exits 0: nothing is recorded and base/latest.json stays', async () => {
    const bin = mkdtempSync(join(tmpdir(), 'restorable-short-tar-'));
    leftovers.push(bin);
    // A pg_basebackup whose output ends early while it still reports success.
    writeFileSync(join(bin, 'pg_basebackup'), `#!/bin/sh\n${PG15_BIN}/pg_basebackup "$@" | head -c 3000000\n`);
    chmodSync(join(bin, 'pg_basebackup'), 0o755);
    const latestBefore = await s3.getText(baseLatestKey(undefined, source));
    const keysBefore = await s3.keys(baseBackupPrefix(undefined, source));
    await new Promise((r) => setTimeout(r, 1100));
    const run = await basebackup([], { PATH: `${bin}:${PG15_BIN}:${process.env.PATH}` });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/restorable basebackup: pg_basebackup's tar ended after \d+ bytes without its end-of-archive marker: it was cut short: refusing to store it/);
    expect(run.stderr).not.toMatch(/\n\s+at /);
    expect(await s3.keys(baseBackupPrefix(undefined, source))).toEqual(keysBefore);
    expect(await s3.getText(baseLatestKey(undefined, source))).toBe(latestBefore);
  });

  it('a server that cannot be reached fails in words, storing nothing', async () => {
    const keysBefore = await s3.keys(baseBackupPrefix(undefined, source));
    const run = await runAgent(['basebackup', '--source', source, '--bucket', s3.bucket, '--recipient', key.recipient,
      '--host', '127.0.0.1', '--port', '1', '--user', primary.user], { ...agentEnv(s3.env), PATH: `${PG15_BIN}:${process.env.PATH}` });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/restorable basebackup: stage 'pg_basebackup' exited with code 1:\npg_basebackup: error: connection to server at "127.0.0.1", port 1 failed/);
    expect(run.stderr).not.toMatch(/\n\s+at /);
    expect(await s3.keys(baseBackupPrefix(undefined, source))).toEqual(keysBefore);
    expect((await s3.keys(baseBackupPrefix(undefined, source))).filter((k) => k.endsWith(MANIFEST_SUFFIX))).toHaveLength(2);
  });

  it('restore --to refuses a base backup whose tar holds a link, before tar writes it', async () => {
    const evil = 'base-pg-evil';
    const dir = mkdtempSync(join(tmpdir(), 'restorable-evil-tar-'));
    leftovers.push(dir);
    execFileSync('sh', ['-c', 'mkdir tree && echo 15 > tree/PG_VERSION && ln -s /etc tree/escape && ' +
      `tar --format=ustar -cf - -C tree PG_VERSION escape | zstd -q -c | age -r ${key.recipient} > stored`], { cwd: dir });
    const evilKey = await storeAsBaseBackup(evil, readFileSync(join(dir, 'stored')), first.manifestKey);
    const data = join(dir, 'data');
    const run = await runAgent(['restore', '--source', evil, '--bucket', s3.bucket, '--to', 'latest', '--data-dir', data,
      '--identity-file', key.identityFile], agentEnv(s3.env));
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`restorable restore: s3://${s3.bucket}/${evilKey} holds 'escape' (tar type '2'), which is no part of a data directory: refusing to unpack it`);
    expect(existsSync(join(data, 'escape'))).toBe(false);
  });

  it('restore --to refuses in words a non-empty data directory, a time without its zone and the dump options', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'restorable-pitr-usage-'));
    leftovers.push(dir);
    writeFileSync(join(dir, 'PG_VERSION'), '15\n');
    const restore = (extra: string[]) => runAgent(['restore', '--source', source, '--bucket', s3.bucket, '--identity-file', key.identityFile, ...extra],
      agentEnv(s3.env));
    const nonEmpty = await restore(['--to', 'latest', '--data-dir', dir]);
    expect(nonEmpty.code).toBe(2);
    expect(nonEmpty.stderr).toContain(`the data directory ${dir} is not empty`);
    const noZone = await restore(['--to', '2026-12-02T13:00:00', '--data-dir', join(dir, 'new')]);
    expect(noZone.code).toBe(2);
    expect(noZone.stderr).toContain("--to must be 'latest' or an ISO 8601 time with its zone");
    const withDumpOption = await restore(['--to', 'latest', '--data-dir', join(dir, 'new'), '--clean']);
    expect(withDumpOption.code).toBe(2);
    expect(withDumpOption.stderr).toContain('--to restores a base backup and WAL, not a dump: leave out --clean');
    expect(existsSync(join(dir, 'new'))).toBe(false);
  });

  it('restore --to latest without --port: the data directory, with a configuration of its own when the base backup held none, recovers when a server starts it', async () => {
    const bare = 'base-pg-bare';
    const dir = mkdtempSync(join(tmpdir(), 'restorable-bare-'));
    leftovers.push(dir);
    // The first base backup without its configuration files, as a cluster that keeps them outside its data directory makes it.
    writeFileSync(join(dir, 'stored'), await s3.getBytes(first.key));
    execFileSync('sh', ['-c', `mkdir tree && age -d -i ${key.identityFile} stored | zstd -d -q | tar -x -C tree -f - && ` +
      `rm tree/postgresql.conf tree/pg_hba.conf tree/pg_ident.conf && tar --format=ustar -c -C tree -f - . | zstd -q -c | age -r ${key.recipient} > bare`], { cwd: dir });
    const bareKey = await storeAsBaseBackup(bare, readFileSync(join(dir, 'bare')), first.manifestKey);

    const home = clusterOwnedDir('restorable-bare-cluster-');
    leftovers.push(home);
    const data = join(home, 'data');
    const run = await runAgent(['restore', '--source', bare, '--bucket', s3.bucket, '--to', 'latest', '--data-dir', data,
      '--identity-file', key.identityFile, '--json'], agentEnv(s3.env));
    expect({ code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({ code: 0, stderr: '' });
    const result = JSON.parse(run.stdout);
    expect(result).toMatchObject({ baseBackupKey: bareKey, targetTime: 'latest', walFilesFetched: 0, dataDir: data, walDir: `${data}.wal` });
    expect(readFileSync(join(data, 'pg_hba.conf'), 'utf8')).toContain('local all all peer');
    expect(readFileSync(join(data, 'postgresql.conf'), 'utf8')).toContain(`restore_command = '/bin/sh "${data}.wal/restore-command.sh" "%f" "%p"'`);
    expect(existsSync(join(data, 'postgresql.auto.conf.from-base-backup'))).toBe(true);
    // A person starts it with a server of the source's version, letting the test's user in over loopback.
    writeFileSync(join(data, 'pg_hba.conf'), 'host all all 127.0.0.1/32 trust\n', { flag: 'a' });
    if (userInfo().uid === 0) execFileSync('chown', ['-R', 'postgres:postgres', data, `${data}.wal`]);
    restored = await startPg15Cluster({ from: { dir: home, data } }).catch((err: Error) => {
      throw new Error(`${err.message}\n${readFileSync(join(home, 'log'), 'utf8').slice(-3000)}`);
    });
    const deadline = Date.now() + 30_000;
    // No hot standby in the restored configuration: connections are refused until the server has promoted.
    const recovering = () => clusterQuery<{ r: boolean }>(restored!, 'postgres', 'SELECT pg_is_in_recovery() AS r').then(([row]) => row.r, () => true);
    while (await recovering()) {
      if (Date.now() > deadline) throw new Error(`recovery did not end; log:\n${restored.log().slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(await clusterQuery(restored, 'postgres', 'SELECT count(*)::int AS n FROM t')).toEqual([{ n: 5000 }]);
  });
});
