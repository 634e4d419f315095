/**
 * Continuous archiving of a self-managed PostgreSQL source (walArchiving): a WAL receiver service per source (one task,
 * never two on a slot, circuit breaker), its spool on an encrypted, retained EFS that only the receivers reach, its
 * receiver-down alarm, the base backup schedule, the settings published on the source, and the refusals in words.
 */
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { BackupKeys, BackupStore, DatabaseBackups, DatabaseHosting } from '../../../lib';
import { WalArchiveMode } from '../../../lib/backups/wal-archive';
import { BASEBACKUP_COMMAND } from '../../../container/src/commands/basebackup';
import { WAL_RECEIVE_COMMAND } from '../../../container/src/commands/wal-receive';
import { parseCommandArgs } from '../../../container/src/shared/args';
import {
  ENV, SAMPLE_RECIPIENT, backupsStack, mariadbSource, monitoredBackups, optionOf, postgresSource, resourcesMentioning, sampleSecret, sampleVpc,
  serviceCommand, userClusterBackups,
} from '../database-backups-fixture';

const SELF_MANAGED = { hosting: DatabaseHosting.SELF_MANAGED };

const commandOf = (template: Template) => serviceCommand(template, 'wal-receive');

describe('given a self-managed PostgreSQL source with walArchiving: {} (the defaults)', () => {
  const { stack, backups } = backupsStack({ alarmTopic: true });
  const source = backups.addSource(postgresSource(stack, 'orders-db', { ...SELF_MANAGED, walArchiving: {} }));
  const template = Template.fromStack(stack);

  test('then its receiver is one Fargate task that is stopped before a new one starts, with the circuit breaker rolling back', () => {
    template.resourceCountIs('AWS::ECS::Service', 1);
    template.hasResourceProperties('AWS::ECS::Service', {
      LaunchType: 'FARGATE',
      DesiredCount: 1,
      DeploymentConfiguration: {
        MinimumHealthyPercent: 0,
        MaximumPercent: 100,
        DeploymentCircuitBreaker: { Enable: true, Rollback: true },
      },
      NetworkConfiguration: { AwsvpcConfiguration: { AssignPublicIp: 'DISABLED', SecurityGroups: Match.arrayWith([]) } },
    });
  });

  test('then it runs wal-receive for the source, with the slot, the spool, the partial interval, the recipient and --legal-hold (the store has Object Lock)', () => {
    const command = commandOf(template);
    expect(command[0]).toBe('wal-receive');
    expect(optionOf(command, '--source')).toBe('orders-db');
    expect(optionOf(command, '--prefix')).toBe('backups/');
    expect(optionOf(command, '--slot')).toBe('restorable_orders_db');
    expect(optionOf(command, '--spool')).toBe('/spool');
    expect(optionOf(command, '--partial-interval')).toBe('5');
    expect(optionOf(command, '--host')).toBe('orders-db.replica.example.internal');
    expect(optionOf(command, '--secret-id')).toBe(`arn:aws:secretsmanager:${ENV.region}:${ENV.account}:secret:orders-db/backup-user-AbCdEf`);
    expect(command).toContain('--recipient');
    // Whole segments and history files are held; the hold keeper releases them below the settled base backup.
    expect(command).toContain('--legal-hold');
    expect(JSON.stringify(command)).not.toMatch(/password/i);
  });

  test('then the spool is the source\'s own access point on an encrypted, retained EFS, mounted over TLS with IAM', () => {
    template.hasResource('AWS::EFS::FileSystem', { DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain', Properties: { Encrypted: true } });
    template.hasResourceProperties('AWS::EFS::AccessPoint', {
      RootDirectory: { Path: '/orders-db', CreationInfo: { OwnerUid: '1000', OwnerGid: '1000', Permissions: '700' } },
      PosixUser: { Uid: '1000', Gid: '1000' },
    });
    const [definition] = resourcesMentioning(template, 'AWS::ECS::TaskDefinition', 'wal-receive');
    expect(definition.Properties.Volumes[0].EFSVolumeConfiguration).toMatchObject({
      TransitEncryption: 'ENABLED', AuthorizationConfig: { IAM: 'ENABLED' },
    });
    expect(definition.Properties.ContainerDefinitions[0]).toMatchObject({ StopTimeout: 120, MountPoints: [{ ContainerPath: '/spool', ReadOnly: false }] });
  });

  test('then the file system policy refuses mounts without TLS or without an access point, and grants nobody', () => {
    const [fileSystem] = Object.values(template.findResources('AWS::EFS::FileSystem'));
    const statements = fileSystem.Properties.FileSystemPolicy.Statement as { Sid: string; Effect: string }[];
    expect(statements.map((s) => [s.Sid, s.Effect])).toEqual([['OnlyOverTls', 'Deny'], ['OnlyThroughAccessPoints', 'Deny']]);
  });

  test('then NFS reaches the spool only from the receivers\' own group, which the scheduled tasks do not have', () => {
    const ingress = Object.values(template.findResources('AWS::EC2::SecurityGroupIngress')).filter((r) => r.Properties.FromPort === 2049);
    expect(ingress).toHaveLength(1);
    const receiversGroup = ingress[0].Properties.SourceSecurityGroupId['Fn::GetAtt'][0] as string;
    expect(receiversGroup).toMatch(/WalSpoolReceiverSecurityGroup/);
    const [service] = Object.values(template.findResources('AWS::ECS::Service'));
    expect(JSON.stringify(service.Properties.NetworkConfiguration)).toContain(receiversGroup);
    expect(JSON.stringify(template.findResources('AWS::Scheduler::Schedule'))).not.toContain(receiversGroup);
  });

  test('then a receiver-down alarm watches Container Insights\' running tasks, and notifies the alarm topic', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'ECS/ContainerInsights',
      MetricName: 'RunningTaskCount',
      Statistic: 'Minimum',
      Threshold: 1,
      ComparisonOperator: 'LessThanThreshold',
      EvaluationPeriods: 5,
      TreatMissingData: 'breaching',
      AlarmActions: [{ Ref: Match.stringLikeRegexp('^Alarms') }],
      AlarmDescription: Match.stringLikeRegexp('^The WAL receiver of orders-db has had no running task'),
    });
  });

  test('then base backups run daily at 02:00 UTC with the source\'s own task role, and dumps go on as before', () => {
    template.resourceCountIs('AWS::Scheduler::Schedule', 2);
    const [base] = resourcesMentioning(template, 'AWS::Scheduler::Schedule', 'basebackup');
    expect(base.Properties.ScheduleExpression).toBe('cron(0 2 * * ? *)');
    const input = JSON.stringify(base.Properties.Target.Input);
    expect(input).toMatch(/basebackup[\\"]+,[\\"]+--source[\\"]+,[\\"]+orders-db/);
    expect(input).toContain('--legal-hold');
    const [dump] = resourcesMentioning(template, 'AWS::Scheduler::Schedule', 'Restorable: back up orders-db');
    const roleOf = (schedule: typeof dump) => JSON.stringify(schedule.Properties.Target.Input).match(/"Fn::GetAtt":\["([^"]+)","Arn"\]/)?.[1];
    expect(roleOf(base)).toMatch(/SourcesordersdbTaskRole/);
    expect(roleOf(base)).toBe(roleOf(dump));
  });

  test('then the hold keeper is told the source is WAL-archived, so that it keeps and releases the holds of its base backups and WAL', () => {
    const rules = resourcesMentioning(template, 'AWS::Events::Rule', 'walArchived');
    expect(rules).toHaveLength(1);
    expect(JSON.parse(rules[0].Properties.Targets[0].Input)).toEqual({ sources: ['orders-db'], walArchived: ['orders-db'] });
  });

  test('then the source publishes its resolved settings', () => {
    expect(source.walArchiving).toMatchObject({ mode: WalArchiveMode.RECEIVE, baseBackupCron: '0 2 * * ? *', slotName: 'restorable_orders_db' });
    expect(source.walArchiving?.partialUploadInterval?.toSeconds()).toBe(5);
    expect(source.walArchiving?.maxArchiveAge.toMinutes()).toBe(5);
    expect(source.walArchiving?.replicationSecret).toBe(source.secret);
    expect(source.walReceiver).toBeDefined();
    expect(source.baseBackupSchedule).toBeDefined();
  });
});

