/**
 * DatabaseBackups with monitoring: every source added is watched, with RPO + 1 hour as its freshness
 * threshold, and job failures notify the monitoring topic.
 */
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { BackupKeys, BackupMonitoring, BackupStore, DatabaseBackups } from '../../../lib';
import { ENV, SAMPLE_RECIPIENT, postgresSource, sampleVpc } from '../database-backups-fixture';

describe('given DatabaseBackups with monitoring', () => {
  const stack = new Stack(new App(), 'Backups', { env: ENV });
  const store = new BackupStore(stack, 'Store', {});
  const monitoring = new BackupMonitoring(stack, 'Monitoring', { store });
  const backups = new DatabaseBackups(stack, 'DatabaseBackups', {
    store, monitoring, vpc: sampleVpc(stack), keys: new BackupKeys(stack, 'Keys', { recipient: SAMPLE_RECIPIENT }),
  });

  test('when sources are added, then the freshness check watches each with RPO + 1 hour', () => {
    backups.addSource(postgresSource(stack, 'orders-db', { rpo: Duration.hours(1) }));
    backups.addSource(postgresSource(stack, 'billing-db', { rpo: Duration.days(1) }));
    const template = Template.fromStack(stack);
    const inputs = Object.values(template.findResources('AWS::Events::Rule'))
      .flatMap((rule) => (rule.Properties.Targets ?? []) as { Input?: string }[])
      .map((target) => target.Input ?? '')
      .filter((input) => input.includes('maxAgeSeconds'));
    expect(inputs).toHaveLength(1);
    expect(JSON.parse(inputs[0]).sources).toEqual([
      { source: 'orders-db', maxAgeSeconds: 7200 },
      { source: 'billing-db', maxAgeSeconds: 90000 },
    ]);
  });

  test('then job failures notify the monitoring topic', () => {
    const topicId = Stack.of(monitoring).getLogicalId(monitoring.topic.node.defaultChild as never);
    Template.fromStack(stack).hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'TriggeredRules',
      AlarmActions: Match.arrayWith([{ Ref: topicId }]),
    });
  });
});
