/**
 * The constructs' MongoDB wiring and the agent agree: synthesize a MongoDB source whose login is given as the
 * construct's options (`mongodb: { authSource: '$external', authMechanism: PLAIN }`, what the services' FerretDB
 * accepts, as an LDAP user's login would be), take the schedule's command from the template, put the local endpoint
 * in place of the sample one, and run the bundled agent against FerretDB and a bucket on moto's server, the password
 * read from a real secret there that says nothing of the login's mechanism or database. The backup succeeds only if
 * the agent takes the construct's flags: FerretDB refuses the default login (SCRAM against admin), as the control shows.
 */
import { Duration } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { manifestKeyFor, parseManifest } from '../../../lib/contract';
import { SourceEngine } from '../../../lib/backups/backup-source';
import { MongoAuthMechanism } from '../../../lib/backups/mongodb-connection';
import { backupsStack, optionOf, samplePeer } from '../database-backups-fixture';
import {
  AgeKey, MONGO, S3Emulator, agentEnv, createMongoFixture, dropMongoDatabase, makeAgeKey, mongoFixtureCounts, mongoToolsPath, requireAgentBundle,
  runAgent, uniqueName,
} from '../../support';
import { Moto, motoBucket, motoName, sharedMoto } from '../../support/moto';
import { resolveTokens } from '../../support/cfn-tokens';

const SOURCE = 'catalog-db';
const SAMPLE_HOST = 'catalog-db-hidden.example.internal';
const database = uniqueName('mongo_wiring');
const CUSTOMERS = 40;


let s3: S3Emulator;
let key: AgeKey;
let moto: Moto;
let secrets: SecretsManagerClient;

beforeAll(async () => {
  requireAgentBundle();
  moto = await sharedMoto();
  secrets = new SecretsManagerClient(moto.config('us-east-1'));
  // Object Lock, as BackupStore makes it: the template asks for the legal hold on the newest backup.
  s3 = await motoBucket({ objectLock: { mode: 'GOVERNANCE', days: 7 } }, moto);
  key = makeAgeKey();
  await createMongoFixture(database, CUSTOMERS);
});

afterAll(async () => {
  secrets?.destroy();
  await dropMongoDatabase(database);
  await s3?.stop();
});

/** The command of the source's schedule in a stack given the secret and these options, with the local endpoint in it. */
function synthesizedCommand(secretArn: string, mongodb?: { authSource: string; authMechanism: MongoAuthMechanism }): string[] {
  const { stack, backups } = backupsStack({ recipient: key.recipient });
  backups.addSource({
    name: SOURCE, engine: SourceEngine.mongodb('7.0'), secret: Secret.fromSecretCompleteArn(stack, 'BackupUserSecret', secretArn),
    endpoint: { hostname: SAMPLE_HOST, port: 27017 }, peer: samplePeer(stack, SOURCE, 27017), rpo: Duration.hours(4), database, mongodb,
  });
  const [schedule] = Object.values(Template.fromStack(stack).findResources('AWS::Scheduler::Schedule'));
  const overrides = JSON.parse(resolveTokens(schedule.Properties.Target.Input, {
    StoreBucket: s3.bucket, 'AWS::Partition': 'aws', DatabaseBackupsSources: 'arn:aws:iam::111111111111:role/task',
  }));
  const command = (overrides.containerOverrides[0].command as string[]).map((arg) => (arg === SAMPLE_HOST ? MONGO.host : arg));
  command[command.indexOf('--port') + 1] = String(MONGO.port);
  return command;
}

async function secretWithPasswordOnly(): Promise<string> {
  const created = await secrets.send(new CreateSecretCommand({ Name: motoName('catalog-db/backup-user'), SecretString: JSON.stringify({
    engine: 'mongo', host: 'primary.example.invalid', port: 27017, username: MONGO.user, password: MONGO.password,
  }) }));
  return created.ARN!;
}

test('the command from the template, with the source\'s login options, run by the bundled agent, backs up the database', async () => {
  const command = synthesizedCommand(await secretWithPasswordOnly(), { authSource: '$external', authMechanism: MongoAuthMechanism.PLAIN });
  expect([optionOf(command, '--engine'), optionOf(command, '--auth-source'), optionOf(command, '--auth-mechanism')]).toEqual(['mongodb', '$external', 'PLAIN']);

  const run = await runAgent(command, agentEnv({ ...s3.env, PATH: mongoToolsPath(), AWS_ENDPOINT_URL_SECRETS_MANAGER: moto.endpoint }));
  expect({ code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({ code: 0, stderr: '' });

  const result = JSON.parse(run.stdout) as { key: string; manifestKey: string };
  expect(result.manifestKey).toBe(manifestKeyFor(result.key));
  const manifest = parseManifest((await s3.getText(result.manifestKey))!, result.manifestKey);
  expect(manifest).toMatchObject({ source: SOURCE, engine: 'mongodb', database });
  const counts = Object.fromEntries(manifest.tables.map((t) => [t.table, t.rows]));
  expect(counts).toEqual(mongoFixtureCounts(CUSTOMERS));
});

test('control: without the login options, the same secret and server refuse the backup, and nothing is stored for it', async () => {
  const before = await s3.keys(`backups/${SOURCE}/`);
  const command = synthesizedCommand(await secretWithPasswordOnly());
  expect(command.filter((arg) => arg.startsWith('--auth'))).toEqual([]);
  const run = await runAgent(command, agentEnv({ ...s3.env, PATH: mongoToolsPath(), AWS_ENDPOINT_URL_SECRETS_MANAGER: moto.endpoint }));
  expect(run.code).not.toBe(0);
  expect(run.stderr).toMatch(/AuthenticationFailed/);
  expect(await s3.keys(`backups/${SOURCE}/`)).toEqual(before);
});