test('given two receiving sources, then they share one file system and have an access point, a service and a role each', () => {
  const { stack, backups } = backupsStack();
  backups.addSource(postgresSource(stack, 'orders-db', { ...SELF_MANAGED, walArchiving: {} }));
  backups.addSource(postgresSource(stack, 'billing-db', { ...SELF_MANAGED, walArchiving: { partialUploadInterval: Duration.seconds(2) } }));
  const template = Template.fromStack(stack);
  template.resourceCountIs('AWS::EFS::FileSystem', 1);
  template.resourceCountIs('AWS::EFS::AccessPoint', 2);
  template.resourceCountIs('AWS::ECS::Service', 2);
  expect(resourcesMentioning(template, 'AWS::IAM::Role', 'Restorable WAL receiver of source')).toHaveLength(2);
});

test('given a cluster of the user\'s own, then synth warns that the receiver-down alarm needs Container Insights there', () => {
  const { stack, backups } = userClusterBackups();
  backups.addSource(postgresSource(stack, 'orders-db', { ...SELF_MANAGED, walArchiving: {} }));
  Annotations.fromStack(stack).hasWarning('/Backups/DatabaseBackups/Sources/orders-db',
    Match.stringLikeRegexp("The WAL receiver of 'orders-db' runs in a cluster of your own: its down alarm reads Container Insights"));
});

