/**
 * `--region`: every command that talks to AWS takes it, and its S3, Secrets Manager and CloudWatch clients sign for
 * it. Without it: AWS_REGION, then AWS_DEFAULT_REGION, then the AWS config profile's region. Never a guess: with no
 * region anywhere, the command stops with a usage error before any request. The bundled agent is run against a
 * stand-in for AWS that records the region each request is signed for.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCommandArgs } from '../../container/src/shared/args';
import { awsClients } from '../../container/src/shared/aws';
import { BACKUP_COMMAND } from '../../container/src/commands/backup';
import { LIST_COMMAND } from '../../container/src/commands/list';
import { RESTORE_COMMAND } from '../../container/src/commands/restore';
import { RESTORE_TEST_COMMAND } from '../../container/src/commands/restore-test';
import { RUNBOOK_COMMAND } from '../../container/src/commands/runbook';
import { STATUS_COMMAND } from '../../container/src/commands/status';
import { VERIFY_COMMAND } from '../../container/src/commands/verify';
import { AgeKey, agentEnv, makeAgeKey, requireAgentBundle, runAgent } from '../support';
import { AwsRecorder } from '../support/aws-recorder';

const dir = mkdtempSync(join(tmpdir(), 'region-'));
const NO_CONFIG = join(dir, 'no-config');
const recorder = new AwsRecorder();
let endpoint: string;
let key: AgeKey;

/** The agent's environment: the recorder for every service, and no region unless a test gives one. */
const env = (extra: Record<string, string> = {}) => agentEnv({
  AWS_ENDPOINT_URL: endpoint, AWS_ENDPOINT_URL_S3: endpoint, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test',
  AWS_CONFIG_FILE: NO_CONFIG, AWS_SHARED_CREDENTIALS_FILE: join(dir, 'no-credentials'), AWS_EC2_METADATA_DISABLED: 'true', ...extra,
});

const list = (extra: string[], environment: NodeJS.ProcessEnv) =>
  runAgent(['list', '--source', 'orders-db', '--bucket', 'backups', ...extra], environment);

beforeAll(async () => {
  requireAgentBundle();
  endpoint = await recorder.start();
  key = makeAgeKey();
});

afterAll(async () => {
  await recorder.stop();
  rmSync(dir, { recursive: true, force: true });
  if (key) rmSync(key.dir, { recursive: true, force: true });
});

beforeEach(() => { recorder.requests.length = 0; });

test('--region is what the S3 client signs for, over AWS_REGION', async () => {
  const run = await list(['--region', 'eu-central-1'], env({ AWS_REGION: 'us-west-2', AWS_DEFAULT_REGION: 'us-west-2' }));
  expect({ code: run.code, stdout: run.stdout, stderr: run.stderr }).toEqual({ code: 0, stdout: 'no backups\n', stderr: '' });
  expect(recorder.regions('s3')).toEqual(['eu-central-1', 'eu-central-1']);
});

test('without --region, AWS_REGION is honoured', async () => {
  const run = await list([], env({ AWS_REGION: 'ap-southeast-2', AWS_DEFAULT_REGION: 'us-west-2' }));
  expect(run.code).toBe(0);
  expect(recorder.regions('s3')).toEqual(['ap-southeast-2', 'ap-southeast-2']);
});

test('then AWS_DEFAULT_REGION, then the AWS config profile\'s region', async () => {
  expect((await list([], env({ AWS_DEFAULT_REGION: 'sa-east-1' }))).code).toBe(0);
  expect(recorder.regions('s3')).toEqual(['sa-east-1', 'sa-east-1']);

  recorder.requests.length = 0;
  const config = join(dir, 'config');
  writeFileSync(config, '[default]\nregion = eu-west-3\n\n[profile dr]\nregion = eu-south-1\naws_access_key_id = test\naws_secret_access_key = test\n');
  expect((await list([], env({ AWS_CONFIG_FILE: config }))).code).toBe(0);
  // A named profile brings its own credentials (the SDK prefers them to the variables, and warns when both are set).
  const withProfile = env({ AWS_CONFIG_FILE: config, AWS_PROFILE: 'dr' });
  delete withProfile.AWS_ACCESS_KEY_ID;
  delete withProfile.AWS_SECRET_ACCESS_KEY;
  expect(await list([], withProfile)).toMatchObject({ code: 0, stderr: '' });
  expect(recorder.regions('s3')).toEqual(['eu-west-3', 'eu-west-3', 'eu-south-1', 'eu-south-1']);
});

