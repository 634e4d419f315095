/**
 * How BackupMonitoring watches a source that archives its PostgreSQL WAL continuously: the thresholds addSource takes,
 * and the alarms over what the freshness check publishes (WalArchiveAgeSeconds, WalArchiveGaps, BaseBackupAgeSeconds).
 * Three fleet alarms for all such sources, made with the first (a store without any pays nothing), and with
 * perSourceAlarms three more per source.
 */
import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { Construct } from 'constructs';
import { BackupBucket } from '../store/backup-bucket';
import { wholeSeconds } from '../shared/errors';
import type { MonitoringRuleSource } from './monitoring-rules';

/** How a source's continuous WAL archive is watched. */
export interface MonitoredWalArchive {
  /**
   * The newest archived WAL object (by the time S3 stored it) older than this alarms: the continuous RPO is broken.
   * Give the partial-upload interval (or archive_timeout with wal-push) plus the longest quiet time of the server: a
   * server that writes nothing archives nothing, and its newest WAL then ages while no data is at risk.
   */
  readonly maxAge: Duration;
  /**
   * The newest base backup (by the time S3 stored the object its base/latest.json names) older than this alarms: every
   * restore then replays more WAL, and WAL is kept only as long as the daily tier keeps objects.
   * @default Duration.hours(25) - a daily base backup schedule plus an hour
   */
  readonly baseBackupMaxAge?: Duration;
}

/** The fleet alarms of WAL-archived sources. */
export interface WalArchiveAlarms {
  readonly stale: cloudwatch.Alarm;
  readonly gaps: cloudwatch.Alarm;
  readonly baseStale: cloudwatch.Alarm;
}

/** The metrics the alarms watch, as BackupMonitoring reads them (its period: twice the check interval). */
export interface WalArchiveMetrics {
  metricWalArchiveAge(source: string): cloudwatch.IMetric;
  metricBaseBackupAge(source: string): cloudwatch.IMetric;
  metricWalGaps(source?: string): cloudwatch.IMetric;
  metricFleetWalStaleness(): cloudwatch.IMetric;
  metricFleetBaseBackupStaleness(): cloudwatch.IMetric;
}

/** What the alarms are made with: BackupMonitoring's alarm maker (which notifies its topic and shows on its dashboard), metrics and store. */
export interface WalAlarmContext {
  readonly alarm: (id: string, metric: cloudwatch.IMetric, options: Omit<cloudwatch.AlarmProps, 'metric' | 'evaluationPeriods'>, scope?: Construct) => cloudwatch.Alarm;
  readonly monitoring: WalArchiveMetrics;
  readonly store: BackupBucket;
}

const DEFAULT_BASE_BACKUP_MAX_AGE = Duration.hours(25);
const RPO_BROKEN = 'Check its WAL receiver service, or the server\'s archive_command (wal-push), and whether the server wrote anything at all.';

/** A watched WAL archive's thresholds in seconds, or none; problems are pushed, each naming its property. */
export function walArchiveThresholds(source: string, walArchive: MonitoredWalArchive | undefined, problems: string[]):
  Pick<MonitoringRuleSource, 'walMaxAgeSeconds' | 'baseBackupMaxAgeSeconds'> {
  if (walArchive === undefined) return {};
  return {
    walMaxAgeSeconds: wholeSeconds(`walArchive.maxAge of source '${source}'`, walArchive?.maxAge,
      { min: 1, example: 'Duration.minutes(5)' }, problems),
    baseBackupMaxAgeSeconds: wholeSeconds(`walArchive.baseBackupMaxAge of source '${source}'`, walArchive?.baseBackupMaxAge ?? DEFAULT_BASE_BACKUP_MAX_AGE,
      { min: 60, example: 'Duration.hours(25) for a daily base backup' }, problems),
  };
}

/**
 * What to do about a gap, in the alarms' words: run the source's task now (`lead`), or the agent's `command` with the
 * store's bucket and prefix; every time after it is restorable again.
 */
