/**
 * A ReplicaStore in another account than its primary (a vault), as synthesized: the key and bucket policies that admit
 * the primary account only to replicate, by its replication role's path; the write-once policy whose governance bypass
 * is the retention keeper's; the keeper itself; a lifecycle that keeps overwritten versions for their tier's effective
 * retention; the synth warning and the synth errors in words; and cdk-nag over a two-account app. What the policies do
 * to each principal is for the policy simulator; here, that each statement is there as designed.
 */
import { App, Duration, Stack, Validations } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import { AwsSolutionsChecks } from 'cdk-nag';
import { Tier } from '../../../lib/contract/tiers';
import { BackupStore, BackupStoreProps } from '../../../lib/store/backup-store';
import { COMPLIANCE_RETENTION_WARNING, ReplicaStore, ReplicaStoreProps } from '../../../lib/store/replica-store';
import { ACCOUNT, PRIMARY_REGION, REPLICA_REGION, onlyResource, resourcesOf } from '../store-fixtures';

const VAULT_ACCOUNT = '210987654321';
const REPLICATION_PATTERN = `arn:<AWS::Partition>:iam::${ACCOUNT}:role/restorable/replication/*`;

type Statement = Record<string, unknown> & { Condition?: Record<string, Record<string, unknown>> };

interface VaultFixture {
  readonly app: App;
  readonly primary: Stack;
  readonly vaultStack: Stack;
  readonly store: BackupStore;
  readonly vault: ReplicaStore;
}

/** A primary store in one account replicating to a vault in another, each stack in its own region. */
function primaryWithVault(vaultProps: Partial<ReplicaStoreProps> | ((stack: Stack) => Partial<ReplicaStoreProps>) = {},
  storeProps: Omit<BackupStoreProps, 'replica'> = {}, app = new App()): VaultFixture {
  const vaultStack = new Stack(app, 'Vault', { env: { account: VAULT_ACCOUNT, region: REPLICA_REGION } });
  const extra = typeof vaultProps === 'function' ? vaultProps(vaultStack) : vaultProps;
  const vault = new ReplicaStore(vaultStack, 'Vault', { primaryAccount: ACCOUNT, ...extra });
  const primary = new Stack(app, 'Primary', { env: { account: ACCOUNT, region: PRIMARY_REGION } });
  const store = new BackupStore(primary, 'Store', { ...storeProps, replica: vault });
  return { app, primary, vaultStack, store, vault };
}

/** Tokens spelled as readable strings, as cdk-nag prints them: `<AWS::Partition>`, `<Logical.Arn>`. */
function readable(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(readable);
  if (typeof value === 'object' && value !== null && !('Fn::Join' in value) && !('Fn::GetAtt' in value) && !('Ref' in value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, readable(v)]));
  }
  return typeof value === 'object' && value !== null ? resourcesOf({ Resource: value })[0] : value;
}

function statementsOf(template: Template, type: string, idPrefix: string, document: string): Map<string, Statement> {
  const resource = onlyResource(template, type, idPrefix);
  const statements = resource.Properties[document].Statement as Statement[];
  return new Map(statements.map((s, i) => [String(s.Sid ?? `#${i}`), readable(s) as Statement]));
}

/** The vault's own tests' pointer and a dated report, as the agent writes them with --reports vault. */
const VAULT_REPORT_KEYS = ['orders-db/restore-tests/vault/latest.json', 'orders-db/restore-tests/vault/orders-db_2026-12-01_05-10-00Z.json'];
/** The vault's own runbook, as VaultRunbook writes it. */
const VAULT_RUNBOOK_KEY = 'orders-db/vault/RUNBOOK.md';
/** What the primary writes and replicates. */
const PRIMARY_KEYS = ['orders-db/latest.json', 'orders-db/2026/12/01/orders-db_2026-12-01_03-00-00Z.pgdump.zst.age', 'orders-db/RUNBOOK.md',
  'orders-db/restore-tests/latest.json', 'orders-db/restore-tests/orders-db_2026-12-01_04-00-00Z.json'];

