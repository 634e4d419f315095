/**
 * DatabaseBackups' network boundary, template assertions: the tasks' security group lets out only the databases'
 * ports and HTTPS (to the VPC endpoints and S3's prefix list, or anywhere without endpoints), the databases admit
 * the group, and the endpoints the construct creates carry policies that reach only the store, ECR's layers and the
 * sources' and the identity's secrets.
 */
import { App, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { BackupKeys, BackupStore, DatabaseBackups } from '../../../lib';
import { SourceEngine } from '../../../lib/backups/backup-source';
import { ENV, SAMPLE_RECIPIENT, backupsStack, mariadbSource, postgresSource, sampleVpc } from '../database-backups-fixture';

type Rule = Record<string, unknown>;
type Statement = { Sid?: string; Effect: string; Principal: unknown; Action: string | string[]; Resource: unknown; Condition?: unknown };

/** The context key the CDK CLI caches S3's prefix list under, for ENV (as cdk.json holds it for the example app). */
const PREFIX_LIST_KEY = `cc-api-provider:account=${ENV.account}:expectedMatchCount=exactly-one:propertiesToReturn.0=PrefixListId:` +
  `propertyMatch.PrefixListName=com.amazonaws.${ENV.region}.s3:region=${ENV.region}:typeName=AWS$:$:EC2$:$:PrefixList`;
const S3_PREFIX_LIST = 'pl-6da54004';

/** The resource of a type whose logical id contains `part`. */
function resourceOf(template: Template, type: string, part: string): { Properties: Record<string, unknown> } {
  const found = Object.entries(template.findResources(type)).filter(([id]) => id.includes(part));
  if (found.length !== 1) throw new Error(`expected one ${type} with ${part} in its id, found ${found.map(([id]) => id).join(', ') || 'none'}`);
  return found[0][1] as { Properties: Record<string, unknown> };
}

function groupIdOf(template: Template, part: string): unknown {
  const [id] = Object.keys(template.findResources('AWS::EC2::SecurityGroup')).filter((i) => i.includes(part));
  return { 'Fn::GetAtt': [id, 'GroupId'] };
}

function egressOf(template: Template, part: string): Rule[] {
  return resourceOf(template, 'AWS::EC2::SecurityGroup', part).Properties.SecurityGroupEgress as Rule[];
}

/** The rules without their descriptions, which say why but do not change what is allowed. */
const bare = (rules: Rule[]) => rules.map(({ Description: _, ...rule }) => rule);

function endpointPolicy(template: Template, service: string): Statement[] {
  const endpoints = Object.values(template.findResources('AWS::EC2::VPCEndpoint'))
    .filter((e) => JSON.stringify(e.Properties.ServiceName).includes(`.${service}`));
  expect(endpoints).toHaveLength(1);
  return (endpoints[0].Properties.PolicyDocument as { Statement: Statement[] } | undefined)?.Statement ?? [];
}

/** A stack in ENV whose app knows S3's prefix list, as `cdk synth` does once the lookup is cached in context. */
function stackWithPrefixList(options: { identitySecret?: boolean } = {}) {
  const app = new App({ context: { [PREFIX_LIST_KEY]: [{ PrefixListId: S3_PREFIX_LIST }] } });
  const stack = new Stack(app, 'Backups', { env: ENV });
  const store = new BackupStore(stack, 'Store', { prefix: 'backups' });
  const keys = options.identitySecret === false
    ? new BackupKeys(stack, 'Keys', { recipient: SAMPLE_RECIPIENT })
    : new BackupKeys(stack, 'Keys', { replicaRegion: 'eu-central-1', replicaKeyAlias: 'alias/dr-secrets' });
  const backups = new DatabaseBackups(stack, 'DatabaseBackups', { store, keys, vpc: sampleVpc(stack, true), vpcEndpoints: true });
  return { app, stack, store, keys, backups };
}

describe('given VPC endpoints and sources on 5432, 5432 and 3306', () => {
  const { stack, backups } = stackWithPrefixList();
  backups.addSource(postgresSource(stack, 'orders-db'));
  backups.addSource(postgresSource(stack, 'billing-db'));
  backups.addSource(mariadbSource(stack, 'shop-db'));
  // A secret known by its name only: its ARN has no random suffix.
  const byName = secretsmanager.Secret.fromSecretNameV2(stack, 'LegacySecret', 'legacy-db/backup-user');
  backups.addSource({ name: 'legacy-db', engine: SourceEngine.postgres('15'), secret: byName });
  const template = Template.fromStack(stack);
  const endpointGroup = groupIdOf(template, 'EndpointSecurityGroup');

  test('then the tasks\' group lets out only HTTPS to the endpoints and to S3\'s prefix list, and each database port once, to the VPC', () => {
    expect(bare(egressOf(template, 'DatabaseBackupsTaskSecurityGroup'))).toEqual([
      { IpProtocol: 'tcp', FromPort: 443, ToPort: 443, DestinationSecurityGroupId: endpointGroup },
      { IpProtocol: 'tcp', FromPort: 443, ToPort: 443, DestinationPrefixListId: S3_PREFIX_LIST },
      { IpProtocol: 'tcp', FromPort: 5432, ToPort: 5432, CidrIp: '10.20.0.0/16' },
      { IpProtocol: 'tcp', FromPort: 3306, ToPort: 3306, CidrIp: '10.20.0.0/16' },
    ]);
  });

  test('then every egress rule is inline: a source adds no egress resource, and its database\'s ingress names the tasks\' group', () => {
    template.resourceCountIs('AWS::EC2::SecurityGroupEgress', 0);
    const taskGroup = groupIdOf(template, 'DatabaseBackupsTaskSecurityGroup');
    const ingress = Object.values(template.findResources('AWS::EC2::SecurityGroupIngress')).map((r) => r.Properties as Rule);
    expect(ingress.filter((r) => r.FromPort !== 443).map((r) => [r.FromPort, r.SourceSecurityGroupId]))
      .toEqual([[5432, taskGroup], [5432, taskGroup], [3306, taskGroup]]);
    // The endpoints admit the tasks on HTTPS, and nothing else.
    expect(ingress.filter((r) => JSON.stringify(r.GroupId) === JSON.stringify(endpointGroup)))
      .toEqual([expect.objectContaining({ FromPort: 443, ToPort: 443, SourceSecurityGroupId: taskGroup })]);
  });

  test('then the endpoints\' group lets nothing out', () => {
    expect(egressOf(template, 'EndpointSecurityGroup')).toEqual([expect.objectContaining({ CidrIp: '255.255.255.255/32', Description: 'Disallow all traffic' })]);
  });

  test('then the S3 gateway endpoint reaches only the store\'s bucket and objects, and ECR\'s layer bucket for reading', () => {
    const storeBucket = Object.keys(template.findResources('AWS::S3::Bucket')).find((id) => id.startsWith('StoreBucket'))!;
    const statements = endpointPolicy(template, 's3');
    expect(statements).toEqual([
      {
        Sid: 'OnlyTheBackupStore', Effect: 'Allow', Principal: { AWS: '*' },
        Action: ['s3:GetObject*', 's3:PutObject*', 's3:ListBucket*', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts', 's3:RestoreObject'],
        Resource: [{ 'Fn::GetAtt': [storeBucket, 'Arn'] }, { 'Fn::Join': ['', [{ 'Fn::GetAtt': [storeBucket, 'Arn'] }, '/*']] }],
      },
      {
        Sid: 'EcrImageLayers', Effect: 'Allow', Principal: { AWS: '*' }, Action: 's3:GetObject',
        Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:s3:::prod-${ENV.region}-starport-layer-bucket/*`]] },
      },
    ]);
    expect(JSON.stringify(statements)).not.toMatch(/s3:Delete|s3:\*|"\*"\]?}?$/);
  });

  test('then the Secrets Manager endpoint reads only the identity and the sources\' secrets, added after the endpoint was made', () => {
    const identity = Object.keys(template.findResources('AWS::SecretsManager::Secret')).find((id) => id.startsWith('KeysIdentity'))!;
    expect(endpointPolicy(template, 'secretsmanager')).toEqual([{
      Sid: 'OnlyRestorableSecrets', Effect: 'Allow', Principal: { AWS: '*' },
      Action: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
      Resource: [
        { Ref: identity },
        ...['orders-db', 'billing-db', 'shop-db'].map((name) => `arn:aws:secretsmanager:${ENV.region}:${ENV.account}:secret:${name}/backup-user-AbCdEf`),
        // By name: any suffix, as the source's own grant matches it.
        { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:secretsmanager:${ENV.region}:${ENV.account}:secret:legacy-db/backup-user-??????`]] },
      ],
    }]);
  });

  test('then the ECR, Logs and Monitoring endpoints serve only this account\'s principals, so no other account\'s credentials ship data out', () => {
    for (const service of ['ecr.api', 'ecr.dkr', 'logs', 'monitoring']) {
      expect(endpointPolicy(template, service)).toEqual([{
        Sid: 'OnlyThisAccountsPrincipals', Effect: 'Allow', Principal: { AWS: '*' }, Action: '*', Resource: '*',
        Condition: { StringEquals: { 'aws:PrincipalAccount': ENV.account } },
      }]);
    }
  });
});

test('given keys without an identity secret, then the Secrets Manager endpoint reads the sources\' secrets only', () => {
  const { stack, backups } = stackWithPrefixList({ identitySecret: false });
  backups.addSource(postgresSource(stack, 'orders-db'));
  expect(endpointPolicy(Template.fromStack(stack), 'secretsmanager')).toEqual([expect.objectContaining({
    Resource: `arn:aws:secretsmanager:${ENV.region}:${ENV.account}:secret:orders-db/backup-user-AbCdEf`,
  })]);
});

test('given no VPC endpoints, then the tasks go out on HTTPS anywhere (AWS APIs through NAT) and on the database ports to the VPC only', () => {
  const { stack, backups } = backupsStack();
  backups.addSource(postgresSource(stack, 'orders-db'));
  backups.addSource(mariadbSource(stack, 'shop-db'));
  const template = Template.fromStack(stack);
  expect(bare(egressOf(template, 'DatabaseBackupsTaskSecurityGroup'))).toEqual([
    { IpProtocol: 'tcp', FromPort: 443, ToPort: 443, CidrIp: '0.0.0.0/0' },
    { IpProtocol: 'tcp', FromPort: 5432, ToPort: 5432, CidrIp: '10.20.0.0/16' },
    { IpProtocol: 'tcp', FromPort: 3306, ToPort: 3306, CidrIp: '10.20.0.0/16' },
  ]);
  template.resourceCountIs('AWS::EC2::VPCEndpoint', 0);
});

test('given a source without endpoint or peer, then its engine\'s default port is let out, and no ingress is added', () => {
  const { stack, backups } = backupsStack();
  backups.addSource({ name: 'plain-db', engine: SourceEngine.mariadb('11.4'), secret: postgresSource(stack).secret });
  const template = Template.fromStack(stack);
  expect(bare(egressOf(template, 'DatabaseBackupsTaskSecurityGroup'))).toContainEqual({ IpProtocol: 'tcp', FromPort: 3306, ToPort: 3306, CidrIp: '10.20.0.0/16' });
  template.resourceCountIs('AWS::EC2::SecurityGroupIngress', 0);
});

test('given an environment-agnostic stack with endpoints, then S3 is reached over HTTPS anywhere, and a warning says why', () => {
  const app = new App();
  const stack = new Stack(app, 'Agnostic');
  const store = new BackupStore(stack, 'Store');
  const keys = new BackupKeys(stack, 'Keys', { recipient: SAMPLE_RECIPIENT });
  const vpc = sampleVpc(stack, true);
  new DatabaseBackups(stack, 'DatabaseBackups', { store, keys, vpc, vpcEndpoints: true });
  const template = Template.fromStack(stack);
  expect(bare(egressOf(template, 'DatabaseBackupsTaskSecurityGroup'))).toEqual([
    { IpProtocol: 'tcp', FromPort: 443, ToPort: 443, DestinationSecurityGroupId: groupIdOf(template, 'EndpointSecurityGroup') },
    { IpProtocol: 'tcp', FromPort: 443, ToPort: 443, CidrIp: '0.0.0.0/0' },
  ]);
  Annotations.fromStack(stack).hasWarning('/Agnostic/DatabaseBackups', Match.stringLikeRegexp('S3\'s prefix list cannot be looked up.*\\[ack: @restorable/database-backups:https-anywhere\\]'));
});

test('given a VPC imported without its CIDR, then the database ports go to any address, and a warning says how to narrow them', () => {
  const app = new App();
  const stack = new Stack(app, 'NoCidr', { env: ENV });
  const store = new BackupStore(stack, 'Store');
  const keys = new BackupKeys(stack, 'Keys', { recipient: SAMPLE_RECIPIENT });
  const vpc = ec2.Vpc.fromVpcAttributes(stack, 'Vpc', {
    vpcId: 'vpc-0a1b2c3d4e5f60000', availabilityZones: ['eu-west-1a'], privateSubnetIds: ['subnet-0a1b2c3d4e5f60001'], privateSubnetRouteTableIds: ['rtb-0a1b2c3d4e5f60001'],
  });
  const backups = new DatabaseBackups(stack, 'DatabaseBackups', { store, keys, vpc });
  backups.addSource(postgresSource(stack, 'orders-db'));
  const template = Template.fromStack(stack);
  expect(bare(egressOf(template, 'DatabaseBackupsTaskSecurityGroup'))).toContainEqual({ IpProtocol: 'tcp', FromPort: 5432, ToPort: 5432, CidrIp: '0.0.0.0/0' });
  Annotations.fromStack(stack).hasWarning('/NoCidr/DatabaseBackups', Match.stringLikeRegexp('without its CIDR block.*give vpcCidrBlock'));
});

test('given allowEndpointsFrom, then the endpoints admit the peer\'s group and the group may go out to them and to S3, inline', () => {
  const { stack, backups } = stackWithPrefixList();
  const group = new ec2.SecurityGroup(stack, 'Other', { vpc: backups.cluster.vpc, allowAllOutbound: false });
  backups.allowEndpointsFrom(group, 'Other tasks');
  const template = Template.fromStack(stack);
  expect(bare(egressOf(template, 'Other'))).toEqual([
    { IpProtocol: 'tcp', FromPort: 443, ToPort: 443, DestinationSecurityGroupId: groupIdOf(template, 'EndpointSecurityGroup') },
    { IpProtocol: 'tcp', FromPort: 443, ToPort: 443, DestinationPrefixListId: S3_PREFIX_LIST },
  ]);
  template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', { FromPort: 443, Description: 'Other tasks', SourceSecurityGroupId: groupIdOf(template, 'Other') });
  template.resourceCountIs('AWS::EC2::SecurityGroupEgress', 0);
});
