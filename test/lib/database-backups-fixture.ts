/**
 * Stacks for the DatabaseBackups tests: an imported VPC (private subnets with egress, or isolated ones),
 * a BackupStore, BackupKeys (generated, or a recipient brought by the user), and sources with sample endpoints.
 */
import { createHash } from 'node:crypto';
import { App, Duration, Stack, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import { AwsSolutionsChecks } from 'cdk-nag';
import { BackupKeys, BackupStore } from '../../lib';
import { BackupSourceProps, SourceEngine } from '../../lib/backups/backup-source';
import { DatabaseBackups, DatabaseBackupsProps } from '../../lib/backups/database-backups';

export const ENV = { account: '111111111111', region: 'eu-west-1' };
/** A recipient made with age-keygen; public, so harmless in a test. */
export const SAMPLE_RECIPIENT = 'age187sytcdk8cn7zrzvtrnny4j8klt6vf3t0pq382yr2unwhzhktuzqmpqmp6';

export interface FixtureOptions {
  /** Generate the key pair (a custom resource) instead of bringing a recipient. */
  readonly generatedKeys?: boolean;
  /** The recipient brought by the user, when keys are not generated. */
  readonly recipient?: string;
  /** The VPC has only isolated subnets. */
  readonly isolated?: boolean;
  readonly nag?: boolean;
  readonly alarmTopic?: boolean;
  readonly props?: Partial<DatabaseBackupsProps>;
}

export function sampleVpc(stack: Stack, isolated = false): ec2.IVpc {
  const subnets = ['subnet-0a1b2c3d4e5f60001', 'subnet-0a1b2c3d4e5f60002'];
  const routeTables = ['rtb-0a1b2c3d4e5f60001', 'rtb-0a1b2c3d4e5f60002'];
  return ec2.Vpc.fromVpcAttributes(stack, 'Vpc', {
    vpcId: 'vpc-0a1b2c3d4e5f60000',
    vpcCidrBlock: '10.20.0.0/16',
    availabilityZones: ['eu-west-1a', 'eu-west-1b'],
    ...(isolated
      ? { isolatedSubnetIds: subnets, isolatedSubnetRouteTableIds: routeTables }
      : { privateSubnetIds: subnets, privateSubnetRouteTableIds: routeTables }),
  });
}

export function backupsStack(options: FixtureOptions = {}) {
  const app = new App();
  if (options.nag) Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  const stack = new Stack(app, 'Backups', { env: ENV });
  const vpc = sampleVpc(stack, options.isolated);
  const store = new BackupStore(stack, 'Store', { prefix: 'backups' });
  const keys = options.generatedKeys
    ? new BackupKeys(stack, 'Keys', { replicaRegion: 'eu-central-1', replicaKeyAlias: 'alias/dr-secrets' })
    : new BackupKeys(stack, 'Keys', { recipient: options.recipient ?? SAMPLE_RECIPIENT });
  const alarmTopic = options.alarmTopic ? new sns.Topic(stack, 'Alarms', { enforceSSL: true }) : undefined;
  const backups = new DatabaseBackups(stack, 'DatabaseBackups', {
    store, keys, vpc, alarmTopic, vpcEndpoints: options.isolated, ...options.props,
  });
  return { app, stack, vpc, store, keys, backups, alarmTopic };
}

/** A database's side of the network: its security group, imported, listening on `port`. */
export function samplePeer(stack: Stack, id: string, port: number): ec2.Connections {
  const securityGroup = ec2.SecurityGroup.fromSecurityGroupId(stack, `${id}SecurityGroup`, `sg-${createHash('md5').update(id).digest('hex').slice(0, 17)}`);
  return new ec2.Connections({ securityGroups: [securityGroup], defaultPort: ec2.Port.tcp(port) });
}

export function sampleSecret(stack: Stack, name: string): secretsmanager.ISecret {
  return secretsmanager.Secret.fromSecretCompleteArn(stack, `${name}Secret`,
    `arn:aws:secretsmanager:${ENV.region}:${ENV.account}:secret:${name}/backup-user-AbCdEf`);
}

export function postgresSource(stack: Stack, name = 'orders-db', extra: Partial<BackupSourceProps> = {}): BackupSourceProps {
  return {
    name,
    engine: SourceEngine.postgres('16'),
    secret: sampleSecret(stack, name),
    endpoint: { hostname: `${name}.replica.example.internal`, port: 5432 },
    rpo: Duration.hours(1),
    peer: samplePeer(stack, name, 5432),
    ...extra,
  };
}

export function mariadbSource(stack: Stack, name = 'shop-db', extra: Partial<BackupSourceProps> = {}): BackupSourceProps {
  return {
    name,
    engine: SourceEngine.mariadb('10.11'),
    secret: sampleSecret(stack, name),
    endpoint: { hostname: `${name}.example.internal`, port: 3306 },
    peer: samplePeer(stack, name, 3306),
    ...extra,
  };
}
