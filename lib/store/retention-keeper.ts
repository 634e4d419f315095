import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { Tier } from '../contract/tiers';
import { InlinePolicyRole } from '../backups/inline-policy-role';
import { RestorableError } from '../shared/errors';
import { NODE22_RUNTIME_REASON, acknowledgeNag, acknowledgeWildcard } from '../shared/nag';
import { lambdaAsset } from '../shared/package-root';
import { ROLE_PATHS } from '../shared/trust-boundaries';
import type { BackupBucket } from './backup-bucket';

export interface RetentionKeeperProps {
  /** The vault whose new versions are locked in COMPLIANCE mode; it must have Object Lock. */
  readonly store: BackupBucket;
  /**
   * Where the alarm notifies when a version could not be locked.
   * @default - no action; wire one later with `failedAlarm.addAlarmAction(...)`
   */
  readonly alarmTopic?: sns.ITopic;
}

/**
 * The vault's retention keeper: on every "Object Created" event of the vault's bucket (replicas fire it too), a
 * function under ROLE_PATHS.retentionKeeper makes the new version's lock COMPLIANCE until its LastModified plus its
 * tier's days (each tier's effective retention in the vault, which no tag replicated later can shorten; untagged
 * objects the default lock), never shorter than the lock it has. It is the one principal the vault's write-once policy lets bypass a
 * governance lock, which S3 requires to turn GOVERNANCE into COMPLIANCE. Lambda retries twice; an event that still
 * fails (or that EventBridge could not deliver) lands in the dead-letter queue, whose alarm says a version stayed
 * unlocked in COMPLIANCE.
 */
export class RetentionKeeper extends Construct {
  /** The function that sets the locks. */
  public readonly function: lambda.IFunction;
  /** Its role, under ROLE_PATHS.retentionKeeper. */
  public readonly role: iam.IRole;
  /** Events the function failed on after its retries, or that could not be delivered to it. */
  public readonly deadLetterQueue: sqs.IQueue;
  /** Fires when some version could not be locked in COMPLIANCE mode: the dead-letter queue holds its event. */
  public readonly failedAlarm: cloudwatch.Alarm;
  /** COMPLIANCE days per tier, from LastModified, before the default lock's floor. */
  public readonly tierDays: Readonly<Record<Tier, number>>;
  /** COMPLIANCE days of untagged objects, and the floor of every tier's. */
  public readonly defaultDays: number;

  constructor(scope: Construct, id: string, props: RetentionKeeperProps) {
    super(scope, id);
    const store = props.store;
    const lock = store.objectLockDefaultRetention;
    if (!lock) {
      throw new RestorableError(this, `store ${store.node.path} has no Object Lock, so there is no lock to make COMPLIANCE: leave its objectLockEnabled unset`);
    }
    this.defaultDays = lock.duration.toDays();
    this.tierDays = Object.fromEntries(store.retention.map((r) => [r.tier, r.lockDays])) as Record<Tier, number>;

    const role = new InlinePolicyRole(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      path: ROLE_PATHS.retentionKeeper,
      description: `Locks each new version of ${store.node.path} in COMPLIANCE mode: the only role that bypasses its governance locks, never deletes`,
    });
    this.role = role;
    const logGroup = new logs.LogGroup(this, 'Logs', { retention: logs.RetentionDays.ONE_YEAR });
    logGroup.grantWrite(role);
    const objects = store.bucket.arnForObjects(`${store.prefix}*`);
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      // HeadObject of a version is s3:GetObjectVersion; its lock headers need s3:GetObjectRetention.
      actions: ['s3:GetObject', 's3:GetObjectVersion', 's3:GetObjectTagging', 's3:GetObjectVersionTagging', 's3:GetObjectRetention',
        's3:BypassGovernanceRetention'],
      resources: [objects],
    }));
    // Only COMPLIANCE locks: the bypass it needs to turn a GOVERNANCE lock into one can then shorten nothing.
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['s3:PutObjectRetention'],
      resources: [objects],
      conditions: {
        'StringEquals': { 's3:object-lock-mode': 'COMPLIANCE' },
        // And never beyond the longest it sets (a day's slack for the clock): a compromised keeper cannot lock the vault for a century.
        'NumericLessThanEquals': { 's3:object-lock-remaining-retention-days': String(Math.max(this.defaultDays, ...Object.values(this.tierDays)) + 1) },
      },
    }));
    acknowledgeWildcard(role, objects, 'The retention keeper locks every new version of the vault, under any source\'s prefix, in COMPLIANCE mode: ' +
      'it reads each version\'s tags and lock and sets its retention, never shorter; it cannot create, overwrite, tag or delete objects, and the ' +
      'vault\'s bucket policy still denies it every delete');
    // Reading the head of a KMS-encrypted object needs no key: S3 returns its metadata without decrypting.

    const deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    this.deadLetterQueue = deadLetterQueue;

    const fn = new lambda.Function(this, 'Function', {
      description: `Restorable retention keeper of ${store.node.path}: makes each new version's lock COMPLIANCE for its tier`,
      runtime: lambda.Runtime.NODEJS_22_X,
      handler: 'index.handler',
      code: lambda.Code.fromAsset(lambdaAsset(this, 'retention-keeper')),
      role,
      logGroup,
      timeout: Duration.seconds(30),
      memorySize: 256,
      retryAttempts: 2,
      deadLetterQueue,
      environment: {
        BUCKET_NAME: store.bucket.bucketName,
        KEY_PREFIX: store.prefix,
        TIER_DAYS: JSON.stringify(this.tierDays),
        DEFAULT_DAYS: String(this.defaultDays),
      },
    });
    acknowledgeNag(fn, 'L1', NODE22_RUNTIME_REASON);
    this.function = fn;

    enableEventBridge(this, store.bucket);
    new events.Rule(this, 'ObjectCreated', {
      description: `Sends each new version of ${store.node.path} to its retention keeper`,
      eventPattern: {
        source: ['aws.s3'],
        detailType: ['Object Created'],
        detail: {
          bucket: { name: [store.bucket.bucketName] },
          ...(store.prefix ? { object: { key: [{ prefix: store.prefix }] } } : {}),
        },
      },
      targets: [new targets.LambdaFunction(fn, { retryAttempts: 8, maxEventAge: Duration.hours(24), deadLetterQueue })],
    });

    this.failedAlarm = deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5), statistic: cloudwatch.Stats.MAXIMUM })
      .createAlarm(this, 'FailedAlarm', {
        alarmDescription: `A new version of ${store.node.path} could not be locked in COMPLIANCE mode after every retry: it keeps the lock replication ` +
          'gave it (GOVERNANCE, which the vault\'s break-glass alone may bypass). The dead-letter queue holds its event and the retention keeper\'s ' +
          'log says why (a version deleted before it was locked, a lock beyond the longest the vault keeps, access denied). Run the function again ' +
          'with the event once the cause is fixed.',
        threshold: 0,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    if (props.alarmTopic) this.failedAlarm.addAlarmAction(new cwActions.SnsAction(props.alarmTopic));
  }
}

/** The vault bucket must tell EventBridge of new objects; BackupMonitoring turns the same setting on for a store it watches. */
function enableEventBridge(scope: Construct, bucket: s3.IBucket): void {
  const cfnBucket = bucket.node.defaultChild;
  if (!(cfnBucket instanceof s3.CfnBucket)) {
    throw new RestorableError(scope, 'store: its bucket is not defined in this app, so its EventBridge notifications cannot be turned on here');
  }
  cfnBucket.addPropertyOverride('NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled', true);
}
