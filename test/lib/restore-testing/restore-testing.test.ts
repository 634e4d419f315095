/**
 * RestoreTesting's template: the restore-test task definitions (scratch sidecar, its health check, the HEALTHY
 * dependency, essential flags), the restore roles, the schedules and the state machine with its orchestrator,
 * the alarms and the dashboard widgets; cdk-nag clean with a reason for every acknowledgement.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App, Duration, NestedStack, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import { AwsSolutionsChecks } from 'cdk-nag';
import { BackupKeys, BackupMonitoring, BackupStore, DatabaseBackups, ReplicaStore, RestoreTesting, RowCountTolerance } from '../../../lib';
import { OrchestratorConfig } from '../../../lib/restore-testing/orchestrator-config';
import { ENV, mariadbSource, postgresSource, samplePeer, sampleVpc } from '../database-backups-fixture';

interface Options {
  readonly nag?: boolean;
  readonly dr?: boolean;
  readonly perSourceAlarms?: boolean;
  readonly schedule?: events.Schedule;
  readonly logRetention?: logs.RetentionDays;
}

function restoreTestingStack(options: Options = {}) {
  const app = new App();
  if (options.nag) Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  const replicaStack = options.dr ? new Stack(app, 'Replica', { env: { ...ENV, region: 'eu-central-1' } }) : undefined;
  const replica = replicaStack ? new ReplicaStore(replicaStack, 'Replica', { prefix: 'backups' }) : undefined;
  const stack = new Stack(app, 'Backups', { env: ENV });
  const store = new BackupStore(stack, 'Store', { prefix: 'backups', replica });
  const keys = new BackupKeys(stack, 'Keys', { replicaRegion: 'eu-central-1', replicaKeyAlias: replica?.keyAliasName ?? 'alias/dr-secrets' });
  const monitoring = new BackupMonitoring(stack, 'Monitoring', { store });
  const backups = new DatabaseBackups(stack, 'DatabaseBackups', { store, keys, monitoring, vpc: sampleVpc(stack) });
  const orders = backups.addSource(postgresSource(stack, 'orders-db'));
  const billing = backups.addSource(postgresSource(stack, 'billing-db'));
  const shop = backups.addSource(mariadbSource(stack, 'shop-db', { scratchImage: ecs.ContainerImage.fromRegistry('mariadb:10.11') }));
  const testing = new RestoreTesting(stack, 'RestoreTesting', {
    backups, store, keys, monitoring, maxConcurrency: 3, schedule: options.schedule, perSourceAlarms: options.perSourceAlarms, logRetention: options.logRetention,
    drSchedule: options.dr ? events.Schedule.cron({ day: '1', hour: '4', minute: '0' }) : undefined,
    sources: [
      { source: orders, rtoTarget: Duration.hours(2),
        checks: [{ name: 'orders exist', sql: 'SELECT id FROM sales.orders LIMIT 10', minRows: 10 }], tolerance: RowCountTolerance.percent(0.5) },
      { source: billing },
      { source: shop },
    ],
  });
  return { app, stack, store, keys, monitoring, backups, testing };
}

const fixture = restoreTestingStack();
const template = Template.fromStack(fixture.stack);

/** The nested stacks of a RestoreTesting: its restore-test roles. */
function nestedStacks(testing: RestoreTesting): NestedStack[] {
  return testing.node.findAll().filter((c): c is NestedStack => NestedStack.isNestedStack(c));
}

/** The orchestrator's configuration, as synthesized beside its handler (after the app has synthesized). */
function orchestratorConfig(app: App, testing: RestoreTesting): OrchestratorConfig {
  const asset = testing.node.findChild('Orchestration').node.findChild('Code') as s3assets.Asset;
  return JSON.parse(readFileSync(join(app.outdir, asset.assetPath, 'config.json'), 'utf8'));
}
const id = (construct: { node: { defaultChild?: unknown } }) => fixture.stack.getLogicalId(construct.node.defaultChild as never);

