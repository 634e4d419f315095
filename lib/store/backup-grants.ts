/**
 * What each kind of principal may do in a backup bucket, as identity-policy grants: a source's dump task, a restore,
 * monitoring, a WAL archiver, a binlog streamer and a recovering server. The bucket policy (write-once-policy.ts) bounds every one of
 * them; these grants only ever allow. BackupBucket's grant methods are the public face of these.
 */
import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct, IConstruct } from 'constructs';
import { BINLOG_DIR, BINLOG_TIER } from '../contract/binlog';
import { WAL_DIR, restoreTestsPrefix, runbookKey, sourceNameProblem, sourcePrefix } from '../contract/names';
import { TIER_TAG, Tier } from '../contract/tiers';
import { WAL_TIER } from '../contract/wal';
import { RestorableError } from '../shared/errors';
import { acknowledgeWildcard } from '../shared/nag';

/** The parts of a backup bucket its grants are about. */
export interface GrantedStore extends IConstruct {
  readonly bucket: s3.IBucket;
  readonly encryptionKey: kms.IKey;
  readonly prefix: string;
  readonly objectLockEnabled: boolean;
}

/** Options for a dump task's write access. */
export interface BackupWriteOptions {
  /**
   * Allow the writer to place (never release) Object Lock legal holds under its source's prefix, which keeps the
   * last good backup alive however old it gets; releasing them is the hold keeper's.
   * @default - true when the bucket has Object Lock, false otherwise
   */
  readonly legalHold?: boolean;
}

/** Options for a WAL archiver's write access. */
export interface WalPushOptions {
  /**
   * Allow the archiver to place (never release) Object Lock legal holds on its source's WAL objects, so that the WAL
   * a held base backup needs stays with it; releasing them is the hold keeper's.
   * @default - true when the bucket has Object Lock, false otherwise
   */
  readonly legalHold?: boolean;
}

/** Options for a binlog streamer's write access. */
export interface BinlogPushOptions {
  /**
   * Allow the streamer to place (never release) Object Lock legal holds on its source's closed binlog files (never on
   * partials, stream.json or the indexes). Nothing releases a binlog file's hold yet (the hold keeper releases those of
   * dumps, base backups and WAL), so a held file would be kept for ever: grant it only with a release of your own.
   * @default false
   */
  readonly legalHold?: boolean;
}

/** A continuous archive under a source's prefix: WAL, or binlogs. */
interface ArchiveDir {
  readonly dir: string;
  readonly tier: Tier;
  /** Under the archive's prefix, the keys that may never be held, as an IAM pattern. */
  readonly neverHeld: string[];
}

const WAL_ARCHIVE: ArchiveDir = { dir: WAL_DIR, tier: WAL_TIER, neverHeld: ['*.partial.*'] };
const BINLOG_ARCHIVE: ArchiveDir = { dir: BINLOG_DIR, tier: BINLOG_TIER, neverHeld: ['*.partial.*', '*.json'] };

/**
 * Object ARNs need a wildcard; record for cdk-nag (AwsSolutions-IAM5) why each one is as narrow as it can be.
 * Only principals that are constructs (roles, users) can carry the acknowledgement.
 */
export function acknowledgeWildcards(principal: iam.IGrantable | IConstruct, resources: string[], reason: string): void {
  const scope = 'grantPrincipal' in principal ? principal.grantPrincipal : principal;
  if (!Construct.isConstruct(scope)) return;
  for (const resource of resources) acknowledgeWildcard(scope, resource, reason);
}

/** The grants of one backup bucket. */
export class StoreGrants {
  constructor(private readonly store: GrantedStore) {}

