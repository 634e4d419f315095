/**
 * Restoring a backup that lifecycle moved to Glacier or Deep Archive, or that was deleted in a versioned bucket.
 *
 * Real, on a moto server of this file's own: a versioned bucket holding a backup the agent made, the identity in
 * moto's Secrets Manager, and the agent run as shipped. An archived object answers InvalidObjectState to GetObject
 * until RestoreObject; moto's state manager is set so that a retrieval is not done at once but one read at a time
 * ("s3::keyrestore", manual, 1): the first HeadObject after the request reports it under way, the next one readable.
 * That setting is server-wide, hence the private server. Deleted backups are delete markers over real versions.
 * Not like S3: moto runs no lifecycle rules, so each test archives the dump by copying its first version over itself
 * with the storage class (a new version; lifecycle would not make one). Moto's RestoreObject ignores VersionId (it
 * retrieves the current version) and the tier, so --version-id names the current version here, and the tier asked for
 * is read from the agent's log.
 */
import { readFileSync } from 'node:fs';
import { CopyObjectCommand, DeleteObjectCommand, HeadObjectCommand, StorageClass } from '@aws-sdk/client-s3';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { manifestKeyFor } from '../../lib/contract';
import { EXIT_NOT_YET_READABLE } from '../../container/src/restore/archive';
import {
  AgeKey, MotoBucket, PG, PrivateMoto, agentEnv, createPgDatabase, createPgFixture, dropPgDatabase, logLines, makeAgeKey, motoBucket, pgQuery,
  pgTableStats, readerRole, runAgent, startPrivateMoto, uniqueName,
} from '../support';

const secretId = 'restorable/identity';
let server: PrivateMoto;
let s3: MotoBucket;
let key: AgeKey;
const database = uniqueName('ra_src');
const targets: string[] = [];
/** Each source's backup: its dump key and the dump's first (STANDARD) version. */
const backups = new Map<string, { key: string; versionId: string }>();

const env = () => agentEnv({ ...s3.env, PGPASSWORD: PG.password, RESTORABLE_RETRIEVAL_POLL_MS: '20' });

async function backUp(source: string): Promise<void> {
  const run = await runAgent(['backup', '--source', source, '--engine', 'postgres', '--bucket', s3.bucket, '--recipient', key.recipient,
    '--host', PG.host, '--port', String(PG.port), '--user', PG.user, '--database', database, '--json'], env());
  if (run.code !== 0) throw new Error(`backup failed: ${run.stderr}`);
  const backupKey = (JSON.parse(run.stdout) as { key: string }).key;
  backups.set(source, { key: backupKey, versionId: (await s3.versions(backupKey))[0].versionId });
}

/** What lifecycle does: the dump, as first stored, now in an archive class. Returns the archived (current) version. */
async function archive(source: string, storageClass: StorageClass): Promise<string> {
  const { key: backupKey, versionId } = backups.get(source)!;
  const out = await s3.client.send(new CopyObjectCommand({
    Bucket: s3.bucket, Key: backupKey, CopySource: `${s3.bucket}/${backupKey}?versionId=${versionId}`, StorageClass: storageClass,
  }));
  return out.VersionId!;
}

/** The dump's current version as the server reports it. Each read counts towards a retrieval's progress. */
async function headDump(source: string) {
  return s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: backups.get(source)!.key }));
}

async function restore(source: string, target: string, ...extra: string[]) {
  const run = await runAgent(['restore', '--source', source, '--bucket', s3.bucket, '--identity-secret-id', secretId,
    '--host', PG.host, '--port', String(PG.port), '--user', PG.user, '--database', target, '--load-as-connected-user', ...extra], env());
  const messages = logLines(run.stderr).map((l) => l.msg ?? l.message);
  return { ...run, logged: logLines(run.stderr), messages };
}

async function freshTarget(): Promise<string> {
  const name = uniqueName(`ra_t${targets.length}`);
  targets.push(name);
  await createPgDatabase(name);
  return name;
}

beforeAll(async () => {
  server = await startPrivateMoto();
  s3 = await motoBucket({ versioned: true }, server);
  key = makeAgeKey();
  const secrets = new SecretsManagerClient(server.config());
  await secrets.send(new CreateSecretCommand({ Name: secretId, SecretString: `# created: 2026-11-01\n${readFileSync(key.identityFile, 'utf8')}` }));
  secrets.destroy();
  await createPgFixture(database, { customers: 500 });
  await backUp('archived-pg');
  await backUp('deleted-pg');
  await server.setTransition('s3::keyrestore', { progression: 'manual', times: 1 });
});

afterAll(async () => {
  for (const target of targets) await dropPgDatabase(target);
  await dropPgDatabase(database);
  await pgQuery('postgres', `DROP ROLE IF EXISTS ${readerRole(database)}`);
  await s3?.stop();
  await server?.stop();
});

test('in GLACIER, without --wait: a Standard retrieval is requested, the message says when, exit code 75, the target untouched', async () => {
  await archive('archived-pg', StorageClass.GLACIER);
  const backupKey = backups.get('archived-pg')!.key;
  const target = await freshTarget();
  const run = await restore('archived-pg', target);
  expect(run.code).toBe(EXIT_NOT_YET_READABLE);
  expect(run.stderr).toMatch(new RegExp(`s3://${s3.bucket}/${backupKey} is archived in GLACIER: its retrieval has started ` +
    'and it should be readable by \\d{4}-\\d{2}-\\d{2}T[\\d:.]+Z \\(Standard retrieval from GLACIER takes up to 5 hours\\)\\. .*add --wait'));
  expect(run.logged).toContainEqual(expect.objectContaining({ msg: 'archived backup: retrieval requested', storageClass: 'GLACIER', tier: 'Standard' }));
  // The server has the request: the retrieval is under way, and the object is still in GLACIER.
  const head = await headDump('archived-pg');
  expect({ storageClass: head.StorageClass, restore: head.Restore }).toEqual({ storageClass: 'GLACIER', restore: 'ongoing-request="true"' });
  expect(await pgTableStats(target)).toEqual(new Map());
});

