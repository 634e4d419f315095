/**
 * DatabaseBackups, template assertions: each source's schedule and overrides, the task roles' reach, the
 * dead-letter queue and its alarm, the failure rule, the endpoints option, the logs; and cdk-nag.
 */
import { Duration, Size } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as logs from 'aws-cdk-lib/aws-logs';
import { SourceEngine } from '../../../lib/backups/backup-source';
import { AGENT_CONTAINER_NAME } from '../../../lib/backups/database-backups';
import { ENV, SAMPLE_RECIPIENT, backupsStack, mariadbSource, postgresSource } from '../database-backups-fixture';

type Resource = { Type: string; Properties: Record<string, unknown> };

/** The Scheduler target's overrides (its Input), with CloudFormation references rendered as `<LogicalId>`. */
function overridesOf(schedule: Resource): { taskRoleArn: string; cpu: string; memory: string; containerOverrides: { name: string; command: string[] }[] } {
  const input = (schedule.Properties.Target as { Input: unknown }).Input;
  return JSON.parse(renderTokens(input));
}

/** Joins an Fn::Join, writing Ref/GetAtt as `<LogicalId>` and pseudo parameters as their values in ENV. */
function renderTokens(value: unknown): string {
  if (typeof value === 'string') return value;
  const v = value as Record<string, unknown>;
  if (v['Fn::Join']) {
    const [separator, parts] = v['Fn::Join'] as [string, unknown[]];
    return parts.map(renderTokens).join(separator);
  }
  if (v.Ref === 'AWS::Partition') return 'aws';
  if (v.Ref) return `<${v.Ref}>`;
  if (v['Fn::GetAtt']) return `<${(v['Fn::GetAtt'] as string[])[0]}>`;
  throw new Error(`unexpected token ${JSON.stringify(value)}`);
}

function schedules(template: Template): Map<string, Resource> {
  const bySource = new Map<string, Resource>();
  for (const schedule of Object.values(template.findResources('AWS::Scheduler::Schedule')) as Resource[]) {
    const group = (schedule.Properties.Target as { EcsParameters: { Group: string } }).EcsParameters.Group;
    bySource.set(group.replace(/^restorable:/, ''), schedule);
  }
  return bySource;
}

/** The one resource of a type whose construct path contains `pathPart` (logical ids keep the path's letters and digits). */
function logicalIdOf(template: Template, type: string, pathPart: string): string {
  const wanted = pathPart.replace(/[^A-Za-z0-9]/g, '');
  const ids = Object.keys(template.findResources(type)).filter((id) => id.includes(wanted));
  if (ids.length !== 1) throw new Error(`expected one ${type} at ${pathPart}, found ${ids.join(', ') || 'none'}`);
  return ids[0];
}

