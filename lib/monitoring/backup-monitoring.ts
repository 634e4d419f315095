import { Duration, Size } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { AlarmTopic, subscribeEmails } from './alarm-topic';
import { BackupDashboard } from './backup-dashboard';
import { BackupBucket } from '../store/backup-bucket';
import { BackupStore } from '../store/backup-store';
import { ReplicaStore } from '../store/replica-store';
import { METRIC_NAMESPACE, Metrics, SOURCE_DIMENSION } from '../contract/metrics';
import { ReportsCopy, sourceNameProblem } from '../contract/names';
import { RestorableError, wholeSeconds } from '../shared/errors';
import { MonitorFunction } from './monitor-function';
import { monitoringSettings, ratioFloorProblem } from './monitoring-settings';
import { MonitoringRuleSource, MonitoringRules, enableEventBridgeNotifications } from './monitoring-rules';
import {
  MonitoredWalArchive, WalAlarmContext, WalArchiveAlarms, addFleetWalAlarms, addSourceWalAlarms, walArchiveThresholds,
} from './wal-archive-monitoring';
import { BinlogAlarmContext, BinlogAlarms, MonitoredBinlog, addFleetBinlogAlarms, addSourceBinlogAlarms, binlogThresholds } from './binlog-monitoring';

export interface BackupMonitoringProps {
  /**
   * The store whose backups are watched: a BackupStore, or a ReplicaStore watched from its own stack (a vault in
   * another account, which the primary's monitoring cannot read): its freshness and restore-test age checks then
   * run there, on the copies replication brought. In a vault the restore-test age counts from the vault's own tests'
   * reports (`restore-tests/vault/latest.json`, VaultRestoreTesting's), never from the primary's replicated ones.
   */
  readonly store: BackupBucket;
  /**
   * Where alarms and the functions' findings go. If it is encrypted, its key must let CloudWatch, EventBridge
   * and the two functions use it.
   * @default - a topic is created, encrypted with a new customer-managed key that CloudWatch and EventBridge may use
   */
  readonly alarmTopic?: sns.ITopic;
  /**
   * Email addresses subscribed to the alarm topic (created or yours).
   * @default - no subscriptions
   */
  readonly alarmEmails?: string[];
  /**
   * How often the freshness check runs. Its alarms look at twice this period, so a late run does not alarm.
   * @default Duration.minutes(15)
   */
  readonly checkInterval?: Duration;
  /**
   * A new backup smaller than this fraction of the median of recent backups is an anomaly; a source may set its own.
   * @default 0.5
   */
  readonly sizeRatioFloor?: number;
  /**
   * How many earlier backups make the median the size check compares with.
   * @default 10
   */
  readonly sizeHistoryCount?: number;
  /**
   * How far back, in whole UTC days, the size check looks for those backups (one S3 LIST per day); up to 100 days.
   * @default Duration.days(35) - enough for weekly backups
   */
  readonly sizeHistory?: Duration;
  /**
   * Besides the fleet alarms, one age alarm and one or two size alarms per source. Worth it for a few sources;
   * with many, the fleet alarms and the functions' messages (which name the sources) scale better.
   * @default false
   */
  readonly perSourceAlarms?: boolean;
}

/** How one source is watched. */
export interface MonitoredSourceOptions {
  /** A source whose newest backup is older than this is stale. Give the RPO plus the time a backup takes. */
  readonly maxAge: Duration;
  /**
   * A stored backup smaller than this is an anomaly, whatever its history.
   * @default - no minimum
   */
  readonly minSize?: Size;
  /**
   * This source's size floor, as a fraction of the median of its recent backups.
   * @default - the construct's sizeRatioFloor
   */
  readonly sizeRatioFloor?: number;
  /**
   * The source archives its PostgreSQL WAL continuously (its base backups and WAL under `base/` and `wal/`): the
   * freshness check then also watches the age of its newest archived WAL, gaps in the WAL chain since its newest
   * base backup, and its base backup age.
   * @default - no WAL archive is watched
   */
  readonly walArchive?: MonitoredWalArchive;
  /**
   * The source's MariaDB binlogs are streamed (under `binlog/`): the freshness check then also watches the age of the
   * newest binlog object of its newest stream, and whether its binlogs replay without a gap from its newest dump.
   * @default - no binlog stream is watched
   */
  readonly binlog?: MonitoredBinlog;
}

