/**
 * RestoreTesting and overdue restore tests: the freshness check's input marks the restore-tested sources (so a
 * tested source that never reports counts as overdue), the overdue alarm watches the fleet's worst restore-test
 * age, and synthesis refuses sources that would silently go untested or unwatched.
 */
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { BackupKeys, BackupMonitoring, BackupStore, DatabaseBackups, RestoreTesting } from '../../../lib';
import { ENV, postgresSource, sampleVpc } from '../database-backups-fixture';

function parts(options: { monitorBackups?: boolean } = {}) {
  const app = new App();
  const stack = new Stack(app, 'Backups', { env: ENV });
  const store = new BackupStore(stack, 'Store', { prefix: 'backups' });
  const keys = new BackupKeys(stack, 'Keys', { replicaRegion: 'eu-central-1', replicaKeyAlias: 'alias/dr-secrets' });
  const monitoring = new BackupMonitoring(stack, 'Monitoring', { store });
  const backups = new DatabaseBackups(stack, 'DatabaseBackups', {
    store, keys, monitoring: options.monitorBackups === false ? undefined : monitoring, vpc: sampleVpc(stack),
  });
  return { app, stack, store, keys, monitoring, backups };
}

/** The freshness schedules' inputs, all chunks together. */
function freshnessInput(template: Template): { source: string; maxAgeSeconds: number; restoreTested?: boolean }[] {
  return Object.entries(template.findResources('AWS::Events::Rule'))
    .filter(([id]) => id.startsWith('MonitoringFreshnessSchedule'))
    .flatMap(([, rule]) => JSON.parse(rule.Properties.Targets[0].Input).sources);
}

test('the freshness check learns which sources are restore-tested, and the overdue alarm watches the fleet\'s worst restore-test age', () => {
  const { stack, store, keys, monitoring, backups } = parts();
  const orders = backups.addSource(postgresSource(stack, 'orders-db'));
  backups.addSource(postgresSource(stack, 'billing-db'));
  const testing = new RestoreTesting(stack, 'RestoreTesting', { backups, store, keys, monitoring, sources: [{ source: orders }] });
  const template = Template.fromStack(stack);

  // Only the tested source is marked: an untested source without a report is not overdue.
  expect(freshnessInput(template)).toEqual([
    { source: 'orders-db', maxAgeSeconds: expect.any(Number), restoreTested: true },
    { source: 'billing-db', maxAgeSeconds: expect.any(Number) },
  ]);
  const alarm = template.findResources('AWS::CloudWatch::Alarm')[stack.getLogicalId(testing.testOverdueAlarm.node.defaultChild as never)];
  expect(alarm.Properties).toMatchObject({
    Namespace: 'Restorable', MetricName: 'RestoreTestAgeSeconds', Statistic: 'Maximum', Threshold: 8 * 86400,
    ComparisonOperator: 'GreaterThanThreshold', TreatMissingData: 'breaching', EvaluationPeriods: 1,
  });
  expect(alarm.Properties.Dimensions).toBeUndefined();
  expect(alarm.Properties.AlarmDescription).toContain('a tested source has had a backup for 8 days and no restore-test report yet');
});

test('a source added to the restore tests later, with addSource, is marked too', () => {
  const { stack, store, keys, monitoring, backups } = parts();
  backups.addSource(postgresSource(stack, 'orders-db'));
  const testing = new RestoreTesting(stack, 'RestoreTesting', { backups, store, keys, monitoring });
  testing.addSource({ source: backups.addSource(postgresSource(stack, 'late-db')) });
  expect(freshnessInput(Template.fromStack(stack)).map((s) => [s.source, s.restoreTested])).toEqual([['orders-db', true], ['late-db', true]]);
});

test('given default sources, when a source is added to DatabaseBackups after RestoreTesting, then synthesis names it and says how to fix it', () => {
  const { app, stack, store, keys, monitoring, backups } = parts();
  backups.addSource(postgresSource(stack, 'orders-db'));
  new RestoreTesting(stack, 'RestoreTesting', { backups, store, keys, monitoring });
  backups.addSource(postgresSource(stack, 'late-db'));
  backups.addSource(postgresSource(stack, 'later-db'));
  expect(() => app.synth()).toThrow(/\[Backups\/RestoreTesting\] source\(s\) 'late-db', 'later-db' were added to DatabaseBackups after RestoreTesting was created, so they would never be restore-tested/);
  expect(() => app.synth()).toThrow('create RestoreTesting after adding every source, or call its addSource({ source }) for each');
});

test('given explicit sources, a source left out is a choice, not an error', () => {
  const { app, stack, store, keys, monitoring, backups } = parts();
  const orders = backups.addSource(postgresSource(stack, 'orders-db'));
  new RestoreTesting(stack, 'RestoreTesting', { backups, store, keys, monitoring, sources: [{ source: orders }] });
  backups.addSource(postgresSource(stack, 'late-db'));
  expect(() => app.synth()).not.toThrow();
});

test('given a source expected to be restore-tested that the monitoring does not watch, then synthesis says to monitor it', () => {
  // RestoreTesting can only test monitored sources (their dashboard rows must exist); a direct call is checked at synth.
  const { app, monitoring } = parts({ monitorBackups: false });
  monitoring.addSource('other-db', { maxAge: Duration.hours(1) });
  monitoring.expectRestoreTests('orders-db');
  expect(() => app.synth()).toThrow("[Backups/Monitoring] source 'orders-db' is restore-tested but BackupMonitoring does not watch it, so its restore " +
    "tests are never checked and an overdue one never alarms: pass this BackupMonitoring to DatabaseBackups (monitoring), or call addSource('orders-db', { maxAge })");
});
