/**
 * The wiring and the agent agree: synthesize RestoreTesting, let the orchestrator's own code build one source's
 * run from the configuration synthesized beside it and its environment (the command it passes to RunTask), put the
 * local endpoints in place of the scratch sidecar's, and run the bundled agent with that command against a real
 * backup in the S3 emulator. The
 * identity secret is a real secret in Secrets Manager on moto's server (a name of this run's own), whose ARN
 * the definition is rendered with. `--publish-metrics` is taken out: the metrics, read back from moto's
 * CloudWatch, are restore-test-units' and restore-test-errors' business.
 */
import { App, Stack } from 'aws-cdk-lib';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { BackupKeys, BackupMonitoring, BackupStore, DatabaseBackups, RestoreTesting } from '../../lib';
import { ENV, postgresSource, sampleVpc } from '../lib/database-backups-fixture';
import {
  AgeKey, PG, S3Emulator, agentEnv, createPgDatabase, createPgFixture, dropPgDatabase, makeAgeKey, pgQuery, readerRole, runAgent, startS3rver, uniqueName,
} from '../support';
import { Moto, motoName, sharedMoto } from '../support/moto';
import { OrchestratorSettings, configFromFile, configuredRun } from '../../lambda/restore-test-orchestrator/index';

const SOURCE = 'orders-db';
const REGION = 'eu-west-1';
const database = uniqueName('rtw_src');
const scratch = uniqueName('rtw_scratch');
let s3: S3Emulator;
let key: AgeKey;
let moto: Moto;
/** The identity secret's ARN, as moto made it. */
let identityArn: string;

type Token = string | { Ref?: string; 'Fn::GetAtt'?: [string, string]; 'Fn::Join'?: [string, Token[]] };

/** Renders the definition's tokens: the bucket and the identity secret as this test serves them, the rest as placeholders. */
function render(value: Token, bucket: string): string {
  if (typeof value === 'string') return value;
  if (value['Fn::Join']) return value['Fn::Join'][1].map((part) => render(part, bucket)).join(value['Fn::Join'][0]);
  const name = value.Ref ?? value['Fn::GetAtt']![0];
  if (name.startsWith('StoreBucket')) return bucket;
  if (name.startsWith('KeysIdentity')) return identityArn;
  return `placeholder-${name}`;
}

beforeAll(async () => {
  s3 = await startS3rver('wiring-restore-tests');
  key = makeAgeKey();
  await createPgFixture(database, { customers: 200 });
  await createPgDatabase(scratch);
  moto = await sharedMoto();
  const secrets = new SecretsManagerClient(moto.config(REGION));
  try {
    identityArn = (await secrets.send(new CreateSecretCommand({
      Name: motoName('restorable-identity'), SecretString: readFileSync(key.identityFile, 'utf8'),
    }))).ARN!;
  } finally {
    secrets.destroy();
  }
});

afterAll(async () => {
  await dropPgDatabase(database);
  await dropPgDatabase(scratch);
  await pgQuery('postgres', `DROP ROLE IF EXISTS ${readerRole(database)}`);
  await s3?.stop();
});

