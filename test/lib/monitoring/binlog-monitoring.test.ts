/**
 * BackupMonitoring of MariaDB sources whose binlogs are streamed (addSource's binlog): the threshold reaches the
 * freshness check in the schedule's input, two fleet alarms are made once for all such sources, perSourceAlarms adds two
 * per source, the dashboard draws the binlog age beside the backup age, and mistakes are refused in words. Few
 * synths: each costs seconds.
 */
import { Duration } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { BackupMonitoring, MonitoredSourceOptions } from '../../../lib/monitoring/backup-monitoring';
import { standaloneStore } from '../store-fixtures';
import { alarmNamed, alarms, dashboardWidgets, description, requireMonitorAssets, scheduleSources } from './monitoring-fixtures';

requireMonitorAssets();

const STREAMED = { maxAge: Duration.hours(25), binlog: { maxAge: Duration.minutes(5) } };
const DUMPS_ONLY = { maxAge: Duration.hours(25) };


describe('BackupMonitoring of binlog-streamed sources', () => {
  test('given streamed sources with perSourceAlarms, then the threshold reaches the freshness check, two fleet alarms and two per source watch them, and the dashboard draws the binlog age', () => {
    const { stack, store } = standaloneStore({ prefix: 'db/' });
    const monitoring = new BackupMonitoring(stack, 'Monitoring', { store, perSourceAlarms: true });
    const sources: Record<string, MonitoredSourceOptions> = { 'shop-db': STREAMED, 'cms-db': { maxAge: Duration.hours(2), binlog: { maxAge: Duration.minutes(1) } }, 'logs-db': DUMPS_ONLY };
    for (const [name, options] of Object.entries(sources)) monitoring.addSource(name, options);
    const template = Template.fromStack(stack);

    expect(scheduleSources(template)).toEqual([
      { source: 'shop-db', maxAgeSeconds: 90000, binlog: { maxAgeSeconds: 300 } },
      { source: 'cms-db', maxAgeSeconds: 7200, binlog: { maxAgeSeconds: 60 } },
      { source: 'logs-db', maxAgeSeconds: 90000 },
    ]);
    expect(alarmNamed(template, 'MonitoringBinlogArchiveStaleAlarm').Properties).toEqual(expect.objectContaining({
      Namespace: 'Restorable', MetricName: 'FleetBinlogArchiveStalenessRatio', Statistic: 'Maximum', Period: 1800,
      ComparisonOperator: 'GreaterThanThreshold', Threshold: 1, TreatMissingData: 'breaching',
    }));
    const fleetGaps = alarmNamed(template, 'MonitoringBinlogGapsAlarm');
    expect(fleetGaps.Properties).toEqual(expect.objectContaining({ MetricName: 'BinlogArchiveGaps', Threshold: 0, TreatMissingData: 'notBreaching' }));
    expect(fleetGaps.Properties.Dimensions).toBeUndefined();
    expect(description(fleetGaps)).toContain('Run a dump now: start the source\'s scheduled dump task, or ' +
      '`restorable backup --source SOURCE --bucket BUCKET --prefix db/ --binlog-coordinates --recipient …` with its connection options');
    expect(description(fleetGaps)).toContain('the server purged a file before it was streamed, RESET MASTER, another server');
    expect(alarmNamed(template, 'MonitoringSourceshopdbBinlogArchiveAgeAlarm').Properties).toEqual(expect.objectContaining({
      MetricName: 'BinlogArchiveAgeSeconds', Dimensions: [{ Name: 'Source', Value: 'shop-db' }], Threshold: 300, TreatMissingData: 'breaching',
    }));
    const gaps = alarmNamed(template, 'MonitoringSourceshopdbBinlogGapsAlarm');
    expect(gaps.Properties).toEqual(expect.objectContaining({ MetricName: 'BinlogArchiveGaps', Dimensions: [{ Name: 'Source', Value: 'shop-db' }] }));
    expect(description(gaps)).toContain('`restorable backup --source shop-db --bucket BUCKET --prefix db/ --binlog-coordinates');
    expect(alarms(template).filter(([id]) => id.startsWith('MonitoringSourcelogsdbBinlog'))).toEqual([]);
    for (const alarm of [monitoring.binlogArchiveStaleAlarm, monitoring.binlogGapsAlarm]) expect(monitoring.alarms).toContain(alarm);
    expect(monitoring.walGapsAlarm).toBeUndefined();

    const age = dashboardWidgets(template).find((w) => w.properties.title === 'shop-db: backup age (s), binlog age (s)')!;
    expect(age.properties.metrics[1]).toEqual(['Restorable', 'BinlogArchiveAgeSeconds', 'Source', 'shop-db', { stat: 'Maximum', period: 1800 }]);
    expect(age.properties.annotations.horizontal[1]).toEqual(expect.objectContaining({ value: 300, label: 'binlog maxAge' }));
  });

  test('given no streamed source, then no binlog alarm is made; mistakes in binlog are refused in words', () => {
    const { stack, store } = standaloneStore();
    const monitoring = new BackupMonitoring(stack, 'Monitoring', { store });
    monitoring.addSource('logs-db', DUMPS_ONLY);
    expect(alarms(Template.fromStack(stack)).filter(([id]) => id.includes('Binlog'))).toEqual([]);
    expect([monitoring.binlogArchiveStaleAlarm, monitoring.binlogGapsAlarm]).toEqual([undefined, undefined]);

    const add = (options: unknown) => () => monitoring.addSource('shop-db', options as MonitoredSourceOptions);
    expect(add({ maxAge: Duration.hours(25), binlog: {} })).toThrow("binlog.maxAge of source 'shop-db' must be a Duration, for example Duration.minutes(5)");
    expect(add({ ...STREAMED, walArchive: { maxAge: Duration.minutes(5) } })).toThrow(
      "source 'shop-db' has both walArchive and binlog: a PostgreSQL source archives WAL, a MariaDB source streams binlogs");
  });
});
