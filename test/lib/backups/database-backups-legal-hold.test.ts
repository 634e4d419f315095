/**
 * DatabaseBackups and "the last good backup is never lost": when the store has Object Lock, each schedule runs the
 * agent with --legal-hold and the source's task role may place and release legal holds; without Object Lock,
 * neither, since a legal hold would fail on such a bucket.
 */
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { BackupKeys, BackupStore } from '../../../lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { BackupStoreProps } from '../../../lib/store/backup-store';
import { DatabaseBackups } from '../../../lib/backups/database-backups';
import { ENV, SAMPLE_RECIPIENT, postgresSource, sampleVpc } from '../database-backups-fixture';

function synth(lock: BackupStoreProps): { command: string; policies: string } {
  const stack = new Stack(new App(), 'Backups', { env: ENV });
  const store = new BackupStore(stack, 'Store', { prefix: 'backups', ...lock });
  const keys = new BackupKeys(stack, 'Keys', { recipient: SAMPLE_RECIPIENT });
  const backups = new DatabaseBackups(stack, 'DatabaseBackups', { store, keys, vpc: sampleVpc(stack) });
  backups.addSource(postgresSource(stack, 'orders-db'));
  const template = Template.fromStack(stack);
  const schedules = Object.values(template.findResources('AWS::Scheduler::Schedule'));
  expect(schedules).toHaveLength(1);
  const roles = Object.values(template.findResources('AWS::IAM::Role'))
    .filter((r) => JSON.stringify(r).includes('Restorable backup task of source orders-db'));
  expect(roles).toHaveLength(1);
  return { command: JSON.stringify(schedules[0].Properties.Target.Input), policies: JSON.stringify(roles[0].Properties.Policies) };
}

test.each([
  ['governance', { objectLockDefaultRetention: s3.ObjectLockRetention.governance(Duration.days(7)) }],
  ['compliance', { objectLockDefaultRetention: s3.ObjectLockRetention.compliance(Duration.days(7)) }],
  ['the default', {}],
])('given a store with Object Lock (%s), then the backup runs with --legal-hold and its role may set holds', (_mode, lock) => {
    const { command, policies } = synth(lock);
    expect(command).toContain('--legal-hold');
    expect(policies).toContain('s3:PutObjectLegalHold');
  });

test('given a store without Object Lock, then the backup runs without --legal-hold and its role may not set holds', () => {
  const { command, policies } = synth({ objectLockEnabled: false });
  expect(command).toContain('backup');
  expect(command).not.toContain('--legal-hold');
  expect(policies).not.toContain('s3:PutObjectLegalHold');
});

test('given holdReleaseAfter, then the hold keeper DatabaseBackups creates waits that long before releasing; by default a week', () => {
  const releaseAfter = (holdReleaseAfter?: Duration) => {
    const stack = new Stack(new App(), 'Backups', { env: ENV });
    const store = new BackupStore(stack, 'Store', { prefix: 'backups' });
    const keys = new BackupKeys(stack, 'Keys', { recipient: SAMPLE_RECIPIENT });
    const backups = new DatabaseBackups(stack, 'DatabaseBackups', { store, keys, vpc: sampleVpc(stack), holdReleaseAfter });
    return Template.fromStack(stack).toJSON().Resources[Stack.of(backups).getLogicalId(backups.holdKeeper!.function.node.defaultChild as never)]
      .Properties.Environment.Variables.RELEASE_AFTER_SECONDS;
  };
  expect(releaseAfter(Duration.days(1))).toBe('86400');
  expect(releaseAfter()).toBe('604800');
});
