import { CustomResource, Duration, Lazy, Stack, Token } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { RestorableError } from '../shared/errors';
import { ReportsCopy, RUNBOOK_FILE } from '../contract/names';
import { DatabaseBackups } from '../backups/database-backups';
import { ReplicaStore } from '../store/replica-store';
import { vaultRestoreRoleArn } from '../restore-testing/vault-restore-testing';
import { grantRunbookWrite, runbookSource, runbookWriter } from './runbook-writer';

export interface VaultRunbookProps {
  /**
   * The primary's backups, in the primary's stack: only their sources' names and engines are read, at synth; nothing
   * of that stack is referred to. Every source, including those added later, gets a runbook.
   */
  readonly backups: DatabaseBackups;
  /** The vault: a ReplicaStore in another account than its primary, in this stack. */
  readonly store: ReplicaStore;
  /** The vault's copy of the identity (VaultIdentity, in this stack), by the partial ARN its deterministic name gives. */
  readonly identity: { readonly secretPartialArn: string };
  /**
   * The role people assume in the vault's account to restore: the one VaultRestoreTesting makes, which reads the
   * sources it tests (test them all).
   * @default - the default name VaultRestoreTesting gives it, `restorable-restore-{vault region}`, under `/restorable/restore/`
   */
  readonly restoreRoleName?: string;
  /**
   * How long the writer's logs are kept.
   * @default logs.RetentionDays.ONE_YEAR
   */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * The vault's own disaster-recovery runbook per source, written by the vault's account into the vault at
 * `{prefix}{source}/vault/RUNBOOK.md`, which the vault's bucket policy lets no replication write. The runbook at
 * `{prefix}{source}/RUNBOOK.md` in the vault is the primary account's (DisasterRecoveryRunbook), carried there by
 * replication: after a compromise of the primary account, its commands are the attacker's to choose. This one
 * names only what the vault's stack knows (the vault's bucket, region and account, its restore role and its copy of
 * the identity) and has the DR path alone: `restorable runbook --vault --source NAME --bucket VAULT`.
 *
 * The writer runs in the vault's account under the runbook-writer path, the only one (with break-glass) the vault's
 * write-once policy lets write a `RUNBOOK.md` key, and only with If-Match or If-None-Match. Runbooks are rewritten on
 * every deployment that changes a source, a name or the renderer, and left in place when the stack is deleted.
 */
export class VaultRunbook extends Construct {
  /** The function that renders and writes the vault's runbooks. */
  public readonly writer: lambda.IFunction;

  constructor(scope: Construct, id: string, props: VaultRunbookProps) {
    super(scope, id);
    VaultRunbook.check(this, props);
    const { store, backups } = props;
    const { role, writer, renderer } = runbookWriter(this, 'Writes the Restorable vault\'s own disaster-recovery runbooks into the vault ' +
      '({source}/vault/RUNBOOK.md)', props.logRetention);
    grantRunbookWrite(role, store.bucket.arnForObjects(`${store.prefix}*/${ReportsCopy.VAULT}/${RUNBOOK_FILE}`), store.encryptionKey.keyArn, store.region);
    this.writer = writer;

    const runbooks = new CustomResource(this, 'Runbooks', {
      serviceToken: writer.functionArn,
      resourceType: 'Custom::RestorableRunbook',
      serviceTimeout: Duration.minutes(10),
      properties: {
        Copy: ReportsCopy.VAULT,
        Bucket: store.bucket.bucketName,
        Region: store.region,
        Prefix: store.prefix,
        VaultAccount: store.account,
        VaultRestoreRoleArn: vaultRestoreRoleArn(store, props.restoreRoleName),
        VaultIdentitySecretArn: props.identity.secretPartialArn,
        // Plain names and engines, read at synth: the primary's stack is never referred to.
        Sources: Lazy.string({ produce: () => JSON.stringify(backups.sources.map(runbookSource)) }),
        // A new renderer rewrites the runbooks even when no name changed.
        Renderer: renderer,
      },
    });
    runbooks.node.addDependency(role);
  }

  private static check(self: Construct, props: VaultRunbookProps): void {
    if (!props?.backups || !props.store || !props.identity) {
      throw new RestorableError(self, 'backups, store and identity are required: the primary\'s DatabaseBackups whose sources get a runbook, ' +
        'the vault (a ReplicaStore in another account) it is written to, and the vault\'s VaultIdentity that the runbook names');
    }
    const { store } = props;
    if (!store.isVault) {
      throw new RestorableError(self, 'store is a replica in the primary\'s own account, whose runbooks DisasterRecoveryRunbook writes: VaultRunbook ' +
        'writes a vault\'s, a ReplicaStore whose primaryAccount is another account');
    }
    if (Stack.of(store) !== Stack.of(self)) {
      throw new RestorableError(self, 'store must be in the stack of VaultRunbook: the vault\'s own account writes the vault\'s runbook');
    }
    // The partial ARN is known at synth but for the partition: it must name this account and region.
    const arn = props.identity.secretPartialArn;
    const expected = `:secretsmanager:${store.region}:${store.account}:secret:`;
    if (typeof arn !== 'string' || !arn.includes(expected) || Token.isUnresolved(arn.slice(arn.indexOf(expected)))) {
      throw new RestorableError(self, `identity names the secret ${JSON.stringify(arn)}, not one of the vault (${store.account}, ${store.region}): ` +
        'give the VaultIdentity of the vault\'s stack');
    }
  }
}
