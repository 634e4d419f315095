import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { BackupMonitoring } from '../monitoring/backup-monitoring';
import { METRIC_NAMESPACE, Metrics, SOURCE_DIMENSION } from '../contract/metrics';

/** A restore test that has not run for this long is overdue (one missed week plus a day). */
export const RESTORE_TEST_OVERDUE = Duration.days(8);

export interface RestoreTestAlarmsProps {
  /** Its topic receives the alarms; its dashboard gains the alarms' status and each source's restore-test widgets. */
  readonly monitoring: BackupMonitoring;
  /**
   * One failed-test alarm per source (and one RTO alarm per source with an rtoTarget) besides the fleet alarms.
   * @default false
   */
  readonly perSourceAlarms?: boolean;
  /**
   * A source whose newest restore test is older than this is overdue: the schedule's longest gap plus a day.
   * @default RESTORE_TEST_OVERDUE (8 days, for weekly tests)
   */
  readonly overdueAfter?: Duration;
}

/** The fleet alarms of a RestoreTesting (addFleetAlarms). */
export interface RestoreTestFleetAlarms {
  readonly testFailed: cloudwatch.Alarm;
  readonly testOverdue: cloudwatch.Alarm;
  readonly orchestrationFailed: cloudwatch.Alarm;
}

/**
 * How restore tests are watched: the restore-test metrics, the fleet alarms (a failed test, an overdue test, the
 * orchestration failing), the RTO alarms, and the restore-test widgets of the monitoring dashboard.
 * RestoreTesting makes one and delegates to it. The alarms are created in the given scope (the RestoreTesting),
 * so their construct ids, and the logical ids of deployed alarms, are those of the RestoreTesting's own children.
 */
export class RestoreTestAlarms {
  private readonly scope: Construct;
  private readonly monitoring: BackupMonitoring;
  private readonly perSourceAlarms: boolean;
  private readonly overdueAfter: Duration;
  private readonly alarms: cloudwatch.Alarm[] = [];

  constructor(scope: Construct, props: RestoreTestAlarmsProps) {
    this.scope = scope;
    this.monitoring = props.monitoring;
    this.perSourceAlarms = props.perSourceAlarms ?? false;
    this.overdueAfter = props.overdueAfter ?? RESTORE_TEST_OVERDUE;
  }

  /** The fleet alarms, watching the state machine that runs the tests, and their status on the dashboard. */
  public addFleetAlarms(stateMachine: sfn.StateMachine): RestoreTestFleetAlarms {
    const testFailed = this.alarm('TestFailedAlarm', this.metricRestoreTestSuccess(), {
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      // Results come once a week: keep the last verdict until the next test says otherwise.
      treatMissingData: cloudwatch.TreatMissingData.IGNORE,
      alarmDescription: 'A restore test failed: a backup did not restore, or did not match its manifest or its checks. Its report ' +
        '({prefix}{source}/restore-tests/latest.json) names the source, and the table or check that failed and by how much.',
    });
    const days = this.overdueAfter.toDays();
    const testOverdue = this.alarm('TestOverdueAlarm', this.monitoring.metricFleetRestoreTestAge(), {
      threshold: this.overdueAfter.toSeconds(),
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      alarmDescription: `No restore test has finished for some source in ${days} days, or a tested source has had a backup ` +
        `for ${days} days and no restore-test report yet (or the freshness check publishes nothing): the backups are no longer ` +
        'proven to restore. The freshness check\'s log names the source (restoreTestAgeSeconds, neverRestoreTested); check the restore-test ' +
        'state machine\'s executions, or run it now.',
    });
    const orchestrationFailed = this.alarm('OrchestrationFailedAlarm', new cloudwatch.MathExpression({
      expression: 'FILL(notStarted, 0) + FILL(failed, 0) + FILL(timedOut, 0)',
      usingMetrics: {
        notStarted: this.metricOrchestrationFailures(),
        failed: stateMachine.metricFailed({ period: Duration.hours(1) }),
        timedOut: stateMachine.metricTimedOut({ period: Duration.hours(1) }),
      },
      period: Duration.hours(1),
      label: 'restore tests not started or not followed',
    }), {
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription: 'A restore test could not be started (RunTask kept failing), its task stopped before the agent ran (the scratch ' +
        'server never became healthy, an image could not be pulled), or the restore-test state machine failed. The orchestrator\'s logs name the source.',
    });
    this.monitoring.dashboard.dashboard.addWidgets(new cloudwatch.AlarmStatusWidget({
      title: 'Restore-test alarms',
      alarms: this.alarms, // read when the dashboard renders, so alarms of sources added later appear too
      width: 24,
    }));
    return { testFailed, testOverdue, orchestrationFailed };
  }

