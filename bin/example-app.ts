import { App, Duration, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as events from 'aws-cdk-lib/aws-events';
import {
  BackupKeys, BackupMonitoring, BackupStore, DatabaseBackups, DisasterRecoveryRunbook, ReplicaStore, RestoreTesting, SourceEngine,
} from '../lib';
import { EnvironmentConfig } from './environments';

/** The stacks of one environment: the replica in the DR region, the primary store that replicates to it. */
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
}

export function addExampleStacks(app: App, env: EnvironmentConfig & { readonly name: string }): ExampleStacks {
  const replica = new Stack(app, `Restorable-${env.name}-Replica`, {
    env: { account: env.account, region: env.replicaRegion },
    description: `Restorable (${env.name}): offsite copy of the backups`,
  });
  const replicaStore = new ReplicaStore(replica, 'ReplicaStore');

  const primary = new Stack(app, `Restorable-${env.name}`, {
    env: { account: env.account, region: env.region },
    description: `Restorable (${env.name}): backup store`,
  });
  const store = new BackupStore(primary, 'BackupStore', { replica: replicaStore });
  const monitoring = new BackupMonitoring(primary, 'BackupMonitoring', { store });
  withoutStoreReplicationAlarm(store);
  // The identity secret is replicated with the replica stack's identity key, so that stack must exist first.
  const keys = new BackupKeys(primary, 'BackupKeys', {
    replicaRegion: env.replicaRegion,
    replicaKeyAlias: replicaStore.identityKeyAliasName,
    // Changes to the keys' or the identity secret's policies, and their deletion, are reported with the alarms.
    alarmTopic: monitoring.topic,
    watchedKeys: [store.encryptionKey],
  });
  primary.addStackDependency(replica);

  const backups = new DatabaseBackups(primary, 'DatabaseBackups', {
    store, keys, monitoring, vpc: sampleVpc(primary, env), vpcEndpoints: true,
  });
  addSampleSources(primary, env, backups);
  const restoreTesting = addRestoreTesting(primary, { store, keys, backups, monitoring });
  const runbook = new DisasterRecoveryRunbook(primary, 'DisasterRecoveryRunbook', { backups, store, keys });
  return { primary, replica, store, replicaStore, keys, backups, monitoring, restoreTesting, runbook };
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
function sampleVpc(stack: Stack, env: EnvironmentConfig & { readonly name: string }): ec2.IVpc {
  const hex = env.name === 'prod' ? 'b' : 'a';
  return ec2.Vpc.fromVpcAttributes(stack, 'DatabaseVpc', {
    vpcId: `vpc-0${hex}1b2c3d4e5f60000`,
    vpcCidrBlock: '10.20.0.0/16',
    availabilityZones: [`${env.region}a`, `${env.region}b`],
    isolatedSubnetIds: [`subnet-0${hex}1b2c3d4e5f60001`, `subnet-0${hex}1b2c3d4e5f60002`],
    isolatedSubnetRouteTableIds: [`rtb-0${hex}1b2c3d4e5f60001`, `rtb-0${hex}1b2c3d4e5f60002`],
  });
}

/** A PostgreSQL source (dumped from its read replica) and a MariaDB source. */
function addSampleSources(stack: Stack, env: EnvironmentConfig & { readonly name: string }, backups: DatabaseBackups): void {
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
  });
}

/**
 * Weekly restore tests of both sources (Sundays 03:00 UTC), and a monthly one from the DR copy. The orders
 * database also proves its newest order is at most an hour older than the backup, and has an RTO of 2 hours.
 */
function addRestoreTesting(stack: Stack, parts: Pick<ExampleStacks, 'store' | 'keys' | 'backups' | 'monitoring'>): RestoreTesting {
  const [orders, shop] = parts.backups.sources;
  return new RestoreTesting(stack, 'RestoreTesting', {
    ...parts,
    drSchedule: events.Schedule.cron({ day: '1', hour: '5', minute: '0' }),
    sources: [
      { source: orders, rtoTarget: Duration.hours(2),
        checks: [{ name: 'orders up to the backup', sql: 'SELECT max(placed_at) FROM sales.orders', maxAge: Duration.hours(1) }] },
      { source: shop },
    ],
  });
}