export type { MonitoredWalArchive } from './wal-archive-monitoring';
export type { MonitoredBinlog } from './binlog-monitoring';

type MonitoredSource = MonitoringRuleSource;

/**
 * Watches every source of a store: a freshness check on a schedule (backup age, missing and dangling
 * pointers, restore-test age), a size check on every new manifest (a sudden drop against the median of
 * recent backups), fleet alarms by default, optional per-source alarms, an alarm topic and one dashboard.
 *
 * Sources reach the functions through EventBridge inputs, 25 sources per rule: the schedule's input carries
 * each source's threshold, and each manifest rule matches its sources' keys and carries their size limits.
 */
export class BackupMonitoring extends Construct {
  public readonly topic: sns.ITopic;
  public readonly freshnessFunction: lambda.IFunction;
  public readonly sizeAnomalyFunction: lambda.IFunction;
  /** One CloudWatch dashboard: fleet signals, alarms, then a row per source with room for restore-test widgets. */
  public readonly dashboard: BackupDashboard;
  /** Some source's newest backup is older than its maxAge (or the check stopped running). */
  public readonly staleBackupsAlarm: cloudwatch.Alarm;
  /** Some source has no backup at all, or its latest.json names a missing object. */
  public readonly noBackupsAlarm: cloudwatch.Alarm;
  /** The freshness check failed for some source (an unreadable pointer, S3 errors). */
  public readonly checkFailuresAlarm: cloudwatch.Alarm;
  /**
   * Some source's latest.json or restore-test report states a time S3 contradicts: in the future, or after the
   * LastModified of the object that bounds it. Forged (to look fresh) or written by a badly skewed clock.
   */
  public readonly forgedPointersAlarm: cloudwatch.Alarm;
  /** The newest backup of some source shrank below its floor or minimum. */
  public readonly sizeAnomalyAlarm: cloudwatch.Alarm;
  /** Objects failed to replicate, when the store is a BackupStore with a replica. */
  public readonly replicationFailedAlarm?: cloudwatch.Alarm;
  /** Events the freshness or size check still failed on after Lambda's retries. */
  public readonly deadLetterQueue: sqs.Queue;
  /** Fires while the dead-letter queue holds an event: a size check that failed would otherwise go unnoticed. */
  public readonly deadLetterAlarm: cloudwatch.Alarm;

  /** The store whose backups are watched. */
  public readonly store: BackupBucket;
  private readonly interval: Duration;
  private readonly defaultRatioFloor: number;
  private readonly perSourceAlarms: boolean;
  private readonly sources = new Map<string, MonitoredSource>();
  /** Sources whose restore tests are expected (expectRestoreTests): read at synth, so the order of calls does not matter. */
  private readonly restoreTested = new Set<string>();
  /** The schedules and manifest rules that bring the sources to the functions, 25 sources per rule. */
  private readonly rules: MonitoringRules;
  /** Read when the dashboard renders, so alarms added later appear too. */
  private readonly dashboardAlarms: cloudwatch.IAlarm[] = [];
  private watchedJobFailures?: cloudwatch.Alarm;
  /** Made with the first source that archives its WAL. */
  private walAlarms?: WalArchiveAlarms;
  /** Made with the first source whose binlogs are streamed. */
  private binlogAlarms?: BinlogAlarms;

