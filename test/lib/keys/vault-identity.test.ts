import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { App, Duration, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as sns from 'aws-cdk-lib/aws-sns';
import { AwsSolutionsChecks } from 'cdk-nag';
import { BackupKeys } from '../../../lib/keys/backup-keys';
import { VaultIdentity, VaultIdentityProps } from '../../../lib/keys/vault-identity';
import { ReplicaStore, ReplicaStoreProps } from '../../../lib/store/replica-store';

const PRIMARY = { account: '111122223333', region: 'eu-central-1' };
const VAULT = { account: '444455556666', region: 'eu-west-1' };

beforeAll(() => {
  if (!existsSync(join(__dirname, '../../../assets/lambda/identity-copier/index.js'))) {
    throw new Error("the identity-copier asset is missing: run 'npm run bundle' before these tests");
  }
});

/** The vault's ReplicaStore, admitting the primary account (a plain replica where the store has no such props). */
function vaultStore(stack: Stack, alarmTopic: sns.ITopic): ReplicaStore {
  return new ReplicaStore(stack, 'Vault', { primaryAccount: PRIMARY.account, alarmTopic } as ReplicaStoreProps);
}

/** A primary stack with BackupKeys admitting the vault, and a vault stack in another account with its VaultIdentity. */
function vault(props: Partial<VaultIdentityProps> = {}, app = new App()) {
  const primaryStack = new Stack(app, 'Primary', { env: PRIMARY });
  const keys = new BackupKeys(primaryStack, 'BackupKeys', { vaultAccount: VAULT.account });
  const vaultStack = new Stack(app, 'VaultStack', { env: VAULT });
  const alarmTopic = new sns.Topic(vaultStack, 'Alarms', { enforceSSL: true });
  const store = vaultStore(vaultStack, alarmTopic);
  const identity = new VaultIdentity(vaultStack, 'Identity', { keys, store, alarmTopic, ...props });
  return { app, primaryStack, vaultStack, keys, store, identity, alarmTopic };
}

function logicalId(template: Template, type: string, pattern: RegExp): string {
  const ids = Object.keys(template.findResources(type)).filter((id) => pattern.test(id));
  if (ids.length !== 1) throw new Error(`expected one ${type} matching ${pattern}, found ${ids.join(', ') || 'none'}`);
  return ids[0];
}

const join_ = (...parts: unknown[]) => ({ 'Fn::Join': ['', parts] });
const partition = { Ref: 'AWS::Partition' };
const roleArn = (id: string) => ({ 'Fn::GetAtt': [id, 'Arn'] });

function resourcePolicy(template: Template): { Sid?: string }[] {
  const policies = Object.values(template.findResources('AWS::SecretsManager::ResourcePolicy'));
  expect(policies).toHaveLength(1);
  return policies[0].Properties.ResourcePolicy.Statement;
}

function copierStatements(template: Template): Record<string, unknown>[] {
  const role = template.toJSON().Resources[logicalId(template, 'AWS::IAM::Role', /^IdentityCopierRole/)];
  return role.Properties.Policies.flatMap((policy: { PolicyDocument: { Statement: unknown[] } }) => policy.PolicyDocument.Statement);
}

describe('the copy', () => {
  test('is a secret named at synth, encrypted with the vault\'s identity key, retained with its policy', () => {
    const { vaultStack, identity } = vault();
    const template = Template.fromStack(vaultStack);
    const identityKey = logicalId(template, 'AWS::KMS::Key', /^VaultIdentityKey/);

    expect(identity.secretName).toMatch(/^VaultStackIdentity[0-9A-F]{8}-identity$/);
    expect(identity.secretName).not.toMatch(/-[A-Za-z0-9]{6}$/);
    template.hasResourceProperties('AWS::SecretsManager::Secret', {
      Name: identity.secretName,
      KmsKeyId: { 'Fn::GetAtt': [identityKey, 'Arn'] },
      ReplicaRegions: Match.absent(),
    });
    for (const type of ['AWS::SecretsManager::Secret', 'AWS::SecretsManager::ResourcePolicy']) {
      const resources = Object.values(template.findResources(type));
      expect(resources).toHaveLength(1);
      expect(resources[0]).toMatchObject({ DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
    }
    expect(vaultStack.resolve(identity.secretPartialArn))
      .toEqual(join_('arn:', partition, `:secretsmanager:eu-west-1:444455556666:secret:${identity.secretName}`));
    expect(identity.identitySecret).toBe(identity.secret);
  });

  test('its policy denies reading to all but the copier and the restore roles granted, by ARN or by path', () => {
    const { vaultStack, identity } = vault();
    const byArn = new iam.Role(vaultStack, 'Restorer', { assumedBy: new iam.AccountRootPrincipal() });
    identity.grantIdentityRead(byArn);
    identity.grantIdentityRead(new iam.Role(vaultStack, 'DrRestore', { assumedBy: new iam.AccountRootPrincipal(), path: '/restorable/restore/' }),
      { rolePath: '/restorable/restore/' });
    const template = Template.fromStack(vaultStack);

    expect(resourcePolicy(template)).toContainEqual({
      Sid: 'OnlyRestoreRolesReadTheIdentity',
      Effect: 'Deny',
      Principal: { AWS: '*' },
      Action: 'secretsmanager:GetSecretValue',
      Resource: '*',
      Condition: {
        ArnNotEquals: { 'aws:PrincipalArn': [roleArn(logicalId(template, 'AWS::IAM::Role', /^IdentityCopierRole/)), roleArn(logicalId(template, 'AWS::IAM::Role', /^Restorer/))] },
        ArnNotLike: { 'aws:PrincipalArn': [join_('arn:', partition, ':iam::444455556666:role/restorable/restore/*')] },
      },
    });
  });

  test('its policy denies writing, moving versions, replicating and deleting to all but the copier, CloudFormation and break-glass', () => {
    const { vaultStack } = vault();
    const template = Template.fromStack(vaultStack);

    expect(resourcePolicy(template)).toContainEqual({
      Sid: 'OnlyTheCopierWritesTheIdentity',
      Effect: 'Deny',
      Principal: { AWS: '*' },
      Action: ['secretsmanager:PutSecretValue', 'secretsmanager:UpdateSecret', 'secretsmanager:UpdateSecretVersionStage',
        'secretsmanager:ReplicateSecretToRegions', 'secretsmanager:DeleteSecret'],
      Resource: '*',
      Condition: { ArnNotLike: { 'aws:PrincipalArn': [
        roleArn(logicalId(template, 'AWS::IAM::Role', /^IdentityCopierRole/)),
        { 'Fn::Sub': 'arn:${AWS::Partition}:iam::444455556666:role/cdk-hnb659fds-cfn-exec-role-444455556666-eu-west-1' },
        join_('arn:', partition, ':iam::444455556666:role/restorable-break-glass'),
      ] } },
    });
  });

  test('a given break-glass role may read the copy and write it; a given deployment role may write it', () => {
    const app = new App();
    const breakGlassRole = iam.Role.fromRoleArn(new Stack(app, 'Refs', { env: VAULT }), 'BreakGlass', 'arn:aws:iam::444455556666:role/security/break-glass');
    const { vaultStack } = vault({ breakGlassRole, deploymentRoleArn: 'arn:aws:iam::444455556666:role/deployer' }, app);
    const statements = resourcePolicy(Template.fromStack(vaultStack)) as Array<{ Sid: string; Condition: Record<string, Record<string, unknown[]>> }>;

    const read = statements.find((s) => s.Sid === 'OnlyRestoreRolesReadTheIdentity')!;
    expect(read.Condition.ArnNotEquals['aws:PrincipalArn']).toContain('arn:aws:iam::444455556666:role/security/break-glass');
    const write = statements.find((s) => s.Sid === 'OnlyTheCopierWritesTheIdentity')!;
    expect(write.Condition.ArnNotLike['aws:PrincipalArn'].slice(1))
      .toEqual(['arn:aws:iam::444455556666:role/deployer', 'arn:aws:iam::444455556666:role/security/break-glass']);
  });

  test('only the copier and the restore roles granted may read it or decrypt with the vault\'s identity key', () => {
    const { vaultStack, identity } = vault();
    identity.grantIdentityRead(new iam.Role(vaultStack, 'Restorer', { assumedBy: new iam.AccountRootPrincipal() }), { rolePath: '/restorable/restore/' });
    new iam.Role(vaultStack, 'Bystander', { assumedBy: new iam.AccountRootPrincipal() })
      .addToPolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: ['arn:aws:s3:::elsewhere/*'] }));
    const template = Template.fromStack(vaultStack);
    const secret = logicalId(template, 'AWS::SecretsManager::Secret', /^IdentitySecret/);

    const readers = Object.entries(template.findResources('AWS::IAM::Role')).concat(Object.entries(template.findResources('AWS::IAM::Policy')))
      .filter(([, resource]) => /secretsmanager:GetSecretValue/.test(JSON.stringify(resource)) && JSON.stringify(resource).includes(secret))
      .map(([id]) => id.replace(/[0-9A-F]{8}$/, ''));
    expect(readers.sort()).toEqual(['IdentityCopierRole', 'RestorerDefaultPolicy']);
  });
});