test('given PUSH with a replication secret and a cron, then there is no receiver, and the base backups connect with that secret', () => {
  const { stack, backups } = backupsStack();
  const replicationSecret = sampleSecret(stack, 'orders-replication');
  const source = backups.addSource(postgresSource(stack, 'orders-db', {
    ...SELF_MANAGED, walArchiving: { mode: WalArchiveMode.PUSH, replicationSecret, baseBackupCron: 'cron(30 3 ? * SUN *)' },
  }));
  const template = Template.fromStack(stack);
  template.resourceCountIs('AWS::ECS::Service', 0);
  template.resourceCountIs('AWS::EFS::FileSystem', 0);
  const [base] = resourcesMentioning(template, 'AWS::Scheduler::Schedule', 'basebackup');
  expect(base.Properties.ScheduleExpression).toBe('cron(30 3 ? * SUN *)');
  expect(JSON.stringify(base.Properties.Target.Input)).toContain(replicationSecret.secretArn);
  expect(source.walArchiving).toMatchObject({ mode: WalArchiveMode.PUSH, replicationSecret });
  expect(source.walArchiving?.maxArchiveAge.toMinutes()).toBe(15);
  expect(source.walReceiver).toBeUndefined();
  // The source's task role runs the base backups, so it may read the replication secret.
  const [role] = resourcesMentioning(template, 'AWS::IAM::Role', 'Restorable backup task of source orders-db');
  expect(JSON.stringify(role.Properties.Policies)).toContain('orders-replication/backup-user');
});

test('given a monitored WAL-archived source, then monitoring is told the archive\'s maximum age beside the dumps\'', () => {
  const { stack, monitoring, addSource, backups } = monitoredBackups();
  backups.addSource(postgresSource(stack, 'orders-db', { ...SELF_MANAGED, walArchiving: { maxArchiveAge: Duration.minutes(2) } }));
  backups.addSource(postgresSource(stack, 'billing-db'));
  expect(addSource).toHaveBeenCalledTimes(2);
  const [[, archived], [, dumped]] = addSource.mock.calls;
  expect(archived.maxAge.toHours()).toBe(2);
  expect(archived.walArchive?.maxAge.toMinutes()).toBe(2);
  expect(archived.walArchive?.baseBackupMaxAge?.toHours()).toBe(25);
  expect(dumped.walArchive).toBeUndefined();
  expect(monitoring.walArchiveStaleAlarm).toBeDefined();
});

test('given a store without Object Lock, then neither the receiver nor the base backups place legal holds', () => {
  const stack = new Stack(new App(), 'Unlocked', { env: ENV });
  const store = new BackupStore(stack, 'Store', { objectLockEnabled: false });
  const keys = new BackupKeys(stack, 'Keys', { recipient: SAMPLE_RECIPIENT });
  const backups = new DatabaseBackups(stack, 'DatabaseBackups', { store, keys, vpc: sampleVpc(stack) });
  backups.addSource(postgresSource(stack, 'orders-db', { ...SELF_MANAGED, walArchiving: {} }));
  const template = Template.fromStack(stack);
  expect(commandOf(template)).not.toContain('--legal-hold');
  const [base] = resourcesMentioning(template, 'AWS::Scheduler::Schedule', 'basebackup');
  expect(JSON.stringify(base.Properties.Target.Input)).not.toContain('--legal-hold');
});

