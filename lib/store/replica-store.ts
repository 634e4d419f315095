import { Annotations, Aws, Duration, Names, PhysicalName, RemovalPolicy, Stack, Token } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { BackupBucket, BackupBucketProps, keyExemptions } from './backup-bucket';
import { ROLE_PATHS, denyDestroyingKey } from '../shared/trust-boundaries';
import { RestorableError } from '../shared/errors';
import { complianceRetentionWarning } from './retention-policy';
import { RetentionKeeper } from './retention-keeper';
import { ReportsCopy } from '../contract/names';

/** Properties of the offsite copy; its region and account are those of the stack it lives in. */
export interface ReplicaStoreProps extends BackupBucketProps {
  /**
   * The account of the primary BackupStore, when it is not this stack's. The replica then becomes a vault that a
   * compromise of the primary account cannot empty: its key and bucket policies admit that account only to
   * replicate (by its replication role's path, so this stack can deploy before that role exists), deny every other
   * call from outside this account, and a retention keeper locks each new version in COMPLIANCE mode for its tier.
   * A vault's default lock is COMPLIANCE, 7 days, unless objectLockDefaultRetention says otherwise.
   * @default - this stack's account: a same-account replica, in another region
   */
  readonly primaryAccount?: string;
  /**
   * Vault only: where the retention keeper's alarm notifies when a new version could not be locked in COMPLIANCE mode.
   * @default - no action; wire one later with `retentionFailedAlarm.addAlarmAction(...)`
   */
  readonly alarmTopic?: sns.ITopic;
}

/** The warning id a user acknowledges once a vault's COMPLIANCE locks per tier are as wanted. */
export const COMPLIANCE_RETENTION_WARNING = '@restorable/replica-store:compliance-retention';
/** A vault's default lock when none is given. */
export const VAULT_DEFAULT_LOCK = s3.ObjectLockRetention.compliance(Duration.days(7));
const ACCOUNT_ID = /^\d{12}$/;

/**
 * The offsite copy of a BackupStore, in a stack of another region: its own bucket, KMS key (rotation on),
 * Object Lock and lifecycle. The primary refers to it by names known at synth (a generated bucket name and
 * the key's alias ARN), so the two stacks never reference each other's outputs and cannot form a cycle.
 *
 * With `primaryAccount` set to another account than its stack's, it is a vault: the primary account may only
 * replicate into it, its lifecycle and policies are the vault account's alone, each new version is locked in
 * COMPLIANCE mode for its tier by a retention keeper, and noncurrent versions are kept for their tier's effective
 * retention, so that a compromise of the primary account (an administrator included) cannot empty it.
 */
