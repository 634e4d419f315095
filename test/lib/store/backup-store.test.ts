import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import { AwsSolutionsChecks } from 'cdk-nag';
import { Tier } from '../../../lib/contract/tiers';
import { primaryWithReplica, onlyResource, resourcesOf, standaloneStore, statementsAllowing, PRIMARY_REGION, REPLICA_REGION, ACCOUNT } from '../store-fixtures';

const bucketProps = (template: Template) => onlyResource(template, 'AWS::S3::Bucket', 'StoreBucket').Properties;
const lifecycleRules = (template: Template) => bucketProps(template).LifecycleConfiguration.Rules as Array<Record<string, unknown>>;
const ruleFor = (template: Template, id: string) => lifecycleRules(template).find((r) => r.Id === id)!;

describe('BackupStore bucket', () => {
  const { primary } = primaryWithReplica();
  const template = Template.fromStack(primary);

  test('given defaults, when synthesized, then the bucket is versioned, KMS-encrypted with bucket keys, private and owner-enforced', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      VersioningConfiguration: { Status: 'Enabled' },
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{
          BucketKeyEnabled: true,
          ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: { 'Fn::GetAtt': [Match.stringLikeRegexp('^StoreKey'), 'Arn'] } },
        }],
      },
      PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
      OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
    });
  });

  test('given defaults, when synthesized, then the customer-managed key rotates', () => {
    template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
  });

  test('given defaults, when synthesized, then server access logs go to a private log bucket that the logging service may write', () => {
    expect(bucketProps(template).LoggingConfiguration).toEqual({
      DestinationBucketName: { Ref: expect.stringMatching(/^StoreAccessLogs/) },
      LogFilePrefix: 'backup-bucket/',
    });
    const logs = onlyResource(template, 'AWS::S3::Bucket', 'StoreAccessLogs').Properties;
    expect(logs.PublicAccessBlockConfiguration).toMatchObject({ BlockPublicAcls: true, RestrictPublicBuckets: true });
    // Versioned: a deleted log can be restored for as long as a deleted backup (noncurrent versions, 7 days).
    expect(logs.VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect(logs.LifecycleConfiguration.Rules).toEqual([
      { Id: 'expire-logs', Status: 'Enabled', ExpirationInDays: 365, NoncurrentVersionExpiration: { NoncurrentDays: 7 } },
      { Id: 'housekeeping', Status: 'Enabled', ExpiredObjectDeleteMarker: true },
    ]);
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({
        Principal: { Service: 'logging.s3.amazonaws.com' },
        Action: 's3:PutObject',
        Condition: { StringEquals: { 'aws:SourceAccount': ACCOUNT } },
      })]) },
    });
  });

  test('given defaults, when synthesized, then the bucket, its log bucket and the key are retained', () => {
    for (const type of ['AWS::S3::Bucket', 'AWS::KMS::Key']) {
      const resources = Object.values(template.findResources(type));
      expect(resources.length).toBeGreaterThan(0);
      for (const resource of resources) expect(resource).toMatchObject({ DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
    }
  });

  test('given removalPolicy DESTROY, when synthesized, then the buckets and key are deleted with the stack', () => {
    const { stack } = standaloneStore({ removalPolicy: RemovalPolicy.DESTROY });
    const template = Template.fromStack(stack);
    const policies = ['AWS::S3::Bucket', 'AWS::KMS::Key'].flatMap((type) => Object.values(template.findResources(type)).map((r) => r.DeletionPolicy));
    expect(policies).toEqual(['Delete', 'Delete', 'Delete']);
  });

  test('given defaults, when synthesized, then the policy denies any request without TLS', () => {
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: Match.stringLikeRegexp('^StoreBucket') },
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({
        Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } },
      })]) },
    });
  });

  test('given defaults, when synthesized, then the policy denies retagging objects that already carry backup-tier', () => {
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: Match.stringLikeRegexp('^StoreBucket') },
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({
        Effect: 'Deny',
        Principal: { AWS: '*' },
        Action: ['s3:PutObjectTagging', 's3:PutObjectVersionTagging', 's3:DeleteObjectTagging', 's3:DeleteObjectVersionTagging'],
        Condition: { Null: { 's3:ExistingObjectTag/backup-tier': 'false' } },
      })]) },
    });
  });
});