describe('the copier', () => {
  test('runs on Node.js 22 as a role under /restorable/identity-copier/, every hour by default, with names known at synth', () => {
    const { vaultStack, keys, identity } = vault();
    const template = Template.fromStack(vaultStack);

    template.hasResourceProperties('AWS::IAM::Role', { Path: '/restorable/identity-copier/' });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs22.x',
      Role: roleArn(logicalId(template, 'AWS::IAM::Role', /^IdentityCopierRole/)),
      Environment: { Variables: {
        SOURCE_SECRET_ARN: vaultStack.resolve(keys.identitySourceArn()),
        TARGET_SECRET_ID: { Ref: logicalId(template, 'AWS::SecretsManager::Secret', /^IdentitySecret/) },
        METRIC_IDENTITY: identity.secretName,
      } },
    });
    expect(vaultStack.resolve(keys.identitySourceArn()))
      .toEqual(join_('arn:', partition, `:secretsmanager:eu-central-1:111122223333:secret:${keys.identitySecretName}`));
    template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(1 hour)' });
    // The two stacks never refer to each other's outputs: the vault's reads only names known at synth.
    expect(JSON.stringify(template.toJSON())).not.toContain('Fn::ImportValue');
  });

  test('reads the primary\'s secret by name and decrypts it only through Secrets Manager in the primary region; writes only its copy', () => {
    const { vaultStack, keys } = vault();
    const template = Template.fromStack(vaultStack);
    const identityKey = logicalId(template, 'AWS::KMS::Key', /^VaultIdentityKey/);

    expect(copierStatements(template)).toEqual(expect.arrayContaining([
      { Effect: 'Allow', Action: 'secretsmanager:GetSecretValue',
        Resource: join_('arn:', partition, `:secretsmanager:eu-central-1:111122223333:secret:${keys.identitySecretName}-??????`) },
      { Effect: 'Allow', Action: 'kms:Decrypt', Resource: join_('arn:', partition, ':kms:eu-central-1:111122223333:key/*'),
        Condition: { StringEquals: { 'kms:ViaService': 'secretsmanager.eu-central-1.amazonaws.com' } } },
      { Effect: 'Allow', Action: ['secretsmanager:GetSecretValue', 'secretsmanager:PutSecretValue'],
        Resource: { Ref: logicalId(template, 'AWS::SecretsManager::Secret', /^IdentitySecret/) } },
      { Effect: 'Allow', Action: ['kms:Decrypt', 'kms:GenerateDataKey'], Resource: { 'Fn::GetAtt': [identityKey, 'Arn'] },
        Condition: { StringEquals: { 'kms:ViaService': 'secretsmanager.eu-west-1.amazonaws.com' } } },
      { Effect: 'Allow', Action: 'cloudwatch:PutMetricData', Resource: '*', Condition: { StringEquals: { 'cloudwatch:namespace': 'Restorable' } } },
    ]));
    // Nothing else of the primary's, and no deletion anywhere.
    const granted = JSON.stringify(copierStatements(template));
    expect(granted).not.toMatch(/Delete|secretsmanager:\*|kms:\*|PutResourcePolicy/);
  });

  test('alarms on the topic when a copy fails, and when no copy succeeded for three intervals', () => {
    const { vaultStack, identity } = vault({ copyInterval: Duration.minutes(15) });
    const template = Template.fromStack(vaultStack);
    const topic = { Ref: logicalId(template, 'AWS::SNS::Topic', /^Alarms/) };

    template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(15 minutes)' });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'Errors', Namespace: 'AWS/Lambda', Statistic: 'Sum', Period: 900,
      Dimensions: [{ Name: 'FunctionName', Value: { Ref: logicalId(template, 'AWS::Lambda::Function', /^IdentityCopier/) } }],
      ComparisonOperator: 'GreaterThanThreshold', Threshold: 0, EvaluationPeriods: 1, TreatMissingData: 'notBreaching',
      AlarmActions: [topic],
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'VaultIdentityKeys', Namespace: 'Restorable', Statistic: 'SampleCount', Period: 900,
      Dimensions: [{ Name: 'IdentitySecret', Value: identity.secretName }],
      ComparisonOperator: 'LessThanThreshold', Threshold: 1, EvaluationPeriods: 3, DatapointsToAlarm: 3, TreatMissingData: 'breaching',
      AlarmActions: [topic],
    });
    expect(vaultStack.resolve(identity.copyFailedAlarm.alarmArn)).toEqual(
      { 'Fn::GetAtt': [logicalId(template, 'AWS::CloudWatch::Alarm', /^IdentityCopyFailedAlarm/), 'Arn'] });
  });

  test('reports changes to the copy\'s policy, its deletion, and changes to the vault\'s identity key to the topic', () => {
    const { vaultStack } = vault();
    const template = Template.fromStack(vaultStack);
    const secret = logicalId(template, 'AWS::SecretsManager::Secret', /^IdentitySecret/);

    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: Match.objectLike({ detail: Match.objectLike({
        $or: Match.arrayWith([{ responseElements: { arn: [{ Ref: secret }] } }]),
      }) }),
      Targets: [Match.objectLike({ Arn: { Ref: logicalId(template, 'AWS::SNS::Topic', /^Alarms/) } })],
    });
  });
});

