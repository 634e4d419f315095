import { Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as events from 'aws-cdk-lib/aws-events';
import * as eventsTargets from 'aws-cdk-lib/aws-events-targets';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { acknowledgeNag } from '../shared/nag';

/** Backup tasks run in an ECS task group named after their source: failure events carry it. */
export const TASK_GROUP_PREFIX = 'restorable:';

export interface BackupJobAlertsProps {
  /** The cluster the backup tasks run in. */
  readonly cluster: ecs.ICluster;
  /**
   * Where failure messages and the alarms go.
   * @default - no notifications; the alarms still change state, and `alarmTopic` can be wired later
   */
  readonly alarmTopic?: sns.ITopic;
}

/**
 * How a backup job that did not succeed gets noticed. A task that stops with a non-zero exit, or never starts,
 * produces an ECS event: a rule turns it into a readable message to the alarm topic, and its match count
 * (AWS/Events TriggeredRules) is the job-failure metric. A schedule that could not even call RunTask produces
 * no ECS event at all: EventBridge Scheduler puts it in the dead-letter queue, which has its own alarm.
 */
export class BackupJobAlerts extends Construct {
  /** Matches failed backup tasks of the watched task definitions. */
  public readonly failureRule: events.Rule;
  /** Fires when a backup task failed in the last 5 minutes. */
  public readonly jobFailureAlarm: cloudwatch.Alarm;
  /** Schedules whose RunTask call failed after every retry. */
  public readonly deadLetterQueue: sqs.Queue;
  /** Fires while the dead-letter queue holds a message. */
  public readonly deadLetterAlarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: BackupJobAlertsProps) {
    super(scope, id);
    this.failureRule = new events.Rule(this, 'TaskFailed', {
      description: 'A Restorable backup task stopped with a non-zero exit code, or failed to start',
      eventPattern: {
        source: ['aws.ecs'],
        detailType: ['ECS Task State Change'],
        detail: {
          clusterArn: [props.cluster.clusterArn],
          lastStatus: ['STOPPED'],
          group: [{ prefix: TASK_GROUP_PREFIX }],
          $or: [
            { containers: { exitCode: [{ 'anything-but': 0 }] } },
            { stopCode: ['TaskFailedToStart'] },
          ],
        },
      },
    });
    if (props.alarmTopic) this.failureRule.addTarget(new eventsTargets.SnsTopic(props.alarmTopic, { message: failureMessage() }));

    this.jobFailureAlarm = this.metricJobFailures().createAlarm(this, 'JobFailureAlarm', {
      alarmDescription: 'A Restorable backup task failed; the message on the alarm topic names the source, exit code and reason',
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      // No matched event means no failure.
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    acknowledgeNag(this.deadLetterQueue, 'SQS3', 'This queue is itself the dead-letter queue of the backup schedules (EventBridge Scheduler DeadLetterConfig), ' +
        'which cdk-nag cannot see; it is watched by DeadLetterAlarm');
    this.deadLetterAlarm = this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5), statistic: cloudwatch.Stats.MAXIMUM })
      .createAlarm(this, 'DeadLetterAlarm', {
        alarmDescription: 'A backup schedule could not start its ECS task after every retry (a failed RunTask produces no ECS event); ' +
          'read the message in the dead-letter queue for the error',
        threshold: 0,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    if (props.alarmTopic) {
      for (const alarm of [this.jobFailureAlarm, this.deadLetterAlarm]) alarm.addAlarmAction(new cwActions.SnsAction(props.alarmTopic));
    }
  }

  /** Narrows the failure rule to tasks of this definition (any revision). */
  public watch(taskDefinition: ecs.TaskDefinition): void {
    const prefix = Stack.of(this).formatArn({ service: 'ecs', resource: 'task-definition', resourceName: `${taskDefinition.family}:` });
    this.failureRule.addEventPattern({ detail: { taskDefinitionArn: [{ prefix }] } });
  }

  /** Failed backup tasks: how often the failure rule matched (AWS/Events TriggeredRules, sum over 5 minutes). */
  public metricJobFailures(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: 'AWS/Events',
      metricName: 'TriggeredRules',
      dimensionsMap: { RuleName: this.failureRule.ruleName },
      statistic: cloudwatch.Stats.SUM,
      period: Duration.minutes(5),
      ...props,
    });
  }
}

/** The alert as a person reads it: which source, how it ended, and where to look. */
function failureMessage(): events.RuleTargetInput {
  const field = events.EventField.fromPath;
  return events.RuleTargetInput.fromText(
    `Restorable backup failed for ${field('$.detail.group')}: exit code ${field('$.detail.containers[0].exitCode')}, ` +
    `stop code ${field('$.detail.stopCode')}: ${field('$.detail.stoppedReason')}. ` +
    `Task ${field('$.detail.taskArn')}; the agent's JSON log is in its log stream.`);
}
