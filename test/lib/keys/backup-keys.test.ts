import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import { BackupKeys, BackupKeysProps } from '../../../lib/keys/backup-keys';

const ENV = { account: '123456789012', region: 'eu-central-1' };
const OFFLINE_RECIPIENT = 'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p';

beforeAll(() => {
  if (!existsSync(join(__dirname, '../../../assets/lambda/key-generator/index.js'))) {
    throw new Error("the key-generator asset is missing: run 'npm run bundle' before these tests");
  }
});

/** A stack with generated keys, a restore role registered after construction, and a dump role. */
function generatedKeys(props: BackupKeysProps = {}) {
  const stack = new Stack(new App(), 'Keys', { env: ENV });
  const keys = new BackupKeys(stack, 'BackupKeys', { replicaRegion: 'eu-west-1', replicaKeyAlias: 'alias/restorable-secrets', ...props });
  const dumpRole = new iam.Role(stack, 'DumpRole', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
  dumpRole.addToPolicy(new iam.PolicyStatement({ actions: ['s3:PutObject'], resources: ['arn:aws:s3:::backups/orders-db/*'] }));
  const restoreRole = new iam.Role(stack, 'RestoreRole', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
  keys.grantIdentityRead(restoreRole);
  return { stack, keys, dumpRole, restoreRole, template: Template.fromStack(stack) };
}

function logicalId(template: Template, type: string, pattern: RegExp): string {
  const ids = Object.keys(template.findResources(type)).filter((id) => pattern.test(id));
  if (ids.length !== 1) throw new Error(`expected one ${type} matching ${pattern}, found ${ids.join(', ') || 'none'}`);
  return ids[0];
}

const roleArn = (id: string) => ({ 'Fn::GetAtt': [id, 'Arn'] });

describe('generated keys', () => {
  test('the identity secret is encrypted with its own rotating KMS key and replicated with the DR key alias', () => {
    const { template } = generatedKeys();
    const keyId = logicalId(template, 'AWS::KMS::Key', /^BackupKeysKey/);

    template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
    template.hasResourceProperties('AWS::SecretsManager::Secret', {
      KmsKeyId: { 'Fn::GetAtt': [keyId, 'Arn'] },
      ReplicaRegions: [{
        Region: 'eu-west-1',
        KmsKeyId: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':kms:eu-west-1:123456789012:alias/restorable-secrets']] },
      }],
    });
  });

  test('a replica key alias of the user\'s choosing is used in the DR region', () => {
    const { template } = generatedKeys({ replicaRegion: 'us-west-2', replicaKeyAlias: 'alias/dr/secrets' });
    template.hasResourceProperties('AWS::SecretsManager::Secret', {
      ReplicaRegions: [{
        Region: 'us-west-2',
        KmsKeyId: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':kms:us-west-2:123456789012:alias/dr/secrets']] },
      }],
    });
  });

  test('the secret, its resource policy and its key are retained when the stack is deleted or replaced', () => {
    const { template } = generatedKeys();
    for (const type of ['AWS::SecretsManager::Secret', 'AWS::SecretsManager::ResourcePolicy', 'AWS::KMS::Key']) {
      const resources = Object.values(template.findResources(type));
      expect(resources).toHaveLength(1);
      expect(resources[0]).toMatchObject({ DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
    }
  });

  test('the resource policy denies GetSecretValue to all but the restore roles and the key generator, even roles registered later', () => {
    const { template } = generatedKeys();
    const generatorRole = logicalId(template, 'AWS::IAM::Role', /^BackupKeysKeyGeneratorRole/);
    const restoreRole = logicalId(template, 'AWS::IAM::Role', /^RestoreRole/);

    template.hasResourceProperties('AWS::SecretsManager::ResourcePolicy', {
      ResourcePolicy: {
        Statement: Match.arrayWith([{
          Sid: 'OnlyRestoreRolesReadTheIdentity',
          Effect: 'Deny',
          Principal: { AWS: '*' },
          Action: 'secretsmanager:GetSecretValue',
          Resource: '*',
          Condition: { ArnNotEquals: { 'aws:PrincipalArn': [roleArn(generatorRole), roleArn(restoreRole)] } },
        }]),
      },
    });
  });

  test('a break-glass role is exempt from the deny as well', () => {
    const stack = new Stack(new App(), 'Keys', { env: ENV });
    const breakGlassRole = iam.Role.fromRoleArn(stack, 'BreakGlass', 'arn:aws:iam::123456789012:role/security/break-glass');
    new BackupKeys(stack, 'BackupKeys', { replicaRegion: 'eu-west-1', replicaKeyAlias: 'alias/restorable-secrets', breakGlassRole });

    Template.fromStack(stack).hasResourceProperties('AWS::SecretsManager::ResourcePolicy', {
      ResourcePolicy: { Statement: Match.arrayWith([Match.objectLike({
        Condition: { ArnNotEquals: { 'aws:PrincipalArn': Match.arrayWith(['arn:aws:iam::123456789012:role/security/break-glass']) } },
      })]) },
    });
  });

  test('the resource policy denies writing, deleting and un-replicating the identity to all but the key generator, CloudFormation and break-glass', () => {
    // Given generated keys with the default deployment and break-glass roles
    const { template } = generatedKeys();
    const generatorRole = logicalId(template, 'AWS::IAM::Role', /^BackupKeysKeyGeneratorRole/);

    // Then the secret's policy denies the destructive calls to everyone else, by principal ARN
    template.hasResourceProperties('AWS::SecretsManager::ResourcePolicy', {
      ResourcePolicy: {
        Statement: Match.arrayWith([{
          Sid: 'OnlyTheGeneratorWritesTheIdentity',
          Effect: 'Deny',
          Principal: { AWS: '*' },
          Action: ['secretsmanager:PutSecretValue', 'secretsmanager:DeleteSecret',
            'secretsmanager:RemoveRegionsFromReplication', 'secretsmanager:StopReplicationToReplica',
            'secretsmanager:UpdateSecret', 'secretsmanager:UpdateSecretVersionStage'],
          Resource: '*',
          Condition: {
            ArnNotLike: {
              'aws:PrincipalArn': [
                roleArn(generatorRole),
                { 'Fn::Sub': 'arn:${AWS::Partition}:iam::123456789012:role/cdk-hnb659fds-cfn-exec-role-123456789012-eu-central-1' },
                { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::123456789012:role/restorable-break-glass']] },
              ],
            },
          },
        }]),
      },
    });
  });

  test('the key generator, which writes the identity, is the role the write deny exempts', () => {
    // Given generated keys
    const { template } = generatedKeys();
    const generatorRole = logicalId(template, 'AWS::IAM::Role', /^BackupKeysKeyGeneratorRole/);

    // When the generator function runs as its role
    const generator = Object.values(template.findResources('AWS::Lambda::Function'))
      .find((fn) => JSON.stringify(fn.Properties.Role).includes(generatorRole));

    // Then that role may PutSecretValue and the deny names its ARN
    expect(generator).toBeDefined();
    expect(rolesGranted(template, ['secretsmanager:PutSecretValue'], logicalId(template, 'AWS::SecretsManager::Secret', /^BackupKeysIdentity/)))
      .toEqual([generatorRole]);
    const policy = Object.values(template.findResources('AWS::SecretsManager::ResourcePolicy'))[0];
    const writeDeny = policy.Properties.ResourcePolicy.Statement.find((statement: { Sid?: string }) => statement.Sid === 'OnlyTheGeneratorWritesTheIdentity');
    expect(writeDeny.Condition.ArnNotLike['aws:PrincipalArn']).toContainEqual(roleArn(generatorRole));
  });

  test('a given deployment role and break-glass role replace the defaults in the denies', () => {
    // Given a break-glass role and a deployment role of one's own
    const stack = new Stack(new App(), 'Keys', { env: ENV });
    const breakGlassRole = iam.Role.fromRoleArn(stack, 'BreakGlass', 'arn:aws:iam::123456789012:role/security/break-glass');
    new BackupKeys(stack, 'BackupKeys', {
      replicaRegion: 'eu-west-1', replicaKeyAlias: 'alias/restorable-secrets', breakGlassRole,
      deploymentRoleArn: 'arn:aws:iam::123456789012:role/deployer',
    });
    const template = Template.fromStack(stack);

    // Then the secret's write deny exempts them, and the key's deny exempts break-glass only
    template.hasResourceProperties('AWS::SecretsManager::ResourcePolicy', {
      ResourcePolicy: { Statement: Match.arrayWith([Match.objectLike({
        Sid: 'OnlyTheGeneratorWritesTheIdentity',
        Condition: { ArnNotLike: { 'aws:PrincipalArn': [Match.anyValue(), 'arn:aws:iam::123456789012:role/deployer', 'arn:aws:iam::123456789012:role/security/break-glass'] } },
      })]) },
    });
    template.hasResourceProperties('AWS::KMS::Key', {
      KeyPolicy: { Statement: Match.arrayWith([Match.objectLike({
        Sid: 'OnlyBreakGlassDestroysTheKey',
        Condition: { ArnNotLike: { 'aws:PrincipalArn': ['arn:aws:iam::123456789012:role/security/break-glass'] } },
      })]) },
    });
  });

  test('the identity key cannot be scheduled for deletion, disabled or re-aliased but by break-glass', () => {
    // Given generated keys
    const { template } = generatedKeys();

    // Then the key policy denies those calls to every principal but the default break-glass role
    template.hasResourceProperties('AWS::KMS::Key', {
      KeyPolicy: { Statement: Match.arrayWith([{
        Sid: 'OnlyBreakGlassDestroysTheKey',
        Effect: 'Deny',
        Principal: { AWS: '*' },
        Action: ['kms:ScheduleKeyDeletion', 'kms:DisableKey', 'kms:UpdateAlias', 'kms:DeleteAlias'],
        Resource: '*',
        Condition: { ArnNotLike: { 'aws:PrincipalArn': [{ 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::123456789012:role/restorable-break-glass']] }] } },
      }]) },
    });
  });

  test('the identity key decrypts only through Secrets Manager, so a role cannot use it directly', () => {
    const { template } = generatedKeys();
    template.hasResourceProperties('AWS::KMS::Key', {
      KeyPolicy: { Statement: Match.arrayWith([{
        Sid: 'DecryptOnlyThroughSecretsManager',
        Effect: 'Deny',
        Principal: { AWS: '*' },
        Action: ['kms:Decrypt', 'kms:ReEncryptFrom'],
        Resource: '*',
        Condition: { StringNotEquals: { 'kms:ViaService': 'secretsmanager.eu-central-1.amazonaws.com' } },
      }]) },
    });
  });

  test('no role but the restore role and the key generator may read the identity or decrypt with its key', () => {
    const { template } = generatedKeys();
    const secretId = logicalId(template, 'AWS::SecretsManager::Secret', /^BackupKeysIdentity/);
    const keyId = logicalId(template, 'AWS::KMS::Key', /^BackupKeysKey/);
    const allowed = [
      logicalId(template, 'AWS::IAM::Role', /^BackupKeysKeyGeneratorRole/),
      logicalId(template, 'AWS::IAM::Role', /^RestoreRole/),
    ].sort();

    const readers = rolesGranted(template, ['secretsmanager:GetSecretValue'], secretId);
    const decrypters = rolesGranted(template, ['kms:Decrypt', 'kms:ReEncryptFrom'], keyId);

    expect(readers).toEqual(allowed);
    expect(decrypters).toEqual(allowed);
    expect(readers).not.toContain(logicalId(template, 'AWS::IAM::Role', /^DumpRole/));
    // The key policy names no role besides the restore role (CDK's grant) and the account itself.
    const keyPolicyPrincipals = JSON.stringify(Object.values(template.findResources('AWS::KMS::Key'))[0].Properties.KeyPolicy);
    expect(keyPolicyPrincipals).not.toContain('DumpRole');
    expect(keyPolicyPrincipals).not.toContain('KeyGeneratorRole');
  });

  test('the restore role may also read the replica secret in the DR region, through the replica key alias only', () => {
    const { template } = generatedKeys();
    const restorePolicy = logicalId(template, 'AWS::IAM::Policy', /^RestoreRoleDefaultPolicy/);
    const statements = template.toJSON().Resources[restorePolicy].Properties.PolicyDocument.Statement;
    expect(JSON.stringify(statements)).toContain(':eu-west-1:');
    expect(statements).toContainEqual({
      Action: 'kms:Decrypt',
      Effect: 'Allow',
      Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':kms:eu-west-1:123456789012:key/*']] },
      Condition: {
        'ForAnyValue:StringEquals': { 'kms:ResourceAliases': 'alias/restorable-secrets' },
        'StringEquals': { 'kms:ViaService': 'secretsmanager.eu-west-1.amazonaws.com' },
      },
    });
  });

  test('the key pair comes from a custom resource on Node.js 22; the template holds no identity, only the recipient attribute', () => {
    const { stack, keys, template } = generatedKeys();
    const secretId = logicalId(template, 'AWS::SecretsManager::Secret', /^BackupKeysIdentity/);
    const keyPairId = logicalId(template, 'Custom::RestorableAgeIdentity', /^BackupKeysKeyPair/);

    template.hasResourceProperties('AWS::Lambda::Function', { Runtime: 'nodejs22.x', Handler: 'index.handler' });
    template.hasResourceProperties('Custom::RestorableAgeIdentity', { SecretId: { Ref: secretId }, Generation: '1' });
    expect(stack.resolve(keys.recipient)).toEqual({ 'Fn::GetAtt': [keyPairId, 'Recipient'] });
    const everything = JSON.stringify(template.toJSON());
    expect(everything).not.toMatch(/AGE-SECRET-KEY|age1[02-9ac-hj-np-z]{58}/);
    // The only value given at synth is CloudFormation's random placeholder, replaced at deploy time.
    template.hasResourceProperties('AWS::SecretsManager::Secret', { SecretString: Match.absent() });
  });

  test('the placeholder generator never changes, since CloudFormation would then overwrite the identity file', () => {
    const { template } = generatedKeys({ generation: 3 });
    template.hasResourceProperties('AWS::SecretsManager::Secret', {
      GenerateSecretString: { PasswordLength: 32, ExcludePunctuation: true },
    });
  });

  test('raising the generation changes the custom resource, which appends a new key', () => {
    const { template } = generatedKeys({ generation: 2 });
    template.hasResourceProperties('Custom::RestorableAgeIdentity', { Generation: '2' });
  });
});

describe('tampering alarm', () => {
  test('without an alarm topic there is no rule', () => {
    const { template } = generatedKeys();
    template.resourceCountIs('AWS::Events::Rule', 0);
  });

  test('with an alarm topic, a rule on CloudTrail reports policy changes, disabling and deletion of the keys and the secret to the topic', () => {
    // Given generated keys with an alarm topic and another key to watch
    const stack = new Stack(new App(), 'Keys', { env: ENV });
    const alarmTopic = new sns.Topic(stack, 'Alarms');
    const storeKey = new kms.Key(stack, 'StoreKey');
    new BackupKeys(stack, 'BackupKeys', {
      replicaRegion: 'eu-west-1', replicaKeyAlias: 'alias/restorable-secrets', alarmTopic, watchedKeys: [storeKey],
    });
    const template = Template.fromStack(stack);
    const identityKey = logicalId(template, 'AWS::KMS::Key', /^BackupKeysKey/);
    const secret = logicalId(template, 'AWS::SecretsManager::Secret', /^BackupKeysIdentity/);
    const storeKeyId = logicalId(template, 'AWS::KMS::Key', /^StoreKey/);

    // Then one rule matches the management calls on those resources
    template.resourceCountIs('AWS::Events::Rule', 1);
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        'source': ['aws.kms', 'aws.secretsmanager'],
        'detail-type': ['AWS API Call via CloudTrail'],
        'detail': {
          eventSource: ['kms.amazonaws.com', 'secretsmanager.amazonaws.com'],
          eventName: ['PutKeyPolicy', 'ScheduleKeyDeletion', 'DisableKey', 'PutResourcePolicy', 'DeleteResourcePolicy', 'DeleteSecret'],
          $or: [
            { resources: { ARN: [{ 'Fn::GetAtt': [identityKey, 'Arn'] }, { 'Fn::GetAtt': [storeKeyId, 'Arn'] }] } },
            { requestParameters: { secretId: [{ Ref: secret }, Match.anyValue()] } },
            { responseElements: { arn: [{ Ref: secret }] } },
          ],
        },
      },
      // and publishes to the topic a message naming the call and the principal
      Targets: [Match.objectLike({
        Arn: { Ref: logicalId(template, 'AWS::SNS::Topic', /^Alarms/) },
        InputTransformer: Match.objectLike({
          InputPathsMap: Match.objectLike({ 'detail-eventName': '$.detail.eventName', 'detail-userIdentity-arn': '$.detail.userIdentity.arn' }),
        }),
      })],
    });
  });
});

