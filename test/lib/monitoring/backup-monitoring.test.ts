import { App, Duration, Size, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import { AwsSolutionsChecks } from 'cdk-nag';
import { Metrics } from '../../../lib/contract';
import { BackupMonitoring, BackupMonitoringProps } from '../../../lib/monitoring/backup-monitoring';
import { BackupKeys } from '../../../lib/keys/backup-keys';
import { BackupStore } from '../../../lib/store/backup-store';
import { DatabaseBackups } from '../../../lib/backups/database-backups';
import { ReplicaStore } from '../../../lib/store/replica-store';
import { ENV, mariadbSource, postgresSource, sampleVpc } from '../database-backups-fixture';
import { ACCOUNT, PRIMARY_REGION, primaryWithReplica, standaloneStore } from '../store-fixtures';
import { Json, Resource, requireMonitorAssets } from './monitoring-fixtures';

requireMonitorAssets();

/** A store replicating to a DR region, monitored, with two sources: the shape the example app builds. */
function monitored(props: Partial<BackupMonitoringProps> = {}, configure?: (m: BackupMonitoring, store: BackupStore) => void) {
  const fixture = primaryWithReplica();
  const monitoring = new BackupMonitoring(fixture.primary, 'Monitoring', { store: fixture.store, alarmEmails: ['oncall@example.com'], ...props });
  monitoring.addSource('orders-db', { maxAge: Duration.hours(25), minSize: Size.mebibytes(1) });
  monitoring.addSource('users-db', { maxAge: Duration.hours(2), sizeRatioFloor: 0.7 });
  configure?.(monitoring, fixture.store);
  return { ...fixture, monitoring, template: Template.fromStack(fixture.primary) };
}

const resources = (template: Template, type: string): [string, Resource][] => Object.entries(template.findResources(type)) as [string, Resource][];
const alarmNamed = (template: Template, idPrefix: string): Resource => {
  const found = resources(template, 'AWS::CloudWatch::Alarm').filter(([id]) => id.startsWith(idPrefix));
  if (found.length !== 1) throw new Error(`expected one alarm starting with ${idPrefix}, found ${found.length}`);
  return found[0][1];
};
const TOPIC_REF = { Ref: expect.stringMatching(/^MonitoringAlarmTopic[0-9A-F]{8}$/) };

describe('BackupMonitoring alarms', () => {
  const { template, monitoring } = monitored({}, (m) => m.watchJobFailures(new cloudwatch.Metric({ namespace: 'Restorable', metricName: 'BackupJobFailures', statistic: 'Sum', period: Duration.minutes(5) })));

  test.each([
    // id, metric, statistic, period, comparison, threshold, missing data
    ['MonitoringStaleBackupsAlarm', 'FleetStalenessRatio', 'Maximum', 1800, 'GreaterThanThreshold', 1, 'breaching'],
    ['MonitoringNoBackupsAlarm', 'SourcesWithoutBackup', 'Maximum', 1800, 'GreaterThanThreshold', 0, 'breaching'],
    ['MonitoringCheckFailuresAlarm', 'SourcesNotChecked', 'Maximum', 1800, 'GreaterThanThreshold', 0, 'breaching'],
    ['MonitoringSizeAnomalyAlarm', 'FleetMinSizeRatio', 'Minimum', 300, 'LessThanThreshold', 1, 'ignore'],
    ['MonitoringForgedPointersAlarm', 'ForgedOrSkewedPointers', 'Maximum', 1800, 'GreaterThanThreshold', 0, 'notBreaching'],
    ['MonitoringJobFailuresAlarm', 'BackupJobFailures', 'Sum', 300, 'GreaterThanThreshold', 0, 'notBreaching'],
  ])('given defaults, then %s watches %s (%s over %i s) %s %d, missing data %s, and notifies the topic',
    (id, metricName, statistic, period, comparison, threshold, missing) => {
      expect(alarmNamed(template, id).Properties).toEqual(expect.objectContaining({
        Namespace: 'Restorable', MetricName: metricName, Statistic: statistic, Period: period, EvaluationPeriods: 1,
        ComparisonOperator: comparison, Threshold: threshold, TreatMissingData: missing, AlarmActions: [{ Ref: expect.stringMatching(/^MonitoringAlarmTopic/) }],
      }));
      expect(alarmNamed(template, id).Properties.Dimensions).toBeUndefined();
    });

  test('given defaults, then the forged-pointer alarm is one fleet alarm on the contract\'s metric, with words for who reads it', () => {
    const alarm = alarmNamed(template, 'MonitoringForgedPointersAlarm').Properties;
    expect(alarm.MetricName).toBe(Metrics.FORGED_POINTERS);
    expect(alarm.AlarmDescription).toContain('forged or skewed pointer');
    expect(alarm.AlarmDescription).toContain('names the source');
    expect(monitoring.forgedPointersAlarm.alarmArn).toBeDefined();
    expect(monitoring.alarms).toContain(monitoring.forgedPointersAlarm);
  });

  test('given a store with a replica, then failed replication alarms on the S3 replication metric, missing data not breaching', () => {
    expect(alarmNamed(template, 'MonitoringReplicationFailedAlarm').Properties).toEqual(expect.objectContaining({
      Namespace: 'AWS/S3', MetricName: 'OperationsFailedReplication', Statistic: 'Sum', Period: 300, Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold', TreatMissingData: 'notBreaching', AlarmActions: [{ Ref: expect.stringMatching(/^MonitoringAlarmTopic/) }],
    }));
  });

  test('given defaults, then there are fleet alarms only: none per source', () => {
    expect(resources(template, 'AWS::CloudWatch::Alarm').filter(([id]) => id.startsWith('Monitoring')).map(([id]) => id.replace(/[0-9A-F]{8}$/, '')).sort())
      .toEqual(['MonitoringCheckFailuresAlarm', 'MonitoringDeadLetterAlarm', 'MonitoringForgedPointersAlarm', 'MonitoringJobFailuresAlarm',
        'MonitoringNoBackupsAlarm', 'MonitoringReplicationFailedAlarm', 'MonitoringSizeAnomalyAlarm', 'MonitoringStaleBackupsAlarm']);
    expect(monitoring.alarms).toHaveLength(8);
  });

  test('given defaults, then an event either check failed on after its retries lands in an encrypted, TLS-only queue, which alarms to the topic', () => {
    const [[queueId, queue]] = resources(template, 'AWS::SQS::Queue');
    expect(queueId).toMatch(/^MonitoringDeadLetterQueue/);
    expect(queue.Properties).toEqual(expect.objectContaining({ SqsManagedSseEnabled: true, MessageRetentionPeriod: 14 * 24 * 3600 }));
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
    });
    const targets = resources(template, 'AWS::Lambda::Function').filter(([id]) => id.startsWith('Monitoring'))
      .map(([, fn]) => fn.Properties.DeadLetterConfig?.TargetArn);
    expect(targets).toEqual([{ 'Fn::GetAtt': [queueId, 'Arn'] }, { 'Fn::GetAtt': [queueId, 'Arn'] }]);
    expect(alarmNamed(template, 'MonitoringDeadLetterAlarm').Properties).toEqual(expect.objectContaining({
      Namespace: 'AWS/SQS', MetricName: 'ApproximateNumberOfMessagesVisible', Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [queueId, 'QueueName'] } }],
      Statistic: 'Maximum', Period: 300, ComparisonOperator: 'GreaterThanThreshold', Threshold: 0, TreatMissingData: 'notBreaching', AlarmActions: [TOPIC_REF],
    }));
  });

  test('given perSourceAlarms, then each source gets an age alarm (breaching) and size alarms (its floor, its minimum)', () => {
    const { template } = monitored({ perSourceAlarms: true });
    const props = (id: string) => alarmNamed(template, id).Properties;
    expect(props('MonitoringSourceordersdbBackupAgeAlarm')).toEqual(expect.objectContaining({
      MetricName: 'BackupAgeSeconds', Dimensions: [{ Name: 'Source', Value: 'orders-db' }], Statistic: 'Maximum', Period: 1800,
      Threshold: 90000, ComparisonOperator: 'GreaterThanThreshold', TreatMissingData: 'breaching', AlarmActions: [TOPIC_REF],
    }));
    expect(props('MonitoringSourceusersdbSizeRatioAlarm')).toEqual(expect.objectContaining({
      MetricName: 'BackupSizeRatio', Dimensions: [{ Name: 'Source', Value: 'users-db' }], Statistic: 'Minimum', Period: 300,
      Threshold: 0.7, ComparisonOperator: 'LessThanThreshold', TreatMissingData: 'ignore',
    }));
    expect(props('MonitoringSourceordersdbMinSizeAlarm')).toEqual(expect.objectContaining({
      MetricName: 'BackupSizeBytes', Dimensions: [{ Name: 'Source', Value: 'orders-db' }], Threshold: 1048576, ComparisonOperator: 'LessThanThreshold',
    }));
    // users-db has no minimum: no min-size alarm.
    expect(resources(template, 'AWS::CloudWatch::Alarm').filter(([id]) => id.startsWith('MonitoringSourceusersdbMinSize'))).toHaveLength(0);
  });

  test('metrics for users: per-source age and size in the Restorable namespace with the Source dimension', () => {
    const stack = Stack.of(monitoring);
    expect(stack.resolve(monitoring.metricBackupAge('orders-db').toMetricConfig().metricStat)).toMatchObject({
      namespace: 'Restorable', metricName: 'BackupAgeSeconds', dimensions: [{ name: 'Source', value: 'orders-db' }], statistic: 'Maximum',
    });
    expect(stack.resolve(monitoring.metricBackupSize('orders-db').toMetricConfig().metricStat)).toMatchObject({
      namespace: 'Restorable', metricName: 'BackupSizeBytes', dimensions: [{ name: 'Source', value: 'orders-db' }],
    });
    expect(monitoring.metricFleetRestoreTestAge().metricName).toBe('RestoreTestAgeSeconds');
  });
});

