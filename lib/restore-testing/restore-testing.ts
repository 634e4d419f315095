import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as events from 'aws-cdk-lib/aws-events';
import { Construct } from 'constructs';
import { RestorableError } from '../shared/errors';
import { BackupKeys } from '../keys/backup-keys';
import { BackupMonitoring } from '../monitoring/backup-monitoring';
import { BackupStore } from '../store/backup-store';
import { DatabaseBackups } from '../backups/database-backups';
import { RestoreTestSourceProps } from './restore-test-source';
import { RestoreTestFleet, RestoreTestFleetOptions } from './restore-test-fleet';

export interface RestoreTestingProps extends RestoreTestFleetOptions {
  /** The backups to test: their cluster, security group, logs and sources. */
  readonly backups: DatabaseBackups;
  /** The store those backups go to (the same one DatabaseBackups writes). */
  readonly store: BackupStore;
  /** The keys whose identity opens the backups; restore-test roles are the only task roles that may read it. */
  readonly keys: BackupKeys;
  /**
   * The monitoring of those backups: the restore-test alarms notify its topic, and its dashboard gains the
   * restore duration and the last result per source. The overdue alarm reads the RestoreTestAgeSeconds metric
   * its freshness check publishes, which learns here (expectRestoreTests) which sources are restore-tested.
   */
  readonly monitoring: BackupMonitoring;
  /**
   * Sources to test, with their checks.
   * @default - every source `backups` holds when RestoreTesting is created, validated by tables and row counts only;
   * synthesis fails if sources are added to `backups` later and not to RestoreTesting (addSource)
   */
  readonly sources?: RestoreTestSourceProps[];
  /**
   * When the restore tests run (UTC).
   * @default - weekly, Sundays at 03:00 UTC
   */
  readonly schedule?: events.Schedule;
  /**
   * Also test the DR copy: on this schedule, the tests read the replica bucket and the identity secret's replica
   * in the DR region, which proves the offsite copy restores too. Needs a store with a replica and generated keys.
   * Those requests go to the DR region's public S3 and Secrets Manager endpoints, out through the subnets' NAT: VPC
   * endpoints serve only their own region (so the policies of the endpoints DatabaseBackups creates do not apply
   * to them), and the restore tests' security group then allows HTTPS to any address. Not for a vault in another
   * account, which this account may not read: test it from its own account with VaultRestoreTesting.
   * @default - the DR copy is not tested
   */
  readonly drSchedule?: events.Schedule;
  /**
   * The subnets the tasks run in; they must reach S3, Secrets Manager, CloudWatch, ECR and the scratch image's registry
   * (ECR Public, public.ecr.aws, for the default images), and with `drSchedule` the DR region's S3 and Secrets Manager, which only a
   * NAT route reaches: VPC endpoints serve their own region only.
   * @default - the cluster VPC's private subnets with egress, or its isolated subnets
   */
  readonly subnets?: ec2.SubnetSelection;
}

const WEEKLY = events.Schedule.cron({ weekDay: 'SUN', hour: '3', minute: '0' });
export { DISK_TOO_SMALL_WARNING } from './restore-test-fleet';
export { RESTORE_TEST_OVERDUE } from './restore-test-alarms';

/**
 * Weekly restore tests: each source's latest backup is restored into a scratch database in a Fargate task, and
 * validated (tables, row counts, your checks) by the agent, which publishes the measured RTO and the result.
 * A Step Functions state machine runs the tests with bounded concurrency (its Map state), starts each with the
 * orchestrator Lambda (which retries throttling and capacity errors), and follows each task until it stops.
 * Alarms: a failed test, an overdue test (8 days), the orchestration failing, and optionally an RTO target.
 *
 * Each source's tests run with a role of its own, which reads that source's backups alone (and the identity): the
 * roles live in nested stacks of 25 sources (RestoreTestRoles). The orchestrator starts only what its own
 * configuration says for a source it knows; the state machine gives it a source name and a copy. The agent's and
 * the scratch servers' logs go to a log group of their own (RestoreTestLogs), never the backups'.
 *
 * Overdue: the alarm watches the fleet's worst RestoreTestAgeSeconds, which the monitoring's freshness check
 * publishes per source: the age of its newest restore-test report or, for a tested source that has no report
 * yet, the age of its oldest stored backup (one S3 LIST of one key; the check is stateless). So a source whose
 * tests never report (its task never starts) alarms once it has had a backup to test for 8 days, even while
 * other sources report. Adding restore tests to a source with older backups alarms until its first test reports:
 * run the state machine once after deploying.
 */
