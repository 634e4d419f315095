import { App, Duration, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as events from 'aws-cdk-lib/aws-events';
import * as sns from 'aws-cdk-lib/aws-sns';
import {
  AlarmTopic, BackupKeys, BackupMonitoring, BackupStore, DatabaseBackups, DatabaseHosting, DisasterRecoveryRunbook, ReplicaStore,
  RestoreTesting, RestoreTestSourceProps, SourceEngine, VaultIdentity, VaultRestoreTesting, VaultRunbook, WalArchiveMode,
} from '../lib';
import { EnvironmentConfig } from './environments';

type Environment = EnvironmentConfig & { readonly name: string };

/**
 * What a vault in another account holds besides its ReplicaStore: its own copy of the identity, its own monitoring
 * (freshness of the copy, the restore tests' alarms) and the monthly restore tests that run there.
 */
export interface ExampleVault {
  readonly identity: VaultIdentity;
  readonly monitoring: BackupMonitoring;
  readonly restoreTesting: VaultRestoreTesting;
  /** The vault's own runbooks, written by its account: after a compromise of the primary, the ones its people follow. */
  readonly runbook: VaultRunbook;
}

/**
 * The stacks of one environment: the replica in the DR region, the primary store that replicates to it. With a
 * `replicaAccount` of its own, the replica is a vault in that account, which the primary account may only replicate to.
 */
export interface ExampleStacks {
  readonly primary: Stack;
  readonly replica: Stack;
  readonly store: BackupStore;
  readonly replicaStore: ReplicaStore;
  readonly keys: BackupKeys;
  readonly backups: DatabaseBackups;
  readonly monitoring: BackupMonitoring;
  readonly restoreTesting: RestoreTesting;
  /** Each source's disaster-recovery runbook, in the store and its replica. */
  readonly runbook: DisasterRecoveryRunbook;
  /** The vault's own parts, when the replica is in another account. */
  readonly vault?: ExampleVault;
}

export function addExampleStacks(app: App, env: Environment): ExampleStacks {
  const isVault = env.replicaAccount !== env.account;
  const replica = new Stack(app, `Restorable-${env.name}-Replica`, {
    env: { account: env.replicaAccount, region: env.replicaRegion },
    description: isVault
      ? `Restorable (${env.name}): the vault, an offsite copy of the backups in an account of its own`
      : `Restorable (${env.name}): offsite copy of the backups`,
  });
  // A vault tells its own account's people when a replica could not be locked or a vault restore test failed.
  const vaultTopic = isVault ? new AlarmTopic(replica, 'VaultAlarmTopic').topic : undefined;
  const replicaStore = new ReplicaStore(replica, 'ReplicaStore', isVault ? { primaryAccount: env.account, alarmTopic: vaultTopic } : {});

  const primary = new Stack(app, `Restorable-${env.name}`, {
    env: { account: env.account, region: env.region },
    description: `Restorable (${env.name}): backup store`,
  });
  const store = new BackupStore(primary, 'BackupStore', { replica: replicaStore });
  const monitoring = new BackupMonitoring(primary, 'BackupMonitoring', { store });
  withoutStoreReplicationAlarm(store);
  // The identity secret is replicated with the replica stack's identity key, or, to a vault, copied by the vault
  // itself: either way that stack must exist first.
  const keys = new BackupKeys(primary, 'BackupKeys', {
    ...(isVault
      ? { vaultAccount: env.replicaAccount }
      : { replicaRegion: env.replicaRegion, replicaKeyAlias: replicaStore.identityKeyAliasName }),
    // Changes to the keys' or the identity secret's policies, and their deletion, are reported with the alarms.
    alarmTopic: monitoring.topic,
    watchedKeys: [store.encryptionKey],
  });
  primary.addStackDependency(replica);

  const backups = new DatabaseBackups(primary, 'DatabaseBackups', {
    store, keys, monitoring, vpc: sampleVpc(primary, env), vpcEndpoints: true,
  });
  addSampleSources(primary, env, backups);
  const tested = restoreTestSources(backups);
  const restoreTesting = new RestoreTesting(primary, 'RestoreTesting', {
    store, keys, backups, monitoring, sources: tested,
    // The DR copy is tested monthly where it lives: here for a replica of this account, in the vault's own account otherwise.
    drSchedule: isVault ? undefined : MONTHLY,
  });
  const vault = isVault ? addVault(replica, env, { replicaStore, keys, topic: vaultTopic!, backups, tested }) : undefined;
  const runbook = new DisasterRecoveryRunbook(primary, 'DisasterRecoveryRunbook', {
    backups, store, keys, vault: vault && { identity: vault.identity },
  });
  return { primary, replica, store, replicaStore, keys, backups, monitoring, restoreTesting, runbook, vault };
}

/** The 1st of every month, 05:00 UTC: the DR copy's restore tests. */
const MONTHLY = events.Schedule.cron({ day: '1', hour: '5', minute: '0' });

/**
 * The vault's own parts, in its account: the identity copied from the primary, a freshness check of the copy (the
 * newest backup there may be the RPO, the run and a quarter of an hour of replication old), monthly restore tests
 * of the same sources with the same checks, alarming on the vault's topic, and the runbooks its own people follow.
 */
function addVault(stack: Stack, env: Environment, parts: {
  replicaStore: ReplicaStore; keys: BackupKeys; topic: sns.ITopic; backups: DatabaseBackups; tested: RestoreTestSourceProps[];
}): ExampleVault {
  const identity = new VaultIdentity(stack, 'VaultIdentity', { keys: parts.keys, store: parts.replicaStore, alarmTopic: parts.topic });
  const monitoring = new BackupMonitoring(stack, 'VaultMonitoring', { store: parts.replicaStore, alarmTopic: parts.topic });
  // Replication adds up to a quarter of an hour to every age the vault sees.
  const replicationLag = Duration.minutes(15);
  for (const source of parts.backups.sources) {
    const wal = source.walArchiving;
    monitoring.addSource(source.name, {
      maxAge: source.rpo.plus(Duration.hours(1)).plus(replicationLag),
      walArchive: wal && { maxAge: wal.maxArchiveAge.plus(replicationLag), baseBackupMaxAge: wal.maxBaseBackupAge.plus(replicationLag) },
    });
  }
  const restoreTesting = new VaultRestoreTesting(stack, 'VaultRestoreTesting', {
    store: parts.replicaStore, identity, monitoring, sources: parts.tested,
    vpc: sampleVaultVpc(stack, env),
  });
  const runbook = new VaultRunbook(stack, 'VaultRunbook', { backups: parts.backups, store: parts.replicaStore, identity });
  return { identity, monitoring, restoreTesting, runbook };
}

/**
 * BackupMonitoring watches the store's replication with an alarm of its own, which notifies its topic and shows on
 * its dashboard. The store's own replication alarm, there for a store without monitoring, watches the same metric
 * with the same threshold and here no action: a second, silent copy. It is taken out of the tree before synthesis,
 * so that it is never created (nothing refers to it), and each alarm in these stacks is one that someone is told of.
 */
function withoutStoreReplicationAlarm(store: BackupStore): void {
  const alarm = store.replicationFailedAlarm;
  if (alarm && !store.node.tryRemoveChild(alarm.node.id)) throw new Error(`${store.node.path}: its replication alarm could not be left out`);
}

/*
 * Sample values: the databases' VPC, endpoints, security groups and secrets stand for your own, and are
 * placeholders (they synthesize, but point at nothing). Replace them with your real ones.
 */

/** The VPC the databases live in: isolated subnets, reached through the VPC endpoints DatabaseBackups creates. */
function sampleVpc(stack: Stack, env: Environment): ec2.IVpc {
  const hex = env.name === 'prod' ? 'b' : 'a';
  return ec2.Vpc.fromVpcAttributes(stack, 'DatabaseVpc', {
    vpcId: `vpc-0${hex}1b2c3d4e5f60000`,
    vpcCidrBlock: '10.20.0.0/16',
    availabilityZones: [`${env.region}a`, `${env.region}b`],
    isolatedSubnetIds: [`subnet-0${hex}1b2c3d4e5f60001`, `subnet-0${hex}1b2c3d4e5f60002`],
    isolatedSubnetRouteTableIds: [`rtb-0${hex}1b2c3d4e5f60001`, `rtb-0${hex}1b2c3d4e5f60002`],
  });
}

/**
 * The vault account's VPC for its restore tests: private subnets with a NAT route, since the tests reach S3, Secrets
 * Manager, CloudWatch and ECR Public there without endpoints.
 */
function sampleVaultVpc(stack: Stack, env: Environment): ec2.IVpc {
  return ec2.Vpc.fromVpcAttributes(stack, 'VaultVpc', {
    vpcId: 'vpc-0c1b2c3d4e5f60000',
    vpcCidrBlock: '10.30.0.0/16',
    availabilityZones: [`${env.replicaRegion}a`, `${env.replicaRegion}b`],
    privateSubnetIds: ['subnet-0c1b2c3d4e5f60001', 'subnet-0c1b2c3d4e5f60002'],
    privateSubnetRouteTableIds: ['rtb-0c1b2c3d4e5f60001', 'rtb-0c1b2c3d4e5f60002'],
  });
}

/**
 * A PostgreSQL source on RDS (dumped from its read replica), a MariaDB source on RDS whose binlogs a streamer stores as
 * they are written, a PostgreSQL server of the team's own whose WAL a receiver streams, with daily base backups (the
 * last two restore to any second), and the product catalog on a MongoDB 7.0 replica set of the team's own, dumped
 * from a hidden secondary so that dumps do not load the members that serve the shop.
 */
function addSampleSources(stack: Stack, env: Environment, backups: DatabaseBackups): void {
  const secret = (id: string, name: string) => secretsmanager.Secret.fromSecretCompleteArn(stack, id,
    `arn:aws:secretsmanager:${env.region}:${env.account}:secret:${name}-Ab12Cd`);
  const peer = (id: string, securityGroupId: string, port: number) => new ec2.Connections({
    securityGroups: [ec2.SecurityGroup.fromSecurityGroupId(stack, id, securityGroupId)],
    defaultPort: ec2.Port.tcp(port),
  });
  const hex = env.name === 'prod' ? 'b' : 'a';

  backups.addSource({
    name: 'orders-db',
    engine: SourceEngine.postgres('16'),
    secret: secret('OrdersDbSecret', `${env.name}/orders-db/backup-user`),
    endpoint: { hostname: `orders-db-replica.c9akciq32xyz.${env.region}.rds.amazonaws.com`, port: 5432 },
    rpo: Duration.hours(1),
    peer: peer('OrdersDbSecurityGroup', `sg-0${hex}1b2c3d4e5f60011`, 5432),
  });
  backups.addSource({
    name: 'shop-db',
    engine: SourceEngine.mariadb('10.11'),
    secret: secret('ShopDbSecret', `${env.name}/shop-db/backup-user`),
    endpoint: { hostname: `shop-db.c9akciq32xyz.${env.region}.rds.amazonaws.com`, port: 3306 },
    rpo: Duration.hours(6),
    peer: peer('ShopDbSecurityGroup', `sg-0${hex}1b2c3d4e5f60012`, 3306),
    binlogStreaming: {
      replicationSecret: secret('ShopDbReplicationSecret', `${env.name}/shop-db/binlog-user`),
    },
  });
  backups.addSource({
    name: 'ledger-db',
    engine: SourceEngine.postgres('16'),
    secret: secret('LedgerDbSecret', `${env.name}/ledger-db/backup-user`),
    endpoint: { hostname: 'ledger-db.internal.example.com', port: 5432 },
    hosting: DatabaseHosting.SELF_MANAGED,
    rpo: Duration.days(1),
    peer: peer('LedgerDbSecurityGroup', `sg-0${hex}1b2c3d4e5f60013`, 5432),
    walArchiving: {
      mode: WalArchiveMode.RECEIVE,
      replicationSecret: secret('LedgerDbReplicationSecret', `${env.name}/ledger-db/replication-user`),
    },
  });
  // The backup user is MongoDB's own (in admin) with read on catalog and viewUser/viewRole there (README, MongoDB sources),
  // never the cluster-wide backup role; its secret holds the RDS-shaped fields.
  backups.addSource({
    name: 'catalog-db',
    engine: SourceEngine.mongodb('7.0'),
    secret: secret('CatalogDbSecret', `${env.name}/catalog-db/backup-user`),
    endpoint: { hostname: 'catalog-db-hidden.internal.example.com', port: 27017 },
    database: 'catalog',
    mongodb: { authSource: 'admin' },
    rpo: Duration.hours(4),
    peer: peer('CatalogDbSecurityGroup', `sg-0${hex}1b2c3d4e5f60014`, 27017),
  });
}

/**
 * What the restore tests check, of every source: the orders database also proves its newest order is at most an
 * hour older than the backup, and has an RTO of 2 hours, as has the catalog, which must still list products; the
 * ledger's test is a point-in-time restore to a minute before it runs. Weekly (Sundays 03:00 UTC) from the store.
 */
function restoreTestSources(backups: DatabaseBackups): RestoreTestSourceProps[] {
  const [orders, shop, ledger, catalog] = backups.sources;
  return [
    { source: orders, rtoTarget: Duration.hours(2),
      checks: [{ name: 'orders up to the backup', sql: 'SELECT max(placed_at) FROM sales.orders', maxAge: Duration.hours(1) }] },
    { source: shop },
    { source: ledger, rtoTarget: Duration.hours(1) },
    { source: catalog, rtoTarget: Duration.hours(2),
      checks: [{ name: 'listed products', collection: 'products', filter: { status: 'listed' }, minRows: 1 }] },
  ];
}
