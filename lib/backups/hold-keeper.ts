import { Duration, Lazy, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { METRIC_NAMESPACE, Metrics, SOURCE_DIMENSION } from '../contract/metrics';
import { sourceNameProblem, sourcePrefix } from '../contract/names';
import { RestorableError, wholeMinutes } from '../shared/errors';
import { NODE22_RUNTIME_REASON, acknowledgeNag, acknowledgeWildcard } from '../shared/nag';
import { lambdaAsset } from '../shared/package-root';
import { ROLE_PATHS } from '../shared/trust-boundaries';
import { BackupBucket } from '../store/backup-bucket';
import { InlinePolicyRole } from './inline-policy-role';

export interface HoldKeeperProps {
  /** The store whose legal holds are kept (a BackupStore, as DatabaseBackups writes to); it must have Object Lock. */
  readonly store: BackupBucket;
  /**
   * Where the function logs. DatabaseBackups passes its own log group, so that the hold keeper adds no log group
   * of its own to the stack.
   */
  readonly logGroup: logs.ILogGroup;
  /**
   * Where the pointer-mismatch and errors alarms notify.
   * @default - no action; wire one later with `pointerMismatchAlarm.addAlarmAction(...)` and `errorsAlarm.addAlarmAction(...)`
   */
  readonly alarmTopic?: sns.ITopic;
  /**
   * How often the holds are kept: once a backup's passing restore-test report is `releaseAfter` old, the older
   * holds are released within this interval. Whole minutes, from 15 minutes to 1 day (the alarms look at one interval).
   * @default Duration.hours(6)
   */
  readonly interval?: Duration;
  /**
   * How long a passing restore-test report must have been stored (by S3's LastModified) before it releases the holds
   * on older backups. A dump role holds the public age recipient, so it can write a decryptable fake backup that
   * passes its restore test; the grace gives the size, freshness and restore-test alarms, and a person, this long to
   * notice before the hold on the last real proven backup goes. Holds stay on the newest valid, the newest proven
   * and the newest settled backup; only older ones are released, so the store keeps about this much more history.
   * Whole minutes, up to 365 days; `Duration.days(0)` releases as soon as a newer backup passes (no grace).
   * @default Duration.days(7)
   */
  readonly releaseAfter?: Duration;
  /**
   * Sources whose holds are kept; more can be added with `addSource`.
   * @default - none
   */
  readonly sources?: string[];
}

/** How a source is kept. */
export interface HoldKeeperSourceOptions {
  /**
   * The source archives WAL (walArchiving): the holds of its base backups (base/) and archived WAL (wal/) are kept
   * and released as well, on the proof of a passing point-in-time restore test.
   * @default false
   */
  readonly walArchived?: boolean;
}

/** EventBridge caps a target's input at 8,192 characters: the source list travels in it. */
const MAX_INPUT_CHARS = 8192;
/** Long enough for a hundred sources with a long backup history each; Lambda's limit is 15 minutes. */
const TIMEOUT = Duration.minutes(10);

/**
 * The only principal that releases Object Lock legal holds on the store, on a schedule. The dump tasks place a hold
 * on each backup latest.json names but may not release one (the store's bucket policy denies it to all but the
 * role path of this function and break-glass), so a compromised dump task cannot let the last good backup expire.
 *
 * It trusts proof, not pointers: it keeps the holds on the newest valid backup, on the newest backup whose restore
 * test passed, and on the newest whose passing report has been stored for `releaseAfter` (7 days by default), each
 * with its manifest and companion, and releases a hold only on a backup older than that settled one. The grace
 * stands between a fake backup a dump role wrote (it holds the public age recipient, so it can write one that
 * decrypts and passes its restore test) and the release of the last real proven backup's hold. A latest.json that names no backup of its source, or disagrees with the backup's
 * manifest or with the size S3 stored, is refused and counted in PointerMismatch, which alarms. A source that has
 * never had a restore-test report releases nothing: its holds stay until a restore test passes (or break-glass
 * releases them), since a manifest the dump role wrote is never enough.
 *
 * Six resources whatever the number of sources: a role (its grants inline), the function, the schedule, the
 * schedule's permission to invoke it, and two alarms.
 */
export class HoldKeeper extends Construct {
  /** The function that keeps the holds. */
  public readonly function: lambda.IFunction;
  /** Its role, under ROLE_PATHS.holdKeeper, the path the store's bucket policy lets release holds. */
  public readonly role: iam.IRole;
  /** Some source's latest.json was refused: it names no backup of the source, or differs from its manifest or the stored object. */
  public readonly pointerMismatchAlarm: cloudwatch.Alarm;
  /** The function failed: some source's holds could not be kept (S3 errors, an unreadable restore-test report). */
  public readonly errorsAlarm: cloudwatch.Alarm;
  /** How often the holds are kept. */
  public readonly interval: Duration;
  /** How long a passing restore-test report is stored before it releases older holds. */
  public readonly releaseAfter: Duration;

  private readonly store: BackupBucket;
  private readonly sources: string[] = [];
  private readonly walArchived: string[] = [];
  private readonly inlineRole: InlinePolicyRole;

  constructor(scope: Construct, id: string, props: HoldKeeperProps) {
    super(scope, id);
    if (!props?.store || !props.logGroup) {
      throw new RestorableError(this, 'store and logGroup are required: the BackupStore whose holds are kept, and the log group the function writes to');
    }
    this.store = props.store;
    if (!this.store.objectLockEnabled) {
      throw new RestorableError(this, `store ${this.store.node.path} has no Object Lock, so it has no legal holds to keep: leave its objectLockEnabled unset ` +
        '(Object Lock on), or do not create a HoldKeeper for it');
    }
    const problems: string[] = [];
    this.interval = props.interval ?? Duration.hours(6);
    wholeMinutes('interval', this.interval, { min: 15, max: 1440, example: 'Duration.hours(6)', why: 'the alarms look at one interval, and CloudWatch periods end at one day' }, problems);
    this.releaseAfter = props.releaseAfter ?? Duration.days(7);
    wholeMinutes('releaseAfter', this.releaseAfter, { min: 0, max: 525_600, example: 'Duration.days(7)',
      why: 'the alarms and a person have that long to notice a fake backup before older holds go; Duration.days(0) for no grace' }, problems);
    if (problems.length) throw new RestorableError(this, problems.join('; '));

    const role = new InlinePolicyRole(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      path: ROLE_PATHS.holdKeeper,
      description: `Keeps and releases the Object Lock legal holds of ${this.store.node.path}: the only role that releases them`,
    });
    this.inlineRole = role;
    this.role = role;
    props.logGroup.grantWrite(role);
    const objects = this.store.bucket.arnForObjects(`${this.store.prefix}*`);
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['s3:GetObject', 's3:GetObjectLegalHold', 's3:PutObjectLegalHold'],
      resources: [objects],
    }));
    acknowledgeWildcard(role, objects, 'The hold keeper reads latest.json, manifests and restore-test reports and reads and sets legal holds on ' +
      'the backups of every source of this store; one ARN per source would not fit a hundred long-named sources in the role\'s 10,240-character ' +
      'policy quota, so object access is the store\'s prefix and listing is limited to each source\'s own prefix. It cannot create, overwrite, ' +
      'tag or delete objects');
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['kms:Decrypt'],
      resources: [this.store.encryptionKey.keyArn],
      conditions: { StringEquals: { 'kms:ViaService': `s3.${Stack.of(this.store).region}.amazonaws.com` } },
    }));
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['cloudwatch:PutMetricData'],
      resources: ['*'],
      conditions: { StringEquals: { 'cloudwatch:namespace': METRIC_NAMESPACE } },
    }));
    acknowledgeNag(role, 'IAM5[Resource::*]', `cloudwatch:PutMetricData has no resource-level permissions; the cloudwatch:namespace condition limits it to the ${METRIC_NAMESPACE} namespace`);

    const fn = new lambda.Function(this, 'Function', {
      description: `Restorable hold keeper of ${this.store.node.path}: keeps the legal holds of the newest and the newest proven backups, releases older ones`,
      runtime: lambda.Runtime.NODEJS_22_X,
      handler: 'index.handler',
      code: lambda.Code.fromAsset(lambdaAsset(this, 'hold-keeper')),
      role,
      logGroup: props.logGroup,
      timeout: TIMEOUT,
      memorySize: 256,
      environment: {
        BUCKET_NAME: this.store.bucket.bucketName,
        KEY_PREFIX: this.store.prefix,
        RELEASE_AFTER_SECONDS: String(this.releaseAfter.toSeconds()),
      },
    });
    acknowledgeNag(fn, 'L1', NODE22_RUNTIME_REASON);
    this.function = fn;

    const { sources, walArchived } = this;
    new events.Rule(this, 'Schedule', {
      description: `Keeps the legal holds of ${this.store.node.path}'s backups`,
      schedule: events.Schedule.rate(this.interval),
      targets: [new targets.LambdaFunction(fn, {
        event: events.RuleTargetInput.fromObject({
          sources: Lazy.list({ produce: () => sources }),
          walArchived: Lazy.list({ produce: () => walArchived }, { omitEmpty: true }),
        }),
        retryAttempts: 2,
      })],
    });
    this.node.addValidation({ validate: () => this.inputProblems() });

    const action = props.alarmTopic ? new cwActions.SnsAction(props.alarmTopic) : undefined;
    this.pointerMismatchAlarm = this.metricPointerMismatch().createAlarm(this, 'PointerMismatchAlarm', {
      alarmDescription: `A latest.json in ${this.store.node.path} was refused by the hold keeper: it names no backup of its source, or its size or ` +
        'SHA-256 differs from the manifest\'s, or the stored object\'s size does. The refused source keeps the holds of its newest proven backup. ' +
        'The hold keeper\'s log names the source and what differs; find what wrote it: the dump task is latest.json\'s writer.',
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      // Published every run: no data means the function did not run, which the errors alarm and the freshness check speak of.
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.errorsAlarm = this.metricErrors().createAlarm(this, 'ErrorsAlarm', {
      alarmDescription: `The hold keeper of ${this.store.node.path} failed: some source's legal holds could not be kept (S3 errors, an unreadable ` +
        'restore-test report, too many objects); its log names the source and why. Until it succeeds no hold is released there, and none is lost.',
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    if (action) {
      this.pointerMismatchAlarm.addAlarmAction(action);
      this.errorsAlarm.addAlarmAction(action);
    }
    for (const source of props.sources ?? []) this.addSource(source);
  }

  /**
   * Keeps one more source's holds: listing its prefix is granted, and the schedule's input names it. With
   * `walArchived`, the holds of its base backups and archived WAL are kept too: the newest valid base backup and the
   * one a restore test settled keep theirs, and older base backups and the WAL before the settled one's start lose theirs.
   */
  public addSource(source: string, options: HoldKeeperSourceOptions = {}): void {
    const problem = sourceNameProblem(source);
    if (problem) throw new RestorableError(this, problem);
    if (this.sources.includes(source)) throw new RestorableError(this, `source '${source}' is already kept; add each source once`);
    if (this.sources.length === 0) {
      // One statement, whose prefixes grow with the sources (read at synth).
      const prefixes = this.sources;
      this.inlineRole.addToPrincipalPolicy(new iam.PolicyStatement({
        actions: ['s3:ListBucket'],
        resources: [this.store.bucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': Lazy.list({ produce: () => prefixes.map((s) => `${sourcePrefix(this.store.prefix, s)}*`) }) } },
      }));
    }
    this.sources.push(source);
    if (options.walArchived) this.walArchived.push(source);
  }

  /**
   * Sources whose latest.json the hold keeper refused, fleet-wide (no dimension): the maximum over one interval by default.
   * For one source, pass `dimensionsMap: { Source: name }`.
   */
  public metricPointerMismatch(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: METRIC_NAMESPACE,
      metricName: Metrics.POINTER_MISMATCH,
      statistic: cloudwatch.Stats.MAXIMUM,
      period: this.interval,
      ...props,
    });
  }

  /** One source's PointerMismatch: 1 in each run that refused its latest.json, absent otherwise. */
  public metricSourcePointerMismatch(source: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metricPointerMismatch({ ...props, dimensionsMap: { [SOURCE_DIMENSION]: source, ...props?.dimensionsMap } });
  }

  /** The function's failed invocations: the sum over one interval by default. */
  public metricErrors(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.function.metricErrors({ statistic: cloudwatch.Stats.SUM, period: this.interval, ...props });
  }

  private inputProblems(): string[] {
    const chars = JSON.stringify({ sources: this.sources, walArchived: this.walArchived }).length;
    if (chars <= MAX_INPUT_CHARS) return [];
    return [`the hold keeper's ${this.sources.length} sources make a schedule input of ${chars} characters, over EventBridge's ${MAX_INPUT_CHARS}: ` +
      'split the sources over more than one DatabaseBackups'];
  }
}