/** Whether an object key falls under a statement's resources (readable, `<Bucket.Arn>/pattern`), IAM's `*` matching `/` too. */
function matchesAny(resources: unknown, key: string): boolean {
  return ([] as unknown[]).concat(resources).some((resource) => {
    const pattern = String(resource).replace(/^<[^>]+>\//, '');
    return new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\?]/g, '\\$&').replace(/\*/g, '.*')}$`).test(key);
  });
}

describe('a vault: ReplicaStore with primaryAccount in another account', () => {
  const fixture = primaryWithVault();
  const vaultTemplate = Template.fromStack(fixture.vaultStack);
  const primaryTemplate = Template.fromStack(fixture.primary);
  const bucketPolicy = statementsOf(vaultTemplate, 'AWS::S3::BucketPolicy', 'VaultBucketPolicy', 'PolicyDocument');
  const keyPolicy = statementsOf(vaultTemplate, 'AWS::KMS::Key', 'VaultKey', 'KeyPolicy');

  test('given a primaryAccount of another account, when constructed, then it is a vault with a retention keeper and its alarm', () => {
    expect(fixture.vault.isVault).toBe(true);
    expect(fixture.vault.primaryAccount).toBe(ACCOUNT);
    expect(fixture.vault.account).toBe(VAULT_ACCOUNT);
    expect(fixture.vault.retentionKeeper).toBeDefined();
    expect(fixture.vault.retentionFailedAlarm).toBeDefined();
  });

  test('given a vault, when synthesized, then its key lets the primary account encrypt through S3 here, by the replication role\'s path only', () => {
    expect(keyPolicy.get('PrimaryReplicationEncrypts')).toEqual({
      Sid: 'PrimaryReplicationEncrypts',
      Effect: 'Allow',
      Principal: { AWS: `arn:<AWS::Partition>:iam::${ACCOUNT}:root` },
      Action: ['kms:Encrypt', 'kms:GenerateDataKey'],
      Resource: '*',
      Condition: { ArnLike: { 'aws:PrincipalArn': REPLICATION_PATTERN }, StringEquals: { 'kms:ViaService': `s3.${REPLICA_REGION}.amazonaws.com` } },
    });
    // Nothing else in the key policy names the primary account.
    const mentions = [...keyPolicy.values()].filter((s) => JSON.stringify(s).includes(ACCOUNT));
    expect(mentions.map((s) => s.Sid)).toEqual(['PrimaryReplicationEncrypts']);
  });

  test('given a vault, when synthesized, then its bucket policy admits the primary only to replicate objects, by the replication role\'s path', () => {
    const allow = bucketPolicy.get('PrimaryReplicationReplicates')!;
    expect(allow).toMatchObject({
      Effect: 'Allow',
      Principal: { AWS: `arn:<AWS::Partition>:iam::${ACCOUNT}:root` },
      Action: ['s3:ReplicateObject', 's3:ReplicateTags'],
      Resource: expect.stringMatching(/^<VaultBucket\w+\.Arn>\/\*$/),
      Condition: { ArnLike: { 'aws:PrincipalArn': REPLICATION_PATTERN } },
    });
    const allows = [...bucketPolicy.values()].filter((s) => s.Effect === 'Allow');
    expect(allows.map((s) => s.Sid)).toEqual(['PrimaryReplicationReplicates']);
  });

  test('given a vault, when synthesized, then everything but replication is denied to principals outside the vault account', () => {
    expect(bucketPolicy.get('NothingElseFromOutsideTheVaultAccount')).toMatchObject({
      Effect: 'Deny',
      Principal: '*',
      NotAction: ['s3:ReplicateObject', 's3:ReplicateTags'],
      Resource: [expect.stringMatching(/^<VaultBucket\w+\.Arn>$/), expect.stringMatching(/^<VaultBucket\w+\.Arn>\/\*$/)],
      Condition: { StringNotEquals: { 'aws:PrincipalAccount': VAULT_ACCOUNT } },
    });
    expect(bucketPolicy.get('OnlyTheReplicationRoleReplicates')).toMatchObject({
      Effect: 'Deny',
      Action: ['s3:ReplicateObject', 's3:ReplicateTags'],
      Condition: { ArnNotLike: { 'aws:PrincipalArn': REPLICATION_PATTERN } },
    });
  });

  test('given a vault, when synthesized, then nobody replicates under vault/, where the vault\'s own tests report and its own runbooks live', () => {
    expect(bucketPolicy.get('NothingReplicatedUnderVault')).toEqual({
      Sid: 'NothingReplicatedUnderVault',
      Effect: 'Deny',
      Principal: '*',
      Action: ['s3:ReplicateObject', 's3:ReplicateTags'],
      Resource: expect.stringMatching(/^<VaultBucket\w+\.Arn>\/\*\/vault\/\*$/),
    });
    const denied = (key: string) => matchesAny(bucketPolicy.get('NothingReplicatedUnderVault')!.Resource, key);
    // IAM's * matches '/': the one pattern covers restore-tests/vault/ and {source}/vault/.
    expect([...VAULT_REPORT_KEYS, VAULT_RUNBOOK_KEY].filter(denied)).toEqual([...VAULT_REPORT_KEYS, VAULT_RUNBOOK_KEY]);
    // What the primary replicates still arrives: its backups, pointers, runbooks and its own restore-test reports.
    expect(PRIMARY_KEYS.filter(denied)).toEqual([]);
  });

  test('given a vault, when synthesized, then the write-once statements cover restore-tests/vault/ as they do restore-tests/', () => {
    const covers = (sid: string, key: string) => matchesAny(bucketPolicy.get(sid)!.Resource, key);
    for (const key of VAULT_REPORT_KEYS) {
      expect([key, covers('ReportsByRestoreTestsOnly', key), covers('NoTaggingPointers', key)]).toEqual([key, true, true]);
    }
    // The pointer is written with If-Match or If-None-Match; a dated report is write-once (If-None-Match).
    const [pointer, dated] = VAULT_REPORT_KEYS;
    expect(covers('PointersNeedIfMatch', pointer)).toBe(true);
    expect(matchesAny(bucketPolicy.get('WriteOnce')!.NotResource, pointer)).toBe(true);
    expect(covers('PointersNeedIfMatch', dated)).toBe(false);
    expect(matchesAny(bucketPolicy.get('WriteOnce')!.NotResource, dated)).toBe(false);
  });

  test('given a vault, when synthesized, then the write-once statements cover the vault\'s own runbook as they do RUNBOOK.md', () => {
    const covers = (sid: string) => matchesAny(bucketPolicy.get(sid)!.Resource, VAULT_RUNBOOK_KEY);
    // Written by the runbook writer's path alone, with If-Match or If-None-Match, never tagged.
    expect(['RunbooksByWriterOnly', 'PointersNeedIfMatch', 'NoTaggingPointers'].filter(covers)).toEqual(['RunbooksByWriterOnly', 'PointersNeedIfMatch', 'NoTaggingPointers']);
    expect(matchesAny(bucketPolicy.get('WriteOnce')!.NotResource, VAULT_RUNBOOK_KEY)).toBe(true);
    expect(bucketPolicy.get('RunbooksByWriterOnly')!.Condition).toEqual({ ArnNotLike: { 'aws:PrincipalArn': [
      `arn:<AWS::Partition>:iam::${VAULT_ACCOUNT}:role/restorable/runbook-writer/*`, `arn:<AWS::Partition>:iam::${VAULT_ACCOUNT}:role/restorable-break-glass`,
    ] } });
  });

  test('given a vault with a prefix, when synthesized, then the deny is under that prefix', () => {
    const prefixed = statementsOf(Template.fromStack(primaryWithVault({ prefix: 'backups' }, { prefix: 'backups' }).vaultStack), 'AWS::S3::BucketPolicy', 'VaultBucketPolicy', 'PolicyDocument');
    expect(prefixed.get('NothingReplicatedUnderVault')!.Resource).toMatch(/^<VaultBucket\w+\.Arn>\/backups\/\*\/vault\/\*$/);
  });

  test('given a vault, when synthesized, then the write-once policy stays, its governance bypass exempting the retention keeper and never its deletes', () => {
    for (const sid of ['WriteOnce', 'PointersNeedIfMatch', 'OnlyHoldKeeperReleases', 'ReportsByRestoreTestsOnly', 'RunbooksByWriterOnly', 'NoTaggingPointers']) {
      expect(bucketPolicy.get(sid)?.Effect).toBe('Deny');
    }
    const breakGlass = `arn:<AWS::Partition>:iam::${VAULT_ACCOUNT}:role/restorable-break-glass`;
    expect(bucketPolicy.get('OnlyBreakGlassDestroys')).toMatchObject({
      Action: ['s3:DeleteObject', 's3:DeleteObjectVersion'],
      Condition: { ArnNotLike: { 'aws:PrincipalArn': [breakGlass] } },
    });
    expect(bucketPolicy.get('OnlyRetentionKeeperBypasses')).toMatchObject({
      Effect: 'Deny',
      Action: 's3:BypassGovernanceRetention',
      Condition: { ArnNotLike: { 'aws:PrincipalArn': [`arn:<AWS::Partition>:iam::${VAULT_ACCOUNT}:role/restorable/retention-keeper/*`, breakGlass] } },
    });
    expect(bucketPolicy.get('OnlyComplianceLocks')).toMatchObject({
      Effect: 'Deny',
      Action: 's3:PutObjectRetention',
      Condition: { StringNotEquals: { 's3:object-lock-mode': 'COMPLIANCE' }, ArnNotLike: { 'aws:PrincipalArn': [breakGlass] } },
    });
  });

  test('given a vault, when synthesized, then the primary\'s own write-once policy is as it was: nobody but break-glass bypasses governance there', () => {
    const primaryPolicy = statementsOf(primaryTemplate, 'AWS::S3::BucketPolicy', 'StoreBucketPolicy', 'PolicyDocument');
    expect(primaryPolicy.get('OnlyBreakGlassDestroys')?.Action).toEqual(['s3:DeleteObject', 's3:DeleteObjectVersion', 's3:BypassGovernanceRetention']);
    expect(primaryPolicy.has('OnlyRetentionKeeperBypasses')).toBe(false);
    expect(primaryTemplate.findResources('AWS::Lambda::Function')).toEqual({});
  });

  test('given a vault, when synthesized, then the bucket owns every replica, and the primary neither overrides the owner nor replicates delete markers', () => {
    vaultTemplate.hasResourceProperties('AWS::S3::Bucket', {
      BucketName: Match.stringLikeRegexp('^vault'),
      OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
      ObjectLockConfiguration: { Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: 7 } } },
      NotificationConfiguration: { EventBridgeConfiguration: { EventBridgeEnabled: true } },
    });
    const bucket = onlyResource(primaryTemplate, 'AWS::S3::Bucket', 'StoreBucket');
    const [rule] = bucket.Properties.ReplicationConfiguration.Rules;
    expect(rule.DeleteMarkerReplication).toEqual({ Status: 'Disabled' });
    expect(rule.Destination.AccessControlTranslation).toBeUndefined();
    expect(rule.Destination.Account).toBeUndefined();
    expect(readable(rule.Destination.EncryptionConfiguration)).toEqual({
      ReplicaKmsKeyID: `arn:<AWS::Partition>:kms:${REPLICA_REGION}:${VAULT_ACCOUNT}:${fixture.vault.keyAliasName}`,
    });
  });

  test('given a vault, when synthesized, then the primary\'s replication role lives under the path the vault admits', () => {
    const roles = Object.values(primaryTemplate.findResources('AWS::IAM::Role'))
      .filter((r) => JSON.stringify(r.Properties.AssumeRolePolicyDocument).includes('s3.amazonaws.com'));
    expect(roles.map((r) => r.Properties.Path)).toEqual(['/restorable/replication/']);
  });

  test('given a vault, when synthesized, then each tier keeps noncurrent versions for at least its effective retention, and housekeeping as long', () => {
    const bucket = onlyResource(vaultTemplate, 'AWS::S3::Bucket', 'VaultBucket');
    const rules = new Map((bucket.Properties.LifecycleConfiguration.Rules as Array<Record<string, unknown>>).map((r) => [r.Id, r]));
    // Defaults: 24 hourly, 7 daily, 4 weekly, 12 monthly; 7 noncurrent days; the keeper locks each tier's effective retention.
    const expected = { hourly: 8, daily: 14, weekly: 35, monthly: 379 };
    for (const [tier, days] of Object.entries(expected)) {
      expect(rules.get(`tier-${tier}`)).toMatchObject({ NoncurrentVersionExpiration: { NoncurrentDays: days } });
      const plan = fixture.vault.retention.find((r) => r.tier === tier)!;
      expect(plan.noncurrentDays).toBe(days);
      expect(plan.noncurrentDays).toBeGreaterThanOrEqual(plan.expirationDays + 7);
    }
    expect(rules.get('housekeeping')).toMatchObject({ NoncurrentVersionExpiration: { NoncurrentDays: 379 } });
    expect(fixture.vault.effectiveRetention(Tier.MONTHLY).toDays()).toBe(372 + 379);
    expect(fixture.vault.retention.map((r) => r.lockDays)).toEqual([9, 21, 63, 751]);
    // A tag replicated later that moves a backup to a shorter-lived tier cannot shorten its life: the lock covers it all.
    expect(fixture.vault.retention.map((r) => r.lockDays)).toEqual(fixture.vault.retention.map((r) => r.effectiveDays));
  });

  test('given a vault, when synthesized, then its retention keeper runs on new objects under its own path with the vault\'s days', () => {
    const fn = onlyResource(vaultTemplate, 'AWS::Lambda::Function', 'VaultRetentionKeeper');
    expect(fn.Properties.Runtime).toBe('nodejs22.x');
    expect(fn.Properties.Environment.Variables).toMatchObject({
      KEY_PREFIX: '',
      TIER_DAYS: JSON.stringify({ hourly: 9, daily: 21, weekly: 63, monthly: 751 }),
      DEFAULT_DAYS: '7',
    });
    expect(fn.Properties.DeadLetterConfig).toBeDefined();
    vaultTemplate.hasResourceProperties('AWS::Lambda::EventInvokeConfig', { MaximumRetryAttempts: 2 });
    const role = onlyResource(vaultTemplate, 'AWS::IAM::Role', 'VaultRetentionKeeperRole');
    expect(role.Properties.Path).toBe('/restorable/retention-keeper/');
    const statements = role.Properties.Policies[0].PolicyDocument.Statement as Statement[];
    const s3Statement = statements.find((s) => ([] as unknown[]).concat(s.Action).includes('s3:BypassGovernanceRetention'))!;
    expect(s3Statement.Action).toEqual(['s3:GetObject', 's3:GetObjectVersion', 's3:GetObjectTagging', 's3:GetObjectVersionTagging',
      's3:GetObjectRetention', 's3:BypassGovernanceRetention']);
    // It sets COMPLIANCE locks only, so the bypass shortens nothing.
    expect(statements.find((s) => s.Action === 's3:PutObjectRetention')).toMatchObject({
      Condition: { 'StringEquals': { 's3:object-lock-mode': 'COMPLIANCE' }, 'NumericLessThanEquals': { 's3:object-lock-remaining-retention-days': '752' } },
    });
    expect(JSON.stringify(statements)).not.toMatch(/s3:Delete|s3:PutObject"|s3:PutObjectTagging|kms:/);
    vaultTemplate.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: { 'source': ['aws.s3'], 'detail-type': ['Object Created'], 'detail': { bucket: { name: [Match.anyValue()] } } },
    });
  });

  test('given a vault, when synthesized, then synth warns how long each tier is locked in COMPLIANCE and that nobody can delete it sooner', () => {
    Annotations.fromStack(fixture.vaultStack).hasWarning('/Vault/Vault', Match.stringLikeRegexp(
      'COMPLIANCE mode .*hourly backups 9 days, daily backups 21 days, weekly backups 63 days, monthly backups 751 days; ' +
      'pointers, manifests, runbooks and reports 7 days.*nobody, not even the vault account\'s root, can delete.*' +
      `\\[ack: ${COMPLIANCE_RETENTION_WARNING}\\]`));
  });

  test('given a vault with an alarm topic, when synthesized, then the retention keeper\'s dead-letter alarm notifies it', () => {
    const { vaultStack } = primaryWithVault((stack) => ({ alarmTopic: new sns.Topic(stack, 'Alarms') }));
    const alarm = onlyResource(Template.fromStack(vaultStack), 'AWS::CloudWatch::Alarm', 'VaultRetentionKeeperFailedAlarm');
    expect(alarm.Properties.MetricName).toBe('ApproximateNumberOfMessagesVisible');
    expect(alarm.Properties.AlarmActions).toEqual([{ Ref: expect.stringMatching(/^Alarms/) }]);
  });

  test('given a vault with a lock and keep of its own, when synthesized, then the keeper and the bucket use them', () => {
    const { vaultStack, vault } = primaryWithVault({
      objectLockDefaultRetention: s3.ObjectLockRetention.governance(Duration.days(10)),
      keep: { hourly: 48, daily: 14, weekly: 8, monthly: 24 },
    });
    const template = Template.fromStack(vaultStack);
    template.hasResourceProperties('AWS::S3::Bucket', { ObjectLockConfiguration: { Rule: { DefaultRetention: { Mode: 'GOVERNANCE', Days: 10 } } } });
    const fn = onlyResource(template, 'AWS::Lambda::Function', 'VaultRetentionKeeper');
    expect(fn.Properties.Environment.Variables).toMatchObject({ TIER_DAYS: JSON.stringify({ hourly: 12, daily: 35, weekly: 119, monthly: 1495 }), DEFAULT_DAYS: '10' });
    expect(vault.retention.map((r) => r.lockDays)).toEqual([12, 35, 119, 1495]);
  });
});

describe('a same-account replica stays as it was', () => {
  test('given no primaryAccount, when synthesized, then it is no vault: no keeper, no primary grants, the primary\'s write-once policy unchanged', () => {
    const app = new App();
    const replicaStack = new Stack(app, 'Replica', { env: { account: ACCOUNT, region: REPLICA_REGION } });
    const replica = new ReplicaStore(replicaStack, 'ReplicaStore', { primaryAccount: ACCOUNT });
    expect(replica.isVault).toBe(false);
    expect(replica.primaryAccount).toBe(ACCOUNT);
    expect(replica.retentionKeeper).toBeUndefined();
    expect(replica.retentionFailedAlarm).toBeUndefined();
    const template = Template.fromStack(replicaStack);
    template.resourceCountIs('AWS::Lambda::Function', 0);
    template.hasResourceProperties('AWS::S3::Bucket', { ObjectLockConfiguration: { Rule: { DefaultRetention: { Mode: 'GOVERNANCE', Days: 7 } } } });
    const policy = statementsOf(template, 'AWS::S3::BucketPolicy', 'ReplicaStoreBucketPolicy', 'PolicyDocument');
    expect(policy.get('OnlyBreakGlassDestroys')?.Action).toEqual(['s3:DeleteObject', 's3:DeleteObjectVersion', 's3:BypassGovernanceRetention']);
    expect(policy.has('OnlyRetentionKeeperBypasses')).toBe(false);
    expect(policy.has('NothingElseFromOutsideTheVaultAccount')).toBe(false);
    expect(Annotations.fromStack(replicaStack).findWarning('*', Match.stringLikeRegexp(COMPLIANCE_RETENTION_WARNING))).toEqual([]);
  });
});

describe('vault synth errors, in words', () => {
  test('given a replica in another account without primaryAccount, when the store is built, then it says to set primaryAccount', () => {
    const app = new App();
    const replica = new ReplicaStore(new Stack(app, 'Vault', { env: { account: VAULT_ACCOUNT, region: REPLICA_REGION } }), 'Vault');
    const primary = new Stack(app, 'Primary', { env: { account: ACCOUNT, region: PRIMARY_REGION } });
    expect(() => new BackupStore(primary, 'Store', { replica })).toThrow(
      `Primary/Store: replica is in account ${VAULT_ACCOUNT}, another account than this store's (${ACCOUNT}), but it does not name this account as ` +
      `its primary: S3 would be refused there. Set primaryAccount: '${ACCOUNT}' on the ReplicaStore`);
  });

  test('given a vault for another primary account, when the store is built, then it names both accounts', () => {
    const app = new App();
    const replica = new ReplicaStore(new Stack(app, 'Vault', { env: { account: VAULT_ACCOUNT, region: REPLICA_REGION } }), 'Vault',
      { primaryAccount: '999999999999' });
    const primary = new Stack(app, 'Primary', { env: { account: ACCOUNT, region: PRIMARY_REGION } });
    expect(() => new BackupStore(primary, 'Store', { replica })).toThrow(
      `replica is a vault whose primaryAccount is 999999999999, but this store is in account ${ACCOUNT}: the vault would refuse this store's replication`);
  });

  test('given primaryAccount equal to its own stack\'s account but a store in another account, when the store is built, then it refuses', () => {
    const app = new App();
    const replica = new ReplicaStore(new Stack(app, 'Replica', { env: { account: VAULT_ACCOUNT, region: REPLICA_REGION } }), 'Replica',
      { primaryAccount: VAULT_ACCOUNT });
    const primary = new Stack(app, 'Primary', { env: { account: ACCOUNT, region: PRIMARY_REGION } });
    expect(() => new BackupStore(primary, 'Store', { replica })).toThrow(/another account than this store's .* Set primaryAccount: '123456789012'/);
  });

  test('given a vault and a store of an environment-agnostic stack, when the store is built, then it asks for the account', () => {
    const app = new App();
    const replica = new ReplicaStore(new Stack(app, 'Vault', { env: { account: VAULT_ACCOUNT, region: REPLICA_REGION } }), 'Vault',
      { primaryAccount: ACCOUNT });
    expect(() => new BackupStore(new Stack(app, 'Agnostic'), 'Store', { replica })).toThrow(/has no explicit account; set env: \{ account: '123456789012'/);
  });

  test('given a vault with objectLockEnabled false, when constructed, then it says a vault locks every version', () => {
    expect(() => primaryWithVault({ objectLockEnabled: false }, { objectLockEnabled: false })).toThrow(
      `Vault/Vault: objectLockEnabled is false, but this replica is a vault (primaryAccount ${ACCOUNT} is another account than its stack's)`);
  });

  test('given a primaryAccount that is no account id, when constructed, then it says what it must be', () => {
    expect(() => primaryWithVault({ primaryAccount: '1234' })).toThrow(/primaryAccount must be a 12-digit AWS account id known at synth \(got "1234"\)/);
  });

  test('given an alarmTopic on a same-account replica, when constructed, then it says alarmTopic is for vaults', () => {
    const stack = new Stack(new App(), 'Replica', { env: { account: ACCOUNT, region: REPLICA_REGION } });
    expect(() => new ReplicaStore(stack, 'Replica', { alarmTopic: new sns.Topic(stack, 'Alarms') })).toThrow(/alarmTopic applies to a vault only/);
  });

  test('given a vault in the primary\'s region, when the store is built, then the region check still holds', () => {
    const app = new App();
    const replica = new ReplicaStore(new Stack(app, 'Vault', { env: { account: VAULT_ACCOUNT, region: PRIMARY_REGION } }), 'Vault',
      { primaryAccount: ACCOUNT });
    const primary = new Stack(app, 'Primary', { env: { account: ACCOUNT, region: PRIMARY_REGION } });
    expect(() => new BackupStore(primary, 'Store', { replica })).toThrow(/same region as this store/);
  });

  test('given a primary lock longer than the vault ever locks, when the store is built, then it says every replica would alarm', () => {
    expect(() => primaryWithVault({ keep: { hourly: 24, daily: 7, weekly: 4, monthly: 1 }, transitions: [] },
      { objectLockDefaultRetention: s3.ObjectLockRetention.governance(Duration.days(70)) })).toThrow(
      /objectLockDefaultRetention is 70 days, longer than the vault Vault\/Vault locks anything \(69 days\)/);
  });
});

describe('a vault and cdk-nag', () => {
  test('given a two-account app with a vault, when cdk-nag AwsSolutions checks it, then nothing is left unacknowledged', () => {
    const app = new App();
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    const { vaultStack, vault, store, primary } = primaryWithVault((stack) => ({ alarmTopic: new sns.Topic(stack, 'Alarms', { enforceSSL: true }) }), {}, app);
    const role = (stack: Stack, id: string) => new iam.Role(stack, id, { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
    vault.grantRestoreRead(role(vaultStack, 'DrRestore'), 'orders-db');
    store.grantBackupWrite(role(primary, 'Dump'), 'orders-db');
    expect(() => app.synth()).not.toThrow();
  });
});
