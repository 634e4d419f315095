/**
 * VaultRestoreTesting's template, in the vault's stack: the roles per source read that source's prefix of the vault
 * alone and the vault's identity; the tests run monthly in a cluster of the vault's own; the alarms go to the vault
 * monitoring's topic; the people's restore role is named at synth, assumed in the vault's account with MFA; no
 * policy of either stack lets the primary's account read the vault; cdk-nag clean.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App, Duration, NestedStack, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import { AwsSolutionsChecks } from 'cdk-nag';
import { Construct } from 'constructs';
import { VaultIdentity } from '../../../lib/keys/vault-identity';
import { BackupKeys, BackupMonitoring, BackupStore, DatabaseBackups, ReplicaStore, RestoreTesting } from '../../../lib';
import { OrchestratorConfig } from '../../../lib/restore-testing/orchestrator-config';
import { VaultRestoreTesting, VaultRestoreTestingProps } from '../../../lib/restore-testing/vault-restore-testing';
import { ENV, mariadbSource, postgresSource, sampleVpc } from '../database-backups-fixture';

const PRIMARY_ACCOUNT = ENV.account;
const VAULT_ACCOUNT = '222222222222';
const VAULT_REGION = 'eu-central-1';

interface Options {
  readonly nag?: boolean;
  readonly testing?: Partial<VaultRestoreTestingProps>;
}

function vaultFixture(options: Options = {}) {
  const app = new App();
  if (options.nag) Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  const vaultStack = new Stack(app, 'Vault', { env: { account: VAULT_ACCOUNT, region: VAULT_REGION } });
  const vaultTopic = new sns.Topic(vaultStack, 'VaultTopic', { masterKey: new kms.Key(vaultStack, 'VaultTopicKey', { enableKeyRotation: true }) });
  const vault = new ReplicaStore(vaultStack, 'Vault', { prefix: 'backups', primaryAccount: PRIMARY_ACCOUNT, alarmTopic: vaultTopic });
  const primary = new Stack(app, 'Primary', { env: ENV });
  const store = new BackupStore(primary, 'Store', { prefix: 'backups', replica: vault });
  const keys = new BackupKeys(primary, 'Keys', { vaultAccount: VAULT_ACCOUNT });
  const monitoring = new BackupMonitoring(primary, 'Monitoring', { store });
  const backups = new DatabaseBackups(primary, 'DatabaseBackups', { store, keys, monitoring, vpc: sampleVpc(primary) });
  backups.addSource(postgresSource(primary, 'orders-db'));
  backups.addSource(mariadbSource(primary, 'shop-db'));
  const identity = new VaultIdentity(vaultStack, 'Identity', { keys, store: vault, alarmTopic: vaultTopic });
  const vaultMonitoring = new BackupMonitoring(vaultStack, 'VaultMonitoring', { store: vault, alarmTopic: vaultTopic });
  for (const s of backups.sources) vaultMonitoring.addSource(s.name, { maxAge: Duration.hours(26) });
  const testing = new VaultRestoreTesting(vaultStack, 'VaultRestoreTesting', {
    store: vault, identity, monitoring: vaultMonitoring, vpc: sampleVpc(vaultStack),
    sources: backups.sources.map((source) => ({ source, checks: source.name === 'orders-db' ? [{ name: 'orders exist', sql: 'SELECT 1', minRows: 1 }] : undefined })),
    ...options.testing,
  });
  return { app, vaultStack, vault, primary, store, keys, monitoring, backups, identity, vaultMonitoring, testing };
}

/** The orchestrator's configuration, as synthesized into its code asset: the agent commands per source. */
function orchestratorConfig(app: App, testing: Construct): OrchestratorConfig {
  const asset = testing.node.findChild('Orchestration').node.findChild('Code') as s3assets.Asset;
  return JSON.parse(readFileSync(join(app.outdir, asset.assetPath, 'config.json'), 'utf8'));
}

const fixture = vaultFixture();
const template = Template.fromStack(fixture.vaultStack);

function nestedStacks(testing: Construct): NestedStack[] {
  return testing.node.findAll().filter((c): c is NestedStack => NestedStack.isNestedStack(c));
}