describe('BackupMonitoring triggers', () => {
  const { template } = monitored();

  test('given defaults, then the freshness check runs every 15 minutes with the sources and thresholds in its input', () => {
    const [[, rule]] = resources(template, 'AWS::Events::Rule').filter(([id]) => id.startsWith('MonitoringFreshnessSchedule'));
    expect(rule.Properties.ScheduleExpression).toBe('rate(15 minutes)');
    expect(rule.Properties.Targets).toHaveLength(1);
    expect(rule.Properties.Targets[0].Arn).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^MonitoringFreshnessCheckFunction/), 'Arn'] });
    expect(JSON.parse(rule.Properties.Targets[0].Input)).toEqual({ sources: [
      { source: 'orders-db', maxAgeSeconds: 90000 }, { source: 'users-db', maxAgeSeconds: 7200 },
    ] });
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction', Principal: 'events.amazonaws.com',
      FunctionName: { 'Fn::GetAtt': [Match.stringLikeRegexp('^MonitoringFreshnessCheckFunction'), 'Arn'] },
    });
  });

  test('given defaults, then each new manifest of a monitored source triggers the size check, with that source\'s limits', () => {
    const [[, rule]] = resources(template, 'AWS::Events::Rule').filter(([id]) => id.startsWith('MonitoringNewBackupRule'));
    expect(rule.Properties.EventPattern).toEqual({
      'source': ['aws.s3'],
      'detail-type': ['Object Created'],
      'detail': {
        bucket: { name: [{ Ref: expect.stringMatching(/^StoreBucket/) }] },
        object: { key: [{ wildcard: 'orders-db/*.manifest.json' }, { wildcard: 'users-db/*.manifest.json' }] },
      },
    });
    const target = rule.Properties.Targets[0];
    expect(target.Arn).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^MonitoringSizeAnomalyFunction/), 'Arn'] });
    expect(target.InputTransformer.InputPathsMap).toEqual({ detail: '$.detail' });
    expect(JSON.parse(target.InputTransformer.InputTemplate.replace('<detail>', '{}'))).toEqual({
      detail: {}, sources: { 'orders-db': { ratioFloor: 0.5, minSizeBytes: 1048576 }, 'users-db': { ratioFloor: 0.7 } },
    });
  });

  test('given defaults, then the store\'s bucket sends its events to EventBridge', () => {
    template.hasResourceProperties('AWS::S3::Bucket', { NotificationConfiguration: { EventBridgeConfiguration: { EventBridgeEnabled: true } } });
  });

  test('given 60 sources, then they are split over three schedules and three manifest rules of at most 25', () => {
    const { primary, store } = primaryWithReplica();
    const monitoring = new BackupMonitoring(primary, 'Monitoring', { store });
    for (let i = 0; i < 60; i++) monitoring.addSource(`db-${i}`, { maxAge: Duration.hours(2) });
    const rules = resources(Template.fromStack(primary), 'AWS::Events::Rule');
    const inputs = rules.filter(([id]) => id.startsWith('MonitoringFreshnessSchedule')).map(([, r]) => JSON.parse(r.Properties.Targets[0].Input).sources.length);
    expect(inputs.sort()).toEqual([10, 25, 25]);
    const patterns = rules.filter(([id]) => id.startsWith('MonitoringNewBackupRule')).map(([, r]) => r.Properties.EventPattern.detail.object.key.length);
    expect(patterns.sort()).toEqual([10, 25, 25]);
    // The biggest input stays far below EventBridge's 8192-character limit on a target input.
    expect(Math.max(...rules.map(([, r]) => (r.Properties.Targets[0].Input ?? r.Properties.Targets[0].InputTransformer.InputTemplate).length))).toBeLessThan(4000);
  });
});

