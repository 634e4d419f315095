/**
 * VaultRunbook, in the vault's stack: the custom resource names the vault's facts alone (its bucket, region, account,
 * restore role and copy of the identity) and the primary's sources by name and engine, never a token of the primary's
 * stack; the writer, under the runbook-writer path, may write `{prefix}{source}/vault/RUNBOOK.md` in the vault alone, which
 * the vault's write-once policy lets that path write and its deny lets no replication write; cdk-nag clean.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { App, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import { AwsSolutionsChecks } from 'cdk-nag';
import { BackupKeys, BackupStore, DatabaseBackups, ReplicaStore } from '../../../lib';
import { VaultIdentity } from '../../../lib/keys/vault-identity';
import { VaultRunbook, VaultRunbookProps } from '../../../lib/runbook/vault-runbook';
import { ENV, mariadbSource, postgresSource, sampleVpc } from '../database-backups-fixture';
import { statementsAllowing } from '../store-fixtures';

const VAULT_ACCOUNT = '222222222222';
const VAULT_REGION = 'eu-central-1';

beforeAll(() => {
  if (!existsSync(join(__dirname, '../../../assets/lambda/runbook-writer/index.js'))) {
    throw new Error("the runbook-writer asset is missing: run 'npm run bundle' before these tests");
  }
});

function vaultApp(options: { nag?: boolean; runbook?: Partial<VaultRunbookProps> } = {}) {
  const app = new App();
  if (options.nag) Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  const vaultStack = new Stack(app, 'Vault', { env: { account: VAULT_ACCOUNT, region: VAULT_REGION } });
  const topic = new sns.Topic(vaultStack, 'VaultTopic', { masterKey: new kms.Key(vaultStack, 'VaultTopicKey', { enableKeyRotation: true }) });
  const vault = new ReplicaStore(vaultStack, 'Vault', { prefix: 'backups', primaryAccount: ENV.account, alarmTopic: topic });
  const primary = new Stack(app, 'Primary', { env: ENV });
  const store = new BackupStore(primary, 'Store', { prefix: 'backups', replica: vault });
  const keys = new BackupKeys(primary, 'Keys', { vaultAccount: VAULT_ACCOUNT });
  const backups = new DatabaseBackups(primary, 'DatabaseBackups', { store, keys, vpc: sampleVpc(primary) });
  backups.addSource(postgresSource(primary, 'orders-db'));
  const identity = new VaultIdentity(vaultStack, 'Identity', { keys, store: vault, alarmTopic: topic });
  const create = () => new VaultRunbook(vaultStack, 'VaultRunbook', { backups, store: vault, identity, ...options.runbook });
  return { app, vaultStack, primary, vault, store, backups, identity, create };
}

describe('in the vault\'s stack', () => {
  const fixture = vaultApp();
  fixture.create();
  // Added after the runbook: it must still get one.
  fixture.backups.addSource(mariadbSource(fixture.primary, 'shop-db'));
  const template = Template.fromStack(fixture.vaultStack);
  const [resource] = Object.values(template.findResources('Custom::RestorableRunbook'));

  test('the custom resource names the vault\'s bucket, region, account, restore role and identity, and every source by name and engine', () => {
    expect(resource.Properties).toEqual({
      ServiceToken: { 'Fn::GetAtt': [expect.stringMatching(/^VaultRunbookWriter/), 'Arn'] },
      ServiceTimeout: '600',
      Copy: 'vault',
      Bucket: { Ref: expect.stringMatching(/^VaultBucket/) },
      Region: VAULT_REGION,
      Prefix: 'backups/',
      VaultAccount: VAULT_ACCOUNT,
      VaultRestoreRoleArn: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:iam::${VAULT_ACCOUNT}:role/restorable/restore/restorable-restore-${VAULT_REGION}`]] },
      VaultIdentitySecretArn: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:secretsmanager:${VAULT_REGION}:${VAULT_ACCOUNT}:secret:${fixture.identity.secretName}`]] },
      Sources: JSON.stringify([{ name: 'orders-db', engine: 'postgres' }, { name: 'shop-db', engine: 'mysql' }]),
      Renderer: expect.stringMatching(/^[0-9a-f]{16}$/),
    });
  });

  test('nothing of the primary\'s stack is referred to: no import, no parameter, no name of its account, bucket or secret', () => {
    const text = JSON.stringify(template.toJSON());
    expect(text).not.toContain('Fn::ImportValue');
    expect(Object.keys(template.toJSON().Parameters ?? {}).filter((p) => !p.startsWith('BootstrapVersion'))).toEqual([]);
    expect(JSON.stringify(resource.Properties)).not.toContain(ENV.account);
    expect(JSON.stringify(resource.Properties)).not.toMatch(/StoreBucket|KeysIdentity|Primary/);
    // A cross-account reference would fail here.
    expect(() => fixture.app.synth()).not.toThrow();
  });

  test('the writer\'s role lives under the runbook-writer path, and may put and read {prefix}*/vault/RUNBOOK.md in the vault alone', () => {
    const roles = Object.entries(template.findResources('AWS::IAM::Role')).filter(([id]) => id.startsWith('VaultRunbookRole'));
    expect(roles.map(([, r]) => r.Properties.Path)).toEqual(['/restorable/runbook-writer/']);
    const writes = statementsAllowing(template, 's3:PutObject').filter((s) => JSON.stringify(s.Resource).includes('RUNBOOK.md'));
    expect(writes).toEqual([{
      Effect: 'Allow', Action: ['s3:PutObject', 's3:GetObject'],
      Resource: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [expect.stringMatching(/^VaultBucket/), 'Arn'] }, '/backups/*/vault/RUNBOOK.md']] },
    }]);
    const writer = Object.entries(template.findResources('AWS::IAM::Policy')).filter(([id]) => id.startsWith('VaultRunbookRole'))
      .flatMap(([, p]) => p.Properties.PolicyDocument.Statement as Array<Record<string, unknown>>);
    expect(writer.flatMap((s) => s.Action).filter((a) => !String(a).startsWith('logs:')).sort())
      .toEqual(['kms:GenerateDataKey', 's3:GetObject', 's3:PutObject']);
    expect(writer.find((s) => s.Action === 'kms:GenerateDataKey')).toMatchObject({
      Resource: { 'Fn::GetAtt': [expect.stringMatching(/^VaultKey/), 'Arn'] },
      Condition: { StringEquals: { 'kms:ViaService': `s3.${VAULT_REGION}.amazonaws.com` } },
    });
  });

  test('the vault\'s bucket policy lets the runbook-writer path write those keys, with If-Match or If-None-Match, and no replication', () => {
    const [policy] = Object.values(template.findResources('AWS::S3::BucketPolicy', {
      Properties: { Bucket: { Ref: Match.stringLikeRegexp('^VaultBucket') } },
    }));
    const statements = new Map((policy.Properties.PolicyDocument.Statement as Array<Record<string, unknown>>).map((s) => [s.Sid, JSON.stringify(s)]));
    // Each pattern ends as the writer's grant does, or covers it: IAM's * matches '/'.
    expect(statements.get('RunbooksByWriterOnly')).toContain('/backups/*/RUNBOOK.md');
    expect(statements.get('RunbooksByWriterOnly')).toContain(`:iam::${VAULT_ACCOUNT}:role/restorable/runbook-writer/*`);
    expect(statements.get('PointersNeedIfMatch')).toContain('/backups/*/RUNBOOK.md');
    expect(statements.get('NothingReplicatedUnderVault')).toContain('/backups/*/vault/*');
  });
});