export function runNowAdvice(store: BackupBucket, source: string, lead: string, command: string, flags = ''): string {
  const prefix = store.prefix ? ` --prefix ${store.prefix}` : '';
  return `${lead}, or \`restorable ${command} --source ${source} --bucket ${store.bucket.bucketName}${prefix}${flags} --recipient …\` with its ` +
    'connection options; every time after it is restorable again.';
}

/** A new base backup makes every later time restorable again. */
const newBaseBackupAdvice = (store: BackupBucket, source: string) =>
  runNowAdvice(store, source, 'Take a new base backup now: run the source\'s base backup task', 'basebackup');

type AlarmOptions = Omit<cloudwatch.AlarmProps, 'metric' | 'evaluationPeriods'>;

/**
 * A continuous archive's staleness alarm: a fleet ratio above 1, or a source's age above its threshold. Silence means
 * the check stopped, as for the backups' staleness alarm.
 */
export const staleArchive = (threshold: number, alarmDescription: string): AlarmOptions => ({
  threshold, comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD, treatMissingData: cloudwatch.TreatMissingData.BREACHING, alarmDescription,
});

/** A continuous archive's gap alarm: any gap. A check that stopped already breaches the staleness alarm. */
export const archiveGap = (alarmDescription: string): AlarmOptions => ({
  threshold: 0, comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD, treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING, alarmDescription,
});

/** The three fleet alarms, over the worst source. */
export function addFleetWalAlarms({ alarm, monitoring, store }: WalAlarmContext): WalArchiveAlarms {
  return {
    stale: alarm('WalArchiveStaleAlarm', monitoring.metricFleetWalStaleness(), staleArchive(1,
      'A source\'s newest archived WAL is older than its walArchive.maxAge (the value is the worst age over its threshold): its ' +
        `continuous RPO is broken. ${RPO_BROKEN} The freshness check's message names the source and its newest WAL file.`)),
    gaps: alarm('WalGapsAlarm', monitoring.metricWalGaps(), archiveGap(
      'A source\'s archived WAL has a gap since its newest base backup (a missing segment, a timeline switch without its ' +
        'history file), or it has no base backup (the value is how many sources): point-in-time recovery cannot reach past the gap. ' +
        `${newBaseBackupAdvice(store, 'SOURCE')} The freshness check's message names the source, the missing WAL files and the command.`)),
    baseStale: alarm('BaseBackupStaleAlarm', monitoring.metricFleetBaseBackupStaleness(), {
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription: 'A source\'s newest base backup is older than its walArchive.baseBackupMaxAge (the value is the worst age over its ' +
        'threshold): a restore replays ever more WAL, and WAL is kept only as long as the daily tier. Check its base backup schedule.',
    }),
  };
}

/** With perSourceAlarms: a source's own three, in its scope. */
export function addSourceWalAlarms({ alarm, monitoring, store }: WalAlarmContext, source: MonitoringRuleSource, scope: Construct): void {
  alarm('WalArchiveAgeAlarm', monitoring.metricWalArchiveAge(source.name), staleArchive(source.walMaxAgeSeconds!,
    `The newest archived WAL of ${source.name} is older than ${source.walMaxAgeSeconds} s, or none was found: its continuous ` +
      `RPO is broken. ${RPO_BROKEN}`), scope);
  alarm('WalGapsAlarm', monitoring.metricWalGaps(source.name), archiveGap(
    `The archived WAL of ${source.name} has a gap since its newest base backup, or it has no base backup: point-in-time ` +
      `recovery cannot reach past it. ${newBaseBackupAdvice(store, source.name)}`), scope);
  alarm('BaseBackupAgeAlarm', monitoring.metricBaseBackupAge(source.name), {
    threshold: source.baseBackupMaxAgeSeconds!,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    alarmDescription: `The newest base backup of ${source.name} is older than ${source.baseBackupMaxAgeSeconds} s. Check its base backup schedule.`,
  }, scope);
}
