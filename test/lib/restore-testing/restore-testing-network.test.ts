/**
 * RestoreTesting's network boundary, template assertions: the restore tests' own group admits nothing, reaches no
 * database, and lets out only HTTPS: to the VPC endpoints and S3's prefix list, and to any address only when the
 * tests need the internet (no endpoints, scratch images outside this region's ECR, the DR region).
 */
import { App, Stack, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { Template } from 'aws-cdk-lib/assertions';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as events from 'aws-cdk-lib/aws-events';
import { BackupKeys, BackupMonitoring, BackupStore, DatabaseBackups, ReplicaStore, RestoreTesting } from '../../../lib';
import { ENV, mariadbSource, postgresSource, sampleVpc } from '../database-backups-fixture';

type Rule = Record<string, unknown>;

const PREFIX_LIST_KEY = `cc-api-provider:account=${ENV.account}:expectedMatchCount=exactly-one:propertiesToReturn.0=PrefixListId:` +
  `propertyMatch.PrefixListName=com.amazonaws.${ENV.region}.s3:region=${ENV.region}:typeName=AWS$:$:EC2$:$:PrefixList`;
const S3_PREFIX_LIST = 'pl-6da54004';
const MIRROR = `${ENV.account}.dkr.ecr.${ENV.region}.amazonaws.com/docker-hub/library`;
const HTTPS_ANYWHERE = { IpProtocol: 'tcp', FromPort: 443, ToPort: 443, CidrIp: '0.0.0.0/0' };

interface Options {
  readonly vpcEndpoints?: boolean;
  /** Scratch images from this region's ECR (a pull-through cache) instead of Docker Hub. */
  readonly mirrored?: boolean;
  readonly dr?: boolean;
  /** The PostgreSQL source's scratch image, by name. */
  readonly image?: string;
}

function restoreTestingStack(options: Options) {
  const app = new App({ context: { [PREFIX_LIST_KEY]: [{ PrefixListId: S3_PREFIX_LIST }] } });
  const replicaStack = options.dr ? new Stack(app, 'Replica', { env: { ...ENV, region: 'eu-central-1' } }) : undefined;
  const replica = replicaStack ? new ReplicaStore(replicaStack, 'Replica') : undefined;
  const stack = new Stack(app, 'Backups', { env: ENV });
  const store = new BackupStore(stack, 'Store', { replica });
  const keys = new BackupKeys(stack, 'Keys', { replicaRegion: 'eu-central-1', replicaKeyAlias: replica?.keyAliasName ?? 'alias/dr-secrets' });
  const monitoring = new BackupMonitoring(stack, 'Monitoring', { store });
  const vpcEndpoints = options.vpcEndpoints ?? true;
  const backups = new DatabaseBackups(stack, 'DatabaseBackups', { store, keys, monitoring, vpc: sampleVpc(stack, vpcEndpoints), vpcEndpoints });
  const repository = ecr.Repository.fromRepositoryName(stack, 'Mirror', 'docker-hub/library/mariadb');
  backups.addSource(postgresSource(stack, 'orders-db', options.mirrored ? { scratchImage: ecs.ContainerImage.fromRegistry(options.image ?? `${MIRROR}/postgres:16`) } : {}));
  backups.addSource(mariadbSource(stack, 'shop-db', options.mirrored ? { scratchImage: ecs.ContainerImage.fromEcrRepository(repository, '10.11') } : {}));
  const testing = new RestoreTesting(stack, 'RestoreTesting', {
    backups, store, keys, monitoring, drSchedule: options.dr ? events.Schedule.cron({ day: '1', hour: '4', minute: '0' }) : undefined,
  });
  const template = Template.fromStack(stack);
  const groupId = (group: { node: { defaultChild?: unknown } }) => ({ 'Fn::GetAtt': [stack.getLogicalId(group.node.defaultChild as never), 'GroupId'] });
  const egress = (template.findResources('AWS::EC2::SecurityGroup')[stack.getLogicalId(testing.securityGroup.node.defaultChild as never)]
    .Properties.SecurityGroupEgress as Rule[]).map(({ Description: _, ...rule }) => rule);
  return { stack, template, backups, testing, egress, groupId };
}

test('given endpoints and scratch images mirrored in this region\'s ECR, then the restore tests go out on HTTPS to the endpoints and S3 only', () => {
  const { egress, backups, groupId } = restoreTestingStack({ mirrored: true });
  expect(egress).toEqual([
    { IpProtocol: 'tcp', FromPort: 443, ToPort: 443, DestinationSecurityGroupId: groupId(backups.endpointSecurityGroup!) },
    { IpProtocol: 'tcp', FromPort: 443, ToPort: 443, DestinationPrefixListId: S3_PREFIX_LIST },
  ]);
});

test('given endpoints and Docker Hub scratch images, then HTTPS anywhere is added once, for the registry', () => {
  const { egress } = restoreTestingStack({});
  expect(egress.filter((r) => r.CidrIp === '0.0.0.0/0')).toEqual([HTTPS_ANYWHERE]);
  expect(egress).toHaveLength(3);
});

test('given a scratch image in another region\'s ECR, then HTTPS anywhere is added: the endpoints serve only their own region', () => {
  const { egress } = restoreTestingStack({ mirrored: true, image: `${ENV.account}.dkr.ecr.us-east-1.amazonaws.com/postgres:16` });
  expect(egress).toContainEqual(HTTPS_ANYWHERE);
});

test('given DR restore tests, then HTTPS anywhere is added: the DR region\'s S3 and Secrets Manager are reached through NAT, not the endpoints', () => {
  const { egress } = restoreTestingStack({ mirrored: true, dr: true });
  expect(egress).toContainEqual(HTTPS_ANYWHERE);
  expect(egress).toHaveLength(3);
});

test('given no endpoints, then the restore tests go out on HTTPS anywhere only', () => {
  const { egress } = restoreTestingStack({ vpcEndpoints: false, mirrored: true });
  expect(egress).toEqual([HTTPS_ANYWHERE]);
});

test.each([{}, { dr: true }, { vpcEndpoints: false }])('given %j, then the restore tests reach no database port and admit nothing, and no database admits them', (options) => {
  const { template, egress, testing, groupId } = restoreTestingStack(options);
  expect(egress.every((r) => r.FromPort === 443 && r.ToPort === 443)).toBe(true);
  const ingress = Object.values(template.findResources('AWS::EC2::SecurityGroupIngress')).map((r) => r.Properties as Rule);
  const own = JSON.stringify(groupId(testing.securityGroup));
  expect(ingress.filter((r) => JSON.stringify(r.GroupId) === own)).toEqual([]);
  // Only the endpoints (when there are any) admit the restore tests, on HTTPS.
  expect(ingress.filter((r) => JSON.stringify(r.SourceSecurityGroupId) === own).map((r) => r.FromPort)).toEqual(options.vpcEndpoints === false ? [] : [443]);
  template.resourceCountIs('AWS::EC2::SecurityGroupEgress', 0);
});

test('given a scratch image from an ECR repository of the stack\'s own environment, then it is pulled through the endpoints', () => {
  const app = new App({ context: { [PREFIX_LIST_KEY]: [{ PrefixListId: S3_PREFIX_LIST }] } });
  const stack = new Stack(app, 'Agnostic');
  const store = new BackupStore(stack, 'Store');
  const keys = new BackupKeys(stack, 'Keys', { replicaRegion: 'eu-central-1', replicaKeyAlias: 'alias/dr-secrets' });
  const monitoring = new BackupMonitoring(stack, 'Monitoring', { store });
  const backups = new DatabaseBackups(stack, 'DatabaseBackups', { store, keys, monitoring, vpc: sampleVpc(stack, true), vpcEndpoints: true });
  const repository = new ecr.Repository(stack, 'Scratch');
  backups.addSource(postgresSource(stack, 'orders-db', { scratchImage: ecs.ContainerImage.fromEcrRepository(repository, '16') }));
  const testing = new RestoreTesting(stack, 'RestoreTesting', { backups, store, keys, monitoring });
  const group = Template.fromStack(stack).findResources('AWS::EC2::SecurityGroup')[stack.getLogicalId(testing.securityGroup.node.defaultChild as never)];
  // Endpoints and S3 only (HTTPS anywhere for S3 here: an environment-agnostic stack cannot look its prefix list up).
  expect((group.Properties.SecurityGroupEgress as Rule[]).map((r) => r.Description)).toEqual([
    'Restorable restore-test tasks to the VPC endpoints',
    'Restorable restore-test tasks to S3 over HTTPS (its prefix list needs the stack\'s account and region)',
  ]);
});

test('given an environment-agnostic stack with cdk-nag, then RestoreTesting synthesizes with every finding acknowledged', () => {
  const app = new App();
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  const stack = new Stack(app, 'Agnostic');
  const store = new BackupStore(stack, 'Store');
  const keys = new BackupKeys(stack, 'Keys', { replicaRegion: 'eu-central-1', replicaKeyAlias: 'alias/dr-secrets' });
  const monitoring = new BackupMonitoring(stack, 'Monitoring', { store });
  const backups = new DatabaseBackups(stack, 'DatabaseBackups', { store, keys, monitoring, vpc: sampleVpc(stack, true), vpcEndpoints: true });
  backups.addSource(postgresSource(stack, 'orders-db'));
  new RestoreTesting(stack, 'RestoreTesting', { backups, store, keys, monitoring });
  expect(() => app.synth()).not.toThrow();
});