describe('BackupMonitoring topic', () => {
  test('given no topic, then one is created, encrypted with a rotating, retained key that CloudWatch and EventBridge may use', () => {
    const { template } = monitored();
    const [[keyId, key]] = resources(template, 'AWS::KMS::Key').filter(([id]) => id.startsWith('MonitoringAlarmTopicKey'));
    expect(key.Properties.EnableKeyRotation).toBe(true);
    expect(template.toJSON().Resources[keyId]).toMatchObject({ DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
    expect(key.Properties.KeyPolicy.Statement).toContainEqual({
      Sid: 'AlarmPublishersUseTheKey', Effect: 'Allow',
      Principal: { Service: ['cloudwatch.amazonaws.com', 'events.amazonaws.com'] },
      Action: ['kms:Decrypt', 'kms:GenerateDataKey*'], Resource: '*',
    });
    template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: { 'Fn::GetAtt': [keyId, 'Arn'] } });
    template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'oncall@example.com' });
    template.hasResourceProperties('AWS::SNS::TopicPolicy', { PolicyDocument: { Statement: Match.arrayWith([
      Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
      Match.objectLike({ Principal: { Service: 'cloudwatch.amazonaws.com' }, Action: 'sns:Publish',
        Condition: { StringEquals: { 'aws:SourceAccount': ACCOUNT }, ArnLike: { 'aws:SourceArn': Match.anyValue() } } }),
    ]) } });
    const [[, policy]] = resources(template, 'AWS::SNS::TopicPolicy');
    const sourceArn = policy.Properties.PolicyDocument.Statement[1].Condition.ArnLike['aws:SourceArn'];
    expect(sourceArn).toEqual({ 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:cloudwatch:${PRIMARY_REGION}:${ACCOUNT}:alarm:*`]] });
  });

  test('given your own topic, then no topic or key is created, and alarms and email subscriptions use yours', () => {
    const { primary, store } = primaryWithReplica();
    const topic = sns.Topic.fromTopicArn(primary, 'Ops', `arn:aws:sns:${PRIMARY_REGION}:${ACCOUNT}:ops`);
    const monitoring = new BackupMonitoring(primary, 'Monitoring', { store, alarmTopic: topic, alarmEmails: ['oncall@example.com'] });
    monitoring.addSource('orders-db', { maxAge: Duration.hours(25) });
    const template = Template.fromStack(primary);
    template.resourceCountIs('AWS::SNS::Topic', 0);
    expect(resources(template, 'AWS::KMS::Key').filter(([id]) => id.startsWith('Monitoring'))).toHaveLength(0);
    expect(alarmNamed(template, 'MonitoringStaleBackupsAlarm').Properties.AlarmActions).toEqual([topic.topicArn]);
    template.hasResourceProperties('AWS::SNS::Subscription', { TopicArn: topic.topicArn, Endpoint: 'oncall@example.com' });
  });
});

describe('BackupMonitoring function policies', () => {
  const { template } = monitored();
  const statementsOf = (rolePrefix: string) => resources(template, 'AWS::IAM::Policy')
    .filter(([id]) => id.startsWith(rolePrefix))
    .flatMap(([, p]) => p.Properties.PolicyDocument.Statement as Json[]);
  const actionsOf = (s: Json) => [s.Action].flat() as string[];

  test.each(['MonitoringFreshnessCheckRole', 'MonitoringSizeAnomalyRole'])('%s reads the store and writes nothing to it', (role) => {
    const statements = statementsOf(role);
    const actions = statements.flatMap(actionsOf);
    expect(actions.filter((a) => a.startsWith('s3:')).sort()).toEqual(['s3:GetObject', 's3:ListBucket']);
    expect(actions.filter((a) => /^s3:(Put|Delete|Restore|Abort|Bypass)/.test(a) || a === 's3:*')).toEqual([]);
    expect(actions.filter((a) => a.startsWith('kms:') && !['kms:Decrypt', 'kms:GenerateDataKey*'].includes(a))).toEqual([]);
    // Its KMS use on the store key is through S3 only.
    expect(statements.find((s) => actionsOf(s).includes('kms:Decrypt') && JSON.stringify(s.Resource).includes('StoreKey'))!.Condition)
      .toEqual({ StringEquals: { 'kms:ViaService': `s3.${PRIMARY_REGION}.amazonaws.com` } });
  });

  test.each(['MonitoringFreshnessCheckRole', 'MonitoringSizeAnomalyRole'])('%s puts metrics only into the Restorable namespace and publishes only to the topic', (role) => {
    const statements = statementsOf(role);
    expect(statements.filter((s) => actionsOf(s).includes('cloudwatch:PutMetricData'))).toEqual([{
      Effect: 'Allow', Action: 'cloudwatch:PutMetricData', Resource: '*', Condition: { StringEquals: { 'cloudwatch:namespace': 'Restorable' } },
    }]);
    expect(statements.filter((s) => actionsOf(s).includes('sns:Publish')).map((s) => s.Resource)).toEqual([TOPIC_REF]);
  });

  test('the functions run on nodejs22.x from the prebundled assets, and know their bucket, prefix, topic and settings', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs22.x', Handler: 'index.handler',
      Environment: { Variables: { BUCKET_NAME: { Ref: Match.stringLikeRegexp('^StoreBucket') }, KEY_PREFIX: '', TOPIC_ARN: { Ref: Match.stringLikeRegexp('^MonitoringAlarmTopic') }, CHECK_INTERVAL_SECONDS: '900' } },
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs22.x',
      Environment: { Variables: Match.objectLike({ DEFAULT_RATIO_FLOOR: '0.5', HISTORY_COUNT: '10', HISTORY_DAYS: '35' }) },
    });
  });
});

describe('BackupMonitoring dashboard', () => {
  const { template, monitoring } = monitored({ perSourceAlarms: true }, (m) => m.dashboard.addSourceWidget('orders-db', new cloudwatch.TextWidget({ markdown: 'restore tests here', width: 8 })));
  const body = () => {
    const [[, dashboard]] = resources(template, 'AWS::CloudWatch::Dashboard');
    // Alarm ARNs are tokens inside JSON strings: stand a placeholder in for them.
    const joined = (dashboard.Properties.DashboardBody['Fn::Join'][1] as unknown[]).map((p) => (typeof p === 'string' ? p : 'TOKEN')).join('');
    return JSON.parse(joined) as { widgets: Array<{ type: string; x: number; y: number; width: number; properties: Json }> };
  };

  test('shows per source the backup age against its maxAge, and the size over time', () => {
    const widgets = body().widgets;
    const age = widgets.find((w) => w.properties.title === 'orders-db: backup age (s)')!;
    expect(age.properties.metrics).toEqual([['Restorable', 'BackupAgeSeconds', 'Source', 'orders-db', { stat: 'Maximum', period: 1800 }]]);
    expect(age.properties.annotations.horizontal).toEqual([expect.objectContaining({ value: 90000, label: 'maxAge' })]);
    const size = widgets.find((w) => w.properties.title === 'users-db: backup size (bytes)')!;
    expect(size.properties.metrics).toEqual([['Restorable', 'BackupSizeBytes', 'Source', 'users-db', { stat: 'Maximum', period: 3600 }]]);
  });

  test('leaves each source row a third free for its restore-test widgets, and shows every alarm, even those added later', () => {
    const widgets = body().widgets;
    const age = widgets.find((w) => w.properties.title === 'orders-db: backup age (s)')!;
    const restore = widgets.find((w) => w.properties.markdown === 'restore tests here')!;
    expect([age.width, restore.y, restore.x]).toEqual([8, age.y, 16]);
    const status = widgets.find((w) => w.type === 'alarm')!;
    expect(status.properties.alarms).toHaveLength(monitoring.alarms.length);
    expect(monitoring.alarms.length).toBe(7 + 2 + 3); // fleet (with replication, dead letters and forged pointers) + users-db + orders-db
    for (const title of ['Worst backup age / threshold (above 1: stale)', 'New backup size / its limits (below 1: anomaly)']) {
      expect(widgets.find((w) => w.properties.title === title)!.properties.annotations.horizontal[0].value).toBe(1);
    }
  });
});

describe('BackupMonitoring bad input', () => {
  const build = (props: Partial<BackupMonitoringProps> = {}) => {
    const { stack, store } = standaloneStore();
    return new BackupMonitoring(stack, 'Monitoring', { store, ...props });
  };
  test.each([
    ['an invalid source name', (m: BackupMonitoring) => m.addSource('Orders_DB', { maxAge: Duration.hours(1) }), /source name 'Orders_DB' is invalid: use 1 to 48 characters of a-z, 0-9 and '-'/],
    ['a duplicate source', (m: BackupMonitoring) => { m.addSource('a', { maxAge: Duration.hours(1) }); m.addSource('a', { maxAge: Duration.hours(1) }); }, /source 'a' is already monitored/],
    ['a zero maxAge', (m: BackupMonitoring) => m.addSource('a', { maxAge: Duration.seconds(0) }), /^Standalone\/Monitoring: maxAge of source 'a' must be a whole number of seconds, at least 1 \(got 0 seconds\)/],
    ['a floor of 1.5', (m: BackupMonitoring) => m.addSource('a', { maxAge: Duration.hours(1), sizeRatioFloor: 1.5 }), /sizeRatioFloor of source 'a' must be between 0 and 1 \(got 1.5\)/],
    ['a second job-failure metric', (m: BackupMonitoring) => { const metric = m.metricFleetStaleness(); m.watchJobFailures(metric); m.watchJobFailures(metric); }, /watchJobFailures was already called; combine several metrics/],
  ])('given %s, then synth fails with a clear message', (_name, act, message) => {
    expect(() => act(build())).toThrow(message);
  });
  test.each([
    ['a 30-second check interval', { checkInterval: Duration.seconds(30) },
      /^Standalone\/Monitoring: checkInterval must be a whole number of minutes, from 1 to 720 \(got 30 seconds\): its alarms look at twice the interval/],
    ['a 13-hour check interval', { checkInterval: Duration.hours(13) }, /checkInterval must be a whole number of minutes, from 1 to 720 \(got 13 hours\)/],
    ['a size floor of 0', { sizeRatioFloor: 0 }, /^Standalone\/Monitoring: sizeRatioFloor must be between 0 and 1 \(got 0\)/],
    ['500 days of size history', { sizeHistory: Duration.days(500) },
      /^Standalone\/Monitoring: sizeHistory must be a whole number of days, from 1 to 100 \(got 500 days\): each day of history costs the size check one S3 LIST; for example Duration.days\(35\)/],
    ['a history count of 0', { sizeHistoryCount: 0 }, /sizeHistoryCount must be a whole number from 1 to 100 \(got 0\)/],
    ['sizeHistoryDays, as 0.1 named it', { sizeHistoryDays: 20 }, /sizeHistoryDays was renamed: use sizeHistory: Duration.days\(35\)/],
    ['an email without @', { alarmEmails: ['not-an-address'] }, /^Standalone\/Monitoring: alarmEmails: 'not-an-address' is not an email address/],
  ])('given %s, then the construct fails with a clear message', (_name, props, message) => {
    expect(() => build(props as Partial<BackupMonitoringProps>)).toThrow(message);
  });
  test('given no source, then synth fails and says to call addSource', () => {
    const { stack, store } = standaloneStore();
    new BackupMonitoring(stack, 'Monitoring', { store });
    expect(() => Template.fromStack(stack)).toThrow(/BackupMonitoring watches no source: call addSource/);
  });
});

describe('BackupMonitoring at scale', () => {
  test('given 100 sources, then monitoring adds a fixed set of resources plus 4 per 25 sources', () => {
    const count = (sources: number) => {
      const { primary, store } = primaryWithReplica();
      const monitoring = new BackupMonitoring(primary, 'Monitoring', { store });
      for (let i = 0; i < sources; i++) monitoring.addSource(`db-${i}`, { maxAge: Duration.hours(2) });
      return Object.keys(Template.fromStack(primary).toJSON().Resources).filter((id) => id.startsWith('Monitoring')).length;
    };
    const one = count(1);
    const hundred = count(100);
    expect(one).toBe(25);
    expect(hundred).toBe(one + 3 * 4);
  });
});

describe('BackupMonitoring over 100 scheduled sources (the scale test, monitoring on)', () => {
  test('DatabaseBackups with 100 sources and BackupMonitoring watching them stay under 450 resources, cdk-nag clean', () => {
    const app = new App();
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    const replica = new ReplicaStore(new Stack(app, 'ScaleReplica', { env: { ...ENV, region: 'eu-central-1' } }), 'Replica');
    const stack = new Stack(app, 'Scale', { env: ENV });
    const store = new BackupStore(stack, 'Store', { replica });
    const keys = new BackupKeys(stack, 'Keys', { replicaRegion: replica.region, replicaKeyAlias: replica.keyAliasName });
    const monitoring = new BackupMonitoring(stack, 'Monitoring', { store, alarmEmails: ['oncall@example.com'] });
    const backups = new DatabaseBackups(stack, 'DatabaseBackups', { store, keys, vpc: sampleVpc(stack, true), vpcEndpoints: true, alarmTopic: monitoring.topic });
    for (let i = 0; i < 100; i++) {
      const name = `db-${String(i).padStart(3, '0')}`;
      const source = backups.addSource(i % 2 === 0 ? postgresSource(stack, name, { rpo: Duration.hours(1 + (i % 12)) }) : mariadbSource(stack, name));
      // Stale once a backup is an hour later than the RPO allows.
      monitoring.addSource(source.name, { maxAge: source.rpo.plus(Duration.hours(1)) });
    }
    monitoring.watchJobFailures(backups.metricJobFailures());
    const started = Date.now();
    const template = app.synth().getStackByName('Scale').template as { Resources: Record<string, { Type: string }> };
    const ids = Object.keys(template.Resources);
    const monitoringResources = ids.filter((id) => id.startsWith('Monitoring')).length;
    console.log(`scale with monitoring: ${ids.length} resources, ${monitoringResources} of them monitoring; synth ${((Date.now() - started) / 1000).toFixed(1)} s`);
    expect(ids.length).toBeLessThan(450);
    // Fixed part, one email subscription, the job-failure alarm, and 4 per 25 sources.
    expect(monitoringResources).toBe(25 + 1 + 1 + 3 * 4);
  });
});

describe('cdk-nag AwsSolutions', () => {
  test.each([
    ['fleet alarms, created topic', {}],
    ['per-source alarms, your own topic', { perSourceAlarms: true, ownTopic: true }],
  ])('BackupMonitoring over a replicated store has no unacknowledged findings: %s', (_name, options: { perSourceAlarms?: boolean; ownTopic?: boolean }) => {
    const { app, primary, store } = primaryWithReplica();
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    const topic = options.ownTopic ? new sns.Topic(primary, 'Ops', { enforceSSL: true, masterKey: new kms.Key(primary, 'OpsKey', { enableKeyRotation: true }) }) : undefined;
    const monitoring = new BackupMonitoring(primary, 'Monitoring', { store, alarmTopic: topic, perSourceAlarms: options.perSourceAlarms, alarmEmails: ['oncall@example.com'] });
    monitoring.addSource('orders-db', { maxAge: Duration.hours(25), minSize: Size.mebibytes(1) });
    expect(() => app.synth()).not.toThrow();
  });
});

describe('BackupMonitoring of a replica store, watched from its own stack', () => {
  test('given a ReplicaStore, then the checks read its bucket, and no replication alarm is made (the primary watches replication)', () => {
    const { replicaStack, replica } = primaryWithReplica();
    const monitoring = new BackupMonitoring(replicaStack, 'VaultMonitoring', { store: replica });
    monitoring.addSource('orders-db', { maxAge: Duration.hours(25) });
    const template = Template.fromStack(replicaStack);

    const bucketRef = { Ref: expect.stringMatching(/^ReplicaStoreBucket[0-9A-F]{8}$/) };
    const functions = resources(template, 'AWS::Lambda::Function').map(([, f]) => f.Properties.Environment?.Variables).filter((v) => v?.BUCKET_NAME);
    expect(functions).toHaveLength(2);
    for (const variables of functions) expect(variables.BUCKET_NAME).toEqual(bucketRef);
    expect(monitoring.replicationFailedAlarm).toBeUndefined();
    expect(resources(template, 'AWS::CloudWatch::Alarm').map(([id]) => id).filter((id) => id.includes('Replication'))).toEqual([]);
    // New manifests reach the size check: the replica's bucket notifies EventBridge.
    expect(onlyBucket(template).Properties.NotificationConfiguration).toEqual({ EventBridgeConfiguration: { EventBridgeEnabled: true } });
  });

  /** Each function's RESTORE_TESTS_SUBDIR, by its construct id. */
  const subdirs = (template: Template) => Object.fromEntries(resources(template, 'AWS::Lambda::Function')
    .filter(([, f]) => f.Properties.Environment?.Variables?.BUCKET_NAME)
    .map(([id, f]) => [id.replace(/[0-9A-F]{8}$/, ''), f.Properties.Environment.Variables.RESTORE_TESTS_SUBDIR]));

  test('given a vault, then its freshness check counts its own restore tests\' reports, RESTORE_TESTS_SUBDIR=vault; the size check is not told', () => {
    const app = new App();
    const vaultStack = new Stack(app, 'Vault', { env: { account: '222222222222', region: 'eu-central-1' } });
    const vault = new ReplicaStore(vaultStack, 'Vault', { primaryAccount: ACCOUNT });
    new BackupMonitoring(vaultStack, 'VaultMonitoring', { store: vault }).addSource('orders-db', { maxAge: Duration.hours(25) });
    expect(subdirs(Template.fromStack(vaultStack))).toEqual({ VaultMonitoringFreshnessCheckFunction: 'vault', VaultMonitoringSizeAnomalyFunction: undefined });
  });

  test('given a same-account replica or the primary store, then no RESTORE_TESTS_SUBDIR: the top-level reports count', () => {
    const { replicaStack, replica } = primaryWithReplica();
    new BackupMonitoring(replicaStack, 'ReplicaMonitoring', { store: replica }).addSource('orders-db', { maxAge: Duration.hours(25) });
    expect(Object.values(subdirs(Template.fromStack(replicaStack)))).toEqual([undefined, undefined]);
    expect(Object.values(subdirs(monitored().template))).toEqual([undefined, undefined]);
  });
});

function onlyBucket(template: Template): Resource {
  const buckets = resources(template, 'AWS::S3::Bucket').filter(([id]) => /^ReplicaStoreBucket[0-9A-F]{8}$/.test(id));
  if (buckets.length !== 1) throw new Error(`expected the replica's bucket, found ${buckets.length}`);
  return buckets[0][1];
}

test('given a store replicating to a vault in another account, then its replication alarm names the vault\'s account and what admits the replication', () => {
  const app = new App();
  const vaultStack = new Stack(app, 'Vault', { env: { account: '222222222222', region: 'eu-central-1' } });
  const vault = new ReplicaStore(vaultStack, 'Vault', { primaryAccount: ACCOUNT });
  const primary = new Stack(app, 'Primary', { env: { account: ACCOUNT, region: PRIMARY_REGION } });
  const store = new BackupStore(primary, 'Store', { replica: vault });
  const monitoring = new BackupMonitoring(primary, 'Monitoring', { store });
  monitoring.addSource('orders-db', { maxAge: Duration.hours(25) });
  expect(alarmNamed(Template.fromStack(primary), 'MonitoringReplicationFailedAlarm').Properties.AlarmDescription)
    .toBe('Backups failed to replicate to the vault in account 222222222222: check the replication role (under /restorable/replication/), ' +
      'and that the vault\'s key and bucket policies still admit that path.');
});