test('no region anywhere: a usage error naming --region and AWS_REGION, and no request at all (never a silent us-east-1)', async () => {
  for (const command of [['list', '--source', 'orders-db'], ['status'], ['runbook', '--source', 'orders-db']]) {
    const run = await runAgent([...command, '--bucket', 'backups'], env());
    expect({ code: run.code, stdout: run.stdout, stderr: run.stderr }).toEqual({
      code: 2, stdout: '',
      stderr: `restorable ${command[0]}: no AWS region: give --region REGION or set AWS_REGION, the region of the bucket and the secrets ` +
        '(AWS_DEFAULT_REGION and the AWS config profile\'s region are read too)\n',
    });
  }
  expect(recorder.requests).toEqual([]);
});

test('a --region that is no region is a usage error', async () => {
  const run = await list(['--region', 'eu west 1'], env());
  expect(run.code).toBe(2);
  expect(run.stderr).toBe('restorable list: --region must be an AWS region such as eu-west-1 (got \'eu west 1\')\n');
  expect(recorder.requests).toEqual([]);
});

test('the identity secret is read in --region, or in the region its ARN names (a DR replica\'s)', async () => {
  const byName = await runAgent(['verify', '--source', 'orders-db', '--bucket', 'backups', '--identity-secret-id', 'restorable/identity',
    '--region', 'eu-central-1'], env({ AWS_REGION: 'us-west-2' }));
  expect(byName.code).toBe(1);
  expect(byName.stderr).toContain('restorable verify: could not read the identity secret \'restorable/identity\'');
  const arn = 'arn:aws:secretsmanager:eu-west-2:123456789012:secret:restorable/identity-AbCdEf';
  await runAgent(['verify', '--source', 'orders-db', '--bucket', 'backups', '--identity-secret-id', arn, '--region', 'eu-central-1'], env());
  expect(recorder.regions('secretsmanager')).toEqual(['eu-central-1', 'eu-west-2']);
});

test('a restore test\'s S3 and CloudWatch requests are signed for --region', async () => {
  const run = await runAgent(['restore-test', '--source', 'orders-db', '--bucket', 'backups', '--identity-file', key.identityFile,
    '--database', 'scratch', '--publish-metrics', '--region', 'eu-north-1', '--json'], env({ AWS_REGION: 'us-west-2' }));
  // Nothing to restore here (the stand-in has no backup): the test fails, and reports and publishes that.
  expect(run.code).toBe(1);
  expect(new Set(recorder.requests.map((r) => `${r.service} ${r.region}`))).toEqual(new Set(['s3 eu-north-1', 'monitoring eu-north-1']));
});

test('every command takes --region, from one definition', async () => {
  for (const spec of [BACKUP_COMMAND, LIST_COMMAND, VERIFY_COMMAND, RESTORE_COMMAND, RESTORE_TEST_COMMAND, STATUS_COMMAND, RUNBOOK_COMMAND]) {
    expect(spec.options.region).toBe(LIST_COMMAND.options.region);
    const help = await runAgent([spec.name, '--help'], env());
    expect(help.stdout).toMatch(/^ {2}--region REGION {2,}AWS region of the bucket, secrets and metrics \(default: AWS_REGION, AWS_DEFAULT_REGION/m);
  }
});

test('the clients a command gets: all in its region, a secret ARN\'s own region for that secret', async () => {
  const args = parseCommandArgs(RESTORE_TEST_COMMAND, ['--source', 'orders-db', '--bucket', 'backups', '--region', 'ca-central-1']);
  const aws = await awsClients(args, {});
  expect(aws.region).toBe('ca-central-1');
  expect(await aws.s3.config.region()).toBe('ca-central-1');
  expect(await aws.cloudwatch().config.region()).toBe('ca-central-1');
  expect(await aws.secrets('restorable/identity').config.region()).toBe('ca-central-1');
  expect(await aws.secrets('arn:aws:secretsmanager:eu-west-2:123456789012:secret:x-AbCdEf').config.region()).toBe('eu-west-2');
  expect(await (await awsClients(parseCommandArgs(STATUS_COMMAND, ['--bucket', 'b']), { AWS_DEFAULT_REGION: 'me-south-1' })).s3.config.region())
    .toBe('me-south-1');
});
