import { Annotations, Aws, Duration, Stack, Token } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { BackupBucket, BackupBucketProps } from './backup-bucket';
import { RestorableError } from '../shared/errors';
import { ROLE_PATHS } from '../shared/trust-boundaries';
import { ReplicaStore } from './replica-store';

export interface BackupStoreProps extends BackupBucketProps {
  /**
   * The offsite copy in another region. Every new version is replicated there; delete markers are not,
   * so a deletion or corruption here does not spread.
   * @default - no replication: the store keeps a single regional copy, and synth warns that this is not 3-2-1
   */
  readonly replica?: ReplicaStore;
  /**
   * Replication Time Control: S3 replicates 99.99% of objects within 15 minutes and reports what it misses.
   * Replication metrics are on either way, since the failed-replication alarm needs them.
   * @default true
   */
  readonly replicationTimeControl?: boolean;
  /**
   * Where the failed-replication alarm notifies.
   * @default - no action; wire one later with `replicationFailedAlarm.addAlarmAction(...)`
   */
  readonly alarmTopic?: sns.ITopic;
}

/** The id of the replication rule; also the `RuleId` dimension of the replication metrics. */
export const REPLICATION_RULE_ID = 'replicate-to-replica';
/** The warning id a user acknowledges to keep a store without an offsite copy. */
export const NO_REPLICA_WARNING = '@restorable/backup-store:no-replica';

/**
 * Where backups live (the "3" and "2" of 3-2-1): a versioned, KMS-encrypted, Object-Locked bucket whose
 * lifecycle follows the retention tiers, replicated to a ReplicaStore in another region (the "1").
 */
export class BackupStore extends BackupBucket {
  /** The role S3 assumes to replicate, when a replica is set. */
  public readonly replicationRole?: iam.IRole;
  /** Fires when any object fails to replicate, when a replica is set. */
  public readonly replicationFailedAlarm?: cloudwatch.Alarm;
  /** The replica, when one is set. */
  public readonly replica?: ReplicaStore;