  /** One more tested source: the RTO alarm when it has a target, its own alarms (perSourceAlarms), its dashboard widgets. */
  public addSource(source: string, rtoTarget?: Duration): void {
    if (rtoTarget) this.rtoAlarm();
    if (this.perSourceAlarms) {
      if (rtoTarget) this.addRtoAlarm(source, rtoTarget);
      this.alarm(`${source}-TestFailedAlarm`, this.metricRestoreTestSuccess(source), {
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.IGNORE,
        alarmDescription: `The restore test of ${source} failed; its report names the table or check and by how much.`,
      });
    }
    this.addDashboardWidgets(source, rtoTarget);
  }

  /** 1 for a passed restore test, 0 for a failed one (minimum per period); fleet-wide without a source. */
  public metricRestoreTestSuccess(source?: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(Metrics.RESTORE_TEST_SUCCESS, cloudwatch.Stats.MINIMUM, source, props);
  }

  /** The measured RTO: seconds from the start of the download to the end of validation (maximum per period). */
  public metricRestoreDuration(source?: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(Metrics.RESTORE_DURATION_SECONDS, cloudwatch.Stats.MAXIMUM, source, props);
  }

  /** How old the restored backup was when its test finished. */
  public metricRestoredBackupAge(source?: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(Metrics.RESTORED_BACKUP_AGE_SECONDS, cloudwatch.Stats.MAXIMUM, source, props);
  }

  /** Restore tests that could not be started, or whose task stopped before the agent ran. */
  public metricOrchestrationFailures(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(Metrics.RESTORE_TEST_ORCHESTRATION_FAILURES, cloudwatch.Stats.SUM, undefined, { period: Duration.hours(1), ...props });
  }

  /** The measured restore over its source's RTO target, the worst of the fleet; above 1 is a missed RTO. */
  public metricRtoRatio(source?: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(Metrics.RESTORE_RTO_RATIO, cloudwatch.Stats.MAXIMUM, source, props);
  }

  private metric(metricName: string, statistic: string, source: string | undefined, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: METRIC_NAMESPACE, metricName, statistic, period: Duration.days(1),
      dimensionsMap: source === undefined ? undefined : { [SOURCE_DIMENSION]: source }, ...props,
    });
  }

  private alarm(id: string, metric: cloudwatch.IMetric, options: Omit<cloudwatch.AlarmProps, 'metric' | 'evaluationPeriods'>): cloudwatch.Alarm {
    const alarm = new cloudwatch.Alarm(this.scope, id, { metric, evaluationPeriods: 1, ...options });
    alarm.addAlarmAction(new cwActions.SnsAction(this.monitoring.topic));
    this.alarms.push(alarm);
    return alarm;
  }

  /** One alarm for every source with an RTO target, made with the first of them. */
  private rtoAlarm(): cloudwatch.Alarm {
    const existing = this.scope.node.tryFindChild('RtoExceededAlarm') as cloudwatch.Alarm | undefined;
    return existing ?? this.alarm('RtoExceededAlarm', this.metricRtoRatio(), {
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.IGNORE,
      alarmDescription: 'A measured restore took longer than its source\'s RTO target (the value is the worst duration over its target). ' +
        'The source\'s restore-test report gives the duration.',
    });
  }

  private addRtoAlarm(source: string, rtoTarget: Duration): void {
    this.alarm(`${source}-RtoAlarm`, this.metricRestoreDuration(source), {
      threshold: rtoTarget.toSeconds(),
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.IGNORE,
      alarmDescription: `The measured restore of ${source} took longer than its RTO target of ${rtoTarget.toHumanString()}.`,
    });
  }

  private addDashboardWidgets(source: string, rtoTarget?: Duration): void {
    this.monitoring.dashboard.addSourceWidget(source, new cloudwatch.GraphWidget({
      title: `${source}: restore duration (s)`,
      left: [this.metricRestoreDuration(source)],
      leftAnnotations: rtoTarget ? [{ value: rtoTarget.toSeconds(), label: 'RTO target', color: cloudwatch.Color.RED }] : undefined,
      leftYAxis: { min: 0 },
      width: 5,
    }));
    this.monitoring.dashboard.addSourceWidget(source, new cloudwatch.SingleValueWidget({
      title: `${source}: last restore test (1 = passed)`,
      metrics: [this.metricRestoreTestSuccess(source, { period: this.overdueAfter })],
      width: 3,
    }));
  }
}