describe('the commands synthesized are the agent\'s own', () => {
  const { stack, backups } = backupsStack();
  backups.addSource(postgresSource(stack, 'orders-db', { ...SELF_MANAGED, walArchiving: {} }));
  const template = Template.fromStack(stack);
  /** A token (a bucket name, a recipient, an ARN) as the string the agent would get. */
  const concrete = (part: unknown) => (typeof part === 'string' ? part : 'TOKEN');

  test('given the receiver\'s command, then wal-receive\'s own parser takes it, with the settings as given', () => {
    const [verb, ...argv] = commandOf(template).map(concrete);
    expect(verb).toBe(WAL_RECEIVE_COMMAND.name);
    const args = parseCommandArgs(WAL_RECEIVE_COMMAND, argv);
    expect([args.string('source'), args.string('slot'), args.string('spool'), args.string('partial-interval')])
      .toEqual(['orders-db', 'restorable_orders_db', '/spool', '5']);
    expect(args.flag('legal-hold')).toBe(true);
  });

  test('given the base backup schedule\'s command, then basebackup\'s own parser takes it', () => {
    const [base] = resourcesMentioning(template, 'AWS::Scheduler::Schedule', 'basebackup');
    const [, parts] = base.Properties.Target.Input['Fn::Join'] as [string, unknown[]];
    const input = JSON.parse(parts.map(concrete).join('')) as { containerOverrides: { command: string[] }[] };
    const [verb, ...argv] = input.containerOverrides[0].command;
    expect(verb).toBe(BASEBACKUP_COMMAND.name);
    const args = parseCommandArgs(BASEBACKUP_COMMAND, argv);
    expect([args.string('source'), args.string('host'), args.flag('legal-hold'), args.flag('json')])
      .toEqual(['orders-db', 'orders-db.replica.example.internal', true, true]);
  });
});

describe('where walArchiving is refused, in words', () => {
  const cases: [string, (stack: ReturnType<typeof backupsStack>['stack']) => Parameters<ReturnType<typeof backupsStack>['backups']['addSource']>[0], RegExp][] = [
    ['an RDS endpoint', (stack) => postgresSource(stack, 'orders-db', {
      endpoint: { hostname: 'orders.c9akciq32xyz.eu-west-1.rds.amazonaws.com', port: 5432 }, walArchiving: {},
    }), /source 'orders-db' runs on Amazon RDS, which allows no archive_command or outside physical replication/],
    ['Aurora', (stack) => postgresSource(stack, 'orders-db', { hosting: DatabaseHosting.AURORA, walArchiving: {} }),
      /runs on Amazon Aurora.*use Aurora's own point-in-time recovery/],
    ['MariaDB', (stack) => mariadbSource(stack, 'shop-db', { walArchiving: {} }), /source 'shop-db' is mariadb 10\.11: WAL archiving is for PostgreSQL sources/],
    ['a partial interval under a second', (stack) => postgresSource(stack, 'orders-db', { ...SELF_MANAGED, walArchiving: { partialUploadInterval: Duration.millis(500) } }),
      /source 'orders-db': walArchiving: partialUploadInterval 500 millis must be whole seconds from 1 to 300/],
    ['a slot name PostgreSQL refuses', (stack) => postgresSource(stack, 'orders-db', { ...SELF_MANAGED, walArchiving: { slotName: 'Orders-Slot' } }),
      /slotName 'Orders-Slot' must be 1 to 63 characters of a-z, 0-9 and '_'/],
    ['a bad base backup cron', (stack) => postgresSource(stack, 'orders-db', { ...SELF_MANAGED, walArchiving: { baseBackupCron: '0 2 * * *' } }),
      /walArchiving: baseBackupCron: cron '0 2 \* \* \*' has 5 fields/],
    ['a maximum age no longer than the partial interval', (stack) => postgresSource(stack, 'orders-db', {
      ...SELF_MANAGED, walArchiving: { partialUploadInterval: Duration.seconds(120), maxArchiveAge: Duration.minutes(1) },
    }), /maxArchiveAge 1 minute must be longer than partialUploadInterval 2 minutes/],
    ['receiver settings with PUSH', (stack) => postgresSource(stack, 'orders-db', { ...SELF_MANAGED, walArchiving: { mode: WalArchiveMode.PUSH, slotName: 'x' } }),
      /partialUploadInterval and slotName are for WalArchiveMode.RECEIVE/],
  ];
  test.each(cases)('given %s, then addSource throws', (_title, source, message) => {
    const { stack, backups } = backupsStack();
    expect(() => backups.addSource(source(stack))).toThrow(message);
  });
});

test('given a replication secret of its own, then only that secret is read by the receiver', () => {
  const { stack, backups } = backupsStack();
  const replicationSecret = secretsmanager.Secret.fromSecretCompleteArn(stack, 'Replication',
    `arn:aws:secretsmanager:${ENV.region}:${ENV.account}:secret:orders-db/replication-AbCdEf`);
  backups.addSource(postgresSource(stack, 'orders-db', { ...SELF_MANAGED, walArchiving: { replicationSecret } }));
  const template = Template.fromStack(stack);
  const [role] = resourcesMentioning(template, 'AWS::IAM::Role', 'Restorable WAL receiver of source orders-db');
  const policies = JSON.stringify(role.Properties.Policies);
  expect(policies).toContain('orders-db/replication-AbCdEf');
  expect(policies).not.toContain('orders-db/backup-user');
  expect(optionOf(commandOf(template), '--secret-id')).toBe(replicationSecret.secretArn);
});
