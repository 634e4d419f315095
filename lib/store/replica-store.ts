import { Aws, Names, PhysicalName, RemovalPolicy, Stack, Token } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { BackupBucket, BackupBucketProps, keyExemptions } from './backup-bucket';
import { denyDestroyingKey } from '../shared/trust-boundaries';
import { RestorableError } from '../shared/errors';

/** Properties of the offsite copy; its region and account are those of the stack it lives in. */
export type ReplicaStoreProps = BackupBucketProps;

/**
 * The offsite copy of a BackupStore, in a stack of another region: its own bucket, KMS key (rotation on),
 * Object Lock and lifecycle. The primary refers to it by names known at synth (a generated bucket name and
 * the key's alias ARN), so the two stacks never reference each other's outputs and cannot form a cycle.
 */
export class ReplicaStore extends BackupBucket {
  /** The region that holds the copy. */
  public readonly region: string;
  /** The account that owns the copy. */
  public readonly account: string;
  /** The alias of the replica's key, derived from the construct path. */
  public readonly keyAliasName: string;
  /** The alias ARN, accepted by S3 replication's `ReplicaKmsKeyID` and Secrets Manager replicas' `KmsKeyId`. */
  public readonly keyAliasArn: string;
  /**
   * The KMS key (rotation on, always retained) that encrypts the DR copy of BackupKeys' identity secret, apart from
   * the backups' key: whoever may decrypt backups in the replica does not thereby read the identity.
   */
  public readonly identityKey: kms.IKey;
  /** The alias of `identityKey`, for BackupKeys' `replicaKeyAlias`. */
  public readonly identityKeyAliasName: string;

  constructor(scope: Construct, id: string, props: ReplicaStoreProps = {}) {
    const stack = Stack.of(scope);
    if (Token.isUnresolved(stack.region) || Token.isUnresolved(stack.account)) {
      throw new RestorableError(`${scope.node.path}/${id}`, 'a ReplicaStore needs a stack with an explicit env (account and region), ' +
        'because the primary store refers to it by names known at synth; set env: { account, region } on its stack');
    }
    super(scope, id, props, { bucketName: PhysicalName.GENERATE_IF_NEEDED, withKeyAlias: true });
    this.region = stack.region;
    this.account = stack.account;
    this.keyAliasName = this.keyAlias!;
    this.keyAliasArn = `arn:${Aws.PARTITION}:kms:${this.region}:${this.account}:${this.keyAliasName}`;

    this.identityKeyAliasName = `alias/${Names.uniqueResourceName(this, { maxLength: 110 })}-identity`;
    const identityKey = new kms.Key(this, 'IdentityKey', {
      description: `Encrypts the DR copy of the age identity that opens the backups in ${this.node.path}`,
      enableKeyRotation: true,
      alias: this.identityKeyAliasName,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    denyDestroyingKey(identityKey, keyExemptions(this, props.breakGlassRole, RemovalPolicy.RETAIN));
    // As in the primary region: only Secrets Manager decrypts, and the secret's resource policy decides for whom.
    identityKey.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'DecryptOnlyThroughSecretsManager',
      effect: iam.Effect.DENY,
      principals: [new iam.AnyPrincipal()],
      actions: ['kms:Decrypt', 'kms:ReEncryptFrom'],
      resources: ['*'],
      conditions: { StringNotEquals: { 'kms:ViaService': `secretsmanager.${this.region}.amazonaws.com` } },
    }));
    this.identityKey = identityKey;
  }
}