describe('BackupStore Object Lock', () => {
  test('given defaults, when synthesized, then every new version is locked in governance mode for 7 days', () => {
    const { stack } = standaloneStore();
    Template.fromStack(stack).hasResourceProperties('AWS::S3::Bucket', {
      ObjectLockEnabled: true,
      ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: { Mode: 'GOVERNANCE', Days: 7 } } },
    });
  });

  test('given compliance mode for 30 days, when synthesized, then the default retention is compliance, 30 days', () => {
    const { stack } = standaloneStore({ objectLockDefaultRetention: s3.ObjectLockRetention.compliance(Duration.days(30)) });
    Template.fromStack(stack).hasResourceProperties('AWS::S3::Bucket', {
      ObjectLockConfiguration: { Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: 30 } } },
    });
  });

  test('given objectLockEnabled false, when synthesized, then the bucket has no Object Lock and no lock in its retention', () => {
    const { stack, store } = standaloneStore({ objectLockEnabled: false });
    const props = bucketProps(Template.fromStack(stack));
    expect(props.ObjectLockEnabled).toBeFalsy();
    expect(props.ObjectLockConfiguration).toBeUndefined();
    expect(store.retention.map((r) => r.lockDays)).toEqual([0, 0, 0, 0]);
    expect([store.objectLockEnabled, store.objectLockDefaultRetention]).toEqual([false, undefined]);
  });
});

describe('BackupStore lifecycle', () => {
  test('given default keep-counts 24/7/4/12, when synthesized, then one tag-filtered rule per tier expires at 1/7/28/372 days', () => {
    const { stack } = standaloneStore();
    const template = Template.fromStack(stack);
    const expected = { hourly: 1, daily: 7, weekly: 28, monthly: 372 };
    for (const [tier, days] of Object.entries(expected)) {
      expect(ruleFor(template, `tier-${tier}`)).toMatchObject({
        Status: 'Enabled',
        TagFilters: [{ Key: 'backup-tier', Value: tier }],
        ExpirationInDays: days,
        NoncurrentVersionExpiration: { NoncurrentDays: 7 },
      });
    }
  });

  test('given custom keep-counts, when synthesized, then the expiry ages follow them', () => {
    const { stack } = standaloneStore({ keep: { hourly: 48, daily: 14, weekly: 8, monthly: 24 } });
    const template = Template.fromStack(stack);
    expect(['hourly', 'daily', 'weekly', 'monthly'].map((t) => ruleFor(template, `tier-${t}`).ExpirationInDays)).toEqual([2, 14, 56, 744]);
  });

  test('given defaults, when synthesized, then monthly backups move to Glacier after 30 days and no other tier transitions', () => {
    const { stack } = standaloneStore();
    const template = Template.fromStack(stack);
    expect(ruleFor(template, 'tier-monthly').Transitions).toEqual([{ StorageClass: 'GLACIER', TransitionInDays: 30 }]);
    for (const tier of ['hourly', 'daily', 'weekly']) expect(ruleFor(template, `tier-${tier}`).Transitions).toBeUndefined();
  });

  test('given a Deep Archive transition, when synthesized, then the monthly rule uses DEEP_ARCHIVE at the chosen age', () => {
    const { stack } = standaloneStore({ transitions: [{ tier: Tier.MONTHLY, storageClass: s3.StorageClass.DEEP_ARCHIVE, transitionAfter: Duration.days(60) }] });
    expect(ruleFor(Template.fromStack(stack), 'tier-monthly').Transitions).toEqual([{ StorageClass: 'DEEP_ARCHIVE', TransitionInDays: 60 }]);
  });

  test('given a custom noncurrent expiry, when synthesized, then every tier rule and the housekeeping rule use it', () => {
    const { stack } = standaloneStore({ noncurrentVersionExpiration: Duration.days(3) });
    const noncurrent = lifecycleRules(Template.fromStack(stack)).map((r) => r.NoncurrentVersionExpiration);
    expect(noncurrent).toEqual(Array(5).fill({ NoncurrentDays: 3 }));
  });

  test('given defaults, when synthesized, then one untagged rule aborts multipart uploads after a day and removes expired delete markers', () => {
    const { stack } = standaloneStore();
    const template = Template.fromStack(stack);
    expect(ruleFor(template, 'housekeeping')).toEqual({
      Id: 'housekeeping', Status: 'Enabled',
      AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
      ExpiredObjectDeleteMarker: true,
      NoncurrentVersionExpiration: { NoncurrentDays: 7 },
    });
    // S3 rejects these two in tag-filtered rules at deploy time.
    for (const rule of lifecycleRules(template).filter((r) => r.TagFilters)) {
      expect(rule.AbortIncompleteMultipartUpload).toBeUndefined();
      expect(rule.ExpiredObjectDeleteMarker).toBeUndefined();
    }
  });
});