/** Every IAM statement of a template (policies and roles), or of the resources whose logical ids start with `idPrefix`. */
function iamStatements(t: Template, idPrefix = ''): Record<string, unknown>[] {
  const of = (type: string) => Object.entries(t.findResources(type)).filter(([id]) => id.startsWith(idPrefix)).map(([, r]) => r);
  return [
    ...of('AWS::IAM::Policy').flatMap((p) => p.Properties.PolicyDocument.Statement),
    ...of('AWS::IAM::Role').flatMap((r) => [
      ...r.Properties.AssumeRolePolicyDocument.Statement,
      ...(r.Properties.Policies ?? []).flatMap((p: { PolicyDocument: { Statement: unknown[] } }) => p.PolicyDocument.Statement),
    ]),
  ];
}

describe('given the primary\'s two sources, tested in the vault', () => {
  test('then each source\'s role reads that source\'s prefix of the vault alone, and the vault\'s identity by the roles\' path', () => {
    const [nested, ...others] = nestedStacks(fixture.testing);
    expect(others).toEqual([]);
    const t = Template.fromStack(nested);
    const roles = t.findResources('AWS::IAM::Role', { Properties: { Path: Match.stringLikeRegexp('^/restorable/restore-test/[A-Za-z0-9]+/$') } });
    expect(Object.keys(roles)).toHaveLength(2);
    for (const [source, other] of [['orders-db', 'shop-db'], ['shop-db', 'orders-db']]) {
      const [roleId, role] = Object.entries(roles).find(([, r]) => JSON.stringify(r.Properties.Description).includes(`'${source}'`))!;
      // Assumed by ECS tasks of the vault's account only.
      expect(role.Properties.AssumeRolePolicyDocument.Statement).toEqual([expect.objectContaining({
        Principal: { Service: 'ecs-tasks.amazonaws.com' }, Condition: { StringEquals: { 'aws:SourceAccount': VAULT_ACCOUNT } },
      })]);
      const policy = Object.values(t.findResources('AWS::IAM::Policy')).find((p) => JSON.stringify(p.Properties.Roles) === JSON.stringify([{ Ref: roleId }]))!;
      const text = JSON.stringify(policy.Properties.PolicyDocument);
      expect(text).toContain(`/backups/${source}/*`);
      expect(text).not.toContain(`/${other}/`);
      // The vault's bucket, which reaches the nested stack as a parameter of the vault's.
      expect(text).toMatch(/referencetoVaultBucket[0-9A-F]+Arn/);
      expect(text).toContain('secretsmanager:GetSecretValue');
    }
    // The identity's policy lets the roles read it by their path, and names no role.
    const secretPolicy = Object.values(template.findResources('AWS::SecretsManager::ResourcePolicy'))[0].Properties.ResourcePolicy;
    const readDeny = secretPolicy.Statement.find((st: { Sid?: string }) => st.Sid === 'OnlyRestoreRolesReadTheIdentity');
    const paths = JSON.stringify(readDeny.Condition.ArnNotLike['aws:PrincipalArn']);
    expect(paths).toContain(`:iam::${VAULT_ACCOUNT}:role${Object.values(roles)[0].Properties.Path}*`);
    expect(paths).toContain(`:iam::${VAULT_ACCOUNT}:role/restorable/restore/*`);
  });

  test('then the tests run monthly, on the 1st at 05:00 UTC, and read the vault with the vault\'s identity, in the vault\'s region', () => {
    const rules = Object.values(template.findResources('AWS::Events::Rule')).map((r) => r.Properties.ScheduleExpression).filter(Boolean);
    expect(rules).toContain('cron(0 5 1 * ? *)');
    const fn = Object.values(template.findResources('AWS::Lambda::Function')).find((f) => f.Properties.Environment?.Variables?.VALUE_BUCKET)!;
    expect(fn.Properties.Environment.Variables.VALUE_BUCKET).toEqual({ Ref: expect.stringMatching(/^VaultBucket[0-9A-F]{8}$/) });
    expect(fn.Properties.Environment.Variables.VALUE_IDENTITY).toEqual(fixture.vaultStack.resolve(fixture.identity.secret.secretArn));
    expect(fn.Properties.Environment.Variables.VALUE_DR_BUCKET).toBeUndefined();
    fixture.app.synth();
    const config = orchestratorConfig(fixture.app, fixture.testing);
    expect(Object.keys(config.sources)).toEqual(['orders-db', 'shop-db']);
    const command = config.sources['orders-db'].commands.primary!;
    expect(command.slice(0, 7)).toEqual(['restore-test', '--source', 'orders-db', '--bucket', '{{BUCKET}}', '--prefix', 'backups/']);
    expect(command).not.toContain('--bucket-region');
    expect(config.sources['orders-db'].commands.dr).toBeUndefined();
  });

  test('then every source\'s test reports under restore-tests/vault/ (--reports vault), and the primary\'s tests, DR copy included, do not', () => {
    fixture.app.synth();
    const vaultCommands = Object.values(orchestratorConfig(fixture.app, fixture.testing).sources).map((s) => s.commands.primary!);
    expect(vaultCommands).toHaveLength(2);
    for (const command of vaultCommands) {
      expect(command.filter((arg) => arg === '--reports')).toHaveLength(1);
      expect(command[command.indexOf('--reports') + 1]).toBe('vault');
    }

    // The primary's RestoreTesting, weekly and its same-account DR copy monthly: the top-level reports, as before.
    const app = new App();
    const replica = new ReplicaStore(new Stack(app, 'Replica', { env: { ...ENV, region: VAULT_REGION } }), 'Replica');
    const stack = new Stack(app, 'Primary', { env: ENV });
    const store = new BackupStore(stack, 'Store', { replica });
    const keys = new BackupKeys(stack, 'Keys', { replicaRegion: VAULT_REGION, replicaKeyAlias: replica.keyAliasName });
    const monitoring = new BackupMonitoring(stack, 'Monitoring', { store });
    const backups = new DatabaseBackups(stack, 'DatabaseBackups', { store, keys, monitoring, vpc: sampleVpc(stack) });
    backups.addSource(postgresSource(stack, 'orders-db'));
    const primaryTesting = new RestoreTesting(stack, 'RestoreTesting', { backups, store, keys, monitoring,
      drSchedule: events.Schedule.cron({ day: '1', hour: '4', minute: '0' }) });
    app.synth();
    const { commands } = orchestratorConfig(app, primaryTesting).sources['orders-db'];
    expect([commands.primary, commands.dr].map((c) => c!.includes('--reports'))).toEqual([false, false]);
  });

  test('then the tasks run in a cluster of the vault\'s own, with a security group that admits nothing and lets out HTTPS only', () => {
    template.resourceCountIs('AWS::ECS::Cluster', 1);
    const groups = Object.values(template.findResources('AWS::EC2::SecurityGroup', { Properties: { GroupDescription: Match.stringLikeRegexp('restore-test tasks') } }));
    expect(groups).toHaveLength(1);
    expect(groups[0].Properties.SecurityGroupIngress).toBeUndefined();
    expect(groups[0].Properties.SecurityGroupEgress).toEqual([expect.objectContaining({ CidrIp: '0.0.0.0/0', FromPort: 443, ToPort: 443, IpProtocol: 'tcp' })]);
  });

  test('then every alarm notifies the vault monitoring\'s topic, and a test is overdue after 33 days', () => {
    const topicRef = fixture.vaultStack.resolve(fixture.vaultMonitoring.topic.topicArn);
    expect(topicRef).toEqual({ Ref: expect.stringMatching(/^VaultTopic[0-9A-F]{8}$/) });
    const alarms = Object.entries(template.findResources('AWS::CloudWatch::Alarm')).filter(([id]) => id.startsWith('VaultRestoreTesting'));
    expect(alarms.map(([id]) => id.replace(/[0-9A-F]{8}$/, '')).sort())
      .toEqual(['VaultRestoreTestingOrchestrationFailedAlarm', 'VaultRestoreTestingTestFailedAlarm', 'VaultRestoreTestingTestOverdueAlarm']);
    for (const [, alarm] of alarms) expect(alarm.Properties.AlarmActions).toEqual([topicRef]);
    const overdue = alarms.find(([id]) => id.startsWith('VaultRestoreTestingTestOverdueAlarm'))![1];
    expect(overdue.Properties.Threshold).toBe(Duration.days(33).toSeconds());
    expect(overdue.Properties.AlarmDescription).toContain('in 33 days');
  });

  test('then the vault\'s monitoring expects the restore tests of both sources', () => {
    const inputs = JSON.stringify(template.findResources('AWS::Events::Rule'));
    expect(inputs).toMatch(/\\"source\\":\\"orders-db\\"[^}]*\\"restoreTested\\":true/);
    expect(inputs).toMatch(/\\"source\\":\\"shop-db\\"[^}]*\\"restoreTested\\":true/);
  });

  test('then the people\'s restore role is named at synth, under /restorable/restore/, assumed in the vault\'s account with MFA, and reads every source and the identity', () => {
    expect(fixture.testing.restoreRoleArn).toMatch(new RegExp(`:iam::${VAULT_ACCOUNT}:role/restorable/restore/restorable-restore-${VAULT_REGION}$`));
    const roles = Object.entries(template.findResources('AWS::IAM::Role', { Properties: { Path: '/restorable/restore/' } }));
    expect(roles).toHaveLength(1);
    const [roleId, role] = roles[0];
    expect(role.Properties.RoleName).toBe(`restorable-restore-${VAULT_REGION}`);
    expect(role.Properties.MaxSessionDuration).toBe(12 * 3600);
    expect(role.Properties.AssumeRolePolicyDocument.Statement).toEqual([{
      Action: 'sts:AssumeRole', Effect: 'Allow', Condition: { Bool: { 'aws:MultiFactorAuthPresent': 'true' } },
      Principal: { AWS: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:iam::${VAULT_ACCOUNT}:root`]] } },
    }]);
    const policy = JSON.stringify(Object.values(template.findResources('AWS::IAM::Policy')).filter((p) => JSON.stringify(p.Properties.Roles).includes(roleId)));
    expect(policy).toContain('/backups/orders-db/*');
    expect(policy).toContain('/backups/shop-db/*');
    expect(policy).toContain('secretsmanager:GetSecretValue');
  });

  test('then the restore role may be assumed by a principal of the vault\'s own choosing, of its account', () => {
    const f = vaultFixture({ testing: { restoreRoleName: 'dr-restore', restoreRoleAssumedBy: new iam.ArnPrincipal(`arn:aws:iam::${VAULT_ACCOUNT}:role/sso-restore`) } });
    expect(f.testing.restoreRoleArn).toMatch(new RegExp(`:iam::${VAULT_ACCOUNT}:role/restorable/restore/dr-restore$`));
    const [role] = Object.values(Template.fromStack(f.vaultStack).findResources('AWS::IAM::Role', { Properties: { Path: '/restorable/restore/' } }));
    expect(role.Properties.AssumeRolePolicyDocument.Statement).toEqual([
      { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${VAULT_ACCOUNT}:role/sso-restore` } },
    ]);
  });

  test('then a source added later is tested, and the restore role reads it too', () => {
    const f = vaultFixture();
    const later = f.backups.addSource(postgresSource(f.primary, 'billing-db'));
    f.vaultMonitoring.addSource('billing-db', { maxAge: Duration.hours(26) });
    f.testing.addSource({ source: later });
    const t = Template.fromStack(f.vaultStack);
    const [roleId] = Object.keys(t.findResources('AWS::IAM::Role', { Properties: { Path: '/restorable/restore/' } }));
    const policy = JSON.stringify(Object.values(t.findResources('AWS::IAM::Policy')).filter((p) => JSON.stringify(p.Properties.Roles).includes(roleId)));
    expect(policy).toContain('/backups/billing-db/*');
  });

  test('then no IAM statement of VaultRestoreTesting names the primary\'s account, and none of the primary\'s reads or decrypts in the vault', () => {
    const vaultStatements = [
      ...iamStatements(template, 'VaultRestoreTesting'),
      ...nestedStacks(fixture.testing).flatMap((s) => iamStatements(Template.fromStack(s))),
    ];
    expect(vaultStatements.length).toBeGreaterThan(10);
    expect(JSON.stringify(vaultStatements)).not.toContain(PRIMARY_ACCOUNT);
    const vaultBucket = fixture.vaultStack.resolve(fixture.vault.bucket.bucketName);
    const reads = iamStatements(Template.fromStack(fixture.primary))
      .filter((s) => s.Effect === 'Allow' && [s.Action].flat().some((a) => /^s3:Get|^s3:List|^kms:Decrypt$/.test(String(a))));
    expect(reads.length).toBeGreaterThan(0);
    expect(JSON.stringify(reads)).not.toContain(JSON.stringify(vaultBucket).replace(/^"|"$/g, ''));
    expect(JSON.stringify(reads)).not.toContain(VAULT_ACCOUNT);
  });
});

