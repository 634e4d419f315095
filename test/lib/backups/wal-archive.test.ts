/**
 * WAL archiving grants: a self-managed PostgreSQL source's host may push write-once WAL files under its source's wal/
 * prefix and nothing else (proven by policy simulation over the synthesized template, with the store's bucket and key
 * policies), a recovering server may fetch them, and RDS, Aurora and MariaDB sources are refused in words.
 */
import { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as rds from 'aws-cdk-lib/aws-rds';
import { DatabaseHosting } from '../../../lib';
import { walKey, latestKey } from '../../../lib/contract';
import { ApiCall, CfnTemplate, decide, describeVerdict, loadDeployment, principalOf } from '../../support/iam-simulation';
import { ENV, backupsStack, mariadbSource, postgresSource } from '../database-backups-fixture';

const SEGMENT = '000000010000000000000003';

function withHostRole() {
  const fixture = backupsStack();
  fixture.backups.addSource(postgresSource(fixture.stack, 'orders-db', { hosting: DatabaseHosting.SELF_MANAGED }));
  fixture.backups.addSource(postgresSource(fixture.stack, 'billing-db', { hosting: DatabaseHosting.SELF_MANAGED }));
  const host = new iam.Role(fixture.stack, 'DatabaseHostRole', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com') });
  const recovering = new iam.Role(fixture.stack, 'RecoveringHostRole', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com') });
  fixture.backups.grantWalPush(host, 'orders-db');
  fixture.backups.grantWalFetch(recovering, 'orders-db');
  return { ...fixture, host, recovering };
}

describe('grantWalPush and grantWalFetch, simulated', () => {
  const fixture = withHostRole();
  const template = Template.fromStack(fixture.stack).toJSON() as CfnTemplate;
  const deployment = loadDeployment([{ id: fixture.stack.node.path, stackName: fixture.stack.stackName, account: ENV.account, region: ENV.region, template }]);
  const logicalId = (construct: iam.Role) => fixture.stack.resolve((construct.node.defaultChild as iam.CfnRole).logicalId) as string;
  const host = principalOf(deployment.role(fixture.stack.node.path, logicalId(fixture.host)), 'database host');
  const recovering = principalOf(deployment.role(fixture.stack.node.path, logicalId(fixture.recovering)), 'recovering server');
  const storeId = fixture.stack.resolve((fixture.store.bucket.node.defaultChild as iam.CfnRole).logicalId) as string;
  const bucket = deployment.bucket(fixture.stack.node.path, storeId);
  const at = (key: string) => ({ bucket, key });
  const wal = at(walKey('backups', 'orders-db', SEGMENT));

  const cases: [string, typeof host, ApiCall, string][] = [
    ['the host archives a new WAL file (If-None-Match), tagged with the daily tier', host,
      { api: 'PutObject', target: wal, ifNoneMatch: true, tags: { 'backup-tier': 'daily' } }, '✅'],
    ['the host cannot archive one untagged, which no tier\'s lifecycle would expire', host, { api: 'PutObject', target: wal, ifNoneMatch: true }, '· no grant'],
    // Its s3:GetObject is for the HEAD that verifies an upload, which needs no key: it cannot read WAL back.
    ['the host cannot download a WAL file\'s bytes', host, { api: 'GetObject', target: wal }, '· no KMS grant'],
    ['the host cannot replace a stored WAL file', host, { api: 'PutObject', target: wal, tags: { 'backup-tier': 'daily' } }, '⛔ WriteOnce'],
    ['the host cannot delete one', host, { api: 'DeleteObject', target: wal, versionId: 'v1' }, '⛔ OnlyBreakGlassDestroys'],
    ['the host cannot write another source\'s WAL', host,
      { api: 'PutObject', target: at(walKey('backups', 'billing-db', SEGMENT)), ifNoneMatch: true, tags: { 'backup-tier': 'daily' } }, '· no grant'],
    ['the host cannot move its source\'s latest.json', host, { api: 'PutObject', target: at(latestKey('backups', 'orders-db')), ifNoneMatch: true }, '· no grant'],
    ['the recovering server fetches and decrypts a WAL file', recovering, { api: 'GetObject', target: wal }, '✅'],
    ['the recovering server lists the wal/ prefix, so a missing file is absent, not forbidden', recovering,
      { api: 'ListObjectsV2', bucket, prefix: 'backups/orders-db/wal/000000010000000000000004' }, '✅'],
    ['the recovering server cannot list the source\'s backups', recovering, { api: 'ListObjectsV2', bucket, prefix: 'backups/orders-db/' }, '· no grant'],
    ['the recovering server cannot archive', recovering, { api: 'PutObject', target: wal, ifNoneMatch: true }, '· no grant'],
  ];
  test.each(cases)('%s', async (_title, principal, call, verdict) => {
    expect(describeVerdict(await decide(principal, call))).toBe(verdict);
  });
});

describe('where WAL cannot be archived', () => {
  test('given a source on an RDS instance (its peer), then grantWalPush says to use RDS point-in-time recovery', () => {
    const { stack, backups } = backupsStack();
    const vpc = ec2.Vpc.fromVpcAttributes(stack, 'RdsVpc', { vpcId: 'vpc-1', availabilityZones: ['eu-west-1a'], privateSubnetIds: ['subnet-1'] });
    const instance = new rds.DatabaseInstance(stack, 'Orders', {
      engine: rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_16 }), vpc,
    });
    const source = backups.addSource(postgresSource(stack, 'orders-db', { peer: instance }));
    expect(source.hosting).toBe(DatabaseHosting.RDS);
    expect(() => backups.grantWalPush(new iam.Role(stack, 'Host', { assumedBy: new iam.AccountRootPrincipal() }), 'orders-db')).toThrow(
      /source 'orders-db' runs on Amazon RDS, which allows no archive_command or outside physical replication: use RDS's own point-in-time recovery/);
  });

  test.each([
    ['orders.c9akciq32xyz.eu-west-1.rds.amazonaws.com', DatabaseHosting.RDS],
    ['orders.cluster-c9akciq32xyz.eu-west-1.rds.amazonaws.com', DatabaseHosting.AURORA],
    ['orders.replica.example.internal', DatabaseHosting.SELF_MANAGED],
  ])('given an endpoint %s and no hosting, then the source is %s', (hostname, hosting) => {
    const { stack, backups } = backupsStack();
    expect(backups.addSource(postgresSource(stack, 'orders-db', { endpoint: { hostname, port: 5432 } })).hosting).toBe(hosting);
  });

  test('given a MariaDB source, then grantWalPush says WAL archiving is for PostgreSQL', () => {
    const { stack, backups } = backupsStack();
    backups.addSource(mariadbSource(stack));
    expect(() => backups.grantWalPush(new iam.Role(stack, 'Host', { assumedBy: new iam.AccountRootPrincipal() }), 'shop-db'))
      .toThrow(/source 'shop-db' is mariadb 10\.11: WAL archiving is for PostgreSQL sources/);
  });

  test('given an unknown source, then grantWalFetch names the known ones', () => {
    const { stack, backups } = backupsStack();
    backups.addSource(postgresSource(stack));
    expect(() => backups.grantWalFetch(new iam.Role(stack, 'Host', { assumedBy: new iam.AccountRootPrincipal() }), 'billing-db'))
      .toThrow(/no source 'billing-db': add it with addSource first \(known: orders-db\)/);
  });

  test('given a self-managed source declared as such despite an RDS-looking host name, then its host may push', () => {
    const { stack, backups } = backupsStack();
    backups.addSource(postgresSource(stack, 'orders-db', {
      endpoint: { hostname: 'orders.c9akciq32xyz.eu-west-1.rds.amazonaws.com', port: 5432 }, hosting: DatabaseHosting.SELF_MANAGED,
    }));
    expect(() => backups.grantWalPush(new iam.Role(Stack.of(backups), 'Host', { assumedBy: new iam.AccountRootPrincipal() }), 'orders-db')).not.toThrow();
  });
});
