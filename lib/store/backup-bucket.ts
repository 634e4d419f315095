import { Duration, Names, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct, IConstruct } from 'constructs';
import { normalisePrefix } from '../contract/names';
import { BackupWriteOptions, BinlogPushOptions, StoreGrants, WalPushOptions, acknowledgeWildcards } from './backup-grants';
import { bucketSettings } from './backup-bucket-settings';
import { KeepCounts, TIER_TAG, Tier } from '../contract/tiers';
import { TierRetention } from './retention-policy';
import { breakGlassRoleArn, denyDestroyingKey, deploymentRoleArn } from '../shared/trust-boundaries';
import { TAGGING_ACTIONS, addWriteOncePolicy } from './write-once-policy';

export type { BackupWriteOptions, BinlogPushOptions, WalPushOptions } from './backup-grants';

/** Move one tier's backups to a cheaper storage class once they reach an age. */
export interface TierTransition {
  /** The tier whose backups move. */
  readonly tier: Tier;
  /** The class they move to, for example `s3.StorageClass.GLACIER` or `s3.StorageClass.DEEP_ARCHIVE`. */
  readonly storageClass: s3.StorageClass;
  /**
   * The age at which they move, in whole days (for example `Duration.days(30)`); it must leave each backup in the
   * class for at least the class's minimum storage duration.
   */
  readonly transitionAfter: Duration;
}

/** What the primary store and its replica have in common. */
export interface BackupBucketProps {
  /**
   * How many backups of each tier to keep; each count becomes the expiry age of its tier's lifecycle rule.
   * @default - 24 hourly, 7 daily, 4 weekly, 12 monthly
   */
  readonly keep?: KeepCounts;
  /**
   * Storage class transitions per tier. Each is checked at synth against the class's minimum storage duration,
   * counted up to the tier's effective retention.
   * @default - monthly backups move to Glacier Flexible Retrieval after 30 days; other tiers stay in STANDARD
   */
  readonly transitions?: TierTransition[];
  /**
   * How long a backup version survives after it stops being current (through expiry or a deletion), so that a
   * mistaken delete can be undone; whole days. Adds to every tier's effective retention.
   * @default Duration.days(7)
   */
  readonly noncurrentVersionExpiration?: Duration;
  /**
   * Object Lock on the bucket. Turning it off must be said explicitly with `false`, and cannot be undone in place:
   * S3 turns Object Lock on only when a bucket is created.
   * @default true
   */
  readonly objectLockEnabled?: boolean;
  /**
   * How long every new version is locked against deletion and overwrite, and in which mode: GOVERNANCE (principals
   * granted s3:BypassGovernanceRetention may still delete) or COMPLIANCE (nobody may, not even the account root).
   * Whole days. A lock longer than a tier keeps its backups decides how long they live, and synth warns about it.
   * @default - s3.ObjectLockRetention.governance(Duration.days(7))
   */
  readonly objectLockDefaultRetention?: s3.ObjectLockRetention;
  /**
   * Confirms a COMPLIANCE lock longer than the longest tier keeps a backup: every backup of every tier is then kept,
   * undeletable by anyone, for the whole lock. Without it, such a lock fails synth with what it would keep.
   * @default false
   */
  readonly acknowledgeComplianceLockBeyondRetention?: boolean;
  /**
   * Key prefix under which every source's backups live (`{prefix}{source}/...`).
   * @default - no prefix: keys start with the source name
   */
  readonly prefix?: string;
  /**
   * When server access logs are deleted; whole days. The log bucket is versioned: a deleted log, by this expiry or
   * by hand, can be restored for noncurrentVersionExpiration more.
   * @default Duration.days(365)
   */
  readonly accessLogsExpiration?: Duration;
  /**
   * What happens to the buckets and the KMS key when they leave the stack.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * The only role that may schedule the deletion of the bucket's KMS key, disable it, or move or delete its alias:
   * the key policy denies those to every other principal of the account (by `aws:PrincipalArn`, so the role's
   * sessions get through). With a removal policy other than RETAIN, the stack's CloudFormation execution role
   * may too, so that the stack can still be deleted.
   * @default - the role named `restorable-break-glass` in the stack's account (it need not exist until needed)
   */
  readonly breakGlassRole?: iam.IRole;
}