export class ReplicaStore extends BackupBucket {
  /** The region that holds the copy. */
  public readonly region: string;
  /** The account that owns the copy. */
  public readonly account: string;
  /** The alias of the replica's key, derived from the construct path. */
  public readonly keyAliasName: string;
  /** The alias ARN, accepted by S3 replication's `ReplicaKmsKeyID` and Secrets Manager replicas' `KmsKeyId`. */
  public readonly keyAliasArn: string;
  /**
   * The KMS key (rotation on, always retained) that encrypts the DR copy of BackupKeys' identity secret, apart from
   * the backups' key: whoever may decrypt backups in the replica does not thereby read the identity.
   */
  public readonly identityKey: kms.IKey;
  /** The alias of `identityKey`, for BackupKeys' `replicaKeyAlias`. */
  public readonly identityKeyAliasName: string;
  /** The account of the primary BackupStore that replicates here. */
  public readonly primaryAccount: string;
  /** Whether this replica is a vault: in another account than its primary. */
  public readonly isVault: boolean;
  /** The vault's function that locks each new version in COMPLIANCE mode; undefined for a same-account replica. */
  public readonly retentionKeeper?: lambda.IFunction;
  /** Fires when a new version of the vault could not be locked in COMPLIANCE mode; undefined for a same-account replica. */
  public readonly retentionFailedAlarm?: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: ReplicaStoreProps = {}) {
    const stack = Stack.of(scope);
    const path = `${scope.node.path}/${id}`;
    if (Token.isUnresolved(stack.region) || Token.isUnresolved(stack.account)) {
      throw new RestorableError(path, 'a ReplicaStore needs a stack with an explicit env (account and region), ' +
        'because the primary store refers to it by names known at synth; set env: { account, region } on its stack');
    }
    const primaryAccount = props.primaryAccount ?? stack.account;
    const isVault = primaryAccount !== stack.account;
    checkVaultProps(path, props, primaryAccount, isVault);
    super(scope, id, isVault ? { ...props, objectLockDefaultRetention: props.objectLockDefaultRetention ?? VAULT_DEFAULT_LOCK } : props,
      { bucketName: PhysicalName.GENERATE_IF_NEEDED, withKeyAlias: true, vault: isVault });
    this.region = stack.region;
    this.account = stack.account;
    this.primaryAccount = primaryAccount;
    this.isVault = isVault;
    this.keyAliasName = this.keyAlias!;
    this.keyAliasArn = `arn:${Aws.PARTITION}:kms:${this.region}:${this.account}:${this.keyAliasName}`;

    this.identityKeyAliasName = `alias/${Names.uniqueResourceName(this, { maxLength: 110 })}-identity`;
    const identityKey = new kms.Key(this, 'IdentityKey', {
      description: `Encrypts the DR copy of the age identity that opens the backups in ${this.node.path}`,
      enableKeyRotation: true,
      alias: this.identityKeyAliasName,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    denyDestroyingKey(identityKey, keyExemptions(this, props.breakGlassRole, RemovalPolicy.RETAIN));
    // As in the primary region: only Secrets Manager decrypts, and the secret's resource policy decides for whom.
    identityKey.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'DecryptOnlyThroughSecretsManager',
      effect: iam.Effect.DENY,
      principals: [new iam.AnyPrincipal()],
      actions: ['kms:Decrypt', 'kms:ReEncryptFrom'],
      resources: ['*'],
      conditions: { StringNotEquals: { 'kms:ViaService': `secretsmanager.${this.region}.amazonaws.com` } },
    }));
    this.identityKey = identityKey;

    if (isVault) {
      this.admitPrimaryToReplicate();
      const keeper = new RetentionKeeper(this, 'RetentionKeeper', { store: this, alarmTopic: props.alarmTopic });
      this.retentionKeeper = keeper.function;
      this.retentionFailedAlarm = keeper.failedAlarm;
      Annotations.of(this).addWarningV2(COMPLIANCE_RETENTION_WARNING,
        complianceRetentionWarning(this.retention, this.objectLockDefaultRetention!.duration.toDays()));
    }
  }

  /** `arn:…:iam::PRIMARY:role/restorable/replication/*`: the primary's replication role, by path, whether it exists yet or not. */
  public primaryReplicationRolePattern(): string {
    return `arn:${Aws.PARTITION}:iam::${this.primaryAccount}:role${ROLE_PATHS.replication}*`;
  }

  /**
   * The primary account may encrypt with the vault's key and replicate into its bucket, through its replication role
   * alone; every other call from outside this account is denied, whatever another statement allows. The primary
   * account is the principal, narrowed by the role's path: a key or bucket policy naming a role that does not exist
   * yet is refused, and this stack deploys before the primary's. Replication may write anything but what the vault's
   * account writes for itself, under a `vault/` directory: its restore-test reports and its runbooks.
   */
  private admitPrimaryToReplicate(): void {
    const primary = new iam.AccountPrincipal(this.primaryAccount);
    const replicationRole = { ArnLike: { 'aws:PrincipalArn': this.primaryReplicationRolePattern() } };
    (this.encryptionKey as kms.Key).addToResourcePolicy(new iam.PolicyStatement({
      sid: 'PrimaryReplicationEncrypts',
      principals: [primary],
      actions: ['kms:Encrypt', 'kms:GenerateDataKey'],
      resources: ['*'],
      conditions: { ...replicationRole, StringEquals: { 'kms:ViaService': `s3.${this.region}.amazonaws.com` } },
    }));
    const replicate = ['s3:ReplicateObject', 's3:ReplicateTags'];
    const objects = this.bucket.arnForObjects('*');
    this.bucket.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'PrimaryReplicationReplicates',
      principals: [primary],
      actions: replicate,
      resources: [objects],
      conditions: replicationRole,
    }));
    this.bucket.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'OnlyTheReplicationRoleReplicates',
      effect: iam.Effect.DENY,
      principals: [new iam.StarPrincipal()],
      actions: replicate,
      resources: [objects],
      conditions: { ArnNotLike: { 'aws:PrincipalArn': this.primaryReplicationRolePattern() } },
    }));
    // What the vault's account writes for itself lives under a vault/ directory: its restore tests' reports under
    // restore-tests/vault/ (VaultRestoreTesting, its freshness check), its own runbooks under {source}/vault/
    // (VaultRunbook). Replication never writes there (IAM's * matches '/', so one pattern covers both), so the primary's
    // account can neither plant a vault report to look tested nor a runbook for the vault's people to follow. Such an
    // object on the primary fails to replicate, and the primary's replication-failed alarm says so.
    this.bucket.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'NothingReplicatedUnderVault',
      effect: iam.Effect.DENY,
      principals: [new iam.StarPrincipal()],
      actions: replicate,
      resources: [this.bucket.arnForObjects(`${this.prefix}*/${ReportsCopy.VAULT}/*`)],
    }));
    this.bucket.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'NothingElseFromOutsideTheVaultAccount',
      effect: iam.Effect.DENY,
      principals: [new iam.StarPrincipal()],
      notActions: replicate,
      resources: [this.bucket.bucketArn, objects],
      conditions: { StringNotEquals: { 'aws:PrincipalAccount': this.account } },
    }));
  }
}

/** What cannot make a vault, or a replica, in words. */
function checkVaultProps(path: string, props: ReplicaStoreProps, primaryAccount: string, isVault: boolean): void {
  if (props.primaryAccount !== undefined && (Token.isUnresolved(primaryAccount) || !ACCOUNT_ID.test(primaryAccount))) {
    throw new RestorableError(path, `primaryAccount must be a 12-digit AWS account id known at synth (got ${JSON.stringify(primaryAccount)}): ` +
      'the key and bucket policies name it');
  }
  if (!isVault && props.alarmTopic) {
    throw new RestorableError(path, 'alarmTopic applies to a vault only (primaryAccount another account than this stack\'s), whose retention ' +
      'keeper alarms with it; remove alarmTopic, or set primaryAccount to the primary BackupStore\'s account');
  }
  if (isVault && props.objectLockEnabled === false) {
    throw new RestorableError(path, `objectLockEnabled is false, but this replica is a vault (primaryAccount ${primaryAccount} is another account ` +
      'than its stack\'s) whose every version is locked in COMPLIANCE mode so that a compromise of the primary cannot empty it; leave ' +
      'objectLockEnabled unset (Object Lock on)');
  }
}
