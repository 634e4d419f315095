/**
 * What a binlog streamer's role may do, by policy simulation over the synthesized template with the store's bucket
 * and key policies: add objects under its own source's binlog/ prefix (stream.json, closed files, partials, indexes),
 * tagged with the daily tier and nothing else, write-once; never read an object's bytes, list, delete, hold, or touch
 * the source's dumps, its WAL, its reports or another source. The source's dump role may not write binlog/. With
 * legalHold granted, holds go on closed files only. And cdk-nag passes.
 */
import { Duration } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { DatabaseHosting } from '../../../lib';
import {
  DumpFormat, backupKey, binlogIndexKey, binlogObjectKey, binlogPartialName, binlogStreamKey, latestKey, restoreTestLatestKey, walKey,
} from '../../../lib/contract';
import { ROLE_PATHS } from '../../../lib/shared/trust-boundaries';
import { ApiCall, CfnTemplate, KeyModel, SecretModel, decide, describeVerdict, loadDeployment, principalOf } from '../../support/iam-simulation';
import { ENV, backupsStack, mariadbSource, postgresSource, expectSpoolMountOnlyThrough } from '../database-backups-fixture';

const DAILY = { 'backup-tier': 'daily' };
const STREAM = '2026-12-02_15-40-00Z';

describe('a binlog streamer\'s role, simulated', () => {
  const fixture = backupsStack();
  const { stack, backups, store } = fixture;
  // The replication secret is the database's, imported with its customer-managed key (whose policy is KMS's default:
  // the account's IAM policies decide), so that the role is granted kms:Decrypt through Secrets Manager.
  const keyArn = `arn:aws:kms:${ENV.region}:${ENV.account}:key/5f0c2a6e-3b1d-4c8e-9a7f-2d6b1e0c4a93`;
  const replicationSecret = secretsmanager.Secret.fromSecretAttributes(stack, 'ShopReplication', {
    secretCompleteArn: `arn:aws:secretsmanager:${ENV.region}:${ENV.account}:secret:shop-db/replication-AbCdEf`,
    encryptionKey: kms.Key.fromKeyArn(stack, 'ShopReplicationKey', keyArn),
  });
  const shop = backups.addSource(mariadbSource(stack, 'shop-db', { binlogStreaming: { replicationSecret } }));
  const cart = backups.addSource(mariadbSource(stack, 'cart-db', { binlogStreaming: {} }));
  backups.addSource(postgresSource(stack, 'orders-db', { hosting: DatabaseHosting.SELF_MANAGED, walArchiving: {} }));
  // A role of the user's own granted holds explicitly, as one would with a release of their own.
  const holdingRole = new iam.Role(stack, 'HoldingStreamer', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'), path: ROLE_PATHS.dump });
  store.grantBinlogPush(holdingRole, 'shop-db', { legalHold: true });

  const template = Template.fromStack(stack).toJSON() as CfnTemplate;
  const deployment = loadDeployment([{ id: stack.node.path, stackName: stack.stackName, account: ENV.account, region: ENV.region, template }]);
  const logicalId = (construct: iam.IRole) => stack.resolve((construct.node.defaultChild as iam.CfnRole).logicalId) as string;
  const role = (construct: iam.IRole, label: string) => principalOf(deployment.role(stack.node.path, logicalId(construct)), label);
  const streamer = role(shop.binlogStreamer!.taskRole, 'shop streamer');
  const otherStreamer = role(cart.binlogStreamer!.taskRole, 'cart streamer');
  const dumpTask = role(shop.taskRole, 'shop task');
  const holding = role(holdingRole, 'holding streamer');
  const bucket = deployment.bucket(stack.node.path, stack.resolve((store.bucket.node.defaultChild as iam.CfnRole).logicalId) as string);
  const key: KeyModel = {
    stack: 'Database', logicalId: 'ReplicationKey', arn: keyArn, region: ENV.region, account: ENV.account, aliases: [],
    policy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${ENV.account}:root` }, Action: 'kms:*', Resource: '*' }] },
  };
  const secret: SecretModel = { stack: 'Database', logicalId: 'ShopReplication', arn: replicationSecret.secretArn, region: ENV.region, account: ENV.account, key };
  const at = (key: string, existingTags?: Record<string, string>) => ({ bucket, key, existingTags });
  const closedKey = binlogObjectKey('backups', 'shop-db', STREAM, 'mysql-bin.000007');
  const closed = at(closedKey);
  const partial = at(binlogObjectKey('backups', 'shop-db', STREAM, binlogPartialName('mysql-bin.000008', 0x1f40)));
  const index = at(binlogIndexKey(closedKey));
  const stream = at(binlogStreamKey('backups', 'shop-db', STREAM));
  const dump = at(backupKey('backups', 'shop-db', new Date('2026-12-02T00:00:00Z'), DumpFormat.SQL));
  const put = (target: ReturnType<typeof at>, tags: Record<string, string> = DAILY): ApiCall => ({ api: 'PutObject', target, ifNoneMatch: true, tags });

  const cases: [string, typeof streamer, ApiCall, string][] = [
    ['the streamer stores a closed binlog file, tagged daily, with If-None-Match', streamer, put(closed), '✅'],
    ['the streamer stores a partial the same way', streamer, put(partial), '✅'],
    ['the streamer stores a file\'s index the same way', streamer, put(index), '✅'],
    ['the streamer stores a new stream\'s stream.json the same way', streamer, put(stream), '✅'],
    ['the streamer cannot store a binlog without the tier tag', streamer, { api: 'PutObject', target: closed, ifNoneMatch: true }, '· no grant'],
    ['the streamer cannot tag a binlog with a longer-lived tier', streamer, put(closed, { 'backup-tier': 'monthly' }), '· no grant'],
    ['the streamer cannot add a tag beside the tier', streamer, put(closed, { ...DAILY, keep: 'forever' }), '· no grant'],
    ['the streamer cannot replace a stored binlog file', streamer, { api: 'PutObject', target: closed, tags: DAILY }, '⛔ WriteOnce'],
    ['the streamer cannot rewrite a stream.json', streamer, { api: 'PutObject', target: stream, tags: DAILY }, '⛔ WriteOnce'],
    ['the streamer cannot retag a stored binlog file', streamer, { api: 'PutObjectTagging', target: at(closedKey, DAILY), tags: DAILY }, '⛔ DenyRetaggingBackups'],
    ['the streamer places no legal hold, which nothing would release', streamer, { api: 'PutObjectLegalHold', target: closed, status: 'ON' }, '· no grant'],
    ['the streamer cannot release one', streamer, { api: 'PutObjectLegalHold', target: closed, status: 'OFF' }, '⛔ OnlyHoldKeeperReleases'],
    ['the streamer cannot read a binlog\'s bytes (its HEAD needs no key)', streamer, { api: 'GetObject', target: closed }, '· no KMS grant'],
    ['the streamer cannot read an index', streamer, { api: 'GetObject', target: index }, '· no KMS grant'],
    ['the streamer cannot list the binlogs', streamer, { api: 'ListObjectsV2', bucket, prefix: 'backups/shop-db/binlog/' }, '· no grant'],
    ['the streamer cannot delete a binlog', streamer, { api: 'DeleteObject', target: closed, versionId: 'v1' }, '⛔ OnlyBreakGlassDestroys'],
    ['the streamer cannot write a dump', streamer, put(dump), '· no grant'],
    ['the streamer cannot move the dumps\' latest.json', streamer, { api: 'PutObject', target: at(latestKey('backups', 'shop-db')), ifNoneMatch: true }, '· no grant'],
    ['the streamer cannot write a restore-test report', streamer,
      { api: 'PutObject', target: at(restoreTestLatestKey('backups', 'shop-db')), ifNoneMatch: true }, '⛔ ReportsByRestoreTestsOnly'],
    ['the streamer cannot write under its source\'s wal/', streamer, put(at(walKey('backups', 'shop-db', '000000010000000000000003'))), '· no grant'],
    ['the streamer cannot write another source\'s binlogs', streamer,
      put(at(binlogObjectKey('backups', 'cart-db', STREAM, 'mysql-bin.000007'))), '· no grant'],
    ['the streamer cannot write another source\'s WAL', streamer, put(at(walKey('backups', 'orders-db', '000000010000000000000003'))), '· no grant'],
    ['the streamer reads its replication secret', streamer, { api: 'GetSecretValue', secret }, '✅'],
    ['another source\'s streamer cannot read it', otherStreamer, { api: 'GetSecretValue', secret }, '· no Secrets Manager grant'],
    ['the source\'s dump task cannot read it either', dumpTask, { api: 'GetSecretValue', secret }, '· no Secrets Manager grant'],
    ['the source\'s dump task stores a dump', dumpTask, put(dump), '✅'],
    ['the source\'s dump task cannot write a binlog, which would stall the streamer\'s own write of that name', dumpTask, put(closed), '⛔ own policy'],
    ['the source\'s dump task cannot write a stream.json', dumpTask, put(stream), '⛔ own policy'],
    ['with legalHold, a closed file is held', holding, { api: 'PutObjectLegalHold', target: closed, status: 'ON' }, '✅'],
    ['with legalHold, never a partial', holding, { api: 'PutObjectLegalHold', target: partial, status: 'ON' }, '⛔ own policy'],
    ['with legalHold, never an index', holding, { api: 'PutObjectLegalHold', target: index, status: 'ON' }, '⛔ own policy'],
    ['with legalHold, never a stream.json', holding, { api: 'PutObjectLegalHold', target: stream, status: 'ON' }, '⛔ own policy'],
    ['with legalHold, still no release', holding, { api: 'PutObjectLegalHold', target: closed, status: 'OFF' }, '⛔ OnlyHoldKeeperReleases'],
  ];
  test.each(cases)('%s', async (_title, principal, call, verdict) => {
    expect(describeVerdict(await decide(principal, call))).toBe(verdict);
  });

  test('the streamer mounts the spool only through its own access point', () => {
    expectSpoolMountOnlyThrough(stack,
      'Restorable binlog streamer of source shop-db: adds binlogs under its binlog/ prefix, reads its replication secret', /shopdbBinlogStreamerSpoolAccessPoint/);
  });
});

test('cdk-nag: given streamed MariaDB sources beside a WAL-receiving one, with endpoints and an alarm topic, then synth has no unacknowledged finding', () => {
  const { app, stack, backups } = backupsStack({ nag: true, isolated: true, alarmTopic: true, generatedKeys: true });
  backups.addSource(mariadbSource(stack, 'shop-db', { binlogStreaming: {} }));
  backups.addSource(mariadbSource(stack, 'cart-db', { binlogStreaming: { partialUploadInterval: Duration.seconds(1) } }));
  backups.addSource(postgresSource(stack, 'orders-db', { hosting: DatabaseHosting.SELF_MANAGED, walArchiving: {} }));
  expect(() => app.synth()).not.toThrow();
});