/** What differs between the primary and the replica; the rest of the bucket is common. */
export interface BackupBucketInternals {
  readonly bucketName?: string;
  /** Give the key an alias derived from the construct path, so that another region can name it. */
  readonly withKeyAlias?: boolean;
  /**
   * The bucket is a vault in another account than its primary: tiers keep noncurrent versions for their effective
   * retention (vaultRetention), and the write-once policy lets the retention keeper's path bypass governance locks.
   */
  readonly vault?: boolean;
}

/**
 * A versioned, KMS-encrypted, Object-Locked bucket whose lifecycle follows the retention tiers, with its
 * access-log bucket, tamper-resistant bucket policy and the grants each role needs. BackupStore and
 * ReplicaStore are both one of these.
 */
export abstract class BackupBucket extends Construct {
  /** The bucket that holds the backups. */
  public readonly bucket: s3.IBucket;
  /** The customer-managed key (rotation on) that encrypts every object. */
  public readonly encryptionKey: kms.IKey;
  /** Where the bucket's server access logs go. */
  public readonly accessLogsBucket: s3.IBucket;
  /** The normalised key prefix: empty or ending with '/'. */
  public readonly prefix: string;
  /** Whether the bucket has Object Lock. */
  public readonly objectLockEnabled: boolean;
  /** The mode and period every new version is locked for, in whole days; undefined when Object Lock is off. */
  public readonly objectLockDefaultRetention?: s3.ObjectLockRetention;
  /** Each tier's expiry, lock and effective retention in days, shortest-lived tier first. */
  public readonly retention: readonly TierRetention[];
  /** The key's alias (`alias/...`), when one was asked for. */
  protected readonly keyAlias?: string;
  private readonly grants = new StoreGrants(this);

