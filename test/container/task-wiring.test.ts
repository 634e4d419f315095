/**
 * The wiring and the agent agree: synthesize a stack with a PostgreSQL source, take the container's command
 * (the schedule's overrides) and environment (task definition plus overrides) from the template, put the local
 * endpoints in place of the sample ones, and run the bundled agent with node, as the image's ENTRYPOINT would,
 * against the local PostgreSQL and a bucket on moto's server with Object Lock, as BackupStore makes it (governance,
 * 7 days), so that the template's --legal-hold is carried out and read back. The source's credentials secret is a real secret in Secrets
 * Manager on moto's server (a name of this run's own), whose ARN the stack is given: the `--secret-id` lookup
 * reads it there, in the region its ARN names.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { CreateSecretCommand, DescribeSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { latestKey, manifestKeyFor, parseLatest, parseManifest } from '../../lib/contract';
import { backupsStack, postgresSource } from '../lib/database-backups-fixture';
import {
  AgeKey, PG, REPO_ROOT, S3Emulator, agentEnv, createPgDatabase, createPgFixture, download, dropPgDatabase, makeAgeKey, pgQuery,
  pgTableStats, readerRole, requireAgentBundle, restorePg, runAgent, uniqueName,
} from '../support';
import { Moto, motoBucket, motoName, sharedMoto } from '../support/moto';
import { resolveTokens } from '../support/cfn-tokens';

const SOURCE = 'orders-db';
const SAMPLE_HOST = 'orders-db.replica.example.internal';
const database = uniqueName('wiring_src');
const restored = uniqueName('wiring_restored');


let s3: S3Emulator;
let key: AgeKey;
let moto: Moto;
let secrets: SecretsManagerClient;

beforeAll(async () => {
  requireAgentBundle();
  moto = await sharedMoto();
  secrets = new SecretsManagerClient(moto.config('us-east-1'));
  s3 = await motoBucket({ objectLock: { mode: 'GOVERNANCE', days: 7 } }, moto);
  key = makeAgeKey();
  await createPgFixture(database, { customers: 500 });
});

afterAll(async () => {
  secrets?.destroy();
  await dropPgDatabase(database);
  await dropPgDatabase(restored);
  await pgQuery('postgres', `DROP ROLE IF EXISTS ${readerRole(database)}`);
  await s3?.stop();
});

test('the command and environment from the template, run by the bundled agent, make a valid backup', async () => {
  // Given the source's credentials in a secret on moto, and a synthesized stack given that secret and this test's recipient.
  const created = await secrets.send(new CreateSecretCommand({ Name: motoName('orders-db/backup-user'), SecretString: JSON.stringify({
    engine: 'postgres', host: 'primary.example.invalid', port: 5432, username: PG.user, password: PG.password, dbname: database,
  }) }));
  const { stack, backups } = backupsStack({ recipient: key.recipient });
  const props = postgresSource(stack, SOURCE, { secret: Secret.fromSecretCompleteArn(stack, 'BackupUserSecret', created.ARN!) });
  backups.addSource(props);
  const template = Template.fromStack(stack);

  // When the schedule's overrides and the task definition's environment are taken from the template.
  const [schedule] = Object.values(template.findResources('AWS::Scheduler::Schedule'));
  const taskDefinitionId = schedule.Properties.Target.EcsParameters.TaskDefinitionArn.Ref as string;
  const container = template.toJSON().Resources[taskDefinitionId].Properties.ContainerDefinitions[0];
  const overrides = JSON.parse(resolveTokens(schedule.Properties.Target.Input, {
    StoreBucket: s3.bucket, 'AWS::Partition': 'aws', DatabaseBackupsSources: 'arn:aws:iam::111111111111:role/task',
  }));
  const [containerOverride] = overrides.containerOverrides as { name: string; command: string[]; environment?: { name: string; value: string }[] }[];
  expect(containerOverride.name).toBe(container.Name);
  const environment = Object.fromEntries([...(container.Environment ?? []), ...(containerOverride.environment ?? [])].map((e) => [e.name, e.value]));
  expect(Object.keys(environment).filter((name) => /PASS|PWD|SECRET/i.test(name))).toEqual([]);

  // And the sample endpoint is replaced by the local server. The store has Object Lock, so the template asks for the legal hold.
  expect(containerOverride.command).toContain('--legal-hold');
  const command = containerOverride.command.map((arg) => (arg === SAMPLE_HOST ? PG.host : arg));
  command[command.indexOf('--port') + 1] = String(PG.port);
  const secretId = command[command.indexOf('--secret-id') + 1];
  expect(secretId).toBe(props.secret.secretArn);
  expect(secretId).toBe(created.ARN);
  expect((await secrets.send(new DescribeSecretCommand({ SecretId: secretId }))).Name).toBe(created.Name);

  // Then the agent, started as the image's ENTRYPOINT starts it, exits 0.
  const entrypoint = JSON.parse(/^ENTRYPOINT\s+(.*)$/m.exec(readFileSync(join(REPO_ROOT, 'container/Dockerfile'), 'utf8'))![1]) as string[];
  expect(entrypoint[0]).toBe('node');
  expect(entrypoint[1]).toMatch(/\/restorable\.cjs$/);
  // No PGPASSWORD: the password, like the database name, can only come from the secret on moto.
  const run = await runAgent(command, agentEnv({ ...s3.env, ...environment, AWS_ENDPOINT_URL_SECRETS_MANAGER: moto.endpoint }));
  expect({ code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({ code: 0, stderr: '' });

  // And the store holds a valid backup: the object, its manifest, and latest.json pointing at them.
  const result = JSON.parse(run.stdout) as { key: string; manifestKey: string };
  const prefix = command[command.indexOf('--prefix') + 1];
  expect(result.key.startsWith(`${prefix}${SOURCE}/`)).toBe(true);
  expect(result.manifestKey).toBe(manifestKeyFor(result.key));
  const latest = parseLatest((await s3.getText(latestKey(prefix, SOURCE)))!, 'latest.json');
  const manifest = parseManifest((await s3.getText(result.manifestKey))!, result.manifestKey);
  expect(latest).toMatchObject({ source: SOURCE, key: result.key, manifestKey: result.manifestKey, sha256: manifest.sha256 });
  expect(manifest).toMatchObject({ source: SOURCE, engine: 'postgres', database });
  const stored = await s3.getBytes(result.key);
  expect(createHash('sha256').update(stored).digest('hex')).toBe(manifest.sha256);
  // And the last good backup is held: its dump and manifest carry the legal hold the bucket recorded.
  for (const held of [result.key, result.manifestKey]) {
    expect((await s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: held }))).ObjectLockLegalHoldStatus).toBe('ON');
  }

  // And it restores with standard tools to the same rows.
  await createPgDatabase(restored);
  restorePg(await download(s3, result.key), key.identityFile, restored);
  expect(await pgTableStats(restored)).toEqual(await pgTableStats(database));
});