  constructor(scope: Construct, id: string, props: BackupStoreProps = {}) {
    super(scope, id, props);
    if (!props.replica) {
      if (props.replicationTimeControl !== undefined || props.alarmTopic) {
        throw new RestorableError(this, 'replicationTimeControl and alarmTopic only apply with a replica; set replica to a ReplicaStore in another region, or remove them');
      }
      this.warnSingleCopy();
      return;
    }
    this.replica = props.replica;
    this.checkReplica(props.replica);
    // The replica must exist before anything replicates into it.
    Stack.of(this).addStackDependency(Stack.of(props.replica));
    this.replicationRole = this.createReplicationRole(props.replica);
    this.configureReplication(props.replica, props.replicationTimeControl ?? true);

    this.replicationFailedAlarm = this.metricFailedReplication().createAlarm(this, 'ReplicationFailedAlarm', {
      alarmDescription: `Objects of ${this.node.path} failed to replicate to ${props.replica.node.path}; check the replication role's permissions and the replica key`,
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      // S3 publishes the metric only when there is replication activity.
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    if (props.alarmTopic) this.replicationFailedAlarm.addAlarmAction(new cwActions.SnsAction(props.alarmTopic));
  }

  /** Objects that failed to replicate (S3 replication metrics, sum over 5 minutes by default). */
  public metricFailedReplication(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.replicationMetric('OperationsFailedReplication', cloudwatch.Stats.SUM, props);
  }

  /** Seconds the replica lags behind (S3 replication metrics, maximum over 5 minutes by default). */
  public metricReplicationLatency(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.replicationMetric('ReplicationLatency', cloudwatch.Stats.MAXIMUM, props);
  }

  private replicationMetric(metricName: string, statistic: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    if (!this.replica) throw new RestorableError(this, `${metricName} is a replication metric, and this store has no replica; set the replica property`);
    return new cloudwatch.Metric({
      namespace: 'AWS/S3',
      metricName,
      dimensionsMap: { SourceBucket: this.bucket.bucketName, DestinationBucket: this.replica.bucket.bucketName, RuleId: REPLICATION_RULE_ID },
      statistic,
      period: Duration.minutes(5),
      ...props,
    });
  }

  private checkReplica(replica: ReplicaStore): void {
    this.checkReplicaAccount(replica);
    const region = Stack.of(this).region;
    if (!Token.isUnresolved(region) && replica.region === region) {
      throw new RestorableError(this, `replica is in ${region}, the same region as this store; an offsite copy in the same region ` +
        'does not survive a regional outage. Put the ReplicaStore in a stack whose env.region is another region');
    }
    if (this.objectLockEnabled && !replica.objectLockEnabled) {
      throw new RestorableError(this, 'replica: this store uses Object Lock but its replica has objectLockEnabled false, and S3 cannot replicate ' +
        'locked objects into an unlocked bucket; leave the ReplicaStore\'s objectLockEnabled unset (Object Lock on)');
    }
    // Replication keeps keys as they are, so the replica's lifecycle, grants and DR restore tests must use the same prefix.
    if (replica.prefix !== this.prefix) {
      throw new RestorableError(this, `replica: the replica's prefix is '${replica.prefix}' but this store's is '${this.prefix}'; replication ` +
        `keeps object keys as they are, so give the ReplicaStore the same prefix ('${this.prefix}')`);
    }
  }

  /** A replica in another account must be a vault of this store's account; a vault locks no more than its keeper allows. */
  private checkReplicaAccount(replica: ReplicaStore): void {
    const account = Stack.of(this).account;
    if (Token.isUnresolved(account)) {
      if (replica.isVault) {
        throw new RestorableError(this, `replica is a vault for account ${replica.primaryAccount}, but this store's stack has no explicit account; ` +
          `set env: { account: '${replica.primaryAccount}', region } on this stack`);
      }
      return;
    }
    if (!replica.isVault && replica.account !== account) {
      throw new RestorableError(this, `replica is in account ${replica.account}, another account than this store's (${account}), but it does not ` +
        `name this account as its primary: S3 would be refused there. Set primaryAccount: '${account}' on the ReplicaStore, which makes it a vault ` +
        'that admits this account only to replicate');
    }
    if (replica.isVault && replica.primaryAccount !== account) {
      throw new RestorableError(this, `replica is a vault whose primaryAccount is ${replica.primaryAccount}, but this store is in account ${account}: ` +
        `the vault would refuse this store's replication. Set primaryAccount: '${account}' on the ReplicaStore`);
    }
    if (replica.isVault && this.objectLockDefaultRetention && replica.objectLockDefaultRetention) {
      const ceiling = Math.max(replica.objectLockDefaultRetention.duration.toDays(), ...replica.retention.map((r) => r.lockDays));
      const lockDays = this.objectLockDefaultRetention.duration.toDays();
      if (lockDays > ceiling) {
        throw new RestorableError(this, `objectLockDefaultRetention is ${lockDays} days, longer than the vault ${replica.node.path} locks anything ` +
          `(${ceiling} days): replicas keep this store's lock, and the vault's retention keeper refuses to make a lock beyond its longest ` +
          'COMPLIANCE, so every replica would alarm. Shorten this lock, or give the vault keep counts or a default lock at least as long');
      }
    }
  }

  /** No replica: every backup is in one bucket of one region. */
  private warnSingleCopy(): void {
    const region = Stack.of(this).region;
    const where = Token.isUnresolved(region) ? 'this region' : region;
    Annotations.of(this).addWarningV2(NO_REPLICA_WARNING,
      `BackupStore has no replica, so it keeps a single regional copy of every backup: there is no offsite copy, which is not 3-2-1, ` +
      `and an outage of ${where} or the loss of this bucket takes every backup with it. Add one: create a ReplicaStore in a stack ` +
      'of another region (new ReplicaStore(drStack, \'Replica\')) and pass it as this store\'s replica; or acknowledge this warning.');
  }

  /** CDK's own replication role lacks the Object Lock reads, and without them nothing replicates and nothing says so. */
  private createReplicationRole(replica: ReplicaStore): iam.Role {
    const role = new iam.Role(this, 'ReplicationRole', {
      assumedBy: new iam.ServicePrincipal('s3.amazonaws.com'),
      // A vault in another account admits this role by its path.
      path: ROLE_PATHS.replication,
      description: `Replicates ${this.node.path} to ${replica.node.path}`,
    });
    role.addToPolicy(new iam.PolicyStatement({
      actions: ['s3:GetReplicationConfiguration', 's3:ListBucket'],
      resources: [this.bucket.bucketArn],
    }));
    const sourceObjects = this.bucket.arnForObjects('*');
    const replicaObjects = replica.bucket.arnForObjects('*');
    const replicaKeys = `arn:${Aws.PARTITION}:kms:${replica.region}:${replica.account}:key/*`;
    role.addToPolicy(new iam.PolicyStatement({
      actions: ['s3:GetObjectVersionForReplication', 's3:GetObjectVersionAcl', 's3:GetObjectVersionTagging',
        's3:GetObjectRetention', 's3:GetObjectLegalHold'],
      resources: [sourceObjects],
    }));
    // No s3:ReplicateDelete: delete markers stay here.
    role.addToPolicy(new iam.PolicyStatement({
      actions: ['s3:ReplicateObject', 's3:ReplicateTags'],
      resources: [replicaObjects],
    }));
    role.addToPolicy(new iam.PolicyStatement({
      actions: ['kms:Decrypt'],
      resources: [this.encryptionKey.keyArn],
      conditions: {
        StringEquals: { 'kms:ViaService': `s3.${Stack.of(this).region}.amazonaws.com` },
        // With S3 Bucket Keys the encryption context is the bucket ARN, without them the object ARN.
        StringLike: { 'kms:EncryptionContext:aws:s3:arn': [this.bucket.bucketArn, this.bucket.arnForObjects('*')] },
      },
    }));
    // The replica key lives in the other stack: name it by its alias, since an IAM resource cannot be an alias ARN.
    role.addToPolicy(new iam.PolicyStatement({
      actions: ['kms:Encrypt', 'kms:GenerateDataKey'],
      resources: [replicaKeys],
      conditions: {
        'StringEquals': { 'kms:ViaService': `s3.${replica.region}.amazonaws.com` },
        'ForAnyValue:StringEquals': { 'kms:ResourceAliases': [replica.keyAliasName] },
      },
    }));
    this.acknowledgeWildcards(role, [sourceObjects, replicaObjects],
      'Replication copies every version of this backup bucket into its replica, so it reads and writes bucket/* on each side');
    this.acknowledgeWildcards(role, [replicaKeys],
      'The replica key lives in another stack and an IAM resource cannot be an alias ARN; kms:ResourceAliases limits key/* to that one key');
    return role;
  }

  private configureReplication(replica: ReplicaStore, timeControl: boolean): void {
    const fifteenMinutes = { minutes: 15 };
    const rule: s3.CfnBucket.ReplicationRuleProperty = {
      id: REPLICATION_RULE_ID,
      status: 'Enabled',
      priority: 0,
      filter: { prefix: '' },
      deleteMarkerReplication: { status: 'Disabled' },
      sourceSelectionCriteria: { sseKmsEncryptedObjects: { status: 'Enabled' } },
      destination: {
        bucket: replica.bucket.bucketArn,
        encryptionConfiguration: { replicaKmsKeyId: replica.keyAliasArn },
        replicationTime: timeControl ? { status: 'Enabled', time: fifteenMinutes } : undefined,
        metrics: timeControl
          ? { status: 'Enabled', eventThreshold: fifteenMinutes }
          : { status: 'Enabled' },
      },
    };
    const cfnBucket = this.bucket.node.defaultChild as s3.CfnBucket;
    cfnBucket.replicationConfiguration = { role: this.replicationRole!.roleArn, rules: [rule] };
  }
}
