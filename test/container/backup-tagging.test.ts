/**
 * Tags are set when each object is created, never afterwards, on every object of a backup: lifecycle rules
 * move and expire objects by their tier tag, so an object stored untagged would be kept at the wrong tier.
 *
 * Real, on moto's server: the Tagging given on PutObject and on CreateMultipartUpload (which moto, like S3,
 * applies when the upload completes), read back with GetObjectTagging on every object. The credentials come from
 * a secret in the RDS shape, stored in moto's Secrets Manager.
 * Observed: SDK middleware notes which call created each object and that no PutObjectTagging is ever sent, and
 * counts the GetSecretValue calls; it answers nothing itself.
 */
import { CreateMultipartUploadCommand, GetObjectTaggingCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { CreateSecretCommand, DeleteSecretCommand, GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { TIER_TAG, Tier, globalsKeyFor } from '../../lib/contract';
import { parseCommandArgs } from '../../container/src/shared/args';
import { BACKUP_COMMAND, runBackup } from '../../container/src/commands/backup';
import {
  AgeKey, MotoBucket, PG, createPgFixture, dropPgDatabase, makeAgeKey, motoBucket, motoName, pgQuery, readerRole, sharedMoto, uniqueName,
} from '../support';

let s3: MotoBucket;
let secrets: SecretsManagerClient;
let key: AgeKey;
const database = uniqueName('tag_src');
const secretId = motoName('prod/orders-db');
// A login that exists only for this test, whose password only the secret knows.
const secretUser = uniqueName('tag_reader');
const secretPassword = 'S3cret-from-Secrets-Manager';

beforeAll(async () => {
  s3 = await motoBucket({ versioned: true });
  secrets = new SecretsManagerClient((await sharedMoto()).config());
  key = makeAgeKey();
  // Large enough (random bytes) for a multipart upload of the dump.
  await createPgFixture(database, { customers: 200, blobRows: 8, blobKiB: 1024 });
  await pgQuery('postgres', `CREATE ROLE ${secretUser} LOGIN PASSWORD '${secretPassword}' IN ROLE pg_read_all_data`);
  await secrets.send(new CreateSecretCommand({
    Name: secretId,
    SecretString: JSON.stringify({ engine: 'postgres', host: PG.host, port: PG.port, username: secretUser, password: secretPassword, dbname: database }),
  }));
});

afterAll(async () => {
  await secrets?.send(new DeleteSecretCommand({ SecretId: secretId, ForceDeleteWithoutRecovery: true }));
  secrets?.destroy();
  await dropPgDatabase(database);
  await pgQuery('postgres', `DROP ROLE IF EXISTS ${readerRole(database)}`);
  await pgQuery('postgres', `DROP ROLE IF EXISTS ${secretUser}`);
  await s3?.stop();
});

/** The tags the server stored on an object's current version, as `k=v` strings. */
async function tagsOf(objectKey: string): Promise<string[]> {
  const out = await s3.client.send(new GetObjectTaggingCommand({ Bucket: s3.bucket, Key: objectKey }));
  return (out.TagSet ?? []).map((t) => `${t.Key}=${t.Value}`);
}

test('every object of one backup is tagged at creation with the same tier; latest.json is not tagged', async () => {
  const created: { command: string; key: string }[] = [];
  s3.client.middlewareStack.add((next, context) => async (args) => {
    if (['PutObjectCommand', 'CreateMultipartUploadCommand', 'PutObjectTaggingCommand'].includes(context.commandName ?? '')) {
      created.push({ command: context.commandName!, key: (args.input as { Key: string }).Key });
    }
    return next(args);
  }, { step: 'initialize', name: 'recordCreation' });
  let secretReads = 0;
  secrets.middlewareStack.add((next, context) => async (args) => {
    if (context.commandName === GetSecretValueCommand.name) secretReads++;
    return next(args);
  }, { step: 'initialize', name: 'countSecretReads' });

  const args = parseCommandArgs(BACKUP_COMMAND, ['--source', 'tagged', '--engine', 'postgres', '--bucket', s3.bucket,
    '--recipient', key.recipient, '--secret-id', secretId]);
  const logged: string[] = [];
  const stderr = jest.spyOn(process.stderr, 'write').mockImplementation((chunk) => { logged.push(String(chunk)); return true; });
  const savedPassword = process.env.PGPASSWORD;
  delete process.env.PGPASSWORD; // the password must come from the secret
  let result;
  try {
    result = await runBackup(args, { s3: s3.client, secrets });
  } finally {
    stderr.mockRestore();
    if (savedPassword !== undefined) process.env.PGPASSWORD = savedPassword;
  }

  expect(secretReads).toBe(1);
  expect(result.tier).toBe(Tier.MONTHLY);
  const expected = `${TIER_TAG}=${Tier.MONTHLY}`;
  // The dump went up in parts: its tags rode on CreateMultipartUpload, and nothing was tagged afterwards.
  expect(created.filter((c) => c.key === result.key)).toEqual([{ command: CreateMultipartUploadCommand.name, key: result.key }]);
  expect(created.filter((c) => c.command !== PutObjectCommand.name && c.command !== CreateMultipartUploadCommand.name)).toEqual([]);

  // What the bucket holds: every object tagged with the tier, except the pointer.
  const stored = await s3.keys();
  expect(stored).toEqual([result.key, globalsKeyFor(result.key), result.manifestKey, 'tagged/latest.json'].sort());
  for (const k of stored) {
    expect({ k, tags: await tagsOf(k) }).toEqual({ k, tags: k.endsWith('/latest.json') ? [] : [expected] });
  }
  expect(logged.join('')).toContain('backup finished');
  expect(logged.join('')).not.toContain(secretPassword);
});
