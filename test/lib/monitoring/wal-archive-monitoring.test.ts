/**
 * BackupMonitoring of sources that archive their WAL continuously (addSource's walArchive): the thresholds reach the
 * freshness check in the schedule's input, three fleet alarms are made once for all such sources (none for a store
 * without any), perSourceAlarms adds three per source, the dashboard draws the WAL age beside the backup age, and
 * mistakes are refused in words.
 */
import { Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { BackupMonitoring, BackupMonitoringProps, MonitoredSourceOptions } from '../../../lib/monitoring/backup-monitoring';
import { primaryWithReplica, standaloneStore } from '../store-fixtures';
import { alarmNamed, alarms, dashboardWidgets, description, requireMonitorAssets, scheduleSources } from './monitoring-fixtures';

requireMonitorAssets();

const WAL_ALARMS = ['MonitoringWalArchiveStaleAlarm', 'MonitoringWalGapsAlarm', 'MonitoringBaseBackupStaleAlarm'];

function monitored(sources: Record<string, MonitoredSourceOptions>, props: Partial<BackupMonitoringProps> = {}) {
  const fixture = primaryWithReplica({ prefix: 'db/' }, { prefix: 'db/' });
  const monitoring = new BackupMonitoring(fixture.primary, 'Monitoring', { store: fixture.store, ...props });
  for (const [name, options] of Object.entries(sources)) monitoring.addSource(name, options);
  return { ...fixture, monitoring, template: Template.fromStack(fixture.primary) };
}


const DUMPS_ONLY = { maxAge: Duration.hours(25) };
const ARCHIVED = { maxAge: Duration.hours(25), walArchive: { maxAge: Duration.minutes(5) } };

describe('BackupMonitoring of WAL-archived sources', () => {
  test('given no source with walArchive, then no WAL alarm is made and the schedule\'s input carries no wal thresholds', () => {
    const { template, monitoring } = monitored({ 'orders-db': DUMPS_ONLY });
    expect(alarms(template).filter(([id]) => WAL_ALARMS.some((w) => id.startsWith(w)))).toEqual([]);
    expect([monitoring.walArchiveStaleAlarm, monitoring.walGapsAlarm, monitoring.baseBackupStaleAlarm]).toEqual([undefined, undefined, undefined]);
  });

  test('given two archived sources, then their thresholds reach the freshness check, and three fleet alarms watch them all', () => {
    const { template, monitoring } = monitored({
      'orders-db': ARCHIVED,
      'users-db': { maxAge: Duration.hours(2), walArchive: { maxAge: Duration.minutes(2), baseBackupMaxAge: Duration.hours(8) } },
      'logs-db': DUMPS_ONLY,
    });
    expect(scheduleSources(template)).toEqual([
      { source: 'orders-db', maxAgeSeconds: 90000, wal: { maxAgeSeconds: 300, baseBackupMaxAgeSeconds: 90000 } },
      { source: 'users-db', maxAgeSeconds: 7200, wal: { maxAgeSeconds: 120, baseBackupMaxAgeSeconds: 28800 } },
      { source: 'logs-db', maxAgeSeconds: 90000 },
    ]);

    expect(alarmNamed(template, 'MonitoringWalArchiveStaleAlarm').Properties).toEqual(expect.objectContaining({
      Namespace: 'Restorable', MetricName: 'FleetWalArchiveStalenessRatio', Statistic: 'Maximum', Period: 1800,
      ComparisonOperator: 'GreaterThanThreshold', Threshold: 1, TreatMissingData: 'breaching',
    }));
    expect(alarmNamed(template, 'MonitoringWalGapsAlarm').Properties).toEqual(expect.objectContaining({
      MetricName: 'WalArchiveGaps', Statistic: 'Maximum', ComparisonOperator: 'GreaterThanThreshold', Threshold: 0, TreatMissingData: 'notBreaching',
    }));
    expect(alarmNamed(template, 'MonitoringWalGapsAlarm').Properties.Dimensions).toBeUndefined();
    expect(description(alarmNamed(template, 'MonitoringWalGapsAlarm'))).toContain('Take a new base backup now: run the source\'s base backup task, or ' +
      '`restorable basebackup --source SOURCE --bucket BUCKET --prefix db/ --recipient …` with its connection options');
    expect(alarmNamed(template, 'MonitoringBaseBackupStaleAlarm').Properties).toEqual(expect.objectContaining({
      MetricName: 'FleetBaseBackupStalenessRatio', Threshold: 1, TreatMissingData: 'notBreaching',
    }));
    for (const alarm of [monitoring.walArchiveStaleAlarm, monitoring.walGapsAlarm, monitoring.baseBackupStaleAlarm]) {
      expect(monitoring.alarms).toContain(alarm);
    }
  });

  test('given perSourceAlarms, then each archived source gets its WAL age, gap and base backup age alarms, naming it in the command', () => {
    const { template } = monitored({ 'orders-db': ARCHIVED, 'logs-db': DUMPS_ONLY }, { perSourceAlarms: true });
    expect(alarmNamed(template, 'MonitoringSourceordersdbWalArchiveAgeAlarm').Properties).toEqual(expect.objectContaining({
      MetricName: 'WalArchiveAgeSeconds', Dimensions: [{ Name: 'Source', Value: 'orders-db' }], Threshold: 300, TreatMissingData: 'breaching',
    }));
    const gaps = alarmNamed(template, 'MonitoringSourceordersdbWalGapsAlarm');
    expect(gaps.Properties).toEqual(expect.objectContaining({ MetricName: 'WalArchiveGaps', Dimensions: [{ Name: 'Source', Value: 'orders-db' }], Threshold: 0 }));
    expect(description(gaps)).toContain('`restorable basebackup --source orders-db --bucket BUCKET --prefix db/');
    expect(alarmNamed(template, 'MonitoringSourceordersdbBaseBackupAgeAlarm').Properties).toEqual(expect.objectContaining({
      MetricName: 'BaseBackupAgeSeconds', Threshold: 90000,
    }));
    expect(alarms(template).filter(([id]) => id.startsWith('MonitoringSourcelogsdbWal'))).toEqual([]);
  });

  test('the dashboard draws a source\'s WAL age and its threshold beside its backup age', () => {
    const { template } = monitored({ 'orders-db': ARCHIVED });
    const age = dashboardWidgets(template).find((w) => w.properties.title === 'orders-db: backup age (s), WAL age (s)')!;
    expect(age.properties.metrics).toEqual([
      ['Restorable', 'BackupAgeSeconds', 'Source', 'orders-db', { stat: 'Maximum', period: 1800 }],
      ['Restorable', 'WalArchiveAgeSeconds', 'Source', 'orders-db', { stat: 'Maximum', period: 1800 }],
    ]);
    expect(age.properties.annotations.horizontal).toEqual([
      expect.objectContaining({ value: 90000, label: 'maxAge' }), expect.objectContaining({ value: 300, label: 'WAL maxAge' }),
    ]);
  });

  test('thirty archived sources (two schedule rules) cost the monitoring three alarms more than thirty that are not: nothing per source', () => {
    const count = (options: MonitoredSourceOptions) => {
      const { stack, store } = standaloneStore();
      const monitoring = new BackupMonitoring(stack, 'Monitoring', { store });
      for (let i = 0; i < 30; i++) monitoring.addSource(`db-${i}`, options);
      return Object.keys(Template.fromStack(stack).toJSON().Resources).length;
    };
    expect(count(ARCHIVED) - count(DUMPS_ONLY)).toBe(3);
  });

  test('mistakes in walArchive are refused in words, naming the source and the property', () => {
    const add = (walArchive: unknown) => () => {
      const { stack, store } = standaloneStore();
      new BackupMonitoring(stack, 'Monitoring', { store }).addSource('orders-db', { maxAge: Duration.hours(25), walArchive: walArchive as never });
      Stack.of(stack);
    };
    expect(add({})).toThrow("walArchive.maxAge of source 'orders-db' must be a Duration, for example Duration.minutes(5)");
    expect(add({ maxAge: Duration.millis(1500) })).toThrow("walArchive.maxAge of source 'orders-db' must be a whole number of seconds");
    expect(add({ maxAge: Duration.minutes(5), baseBackupMaxAge: Duration.seconds(30) })).toThrow(
      "walArchive.baseBackupMaxAge of source 'orders-db' must be a whole number of seconds, at least 60 (got 30 seconds); for example Duration.hours(25)");
  });
});
