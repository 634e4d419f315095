/**
 * Every bad input fails at synth with a message that names the property and the fix: one test per message.
 */
import { App, Duration, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Tier } from '../../../lib/contract/tiers';
import { BackupStore, BackupStoreProps } from '../../../lib/store/backup-store';
import { ReplicaStore } from '../../../lib/store/replica-store';
import { ACCOUNT, PRIMARY_REGION, REPLICA_REGION, primaryWithReplica, standaloneStore } from '../store-fixtures';

const keep = { hourly: 24, daily: 7, weekly: 4, monthly: 12 };

describe('bad input fails synth with a message naming the property and the fix', () => {
  test('given a replica in the primary region, then the error names replica and asks for another region', () => {
    const app = new App();
    const env = { account: ACCOUNT, region: PRIMARY_REGION };
    const replica = new ReplicaStore(new Stack(app, 'Replica', { env }), 'ReplicaStore');
    expect(() => new BackupStore(new Stack(app, 'Primary', { env }), 'Store', { replica }))
      .toThrow(`Primary/Store: replica is in ${PRIMARY_REGION}, the same region as this store; an offsite copy in the same region does not survive a regional outage. ` +
        'Put the ReplicaStore in a stack whose env.region is another region');
  });

  test.each([
    ['daily', 0], ['weekly', 1.5], ['monthly', -3], ['hourly', Number.NaN],
  ])('given keep.%s = %p, then the error names that keep-count and gives an example', (tier, count) => {
    expect(() => standaloneStore({ keep: { ...keep, [tier]: count } }))
      .toThrow(`keep.${tier} must be a positive whole number of backups (got ${count}); for example ${keep[tier as keyof typeof keep]}`);
  });

  test('given a transition at the tier expiry, then the error names transitions and how to move it', () => {
    expect(() => standaloneStore({ transitions: [{ tier: Tier.WEEKLY, storageClass: s3.StorageClass.GLACIER, transitionAfter: Duration.days(28) }] }))
      .toThrow('transitions: the weekly transition to GLACIER after 28 days is at or after the tier\'s expiry (28 days, from keep.weekly = 4); ' +
        'transition earlier than 28 days, keep more weekly backups, or drop the transition');
  });

  test('given a transition after the tier expiry, then the same error applies', () => {
    expect(() => standaloneStore({ transitions: [{ tier: Tier.MONTHLY, storageClass: s3.StorageClass.DEEP_ARCHIVE, transitionAfter: Duration.days(400) }] }))
      .toThrow(/the monthly transition to DEEP_ARCHIVE after 400 days is at or after the tier's expiry \(372 days/);
  });

  test('given an Object Lock retention in part days (which s3.ObjectLockRetention itself refuses), then the error names objectLockDefaultRetention', () => {
    const retention = { mode: s3.ObjectLockMode.GOVERNANCE, duration: Duration.hours(36) } as s3.ObjectLockRetention;
    expect(() => standaloneStore({ objectLockDefaultRetention: retention }))
      .toThrow('Standalone/Store: objectLockDefaultRetention must be a whole number of days, from 1 to 36500 (got 1 day 12 hours): S3 counts it in whole days; ' +
        'for example s3.ObjectLockRetention.governance(Duration.days(7))');
  });

  test.each(['Orders_DB', '', 'a'.repeat(49), 'orders/db'])('given source name %p, then the grant fails naming the allowed pattern', (source) => {
    const { stack, store } = standaloneStore();
    const role = new iam.Role(stack, 'Role', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
    const message = `Standalone/Store: source name '${source}' is invalid: use 1 to 48 characters of a-z, 0-9 and '-' (for example 'orders-db')`;
    expect(() => store.grantBackupWrite(role, source)).toThrow(message);
    expect(() => store.grantRestoreRead(role, source)).toThrow(message);
  });

  test('given weekly backups moved to Glacier after 7 days, then the cost check names the minimum storage charge', () => {
    expect(() => standaloneStore({ transitions: [{ tier: Tier.WEEKLY, storageClass: s3.StorageClass.GLACIER, transitionAfter: Duration.days(7) }] }))
      .toThrow('transitions: weekly backups would spend 28 days in GLACIER, whose minimum storage charge is 90 days ' +
        '(it enters at day 7 and is gone at day 35, the tier\'s effective retention); drop this transition (no day pays off), choose a class with a shorter minimum, or keep more weekly backups');
  });

  test('given Deep Archive one day too late, then the cost check counts the effective retention (379 days) against 180', () => {
    expect(() => standaloneStore({ transitions: [{ tier: Tier.MONTHLY, storageClass: s3.StorageClass.DEEP_ARCHIVE, transitionAfter: Duration.days(200) }] }))
      .toThrow(/monthly backups would spend 179 days in DEEP_ARCHIVE, whose minimum storage charge is 180 days .*transition no later than day 199/);
    expect(() => standaloneStore({ transitions: [{ tier: Tier.MONTHLY, storageClass: s3.StorageClass.DEEP_ARCHIVE, transitionAfter: Duration.days(199) }] })).not.toThrow();
  });

  test('given Infrequent Access then Glacier too soon after, then the cost check names the 30-day IA minimum', () => {
    expect(() => standaloneStore({ transitions: [
      { tier: Tier.MONTHLY, storageClass: s3.StorageClass.INFREQUENT_ACCESS, transitionAfter: Duration.days(30) },
      { tier: Tier.MONTHLY, storageClass: s3.StorageClass.GLACIER, transitionAfter: Duration.days(45) },
    ] })).toThrow(/monthly backups would spend 15 days in STANDARD_IA, whose minimum storage charge is 30 days \(it enters at day 30 and moves on to GLACIER at day 45\); move the GLACIER transition to day 60 or later, or drop one of the two/);
  });

  test('given an Infrequent Access transition before day 30, then the error says S3 refuses it', () => {
    expect(() => standaloneStore({ transitions: [{ tier: Tier.MONTHLY, storageClass: s3.StorageClass.INFREQUENT_ACCESS, transitionAfter: Duration.days(10) }] }))
      .toThrow('transitions: the monthly transition to STANDARD_IA after 10 days is refused by S3, which allows Infrequent Access transitions from day 30; set transitionAfter to Duration.days(30) or more');
  });

  test.each([
    [Duration.days(0), '0 days'], [Duration.hours(12), '12 hours'],
  ])('given a transition after %s, then the error names transitions[0].transitionAfter', (transitionAfter, shown) => {
    expect(() => standaloneStore({ transitions: [{ tier: Tier.MONTHLY, storageClass: s3.StorageClass.GLACIER, transitionAfter }] }))
      .toThrow(`Standalone/Store: transitions[0].transitionAfter must be a whole number of days, at least 1 (got ${shown}): S3 counts it in whole days; for example Duration.days(30)`);
  });

  test('given two transitions of one tier on the same day, then the error asks for different ages', () => {
    expect(() => standaloneStore({ transitions: [
      { tier: Tier.MONTHLY, storageClass: s3.StorageClass.GLACIER, transitionAfter: Duration.days(30) },
      { tier: Tier.MONTHLY, storageClass: s3.StorageClass.DEEP_ARCHIVE, transitionAfter: Duration.days(30) },
    ] })).toThrow('transitions: the monthly tier has two transitions after 30 days; give each a different transitionAfter');
  });

  test('given a storage class without a known minimum, then the error lists the supported ones', () => {
    expect(() => standaloneStore({ transitions: [{ tier: Tier.MONTHLY, storageClass: new s3.StorageClass('REDUCED_REDUNDANCY'), transitionAfter: Duration.days(30) }] }))
      .toThrow('transitions: the monthly transition targets REDUCED_REDUNDANCY, which has no known minimum storage duration; use one of STANDARD_IA, ONEZONE_IA, GLACIER_IR, GLACIER, DEEP_ARCHIVE');
  });

  test('given a noncurrent expiry of 0 days, then the error names noncurrentVersionExpiration', () => {
    expect(() => standaloneStore({ noncurrentVersionExpiration: Duration.days(0) }))
      .toThrow('Standalone/Store: noncurrentVersionExpiration must be a whole number of days, at least 1 (got 0 days): S3 counts it in whole days; for example Duration.days(7)');
  });

  test('given an access-log expiry of 90 minutes, then the error names accessLogsExpiration', () => {
    expect(() => standaloneStore({ accessLogsExpiration: Duration.minutes(90) }))
      .toThrow('Standalone/Store: accessLogsExpiration must be a whole number of days, at least 1 (got 1 hour 30 minutes): S3 counts it in whole days; for example Duration.days(365)');
  });

  test('given a default retention with Object Lock turned off, then the error says which to drop', () => {
    expect(() => standaloneStore({ objectLockEnabled: false, objectLockDefaultRetention: s3.ObjectLockRetention.governance(Duration.days(7)) }))
      .toThrow('Standalone/Store: objectLockDefaultRetention is set but objectLockEnabled is false; remove objectLockDefaultRetention, ' +
        'or leave objectLockEnabled unset to keep Object Lock on');
  });

  test('given a locked primary and an unlocked replica, then the error asks to lock the replica', () => {
    expect(() => primaryWithReplica({}, { objectLockEnabled: false }))
      .toThrow('Primary/Store: replica: this store uses Object Lock but its replica has objectLockEnabled false, and S3 cannot replicate locked objects ' +
        "into an unlocked bucket; leave the ReplicaStore's objectLockEnabled unset (Object Lock on)");
  });

  test('given a 0.1 prop name from a JavaScript app, then the error names the new prop rather than using the default', () => {
    expect(() => standaloneStore({ noncurrentVersionExpirationDays: 30, objectLockMode: 'COMPLIANCE' } as BackupStoreProps))
      .toThrow('Standalone/Store: objectLockMode was renamed: use objectLockDefaultRetention: s3.ObjectLockRetention.governance(...) or .compliance(...), ' +
        'or objectLockEnabled: false\nnoncurrentVersionExpirationDays was renamed: use noncurrentVersionExpiration: Duration.days(7)');
  });

  test('given a ReplicaStore in a stack without an explicit env, then the error asks for one', () => {
    expect(() => new ReplicaStore(new Stack(new App(), 'Agnostic'), 'ReplicaStore'))
      .toThrow('Agnostic/ReplicaStore: a ReplicaStore needs a stack with an explicit env (account and region), because the primary store refers to it by names known at synth; set env: { account, region } on its stack');
  });

  test('given replication options without a replica, then the error says they need one', () => {
    expect(() => standaloneStore({ replicationTimeControl: false }))
      .toThrow('Standalone/Store: replicationTimeControl and alarmTopic only apply with a replica; set replica to a ReplicaStore in another region, or remove them');
  });

  test('given several problems at once, then all of them are reported together', () => {
    expect(() => standaloneStore({ keep: { ...keep, daily: 0, weekly: -1 }, noncurrentVersionExpiration: Duration.hours(1) }))
      .toThrow(/keep\.daily.*\nkeep\.weekly.*\nnoncurrentVersionExpiration must be a whole number of days/);
  });

  test('sanity: the fixture regions differ, so the valid configuration synthesizes', () => {
    expect(REPLICA_REGION).not.toBe(PRIMARY_REGION);
    expect(() => primaryWithReplica()).not.toThrow();
  });
});

test('given a replica whose prefix differs from the store\'s, then synth names both prefixes and the fix', () => {
  const app = new App();
  const env = { account: '111111111111', region: 'eu-central-1' };
  const replica = new ReplicaStore(new Stack(app, 'Replica', { env }), 'ReplicaStore', { prefix: 'dr' });
  expect(() => new BackupStore(new Stack(app, 'Primary', { env: { ...env, region: 'eu-west-1' } }), 'Store', { prefix: 'backups', replica }))
    .toThrow("the replica's prefix is 'dr/' but this store's is 'backups/'; replication keeps object keys as they are, so give the ReplicaStore the same prefix ('backups/')");
});
