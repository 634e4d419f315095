/**
 * DisasterRecoveryRunbook: the custom resource's properties (the names the runbook is rendered with), the
 * writer's least privilege on both buckets, and cdk-nag, for a store with a replica in another region and
 * for one without.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { App, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { BackupKeys, BackupStore, DatabaseBackups, DatabaseHosting, DisasterRecoveryRunbook, ReplicaStore } from '../../../lib';
import { ENV, SAMPLE_RECIPIENT, mariadbSource, postgresSource, sampleVpc } from '../database-backups-fixture';
import { statementsAllowing } from '../store-fixtures';

const REPLICA_REGION = 'eu-central-1';

beforeAll(() => {
  if (!existsSync(join(__dirname, '../../../assets/lambda/runbook-writer/index.js'))) {
    throw new Error("the runbook-writer asset is missing: run 'npm run bundle' before these tests");
  }
});

function app(options: { replica: boolean; nag?: boolean }) {
  const cdkApp = new App();
  if (options.nag) Validations.of(cdkApp).addPlugins(new AwsSolutionsChecks(cdkApp));
  const replicaStack = new Stack(cdkApp, 'Replica', { env: { account: ENV.account, region: REPLICA_REGION } });
  const replica = options.replica ? new ReplicaStore(replicaStack, 'ReplicaStore', { prefix: 'backups' }) : undefined;
  const stack = new Stack(cdkApp, 'Primary', { env: ENV });
  const store = new BackupStore(stack, 'Store', { prefix: 'backups', replica });
  const keys = options.replica
    ? new BackupKeys(stack, 'Keys', { replicaRegion: REPLICA_REGION, replicaKeyAlias: replica!.keyAliasName })
    : new BackupKeys(stack, 'Keys', { recipient: SAMPLE_RECIPIENT });
  const backups = new DatabaseBackups(stack, 'DatabaseBackups', { store, keys, vpc: sampleVpc(stack) });
  backups.addSource(postgresSource(stack, 'orders-db'));
  const runbook = new DisasterRecoveryRunbook(stack, 'Runbook', { backups, store, keys });
  // Added after the runbook: it must still get one.
  backups.addSource(mariadbSource(stack, 'shop-db'));
  return { app: cdkApp, stack, replicaStack, store, replica, keys, runbook };
}

describe('with a replica in another region', () => {
  const { stack, replicaStack } = app({ replica: true });
  const template = Template.fromStack(stack);
  const replicaBucketName = Template.fromStack(replicaStack).findResources('AWS::S3::Bucket', { Properties: { ObjectLockEnabled: true } });

  test('the custom resource carries every source (also those added later), both buckets and regions, and the identity secret', () => {
    template.hasResourceProperties('Custom::RestorableRunbook', {
      Bucket: { Ref: Match.stringLikeRegexp('^StoreBucket') },
      Region: 'eu-west-1',
      Prefix: 'backups/',
      ReplicaBucket: Match.stringLikeRegexp('^replica'),
      ReplicaRegion: REPLICA_REGION,
      IdentitySecretArn: { Ref: Match.stringLikeRegexp('^KeysIdentity') },
      Sources: JSON.stringify([{ name: 'orders-db', engine: 'postgres' }, { name: 'shop-db', engine: 'mysql' }]),
      Renderer: Match.stringLikeRegexp('^[0-9a-f]{16}$'),
    });
    expect(Object.keys(replicaBucketName).length).toBeGreaterThan(0);
  });

  test('the writer is a prebundled Node.js 22 function', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs22.x', Handler: 'index.handler', Description: Match.stringLikeRegexp('disaster-recovery runbooks'),
    });
  });

  test('the writer may put and read RUNBOOK.md objects only, in each bucket, with each key through S3 in its own region', () => {
    const puts = statementsAllowing(template, 's3:PutObject').filter((s) => JSON.stringify(s.Resource).includes('RUNBOOK.md'));
    expect(puts).toHaveLength(2);
    for (const statement of puts) {
      expect(statement.Action).toEqual(['s3:PutObject', 's3:GetObject']);
      expect(JSON.stringify(statement.Resource)).toMatch(/\/backups\/\*\/RUNBOOK\.md"/);
    }
    const writerStatements = Object.entries(template.findResources('AWS::IAM::Policy'))
      .filter(([id]) => id.startsWith('RunbookRole'))
      .flatMap(([, policy]) => policy.Properties.PolicyDocument.Statement as Array<Record<string, unknown>>);
    const keys = writerStatements.filter((s) => s.Action === 'kms:GenerateDataKey');
    expect(keys.map((s) => (s.Condition as Record<string, Record<string, string>>).StringEquals['kms:ViaService']).sort())
      .toEqual(['s3.eu-central-1.amazonaws.com', 's3.eu-west-1.amazonaws.com']);
    expect(JSON.stringify(keys)).toContain('kms:ResourceAliases');
    expect(writerStatements.flatMap((s) => s.Action).filter((a) => !String(a).startsWith('logs:')).sort())
      .toEqual(['kms:GenerateDataKey', 'kms:GenerateDataKey', 's3:GetObject', 's3:GetObject', 's3:PutObject', 's3:PutObject']);
  });

  test('the writer\'s role lives under the runbook-writer path, the one the bucket policy lets write RUNBOOK.md', () => {
    const roles = Object.entries(template.findResources('AWS::IAM::Role')).filter(([id]) => id.startsWith('RunbookRole'));
    expect(roles).toHaveLength(1);
    expect(roles[0][1].Properties.Path).toBe('/restorable/runbook-writer/');
  });
});

test('without a replica: no replica properties, and the writer writes the primary bucket only', () => {
  const { stack } = app({ replica: false });
  const template = Template.fromStack(stack);
  const [resource] = Object.values(template.findResources('Custom::RestorableRunbook'));
  expect(Object.keys(resource.Properties).sort()).toEqual(['Bucket', 'Prefix', 'Region', 'Renderer', 'ServiceTimeout', 'ServiceToken', 'Sources']);
  expect(statementsAllowing(template, 's3:PutObject').filter((s) => JSON.stringify(s.Resource).includes('RUNBOOK.md'))).toHaveLength(1);
});

test.each([
  ['with a replica', true],
  ['without a replica', false],
])('cdk-nag AwsSolutions has no unacknowledged findings: %s', (_name, replica) => {
  expect(() => app({ replica, nag: true }).app.synth()).not.toThrow();
});

test('a source whose WAL is archived or whose binlogs are streamed is marked for its point-in-time recovery section; the others are not', () => {
  const stack = new Stack(new App(), 'Primary', { env: ENV });
  const store = new BackupStore(stack, 'Store', { prefix: 'backups' });
  const keys = new BackupKeys(stack, 'Keys', { recipient: SAMPLE_RECIPIENT });
  const backups = new DatabaseBackups(stack, 'DatabaseBackups', { store, keys, vpc: sampleVpc(stack) });
  backups.addSource(postgresSource(stack, 'ledger-db', { hosting: DatabaseHosting.SELF_MANAGED, walArchiving: {} }));
  backups.addSource(postgresSource(stack, 'orders-db'));
  backups.addSource(mariadbSource(stack, 'shop-db', { hosting: DatabaseHosting.SELF_MANAGED, binlogStreaming: {} }));
  new DisasterRecoveryRunbook(stack, 'Runbook', { backups, store, keys });
  Template.fromStack(stack).hasResourceProperties('Custom::RestorableRunbook', {
    Sources: JSON.stringify([{ name: 'ledger-db', engine: 'postgres', walArchived: true }, { name: 'orders-db', engine: 'postgres' },
      { name: 'shop-db', engine: 'mysql', binlogStreamed: true }]),
  });
});

test('a missing store or backups is a clear error', () => {
  const stack = new Stack(new App(), 'S', { env: ENV });
  const store = new BackupStore(stack, 'Store');
  expect(() => new DisasterRecoveryRunbook(stack, 'Runbook', { store } as never))
    .toThrow('S/Runbook: backups and store are required');
});

describe('with a vault in another account', () => {
  const VAULT_ACCOUNT = '222222222222';
  const IDENTITY = { secretPartialArn: `arn:aws:secretsmanager:${REPLICA_REGION}:${VAULT_ACCOUNT}:secret:VaultIdentity-identity` };

  function vaultApp(options: { vault?: boolean; nag?: boolean } = {}) {
    const cdkApp = new App();
    if (options.nag) Validations.of(cdkApp).addPlugins(new AwsSolutionsChecks(cdkApp));
    const vaultStack = new Stack(cdkApp, 'Vault', { env: { account: VAULT_ACCOUNT, region: REPLICA_REGION } });
    const replica = new ReplicaStore(vaultStack, 'Vault', { prefix: 'backups', primaryAccount: ENV.account });
    const stack = new Stack(cdkApp, 'Primary', { env: ENV });
    const store = new BackupStore(stack, 'Store', { prefix: 'backups', replica });
    const keys = new BackupKeys(stack, 'Keys', { replicaRegion: REPLICA_REGION, replicaKeyAlias: 'alias/dr-secrets' });
    const backups = new DatabaseBackups(stack, 'DatabaseBackups', { store, keys, vpc: sampleVpc(stack) });
    backups.addSource(postgresSource(stack, 'orders-db'));
    const create = () => new DisasterRecoveryRunbook(stack, 'Runbook', { backups, store, keys, ...(options.vault === false ? {} : { vault: { identity: IDENTITY } }) });
    return { app: cdkApp, stack, replica, store, backups, keys, create };
  }

  test('the custom resource names the vault\'s account, restore role and identity, known at synth, and the writer writes the primary alone', () => {
    const { stack, create } = vaultApp();
    create();
    const template = Template.fromStack(stack);
    template.hasResourceProperties('Custom::RestorableRunbook', {
      ReplicaBucket: Match.stringLikeRegexp('^vault'),
      ReplicaRegion: REPLICA_REGION,
      VaultAccount: VAULT_ACCOUNT,
      VaultRestoreRoleArn: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:iam::${VAULT_ACCOUNT}:role/restorable/restore/restorable-restore-${REPLICA_REGION}`]] },
      VaultIdentitySecretArn: IDENTITY.secretPartialArn,
    });
    const writes = statementsAllowing(template, 's3:PutObject').filter((s) => JSON.stringify(s.Resource).includes('RUNBOOK.md'));
    expect(writes).toHaveLength(1);
    expect(JSON.stringify(writes)).toContain('StoreBucket');
    const writer = Object.entries(template.findResources('AWS::IAM::Policy')).filter(([id]) => id.startsWith('RunbookRole'));
    expect(JSON.stringify(writer)).not.toContain(VAULT_ACCOUNT);
  });

  test('cdk-nag AwsSolutions has no unacknowledged findings', () => {
    const { app: cdkApp, create } = vaultApp({ nag: true });
    create();
    expect(() => cdkApp.synth()).not.toThrow();
  });

  test('without vault, synth says what the DR path needs', () => {
    const { create } = vaultApp({ vault: false });
    expect(create).toThrow(`Primary/Runbook: vault is required: the store's replica is a vault in account ${VAULT_ACCOUNT}, and the runbook's DR path must ` +
      'name the vault\'s copy of the identity and the role to assume there: pass vault: { identity } (the VaultIdentity of the vault\'s stack)');
  });

  test('vault with a replica in the same account is refused', () => {
    const { stack, replica } = app({ replica: true });
    expect(replica!.isVault).toBe(false);
    const backups = stack.node.findChild('DatabaseBackups') as DatabaseBackups;
    const store = stack.node.findChild('Store') as BackupStore;
    expect(() => new DisasterRecoveryRunbook(stack, 'Runbook2', { backups, store, vault: { identity: IDENTITY } }))
      .toThrow('Primary/Runbook2: vault is given, but the store\'s replica is not a vault in another account (ReplicaStore primaryAccount): remove vault');
  });
});
