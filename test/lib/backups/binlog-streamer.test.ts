/**
 * Binlog streaming of a MariaDB source (binlogStreaming): a binlog streamer service per source (one task, never two
 * with one server id, circuit breaker), on the spool the WAL receivers use, its down alarm, dumps that record their
 * binlog coordinates, the settings published on the source and given to monitoring, what synth tells about the
 * server (RDS's binlog retention, ROW format), and the refusals in words.
 */
import { Duration, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { DatabaseBackups, DatabaseHosting, SourceEngine } from '../../../lib';
import { BINLOG_RETENTION_WARNING, defaultServerId } from '../../../lib/backups/binlog-streaming';
import { BACKUP_COMMAND } from '../../../container/src/commands/backup';
import { BINLOG_STREAM_COMMAND } from '../../../container/src/commands/binlog-stream';
import { parseCommandArgs } from '../../../container/src/shared/args';
import {
  ENV, backupsStack, mariadbSource, monitoredBackups, optionOf, postgresSource, resourcesMentioning, serviceCommand, userClusterBackups,
} from '../database-backups-fixture';

const streamerCommand = (template: Template) => serviceCommand(template, 'binlog-stream');

/** A schedule's agent command, tokens (a bucket name, a recipient, an ARN) as the strings the agent would get. */
function scheduledCommand(schedule: Record<string, unknown>): string[] {
  const concrete = (part: unknown) => (typeof part === 'string' ? part : 'TOKEN');
  const { Properties } = schedule as { Properties: { Target: { Input: { 'Fn::Join': [string, unknown[]] } } } };
  const [, parts] = Properties.Target.Input['Fn::Join'];
  return (JSON.parse(parts.map(concrete).join('')) as { containerOverrides: { command: string[] }[] }).containerOverrides[0].command;
}

describe('given a self-managed MariaDB source with binlogStreaming: {} (the defaults)', () => {
  const { stack, backups } = backupsStack({ alarmTopic: true });
  const source = backups.addSource(mariadbSource(stack, 'shop-db', { binlogStreaming: {} }));
  const template = Template.fromStack(stack);

  test('then its streamer is one Fargate task that is stopped before a new one starts, with the circuit breaker rolling back', () => {
    template.resourceCountIs('AWS::ECS::Service', 1);
    template.hasResourceProperties('AWS::ECS::Service', {
      LaunchType: 'FARGATE',
      DesiredCount: 1,
      DeploymentConfiguration: { MinimumHealthyPercent: 0, MaximumPercent: 100, DeploymentCircuitBreaker: { Enable: true, Rollback: true } },
      NetworkConfiguration: { AwsvpcConfiguration: { AssignPublicIp: 'DISABLED' } },
    });
  });

  test('then it runs binlog-stream for the source with its server id, the spool, the partial interval and the connection, and no password', () => {
    const command = streamerCommand(template);
    expect(command[0]).toBe('binlog-stream');
    expect(optionOf(command, '--source')).toBe('shop-db');
    expect(optionOf(command, '--prefix')).toBe('backups/');
    expect(optionOf(command, '--spool')).toBe('/spool');
    expect(optionOf(command, '--server-id')).toBe(String(defaultServerId('shop-db')));
    expect(optionOf(command, '--partial-interval')).toBe('5');
    expect(optionOf(command, '--host')).toBe('shop-db.example.internal');
    expect(optionOf(command, '--secret-id')).toBe(`arn:aws:secretsmanager:${ENV.region}:${ENV.account}:secret:shop-db/backup-user-AbCdEf`);
    expect(command).toContain('--recipient');
    expect(command).toContain('--json');
    // Nothing releases a binlog file's hold, so none is placed, though the store has Object Lock.
    expect(command).not.toContain('--legal-hold');
    expect(command).not.toContain('--start-file');
    expect(JSON.stringify(command)).not.toMatch(/password/i);
  });

  test('then binlog-stream\'s own parser takes the command, with the settings as given', () => {
    const concrete = (part: unknown) => (typeof part === 'string' ? part : 'TOKEN');
    const [verb, ...argv] = streamerCommand(template).map(concrete);
    expect(verb).toBe(BINLOG_STREAM_COMMAND.name);
    const args = parseCommandArgs(BINLOG_STREAM_COMMAND, argv);
    expect([args.string('source'), args.string('spool'), args.string('server-id'), args.string('partial-interval'), args.string('host'), args.flag('json')])
      .toEqual(['shop-db', '/spool', String(defaultServerId('shop-db')), '5', 'shop-db.example.internal', true]);
  });

  test('then the spool is the source\'s own access point on the shared, retained EFS, mounted over TLS with IAM, with time to store the last partial', () => {
    template.resourceCountIs('AWS::EFS::FileSystem', 1);
    template.hasResource('AWS::EFS::FileSystem', { DeletionPolicy: 'Retain', Properties: { Encrypted: true } });
    template.hasResourceProperties('AWS::EFS::AccessPoint', {
      RootDirectory: { Path: '/shop-db', CreationInfo: { OwnerUid: '1000', OwnerGid: '1000', Permissions: '700' } },
    });
    const [definition] = resourcesMentioning(template, 'AWS::ECS::TaskDefinition', 'binlog-stream');
    expect(definition.Properties.Volumes[0].EFSVolumeConfiguration).toMatchObject({ TransitEncryption: 'ENABLED', AuthorizationConfig: { IAM: 'ENABLED' } });
    expect(definition.Properties.ContainerDefinitions[0]).toMatchObject({ StopTimeout: 120, MountPoints: [{ ContainerPath: '/spool', ReadOnly: false }] });
  });

  test('then a streamer-down alarm watches Container Insights\' running tasks, says what a long outage costs, and notifies the alarm topic', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'ECS/ContainerInsights',
      MetricName: 'RunningTaskCount',
      Threshold: 1,
      ComparisonOperator: 'LessThanThreshold',
      EvaluationPeriods: 5,
      TreatMissingData: 'breaching',
      AlarmActions: [{ Ref: Match.stringLikeRegexp('^Alarms') }],
      AlarmDescription: Match.stringLikeRegexp('^The binlog streamer of shop-db has had no running task for 5 minutes: .* a gap that only a new dump closes'),
    });
  });

  test('then its dumps record their binlog coordinates, and backup\'s own parser takes the command', () => {
    const [dump] = resourcesMentioning(template, 'AWS::Scheduler::Schedule', 'Restorable: back up shop-db');
    const [verb, ...argv] = scheduledCommand(dump);
    expect(verb).toBe(BACKUP_COMMAND.name);
    const args = parseCommandArgs(BACKUP_COMMAND, argv);
    expect([args.string('source'), args.flag('binlog-coordinates'), args.flag('json')]).toEqual(['shop-db', true, true]);
  });

  test('then no base backup is scheduled (a dump is where binlog replay starts), and the hold keeper keeps the dumps\' holds as before', () => {
    template.resourceCountIs('AWS::Scheduler::Schedule', 1);
    const rules = resourcesMentioning(template, 'AWS::Events::Rule', '\\"sources\\"');
    expect(rules).toHaveLength(1);
    expect(JSON.parse(rules[0].Properties.Targets[0].Input)).toEqual({ sources: ['shop-db'] });
  });

  test('then the source publishes its resolved settings, and synth notes what the server needs', () => {
    expect(source.binlogStreaming).toMatchObject({ serverId: defaultServerId('shop-db'), replicationSecret: source.secret, startFile: undefined });
    expect(source.binlogStreaming?.partialUploadInterval.toSeconds()).toBe(5);
    expect(source.binlogStreaming?.maxArchiveAge.toMinutes()).toBe(5);
    expect(source.binlogStreamer).toBeDefined();
    expect(source.walArchiving).toBeUndefined();
    Annotations.fromStack(stack).hasInfo('/Backups/DatabaseBackups/Sources/shop-db',
      Match.stringLikeRegexp(`needs the server's log_bin ON, binlog_format ROW, a server_id other than 0 and ${defaultServerId('shop-db')}`));
  });
});

