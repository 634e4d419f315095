/**
 * Stacks for the DatabaseBackups tests: an imported VPC (private subnets with egress, or isolated ones),
 * a BackupStore, BackupKeys (generated, or a recipient brought by the user), and sources with sample endpoints.
 */
import { createHash } from 'node:crypto';
import { App, Duration, Stack, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import { AwsSolutionsChecks } from 'cdk-nag';
import { BackupKeys, BackupStore } from '../../lib';
import { BackupSourceProps, SourceEngine } from '../../lib/backups/backup-source';
import { DatabaseBackups, DatabaseBackupsProps } from '../../lib/backups/database-backups';
import { BackupMonitoring } from '../../lib/monitoring/backup-monitoring';

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

/** A stack whose DatabaseBackups runs in a cluster of the user's own (created without Container Insights). */
export function userClusterBackups() {
  const stack = new Stack(new App(), 'Backups', { env: ENV });
  const vpc = sampleVpc(stack);
  const backups = new DatabaseBackups(stack, 'DatabaseBackups', {
    store: new BackupStore(stack, 'Store', {}), keys: new BackupKeys(stack, 'Keys', { recipient: SAMPLE_RECIPIENT }), vpc,
    cluster: new ecs.Cluster(stack, 'Cluster', { vpc }),
  });
  return { stack, backups };
}

/** A stack whose DatabaseBackups is monitored, with a spy on the monitoring's addSource. */
export function monitoredBackups() {
  const stack = new Stack(new App(), 'Backups', { env: ENV });
  const store = new BackupStore(stack, 'Store', {});
  const monitoring = new BackupMonitoring(stack, 'Monitoring', { store });
  const addSource = jest.spyOn(monitoring, 'addSource');
  const backups = new DatabaseBackups(stack, 'DatabaseBackups', {
    store, monitoring, vpc: sampleVpc(stack), keys: new BackupKeys(stack, 'Keys', { recipient: SAMPLE_RECIPIENT }),
  });
  return { stack, monitoring, addSource, backups };
}

/** The resources of one type whose JSON mentions `text`. */
export function resourcesMentioning(template: Template, type: string, text: string) {
  return Object.values(template.findResources(type)).filter((r) => JSON.stringify(r).includes(text));
}

/** The command of the spooled service (a WAL receiver, a binlog streamer) whose task runs the agent's `verb`. */
export function serviceCommand(template: Template, verb: string): string[] {
  const [definition] = resourcesMentioning(template, 'AWS::ECS::TaskDefinition', verb);
  return definition.Properties.ContainerDefinitions[0].Command;
}

/** The value given to `name` in an agent command, or undefined when the command has no such option. */
export function optionOf(command: string[], name: string): unknown {
  return command.includes(name) ? command[command.indexOf(name) + 1] : undefined;
}

/** Asserts that the role with this description may mount the spool, read and write, through the access point named so only. */
export function expectSpoolMountOnlyThrough(stack: Stack, roleDescription: string, accessPoint: RegExp): void {
  const [role] = Object.values(Template.fromStack(stack).findResources('AWS::IAM::Role', { Properties: { Description: roleDescription } }));
  const statements = (role.Properties.Policies as { PolicyDocument: { Statement: Record<string, unknown>[] } }[])
    .flatMap((p) => p.PolicyDocument.Statement)
    .filter((s) => JSON.stringify(s.Action).includes('elasticfilesystem'));
  expect(statements).toHaveLength(1);
  expect(statements[0]).toMatchObject({
    Action: ['elasticfilesystem:ClientMount', 'elasticfilesystem:ClientWrite'],
    Condition: { StringEquals: { 'elasticfilesystem:AccessPointArn': { 'Fn::Join': ['', expect.arrayContaining([{ Ref: expect.stringMatching(accessPoint) }])] } } },
  });
}
