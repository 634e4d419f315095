/**
 * What a WAL receiver's role may do, by policy simulation over the synthesized template with the store's bucket and
 * key policies: add WAL under its own source's wal/ prefix, tagged with the daily tier and nothing else, write-once,
 * and place (never release) legal holds; never read a file's bytes, delete, list, or touch the source's dumps, its base
 * backups or another source. The source's own task role runs the base backups under base/ and may hold them, never
 * release; only the hold keeper releases holds under wal/ and base/. And cdk-nag passes.
 */
import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { DatabaseHosting } from '../../../lib';
import { baseBackupKey, baseLatestKey, latestKey, walKey } from '../../../lib/contract';
import { receivedPartialName } from '../../../lib/contract/wal';
import { WalArchiveMode } from '../../../lib/backups/wal-archive';
import { ApiCall, CfnTemplate, KeyModel, SecretModel, decide, describeVerdict, loadDeployment, principalOf } from '../../support/iam-simulation';
import { ENV, backupsStack, postgresSource, expectSpoolMountOnlyThrough } from '../database-backups-fixture';

const SEGMENT = '000000010000000000000003';

const DAILY = { 'backup-tier': 'daily' };

describe('a WAL receiver\'s role and the base backups, simulated', () => {
  const fixture = backupsStack();
  const { stack, backups } = fixture;
  // The replication secret is the database's, imported with its customer-managed key (whose policy is KMS's default:
  // the account's IAM policies decide), so that the role is granted kms:Decrypt through Secrets Manager.
  const keyArn = `arn:aws:kms:${ENV.region}:${ENV.account}:key/5f0c2a6e-3b1d-4c8e-9a7f-2d6b1e0c4a93`;
  const replicationSecret = secretsmanager.Secret.fromSecretAttributes(stack, 'OrdersReplication', {
    secretCompleteArn: `arn:aws:secretsmanager:${ENV.region}:${ENV.account}:secret:orders-db/replication-AbCdEf`,
    encryptionKey: kms.Key.fromKeyArn(stack, 'OrdersReplicationKey', keyArn),
  });
  const orders = backups.addSource(postgresSource(stack, 'orders-db', { hosting: DatabaseHosting.SELF_MANAGED, walArchiving: { replicationSecret } }));
  const billing = backups.addSource(postgresSource(stack, 'billing-db', { hosting: DatabaseHosting.SELF_MANAGED, walArchiving: {} }));
  const template = Template.fromStack(stack).toJSON() as CfnTemplate;
  const deployment = loadDeployment([{ id: stack.node.path, stackName: stack.stackName, account: ENV.account, region: ENV.region, template }]);
  const logicalId = (construct: iam.IRole) => stack.resolve((construct.node.defaultChild as iam.CfnRole).logicalId) as string;
  const role = (construct: iam.IRole, label: string) => principalOf(deployment.role(stack.node.path, logicalId(construct)), label);
  const receiver = role(orders.walReceiver!.taskRole, 'orders receiver');
  const otherReceiver = role(billing.walReceiver!.taskRole, 'billing receiver');
  const dumpTask = role(orders.taskRole, 'orders task');
  const holdKeeper = role(backups.holdKeeper!.role, 'hold keeper');
  const bucket = deployment.bucket(stack.node.path, stack.resolve((fixture.store.bucket.node.defaultChild as iam.CfnRole).logicalId) as string);
  const key: KeyModel = {
    stack: 'Database', logicalId: 'ReplicationKey', arn: keyArn, region: ENV.region, account: ENV.account, aliases: [],
    policy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${ENV.account}:root` }, Action: 'kms:*', Resource: '*' }] },
  };
  const secret: SecretModel = { stack: 'Database', logicalId: 'OrdersReplication', arn: replicationSecret.secretArn, region: ENV.region, account: ENV.account, key };
  const at = (key: string, existingTags?: Record<string, string>) => ({ bucket, key, existingTags });
  const wal = at(walKey('backups', 'orders-db', SEGMENT));
  const partial = at(walKey('backups', 'orders-db', receivedPartialName('000000010000000000000004', 0x2000)));
  const base = at(baseBackupKey('backups', 'orders-db', new Date('2026-06-01T02:00:00Z')));

  const cases: [string, typeof receiver, ApiCall, string][] = [
    ['the receiver stores a new segment, tagged daily, with If-None-Match', receiver, { api: 'PutObject', target: wal, ifNoneMatch: true, tags: DAILY }, '✅'],
    ['the receiver stores a received partial the same way', receiver, { api: 'PutObject', target: partial, ifNoneMatch: true, tags: DAILY }, '✅'],
    ['the receiver cannot store WAL without the tier tag', receiver, { api: 'PutObject', target: wal, ifNoneMatch: true }, '· no grant'],
    ['the receiver cannot tag WAL with a longer-lived tier', receiver,
      { api: 'PutObject', target: wal, ifNoneMatch: true, tags: { 'backup-tier': 'monthly' } }, '· no grant'],
    ['the receiver cannot add a tag beside the tier', receiver,
      { api: 'PutObject', target: wal, ifNoneMatch: true, tags: { ...DAILY, keep: 'forever' } }, '· no grant'],
    ['the receiver cannot replace a stored WAL file', receiver, { api: 'PutObject', target: wal, tags: DAILY }, '⛔ WriteOnce'],
    ['the receiver cannot retag a stored WAL file', receiver,
      { api: 'PutObjectTagging', target: at(wal.key, DAILY), tags: DAILY }, '⛔ DenyRetaggingBackups'],
    ['the receiver places a legal hold on its WAL', receiver, { api: 'PutObjectLegalHold', target: wal, status: 'ON' }, '✅'],
    ['the receiver cannot hold a received partial, which nothing would release', receiver,
      { api: 'PutObjectLegalHold', target: partial, status: 'ON' }, '⛔ own policy'],
    ['the receiver cannot release one', receiver, { api: 'PutObjectLegalHold', target: wal, status: 'OFF' }, '⛔ OnlyHoldKeeperReleases'],
    ['the receiver cannot read a WAL file\'s bytes (its HEAD needs no key)', receiver, { api: 'GetObject', target: wal }, '· no KMS grant'],
    ['the receiver cannot list the archive', receiver, { api: 'ListObjectsV2', bucket, prefix: 'backups/orders-db/wal/' }, '· no grant'],
    ['the receiver cannot delete WAL', receiver, { api: 'DeleteObject', target: wal, versionId: 'v1' }, '⛔ OnlyBreakGlassDestroys'],
    ['the receiver cannot write a base backup', receiver, { api: 'PutObject', target: base, ifNoneMatch: true, tags: DAILY }, '· no grant'],
    ['the receiver cannot move the dumps\' latest.json', receiver,
      { api: 'PutObject', target: at(latestKey('backups', 'orders-db')), ifNoneMatch: true }, '· no grant'],
    ['the receiver cannot write another source\'s WAL', receiver,
      { api: 'PutObject', target: at(walKey('backups', 'billing-db', SEGMENT)), ifNoneMatch: true, tags: DAILY }, '· no grant'],
    ['the receiver reads its replication secret', receiver, { api: 'GetSecretValue', secret }, '✅'],
    ['another source\'s receiver cannot read it', otherReceiver, { api: 'GetSecretValue', secret }, '· no Secrets Manager grant'],
    ['the source\'s task stores a base backup, tagged, with If-None-Match', dumpTask,
      { api: 'PutObject', target: base, ifNoneMatch: true, tags: DAILY }, '✅'],
    ['the source\'s task moves base/latest.json by its ETag', dumpTask,
      { api: 'PutObject', target: at(baseLatestKey('backups', 'orders-db')), ifMatch: '"0f343b0931126a20f133d67c2b018a3b"' }, '✅'],
    ['the source\'s task cannot tag base/latest.json', dumpTask,
      { api: 'PutObject', target: at(baseLatestKey('backups', 'orders-db')), ifNoneMatch: true, tags: DAILY }, '⛔ NoTaggingPointers'],
    ['the source\'s task cannot write WAL, which would stall the archiver\'s own write of that name', dumpTask,
      { api: 'PutObject', target: wal, ifNoneMatch: true, tags: DAILY }, '⛔ own policy'],
    ['the source\'s task reads the replication secret its base backups connect with', dumpTask, { api: 'GetSecretValue', secret }, '✅'],
    ['the source\'s task places a legal hold on its base backup', dumpTask, { api: 'PutObjectLegalHold', target: base, status: 'ON' }, '✅'],
    ['the source\'s task cannot release one', dumpTask, { api: 'PutObjectLegalHold', target: base, status: 'OFF' }, '⛔ OnlyHoldKeeperReleases'],
    ['the source\'s task cannot release a WAL file\'s', dumpTask, { api: 'PutObjectLegalHold', target: wal, status: 'OFF' }, '⛔ own policy + OnlyHoldKeeperReleases'],
    ['the hold keeper lists the WAL archive', holdKeeper, { api: 'ListObjectsV2', bucket, prefix: 'backups/orders-db/wal/' }, '✅'],
    ['the hold keeper lists the base backups', holdKeeper, { api: 'ListObjectsV2', bucket, prefix: 'backups/orders-db/base/' }, '✅'],
    ['the hold keeper releases a WAL file\'s hold', holdKeeper, { api: 'PutObjectLegalHold', target: wal, status: 'OFF' }, '✅'],
    ['the hold keeper releases a base backup\'s hold', holdKeeper, { api: 'PutObjectLegalHold', target: base, status: 'OFF' }, '✅'],
    ['the hold keeper reads a base backup manifest', holdKeeper, { api: 'GetObject', target: at(`${base.key}.manifest.json`) }, '✅'],
    ['the hold keeper cannot delete WAL', holdKeeper, { api: 'DeleteObject', target: wal, versionId: 'v1' }, '⛔ OnlyBreakGlassDestroys'],
  ];
  test.each(cases)('%s', async (_title, principal, call, verdict) => {
    expect(describeVerdict(await decide(principal, call))).toBe(verdict);
  });

  test('the receiver mounts the spool only through its own access point', () => {
    expectSpoolMountOnlyThrough(stack,
      'Restorable WAL receiver of source orders-db: adds WAL under its wal/ prefix, reads its replication secret', /ordersdbWalReceiverSpoolAccessPoint/);
  });
});

test('cdk-nag: given receiving and pushing sources with endpoints and an alarm topic, then synth has no unacknowledged finding', () => {
  const { app, stack, backups } = backupsStack({ nag: true, isolated: true, alarmTopic: true, generatedKeys: true });
  backups.addSource(postgresSource(stack, 'orders-db', { hosting: DatabaseHosting.SELF_MANAGED, walArchiving: {} }));
  backups.addSource(postgresSource(stack, 'billing-db', { hosting: DatabaseHosting.SELF_MANAGED, walArchiving: { mode: WalArchiveMode.PUSH } }));
  expect(() => app.synth()).not.toThrow();
});