test('given a source that does not stream binlogs, then its dumps run as before, without coordinates', () => {
  const { stack, backups } = backupsStack();
  backups.addSource(mariadbSource(stack, 'shop-db'));
  const [dump] = resourcesMentioning(Template.fromStack(stack), 'AWS::Scheduler::Schedule', 'Restorable: back up shop-db');
  expect(scheduledCommand(dump)).not.toContain('--binlog-coordinates');
});

test('given a source name, then its default server id is stable, in 10^9 … 2^32 - 1, and differs from another source\'s', () => {
  const ids = ['shop-db', 'billing-db', 'a', 'z'.repeat(48)].map(defaultServerId);
  expect(defaultServerId('shop-db')).toBe(ids[0]);
  for (const id of ids) expect(id >= 1e9 && id <= 2 ** 32 - 1 && Number.isInteger(id)).toBe(true);
  expect(new Set(ids).size).toBe(ids.length);
});

test('given settings of its own, then the streamer connects with the replication secret only it reads, from the start file given', () => {
  const { stack, backups } = backupsStack();
  const replicationSecret = secretsmanager.Secret.fromSecretCompleteArn(stack, 'Replication',
    `arn:aws:secretsmanager:${ENV.region}:${ENV.account}:secret:shop-db/replication-AbCdEf`);
  const source = backups.addSource(mariadbSource(stack, 'shop-db', {
    binlogStreaming: { replicationSecret, serverId: 4242, partialUploadInterval: Duration.seconds(2), startFile: 'mysql-bin.000042' },
  }));
  const template = Template.fromStack(stack);
  const command = streamerCommand(template);
  expect([optionOf(command, '--server-id'), optionOf(command, '--partial-interval'), optionOf(command, '--start-file')])
    .toEqual(['4242', '2', 'mysql-bin.000042']);
  expect(optionOf(command, '--secret-id')).toBe(replicationSecret.secretArn);
  const [streamerRole] = resourcesMentioning(template, 'AWS::IAM::Role', 'Restorable binlog streamer of source shop-db');
  expect(JSON.stringify(streamerRole.Properties.Policies)).toContain('shop-db/replication-AbCdEf');
  expect(JSON.stringify(streamerRole.Properties.Policies)).not.toContain('shop-db/backup-user');
  // The dumps connect with the source's own secret: their role is not given the streamer's.
  const [dumpRole] = resourcesMentioning(template, 'AWS::IAM::Role', 'Restorable backup task of source shop-db');
  expect(JSON.stringify(dumpRole.Properties.Policies)).not.toContain('replication-AbCdEf');
  expect(source.binlogStreaming?.replicationSecret).toBe(replicationSecret);
});