test('in DEEP_ARCHIVE, the same command until it is readable: requested once, exit 75 while under way, then restored', async () => {
  await archive('archived-pg', StorageClass.DEEP_ARCHIVE);
  const target = await freshTarget();
  const first = await restore('archived-pg', target);
  expect(first.code).toBe(EXIT_NOT_YET_READABLE);
  expect(first.messages).toContain('archived backup: retrieval requested');

  // A retrieval already under way is not requested again.
  const second = await restore('archived-pg', target);
  expect(second.code).toBe(EXIT_NOT_YET_READABLE);
  expect(second.stderr).toContain('Standard retrieval from DEEP_ARCHIVE takes up to 12 hours');
  expect(second.messages).not.toContain('archived backup: retrieval requested');
  expect(await pgTableStats(target)).toEqual(new Map());

  const third = await restore('archived-pg', target);
  expect({ code: third.code, stderr: third.code === 0 ? '' : third.stderr }).toEqual({ code: 0, stderr: '' });
  expect(third.messages).not.toContain('archived backup: retrieval requested');
  expect(await pgTableStats(target)).toEqual(await pgTableStats(database));
  expect((await headDump('archived-pg')).Restore).toMatch(/^ongoing-request="false", expiry-date=".+ GMT"$/);
});

test('Deep Archive has no Expedited tier: a usage error before anything is requested', async () => {
  await archive('archived-pg', StorageClass.DEEP_ARCHIVE);
  const run = await restore('archived-pg', await freshTarget(), '--retrieval-tier', 'expedited');
  expect(run.code).toBe(2);
  expect(run.stderr).toContain('has no Expedited retrieval: use --retrieval-tier Standard or Bulk');
  const head = await headDump('archived-pg');
  expect({ storageClass: head.StorageClass, restore: head.Restore }).toEqual({ storageClass: 'DEEP_ARCHIVE', restore: undefined });
});

test('in DEEP_ARCHIVE with --wait and --version-id: a Bulk retrieval, polled until readable, then a verified restore', async () => {
  const versionId = await archive('archived-pg', StorageClass.DEEP_ARCHIVE);
  const target = await freshTarget();
  const run = await restore('archived-pg', target, '--wait', '--retrieval-tier', 'Bulk', '--version-id', versionId, '--json');
  expect({ code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({ code: 0, stderr: '' });
  expect(JSON.parse(run.stdout)).toMatchObject({ key: backups.get('archived-pg')!.key, versionId, mode: 'streamed' });
  expect(run.logged).toContainEqual(expect.objectContaining({ msg: 'archived backup: retrieval requested', storageClass: 'DEEP_ARCHIVE', tier: 'Bulk' }));
  // Read before it was readable, the dump would have answered InvalidObjectState: the agent waited.
  expect(run.messages).toEqual(expect.arrayContaining(['archived backup: waiting for the retrieved copy', 'archived backup: readable now']));
  expect(await pgTableStats(target)).toEqual(await pgTableStats(database));
  const head = await headDump('archived-pg');
  expect({ versionId: head.VersionId, restore: head.Restore }).toEqual({ versionId, restore: expect.stringMatching(/^ongoing-request="false"/) });
});

test('a deleted backup, by --version-id: the newest manifest version that is not a delete marker, and the dump\'s old version', async () => {
  const { key: backupKey, versionId } = backups.get('deleted-pg')!;
  const manifestKey = manifestKeyFor(backupKey);
  const manifestVersion = (await s3.versions(manifestKey))[0].versionId;
  // Deleted without a version: both now carry a delete marker, and only versioned reads find them.
  for (const k of [backupKey, manifestKey]) await s3.client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: k }));
  expect(await s3.getText(manifestKey)).toBeUndefined();

  const target = await freshTarget();
  const withoutVersion = await restore('deleted-pg', target, '--key', backupKey);
  expect(withoutVersion.code).toBe(1);
  expect(withoutVersion.stderr).toContain(`no manifest at s3://${s3.bucket}/${manifestKey}`);

  const run = await restore('deleted-pg', target, '--key', backupKey, '--version-id', versionId, '--json');
  expect({ code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({ code: 0, stderr: '' });
  expect(JSON.parse(run.stdout)).toMatchObject({ key: backupKey, versionId });
  expect(run.logged).toContainEqual(expect.objectContaining({ msg: 'the manifest is deleted; reading its newest version', manifestVersionId: manifestVersion }));
  expect(await pgTableStats(target)).toEqual(await pgTableStats(database));

  // verify reads the same old versions: size and SHA-256 against the manifest's newest version.
  const verify = await runAgent(['verify', '--source', 'deleted-pg', '--bucket', s3.bucket, '--key', backupKey, '--version-id', versionId], env());
  expect({ code: verify.code, stderr: verify.code === 0 ? '' : verify.stderr }).toEqual({ code: 0, stderr: '' });
  expect(verify.stdout).toContain(`verified s3://${s3.bucket}/${backupKey} (version ${versionId})`);
});