describe('the primary\'s side and the vault\'s agree', () => {
  test('the primary admits by path the role the vault creates, in the vault\'s account', () => {
    const { app, primaryStack, vaultStack } = vault();
    app.synth();
    const primaryPolicy = JSON.stringify(Template.fromStack(primaryStack).toJSON());
    const copierRole = Object.values(Template.fromStack(vaultStack).findResources('AWS::IAM::Role'))
      .find((role) => role.Properties.Path === '/restorable/identity-copier/');

    expect(copierRole).toBeDefined();
    expect(primaryPolicy).toContain(':iam::444455556666:role/restorable/identity-copier/*');
  });
});

describe('mistakes are caught at synth, in words that say what to fix', () => {
  test('keys without vaultAccount', () => {
    const app = new App();
    const keys = new BackupKeys(new Stack(app, 'Primary', { env: PRIMARY }), 'BackupKeys', { replicaRegion: 'eu-west-1', replicaKeyAlias: 'alias/x' });
    const stack = new Stack(app, 'VaultStack', { env: VAULT });
    const alarmTopic = new sns.Topic(stack, 'Alarms');
    expect(() => new VaultIdentity(stack, 'Identity', { keys, store: vaultStore(stack, alarmTopic), alarmTopic }))
      .toThrow(/keys: the BackupKeys Primary\/BackupKeys has no vaultAccount.*give it vaultAccount: '444455556666'/);
  });

  test('keys that admit another vault account', () => {
    const app = new App();
    const keys = new BackupKeys(new Stack(app, 'Primary', { env: PRIMARY }), 'BackupKeys', { vaultAccount: '777788889999' });
    const stack = new Stack(app, 'VaultStack', { env: VAULT });
    const alarmTopic = new sns.Topic(stack, 'Alarms');
    expect(() => new VaultIdentity(stack, 'Identity', { keys, store: vaultStore(stack, alarmTopic), alarmTopic }))
      .toThrow(/admits the vault account 777788889999, but this stack is in 444455556666/);
  });

  test('a store of another account', () => {
    const app = new App();
    const keys = new BackupKeys(new Stack(app, 'Primary', { env: PRIMARY }), 'BackupKeys', { vaultAccount: VAULT.account });
    const elsewhere = new Stack(app, 'Elsewhere', { env: { account: '777788889999', region: 'eu-west-1' } });
    const stack = new Stack(app, 'VaultStack', { env: VAULT });
    const alarmTopic = new sns.Topic(stack, 'Alarms');
    expect(() => new VaultIdentity(stack, 'Identity', { keys, store: vaultStore(elsewhere, new sns.Topic(elsewhere, 'T')), alarmTopic }))
      .toThrow(/store: the ReplicaStore Elsewhere\/Vault is in 777788889999 eu-west-1, not in this stack's 444455556666 eu-west-1/);
  });

  test('a stack without an explicit env', () => {
    const app = new App();
    const keys = new BackupKeys(new Stack(app, 'Primary', { env: PRIMARY }), 'BackupKeys', { vaultAccount: VAULT.account });
    const vaultStack = new Stack(app, 'VaultStack', { env: VAULT });
    const alarmTopic = new sns.Topic(vaultStack, 'Alarms', { enforceSSL: true });
    const store = vaultStore(vaultStack, alarmTopic);
    expect(() => new VaultIdentity(new Stack(app, 'Agnostic'), 'Identity', { keys, store, alarmTopic }))
      .toThrow(/a VaultIdentity needs a stack with an explicit env/);
  });

  test('no alarm topic', () => {
    const app = new App();
    const keys = new BackupKeys(new Stack(app, 'Primary', { env: PRIMARY }), 'BackupKeys', { vaultAccount: VAULT.account });
    const stack = new Stack(app, 'VaultStack', { env: VAULT });
    const store = vaultStore(stack, new sns.Topic(stack, 'Alarms'));
    expect(() => new VaultIdentity(stack, 'Identity', { keys, store } as VaultIdentityProps)).toThrow(/keys, store and alarmTopic are required/);
  });

  test.each([
    [Duration.minutes(1), /copyInterval must be a whole number of minutes, from 5 to 1440 \(got 1 minute\)/],
    [Duration.days(2), /copyInterval must be a whole number of minutes, from 5 to 1440 \(got 2 days\)/],
    [Duration.seconds(330), /copyInterval must be a whole number of minutes/],
  ])('copyInterval %s', (copyInterval, message) => {
    expect(() => vault({ copyInterval })).toThrow(message);
  });
});

describe('cdk-nag AwsSolutions', () => {
  test('the vault\'s identity, read by a restore role by path, and the primary\'s keys have no unacknowledged findings', () => {
    const app = new App();
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    const { vaultStack, identity } = vault({}, app);
    identity.grantIdentityRead(new iam.Role(vaultStack, 'Restorer', { assumedBy: new iam.AccountRootPrincipal(), path: '/restorable/restore/' }),
      { rolePath: '/restorable/restore/' });
    expect(() => app.synth()).not.toThrow();
  });
});