test('given a MariaDB and a PostgreSQL source streaming, then they share one spool, with an access point, a service and a role each', () => {
  const { stack, backups } = backupsStack();
  backups.addSource(mariadbSource(stack, 'shop-db', { binlogStreaming: {} }));
  backups.addSource(postgresSource(stack, 'orders-db', { hosting: DatabaseHosting.SELF_MANAGED, walArchiving: {} }));
  const template = Template.fromStack(stack);
  template.resourceCountIs('AWS::EFS::FileSystem', 1);
  template.resourceCountIs('AWS::EFS::AccessPoint', 2);
  template.resourceCountIs('AWS::ECS::Service', 2);
  expect(resourcesMentioning(template, 'AWS::IAM::Role', 'Restorable binlog streamer of source')).toHaveLength(1);
  expect(resourcesMentioning(template, 'AWS::IAM::Role', 'Restorable WAL receiver of source')).toHaveLength(1);
});

test('given a cluster of the user\'s own, then synth warns that the streamer-down alarm needs Container Insights there', () => {
  const { stack, backups } = userClusterBackups();
  backups.addSource(mariadbSource(stack, 'shop-db', { binlogStreaming: {} }));
  Annotations.fromStack(stack).hasWarning('/Backups/DatabaseBackups/Sources/shop-db',
    Match.stringLikeRegexp("The binlog streamer of 'shop-db' runs in a cluster of your own: its down alarm reads Container Insights"));
});

test('given a monitored binlog-streamed source, then monitoring is told the stream\'s maximum age beside the dumps\'', () => {
  const { stack, addSource, backups } = monitoredBackups();
  backups.addSource(mariadbSource(stack, 'shop-db', { rpo: Duration.hours(1), binlogStreaming: { maxArchiveAge: Duration.minutes(2) } }));
  backups.addSource(mariadbSource(stack, 'cart-db'));
  const [[, streamed], [, dumped]] = addSource.mock.calls;
  expect(streamed.maxAge.toHours()).toBe(2);
  expect(streamed.binlog?.maxAge.toMinutes()).toBe(2);
  expect(streamed.walArchive).toBeUndefined();
  expect(dumped.binlog).toBeUndefined();
});