describe('given a PostgreSQL and a MariaDB source', () => {
  const { stack, backups } = backupsStack({ alarmTopic: true, generatedKeys: true });
  const orders = backups.addSource(postgresSource(stack, 'orders-db'));
  backups.addSource(postgresSource(stack, 'billing-db', { rpo: Duration.minutes(20), cpu: 2048, memoryLimitMiB: 4096, ephemeralStorageGiB: 50, expectedSize: Size.gibibytes(500) }));
  backups.addSource(mariadbSource(stack, 'shop-db', { cron: '30 2 * * ? *', database: 'shop' }));
  const template = Template.fromStack(stack);
  const bySource = schedules(template);

  test('then each source has one schedule, from its RPO or its cron, in UTC', () => {
    expect([...bySource.keys()].sort()).toEqual(['billing-db', 'orders-db', 'shop-db']);
    expect(bySource.get('orders-db')!.Properties).toMatchObject({ ScheduleExpression: 'cron(0 * * * ? *)', ScheduleExpressionTimezone: 'Etc/UTC' });
    expect(bySource.get('billing-db')!.Properties.ScheduleExpression).toBe('cron(0/20 * * * ? *)');
    expect(bySource.get('shop-db')!.Properties.ScheduleExpression).toBe('cron(30 2 * * ? *)');
    expect(orders.rpo.toHours()).toBe(1);
    expect(backups.sources.map((s) => [s.name, s.rpo.toMinutes()])).toEqual([['orders-db', 60], ['billing-db', 20], ['shop-db', 1440]]);
  });

  test('then the overrides carry the source, its own task role, its secret id, the recipient and the endpoint', () => {
    const roleId = logicalIdOf(template, 'AWS::IAM::Role', 'Sources/orders-db/TaskRole');
    const overrides = overridesOf(bySource.get('orders-db')!);
    expect(overrides.taskRoleArn).toBe(`<${roleId}>`);
    expect(overrides.containerOverrides).toHaveLength(1);
    expect(overrides.containerOverrides[0].name).toBe(AGENT_CONTAINER_NAME);
    const command = overrides.containerOverrides[0].command;
    const option = (name: string) => command[command.indexOf(name) + 1];
    expect(command[0]).toBe('backup');
    expect(option('--source')).toBe('orders-db');
    expect(option('--engine')).toBe('postgres');
    expect(option('--bucket')).toMatch(/^<StoreBucket/);
    expect(option('--prefix')).toBe('backups/');
    expect(option('--recipient')).toMatch(/^<KeysKeyPair/);
    expect(option('--secret-id')).toBe(`arn:aws:secretsmanager:${ENV.region}:${ENV.account}:secret:orders-db/backup-user-AbCdEf`);
    expect([option('--host'), option('--port')]).toEqual(['orders-db.replica.example.internal', '5432']);
    expect(command.join(' ')).not.toMatch(/password|PGPASSWORD|MYSQL_PWD/i);
  });

  test('then task sizes and the expected size are passed per source, and MariaDB gets its engine and database', () => {
    expect(overridesOf(bySource.get('billing-db')!)).toMatchObject({ cpu: '2048', memory: '4096', ephemeralStorage: { sizeInGiB: 50 } });
    expect(overridesOf(bySource.get('orders-db')!)).toMatchObject({ cpu: '1024', memory: '2048' });
    const billing = overridesOf(bySource.get('billing-db')!).containerOverrides[0].command;
    expect(billing.slice(billing.indexOf('--expected-size'), billing.indexOf('--expected-size') + 2)).toEqual(['--expected-size', String(500 * 1024 ** 3)]);
    expect(overridesOf(bySource.get('orders-db')!).containerOverrides[0].command).not.toContain('--expected-size');
    const command = overridesOf(bySource.get('shop-db')!).containerOverrides[0].command;
    expect(command.slice(command.indexOf('--engine'), command.indexOf('--engine') + 2)).toEqual(['--engine', 'mysql']);
    expect(command.slice(command.indexOf('--database'), command.indexOf('--database') + 2)).toEqual(['--database', 'shop']);
  });

  test('then every schedule runs Fargate in the private subnets, retries, and dead-letters to the shared queue', () => {
    const queueId = logicalIdOf(template, 'AWS::SQS::Queue', 'DeadLetterQueue');
    for (const schedule of bySource.values()) {
      expect(schedule.Properties.Target).toMatchObject({
        DeadLetterConfig: { Arn: { 'Fn::GetAtt': [queueId, 'Arn'] } },
        RetryPolicy: { MaximumRetryAttempts: 3, MaximumEventAgeInSeconds: 3600 },
        EcsParameters: {
          LaunchType: 'FARGATE',
          NetworkConfiguration: { AwsvpcConfiguration: { AssignPublicIp: 'DISABLED', Subnets: ['subnet-0a1b2c3d4e5f60001', 'subnet-0a1b2c3d4e5f60002'] } },
        },
      });
    }
  });

  test('then task definitions are shared per engine: two for three sources, with no secrets or environment in them', () => {
    const definitions = Object.values(template.findResources('AWS::ECS::TaskDefinition')) as Resource[];
    expect(definitions).toHaveLength(2);
    for (const definition of definitions) {
      const [container] = definition.Properties.ContainerDefinitions as Record<string, unknown>[];
      expect(container).toMatchObject({ Name: AGENT_CONTAINER_NAME, Essential: true, LogConfiguration: { LogDriver: 'awslogs' } });
      expect(container.Secrets).toBeUndefined();
      expect(container.Environment).toBeUndefined();
    }
  });

  test('then one source\'s task role reaches only its own prefix and its own secret, and never the age identity', () => {
    const role = template.findResources('AWS::IAM::Role')[logicalIdOf(template, 'AWS::IAM::Role', 'Sources/orders-db/TaskRole')] as Resource;
    const policyText = JSON.stringify(role.Properties.Policies);
    const statements = (role.Properties.Policies as { PolicyDocument: { Statement: { Effect: string; Action: string | string[]; Resource: unknown }[] } }[])
      .flatMap((p) => p.PolicyDocument.Statement);
    // What it is allowed (a Deny in its own policy may name other keys of its prefix, to take them away).
    const objectStatements = statements.filter((s) => s.Effect === 'Allow' && [s.Action].flat().some((a) => a.startsWith('s3:') && a !== 's3:ListBucket'));
    expect(objectStatements.length).toBeGreaterThan(0);
    for (const resource of objectStatements.flatMap((s) => [s.Resource].flat())) {
      expect(renderTokens(resource)).toMatch(/^<StoreBucket\w+>\/backups\/orders-db\/\*$/);
    }
    expect(policyText).toContain('secret:orders-db/backup-user-AbCdEf');
    for (const other of ['billing-db', 'shop-db']) expect(policyText).not.toContain(other);
    expect(policyText).not.toMatch(/s3:Delete|s3:PutObjectRetention|s3:BypassGovernanceRetention/);
    const identitySecretId = logicalIdOf(template, 'AWS::SecretsManager::Secret', 'Keys/Identity');
    expect(policyText).not.toContain(identitySecretId);
    // Inline: a source adds a role, not a role and a policy.
    expect(Object.values(template.findResources('AWS::IAM::Policy')).map((p) => JSON.stringify(p))).not.toContainEqual(expect.stringContaining('orders-db'));
  });

  test('then the scheduler may pass only this construct\'s task roles, to ECS tasks', () => {
    const schedulerRole = logicalIdOf(template, 'AWS::IAM::Role', 'SchedulerRole');
    template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: { Statement: [Match.objectLike({ Principal: { Service: 'scheduler.amazonaws.com' }, Condition: { StringEquals: { 'aws:SourceAccount': ENV.account } } })] },
    });
    template.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [{ Ref: schedulerRole }],
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({
        Action: 'iam:PassRole',
        Condition: { StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' } },
        Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, Match.stringLikeRegexp(`^:iam::${ENV.account}:role/restorable/dump/[A-Za-z0-9]+/\\*$`)]] },
      })]) },
    });
    const taskRoles = Object.values(template.findResources('AWS::IAM::Role')) as Resource[];
    const paths = new Set(taskRoles.filter((r) => JSON.stringify(r).includes('writes its prefix')).map((r) => r.Properties.Path));
    expect(paths.size).toBe(1);
    // The dump path the bucket policy tells dump roles apart by, one folder per DatabaseBackups; the grant passes that folder.
    const [path] = [...paths] as string[];
    expect(path).toMatch(/^\/restorable\/dump\/[A-Za-z0-9]+\/$/);
    const grant = JSON.stringify(template.findResources('AWS::IAM::Policy', { Properties: { Roles: [{ Ref: schedulerRole }] } }));
    expect(grant).toContain(`:role${path}*`);
  });

  test('then each source opens its database\'s port to the tasks\' security group', () => {
    const taskGroup = logicalIdOf(template, 'AWS::EC2::SecurityGroup', 'TaskSecurityGroup');
    const ingress = Object.values(template.findResources('AWS::EC2::SecurityGroupIngress')) as Resource[];
    expect(ingress.map((r) => r.Properties.FromPort).sort()).toEqual([3306, 5432, 5432]);
    for (const rule of ingress) expect(rule.Properties.SourceSecurityGroupId).toEqual({ 'Fn::GetAtt': [taskGroup, 'GroupId'] });
  });

  test('then the dead-letter queue is encrypted, TLS-only, and alarms with a message visible', () => {
    const queueId = logicalIdOf(template, 'AWS::SQS::Queue', 'DeadLetterQueue');
    template.hasResourceProperties('AWS::SQS::Queue', { SqsManagedSseEnabled: true, MessageRetentionPeriod: 14 * 24 * 3600 });
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Namespace: 'AWS/SQS',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [queueId, 'QueueName'] } }],
      ComparisonOperator: 'GreaterThanThreshold',
      Threshold: 0,
      TreatMissingData: 'notBreaching',
      AlarmActions: [{ Ref: logicalIdOf(template, 'AWS::SNS::Topic', 'Alarms') }],
    });
  });

  test('then the failure rule matches failed or unstarted tasks of these task definitions and tells the topic which source', () => {
    const rule = Object.values(template.findResources('AWS::Events::Rule'))[0] as Resource;
    const pattern = rule.Properties.EventPattern as { detail: Record<string, unknown> };
    expect(pattern).toMatchObject({ 'source': ['aws.ecs'], 'detail-type': ['ECS Task State Change'] });
    expect(pattern.detail).toMatchObject({
      lastStatus: ['STOPPED'],
      group: [{ prefix: 'restorable:' }],
      $or: [{ containers: { exitCode: [{ 'anything-but': 0 }] } }, { stopCode: ['TaskFailedToStart'] }],
    });
    const families = (pattern.detail.taskDefinitionArn as { prefix: unknown }[]).map((p) => renderTokens(p.prefix));
    expect(families).toHaveLength(2);
    for (const family of families) expect(family).toMatch(new RegExp(`^arn:aws:ecs:${ENV.region}:${ENV.account}:task-definition/.+:$`));
    const [target] = rule.Properties.Targets as { Arn: unknown; InputTransformer: { InputPathsMap: Record<string, string>; InputTemplate: string } }[];
    expect(target.Arn).toEqual({ Ref: logicalIdOf(template, 'AWS::SNS::Topic', 'Alarms') });
    expect(Object.values(target.InputTransformer.InputPathsMap).sort())
      .toEqual(['$.detail.containers[0].exitCode', '$.detail.group', '$.detail.stopCode', '$.detail.stoppedReason', '$.detail.taskArn']);
    expect(target.InputTransformer.InputTemplate).toMatch(/^"Restorable backup failed for <detail-group>: exit code <.+>, stop code <.+>: <.+>\. Task <.+>;/);
  });

  test('then metricJobFailures counts the rule\'s matches, and an alarm watches it', () => {
    const ruleId = logicalIdOf(template, 'AWS::Events::Rule', 'TaskFailed');
    const metric = backups.metricJobFailures();
    expect([metric.namespace, metric.metricName, metric.statistic, metric.period.toMinutes()]).toEqual(['AWS/Events', 'TriggeredRules', 'Sum', 5]);
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/Events', MetricName: 'TriggeredRules', Dimensions: [{ Name: 'RuleName', Value: { Ref: ruleId } }],
      ComparisonOperator: 'GreaterThanOrEqualToThreshold', Threshold: 1, TreatMissingData: 'notBreaching',
    });
  });

  test('then the logs are kept a year by default and the container writes to them', () => {
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 365 });
    const logGroupId = logicalIdOf(template, 'AWS::Logs::LogGroup', 'DatabaseBackups/Logs');
    template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      ContainerDefinitions: [Match.objectLike({ LogConfiguration: { LogDriver: 'awslogs', Options: Match.objectLike({ 'awslogs-group': { Ref: logGroupId } }) } })],
    });
  });

  test('then no VPC endpoints are made unless asked for', () => {
    template.resourceCountIs('AWS::EC2::VPCEndpoint', 0);
  });
});

