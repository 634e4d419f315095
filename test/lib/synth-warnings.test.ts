/**
 * No silent downgrades: what a configuration really keeps is said at synth, as warnings that the standard CDK
 * acknowledgement silences (Annotations.of(scope).acknowledgeWarning), or as an error that names the prop to set.
 */
import { Annotations as CoreAnnotations, Duration, Stack } from 'aws-cdk-lib';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { SourceEngine } from '../../lib';
import { backupsStack, mariadbSource, postgresSource } from './database-backups-fixture';
import { primaryWithReplica, standaloneStore } from './store-fixtures';

const NO_REPLICA = '@restorable/backup-store:no-replica';
const LOCK_BEYOND_RETENTION = '@restorable/backup-bucket:lock-beyond-retention';
const MYSQL_UNTESTED = '@restorable/database-backups:mysql-untested';

/** The warnings of a stack with a given acknowledgement id, as [construct path, message without the ack suffix]. */
function warnings(stack: Stack, id: string): [string, string][] {
  return Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp(`\\[ack: ${id}\\]$`))
    .map((w) => [w.id, String(w.entry.data).replace(` [ack: ${id}]`, '')]);
}

describe('a store without a replica', () => {
  test('given a BackupStore without replica, when synthesized, then it warns that it keeps a single regional copy and says how to add one', () => {
    const { stack } = standaloneStore();
    expect(warnings(stack, NO_REPLICA)).toEqual([['/Standalone/Store',
      'BackupStore has no replica, so it keeps a single regional copy of every backup: there is no offsite copy, which is not 3-2-1, ' +
      'and an outage of eu-west-1 or the loss of this bucket takes every backup with it. Add one: create a ReplicaStore in a stack ' +
      "of another region (new ReplicaStore(drStack, 'Replica')) and pass it as this store's replica; or acknowledge this warning."]]);
  });

  test('given a replica, when synthesized, then there is no such warning', () => {
    const { primary } = primaryWithReplica();
    expect(warnings(primary, NO_REPLICA)).toEqual([]);
  });

  test('given the warning acknowledged the standard way, when synthesized, then it is gone', () => {
    const { stack, store } = standaloneStore();
    CoreAnnotations.of(store).acknowledgeWarning(NO_REPLICA, 'a test store: backups are copied offsite by another system');
    expect(warnings(stack, NO_REPLICA)).toEqual([]);
  });
});

describe('an Object Lock longer than a tier keeps its backups', () => {
  test('given the defaults (7-day governance lock), when synthesized, then no tier is outlasted and nothing is said', () => {
    const { primary } = primaryWithReplica();
    expect(warnings(primary, LOCK_BEYOND_RETENTION)).toEqual([]);
  });

  test('given a 30-day governance lock, when synthesized, then it warns what the hourly and daily tiers really keep, for how long and how many per source', () => {
    const { primary, store } = primaryWithReplica({ objectLockDefaultRetention: s3.ObjectLockRetention.governance(Duration.days(30)) });
    expect(warnings(primary, LOCK_BEYOND_RETENTION)).toEqual([['/Primary/Store',
      'objectLockDefaultRetention (GOVERNANCE, 30 days) is longer than the hourly and daily tiers keep a backup, so the lock decides how long they live: ' +
      'hourly backups 30 days instead of 8 (1-day expiry + 7 noncurrent days): up to 720 per source (30 days × 24 a day at an hourly RPO) where keep.hourly asks for 24; ' +
      'daily backups 30 days instead of 14 (7-day expiry + 7 noncurrent days): up to 30 per source (30 days × 1 a day) where keep.daily asks for 7. ' +
      'None of them can be deleted before its lock passes, and each is billed until then. ' +
      'Effective retention per tier: hourly 30 days, daily 30 days, weekly 35 days, monthly 379 days. ' +
      'To keep what keep asks, shorten the lock to 8 days or less; if the longer retention is wanted, acknowledge this warning.']]);
    expect(store.retention.map((r) => r.effectiveDays)).toEqual([30, 30, 35, 379]);
  });

  test('given the same lock on the replica, when synthesized, then the replica warns for itself', () => {
    const { replicaStack } = primaryWithReplica({}, { objectLockDefaultRetention: s3.ObjectLockRetention.governance(Duration.days(10)) });
    const [[path, message]] = warnings(replicaStack, LOCK_BEYOND_RETENTION);
    expect(path).toBe('/Replica/ReplicaStore');
    expect(message).toMatch(/^objectLockDefaultRetention \(GOVERNANCE, 10 days\) is longer than the hourly tier keeps a backup, so the lock decides how long they live: hourly backups 10 days instead of 8 /);
  });

  test('given the warning acknowledged on the store, when synthesized, then it is gone', () => {
    const { primary, store } = primaryWithReplica({ objectLockDefaultRetention: s3.ObjectLockRetention.governance(Duration.days(30)) });
    CoreAnnotations.of(store).acknowledgeWarning(LOCK_BEYOND_RETENTION, 'a month of hourly backups is what we want');
    expect(warnings(primary, LOCK_BEYOND_RETENTION)).toEqual([]);
  });
});

