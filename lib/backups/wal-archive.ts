/**
 * Continuous WAL archiving of a PostgreSQL source: where the source is hosted (only a self-managed server lets an
 * outside archiver have its WAL), and what the database host's role needs to push WAL with `restorable wal-push`
 * (its archive_command) and a recovering server's role to fetch it with `restorable wal-fetch` (its restore_command).
 */
import { Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as rds from 'aws-cdk-lib/aws-rds';
import { WAL_DIR, sourcePrefix } from '../contract/names';
import { BackupBucket } from '../store/backup-bucket';
import { acknowledgeWildcard } from '../shared/nag';
import { BackupSource, DatabaseFlavour, SourceEndpoint } from './backup-source';

/** Where a source's database runs, which decides whether its WAL can be archived from outside. */
export enum DatabaseHosting {
  /** A server of your own (EC2, ECS or EKS, on premises), which allows archive_command and physical replication. */
  SELF_MANAGED = 'self-managed',
  /** Amazon RDS, which allows neither, and has its own point-in-time recovery (automated backups). */
  RDS = 'rds',
  /** Amazon Aurora, which allows neither, and has its own point-in-time recovery (and, for MySQL, backtrack). */
  AURORA = 'aurora',
}

/**
 * The hosting a source declares, or the one its `peer` (an RDS instance or an Aurora cluster) or its endpoint's host
 * name (`….rds.amazonaws.com`, with `.cluster-` for Aurora) shows; a server of your own otherwise.
 */
export function hostingOf(given: DatabaseHosting | undefined, peer: ec2.IConnectable | undefined, endpoint: SourceEndpoint | undefined): DatabaseHosting {
  if (given) return given;
  if (peer instanceof rds.DatabaseClusterBase) return DatabaseHosting.AURORA;
  if (peer instanceof rds.DatabaseInstanceBase) return DatabaseHosting.RDS;
  const host = endpoint?.hostname ?? '';
  if (/\.rds\.amazonaws\.com(\.cn)?$/.test(host)) return host.includes('.cluster-') ? DatabaseHosting.AURORA : DatabaseHosting.RDS;
  return DatabaseHosting.SELF_MANAGED;
}

/** Why a source's WAL cannot be archived by Restorable, or undefined when it can. */
export function walArchivingProblem(source: BackupSource): string | undefined {
  if (source.engine.flavour !== DatabaseFlavour.POSTGRES) {
    return `source '${source.name}' is ${source.engine}: WAL archiving is for PostgreSQL sources`;
  }
  if (source.hosting === DatabaseHosting.SELF_MANAGED) return undefined;
  const product = source.hosting === DatabaseHosting.AURORA ? 'Aurora' : 'RDS';
  return `source '${source.name}' runs on Amazon ${product}, which allows no archive_command or outside physical replication: ` +
    `use ${product}'s own point-in-time recovery (automated backups, retention up to 35 days) for an RPO of minutes, and keep ` +
    'Restorable\'s dumps as the encrypted, offsite, restore-tested copy. If the server is in fact your own, set hosting: DatabaseHosting.SELF_MANAGED';
}

/**
 * What `restorable wal-push` needs, as the database host's archive_command: create `{prefix}{source}/wal/*` objects
 * (the bucket policy requires If-None-Match, which it sends: a stored WAL file is never replaced), read their heads
 * back to verify, and encrypt with the store's key through S3. No list, no delete, no tagging.
 */
export function grantWalPush(store: BackupBucket, grantee: iam.IGrantable, source: string): iam.Grant {
  const objects = walObjects(store, grantee, source, `The database host of '${source}' archives its WAL, one object per file, under ` +
    'that source\'s wal/ prefix (the wildcard matches any file name there, and nothing outside it); the bucket policy refuses any write ' +
    'without If-None-Match, so a stored file is never replaced');
  return iam.Grant.addToPrincipal({ grantee, actions: ['s3:PutObject', 's3:GetObject'], resourceArns: [objects] })
    .combine(keyThroughS3(store, grantee, 'kms:GenerateDataKey'));
}

/**
 * What `restorable wal-fetch` needs, as a recovering server's restore_command: read `{prefix}{source}/wal/*` and list
 * that prefix (so that a file the archive does not hold reads as absent, not as forbidden), and decrypt through S3.
 * The identity that opens the files is granted apart (BackupKeys.grantIdentityRead).
 */
export function grantWalFetch(store: BackupBucket, grantee: iam.IGrantable, source: string): iam.Grant {
  const objects = walObjects(store, grantee, source, `A recovering server of '${source}' fetches any archived WAL file of that source ` +
    '(the wildcard matches any file name under its wal/ prefix, and nothing outside it)');
  return iam.Grant.addToPrincipal({
    grantee, actions: ['s3:ListBucket'], resourceArns: [store.bucket.bucketArn],
    conditions: { StringLike: { 's3:prefix': [`${walPrefix(store, source)}*`] } },
  })
    .combine(iam.Grant.addToPrincipal({ grantee, actions: ['s3:GetObject'], resourceArns: [objects] }))
    .combine(keyThroughS3(store, grantee, 'kms:Decrypt'));
}

function walPrefix(store: BackupBucket, source: string): string {
  return `${sourcePrefix(store.prefix, source)}${WAL_DIR}/`;
}

function walObjects(store: BackupBucket, grantee: iam.IGrantable, source: string, reason: string): string {
  const objects = store.bucket.arnForObjects(`${walPrefix(store, source)}*`);
  const principal = grantee.grantPrincipal;
  if (principal instanceof iam.Role) acknowledgeWildcard(principal, objects, reason);
  return objects;
}

function keyThroughS3(store: BackupBucket, grantee: iam.IGrantable, action: string): iam.Grant {
  return iam.Grant.addToPrincipal({
    grantee, actions: [action], resourceArns: [store.encryptionKey.keyArn],
    conditions: { StringEquals: { 'kms:ViaService': `s3.${Stack.of(store).region}.amazonaws.com` } },
  });
}
