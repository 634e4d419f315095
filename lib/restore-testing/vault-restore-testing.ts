import { Aws, Duration, Stack, Token } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { RestorableError } from '../shared/errors';
import { ReportsCopy } from '../contract/names';
import { BackupMonitoring } from '../monitoring/backup-monitoring';
import { ReplicaStore } from '../store/replica-store';
import { ROLE_PATHS } from '../shared/trust-boundaries';
import { RestoreTestSourceProps } from './restore-test-source';
import { RestoreTestFleet, RestoreTestFleetOptions } from './restore-test-fleet';
import { IIdentityReader } from './restore-test-roles';

/** What a vault's copy of the identity gives its restore roles: VaultIdentity. */
export interface IVaultIdentity extends IIdentityReader {
  /** The vault's own secret holding the age identity file. */
  readonly secret: secretsmanager.ISecret;
}

export interface VaultRestoreTestingProps extends RestoreTestFleetOptions {
  /** The vault: a ReplicaStore in another account than the primary store, in this stack. */
  readonly store: ReplicaStore;
  /** The vault's copy of the identity, which only the restore roles of this account read. */
  readonly identity: IVaultIdentity;
  /**
   * The vault's own monitoring (a BackupMonitoring in this stack whose store is the vault): the alarms notify its
   * topic, its dashboard gains the restore-test widgets, and its freshness check learns which sources are tested.
   */
  readonly monitoring: BackupMonitoring;
  /**
   * The sources to test, with their checks: the primary's, as DatabaseBackups made them (`backups.sources`). Only
   * what is known at synth is taken from them (name, engine, scratch image, checks); nothing of the primary's stack
   * is referred to.
   */
  readonly sources: RestoreTestSourceProps[];
  /** The VPC the tasks run in, in this account. */
  readonly vpc: ec2.IVpc;
  /**
   * The subnets the tasks run in; they must reach S3, Secrets Manager, CloudWatch, ECR and the scratch image's
   * registry (ECR Public, public.ecr.aws, for the default images).
   * @default - the VPC's private subnets with egress, or its isolated subnets
   */
  readonly subnets?: ec2.SubnetSelection;
  /**
   * When the restore tests of the vault run (UTC).
   * @default - monthly, on the 1st at 05:00 UTC
   */
  readonly schedule?: events.Schedule;
  /**
   * A source whose newest restore test in the vault is older than this is overdue: the schedule's longest gap plus
   * a day or two.
   * @default Duration.days(33)
   */
  readonly overdueAfter?: Duration;
  /**
   * The name of the role people assume, in this account, to restore from the vault (under the IAM path
   * `/restorable/restore/`). The primary's runbook names it.
   * @default `restorable-restore-{region}`
   */
  readonly restoreRoleName?: string;
  /**
   * Who may assume the restore role: principals of this account only (an IAM Identity Center permission set's
   * role, say, whose sessions carry no MFA flag of their own).
   * @default - this account's principals that IAM lets assume it, with MFA (`aws:MultiFactorAuthPresent`)
   */
  readonly restoreRoleAssumedBy?: iam.IPrincipal;
}

const MONTHLY = events.Schedule.cron({ day: '1', hour: '5', minute: '0' });
const OVERDUE = Duration.days(33);

/** The restore role's name: `restorable-restore-{region}` unless given. */
export function vaultRestoreRoleName(store: ReplicaStore, name?: string): string {
  return name ?? `restorable-restore-${store.region}`;
}

/** The restore role's ARN, path included, known at synth (a pseudo-parameter for the partition). */
export function vaultRestoreRoleArn(store: ReplicaStore, name?: string): string {
  return `arn:${Aws.PARTITION}:iam::${store.account}:role${ROLE_PATHS.restore}${vaultRestoreRoleName(store, name)}`;
}

/**
 * Monthly restore tests of a vault, run in the vault's own account, so that the primary account never needs to
 * read the vault: each source's latest backup in the vault is restored into a scratch database in a Fargate task
 * of this account, with the vault's copy of the identity, and validated as RestoreTesting does. The same
 * machinery (RestoreTestFleet): one role per source reading that source's prefix of the vault alone and the
 * identity (by the roles' path), a state machine with bounded concurrency, the alarms on the vault monitoring's
 * topic. A cluster and security group of its own (HTTPS out only).
 *
 * Also the role people assume to restore from the vault when the primary account is lost or not to be trusted
 * (`restoreRole`, at `/restorable/restore/`, assumed by this account's principals with MFA): it reads every tested
 * source's backups and the identity, and the runbook names it.
 *
 * Reports: the tests write their reports in the vault under each source's `restore-tests/vault/` (`--reports vault`),
 * apart from the primary's reports, which replication brings to `restore-tests/` and may not write below `vault/`
 * (the vault's bucket policy). The vault's freshness check reads `restore-tests/vault/latest.json` alone, so its
 * overdue alarm (33 days) fires when the vault's own tests stop, however fresh the primary's are.
 */