describe('bring your own key', () => {
  test('only the recipient: no secret, no key, no function, and a warning that restore tests cannot decrypt', () => {
    const stack = new Stack(new App(), 'Keys', { env: ENV });
    const keys = new BackupKeys(stack, 'BackupKeys', { recipient: OFFLINE_RECIPIENT });
    const restoreRole = new iam.Role(stack, 'RestoreRole', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
    keys.grantIdentityRead(restoreRole);

    const template = Template.fromStack(stack);
    for (const type of ['AWS::SecretsManager::Secret', 'AWS::KMS::Key', 'AWS::Lambda::Function', 'Custom::RestorableAgeIdentity', 'AWS::IAM::Policy']) {
      template.resourceCountIs(type, 0);
    }
    expect(keys.recipient).toBe(OFFLINE_RECIPIENT);
    expect(keys.identitySecret).toBeUndefined();
    Annotations.fromStack(stack).hasWarning('/Keys/BackupKeys', Match.stringLikeRegexp('restore tests cannot decrypt backups.*Pass identitySecret'));
  });

  test('with the user\'s identity secret, restore roles get to read it and nothing warns', () => {
    const stack = new Stack(new App(), 'Keys', { env: ENV });
    const identitySecret = secretsmanager.Secret.fromSecretCompleteArn(stack, 'Own',
      'arn:aws:secretsmanager:eu-central-1:123456789012:secret:team/age-identity-AbCdEf');
    const keys = new BackupKeys(stack, 'BackupKeys', { recipient: OFFLINE_RECIPIENT, identitySecret });
    keys.grantIdentityRead(new iam.Role(stack, 'RestoreRole', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') }));

    Template.fromStack(stack).hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({
        Action: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
        Resource: 'arn:aws:secretsmanager:eu-central-1:123456789012:secret:team/age-identity-AbCdEf',
      })]) },
    });
    Template.fromStack(stack).resourceCountIs('AWS::SecretsManager::Secret', 0);
    expect(Annotations.fromStack(stack).findWarning('*', Match.anyValue())).toHaveLength(0);
  });
});