test('cdk-nag AwsSolutions has no unacknowledged findings', () => {
  const { app, create } = vaultApp({ nag: true });
  create();
  expect(() => app.synth()).not.toThrow();
});

describe('synth errors, in words', () => {
  test('a same-account replica is refused: its runbooks are DisasterRecoveryRunbook\'s', () => {
    const app = new App();
    const replicaStack = new Stack(app, 'Replica', { env: { account: ENV.account, region: VAULT_REGION } });
    const replica = new ReplicaStore(replicaStack, 'Replica');
    const primary = new Stack(app, 'Primary', { env: ENV });
    const store = new BackupStore(primary, 'Store', { replica });
    const backups = new DatabaseBackups(primary, 'DatabaseBackups', { store, keys: new BackupKeys(primary, 'Keys', {
      replicaRegion: VAULT_REGION, replicaKeyAlias: replica.keyAliasName,
    }), vpc: sampleVpc(primary) });
    const identity = { secretPartialArn: `arn:aws:secretsmanager:${VAULT_REGION}:${ENV.account}:secret:x` };
    expect(() => new VaultRunbook(replicaStack, 'VaultRunbook', { backups, store: replica, identity }))
      .toThrow('Replica/VaultRunbook: store is a replica in the primary\'s own account, whose runbooks DisasterRecoveryRunbook writes');
  });

  test('a vault of another stack is refused: the vault\'s own account writes its runbook', () => {
    const { app, backups, vault, identity } = vaultApp();
    const other = new Stack(app, 'Other', { env: { account: VAULT_ACCOUNT, region: VAULT_REGION } });
    expect(() => new VaultRunbook(other, 'VaultRunbook', { backups, store: vault, identity }))
      .toThrow('Other/VaultRunbook: store must be in the stack of VaultRunbook');
  });

  test('an identity that is not the vault\'s is refused, naming it', () => {
    const primaryIdentity = { secretPartialArn: `arn:aws:secretsmanager:eu-west-1:${ENV.account}:secret:BackupKeysIdentity` };
    const { create } = vaultApp({ runbook: { identity: primaryIdentity } });
    expect(create).toThrow(`Vault/VaultRunbook: identity names the secret "${primaryIdentity.secretPartialArn}", not one of the vault ` +
      `(${VAULT_ACCOUNT}, ${VAULT_REGION}): give the VaultIdentity of the vault's stack`);
  });

  test('missing props are named', () => {
    const { vaultStack, vault } = vaultApp();
    expect(() => new VaultRunbook(vaultStack, 'VaultRunbook', { store: vault } as never))
      .toThrow('Vault/VaultRunbook: backups, store and identity are required');
  });
});
