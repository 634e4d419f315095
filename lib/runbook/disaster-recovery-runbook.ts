import { CustomResource, Duration, Lazy, Stack } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { RestorableError } from '../shared/errors';
import { BackupKeys } from '../keys/backup-keys';
import { BackupStore } from '../store/backup-store';
import { RUNBOOK_FILE } from '../contract/names';
import { DatabaseBackups } from '../backups/database-backups';
import { grantRunbookWrite, runbookSource, runbookWriter } from './runbook-writer';
import { vaultRestoreRoleArn } from '../restore-testing/vault-restore-testing';


export interface DisasterRecoveryRunbookProps {
  /** The sources to write a runbook for: every source of these backups, including those added later. */
  readonly backups: DatabaseBackups;
  /** The store the backups go to. Its replica, when it has one, gets a copy of every runbook, and the runbook covers the DR path. */
  readonly store: BackupStore;
  /**
   * The key pair whose identity secret the runbook names (and its replica in the DR region).
   * @default - the runbook asks the reader for their own identity file
   */
  readonly keys?: BackupKeys;
  /**
   * When the store's replica is a vault (a ReplicaStore in another account): what its DR path names, known at synth.
   * @default - none; required when the replica is a vault
   */
  readonly vault?: RunbookVaultProps;
  /**
   * How long the writer's logs are kept.
   * @default logs.RetentionDays.ONE_YEAR
   */
  readonly logRetention?: logs.RetentionDays;
}

/** What the runbook's DR path names for a vault in another account. */
export interface RunbookVaultProps {
  /**
   * The vault's copy of the identity (VaultIdentity, in the vault's stack): the DR path reads it, by the partial ARN
   * its deterministic name gives, known at synth.
   */
  readonly identity: { readonly secretPartialArn: string };
  /**
   * The role people assume in the vault's account to restore: the one VaultRestoreTesting makes.
   * @default - the default name VaultRestoreTesting gives it, `restorable-restore-{vault region}`, under `/restorable/restore/`
   */
  readonly restoreRoleName?: string;
}

/**
 * A disaster-recovery runbook per source, rendered at deploy time with the real bucket names, regions and
 * identity secret, and written to `{prefix}{source}/RUNBOOK.md` in the store and in its replica (in the replica's
 * own region), so that it can be read when the primary region is gone: `restorable runbook --source NAME --bucket B`.
 * A vault in another account admits the primary only to replicate: the runbook is written to the store alone, and
 * replication carries it to the vault; its DR path names the vault's account, region, restore role and identity.
 * That copy is the primary account's word: the vault's account writes its own beside it with VaultRunbook.
 * Every step is given with the `restorable` agent and with standard tools alone. Runbooks are rewritten on
 * every deployment that changes a source, a name or the renderer, and left in place when the stack is deleted.
 */
export class DisasterRecoveryRunbook extends Construct {
  /** The function that renders and writes the runbooks. */
  public readonly writer: lambda.IFunction;

  constructor(scope: Construct, id: string, props: DisasterRecoveryRunbookProps) {
    super(scope, id);
    if (!props?.backups || !props.store) {
      throw new RestorableError(this, `backups and store are required: the DatabaseBackups whose sources get a runbook, and the BackupStore they write to`);
    }
    const { store, backups } = props;
    const replica = store.replica;
    if (replica?.isVault && !props.vault) {
      throw new RestorableError(this, `vault is required: the store's replica is a vault in account ${replica.account}, and the runbook's DR path must ` +
        'name the vault\'s copy of the identity and the role to assume there: pass vault: { identity } (the VaultIdentity of the vault\'s stack)');
    }
    if (props.vault && !replica?.isVault) {
      throw new RestorableError(this, 'vault is given, but the store\'s replica is not a vault in another account (ReplicaStore primaryAccount): remove vault');
    }
    const vault = replica?.isVault && props.vault ? {
      account: replica.account,
      restoreRoleArn: vaultRestoreRoleArn(replica, props.vault.restoreRoleName),
      identitySecretArn: props.vault.identity.secretPartialArn,
    } : undefined;
    const { role, writer, renderer } = runbookWriter(this, 'Writes the Restorable disaster-recovery runbooks into the backup store and its replica ' +
      '(not a vault: replication carries them there)', props.logRetention);
    grantRunbookWrite(role, store.bucket.arnForObjects(`${store.prefix}*/${RUNBOOK_FILE}`), store.encryptionKey.keyArn, Stack.of(store).region);
    // A vault admits the primary only to replicate: replication carries the runbooks there.
    if (replica && !vault) {
      grantRunbookWrite(role, replica.bucket.arnForObjects(`${store.prefix}*/${RUNBOOK_FILE}`),
        `arn:${Stack.of(this).partition}:kms:${replica.region}:${replica.account}:key/*`, replica.region, replica.keyAliasName);
    }
    this.writer = writer;

    const runbooks = new CustomResource(this, 'Runbooks', {
      serviceToken: writer.functionArn,
      resourceType: 'Custom::RestorableRunbook',
      serviceTimeout: Duration.minutes(10),
      properties: {
        Bucket: store.bucket.bucketName,
        Region: Stack.of(store).region,
        Prefix: store.prefix,
        ...(replica ? { ReplicaBucket: replica.bucket.bucketName, ReplicaRegion: replica.region } : {}),
        ...(props.keys?.identitySecret ? { IdentitySecretArn: props.keys.identitySecret.secretArn } : {}),
        ...(vault ? { VaultAccount: vault.account, VaultRestoreRoleArn: vault.restoreRoleArn, VaultIdentitySecretArn: vault.identitySecretArn } : {}),
        // Read at synth, so that sources added after this construct get a runbook too.
        Sources: Lazy.string({ produce: () => JSON.stringify(backups.sources.map(runbookSource)) }),
        // A new renderer rewrites the runbooks even when no name changed.
        Renderer: renderer,
      },
    });
    runbooks.node.addDependency(role);
  }
}