export class RestoreTesting extends RestoreTestFleet {
  private readonly backups: DatabaseBackups;

  constructor(scope: Construct, id: string, props: RestoreTestingProps) {
    super(scope, id, (self) => RestoreTesting.setup(self, props), () => props.sources ?? props.backups.sources.map((s) => ({ source: s })));
    this.backups = props.backups;
    if (!props.sources) {
      // The default list is the sources DatabaseBackups holds now: one added to it later would silently go untested.
      this.node.addValidation({ validate: () => this.untestedLaterSources() });
    }
  }

  /** Checks the props, and says what this fleet tests: the store, and its DR replica with drSchedule. */
  private static setup(self: Construct, props: RestoreTestingProps) {
    if (!props?.backups || !props.store || !props.keys || !props.monitoring) {
      throw new RestorableError(self, `backups, store, keys and monitoring are required: the tests restore the backups of a DatabaseBackups ` +
        'from its BackupStore with the BackupKeys identity, and report through its BackupMonitoring');
    }
    if (!props.keys.identitySecret) {
      throw new RestorableError(self, `keys: the BackupKeys hold no identity secret, so no restore test can decrypt a backup: ` +
        'let BackupKeys generate the key pair, or pass identitySecret with your recipient');
    }
    const replica = props.store.replica;
    if (props.drSchedule && replica?.isVault) {
      throw new RestorableError(self, `drSchedule tests the DR copy from this account, but the store's replica is a vault in account ` +
        `${replica.account}, which this account may not read (that is what the vault is for): remove drSchedule, and test the ` +
        'vault from its own account with VaultRestoreTesting in the vault\'s stack');
    }
    if (props.drSchedule && (!replica || !props.keys.encryptionKey)) {
      throw new RestorableError(self, `drSchedule tests the DR copy, but the store has no replica or the identity secret is not replicated ` +
        '(generated BackupKeys with replicaRegion): set BackupStore.replica, or remove drSchedule');
    }
    const { backups } = props;
    return {
      ...props,
      identity: props.keys,
      identitySecretArn: props.keys.identitySecret.secretArn,
      drReplica: props.drSchedule ? replica : undefined,
      cluster: backups.cluster,
      schedule: props.schedule ?? WEEKLY,
      isolatedSubnetsNote: props.drSchedule
        ? ' The DR tests also need a NAT route: they read the DR region\'s S3 and Secrets Manager, which no endpoint here serves.' : undefined,
      allowEndpointsFrom: (group: ec2.SecurityGroup) => {
        backups.allowEndpointsFrom(group, 'Restorable restore-test tasks');
        return backups.endpointSecurityGroup !== undefined;
      },
    };
  }

  /** Sources added to DatabaseBackups after RestoreTesting took its default list, which no test covers. */
  private untestedLaterSources(): string[] {
    const untested = this.backups.sources.map((s) => s.name).filter((name) => !this.tested.some((t) => t.source.name === name));
    if (!untested.length) return [];
    return [`source(s) ${untested.map((n) => `'${n}'`).join(', ')} were added to DatabaseBackups after RestoreTesting was created, so they ` +
      'would never be restore-tested (RestoreTesting without `sources` tests the sources DatabaseBackups holds when it is created): ' +
      'create RestoreTesting after adding every source, or call its addSource({ source }) for each'];
  }
}