  /** See BackupBucket.grantBackupWrite. */
  public backupWrite(grantee: iam.IGrantable, source: string, options: BackupWriteOptions = {}): iam.Grant {
    const { bucket } = this.store;
    const objects = this.sourceObjects(source);
    const legalHold = options.legalHold ?? this.store.objectLockEnabled;
    acknowledgeWildcards(grantee, [objects], `The dump task of source '${source}' creates its backups under that source's prefix ` +
      'and reads them back (the wildcard matches any key below it, \'/\' included, and no other source\'s key); the bucket policy refuses ' +
      'to create or replace an object there without If-None-Match (latest.json only with If-Match or If-None-Match), and this ' +
      'grant denies restore-tests/, RUNBOOK.md and wal/ in the role\'s own policy, so it adds backups and replaces nothing but the pointer');
    const grant = iam.Grant.addToPrincipal({
      grantee,
      actions: ['s3:ListBucket'],
      resourceArns: [bucket.bucketArn],
      conditions: { StringLike: { 's3:prefix': [`${sourcePrefix(this.store.prefix, source)}*`] } },
    })
      // PutObject with a Tagging header is also authorised as s3:PutObjectTagging.
      .combine(this.objects(grantee, ['s3:PutObject', 's3:PutObjectTagging', 's3:GetObject', 's3:AbortMultipartUpload',
        ...(legalHold ? ['s3:GetObjectLegalHold'] : [])], [objects]))
      .combine(this.key(grantee, 'kms:GenerateDataKey', 'kms:Encrypt', 'kms:Decrypt'));
    // Not the reports, the runbook, nor the WAL or binlog archive: a dump task that wrote a file's name first would
    // make the archiver's own write of that file fail (write-once), and archiving would stall.
    grantee.grantPrincipal.addToPrincipalPolicy(new iam.PolicyStatement({
      effect: iam.Effect.DENY,
      actions: ['s3:PutObject*'],
      resources: [bucket.arnForObjects(`${restoreTestsPrefix(this.store.prefix, source)}*`), bucket.arnForObjects(runbookKey(this.store.prefix, source)),
        this.archiveArn(source, WAL_ARCHIVE), this.archiveArn(source, BINLOG_ARCHIVE)],
    }));
    return legalHold ? grant.combine(this.placeHolds(grantee, objects)) : grant;
  }

