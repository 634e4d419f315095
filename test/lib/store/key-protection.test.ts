import { RemovalPolicy } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { ACCOUNT, REPLICA_REGION, TemplateResource, breakGlassProps, onlyResource, primaryWithReplica } from '../store-fixtures';

const DESTRUCTIVE = ['kms:ScheduleKeyDeletion', 'kms:DisableKey', 'kms:UpdateAlias', 'kms:DeleteAlias'];
const defaultBreakGlass = { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:iam::${ACCOUNT}:role/restorable-break-glass`]] };

/** The key policy statement that keeps the key from being destroyed, if any. */
function destroyDeny(key: TemplateResource): Record<string, unknown> | undefined {
  return (key.Properties.KeyPolicy.Statement as Array<Record<string, unknown>>).find((statement) => statement.Sid === 'OnlyBreakGlassDestroysTheKey');
}

describe('keys that one principal cannot destroy', () => {
  test('given defaults, when synthesized, then the store key denies deletion, disabling and re-aliasing to all but the default break-glass role', () => {
    const { primary } = primaryWithReplica();
    const key = onlyResource(Template.fromStack(primary), 'AWS::KMS::Key', 'StoreKey');
    expect(destroyDeny(key)).toEqual({
      Sid: 'OnlyBreakGlassDestroysTheKey',
      Effect: 'Deny',
      Principal: { AWS: '*' },
      Action: DESTRUCTIVE,
      Resource: '*',
      Condition: { ArnNotLike: { 'aws:PrincipalArn': [defaultBreakGlass] } },
    });
  });

  test('given a break-glass role, when synthesized, then the store key and both replica keys exempt that role', () => {
    const arn = `arn:aws:iam::${ACCOUNT}:role/ops/break-glass`;
    const { primary, replicaStack } = primaryWithReplica(breakGlassProps(arn), breakGlassProps(arn));

    const keys = [
      onlyResource(Template.fromStack(primary), 'AWS::KMS::Key', 'StoreKey'),
      onlyResource(Template.fromStack(replicaStack), 'AWS::KMS::Key', 'ReplicaStoreKey'),
      onlyResource(Template.fromStack(replicaStack), 'AWS::KMS::Key', 'ReplicaStoreIdentityKey'),
    ];
    for (const key of keys) expect(destroyDeny(key)?.Condition).toEqual({ ArnNotLike: { 'aws:PrincipalArn': [arn] } });
  });

  test('given a removal policy other than RETAIN, when synthesized, then CloudFormation may delete the key too', () => {
    const { primary } = primaryWithReplica({ removalPolicy: RemovalPolicy.DESTROY });
    const key = onlyResource(Template.fromStack(primary), 'AWS::KMS::Key', 'StoreKey');
    expect(destroyDeny(key)?.Condition).toEqual({
      ArnNotLike: {
        'aws:PrincipalArn': [
          defaultBreakGlass,
          { 'Fn::Sub': 'arn:${AWS::Partition}:iam::123456789012:role/cdk-hnb659fds-cfn-exec-role-123456789012-eu-west-1' },
        ],
      },
    });
  });
});

describe('the replica key of the identity secret', () => {
  const { replicaStack, replica } = primaryWithReplica();
  const template = Template.fromStack(replicaStack);

  test('given a replica store, when synthesized, then it holds a rotating, retained key of its own for the identity, under its own alias', () => {
    const key = onlyResource(template, 'AWS::KMS::Key', 'ReplicaStoreIdentityKey');
    expect(key).toMatchObject({ DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain', Properties: { EnableKeyRotation: true } });
    template.hasResourceProperties('AWS::KMS::Alias', {
      AliasName: replica.identityKeyAliasName,
      TargetKeyId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^ReplicaStoreIdentityKey'), 'Arn'] },
    });
    expect(replica.identityKeyAliasName).toMatch(/^alias\/[A-Za-z0-9/_-]+-identity$/);
    expect(replica.identityKeyAliasName).not.toEqual(replica.keyAliasName);
  });

  test('given a replica store, when synthesized, then its identity key decrypts only through Secrets Manager and only break-glass destroys it', () => {
    const key = onlyResource(template, 'AWS::KMS::Key', 'ReplicaStoreIdentityKey');
    expect(key.Properties.KeyPolicy.Statement).toContainEqual({
      Sid: 'DecryptOnlyThroughSecretsManager',
      Effect: 'Deny',
      Principal: { AWS: '*' },
      Action: ['kms:Decrypt', 'kms:ReEncryptFrom'],
      Resource: '*',
      Condition: { StringNotEquals: { 'kms:ViaService': `secretsmanager.${REPLICA_REGION}.amazonaws.com` } },
    });
    expect(destroyDeny(key)?.Condition).toEqual({ ArnNotLike: { 'aws:PrincipalArn': [defaultBreakGlass] } });
    expect(destroyDeny(onlyResource(template, 'AWS::KMS::Key', 'ReplicaStoreKey'))?.Action).toEqual(DESTRUCTIVE);
  });
});