describe('options', () => {
  test('given logRetention, then the log group keeps logs that long', () => {
    const { stack } = backupsStack({ props: { logRetention: logs.RetentionDays.THREE_MONTHS } });
    Template.fromStack(stack).hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 90 });
  });

  test('given isolated subnets and vpcEndpoints, then an S3 gateway and five interface endpoints admit only the tasks', () => {
    const { stack, backups } = backupsStack({ isolated: true });
    backups.addSource(postgresSource(stack));
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::EC2::VPCEndpoint', {
      VpcEndpointType: 'Gateway', RouteTableIds: ['rtb-0a1b2c3d4e5f60001', 'rtb-0a1b2c3d4e5f60002'],
    });
    const interfaces = Object.values(template.findResources('AWS::EC2::VPCEndpoint', { Properties: { VpcEndpointType: 'Interface' } })) as Resource[];
    expect(interfaces.map((e) => e.Properties.ServiceName).sort()).toEqual(['ecr.api', 'ecr.dkr', 'logs', 'monitoring', 'secretsmanager']
      .map((service) => `com.amazonaws.${ENV.region}.${service}`));
    for (const endpoint of interfaces) expect(endpoint.Properties).toMatchObject({ PrivateDnsEnabled: true, SubnetIds: ['subnet-0a1b2c3d4e5f60001', 'subnet-0a1b2c3d4e5f60002'] });
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      FromPort: 443, ToPort: 443, SourceSecurityGroupId: { 'Fn::GetAtt': [logicalIdOf(template, 'AWS::EC2::SecurityGroup', 'TaskSecurityGroup'), 'GroupId'] },
    });
  });

  test('given a recipient brought by the user, then the command carries it verbatim', () => {
    const { stack, backups } = backupsStack();
    backups.addSource(postgresSource(stack));
    const schedule = [...schedules(Template.fromStack(stack)).values()][0];
    const command = overridesOf(schedule).containerOverrides[0].command;
    expect(command[command.indexOf('--recipient') + 1]).toBe(SAMPLE_RECIPIENT);
  });

  test('given a source without endpoint or peer, then the agent takes host and port from the secret and no rule is added', () => {
    const { stack, backups } = backupsStack();
    backups.addSource({ name: 'plain-db', engine: SourceEngine.postgres('15'), secret: postgresSource(stack).secret });
    const template = Template.fromStack(stack);
    const command = overridesOf([...schedules(template).values()][0]).containerOverrides[0].command;
    expect(command).not.toContain('--host');
    expect(command).not.toContain('--port');
    template.resourceCountIs('AWS::EC2::SecurityGroupIngress', 0);
    expect(backups.sources[0].rpo.toDays()).toBe(1);
    template.resourceCountIs('AWS::Scheduler::Schedule', 1);
  });
});

describe('cdk-nag AwsSolutions', () => {
  test('given every feature on (endpoints, alarm topic, generated keys, both engines), then synth has no unacknowledged finding', () => {
    const { app, stack, backups } = backupsStack({ nag: true, isolated: true, alarmTopic: true, generatedKeys: true });
    backups.addSource(postgresSource(stack));
    backups.addSource(mariadbSource(stack));
    expect(() => app.synth()).not.toThrow();
  });
});