  /** See BackupBucket.grantRestoreRead. */
  public restoreRead(grantee: iam.IGrantable, source: string): iam.Grant {
    const { bucket } = this.store;
    const restoreTests = bucket.arnForObjects(`${restoreTestsPrefix(this.store.prefix, source)}*`);
    acknowledgeWildcards(grantee, [this.sourceObjects(source)],
      `A restore reads any object of source '${source}' (its age-encrypted backups, their pointers and manifests, its reports and ` +
      'runbook): the wildcard matches any key under that source\'s prefix, \'/\' included, and no other source\'s key');
    acknowledgeWildcards(grantee, [restoreTests],
      `A restore test writes its reports under the restore-tests/ prefix of source '${source}' (the wildcard matches any key below it, ` +
      '\'/\' included); the bucket policy makes each report write-once, and restore-tests/latest.json written only with If-Match or ' +
      'If-None-Match');
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['s3:ListBucket', 's3:ListBucketVersions'],
      resourceArns: [bucket.bucketArn],
      conditions: { StringLike: { 's3:prefix': [`${sourcePrefix(this.store.prefix, source)}*`] } },
    })
      .combine(this.objects(grantee, ['s3:GetObject', 's3:GetObjectVersion', 's3:GetObjectTagging', 's3:RestoreObject'], [this.sourceObjects(source)]))
      .combine(this.objects(grantee, ['s3:PutObject', 's3:AbortMultipartUpload'], [restoreTests]))
      // GenerateDataKey: restore-test results are written under the bucket's KMS default encryption.
      .combine(this.key(grantee, 'kms:Decrypt', 'kms:GenerateDataKey'));
  }

  /** See BackupBucket.grantMonitorRead. */
  public monitorRead(grantee: iam.IGrantable): iam.Grant {
    const objects = this.store.bucket.arnForObjects(`${this.store.prefix}*`);
    acknowledgeWildcards(grantee, [objects], 'Freshness and size checks read the pointers, restore-test reports and manifests of every ' +
      'source and HEAD the backups they name, so they read any object under the store\'s prefix (backups themselves are age-encrypted); ' +
      'read-only, no writes');
    return iam.Grant.addToPrincipal({ grantee, actions: ['s3:ListBucket'], resourceArns: [this.store.bucket.bucketArn] })
      .combine(this.objects(grantee, ['s3:GetObject'], [objects]))
      .combine(this.key(grantee, 'kms:Decrypt'));
  }

  /** See BackupBucket.grantWalPush. */
  public walPush(grantee: iam.IGrantable, source: string, options: WalPushOptions = {}): iam.Grant {
    return this.archivePush(grantee, source, WAL_ARCHIVE, options.legalHold ?? this.store.objectLockEnabled,
      `The WAL archiver of '${source}' (its database host or its WAL receiver) stores its WAL, one object per file, under that ` +
      'source\'s wal/ prefix (the wildcard matches any file name there, and nothing outside it); the bucket policy refuses any write ' +
      'without If-None-Match, so a stored file is never replaced');
  }

  /** See BackupBucket.grantBinlogPush. */
  public binlogPush(grantee: iam.IGrantable, source: string, options: BinlogPushOptions = {}): iam.Grant {
    return this.archivePush(grantee, source, BINLOG_ARCHIVE, options.legalHold ?? false,
      `The binlog streamer of '${source}' stores its binlog streams under that source's binlog/ prefix: stream.json, each file and ` +
      'partial, and their indexes, in streams named by when they began (the wildcard matches any name there, and nothing outside ' +
      'it); the bucket policy refuses any write without If-None-Match, so a stored object is never replaced');
  }

  /**
   * Adds objects under the source's archive prefix, tagged with the archive's tier and no other tag, and HEADs them;
   * with legalHold, places holds but never on the keys the archive never holds. No list, no bytes read, no delete.
   */
  private archivePush(grantee: iam.IGrantable, source: string, archive: ArchiveDir, legalHold: boolean, reason: string): iam.Grant {
    const objects = this.archiveArn(source, archive);
    acknowledgeWildcards(grantee, [objects], reason);
    // PutObject with a Tagging header is authorised as s3:PutObjectTagging too: both only with the tier's tag and no
    // other, so that the tier's lifecycle rule expires the archive as it expires the backups it replays onto.
    const tagged = {
      'StringEquals': { [`s3:RequestObjectTag/${TIER_TAG}`]: archive.tier },
      'ForAllValues:StringEquals': { 's3:RequestObjectTagKeys': [TIER_TAG] },
    };
    const grant = iam.Grant.addToPrincipal({ grantee, actions: ['s3:PutObject', 's3:PutObjectTagging'], resourceArns: [objects], conditions: tagged })
      // The HEAD that verifies an upload; without kms:Decrypt it cannot read an object's bytes.
      .combine(this.objects(grantee, ['s3:GetObject', ...(legalHold ? ['s3:GetObjectLegalHold'] : [])], [objects]))
      .combine(this.key(grantee, 'kms:GenerateDataKey'));
    if (!legalHold) return grant;
    // Never on what the hold keeper does not release (received WAL partials, thousands a day, each superseded by its
    // whole file): a hold on one would keep it for ever.
    grantee.grantPrincipal.addToPrincipalPolicy(new iam.PolicyStatement({
      effect: iam.Effect.DENY,
      actions: ['s3:PutObjectLegalHold'],
      resources: archive.neverHeld.map((pattern) => this.archiveArn(source, archive, pattern)),
    }));
    return grant.combine(this.placeHolds(grantee, objects));
  }

  /** See BackupBucket.grantWalFetch. */
  public walFetch(grantee: iam.IGrantable, source: string): iam.Grant {
    const objects = this.archiveArn(source, WAL_ARCHIVE);
    acknowledgeWildcards(grantee, [objects], `A recovering server of '${source}' fetches any archived WAL file of that source ` +
      '(the wildcard matches any file name under its wal/ prefix, and nothing outside it)');
    return iam.Grant.addToPrincipal({
      grantee, actions: ['s3:ListBucket'], resourceArns: [this.store.bucket.bucketArn],
      conditions: { StringLike: { 's3:prefix': [`${sourcePrefix(this.store.prefix, source)}${WAL_DIR}/*`] } },
    })
      .combine(this.objects(grantee, ['s3:GetObject'], [objects]))
      .combine(this.key(grantee, 'kms:Decrypt'));
  }

  /** Placing a hold keeps data; releasing one is the hold keeper's alone (and the bucket policy says so too). */
  private placeHolds(grantee: iam.IGrantable, objects: string): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['s3:PutObjectLegalHold'],
      resourceArns: [objects],
      conditions: { StringEquals: { 's3:object-lock-legal-hold': 'ON' } },
    });
  }

  private sourceObjects(source: string): string {
    const problem = sourceNameProblem(source);
    if (problem) throw new RestorableError(this.store, problem);
    return this.store.bucket.arnForObjects(`${sourcePrefix(this.store.prefix, source)}*`);
  }

  /** `{prefix}{source}/{dir}/{pattern}`, `*` unless given. */
  private archiveArn(source: string, archive: ArchiveDir, pattern = '*'): string {
    const problem = sourceNameProblem(source);
    if (problem) throw new RestorableError(this.store, problem);
    return this.store.bucket.arnForObjects(`${sourcePrefix(this.store.prefix, source)}${archive.dir}/${pattern}`);
  }

  private objects(grantee: iam.IGrantable, actions: string[], resourceArns: string[]): iam.Grant {
    return iam.Grant.addToPrincipal({ grantee, actions, resourceArns });
  }

  /** Key use only through S3, so a role's key access is no wider than its bucket access. */
  private key(grantee: iam.IGrantable, ...actions: string[]): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions,
      resourceArns: [this.store.encryptionKey.keyArn],
      conditions: { StringEquals: { 'kms:ViaService': `s3.${Stack.of(this.store).region}.amazonaws.com` } },
    });
  }
}