test('the command the orchestrator builds from its own configuration, run by the bundled agent, restore-tests the latest backup', async () => {
  // Given a synthesized stack with restore testing of one PostgreSQL source.
  const outdir = mkdtempSync(join(tmpdir(), 'restorable-wiring-'));
  let command: string[];
  try {
    const app = new App({ outdir });
    const stack = new Stack(app, 'Backups', { env: ENV });
    const store = new BackupStore(stack, 'Store', { prefix: 'backups' });
    const keys = new BackupKeys(stack, 'Keys', { replicaRegion: 'eu-central-1', replicaKeyAlias: 'alias/dr-secrets' });
    const monitoring = new BackupMonitoring(stack, 'Monitoring', { store });
    const backups = new DatabaseBackups(stack, 'DatabaseBackups', { store, keys, monitoring, vpc: sampleVpc(stack) });
    const source = backups.addSource(postgresSource(stack, SOURCE));
    new RestoreTesting(stack, 'RestoreTesting', { backups, store, keys, monitoring,
      sources: [{ source, checks: [{ name: 'customers exist', sql: 'SELECT id FROM sales.customers', minRows: 200 }] }] });
    const template = app.synth().getStackByName(stack.stackName).template as { Resources: Record<string, { Type: string; Properties: Record<string, { Variables?: Record<string, Token> } & Record<string, unknown>> }> };
    const orchestrator = Object.values(template.Resources)
      .find((r) => r.Type === 'AWS::Lambda::Function' && r.Properties.Environment?.Variables?.ROLE_ARN_PREFIX)!;
    const env = Object.fromEntries(Object.entries(orchestrator.Properties.Environment.Variables as Record<string, Token>)
      .map(([name, value]) => [name, render(value, s3.bucket)]));
    // The configuration the construct staged beside the handler, as the function will read it.
    const config = configFromFile(join(outdir, `asset.${String(orchestrator.Properties.Code.S3Key).replace(/\.zip$/, '')}`));
    const settings: OrchestratorSettings = {
      cluster: env.CLUSTER_ARN, subnets: [], securityGroups: [], containerName: env.CONTAINER_NAME, maxAttempts: 1, retryBaseMs: 1,
      maxTestSeconds: 60, taskDefinitions: env.TASK_DEFINITIONS.split(','), roleArnPrefix: env.ROLE_ARN_PREFIX, roleNameSuffix: env.ROLE_NAME_SUFFIX ?? '',
      values: Object.fromEntries(Object.entries(env).filter(([name]) => name.startsWith('VALUE_')).map(([name, value]) => [name.slice('VALUE_'.length), value])),
    };
    const item = await configuredRun({ action: 'start', source: SOURCE, copy: 'primary' }, { config, settings, cloudwatch: undefined as never });
    expect(item.taskRoleArn).toContain(`${SOURCE}-`);
    command = [...item.command];
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
  expect(command.slice(0, 3)).toEqual(['restore-test', '--source', SOURCE]);
  expect(command).toEqual(expect.arrayContaining(['--host', '127.0.0.1', '--port', '5432', '--user', 'postgres', '--database', 'restore_test']));

  // And a real backup under the store's prefix, the identity in its secret on moto.
  const backup = await runAgent(['backup', '--source', SOURCE, '--engine', 'postgres', '--bucket', s3.bucket, '--prefix', 'backups',
    '--recipient', key.recipient, '--host', PG.host, '--port', String(PG.port), '--user', PG.user, '--database', database, '--json'],
  agentEnv({ ...s3.env, PGPASSWORD: PG.password }));
  expect(backup.code).toBe(0);
  expect(command[command.indexOf('--identity-secret-id') + 1]).toBe(identityArn);

  // When the agent runs that command, with the local server in place of the sidecar.
  const args = command.filter((a) => a !== '--publish-metrics');
  for (const [flag, value] of Object.entries({ '--host': PG.host, '--port': String(PG.port), '--user': PG.user, '--database': scratch })) {
    args[args.indexOf(flag) + 1] = value;
  }
  // The secret lives in eu-west-1 only, and the agent's AWS_REGION is the emulator's us-east-1: it must read the
  // secret in the region its ARN names, as it reads the DR replica's.
  const run = await runAgent(args, agentEnv({ ...s3.env, PGPASSWORD: PG.password, AWS_ENDPOINT_URL_SECRETS_MANAGER: moto.endpoint }));

  // Then the test passes, with the identity read from the secret, and its report lands under the store's prefix.
  expect(run.stderr).not.toContain('restorable restore-test:');
  expect(run.code).toBe(0);
  const report = JSON.parse(run.stdout);
  expect(report).toMatchObject({ source: SOURCE, success: true, reportKey: expect.stringMatching(/^backups\/orders-db\/restore-tests\//) });
  expect(report.checks).toEqual([expect.objectContaining({ name: 'customers exist', passed: true, actual: 200 })]);
  expect(JSON.parse((await s3.getText('backups/orders-db/restore-tests/latest.json'))!)).toMatchObject({ success: true, finishedAt: report.finishedAt });
});