describe('BackupStore effective retention', () => {
  test('given defaults, when constructed, then each tier lives max(expiry + noncurrent, lock): 8/14/35/379 days', () => {
    const { store } = standaloneStore();
    expect(store.retention.map((r) => [r.tier, r.expirationDays, r.noncurrentDays, r.lockDays, r.effectiveDays])).toEqual([
      ['hourly', 1, 7, 7, 8], ['daily', 7, 7, 7, 14], ['weekly', 28, 7, 7, 35], ['monthly', 372, 7, 7, 379],
    ]);
    expect(store.effectiveRetention(Tier.MONTHLY).toDays()).toBe(379);
  });

  test('given a 30-day compliance lock, when constructed, then the lock outlasts the short tiers', () => {
    const { store } = standaloneStore({ objectLockDefaultRetention: s3.ObjectLockRetention.compliance(Duration.days(30)) });
    expect(store.retention.map((r) => r.effectiveDays)).toEqual([30, 30, 35, 379]);
  });

  test('given a transition that fits only the effective retention, when synthesized, then the cost check accepts it', () => {
    // Nominal: 4 monthly backups expire at 124 days, 84 days in Glacier (< 90). Effective: 131 days, 91 in Glacier.
    const { store } = standaloneStore({ keep: { hourly: 24, daily: 7, weekly: 4, monthly: 4 },
      transitions: [{ tier: Tier.MONTHLY, storageClass: s3.StorageClass.GLACIER, transitionAfter: Duration.days(40) }] });
    expect(store.effectiveRetention(Tier.MONTHLY).toDays()).toBe(131);
  });
});

