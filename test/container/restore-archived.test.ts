/**
 * Restoring a backup that lifecycle moved to Glacier or Deep Archive, or that was deleted in a versioned
 * bucket. The emulator has neither Glacier nor versions, so the agent's S3 client is an aws-sdk-client-mock
 * whose HeadObject reports the storage class and the retrieval state, whose RestoreObject records the
 * request, and which answers for deleted objects; reads and lists are forwarded to the S3 emulator,
 * which holds a real backup. The identity comes from a mocked Secrets Manager.
 */
import { readFileSync } from 'node:fs';
import {
  GetObjectCommand, GetObjectCommandInput, HeadObjectCommand, HeadObjectCommandOutput, ListObjectVersionsCommand, ListObjectsV2Command,
  NoSuchKey, RestoreObjectCommand, S3Client,
} from '@aws-sdk/client-s3';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { manifestKeyFor } from '../../lib/contract';
import { parseCommandArgs } from '../../container/src/args';
import { EXIT_NOT_YET_READABLE } from '../../container/src/archive';
import { RESTORE_COMMAND, runRestore } from '../../container/src/commands/restore';
import { AgentError } from '../../container/src/errors';
import {
  AgeKey, PG, S3Emulator, agentEnv, createPgDatabase, createPgFixture, dropPgDatabase, pgQuery, pgTableStats, readerRole, runAgent,
  startS3rver, uniqueName, makeAgeKey,
} from '../support';

const source = 'archived-pg';
const secretId = 'arn:aws:secretsmanager:us-east-1:111122223333:secret:restorable/identity-AbCdEf';
let s3: S3Emulator;
let key: AgeKey;
let backupKey: string;
const database = uniqueName('ra_src');
const targets: string[] = [];

const agentS3 = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
const s3Mock = mockClient(agentS3);
const secrets = new SecretsManagerClient({ region: 'us-east-1' });
const secretsMock = mockClient(secrets);

/** HeadObject answers for the dump, in order; the last one repeats. Other objects read as STANDARD. */
function archivedStates(...states: Partial<HeadObjectCommandOutput>[]): void {
  let call = 0;
  s3Mock.on(HeadObjectCommand).callsFake((input: { Key: string }) => (input.Key === backupKey
    ? { ContentLength: 1, ...states[Math.min(call++, states.length - 1)] }
    : { ContentLength: 1, StorageClass: 'STANDARD' }));
}

async function restore(target: string, ...extra: string[]) {
  const args = parseCommandArgs(RESTORE_COMMAND, ['--source', source, '--bucket', s3.bucket, '--identity-secret-id', secretId,
    '--host', PG.host, '--port', String(PG.port), '--user', PG.user, '--database', target, ...extra]);
  return runRestore(args, { s3: agentS3, secrets: () => secrets });
}

async function freshTarget(): Promise<string> {
  const name = uniqueName(`ra_t${targets.length}`);
  targets.push(name);
  await createPgDatabase(name);
  return name;
}

beforeAll(async () => {
  s3 = await startS3rver();
  key = makeAgeKey();
  await createPgFixture(database, { customers: 500 });
  const run = await runAgent(['backup', '--source', source, '--engine', 'postgres', '--bucket', s3.bucket, '--recipient', key.recipient,
    '--host', PG.host, '--port', String(PG.port), '--user', PG.user, '--database', database, '--json'], agentEnv({ ...s3.env, PGPASSWORD: PG.password }));
  if (run.code !== 0) throw new Error(`backup failed: ${run.stderr}`);
  backupKey = JSON.parse(run.stdout).key;
  process.env.PGPASSWORD = PG.password;
  process.env.RESTORABLE_RETRIEVAL_POLL_MS = '20';
  process.env.RESTORABLE_PROGRESS_MS = '60000';
});

beforeEach(() => {
  s3Mock.reset();
  // Reads and lists come from the emulator; an old version is served as the current bytes.
  s3Mock.on(GetObjectCommand).callsFake((input) => s3.client.send(new GetObjectCommand({ ...input, VersionId: undefined })));
  s3Mock.on(ListObjectsV2Command).callsFake((input) => s3.client.send(new ListObjectsV2Command(input)));
  s3Mock.on(RestoreObjectCommand).resolves({});
  secretsMock.reset();
  secretsMock.on(GetSecretValueCommand, { SecretId: secretId })
    .resolves({ SecretString: `# created: 2026-11-01\n${readFileSync(key.identityFile, 'utf8')}` });
});

afterAll(async () => {
  for (const target of targets) await dropPgDatabase(target);
  await dropPgDatabase(database);
  await pgQuery('postgres', `DROP ROLE IF EXISTS ${readerRole(database)}`);
  delete process.env.RESTORABLE_RETRIEVAL_POLL_MS;
  await s3?.stop();
});

test('in GLACIER, without --wait: a Standard retrieval is requested, the message says when, exit code 75, the target untouched', async () => {
  archivedStates({ StorageClass: 'GLACIER' });
  const target = await freshTarget();
  const failure = await restore(target).then(() => undefined, (err: unknown) => err);
  expect(failure).toBeInstanceOf(AgentError);
  expect((failure as AgentError).exitCode).toBe(EXIT_NOT_YET_READABLE);
  expect((failure as AgentError).message).toMatch(new RegExp(`s3://${s3.bucket}/${backupKey} is archived in GLACIER: its retrieval has started ` +
    'and it should be readable by \\d{4}-\\d{2}-\\d{2}T[\\d:.]+Z \\(Standard retrieval from GLACIER takes up to 5 hours\\)\\. .*add --wait'));
  expect(s3Mock.commandCalls(RestoreObjectCommand).map((c) => c.args[0].input)).toEqual([
    { Bucket: s3.bucket, Key: backupKey, RestoreRequest: { Days: 2, GlacierJobParameters: { Tier: 'Standard' } } },
  ]);
  expect(s3Mock.commandCalls(GetObjectCommand).map((c) => c.args[0].input.Key)).not.toContain(backupKey);
  expect(await pgTableStats(target)).toEqual(new Map());
});

