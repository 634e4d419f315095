import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Tier } from '../../../lib/contract/tiers';
import { ReplicaStore } from '../../../lib/store/replica-store';
import { ACCOUNT, REPLICA_REGION, primaryWithReplica, statementsAllowing, resourcesOf } from '../store-fixtures';

describe('ReplicaStore', () => {
  const fixture = primaryWithReplica();
  const template = Template.fromStack(fixture.replicaStack);

  test('given a replica stack, when synthesized, then it holds its own rotating KMS key with the alias the primary names', () => {
    template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
    template.hasResourceProperties('AWS::KMS::Alias', {
      AliasName: fixture.replica.keyAliasName,
      TargetKeyId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^ReplicaStoreKey'), 'Arn'] },
    });
    expect(fixture.replica.keyAliasName).toMatch(/^alias\/[A-Za-z0-9/_-]+$/);
    expect(fixture.replica.keyAliasArn).toContain(`:kms:${REPLICA_REGION}:${ACCOUNT}:alias/`);
  });

  test('given a replica referenced by the primary, when synthesized, then its bucket has a generated name known at synth', () => {
    const name = Stack.of(fixture.primary).resolve(fixture.replica.bucket.bucketName);
    template.hasResourceProperties('AWS::S3::Bucket', { BucketName: name, ObjectLockEnabled: true });
  });

  test('given defaults, when synthesized, then the replica is versioned, encrypted with its own key, locked, private and logged', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      VersioningConfiguration: { Status: 'Enabled' },
      BucketEncryption: { ServerSideEncryptionConfiguration: [{ BucketKeyEnabled: true,
        ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: { 'Fn::GetAtt': [Match.stringLikeRegexp('^ReplicaStoreKey'), 'Arn'] } } }] },
      ObjectLockConfiguration: { Rule: { DefaultRetention: { Mode: 'GOVERNANCE', Days: 7 } } },
      PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
      OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
      LoggingConfiguration: { DestinationBucketName: { Ref: Match.stringLikeRegexp('^ReplicaStoreAccessLogs') } },
    });
    for (const resource of Object.values(template.findResources('AWS::S3::Bucket'))) expect(resource.DeletionPolicy).toBe('Retain');
    for (const resource of Object.values(template.findResources('AWS::KMS::Key'))) expect(resource.DeletionPolicy).toBe('Retain');
  });

  test('given its own keep-counts, when synthesized, then the replica has its own tier lifecycle', () => {
    const { replicaStack, replica } = primaryWithReplica({}, { keep: { hourly: 24, daily: 14, weekly: 8, monthly: 36 } });
    Template.fromStack(replicaStack).hasResourceProperties('AWS::S3::Bucket', {
      LifecycleConfiguration: { Rules: Match.arrayWith([
        Match.objectLike({ Id: 'tier-daily', ExpirationInDays: 14, TagFilters: [{ Key: 'backup-tier', Value: 'daily' }] }),
        Match.objectLike({ Id: 'tier-monthly', ExpirationInDays: 1116, Transitions: [{ StorageClass: 'GLACIER', TransitionInDays: 30 }] }),
        Match.objectLike({ Id: 'housekeeping', AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 }, ExpiredObjectDeleteMarker: true }),
      ]) },
    });
    expect(replica.effectiveRetention(Tier.MONTHLY).toDays()).toBe(1123);
  });

  test('given defaults, when synthesized, then the replica denies non-TLS requests and retagging tiered objects', () => {
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: Match.stringLikeRegexp('^ReplicaStoreBucket') },
      PolicyDocument: { Statement: Match.arrayWith([
        Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        Match.objectLike({ Effect: 'Deny', Sid: 'DenyRetaggingBackups', Condition: { Null: { 's3:ExistingObjectTag/backup-tier': 'false' } } }),
      ]) },
    });
  });

  test('given a DR restore role, when granting restore read on the replica, then it reads that source in the replica bucket', () => {
    const { replicaStack, replica } = primaryWithReplica();
    const role = new iam.Role(replicaStack, 'DrRestore', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
    replica.grantRestoreRead(role, 'orders-db');
    const [get] = statementsAllowing(Template.fromStack(replicaStack), 's3:GetObjectVersion');
    expect(resourcesOf(get)).toEqual([expect.stringMatching(/^<ReplicaStoreBucket\w+\.Arn>\/orders-db\/\*$/)]);
  });

  test('given compliance mode on the replica, when synthesized, then the replica locks in compliance mode', () => {
    const { replicaStack } = primaryWithReplica({}, { objectLockDefaultRetention: s3.ObjectLockRetention.compliance(Duration.days(14)) });
    Template.fromStack(replicaStack).hasResourceProperties('AWS::S3::Bucket', {
      ObjectLockConfiguration: { Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: 14 } } },
    });
  });

  test('given two replica stores in one app, when synthesized, then their key aliases differ', () => {
    const app = new App();
    const a = new ReplicaStore(new Stack(app, 'A', { env: { account: ACCOUNT, region: REPLICA_REGION } }), 'ReplicaStore');
    const b = new ReplicaStore(new Stack(app, 'B', { env: { account: ACCOUNT, region: REPLICA_REGION } }), 'ReplicaStore');
    expect(a.keyAliasName).not.toBe(b.keyAliasName);
  });
});