describe('BackupStore grants', () => {
  const { primary, store } = primaryWithReplica();
  const writer = new iam.Role(primary, 'DumpRole', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
  const restorer = new iam.Role(primary, 'RestoreRole', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
  const monitor = new iam.Role(primary, 'MonitorRole', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
  store.grantBackupWrite(writer, 'orders-db');
  store.grantRestoreRead(restorer, 'orders-db');
  store.grantMonitorRead(monitor);
  const template = Template.fromStack(primary);
  const policyOf = (rolePrefix: string) => Object.values(template.findResources('AWS::IAM::Policy'))
    .find((p) => JSON.stringify(p.Properties.Roles).includes(rolePrefix))!.Properties.PolicyDocument.Statement as Array<Record<string, unknown>>;
  const actionsOn = (statements: Array<Record<string, unknown>>) => statements.flatMap((s) => ([] as unknown[]).concat(s.Action).map((a) => `${a} ${resourcesOf(s).join(',')}`));

  const allows = (statement: Record<string, unknown>) => statement.Effect === 'Allow';
  const statementFor = (rolePrefix: string, action: string, effect = 'Allow') => policyOf(rolePrefix)
    .filter((s) => s.Effect === effect && ([] as unknown[]).concat(s.Action).includes(action));

  test('given grantBackupWrite, when synthesized, then the dump role creates tagged objects, reads and aborts uploads only under its source prefix', () => {
    const actions = actionsOn(policyOf('DumpRole').filter(allows));
    for (const action of ['s3:PutObject', 's3:PutObjectTagging', 's3:GetObject', 's3:AbortMultipartUpload', 's3:PutObjectLegalHold', 's3:GetObjectLegalHold']) {
      expect(actions.filter((a) => a.startsWith(`${action} `))).toEqual([expect.stringMatching(/^\S+ <StoreBucket\w+\.Arn>\/orders-db\/\*$/)]);
    }
  });

  test('given grantBackupWrite, when synthesized, then the dump role can never delete, retag other prefixes or change retention', () => {
    const actions = actionsOn(policyOf('DumpRole').filter(allows));
    expect(actions.filter((a) => /Delete|Retention|Bypass|\*\s/.test(a.split(' ')[0]))).toEqual([]);
    expect(actions.filter((a) => a.startsWith('s3:PutObjectTagging ') && !a.endsWith('/orders-db/*'))).toEqual([]);
  });

  test('given grantBackupWrite, when synthesized, then the dump role may place a legal hold but not release one', () => {
    const [hold] = statementFor('DumpRole', 's3:PutObjectLegalHold');
    expect(hold.Condition).toEqual({ StringEquals: { 's3:object-lock-legal-hold': 'ON' } });
    expect(([] as unknown[]).concat(hold.Action)).toEqual(['s3:PutObjectLegalHold']);
  });

  test('given grantBackupWrite, when synthesized, then the dump role lists only its own source\'s prefix', () => {
    const [list] = statementFor('DumpRole', 's3:ListBucket');
    expect(actionsOn([list])).toEqual([expect.stringMatching(/^s3:ListBucket <StoreBucket\w+\.Arn>$/)]);
    expect(list.Condition).toEqual({ StringLike: { 's3:prefix': ['orders-db/*'] } });
    expect(actionsOn(policyOf('DumpRole')).filter((a) => a.startsWith('s3:List'))).toHaveLength(1);
  });

  test('given grantBackupWrite, when synthesized, then the dump role\'s own policy denies it restore-tests/, RUNBOOK.md, wal/ and binlog/', () => {
    const denies = policyOf('DumpRole').filter((s) => s.Effect === 'Deny');
    expect(denies).toHaveLength(1);
    expect(denies[0].Action).toBe('s3:PutObject*');
    expect(resourcesOf(denies[0])).toEqual([
      expect.stringMatching(/^<StoreBucket\w+\.Arn>\/orders-db\/restore-tests\/\*$/),
      expect.stringMatching(/^<StoreBucket\w+\.Arn>\/orders-db\/RUNBOOK\.md$/),
      expect.stringMatching(/^<StoreBucket\w+\.Arn>\/orders-db\/wal\/\*$/),
      expect.stringMatching(/^<StoreBucket\w+\.Arn>\/orders-db\/binlog\/\*$/),
    ]);
  });

  test('given grantBackupWrite, when synthesized, then the dump role may encrypt with the store key through S3 only', () => {
    const kms = policyOf('DumpRole').find((s) => ([] as unknown[]).concat(s.Action).includes('kms:GenerateDataKey'))!;
    expect(kms.Action).toEqual(expect.arrayContaining(['kms:GenerateDataKey', 'kms:Encrypt', 'kms:Decrypt']));
    expect(kms.Condition).toEqual({ StringEquals: { 'kms:ViaService': `s3.${PRIMARY_REGION}.amazonaws.com` } });
    expect(resourcesOf(kms)).toEqual([expect.stringMatching(/^<StoreKey\w+\.Arn>$/)]);
  });

  test('given a bucket without Object Lock, when granting backup write, then no legal-hold permission is given', () => {
    const { stack, store: unlocked } = standaloneStore({ objectLockEnabled: false });
    const role = new iam.Role(stack, 'Writer', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
    unlocked.grantBackupWrite(role, 'orders-db');
    expect(statementsAllowing(Template.fromStack(stack), 's3:PutObjectLegalHold')).toEqual([]);
  });

  test('given grantRestoreRead, when synthesized, then the restore role lists, reads versions and restores archives of its source only', () => {
    const statements = policyOf('RestoreRole');
    const list = statements.find((s) => ([] as unknown[]).concat(s.Action).includes('s3:ListBucket'))!;
    expect(list.Condition).toEqual({ StringLike: { 's3:prefix': ['orders-db/*'] } });
    const actions = actionsOn(statements);
    for (const action of ['s3:GetObject', 's3:GetObjectVersion', 's3:RestoreObject']) {
      expect(actions.filter((a) => a.startsWith(`${action} `))).toEqual([expect.stringMatching(/\.Arn>\/orders-db\/\*$/)]);
    }
  });

  test('given grantRestoreRead, when synthesized, then the restore role writes only under restore-tests/, and never tags', () => {
    const writes = actionsOn(policyOf('RestoreRole')).filter((a) => /^s3:(Put|Abort)/.test(a));
    expect(writes.map((w) => w.split(' ')[0])).toEqual(['s3:PutObject', 's3:AbortMultipartUpload']);
    for (const write of writes) expect(write).toMatch(/\.Arn>\/orders-db\/restore-tests\/\*$/);
  });

  test('given grantMonitorRead, when synthesized, then the monitor reads and lists the bucket and writes nothing', () => {
    const actions = actionsOn(policyOf('MonitorRole'));
    expect(actions).toEqual(expect.arrayContaining([
      expect.stringMatching(/^s3:GetObject <StoreBucket\w+\.Arn>\/\*$/),
      expect.stringMatching(/^s3:ListBucket <StoreBucket\w+\.Arn>$/),
      expect.stringMatching(/^kms:Decrypt <StoreKey\w+\.Arn>$/),
    ]));
    expect(actions.filter((a) => /Put|Delete|Encrypt|GenerateDataKey/.test(a))).toEqual([]);
  });

  test('given a key prefix, when granting, then the grants follow {prefix}{source}/', () => {
    const { stack, store: prefixed } = standaloneStore({ prefix: 'backups' });
    const role = new iam.Role(stack, 'Writer', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
    prefixed.grantBackupWrite(role, 'orders-db');
    const [put] = statementsAllowing(Template.fromStack(stack), 's3:PutObject');
    expect(resourcesOf(put)).toEqual([expect.stringMatching(/\.Arn>\/backups\/orders-db\/\*$/)]);
    expect(prefixed.prefix).toBe('backups/');
  });
});

describe('BackupStore replication', () => {
  const fixture = primaryWithReplica();
  const template = Template.fromStack(fixture.primary);
  const replicationRule = () => bucketProps(template).ReplicationConfiguration.Rules[0];
  const replicaBucketName = () => Stack.of(fixture.primary).resolve(fixture.replica.bucket.bucketName) as string;

  test('given a replica, when synthesized, then every object replicates to the replica bucket, encrypted with its key alias', () => {
    const rule = replicationRule();
    expect(rule).toMatchObject({ Status: 'Enabled', Filter: { Prefix: '' }, SourceSelectionCriteria: { SseKmsEncryptedObjects: { Status: 'Enabled' } } });
    expect(resourcesOf({ Resource: rule.Destination.Bucket })).toEqual([`arn:<AWS::Partition>:s3:::${replicaBucketName()}`]);
    expect(resourcesOf({ Resource: rule.Destination.EncryptionConfiguration.ReplicaKmsKeyID }))
      .toEqual([`arn:<AWS::Partition>:kms:${REPLICA_REGION}:${ACCOUNT}:${fixture.replica.keyAliasName}`]);
    expect(replicaBucketName()).toMatch(/^[a-z0-9-]{3,63}$/);
  });

  test('given a replica, when synthesized, then delete markers are not replicated and the role cannot replicate deletes', () => {
    expect(replicationRule().DeleteMarkerReplication).toEqual({ Status: 'Disabled' });
    expect(statementsAllowing(template, 's3:ReplicateDelete')).toEqual([]);
  });

  test('given defaults, when synthesized, then Replication Time Control and its metrics are on with a 15-minute threshold', () => {
    expect(replicationRule().Destination).toMatchObject({
      ReplicationTime: { Status: 'Enabled', Time: { Minutes: 15 } },
      Metrics: { Status: 'Enabled', EventThreshold: { Minutes: 15 } },
    });
  });

  test('given replicationTimeControl false, when synthesized, then RTC is off but metrics stay on for the alarm', () => {
    const { primary } = primaryWithReplica({ replicationTimeControl: false });
    const destination = (bucketProps(Template.fromStack(primary)).ReplicationConfiguration.Rules[0]).Destination;
    expect(destination.ReplicationTime).toBeUndefined();
    expect(destination.Metrics).toEqual({ Status: 'Enabled' });
  });

  test('given a replica, when synthesized, then the replication role can read Object Lock retention and legal holds', () => {
    const [reads] = statementsAllowing(template, 's3:GetObjectRetention');
    expect(reads.Action).toEqual(expect.arrayContaining(['s3:GetObjectRetention', 's3:GetObjectLegalHold', 's3:GetObjectVersionForReplication', 's3:GetObjectVersionTagging']));
    expect(resourcesOf(reads)).toEqual([expect.stringMatching(/^<StoreBucket\w+\.Arn>\/\*$/)]);
    template.hasResourceProperties('AWS::IAM::Role', { AssumeRolePolicyDocument: { Statement: [Match.objectLike({ Principal: { Service: 's3.amazonaws.com' } })] } });
  });

  test('given a replica, when synthesized, then the role writes replicas and tags and encrypts only with the replica key alias', () => {
    const [writes] = statementsAllowing(template, 's3:ReplicateObject');
    expect(writes.Action).toEqual(['s3:ReplicateObject', 's3:ReplicateTags']);
    expect(resourcesOf(writes)).toEqual([`arn:<AWS::Partition>:s3:::${replicaBucketName()}/*`]);
    const [encrypt] = statementsAllowing(template, 'kms:Encrypt');
    expect(encrypt.Condition).toEqual({
      'StringEquals': { 'kms:ViaService': `s3.${REPLICA_REGION}.amazonaws.com` },
      'ForAnyValue:StringEquals': { 'kms:ResourceAliases': [fixture.replica.keyAliasName] },
    });
  });

  test('given a replica, when synthesized, then the stacks refer to each other by names only: no exports, no imports, no cycle', () => {
    const replicaTemplate = Template.fromStack(fixture.replicaStack).toJSON();
    expect(replicaTemplate.Outputs).toBeUndefined();
    expect(JSON.stringify(template.toJSON())).not.toContain('Fn::ImportValue');
    expect(fixture.primary.dependencies).toEqual([fixture.replicaStack]);
    expect(fixture.replicaStack.dependencies).toEqual([]);
  });

  test('given a replica, when synthesized, then an alarm fires on any failed replication, missing data not breaching', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/S3',
      MetricName: 'OperationsFailedReplication',
      Dimensions: Match.arrayWith([{ Name: 'DestinationBucket', Value: replicaBucketName() }, { Name: 'RuleId', Value: 'replicate-to-replica' }]),
      Statistic: 'Sum',
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
      TreatMissingData: 'notBreaching',
    });
    expect(fixture.store.replicationFailedAlarm).toBeDefined();
  });

  test('given an alarm topic, when synthesized, then the failed-replication alarm notifies it', () => {
    const { primary } = primaryWithReplica((stack) => ({ alarmTopic: new sns.Topic(stack, 'Alerts', { enforceSSL: true }) }));
    Template.fromStack(primary).hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'OperationsFailedReplication',
      AlarmActions: [{ Ref: Match.stringLikeRegexp('^Alerts') }],
    });
  });

  test('given no replica, when synthesized, then there is no replication configuration, role or alarm', () => {
    const { stack, store } = standaloneStore();
    const template = Template.fromStack(stack);
    expect(bucketProps(template).ReplicationConfiguration).toBeUndefined();
    template.resourceCountIs('AWS::IAM::Role', 0);
    template.resourceCountIs('AWS::CloudWatch::Alarm', 0);
    expect(store.replicationFailedAlarm).toBeUndefined();
  });
});

describe('BackupStore and cdk-nag', () => {
  test('given roles holding each grant, when cdk-nag AwsSolutions checks the app, then the prefix-scoped wildcards are acknowledged', () => {
    const { app, primary, store } = primaryWithReplica();
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    const role = (id: string) => new iam.Role(primary, id, { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
    store.grantBackupWrite(role('Dump'), 'orders-db');
    store.grantRestoreRead(role('Restore'), 'orders-db');
    store.grantMonitorRead(role('Monitor'));
    expect(() => app.synth()).not.toThrow();
  });

  test('control: a wildcard grant the store did not make is still reported', () => {
    const { app, primary, store } = primaryWithReplica();
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    store.bucket.grantRead(new iam.Role(primary, 'Broad', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') }));
    expect(() => app.synth()).toThrow(/AwsSolutions-IAM5\[Action::s3:GetObject\*\]/);
  });
});