test.each([
  ['the defaults', {}],
  ['per-source alarms', { testing: { perSourceAlarms: true } }],
])('cdk-nag finds nothing unacknowledged in the vault\'s stack with %s', (_, options: Options) => {
  const { app } = vaultFixture({ nag: true, ...options });
  expect(() => app.synth()).not.toThrow();
});

describe('bad input is refused in words that say how to fix it', () => {
  test('RestoreTesting with drSchedule on a store whose replica is a vault points to VaultRestoreTesting', () => {
    const f = vaultFixture();
    expect(() => new RestoreTesting(f.primary, 'RT', {
      backups: f.backups, store: f.store, keys: f.keys, monitoring: new BackupMonitoring(f.primary, 'M2', { store: f.store }),
      drSchedule: events.Schedule.cron({ day: '1', hour: '4', minute: '0' }),
    })).toThrow(`Primary/RT: drSchedule tests the DR copy from this account, but the store's replica is a vault in account ${VAULT_ACCOUNT}, ` +
      'which this account may not read (that is what the vault is for): remove drSchedule, and test the vault from its own account with ' +
      'VaultRestoreTesting in the vault\'s stack');
  });

  test('RestoreTesting without drSchedule on a store with a vault is as before', () => {
    const f = vaultFixture();
    const testing = new RestoreTesting(f.primary, 'RT', { backups: f.backups, store: f.store, keys: f.keys, monitoring: f.monitoring });
    expect(testing.stateMachine).toBeDefined();
  });

  test('a monitoring of another store', () => {
    const f = vaultFixture();
    const other = new BackupMonitoring(f.vaultStack, 'Other', { store: new ReplicaStore(f.vaultStack, 'OtherVault') });
    expect(() => new VaultRestoreTesting(f.vaultStack, 'V2', { store: f.vault, identity: f.identity, monitoring: other, vpc: f.testing.cluster.vpc, sources: [] }))
      .toThrow('Vault/V2: monitoring watches another store: give the vault\'s own BackupMonitoring, whose store is the vault');
  });

  test('a replica in the primary\'s own account', () => {
    const f = vaultFixture();
    const sameAccount = new ReplicaStore(f.vaultStack, 'SameAccount');
    const monitoring = new BackupMonitoring(f.vaultStack, 'SameAccountMonitoring', { store: sameAccount });
    expect(() => new VaultRestoreTesting(f.vaultStack, 'V3', { store: sameAccount, identity: f.identity, monitoring, vpc: f.testing.cluster.vpc, sources: [] }))
      .toThrow('Vault/V3: store is a replica in the primary\'s own account, which RestoreTesting tests (drSchedule)');
  });

  test('a restore role the primary\'s account could assume', () => {
    const f = vaultFixture();
    expect(() => new VaultRestoreTesting(f.vaultStack, 'V4', {
      store: f.vault, identity: f.identity, monitoring: f.vaultMonitoring, vpc: f.testing.cluster.vpc, sources: [{ source: f.backups.sources[0] }],
      restoreRoleName: 'other', restoreRoleAssumedBy: new iam.AccountPrincipal(PRIMARY_ACCOUNT),
    })).toThrow(`Vault/V4: restoreRoleAssumedBy is a principal of account ${PRIMARY_ACCOUNT}: only the vault's own account (${VAULT_ACCOUNT}) may restore from it`);
  });

  test('a store in another stack than VaultRestoreTesting', () => {
    const f = vaultFixture();
    const elsewhere = new Stack(f.app, 'Elsewhere', { env: { account: VAULT_ACCOUNT, region: VAULT_REGION } });
    expect(() => new VaultRestoreTesting(elsewhere, 'V', { store: f.vault, identity: f.identity, monitoring: f.vaultMonitoring, vpc: sampleVpc(elsewhere), sources: [] }))
      .toThrow('Elsewhere/V: store and monitoring must be in the stack of VaultRestoreTesting');
  });
});