test('a retrieval already under way is not requested again', async () => {
  archivedStates({ StorageClass: 'DEEP_ARCHIVE', Restore: 'ongoing-request="true"' });
  const failure = await restore(await freshTarget()).then(() => undefined, (err: unknown) => err);
  expect((failure as AgentError).exitCode).toBe(EXIT_NOT_YET_READABLE);
  expect((failure as AgentError).message).toContain('Standard retrieval from DEEP_ARCHIVE takes up to 12 hours');
  expect(s3Mock.commandCalls(RestoreObjectCommand)).toHaveLength(0);
});

test('Deep Archive has no Expedited tier: a usage error before anything is requested', async () => {
  archivedStates({ StorageClass: 'DEEP_ARCHIVE' });
  const failure = await restore(await freshTarget(), '--retrieval-tier', 'expedited').then(() => undefined, (err: unknown) => err);
  expect((failure as AgentError).exitCode).toBe(2);
  expect((failure as AgentError).message).toContain('has no Expedited retrieval: use --retrieval-tier Standard or Bulk');
  expect(s3Mock.commandCalls(RestoreObjectCommand)).toHaveLength(0);
});

test('in DEEP_ARCHIVE with --wait and --version-id: a Bulk retrieval, polled until readable, then a verified restore', async () => {
  archivedStates({ StorageClass: 'DEEP_ARCHIVE' }, { StorageClass: 'DEEP_ARCHIVE', Restore: 'ongoing-request="true"' },
    { StorageClass: 'DEEP_ARCHIVE', Restore: 'ongoing-request="false", expiry-date="Fri, 28 Nov 2026 00:00:00 GMT"' });
  const target = await freshTarget();
  const result = await restore(target, '--wait', '--retrieval-tier', 'Bulk', '--version-id', 'v-older');
  expect(result).toMatchObject({ key: backupKey, versionId: 'v-older', mode: 'streamed' });
  expect(s3Mock.commandCalls(RestoreObjectCommand).map((c) => c.args[0].input)).toEqual([
    { Bucket: s3.bucket, Key: backupKey, VersionId: 'v-older', RestoreRequest: { Days: 2, GlacierJobParameters: { Tier: 'Bulk' } } },
  ]);
  const heads = s3Mock.commandCalls(HeadObjectCommand).filter((c) => c.args[0].input.Key === backupKey);
  expect(heads.length).toBe(3);
  expect(heads.every((c) => c.args[0].input.VersionId === 'v-older')).toBe(true);
  expect(s3Mock.commandCalls(GetObjectCommand).find((c) => c.args[0].input.Key === backupKey)?.args[0].input.VersionId).toBe('v-older');
  expect(secretsMock.commandCalls(GetSecretValueCommand)).toHaveLength(1);
  expect(await pgTableStats(target)).toEqual(await pgTableStats(database));
});

test('a deleted backup, by --version-id: the newest manifest version that is not a delete marker, and the dump\'s old version', async () => {
  archivedStates({ StorageClass: 'STANDARD' });
  const manifestKey = manifestKeyFor(backupKey);
  // Both carry a delete marker now: only versioned reads find them.
  s3Mock.on(GetObjectCommand).callsFake((input: GetObjectCommandInput) => {
    if ((input.Key === manifestKey || input.Key === backupKey) && !input.VersionId) {
      throw new NoSuchKey({ message: 'The specified key does not exist.', $metadata: { httpStatusCode: 404 } });
    }
    return s3.client.send(new GetObjectCommand({ ...input, VersionId: undefined }));
  });
  s3Mock.on(ListObjectVersionsCommand, { Prefix: manifestKey }).resolves({
    Versions: [{ Key: manifestKey, VersionId: 'm-old', LastModified: new Date('2026-11-01T00:00:00Z') },
      { Key: manifestKey, VersionId: 'm-1', LastModified: new Date('2026-11-02T00:00:00Z') }],
    DeleteMarkers: [{ Key: manifestKey, VersionId: 'm-2', LastModified: new Date('2026-11-03T00:00:00Z'), IsLatest: true }],
  });
  const target = await freshTarget();
  const withoutVersion = await restore(target, '--key', backupKey).then(() => undefined, (err: unknown) => err);
  expect((withoutVersion as AgentError).message).toContain(`no manifest at s3://${s3.bucket}/${manifestKey}`);

  const result = await restore(target, '--key', backupKey, '--version-id', 'v-1');
  expect(result).toMatchObject({ key: backupKey, versionId: 'v-1' });
  const reads = s3Mock.commandCalls(GetObjectCommand).map((c) => [c.args[0].input.Key, c.args[0].input.VersionId]);
  expect(reads).toEqual(expect.arrayContaining([[manifestKey, 'm-1'], [backupKey, 'v-1']]));
  expect(await pgTableStats(target)).toEqual(await pgTableStats(database));
});