describe('a COMPLIANCE lock longer than the longest tier keeps a backup', () => {
  const compliance = (days: number) => s3.ObjectLockRetention.compliance(Duration.days(days));

  test('given a 400-day compliance lock, when synthesized, then synth fails saying what would be kept, for how long, and naming the prop', () => {
    expect(() => primaryWithReplica({ objectLockDefaultRetention: compliance(400) })).toThrow(
      'Primary/Store: objectLockDefaultRetention is COMPLIANCE for 400 days, longer than any tier keeps a backup (the longest, monthly, keeps one 379 days): ' +
      'every backup of every tier, hourly ones included, would be kept 400 days, and nobody, not even the account root, could delete it or shorten its lock ' +
      'before then; that is up to 9600 hourly, 400 daily, 58 weekly, 13 monthly backups per source at once. Shorten the lock to 379 days or less, ' +
      'choose s3.ObjectLockRetention.governance(...), or set acknowledgeComplianceLockBeyondRetention: true to keep them');
  });

  test('given the same lock with acknowledgeComplianceLockBeyondRetention, when synthesized, then it synthesizes and still warns for every tier', () => {
    const { primary } = primaryWithReplica({ objectLockDefaultRetention: compliance(400), acknowledgeComplianceLockBeyondRetention: true });
    const [[, message]] = warnings(primary, LOCK_BEYOND_RETENTION);
    expect(message).toMatch(/^objectLockDefaultRetention \(COMPLIANCE, 400 days\) is longer than the hourly, daily, weekly and monthly tiers keep a backup/);
    expect(message).toContain('monthly backups 400 days instead of 379 (372-day expiry + 7 noncurrent days): up to 13 per source (400 days ÷ 31, one a month)');
  });

  test('given a compliance lock within the longest tier (30 days), when synthesized, then there is no error, only the warning', () => {
    const { primary } = primaryWithReplica({ objectLockDefaultRetention: compliance(30) });
    expect(warnings(primary, LOCK_BEYOND_RETENTION)).toHaveLength(1);
  });

  test('given the same lock on a governance store, when synthesized, then nothing fails: governance can be bypassed', () => {
    expect(() => primaryWithReplica({ objectLockDefaultRetention: s3.ObjectLockRetention.governance(Duration.days(400)) })).not.toThrow();
  });
});

describe('a MySQL source', () => {
  test('given SourceEngine.mysql(\'8.0\'), when added, then the source warns that MySQL 8 is untested and what to do', () => {
    const { stack, backups } = backupsStack();
    backups.addSource({ ...mariadbSource(stack, 'legacy-db'), engine: SourceEngine.mysql('8.0') });
    expect(warnings(stack, MYSQL_UNTESTED)).toEqual([['/Backups/DatabaseBackups/Sources/legacy-db',
      "Source 'legacy-db' is MySQL 8.0, which is untested: the agent image holds only MariaDB's client (mysqldump from MariaDB 10.11), " +
      "and only MariaDB servers run in Restorable's tests, so neither a MySQL 8.0 backup nor its restore test into a mysql:8.0 scratch " +
      'server has been proven. Run a backup and a restore test of this source before relying on it; once they pass, acknowledge this warning.']]);
  });

  test('given MariaDB and PostgreSQL sources, when added, then nothing is said', () => {
    const { stack, backups } = backupsStack();
    backups.addSource(mariadbSource(stack));
    backups.addSource(postgresSource(stack));
    expect(warnings(stack, MYSQL_UNTESTED)).toEqual([]);
  });

  test('given the warning acknowledged on DatabaseBackups, when synthesized, then it is gone for its sources', () => {
    const { stack, backups } = backupsStack();
    CoreAnnotations.of(backups).acknowledgeWarning(MYSQL_UNTESTED, 'backups and restore tests of legacy-db were run by hand and passed');
    backups.addSource({ ...mariadbSource(stack, 'legacy-db'), engine: SourceEngine.mysql('8.4') });
    expect(warnings(stack, MYSQL_UNTESTED)).toEqual([]);
  });
});
