/**
 * Tags are set when each object is created, never afterwards, on every object of a backup. The
 * emulator ignores the Tagging header, so SDK middleware records what the agent sends. The backup
 * runs in-process here, with its credentials from a (mocked) Secrets Manager secret in the RDS shape.
 */
import { CreateMultipartUploadCommand, PutObjectCommand, PutObjectTaggingCommand } from '@aws-sdk/client-s3';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { TIER_TAG, Tier } from '../../lib/contract';
import { parseCommandArgs } from '../../container/src/args';
import { BACKUP_COMMAND, runBackup } from '../../container/src/commands/backup';
import { AgeKey, PG, S3Emulator, createPgFixture, dropPgDatabase, makeAgeKey, pgQuery, readerRole, startS3rver, uniqueName } from '../support';

let s3: S3Emulator;
let key: AgeKey;
const database = uniqueName('tag_src');
// A login that exists only for this test, whose password only the secret knows.
const secretUser = uniqueName('tag_reader');
const secretPassword = 'S3cret-from-Secrets-Manager';

beforeAll(async () => {
  s3 = await startS3rver();
  key = makeAgeKey();
  // Large enough (random bytes) for a multipart upload of the dump.
  await createPgFixture(database, { customers: 200, blobRows: 8, blobKiB: 1024 });
  await pgQuery('postgres', `CREATE ROLE ${secretUser} LOGIN PASSWORD '${secretPassword}' IN ROLE pg_read_all_data`);
});

afterAll(async () => {
  await dropPgDatabase(database);
  await pgQuery('postgres', `DROP ROLE IF EXISTS ${readerRole(database)}`);
  await pgQuery('postgres', `DROP ROLE IF EXISTS ${secretUser}`);
  await s3?.stop();
});

test('every object of one backup is tagged at creation with the same tier; latest.json is not tagged', async () => {
  const created: { command: string; key: string; tagging?: string }[] = [];
  s3.client.middlewareStack.add((next, context) => async (args) => {
    const input = args.input as { Key?: string; Tagging?: string };
    if (['PutObjectCommand', 'CreateMultipartUploadCommand', 'PutObjectTaggingCommand'].includes(context.commandName ?? '')) {
      created.push({ command: context.commandName!, key: input.Key!, tagging: input.Tagging });
    }
    return next(args);
  }, { step: 'initialize', name: 'recordTagging' });

  const secrets = new SecretsManagerClient({ region: 'us-east-1' });
  const secretsMock = mockClient(secrets);
  secretsMock.on(GetSecretValueCommand, { SecretId: 'prod/orders-db' }).resolves({
    SecretString: JSON.stringify({ engine: 'postgres', host: PG.host, port: PG.port, username: secretUser, password: secretPassword, dbname: database }),
  });

  const args = parseCommandArgs(BACKUP_COMMAND, ['--source', 'tagged', '--engine', 'postgres', '--bucket', s3.bucket,
    '--recipient', key.recipient, '--secret-id', 'prod/orders-db']);
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

  expect(secretsMock.commandCalls(GetSecretValueCommand)).toHaveLength(1);
  expect(result.tier).toBe(Tier.MONTHLY);
  const expected = `${TIER_TAG}=${Tier.MONTHLY}`;
  const dump = created.filter((c) => c.key === result.key);
  expect(dump).toEqual([{ command: CreateMultipartUploadCommand.name, key: result.key, tagging: expected }]);
  expect(created.filter((c) => c.command === PutObjectTaggingCommand.name)).toEqual([]); // never tagged afterwards

  // Every object in the bucket was created with the tier tag, except the pointer.
  const stored = await s3.keys();
  expect(stored).toHaveLength(4); // dump, roles companion, manifest, latest.json
  for (const k of stored) {
    const writes = created.filter((c) => c.key === k);
    expect(writes.length).toBeGreaterThan(0);
    if (k.endsWith('/latest.json')) expect(writes.every((w) => w.tagging === undefined && w.command === PutObjectCommand.name)).toBe(true);
    else expect(writes.map((w) => w.tagging)).toEqual(writes.map(() => expected));
  }
  expect(logged.join('')).toContain('backup finished');
  expect(logged.join('')).not.toContain(secretPassword);
});