  constructor(scope: Construct, id: string, props: BackupMonitoringProps) {
    super(scope, id);
    if (!props?.store) throw new RestorableError(this, 'store is required: the BackupStore (or ReplicaStore) whose backups are watched');
    this.store = props.store;
    const settings = monitoringSettings(this, props);
    this.interval = settings.interval;
    this.defaultRatioFloor = settings.ratioFloor;
    this.perSourceAlarms = props.perSourceAlarms ?? false;

    if (props.alarmTopic) {
      this.topic = props.alarmTopic;
      subscribeEmails(this, this.topic, props.alarmEmails ?? [], 'alarmEmails');
    } else {
      this.topic = new AlarmTopic(this, 'AlarmTopic', { emails: props.alarmEmails }).topic;
    }

    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    this.freshnessFunction = new MonitorFunction(this, 'FreshnessCheck', {
      handlerName: 'freshness-check',
      description: `Restorable freshness check of ${this.store.node.path}: backup age per source`,
      store: this.store,
      topic: this.topic,
      timeout: Duration.minutes(2),
      deadLetterQueue: this.deadLetterQueue,
      environment: {
        CHECK_INTERVAL_SECONDS: String(this.interval.toSeconds()),
        // A vault's own restore tests report apart from the primary's, which replication brings: only theirs count here.
        ...(this.store instanceof ReplicaStore && this.store.isVault ? { RESTORE_TESTS_SUBDIR: ReportsCopy.VAULT } : {}),
      },
    }).function;
    this.sizeAnomalyFunction = new MonitorFunction(this, 'SizeAnomaly', {
      handlerName: 'size-anomaly',
      description: `Restorable size check of ${this.store.node.path}: new backups against recent ones`,
      store: this.store,
      topic: this.topic,
      timeout: Duration.minutes(1),
      deadLetterQueue: this.deadLetterQueue,
      environment: {
        DEFAULT_RATIO_FLOOR: String(this.defaultRatioFloor),
        HISTORY_COUNT: String(settings.historyCount),
        HISTORY_DAYS: String(settings.historyDays),
      },
    }).function;
    enableEventBridgeNotifications(this, this.store);
    this.rules = new MonitoringRules(this, {
      store: this.store,
      interval: this.interval,
      freshnessFunction: this.freshnessFunction,
      sizeAnomalyFunction: this.sizeAnomalyFunction,
      isRestoreTested: (source) => this.restoreTested.has(source),
    });

    this.staleBackupsAlarm = this.alarm('StaleBackupsAlarm', this.metricFleetStaleness(), {
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      // Silence means the check stopped: nobody would know backups stopped either.
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      alarmDescription: 'A backup source is stale: its newest backup is older than its maxAge (the value is the worst age over its threshold). ' +
        'The freshness check\'s message names the source and its age.',
    });
    this.noBackupsAlarm = this.alarm('NoBackupsAlarm', this.metricSourcesWithoutBackup(), {
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      alarmDescription: 'No backups found for a source, or its latest.json points to a missing backup (the value is how many sources).',
    });
    this.checkFailuresAlarm = this.alarm('CheckFailuresAlarm', this.metricSourcesNotChecked(), {
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      alarmDescription: 'The freshness check could not check a source (unreadable latest.json or restore-test report, S3 errors); its logs and message say why.',
    });
    this.forgedPointersAlarm = this.alarm('ForgedPointersAlarm', this.metricForgedPointers(), {
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      // A check that stopped already breaches the staleness and no-backups alarms; this one speaks of forgeries only.
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription: 'A forged or skewed pointer: a latest.json or restore-test report states a time in the future or after S3 stored the object ' +
        'that bounds it (the value is how many sources). Ages come from the times S3 sets all the same; the freshness check\'s message names the ' +
        'source and the time. Find what wrote it: the backup and restore-test tasks are the store\'s writers.',
    });
    this.sizeAnomalyAlarm = this.alarm('SizeAnomalyAlarm', this.metricFleetSizeRatio(), {
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      // Data arrives only with new backups (staleness covers their absence): keep the newest backup's verdict until the next one.
      treatMissingData: cloudwatch.TreatMissingData.IGNORE,
      alarmDescription: 'A new backup is much smaller than recent ones, or under its minimum size: probably a broken dump. The size check\'s message names the source.',
    });
    // A failed freshness check also shows as missing data; a failed size check shows nowhere else.
    this.deadLetterAlarm = this.alarm('DeadLetterAlarm',
      this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5), statistic: cloudwatch.Stats.MAXIMUM }), {
        threshold: 0,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: 'The freshness or size check failed on an event after Lambda\'s retries. The event is in the dead-letter queue ' +
          '(the sources, or the new manifest that was not checked); the function\'s log says why.',
      });
    // Replication is the primary's to watch: a replica store has nothing to send on.
    if (this.store instanceof BackupStore && this.store.replica) {
      this.replicationFailedAlarm = this.alarm('ReplicationFailedAlarm', this.store.metricFailedReplication(), {
        threshold: 0,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        // S3 publishes replication metrics only while it replicates.
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: this.store.replica.isVault
          ? `Backups failed to replicate to the vault in account ${this.store.replica.account}: check the replication role (under ` +
            '/restorable/replication/), and that the vault\'s key and bucket policies still admit that path.'
          : 'Backups failed to replicate to the DR region: check the replication role and the replica key.',
      });
    }

    this.dashboard = new BackupDashboard(this, 'Dashboard', {
      title: `Restorable backups of ${this.store.node.path}`,
      staleness: this.metricFleetStaleness(),
      withoutBackup: this.metricSourcesWithoutBackup(),
      notChecked: this.metricSourcesNotChecked(),
      sizeSignal: this.metricFleetSizeRatio({ period: Duration.hours(1) }),
      alarms: this.dashboardAlarms,
    });
    this.node.addValidation({
      validate: () => (this.sources.size ? [] : ['BackupMonitoring watches no source: call addSource(name, { maxAge }) for each, or the stale-backups alarm fires for nothing']),
    });
    this.node.addValidation({
      validate: () => [...this.restoreTested].filter((name) => !this.sources.has(name)).map((name) =>
        `source '${name}' is restore-tested but BackupMonitoring does not watch it, so its restore tests are never checked and an overdue one never alarms: ` +
        `pass this BackupMonitoring to DatabaseBackups (monitoring), or call addSource('${name}', { maxAge })`),
    });
  }

  /**
   * Watch a source: its backup age on every check, its size on every new backup, and (with perSourceAlarms)
   * its own alarms. Adds the source's row to the dashboard.
   */
  public addSource(name: string, options: MonitoredSourceOptions): void {
    const problem = sourceNameProblem(name);
    if (problem) throw new RestorableError(this, problem);
    if (this.sources.has(name)) throw new RestorableError(this, `source '${name}' is already monitored; source names must be unique`);
    const problems: string[] = [];
    const maxAgeSeconds = wholeSeconds(`maxAge of source '${name}'`, options?.maxAge,
      { min: 1, example: 'Duration.hours(25) for daily backups' }, problems);
    const ratioFloor = options?.sizeRatioFloor ?? this.defaultRatioFloor;
    const floor = ratioFloorProblem(`sizeRatioFloor of source '${name}'`, ratioFloor);
    if (floor) problems.push(floor);
    const walArchive = walArchiveThresholds(name, options?.walArchive, problems);
    const binlog = binlogThresholds(name, options?.binlog, problems);
    if (options?.walArchive && options?.binlog) {
      problems.push(`source '${name}' has both walArchive and binlog: a PostgreSQL source archives WAL, a MariaDB source streams binlogs; give the one its engine has`);
    }
    if (problems.length) throw new RestorableError(this, problems.join('\n'));
    const source: MonitoredSource = {
      name,
      maxAgeSeconds,
      minSizeBytes: options.minSize?.toBytes(),
      ratioFloor,
      ...walArchive,
      ...binlog,
    };
    this.sources.set(name, source);
    this.rules.addSource(source);
    if (source.walMaxAgeSeconds !== undefined) this.walAlarms ??= addFleetWalAlarms(this.alarmContext());
    if (source.binlogMaxAgeSeconds !== undefined) this.binlogAlarms ??= addFleetBinlogAlarms(this.alarmContext());
    if (this.perSourceAlarms) this.addSourceAlarms(source);
    this.dashboard.addSourceRow(name, {
      age: this.metricBackupAge(name),
      maxAge: options.maxAge,
      ...options.walArchive ? { walAge: this.metricWalArchiveAge(name), walMaxAge: options.walArchive.maxAge } : {},
      ...options.binlog ? { binlogAge: this.metricBinlogArchiveAge(name), binlogMaxAge: options.binlog.maxAge } : {},
      size: this.metricBackupSize(name, { statistic: cloudwatch.Stats.MAXIMUM }),
      minSize: options.minSize,
    });
  }

  /**
   * Tell the freshness check that this source is restore-tested (RestoreTesting calls it for each source it
   * tests). Until its first restore-test report exists, the check then publishes the source's RestoreTestAgeSeconds
   * as the age of its oldest stored backup, so the overdue alarm fires once that backup is older than the overdue
   * window with still no report; without this, a source whose tests never report would never alarm while another
   * source has a report. The source must also be monitored (addSource), before or after this call.
   */
  public expectRestoreTests(source: string): void {
    const problem = sourceNameProblem(source);
    if (problem) throw new RestorableError(this, `expectRestoreTests: ${problem}`);
    this.restoreTested.add(source);
  }

  /**
   * Alarm when backup tasks fail: for example `DatabaseBackups.metricJobFailures()`. The metric counts
   * failures, so it has data only when something failed; no data is fine.
   */
  public watchJobFailures(metric: cloudwatch.IMetric): cloudwatch.Alarm {
    if (this.watchedJobFailures) {
      throw new RestorableError(this, `watchJobFailures was already called; combine several metrics with a cloudwatch.MathExpression (m1 + m2) and pass that once`);
    }
    this.watchedJobFailures = this.alarm('JobFailuresAlarm', metric, {
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription: 'A backup task failed (non-zero exit, or it could not start). The task-failure notification names the source and the reason.',
    });
    return this.watchedJobFailures;
  }

  /** Backup tasks failed, once `watchJobFailures` is called. */
  public get jobFailuresAlarm(): cloudwatch.Alarm | undefined {
    return this.watchedJobFailures;
  }

  /** Seconds since the source's newest good backup started (published by the freshness check; maximum per period). */
  public metricBackupAge(source: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(Metrics.BACKUP_AGE_SECONDS, cloudwatch.Stats.MAXIMUM, { [SOURCE_DIMENSION]: source }, props);
  }

  /** Stored size of each new backup of the source, in bytes (published by the size check). */
  public metricBackupSize(source: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(Metrics.BACKUP_SIZE_BYTES, cloudwatch.Stats.MINIMUM, { [SOURCE_DIMENSION]: source }, { period: Duration.hours(1), ...props });
  }

  /** Each new backup's size over the median of the source's recent ones. */
  public metricBackupSizeRatio(source: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(Metrics.BACKUP_SIZE_RATIO, cloudwatch.Stats.MINIMUM, { [SOURCE_DIMENSION]: source }, { period: Duration.hours(1), ...props });
  }

  /**
   * Seconds since the source's newest restore test finished, when it has one; for a restore-tested source with
   * none (expectRestoreTests), seconds since its oldest stored backup started.
   */
  public metricRestoreTestAge(source: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(Metrics.RESTORE_TEST_AGE_SECONDS, cloudwatch.Stats.MAXIMUM, { [SOURCE_DIMENSION]: source }, props);
  }

  /** The worst of the sources' restore-test ages (metricRestoreTestAge), in seconds: the oldest report, or a restore-tested source that never reported. */
  public metricFleetRestoreTestAge(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(Metrics.RESTORE_TEST_AGE_SECONDS, cloudwatch.Stats.MAXIMUM, undefined, props);
  }

  /** The worst backup age over its source's maxAge; above 1 means a source is stale. */
  public metricFleetStaleness(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(Metrics.FLEET_STALENESS_RATIO, cloudwatch.Stats.MAXIMUM, undefined, props);
  }

  /** Sources with no backup at all or a latest.json that names a missing object. */
  public metricSourcesWithoutBackup(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(Metrics.SOURCES_WITHOUT_BACKUP, cloudwatch.Stats.MAXIMUM, undefined, props);
  }

  /** Sources whose freshness check failed. */
  public metricSourcesNotChecked(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(Metrics.SOURCES_NOT_CHECKED, cloudwatch.Stats.MAXIMUM, undefined, props);
  }

  /** Sources whose latest.json or restore-test report states a time S3 contradicts (forged or skewed). */
  public metricForgedPointers(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(Metrics.FORGED_POINTERS, cloudwatch.Stats.MAXIMUM, undefined, props);
  }

  /** Each new backup's size against its limits, min(ratio / floor, size / minimum); below 1 is an anomaly. */
  public metricFleetSizeRatio(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(Metrics.FLEET_SIZE_RATIO, cloudwatch.Stats.MINIMUM, undefined, { period: Duration.minutes(5), ...props });
  }

  /**
   * Some WAL-archived source's newest archived WAL is older than its walArchive.maxAge (or the check stopped running),
   * once a source with walArchive is added.
   */
  public get walArchiveStaleAlarm(): cloudwatch.Alarm | undefined {
    return this.walAlarms?.stale;
  }

  /**
   * Some WAL-archived source has a gap in its WAL since its newest base backup, or no base backup: point-in-time
   * recovery cannot reach past it until a new base backup is taken. Once a source with walArchive is added.
   */
  public get walGapsAlarm(): cloudwatch.Alarm | undefined {
    return this.walAlarms?.gaps;
  }

  /** Some WAL-archived source's newest base backup is older than its walArchive.baseBackupMaxAge, once a source with walArchive is added. */
  public get baseBackupStaleAlarm(): cloudwatch.Alarm | undefined {
    return this.walAlarms?.baseStale;
  }

  /** Seconds since S3 stored the source's newest archived WAL object: its continuous RPO (published by the freshness check). */
  public metricWalArchiveAge(source: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(Metrics.WAL_ARCHIVE_AGE_SECONDS, cloudwatch.Stats.MAXIMUM, { [SOURCE_DIMENSION]: source }, props);
  }

  /** Seconds since S3 stored the source's newest base backup. */
  public metricBaseBackupAge(source: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(Metrics.BASE_BACKUP_AGE_SECONDS, cloudwatch.Stats.MAXIMUM, { [SOURCE_DIMENSION]: source }, props);
  }

  /** 1 while the source's WAL chain since its newest base backup has a gap (or it has no base backup); without a source, how many sources. */
  public metricWalGaps(source?: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(Metrics.WAL_GAPS, cloudwatch.Stats.MAXIMUM, source === undefined ? undefined : { [SOURCE_DIMENSION]: source }, props);
  }

  /** The worst WAL archive age over its source's walArchive.maxAge; above 1 means some source's WAL is stale. */
  public metricFleetWalStaleness(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(Metrics.FLEET_WAL_STALENESS_RATIO, cloudwatch.Stats.MAXIMUM, undefined, props);
  }

  /** The worst base backup age over its source's walArchive.baseBackupMaxAge; above 1 means some base backup is stale. */
  public metricFleetBaseBackupStaleness(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(Metrics.FLEET_BASE_BACKUP_STALENESS_RATIO, cloudwatch.Stats.MAXIMUM, undefined, props);
  }

  /**
   * Some binlog-streamed source's newest binlog object is older than its binlog.maxAge (or the check stopped running),
   * once a source with binlog is added.
   */
  public get binlogArchiveStaleAlarm(): cloudwatch.Alarm | undefined {
    return this.binlogAlarms?.stale;
  }

  /**
   * Some binlog-streamed source's binlogs cannot be replayed from its newest dump to its newest streamed event (a new
   * stream after the dump, a missing file, a dump without coordinates). Once a source with binlog is added.
   */
  public get binlogGapsAlarm(): cloudwatch.Alarm | undefined {
    return this.binlogAlarms?.gaps;
  }

  /** Seconds since S3 stored the newest binlog object of the source's newest stream: its continuous RPO (published by the freshness check). */
  public metricBinlogArchiveAge(source: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(Metrics.BINLOG_ARCHIVE_AGE_SECONDS, cloudwatch.Stats.MAXIMUM, { [SOURCE_DIMENSION]: source }, props);
  }

  /** 1 while the source's binlogs cannot be replayed from its newest dump to its newest event; without a source, how many sources. */
  public metricBinlogGaps(source?: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(Metrics.BINLOG_GAPS, cloudwatch.Stats.MAXIMUM, source === undefined ? undefined : { [SOURCE_DIMENSION]: source }, props);
  }

  /** The worst binlog archive age over its source's binlog.maxAge; above 1 means some source's binlogs are stale. */
  public metricFleetBinlogStaleness(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(Metrics.FLEET_BINLOG_STALENESS_RATIO, cloudwatch.Stats.MAXIMUM, undefined, props);
  }

  /** Every alarm this construct made, fleet and per source. */
  public get alarms(): readonly cloudwatch.IAlarm[] {
    return [...this.dashboardAlarms];
  }

  /** Freshness metrics are read over two check intervals, so that one late run is not silence. */
  private metric(metricName: string, statistic: string, dimensionsMap: Record<string, string> | undefined, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: METRIC_NAMESPACE,
      metricName,
      dimensionsMap,
      statistic,
      period: Duration.seconds(this.interval.toSeconds() * 2),
      ...props,
    });
  }

  private alarm(id: string, metric: cloudwatch.IMetric, options: Omit<cloudwatch.AlarmProps, 'metric' | 'evaluationPeriods'>, scope: Construct = this): cloudwatch.Alarm {
    const alarm = new cloudwatch.Alarm(scope, id, { metric, evaluationPeriods: 1, ...options });
    alarm.addAlarmAction(new cwActions.SnsAction(this.topic));
    this.dashboardAlarms.push(alarm);
    return alarm;
  }

  /** What the WAL archive and binlog alarms are made with: this construct's alarm maker, metrics and store. */
  private alarmContext(): WalAlarmContext & BinlogAlarmContext {
    return { alarm: (id, metric, options, scope) => this.alarm(id, metric, options, scope), store: this.store, monitoring: this };
  }

  private addSourceAlarms(source: MonitoredSource): void {
    const scope = new Construct(this, `Source-${source.name}`);
    if (source.walMaxAgeSeconds !== undefined) addSourceWalAlarms(this.alarmContext(), source, scope);
    if (source.binlogMaxAgeSeconds !== undefined) addSourceBinlogAlarms(this.alarmContext(), source, scope);
    this.alarm('BackupAgeAlarm', this.metricBackupAge(source.name), {
      threshold: source.maxAgeSeconds,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      alarmDescription: `Backups of ${source.name} are stale: the newest is older than ${source.maxAgeSeconds} s, or none exists.`,
    }, scope);
    this.alarm('SizeRatioAlarm', this.metricBackupSizeRatio(source.name, { period: Duration.minutes(5) }), {
      threshold: source.ratioFloor,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.IGNORE,
      alarmDescription: `The newest backup of ${source.name} is under ${source.ratioFloor} times the median of its recent backups.`,
    }, scope);
    if (source.minSizeBytes !== undefined) {
      this.alarm('MinSizeAlarm', this.metricBackupSize(source.name, { period: Duration.minutes(5) }), {
        threshold: source.minSizeBytes,
        comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.IGNORE,
        alarmDescription: `The newest backup of ${source.name} is under its minimum of ${source.minSizeBytes} bytes.`,
      }, scope);
    }
  }
}