  protected constructor(scope: Construct, id: string, props: BackupBucketProps, internals: BackupBucketInternals = {}) {
    super(scope, id);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    this.prefix = normalisePrefix(props.prefix);
    const settings = bucketSettings(this, props, internals.vault);
    this.objectLockEnabled = settings.lock !== undefined;
    this.objectLockDefaultRetention = settings.lock;
    this.retention = settings.retention;

    // Unique per construct path and stable across synths.
    this.keyAlias = internals.withKeyAlias ? `alias/${Names.uniqueResourceName(this, { maxLength: 120 })}` : undefined;
    this.encryptionKey = new kms.Key(this, 'Key', {
      description: `Encrypts the backups in ${this.node.path}`,
      enableKeyRotation: true,
      alias: this.keyAlias,
      removalPolicy,
    });
    denyDestroyingKey(this.encryptionKey as kms.Key, keyExemptions(this, props.breakGlassRole, removalPolicy));

    const accessLogsBucket = new s3.Bucket(this, 'AccessLogs', {
      // Server access logs can only be delivered to a bucket with S3-managed encryption.
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      // The logs say who read or wrote the backups: a deleted log stays recoverable as long as a deleted backup does.
      versioned: true,
      lifecycleRules: [
        { id: 'expire-logs', expiration: Duration.days(settings.accessLogDays), noncurrentVersionExpiration: Duration.days(settings.noncurrentDays) },
        // S3 rejects this beside an expiry age in one rule.
        { id: 'housekeeping', expiredObjectDeleteMarker: true },
      ],
      removalPolicy,
    });
    this.accessLogsBucket = accessLogsBucket;

    const bucket = new s3.Bucket(this, 'Bucket', {
      bucketName: internals.bucketName,
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: this.encryptionKey,
      bucketKeyEnabled: true,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      versioned: true,
      objectLockEnabled: this.objectLockEnabled,
      objectLockDefaultRetention: settings.lock,
      // When two rules expire the same noncurrent version S3 applies the sooner, and housekeeping matches every object:
      // in a vault it must keep them as long as the longest-kept tier, or it would cut the tiers' longer noncurrent days short.
      lifecycleRules: this.lifecycleRules(internals.vault ? Math.max(...this.retention.map((r) => r.noncurrentDays)) : settings.noncurrentDays),
      removalPolicy,
    });
    // Retagging could move a backup into a shorter-lived tier: once an object carries its tier, nobody may change it.
    bucket.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'DenyRetaggingBackups',
      effect: iam.Effect.DENY,
      principals: [new iam.AnyPrincipal()],
      actions: TAGGING_ACTIONS,
      resources: [bucket.arnForObjects('*')],
      conditions: { Null: { [`s3:ExistingObjectTag/${TIER_TAG}`]: 'false' } },
    }));
    // Objects are added, never replaced; pointers move only by their ETag; nobody but break-glass destroys.
    addWriteOncePolicy(this, bucket, this.prefix, props.breakGlassRole, { retentionKeeper: internals.vault });
    this.deliverAccessLogs(bucket, accessLogsBucket);
    this.bucket = bucket;
  }

  /** How long a backup of one tier really exists: max(expiry + noncurrent days, lock), in whole days. */
  public effectiveRetention(tier: Tier): Duration {
    return Duration.days(this.retention.find((r) => r.tier === tier)!.effectiveDays);
  }

  /**
   * What one source's dump task needs: create objects (tagged at creation) under the source's prefix, read them
   * back (the agent HEADs each upload to verify it, and reads `latest.json` to choose the tier), list its own prefix
   * (so that S3 answers a missing key's absence, and the agent can ask for it by listing the exact key), abort its
   * multipart uploads, place (never release) legal holds, and encrypt with the key. No delete, no retagging, no
   * overwrite (the bucket policy refuses those). Reading reveals nothing: backups are age-encrypted.
   *
   * The grantee's own policy also denies it every s3:PutObject* call on the source's restore-tests/ and RUNBOOK.md:
   * the bucket policy refuses those to all but the restore tests and the runbook writer already, and this keeps a
   * role of the user's own that is granted this way (a host's role, say) from writing them even where it is exempt.
   * It denies the source's wal/ and binlog/ too, which are the WAL archiver's (grantWalPush) and the binlog
   * streamer's (grantBinlogPush): a name written there first would make the archiver's write-once store of that file
   * fail, and archiving stall.
   */
  public grantBackupWrite(grantee: iam.IGrantable, source: string, options: BackupWriteOptions = {}): iam.Grant {
    return this.grants.backupWrite(grantee, source, options);
  }

  /**
   * What a restore or restore-test role needs for one source: read and list every version under the source's
   * prefix, bring archived objects back, and write its reports, untagged, under `{prefix}{source}/restore-tests/`
   * (the bucket policy lets nobody tag them, and lets only restore-test roles write there).
   */
  public grantRestoreRead(grantee: iam.IGrantable, source: string): iam.Grant {
    return this.grants.restoreRead(grantee, source);
  }

  /**
   * What the freshness and size-anomaly functions need for every source: read objects (pointers, reports and
   * manifests, and a HEAD of the backups they name) and list bounded prefixes (one day of one source). No writes.
   */
  public grantMonitorRead(grantee: iam.IGrantable): iam.Grant {
    return this.grants.monitorRead(grantee);
  }

  /**
   * What `restorable wal-push` (a database host's archive_command) and `restorable wal-receive` need: create
   * `{prefix}{source}/wal/*` objects tagged with the daily tier and no other tag (the bucket policy requires
   * If-None-Match, which they send: a stored WAL file is never replaced), read their heads back to verify, place (never
   * release) legal holds on them, and encrypt with the key through S3. No list, no delete, no reading a file's bytes.
   */
  public grantWalPush(grantee: iam.IGrantable, source: string, options: WalPushOptions = {}): iam.Grant {
    return this.grants.walPush(grantee, source, options);
  }

  /**
   * What `restorable binlog-stream` needs: create `{prefix}{source}/binlog/*` objects (each stream's stream.json, its
   * binlog files and partials, and their indexes) tagged with the daily tier and no other tag, in single PUTs (the
   * bucket policy requires If-None-Match: a stored object is never replaced), read their heads back to verify, and
   * encrypt with the key through S3. No list, no delete, no reading an object's bytes, nothing outside binlog/; legal
   * holds only with `legalHold`, on closed files only.
   */
  public grantBinlogPush(grantee: iam.IGrantable, source: string, options: BinlogPushOptions = {}): iam.Grant {
    return this.grants.binlogPush(grantee, source, options);
  }

  /**
   * What `restorable wal-fetch` needs, as a recovering server's restore_command: read `{prefix}{source}/wal/*` and list
   * that prefix (so that a file the archive does not hold reads as absent, not as forbidden), and decrypt through S3.
   */
  public grantWalFetch(grantee: iam.IGrantable, source: string): iam.Grant {
    return this.grants.walFetch(grantee, source);
  }

  /**
   * Object ARNs need a wildcard; record for cdk-nag (AwsSolutions-IAM5) why each one is as narrow as it can be.
   * Only principals that are constructs (roles, users) can carry the acknowledgement.
   */
  protected acknowledgeWildcards(principal: iam.IGrantable | IConstruct, resources: string[], reason: string): void {
    acknowledgeWildcards(principal, resources, reason);
  }

  /**
   * Server access logs through a bucket policy for the logging service, rather than the log-delivery ACL
   * that CDK picks unless a feature flag is set: ACLs would clash with enforced object ownership.
   */
  private deliverAccessLogs(bucket: s3.Bucket, logs: s3.Bucket): void {
    const logPrefix = 'backup-bucket/';
    (bucket.node.defaultChild as s3.CfnBucket).loggingConfiguration = { destinationBucketName: logs.bucketName, logFilePrefix: logPrefix };
    logs.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'S3ServerAccessLogsPolicy',
      principals: [new iam.ServicePrincipal('logging.s3.amazonaws.com')],
      actions: ['s3:PutObject'],
      resources: [logs.arnForObjects(`${logPrefix}*`)],
      conditions: {
        ArnLike: { 'aws:SourceArn': bucket.bucketArn },
        StringEquals: { 'aws:SourceAccount': Stack.of(this).account },
      },
    }));
  }

  private lifecycleRules(noncurrentDays: number): s3.LifecycleRule[] {
    const tierRules = this.retention.map((r): s3.LifecycleRule => ({
      id: `tier-${r.tier}`,
      tagFilters: { [TIER_TAG]: r.tier },
      expiration: Duration.days(r.expirationDays),
      noncurrentVersionExpiration: Duration.days(r.noncurrentDays),
      transitions: r.transitions.map((t) => ({ storageClass: new s3.StorageClass(t.storageClass), transitionAfter: Duration.days(t.afterDays) })),
    }));
    // S3 rejects these two in tag-filtered rules. Noncurrent expiry here also clears old versions of
    // untagged objects such as latest.json, which is rewritten after every backup.
    const housekeeping: s3.LifecycleRule = {
      id: 'housekeeping',
      abortIncompleteMultipartUploadAfter: Duration.days(1),
      expiredObjectDeleteMarker: true,
      noncurrentVersionExpiration: Duration.days(noncurrentDays),
    };
    return [...tierRules, housekeeping];
  }
}


/** Who gets through a key's deny: break-glass, and CloudFormation when the key is not retained (it deletes it with the stack). */
export function keyExemptions(scope: Construct, breakGlassRole: iam.IRole | undefined, removalPolicy: RemovalPolicy): string[] {
  const breakGlass = breakGlassRoleArn(scope, breakGlassRole);
  return removalPolicy === RemovalPolicy.RETAIN ? [breakGlass] : [breakGlass, deploymentRoleArn(scope)];
}