/** The restore-test task definitions: those with a scratch container. */
function restoreTestTaskDefinitions() {
  return Object.values(template.findResources('AWS::ECS::TaskDefinition'))
    .map((r) => r.Properties.ContainerDefinitions as Record<string, unknown>[])
    .filter((containers) => containers.some((c) => c.Name === 'scratch'));
}

describe('given three sources, two PostgreSQL 16 and one MariaDB 10.11', () => {
  test('then there is one restore-test task definition per scratch image: postgres:16 and mariadb:10.11', () => {
    const images = restoreTestTaskDefinitions().map((containers) => containers.find((c) => c.Name === 'scratch')!.Image as string);
    expect(images.sort()).toEqual(['mariadb:10.11', expect.stringMatching(/(^|\/)postgres[:@]/)]);
  });

  test('then the scratch sidecar is health-checked, not essential, and the essential agent waits for it to be HEALTHY', () => {
    template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      RequiresCompatibilities: ['FARGATE'],
      Cpu: '1024',
      Memory: '4096',
      ContainerDefinitions: Match.arrayWith([
        Match.objectLike({
          Name: 'scratch',
          Image: Match.stringLikeRegexp('postgres'),
          Essential: false,
          Environment: [{ Name: 'POSTGRES_HOST_AUTH_METHOD', Value: 'trust' }, { Name: 'POSTGRES_DB', Value: 'restore_test' }],
          HealthCheck: { Command: ['CMD-SHELL', 'pg_isready -h 127.0.0.1 -p 5432 -U postgres -d restore_test'], Interval: 10, Timeout: 5, Retries: 6, StartPeriod: 60 },
        }),
        Match.objectLike({
          Name: 'agent',
          Essential: true,
          StartTimeout: 600,
          DependsOn: [{ ContainerName: 'scratch', Condition: 'HEALTHY' }],
        }),
      ]),
    });
    template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      ContainerDefinitions: Match.arrayWith([Match.objectLike({
        Name: 'scratch', Image: 'mariadb:10.11', Essential: false,
        HealthCheck: Match.objectLike({ Command: ['CMD-SHELL', 'healthcheck.sh --connect --innodb_initialized'] }),
      })]),
    });
  });

  test('then nothing is kept: no volume outlives a task', () => {
    for (const r of Object.values(template.findResources('AWS::ECS::TaskDefinition'))) {
      expect(r.Properties.Volumes ?? []).toEqual([]);
    }
  });

  test('then each source has a role of its own, in a nested stack, that reads its backups alone and the identity, writes only its restore-test reports, and publishes only Restorable metrics', () => {
    const [nested, ...others] = nestedStacks(fixture.testing);
    expect(others).toEqual([]); // three sources, one nested stack of up to 25
    const t = Template.fromStack(nested);
    const roles = t.findResources('AWS::IAM::Role', { Properties: { Path: Match.stringLikeRegexp('^/restorable/restore-test/[A-Za-z0-9]+/$') } });
    expect(Object.keys(roles)).toHaveLength(3);
    // None in the parent, and nothing of the nested stack in the parent: no outputs.
    expect(template.findResources('AWS::IAM::Role', { Properties: { Path: Match.stringLikeRegexp('^/restorable/restore-test/') } })).toEqual({});
    expect(t.toJSON().Outputs ?? {}).toEqual({});
    const sources = ['orders-db', 'billing-db', 'shop-db'];
    for (const source of sources) {
      const [roleId, role] = Object.entries(roles).find(([, r]) => JSON.stringify(r.Properties.Description).includes(`'${source}'`))!;
      // Named, so that the orchestrator knows its ARN without a reference: {source}-{hash}-{region}.
      expect(role.Properties.RoleName).toEqual({ 'Fn::Join': ['', [expect.stringMatching(new RegExp(`^${source}-[0-9a-f]{8}-$`)), { Ref: 'AWS::Region' }]] });
      const policies = Object.values(t.findResources('AWS::IAM::Policy')).filter((p) => JSON.stringify(p.Properties.Roles) === JSON.stringify([{ Ref: roleId }]));
      expect(policies).toHaveLength(1);
      const policy = JSON.stringify(policies[0].Properties.PolicyDocument);
      expect(policy).toContain(`/backups/${source}/*`);
      expect(policy).toContain(`/backups/${source}/restore-tests/*`);
      for (const other of sources.filter((o) => o !== source)) expect(policy).not.toContain(`/${other}/`);
      const statements = policies[0].Properties.PolicyDocument.Statement as { Action: string | string[]; Resource: unknown }[];
      const actions = statements.flatMap((st) => [st.Action].flat());
      expect(actions).toEqual(expect.arrayContaining(['s3:GetObject', 's3:PutObject', 'secretsmanager:GetSecretValue', 'cloudwatch:PutMetricData', 'kms:Decrypt']));
      expect(actions.filter((a) => /Delete|PutObjectRetention|PutBucket/.test(a))).toEqual([]);
      const puts = statements.filter((st) => [st.Action].flat().includes('s3:PutObject'));
      expect(JSON.stringify(puts)).not.toMatch(/\/backups\/[a-z-]+\/\*"/); // writes only under restore-tests/
    }
    // The identity secret's deny exempts the roles by their path, and neither it nor the identity key's policy names a role.
    const secretPolicy = Object.values(template.findResources('AWS::SecretsManager::ResourcePolicy'))[0].Properties.ResourcePolicy;
    const readDeny = secretPolicy.Statement.find((st: { Sid?: string }) => st.Sid === 'OnlyRestoreRolesReadTheIdentity');
    expect(readDeny.Condition.ArnNotLike['aws:PrincipalArn']).toEqual([
      { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:iam::111111111111:role${Object.values(roles)[0].Properties.Path}*`]] },
    ]);
    const keyPolicy = JSON.stringify(template.findResources('AWS::KMS::Key', { Properties: { Description: Match.stringLikeRegexp('age identity') } }));
    expect(keyPolicy).not.toMatch(/NestedStack|Roles1/);
  });

  test('then the parent passes the nested stack nothing but the few values its roles read, and refers to nothing in it', () => {
    const [nested] = nestedStacks(fixture.testing);
    const resource = template.toJSON().Resources[fixture.stack.getLogicalId(nested.nestedStackResource as never)];
    expect(resource.Type).toBe('AWS::CloudFormation::Stack');
    expect(Object.keys(resource.Properties.Parameters ?? {}).length).toBeLessThanOrEqual(6);
    expect(JSON.stringify(template.toJSON())).not.toContain('.Outputs.');
  });

  test('then a weekly schedule starts the state machine, whose Map runs at most maxConcurrency tests', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'cron(0 3 ? * SUN *)',
      Targets: [Match.objectLike({ Arn: { Ref: id(fixture.testing.stateMachine) }, Input: '{"copy":"primary"}' })],
    });
    const definition = JSON.stringify(template.findResources('AWS::StepFunctions::StateMachine'));
    expect(definition).toContain('\\"MaxConcurrency\\":3');
    expect(definition).toContain('\\"ItemsPath\\":\\"$.sources\\"');
    // The state machine names the sources and the copy, nothing more: no command, role or task definition.
    for (const source of ['orders-db', 'billing-db', 'shop-db']) expect(definition).toContain(`{\\"source\\":\\"${source}\\",\\"copy\\":\\"primary\\"}`);
    expect(definition).not.toMatch(/--checks-json|taskRoleArn|taskDefinition|restore-test\\\\"/);
  });

  test('then the orchestrator\'s own configuration holds each source\'s task definition, role and command', () => {
    const config = orchestratorConfig(fixture.app, fixture.testing);
    expect(Object.keys(config.sources)).toEqual(['orders-db', 'billing-db', 'shop-db']);
    const orders = config.sources['orders-db'];
    expect(orders.role).toMatch(/^orders-db-[0-9a-f]{8}$/);
    expect(Object.keys(orders.commands)).toEqual(['primary']);
    expect(orders.commands.primary).toEqual(expect.arrayContaining(['restore-test', '--source', 'orders-db', '--bucket', '{{BUCKET}}',
      '--identity-secret-id', '{{IDENTITY}}', '--tolerance', '0.5%', '--rto-seconds', '7200', '--publish-metrics']));
    expect(orders.commands.primary!.join(' ')).toContain('--checks-json [{"name":"orders exist"');
    // Sources of one engine share a task definition; the other engine has its own.
    expect(config.sources['billing-db'].taskDefinition).toBe(orders.taskDefinition);
    expect(config.sources['shop-db'].taskDefinition).not.toBe(orders.taskDefinition);
    const env = Object.values(template.findResources('AWS::Lambda::Function'))
      .map((f) => f.Properties.Environment?.Variables).find((v) => v?.CONTAINER_NAME === 'agent');
    expect(Object.keys(env).sort()).toEqual(['CLUSTER_ARN', 'CONTAINER_NAME', 'MAX_TEST_SECONDS', 'ROLE_ARN_PREFIX', 'ROLE_NAME_SUFFIX',
      'SECURITY_GROUP_IDS', 'SUBNET_IDS', 'TASK_DEFINITIONS', 'VALUE_BUCKET', 'VALUE_IDENTITY']);
    expect(env.ROLE_NAME_SUFFIX).toEqual({ 'Fn::Join': ['', ['-', { Ref: 'AWS::Region' }]] });
  });

  test('then each source is started, then its task is polled until it stops; a test that could not start ends its branch', () => {
    type Part = string | { 'Fn::Join'?: [string, Part[]] };
    const render = (p: Part): string => (typeof p === 'string' ? p : p['Fn::Join'] ? p['Fn::Join'][1].map(render).join('') : 'TOKEN');
    const machine = Object.values(template.findResources('AWS::StepFunctions::StateMachine'))[0];
    const definition = JSON.parse(render(machine.Properties.DefinitionString));
    expect(definition.TimeoutSeconds).toBe(2 * 86400);
    expect(definition.States.WhichCopy.Default).toBe('PrimarySources');
    const map = definition.States.TestEachSource;
    expect(map).toMatchObject({ Type: 'Map', MaxConcurrency: 3, ItemsPath: '$.sources' });
    const states = map.ItemProcessor.States;
    // Distributed: each source is a child execution with its own history, so long restores' polling cannot fill one.
    expect(map.ItemProcessor.ProcessorConfig).toEqual({ Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' });
    expect(map.ItemProcessor.StartAt).toBe('StartTest');
    expect(states.StartTest.Parameters).toEqual({ 'action': 'start', 'source.$': '$.source', 'copy.$': '$.copy' });
    expect(states.StartTest.Next).toBe('Started?');
    expect(states['Started?']).toMatchObject({ Choices: [{ Variable: '$.started', BooleanEquals: true, Next: 'WaitForTask' }], Default: 'TestDone' });
    expect(states.WaitForTask).toMatchObject({ Type: 'Wait', Seconds: 120, Next: 'CheckTask' });
    expect(states.CheckTask.Parameters).toMatchObject({ 'action': 'check', 'taskArn.$': '$.taskArn' });
    expect(states['Stopped?']).toMatchObject({ Choices: [{ Variable: '$.stopped', BooleanEquals: true, Next: 'TestDone' }], Default: 'WaitForTask' });
    // RunTask's errors are retried inside the orchestrator; any other error is retried, then reported for its source only.
    for (const step of [states.StartTest, states.CheckTask]) {
      expect(step.Retry).toEqual(expect.arrayContaining([{ ErrorEquals: ['States.ALL'], IntervalSeconds: 30, MaxAttempts: 4, BackoffRate: 2 }]));
      // A refusal is never retried: the source's run fails with the orchestrator's message.
      expect(step.Retry).toEqual(expect.arrayContaining([{ ErrorEquals: ['RestoreTestRefused'], MaxAttempts: 0 }]));
      expect(step.Catch).toEqual([
        { ErrorEquals: ['RestoreTestRefused'], ResultPath: '$.error', Next: 'Refused' },
        { ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'ReportFailure' },
      ]);
    }
    expect(states.Refused).toEqual({ Type: 'Fail', Comment: 'The orchestrator refused its input', ErrorPath: '$.error.Error', CausePath: '$.error.Cause' });
    expect(states.ReportFailure).toMatchObject({ Parameters: { 'action': 'failed', 'source.$': '$.source', 'error.$': '$.error' }, Next: 'TestDone' });
  });

  test('then the orchestrator may run only the restore-test task definitions in the cluster and pass only their roles', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs22.x',
      Environment: { Variables: Match.objectLike({ CONTAINER_NAME: 'agent', MAX_TEST_SECONDS: '43200', SUBNET_IDS: 'subnet-0a1b2c3d4e5f60001,subnet-0a1b2c3d4e5f60002' }) },
    });
    const policies = JSON.stringify(template.findResources('AWS::IAM::Policy'));
    expect(policies).toContain('"ecs:RunTask"');
    expect(policies).toContain('"ecs:cluster"');
    expect(policies).toContain('"iam:PassedToService":"ecs-tasks.amazonaws.com"');
    // The restore-test roles' own folder under the restore-test path, which the bucket policy lets write reports.
    const [role] = Object.values(Template.fromStack(nestedStacks(fixture.testing)[0])
      .findResources('AWS::IAM::Role', { Properties: { Path: Match.stringLikeRegexp('^/restorable/restore-test/') } }));
    expect(role.Properties.Path).toMatch(/^\/restorable\/restore-test\/[A-Za-z0-9]+\/$/);
    expect(policies).toContain(`:role${role.Properties.Path}*`);
  });

  test('then the alarms: a failed test, an overdue test (8 days, missing data breaching), the orchestration, and the RTO target', () => {
    const topic = { Ref: fixture.stack.getLogicalId(fixture.monitoring.topic.node.defaultChild as never) };
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'RestoreTestSuccess', Namespace: 'Restorable', Statistic: 'Minimum', Threshold: 1, ComparisonOperator: 'LessThanThreshold',
      Dimensions: Match.absent(), TreatMissingData: 'ignore', AlarmActions: [topic],
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'RestoreTestAgeSeconds', Threshold: 8 * 86400, ComparisonOperator: 'GreaterThanThreshold', TreatMissingData: 'breaching', AlarmActions: [topic],
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Metrics: Match.arrayWith([Match.objectLike({ Expression: 'FILL(notStarted, 0) + FILL(failed, 0) + FILL(timedOut, 0)' })]),
      Threshold: 0, TreatMissingData: 'notBreaching', AlarmActions: [topic],
    });
    // The RTO target travels to the agent, which publishes the duration over it; one fleet alarm watches every target.
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'RestoreDurationOverRto', Dimensions: Match.absent(), Statistic: 'Maximum', Threshold: 1, ComparisonOperator: 'GreaterThanThreshold',
    });
    expect(orchestratorConfig(fixture.app, fixture.testing).sources['orders-db'].commands.primary).toEqual(expect.arrayContaining(['--rto-seconds', '7200']));
    // Fleet alarms by default: no per-source alarms.
    expect(Object.values(template.findResources('AWS::CloudWatch::Alarm')).filter((a) => JSON.stringify(a).includes('"Source"'))).toEqual([]);
  });

  test('then the dashboard gains each source\'s restore duration and last result, and the restore-test alarms', () => {
    const body = JSON.stringify(template.findResources('AWS::CloudWatch::Dashboard'));
    for (const source of ['orders-db', 'billing-db', 'shop-db']) {
      expect(body).toContain(`${source}: restore duration (s)`);
      expect(body).toContain(`${source}: last restore test (1 = passed)`);
    }
    expect(body).toContain('RTO target');
    expect(body).toContain('Restore-test alarms');
  });
});

describe('restore-test logs', () => {
  const logGroups = (t: Template) => Object.entries(t.findResources('AWS::Logs::LogGroup'))
    .filter(([, g]) => JSON.stringify(g.Properties.LogGroupName ?? '').startsWith('"/restorable/restore-tests/'));

  test('go to a log group of their own, kept 30 days, encrypted with a key of its own that only CloudWatch Logs, for that log group, may use', () => {
    const groups = logGroups(template);
    expect(groups).toHaveLength(1);
    const [groupId, group] = groups[0];
    expect(group.Properties.RetentionInDays).toBe(30);
    const keyId = group.Properties.KmsKeyId['Fn::GetAtt'][0];
    const key = template.toJSON().Resources[keyId];
    expect(key.Properties.EnableKeyRotation).toBe(true);
    const logsStatement = key.Properties.KeyPolicy.Statement.find((st: { Sid?: string }) => st.Sid === 'CloudWatchLogsOfTheRestoreTestsOnly');
    expect(logsStatement).toMatchObject({
      Effect: 'Allow', Principal: { Service: 'logs.eu-west-1.amazonaws.com' }, Resource: '*',
      Condition: { ArnEquals: { 'kms:EncryptionContext:aws:logs:arn': { 'Fn::Join': ['', expect.arrayContaining([`:logs:eu-west-1:111111111111:log-group:${group.Properties.LogGroupName}`])] } } },
    });
    // Both containers of every restore-test task log there, never to the backup log group.
    for (const containers of restoreTestTaskDefinitions()) {
      for (const container of containers) {
        expect([container.Name, (container.LogConfiguration as { Options: Record<string, unknown> }).Options['awslogs-group']]).toEqual([container.Name, { Ref: groupId }]);
      }
    }
  });

  test('are kept as long as logRetention says', () => {
    const { stack } = restoreTestingStack({ logRetention: logs.RetentionDays.ONE_WEEK });
    expect(logGroups(Template.fromStack(stack))[0][1].Properties.RetentionInDays).toBe(7);
  });
});

test('given 27 sources, the last added with addSource after the rest, then a second nested stack holds the roles of the 26th and 27th, and the orchestrator knows every source', () => {
  const app = new App();
  const stack = new Stack(app, 'Many', { env: ENV });
  const store = new BackupStore(stack, 'Store');
  const keys = new BackupKeys(stack, 'Keys', { replicaRegion: 'eu-central-1', replicaKeyAlias: 'alias/dr-secrets' });
  const monitoring = new BackupMonitoring(stack, 'Monitoring', { store });
  const backups = new DatabaseBackups(stack, 'DatabaseBackups', { store, keys, monitoring, vpc: sampleVpc(stack) });
  for (let i = 1; i <= 26; i++) backups.addSource(postgresSource(stack, `db-${i}`));
  const testing = new RestoreTesting(stack, 'RestoreTesting', { backups, store, keys, monitoring });
  testing.addSource({ source: backups.addSource(postgresSource(stack, 'late-db')) });
  const t = Template.fromStack(stack);
  const nested = nestedStacks(testing);
  expect(nested.map((n) => Object.keys(Template.fromStack(n).findResources('AWS::IAM::Role')).length)).toEqual([25, 2]);
  expect(Object.keys(orchestratorConfig(app, testing).sources)).toHaveLength(27);
  expect(orchestratorConfig(app, testing).sources['late-db'].role).toMatch(/^late-db-[0-9a-f]{8}$/);
  // A run starts only once both nested stacks (every role it may pass) exist.
  const machine = Object.values(t.findResources('AWS::StepFunctions::StateMachine'))[0];
  expect(machine.DependsOn).toEqual(expect.arrayContaining(nested.map((n) => stack.getLogicalId(n.nestedStackResource as never))));
});

test('grantRunNow lets a role start the state machine, and nothing more', () => {
  const { stack, testing } = restoreTestingStack();
  const operator = new iam.Role(stack, 'Operator', { assumedBy: new iam.AccountRootPrincipal() });
  testing.grantRunNow(operator);
  Template.fromStack(stack).hasResourceProperties('AWS::IAM::Policy', {
    Roles: [{ Ref: stack.getLogicalId(operator.node.defaultChild as never) }],
    PolicyDocument: { Statement: [{ Action: 'states:StartExecution', Effect: 'Allow', Resource: { Ref: stack.getLogicalId(testing.stateMachine.node.defaultChild as never) } }] },
  });
});

test('given perSourceAlarms, then each source has its own failed-test alarm', () => {
  const { stack } = restoreTestingStack({ perSourceAlarms: true, schedule: events.Schedule.cron({ weekDay: 'WED', hour: '1', minute: '30' }) });
  const t = Template.fromStack(stack);
  for (const source of ['orders-db', 'billing-db', 'shop-db']) {
    t.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'RestoreTestSuccess', Dimensions: [{ Name: 'Source', Value: source }] });
  }
  t.hasResourceProperties('AWS::CloudWatch::Alarm', {
    MetricName: 'RestoreDurationSeconds', Dimensions: [{ Name: 'Source', Value: 'orders-db' }], Threshold: 7200, ComparisonOperator: 'GreaterThanThreshold',
  });
  t.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'cron(30 1 ? * WED *)' });
});

test('given a DR schedule, then a monthly run reads the replica bucket and the identity secret\'s replica', () => {
  const { app, stack, testing } = restoreTestingStack({ dr: true });
  const t = Template.fromStack(stack);
  t.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'cron(0 4 1 * ? *)', Targets: [Match.objectLike({ Input: '{"copy":"dr"}' })] });
  const definition = JSON.stringify(t.findResources('AWS::StepFunctions::StateMachine'));
  expect(definition).toContain('{\\"source\\":\\"orders-db\\",\\"copy\\":\\"dr\\"}');
  const { primary, dr } = orchestratorConfig(app, testing).sources['orders-db'].commands;
  expect(dr).toEqual(expect.arrayContaining(['--bucket', '{{DR_BUCKET}}', '--bucket-region', 'eu-central-1', '--identity-secret-id', '{{DR_IDENTITY}}']));
  // Replication keeps keys as they are: the DR run reads the same prefix, and its role may read it in the replica.
  for (const command of [primary!, dr!]) expect(command.join(' ')).toContain('--prefix backups/');
  const env = Object.values(t.findResources('AWS::Lambda::Function')).map((f) => f.Properties.Environment?.Variables).find((v) => v?.CONTAINER_NAME === 'agent');
  expect(JSON.stringify(env.VALUE_DR_IDENTITY)).toContain('eu-central-1');
  const policies = JSON.stringify(Template.fromStack(nestedStacks(testing)[0]).findResources('AWS::IAM::Policy'));
  expect(policies).toMatch(/replica[^"]*\/backups\/orders-db\/\*/i);
});

test.each([
  ['the defaults', {}],
  ['a DR schedule and per-source alarms', { dr: true, perSourceAlarms: true }],
])('cdk-nag finds nothing unacknowledged with %s', (_, options: Options) => {
  const { app } = restoreTestingStack({ nag: true, ...options });
  expect(() => app.synth()).not.toThrow();
});

describe('bad input is refused in words that say how to fix it', () => {
  test('a maxConcurrency of 0', () => {
    const app = new App();
    const stack = new Stack(app, 'S', { env: ENV });
    const store = new BackupStore(stack, 'Store');
    const keys = new BackupKeys(stack, 'Keys', { replicaRegion: 'eu-central-1', replicaKeyAlias: 'alias/dr-secrets' });
    const monitoring = new BackupMonitoring(stack, 'Monitoring', { store });
    const backups = new DatabaseBackups(stack, 'DatabaseBackups', { store, keys, monitoring, vpc: sampleVpc(stack) });
    expect(() => new RestoreTesting(stack, 'RT', { backups, store, keys, monitoring, maxConcurrency: 0 }))
      .toThrow('maxConcurrency must be a whole number from 1 to 40 (got 0)');
    const source = backups.addSource(postgresSource(stack, 'orders-db'));
    expect(() => new RestoreTesting(stack, 'RT2', { backups, store, keys, monitoring, sources: [{ source, checks: [{ name: 'x', sql: 'SELECT 1', minRows: 1, equals: '1' }] }] }))
      .toThrow("S/RT2: source 'orders-db': check 'x' must have exactly one of minRows, equals and maxAge (it has 2)");
    expect(() => new RestoreTesting(stack, 'RT4', { backups, store, keys, monitoring, maxTestDuration: Duration.days(3) }))
      .toThrow('S/RT4: maxTestDuration must be whole seconds from 15 minutes to 24 hours (got 3 days)');
    expect(() => new RestoreTesting(stack, 'RT5', { backups, store, keys, monitoring, cpu: 1024, memoryLimitMiB: 1024 }))
      .toThrow("the restore-test task's size: memoryLimitMiB 1024 does not suit cpu 1024: Fargate allows 2048 to 8192 in steps of 1024");
    expect(() => new RestoreTesting(stack, 'RT3', { backups, store, keys, monitoring, drSchedule: events.Schedule.rate(Duration.days(30)) }))
      .toThrow('drSchedule tests the DR copy, but the store has no replica');
  });
});

test('given restore tests, then their tasks run in a security group of their own that no database admits, and that can use the VPC endpoints', () => {
  const app = new App();
  const stack = new Stack(app, 'Isolated', { env: ENV });
  const store = new BackupStore(stack, 'Store', {});
  const keys = new BackupKeys(stack, 'Keys', { replicaRegion: 'eu-central-1', replicaKeyAlias: 'alias/dr-secrets' });
  const monitoring = new BackupMonitoring(stack, 'Monitoring', { store });
  const backups = new DatabaseBackups(stack, 'DatabaseBackups', { store, keys, monitoring, vpc: sampleVpc(stack, true), vpcEndpoints: true });
  backups.addSource({ ...postgresSource(stack, 'orders-db'), peer: samplePeer(stack, 'OrdersDb', 5432) });
  const testing = new RestoreTesting(stack, 'RestoreTesting', { backups, store, keys, monitoring });
  const t = Template.fromStack(stack);
  const groupId = stack.getLogicalId(testing.securityGroup.node.defaultChild as never);
  expect(groupId).not.toBe(stack.getLogicalId(backups.securityGroup.node.defaultChild as never));
  // The orchestrator starts the tasks in the restore-test group.
  t.hasResourceProperties('AWS::Lambda::Function', {
    Environment: { Variables: Match.objectLike({ SECURITY_GROUP_IDS: { 'Fn::GetAtt': [groupId, 'GroupId'] } }) },
  });
  // The database admits the backup tasks on 5432, never the restore tests; the endpoints admit both on 443.
  const ingress = Object.values(t.findResources('AWS::EC2::SecurityGroupIngress')).map((r) => r.Properties);
  const fromRestoreTests = ingress.filter((p) => JSON.stringify(p.SourceSecurityGroupId) === JSON.stringify({ 'Fn::GetAtt': [groupId, 'GroupId'] }));
  expect(fromRestoreTests.map((p) => p.FromPort)).toEqual([443]);
  expect(JSON.stringify(fromRestoreTests[0].GroupId)).toContain('EndpointSecurityGroup');
});
