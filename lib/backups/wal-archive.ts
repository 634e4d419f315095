/**
 * Continuous WAL archiving of a PostgreSQL source: where the source is hosted, since only a self-managed server lets
 * an outside archiver have its WAL. The grants themselves are the store's (BackupBucket.grantWalPush, grantWalFetch).
 */
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as rds from 'aws-cdk-lib/aws-rds';
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