export class VaultRestoreTesting extends RestoreTestFleet {
  /** The ECS cluster the vault's restore tests run in. */
  public readonly cluster: ecs.Cluster;
  /** The role people assume to restore from the vault: reads every tested source's backups and the identity. */
  public readonly restoreRole: iam.Role;
  /** The restore role's ARN, path included. */
  public readonly restoreRoleArn: string;
  /** The vault's copy of the identity. */
  public readonly identity: IVaultIdentity;
  /** The vault. */
  public readonly store: ReplicaStore;

  constructor(scope: Construct, id: string, props: VaultRestoreTestingProps) {
    let cluster: ecs.Cluster | undefined;
    super(scope, id, (self) => {
      VaultRestoreTesting.check(self, props);
      cluster = new ecs.Cluster(self, 'Cluster', { vpc: props.vpc, containerInsightsV2: ecs.ContainerInsights.ENABLED });
      return {
        ...props,
        identitySecretArn: props.identity.secret.secretArn,
        cluster,
        schedule: props.schedule ?? MONTHLY,
        overdueAfter: props.overdueAfter ?? OVERDUE,
        allowEndpointsFrom: () => false,
        reports: ReportsCopy.VAULT,
      };
    }, () => props.sources);
    this.cluster = cluster!;
    this.store = props.store;
    this.identity = props.identity;
    const roleName = vaultRestoreRoleName(props.store, props.restoreRoleName);
    this.restoreRoleArn = vaultRestoreRoleArn(props.store, props.restoreRoleName);
    this.restoreRole = new iam.Role(this, 'RestoreRole', {
      roleName,
      path: ROLE_PATHS.restore,
      // This account's principals that IAM lets assume it, with MFA: never the primary account's.
      assumedBy: props.restoreRoleAssumedBy ?? new iam.AccountRootPrincipal().withConditions({ Bool: { 'aws:MultiFactorAuthPresent': 'true' } }),
      maxSessionDuration: Duration.hours(12),
      description: 'Restorable: people restoring from the vault (reads the tested sources\' backups and the vault\'s identity)',
    });
    for (const tested of this.tested) this.grantRestore(tested.source.name);
    props.identity.grantIdentityRead(this.restoreRole, { rolePath: ROLE_PATHS.restore });
  }

  /** Tests one more source in the vault; the restore role may read it too. */
  public addSource(props: RestoreTestSourceProps): void {
    super.addSource(props);
    // During construction the role comes after the first sources, and is granted them then.
    if (this.restoreRole) this.grantRestore(props.source.name);
  }

  private grantRestore(source: string): void {
    this.store.grantRestoreRead(this.restoreRole, source);
  }

  private static check(self: Construct, props: VaultRestoreTestingProps): void {
    if (!props?.store || !props.identity || !props.monitoring || !props.vpc || !props.sources) {
      throw new RestorableError(self, 'store, identity, monitoring, vpc and sources are required: the tests restore the vault\'s copies of the sources ' +
        'with the vault\'s identity, in tasks in the VPC, and report through the vault\'s own BackupMonitoring');
    }
    const stack = Stack.of(self);
    if (Stack.of(props.store) !== stack || Stack.of(props.monitoring) !== stack) {
      throw new RestorableError(self, 'store and monitoring must be in the stack of VaultRestoreTesting: the vault\'s account tests the vault, ' +
        'and no other account reads it');
    }
    if (!props.store.isVault) {
      throw new RestorableError(self, 'store is a replica in the primary\'s own account, which RestoreTesting tests (drSchedule): VaultRestoreTesting ' +
        'tests a vault, a ReplicaStore whose primaryAccount is another account');
    }
    if (props.monitoring.store !== props.store) {
      throw new RestorableError(self, 'monitoring watches another store: give the vault\'s own BackupMonitoring, whose store is the vault');
    }
    const assumer = props.restoreRoleAssumedBy?.principalAccount;
    if (assumer && !Token.isUnresolved(assumer) && assumer !== props.store.account) {
      throw new RestorableError(self, `restoreRoleAssumedBy is a principal of account ${assumer}: only the vault's own account (${props.store.account}) may ` +
        'restore from it, or a compromise of that account could read the vault');
    }
    if (!props.sources.length) throw new RestorableError(self, 'sources is empty: give the primary\'s sources to test in the vault (backups.sources)');
  }
}