describe('on Amazon RDS for MariaDB', () => {
  const rdsInstance = (stack: Stack, vpc: ec2.IVpc, props: Partial<rds.DatabaseInstanceProps> = {}) => new rds.DatabaseInstance(stack, 'Shop', {
    engine: rds.DatabaseInstanceEngine.mariaDb({ version: rds.MariaDbEngineVersion.VER_10_11_9 }), storageEncrypted: true,
    vpc, vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS }, ...props,
  });

  test('given an endpoint there, then streaming is allowed, with a warning that gives the exact binlog retention call and asks for ROW', () => {
    const { stack, backups } = backupsStack();
    backups.addSource(mariadbSource(stack, 'shop-db', {
      endpoint: { hostname: 'shop.c9akciq32xyz.eu-west-1.rds.amazonaws.com', port: 3306 }, binlogStreaming: {},
    }));
    const warnings = Annotations.fromStack(stack).findWarning('/Backups/DatabaseBackups/Sources/shop-db', Match.anyValue());
    expect(warnings).toHaveLength(1);
    const text = JSON.stringify(warnings[0].entry.data);
    expect(text).toContain("CALL mysql.rds_set_configuration('binlog retention hours', 168);");
    expect(text).toContain('a parameter group with binlog_format ROW');
    expect(text).toContain(BINLOG_RETENTION_WARNING);
  });

  test('given an instance of this app whose parameter group sets binlog_format ROW, then the warning asks only for the retention', () => {
    const { stack, vpc, backups } = backupsStack();
    const instance = rdsInstance(stack, vpc, { parameters: { binlog_format: 'ROW' } });
    backups.addSource(mariadbSource(stack, 'shop-db', { peer: instance, binlogStreaming: {} }));
    const [warning] = Annotations.fromStack(stack).findWarning('/Backups/DatabaseBackups/Sources/shop-db', Match.anyValue());
    expect(JSON.stringify(warning.entry.data)).toContain('binlog retention hours');
    expect(JSON.stringify(warning.entry.data)).not.toContain('binlog_format');
  });

  test.each([
    ['a parameter group that sets binlog_format MIXED', { parameters: { binlog_format: 'MIXED' } },
      /the RDS instance's parameter group sets binlog_format to MIXED, and the streamed binlogs must be ROW.*set binlog_format to ROW in that parameter group/],
    ['automated backups off', { backupRetention: Duration.days(0) },
      /RDS writes binlogs only while they are on: give it a backupRetention of at least Duration.days\(1\)/],
  ] as [string, Partial<rds.DatabaseInstanceProps>, RegExp][])('given an instance of this app with %s, then addSource refuses it with the fix', (_title, props, message) => {
    const { stack, vpc, backups } = backupsStack();
    const instance = rdsInstance(stack, vpc, props);
    expect(() => backups.addSource(mariadbSource(stack, 'shop-db', { peer: instance, binlogStreaming: {} }))).toThrow(message);
  });
});

describe('refusals', () => {
  const cases: [string, (stack: Stack) => Parameters<DatabaseBackups['addSource']>[0], RegExp][] = [
    ['PostgreSQL', (stack) => postgresSource(stack, 'orders-db', { binlogStreaming: {} }),
      /source 'orders-db' is postgres 16: binlog streaming is for MariaDB sources; a PostgreSQL server of your own archives its WAL \(walArchiving\)/],
    ['MySQL 8', (stack) => mariadbSource(stack, 'shop-db', { engine: SourceEngine.mysql('8.0'), binlogStreaming: {} }),
      /source 'shop-db' is mysql 8\.0: binlog streaming is for MariaDB sources, since the agent image carries MariaDB's client tools, whose binlog coordinates and GTIDs differ from MySQL 8's; MySQL 8 sources stay dump-only/],
    ['Aurora', (stack) => mariadbSource(stack, 'shop-db', { hosting: DatabaseHosting.AURORA, binlogStreaming: {} }),
      /runs on Amazon Aurora, which is MySQL-compatible only.*Use Aurora's own point-in-time recovery/],
    ['WAL archiving on MariaDB', (stack) => mariadbSource(stack, 'shop-db', { walArchiving: {}, binlogStreaming: {} }),
      /source 'shop-db' is mariadb 10\.11: WAL archiving is for PostgreSQL sources/],
    ['a partial interval over 300 seconds', (stack) => mariadbSource(stack, 'shop-db', { binlogStreaming: { partialUploadInterval: Duration.minutes(10) } }),
      /source 'shop-db': binlogStreaming: partialUploadInterval 10 minutes must be whole seconds from 1 to 300/],
    ['a maximum age no longer than the partial interval', (stack) => mariadbSource(stack, 'shop-db', {
      binlogStreaming: { partialUploadInterval: Duration.seconds(120), maxArchiveAge: Duration.minutes(1) },
    }), /binlogStreaming: maxArchiveAge 1 minute must be longer than partialUploadInterval 2 minutes/],
    ['server id 0', (stack) => mariadbSource(stack, 'shop-db', { binlogStreaming: { serverId: 0 } }),
      /binlogStreaming: serverId 0 must be a whole number from 1 to 4294967295, unique among the server's replicas/],
    ['a start file that is no binlog name', (stack) => mariadbSource(stack, 'shop-db', { binlogStreaming: { startFile: '../etc/passwd' } }),
      /binlogStreaming: startFile '..\/etc\/passwd' is not a binlog file name/],
  ];
  test.each(cases)('given %s, then addSource throws', (_title, source, message) => {
    const { stack, backups } = backupsStack();
    expect(() => backups.addSource(source(stack))).toThrow(message);
  });
});