describe('mistakes are caught at synth, in words that say what to fix', () => {
  const make = (props: BackupKeysProps) => () => new BackupKeys(new Stack(new App(), 'Keys', { env: ENV }), 'BackupKeys', props);

  test.each([
    [{ recipient: 'age1notarecipient' }, /recipient must be an age X25519 recipient.*'age1notarecipient'/],
    [{ replicaRegion: 'eu-west-1', replicaKeyAlias: 'alias/dr', generation: 0 }, /generation must be a positive integer.*got 0/],
    [{ replicaRegion: 'eu-west-1' }, /replicaKeyAlias is required: the alias of the KMS key in eu-west-1 that encrypts the identity's DR copy/],
    [{}, /replicaRegion is required/],
    [{ replicaRegion: 'eu-central-1' }, /replicaRegion must differ from the stack's region \(eu-central-1\)/],
    [{ replicaRegion: 'eu-west-1', replicaKeyAlias: 'restorable-secrets' }, /replicaKeyAlias must be a customer key alias such as 'alias\/restorable-secrets'/],
  ])('%j', (props, message) => {
    expect(make(props)).toThrow(message);
  });

  test('an identity passed by mistake as the recipient is not repeated in the error', () => {
    const identity = 'AGE-SECRET-KEY-1QQPQZRQXQ4EVDHYXWJZ8Q3VKC8YZ0XHKQ3SF6N5T3FPFJ3Z2Y0KSQ9QYDGX';
    expect(make({ recipient: identity })).toThrow(/got an identity \(private key!\)$/);
    expect(make({ recipient: identity })).not.toThrow(/QQPQZRQ/);
  });

  test('identitySecret without a recipient is refused', () => {
    const stack = new Stack(new App(), 'Keys', { env: ENV });
    const identitySecret = secretsmanager.Secret.fromSecretNameV2(stack, 'Own', 'team/age-identity');
    expect(() => new BackupKeys(stack, 'BackupKeys', { replicaRegion: 'eu-west-1', identitySecret }))
      .toThrow(/identitySecret is for a key you bring: pass recipient too/);
  });
});

/**
 * The logical ids of the roles whose identity policies allow any of `actions` (or a wildcard covering
 * them) on a resource that refers to `resourceId` or on `*`.
 */
function rolesGranted(template: Template, actions: string[], resourceId: string): string[] {
  const covers = (granted: string) => actions.some((action) =>
    new RegExp(`^${granted.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`).test(action));
  const roles = new Set<string>();
  const consider = (statements: Array<Record<string, unknown>>, roleIds: string[]) => {
    for (const statement of statements) {
      if (statement.Effect !== 'Allow') continue;
      const granted = ([] as string[]).concat(statement.Action as string | string[]);
      const resources = JSON.stringify(statement.Resource);
      if (granted.some(covers) && (resources.includes(resourceId) || resources === '"*"')) roleIds.forEach((id) => roles.add(id));
    }
  };
  for (const policy of Object.values(template.findResources('AWS::IAM::Policy'))) {
    const roleIds = (policy.Properties.Roles ?? []).map((role: { Ref: string }) => role.Ref);
    consider(policy.Properties.PolicyDocument.Statement, roleIds);
  }
  for (const [id, role] of Object.entries(template.findResources('AWS::IAM::Role'))) {
    for (const inline of role.Properties.Policies ?? []) consider(inline.PolicyDocument.Statement, [id]);
  }
  // Key policies grant through the principal: count the roles they name.
  for (const [id, key] of Object.entries(template.findResources('AWS::KMS::Key'))) {
    if (id !== resourceId) continue;
    for (const statement of key.Properties.KeyPolicy.Statement) {
      const granted = ([] as string[]).concat(statement.Action);
      const principal = statement.Principal?.AWS?.['Fn::GetAtt']?.[0];
      if (statement.Effect === 'Allow' && principal && granted.some(covers)) roles.add(principal);
    }
  }
  return [...roles].sort();
}

describe('a vault in another account', () => {
  const VAULT = '210987654321';
  const copiers = { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:iam::${VAULT}:role/restorable/identity-copier/*`]] };
  const vaultRoot = { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:iam::${VAULT}:root`]] };

  function vaultKeys(props: BackupKeysProps = {}) {
    const stack = new Stack(new App(), 'Primary', { env: ENV });
    const keys = new BackupKeys(stack, 'BackupKeys', { vaultAccount: VAULT, ...props });
    return { stack, keys };
  }

  test('the secret gets a name known at synth, which does not look like an ARN suffix, and its partial ARN', () => {
    const { stack, keys } = vaultKeys();
    const template = Template.fromStack(stack);

    expect(keys.vaultAccount).toBe(VAULT);
    expect(keys.identitySecretName).toMatch(/^PrimaryBackupKeys[0-9A-F]{8}-identity$/);
    expect(keys.identitySecretName).not.toMatch(/-[A-Za-z0-9]{6}$/);
    template.hasResourceProperties('AWS::SecretsManager::Secret', { Name: keys.identitySecretName });
    expect(stack.resolve(keys.identitySourceArn())).toEqual({
      'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:secretsmanager:eu-central-1:123456789012:secret:${keys.identitySecretName}`]],
    });
  });

  test('the name follows the construct path, so another BackupKeys gets another', () => {
    const stack = new Stack(new App(), 'Primary', { env: ENV });
    const one = new BackupKeys(stack, 'One', { vaultAccount: VAULT });
    const two = new BackupKeys(stack, 'Two', { vaultAccount: VAULT });
    expect(one.identitySecretName).not.toBe(two.identitySecretName);
    expect(vaultKeys().keys.identitySecretName).toBe(vaultKeys().keys.identitySecretName);
  });

  test('without a vault the secret stays unnamed, as deployed before, and identitySourceArn() says what it needs', () => {
    const { stack, keys } = generatedKeys();
    Template.fromStack(stack).hasResourceProperties('AWS::SecretsManager::Secret', { Name: Match.absent() });
    expect(keys.identitySecretName).toBeUndefined();
    expect(keys.vaultAccount).toBeUndefined();
    expect(() => keys.identitySourceArn()).toThrow(/identitySourceArn\(\) names the identity secret for a vault in another account: give BackupKeys vaultAccount/);
  });

  test('the secret\'s policy lets the vault account\'s identity copiers read it, and exempts only them from the read deny', () => {
    const { stack, keys } = vaultKeys();
    keys.grantIdentityRead(new iam.Role(stack, 'RestoreRole', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') }),
      { rolePath: '/restorable/restore-test/' });
    const template = Template.fromStack(stack);

    template.hasResourceProperties('AWS::SecretsManager::ResourcePolicy', {
      ResourcePolicy: { Statement: Match.arrayWith([
        Match.objectLike({
          Sid: 'OnlyRestoreRolesReadTheIdentity',
          Condition: {
            ArnNotEquals: { 'aws:PrincipalArn': [roleArn(logicalId(template, 'AWS::IAM::Role', /^BackupKeysKeyGeneratorRole/))] },
            ArnNotLike: { 'aws:PrincipalArn': [
              copiers,
              { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::123456789012:role/restorable/restore-test/*']] },
            ] },
          },
        }),
        {
          Sid: 'TheVaultIdentityCopierReadsTheIdentity',
          Effect: 'Allow',
          Principal: { AWS: vaultRoot },
          Action: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
          Resource: '*',
          Condition: { ArnLike: { 'aws:PrincipalArn': copiers } },
        },
      ]) },
    });
    // Writing stays the key generator's, CloudFormation's and break-glass's alone.
    const policy = Object.values(template.findResources('AWS::SecretsManager::ResourcePolicy'))[0];
    const writeDeny = policy.Properties.ResourcePolicy.Statement.find((s: { Sid?: string }) => s.Sid === 'OnlyTheGeneratorWritesTheIdentity');
    expect(JSON.stringify(writeDeny)).not.toContain(VAULT);
  });

  test('the identity key lets the vault\'s identity copiers decrypt through Secrets Manager in the primary region, and nothing else', () => {
    const { stack } = vaultKeys();
    const template = Template.fromStack(stack);

    const key = Object.values(template.findResources('AWS::KMS::Key'))[0];
    const forVault = key.Properties.KeyPolicy.Statement.filter((s: object) => JSON.stringify(s).includes(VAULT));
    expect(forVault).toEqual([{
      Sid: 'TheVaultIdentityCopierDecryptsThroughSecretsManager',
      Effect: 'Allow',
      Principal: { AWS: vaultRoot },
      Action: 'kms:Decrypt',
      Resource: '*',
      Condition: {
        ArnLike: { 'aws:PrincipalArn': copiers },
        StringEquals: { 'kms:ViaService': 'secretsmanager.eu-central-1.amazonaws.com' },
      },
    }]);
    // The deny of decryption outside Secrets Manager still holds for everyone.
    expect(key.Properties.KeyPolicy.Statement).toContainEqual(expect.objectContaining({ Sid: 'DecryptOnlyThroughSecretsManager', Effect: 'Deny' }));
  });

  test('without a replica region the secret is not replicated, and restore roles get the primary region only', () => {
    const { stack, keys } = vaultKeys();
    const restoreRole = new iam.Role(stack, 'RestoreRole', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
    keys.grantIdentityRead(restoreRole);
    const template = Template.fromStack(stack);

    template.hasResourceProperties('AWS::SecretsManager::Secret', { ReplicaRegions: Match.absent() });
    expect(JSON.stringify(template.toJSON())).not.toContain('key/*');
    expect(rolesGranted(template, ['secretsmanager:GetSecretValue'], logicalId(template, 'AWS::SecretsManager::Secret', /^BackupKeysIdentity/)))
      .toEqual([logicalId(template, 'AWS::IAM::Role', /^BackupKeysKeyGeneratorRole/), logicalId(template, 'AWS::IAM::Role', /^RestoreRole/)].sort());
  });

  test('the key generator may read the secret it replaces, found by the tags CloudFormation gives this stack\'s identity secret, and no other', () => {
    // Given BackupKeys with a vault, whose named secret replaces the one deployed before without it
    const { stack, keys } = vaultKeys();
    const restoreRole = new iam.Role(stack, 'RestoreRole', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
    keys.grantIdentityRead(restoreRole);
    const template = Template.fromStack(stack);
    const secretId = logicalId(template, 'AWS::SecretsManager::Secret', /^BackupKeysIdentity/);
    const generatorRole = logicalId(template, 'AWS::IAM::Role', /^BackupKeysKeyGeneratorRole/);

    // Then the generator's policy reads any secret of the account and region, but only this stack's identity secrets
    const replaced = {
      Effect: 'Allow',
      Action: 'secretsmanager:GetSecretValue',
      Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':secretsmanager:eu-central-1:123456789012:secret:*']] },
      Condition: {
        StringEquals: {
          'secretsmanager:ResourceTag/aws:cloudformation:stack-id': { Ref: 'AWS::StackId' },
          'secretsmanager:ResourceTag/aws:cloudformation:logical-id': secretId,
        },
      },
    };
    template.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [{ Ref: generatorRole }],
      PolicyDocument: { Statement: Match.arrayWith([replaced]) },
    });
    // And no other role gets it, nor any statement on every secret without both conditions
    const onEverySecret = Object.values(template.findResources('AWS::IAM::Policy')).flatMap((policy) =>
      policy.Properties.PolicyDocument.Statement.filter((statement: { Resource?: unknown }) => JSON.stringify(statement.Resource).endsWith(':secret:*"]]}'))
        .map((statement: unknown) => [policy.Properties.Roles, statement]));
    expect(onEverySecret).toEqual([[[{ Ref: generatorRole }], replaced]]);
  });

  test('a replica region may still be given beside the vault', () => {
    const { stack } = vaultKeys({ replicaRegion: 'eu-west-1', replicaKeyAlias: 'alias/restorable-secrets' });
    Template.fromStack(stack).hasResourceProperties('AWS::SecretsManager::Secret', {
      Name: Match.stringLikeRegexp('-identity$'),
      ReplicaRegions: [Match.objectLike({ Region: 'eu-west-1' })],
    });
  });

  test.each([
    [{ vaultAccount: '123456789012' }, /vaultAccount 123456789012 is this stack's own account: a vault is in another account/],
    [{ vaultAccount: '21098765432' }, /vaultAccount must be an AWS account id, twelve digits known at synth, such as '210987654321'; got '21098765432'/],
    [{ vaultAccount: 'vault' }, /vaultAccount must be an AWS account id.*got 'vault'/],
    [{ vaultAccount: VAULT, recipient: OFFLINE_RECIPIENT }, /vaultAccount copies an identity BackupKeys generates into the vault account, but recipient brings your own key/],
    [{ vaultAccount: VAULT, replicaKeyAlias: 'alias/restorable-secrets' }, /replicaKeyAlias is for the identity's DR copy in replicaRegion: give replicaRegion too/],
    [{ vaultAccount: VAULT, replicaRegion: 'eu-west-1' }, /replicaKeyAlias is required/],
    [{ vaultAccount: VAULT, replicaRegion: 'eu-central-1', replicaKeyAlias: 'alias/x' }, /replicaRegion must differ from the stack's region/],
  ])('refused: %j', (props, message) => {
    expect(() => new BackupKeys(new Stack(new App(), 'Primary', { env: ENV }), 'BackupKeys', props)).toThrow(message);
  });

  test('refused in a stack without an explicit account and region, since the vault names the secret by ARN at synth', () => {
    expect(() => new BackupKeys(new Stack(new App(), 'Primary'), 'BackupKeys', { vaultAccount: VAULT }))
      .toThrow(/vaultAccount needs a stack with an explicit env \(account and region\)/);
  });
});
