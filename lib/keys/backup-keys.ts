import {
  Annotations, Arn, ArnFormat, Aws, CfnElement, CustomResource, Duration, Lazy, Names, RemovalPolicy, Stack, Token,
} from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { RestorableError } from '../shared/errors';
import { ROLE_PATHS, alarmOnTampering, breakGlassRoleArn, denyDestroyingKey, deploymentRoleArn, rolesUnderPath } from '../shared/trust-boundaries';
import { lambdaAsset } from '../shared/package-root';
import { NODE22_RUNTIME_REASON, acknowledgeNag, acknowledgeWildcard } from '../shared/nag';
import { denyAllButIdentityRoles } from './identity-secret-policy';

/** What a replica key alias looks like, for error messages. */
const EXAMPLE_REPLICA_KEY_ALIAS = 'alias/restorable-secrets';

/** An AWS account id: twelve digits. */
const ACCOUNT_ID = /^\d{12}$/;

/** An age X25519 recipient, as `age-keygen` prints it: `age1` and 58 bech32 characters. */
const AGE_RECIPIENT = /^age1[02-9ac-hj-np-z]{58}$/;

/** What the identity secret's policy denies to all but the key generator, CloudFormation and break-glass. */
const IDENTITY_DESTRUCTIVE_ACTIONS = [
  'secretsmanager:PutSecretValue', 'secretsmanager:DeleteSecret',
  'secretsmanager:RemoveRegionsFromReplication', 'secretsmanager:StopReplicationToReplica',
  // UpdateSecret sets a new value too when given one, and moving the version stages makes an older value current.
  'secretsmanager:UpdateSecret', 'secretsmanager:UpdateSecretVersionStage',
];


export interface BackupKeysProps {
  /**
   * The disaster-recovery region the identity secret is replicated to, so that backups stay readable when
   * the primary region is gone. Required when BackupKeys generates the key pair, unless `vaultAccount` is given
   * (the vault's VaultIdentity is then the offsite copy of the identity; a replica region may still be given).
   *
   * @default - none; an error unless `recipient` or `vaultAccount` is given
   */
  readonly replicaRegion?: string;

  /**
   * The alias of the KMS key that encrypts the replica secret in `replicaRegion`, for example
   * `replicaStore.identityKeyAliasName`. Required with `replicaRegion`.
   *
   * BackupKeys does not create that key: the replica stack (for example its ReplicaStore) does, and must be
   * deployed first.
   * Secrets Manager replicates as its caller (CloudFormation at creation, the key generator at each
   * rotation), so the key policy must let this account's IAM policies grant its use, as the default key
   * policy does; BackupKeys grants the key generator `kms:Encrypt` and restore roles `kms:Decrypt` on it.
   *
   * @default - none; an error when `replicaRegion` is given
   */
  readonly replicaKeyAlias?: string;

  /**
   * The account of a vault (a ReplicaStore in another account) that keeps its own copy of the identity: the
   * identity secret's resource policy and its key's policy let that account's identity copier (a VaultIdentity,
   * whose role lives under `/restorable/identity-copier/`) read and decrypt the identity, and nothing else.
   *
   * The secret then gets a name derived from the construct path (`identitySecretName`), so that the vault's stack
   * can name it at synth. Adding this to BackupKeys already deployed without it replaces the secret: the key
   * generator copies the old secret's identity file, with the identities of every earlier backup, whole into the
   * new one (same generation, same recipient; a higher one puts its new identity in front), and the old secret is
   * retained as it was. If the old secret cannot be read, the deployment fails, naming it, rather than start the
   * new one without it. Needs a stack with an explicit account and region, and a generated key pair.
   *
   * @default - no vault: only this account reads the identity
   */
  readonly vaultAccount?: string;

  /**
   * Which key pair generation is current. Increase it to rotate: a new identity is put in front of the old
   * ones in the same secret, so backups made with earlier keys still decrypt with the same identity file,
   * and dump tasks encrypt to the new recipient from the next deployment on.
   *
   * @default 1
   */
  readonly generation?: number;

  /**
   * Bring your own key: the recipient (`age1…`) of an identity you generated offline with `age-keygen` and
   * keep in your own vault. BackupKeys then creates no secret, no KMS key and no key-generating function.
   *
   * @default - a key pair is generated at deploy time and its identity kept in a replicated secret
   */
  readonly recipient?: string;

  /**
   * With `recipient`: a secret that holds your identity file, so that restore tests can decrypt. Its
   * resource policy and key are yours to manage.
   *
   * @default - no identity available to AWS: restore tests cannot decrypt, and synth warns about it
   */
  readonly identitySecret?: secretsmanager.ISecret;

  /**
   * The role that gets through the denies in an emergency. The identity key's policy denies scheduling its
   * deletion, disabling it and moving or deleting its alias to everyone else; the secret's resource policy denies
   * writing, deleting and un-replicating it (and promoting its DR replica, which inherits the policy) to everyone
   * but this role, the key generator and `deploymentRoleArn`. A role given here may also read the identity,
   * besides the restore roles. Its own IAM policy must still grant those actions; this only exempts it from the
   * denies. Both match the role's ARN by `aws:PrincipalArn`, so its assumed-role sessions get through.
   *
   * @default - the role named `restorable-break-glass` in the stack's account gets through the destructive
   * denies (it need not exist until needed); nobody but restore roles and the key generator reads the identity
   */
  readonly breakGlassRole?: iam.IRole;

  /**
   * The role CloudFormation deploys this stack with, exempt from the secret's write and delete denies because
   * CloudFormation updates the secret's replication and resource policy.
   *
   * @default - the stack synthesizer's CloudFormation execution role, which for the default bootstrap is
   * `cdk-hnb659fds-cfn-exec-role-{account}-{region}`; with a synthesizer that deploys without one (such as
   * CliCredentialsStackSynthesizer), give the role you deploy with
   */
  readonly deploymentRoleArn?: string;

  /**
   * Where to report changes to the keys' and the identity secret's policies and their deletion: an EventBridge
   * rule on CloudTrail management events (PutKeyPolicy, ScheduleKeyDeletion, DisableKey, PutResourcePolicy,
   * DeleteResourcePolicy, DeleteSecret) publishes to this topic, naming the call and the principal. It sees this
   * region only, and needs CloudTrail (any trail, or the event history EventBridge receives by default).
   *
   * @default - no rule: nothing reports a change to the keys' or the secret's policies
   */
  readonly alarmTopic?: sns.ITopic;

  /**
   * Other KMS keys of this region whose policy changes, disabling or deletion the `alarmTopic` rule reports too,
   * for example `store.encryptionKey`.
   *
   * @default - only the identity key
   */
  readonly watchedKeys?: kms.IKey[];
}

/** How grantIdentityRead names a role in the identity secret's policy. */
export interface IdentityReadOptions {
  /**
   * The IAM path (`/…/`) the role lives under, every role under which may read the identity: the secret's policy
   * names the path (ArnLike on `aws:PrincipalArn`) instead of the role, so that it stays short with a role per
   * source, and refers to no role in another stack. Whoever may create roles under the path may read the identity.
   * @default - the policy names the role by its ARN
   */
  readonly rolePath?: string;
}

/**
 * The age key pair that encrypts backups. Dump tasks get only the public `recipient`; the identity (private
 * key) is generated at deploy time by a custom resource, never synthesized, and kept in a Secrets Manager
 * secret that is encrypted with its own KMS key, replicated to the DR region, retained when the stack is
 * deleted, and readable only by roles registered with `grantIdentityRead` (plus an optional break-glass role).
 * With `vaultAccount`, the vault account's identity copier (VaultIdentity) may read it too, and keeps a copy of
 * its own there; the DR region's replica is then optional.
 */
export class BackupKeys extends Construct {
  /** The age recipient (public key) that dump tasks encrypt to. A token when the key is generated. */
  public readonly recipient: string;

  /** The secret holding the age identity file, when there is one. */
  public readonly identitySecret?: secretsmanager.ISecret;

  /** The KMS key that encrypts the identity secret, when BackupKeys created it. */
  public readonly encryptionKey?: kms.IKey;

  /** The account of the vault whose identity copier may read the identity, when `vaultAccount` is given. */
  public readonly vaultAccount?: string;

  /**
   * The identity secret's name, known at synth, when `vaultAccount` is given (otherwise CloudFormation names the
   * secret, and the name is known only once deployed).
   */
  public readonly identitySecretName?: string;

  /** Roles exempt from the secret's GetSecretValue deny; read lazily, so roles registered later count too. */
  private readonly identityReaders: iam.IRole[] = [];
  /** IAM paths whose roles are exempt from that deny, as `aws:PrincipalArn` patterns (`arn:…:role/path/*`). */
  private readonly identityReaderPaths: string[] = [];
  /** The secret policy's deny of GetSecretValue, which gains an ArnNotLike on the first role path. */
  private identityReadDeny?: iam.PolicyStatement;
  /** Role ARNs exempt from the secret's write and delete deny: the key generator's. */
  private readonly identityWriters: string[] = [];
  private readonly replicaRegion?: string;
  private readonly replicaKeyAlias: string;

  constructor(scope: Construct, id: string, props: BackupKeysProps = {}) {
    super(scope, id);
    this.replicaKeyAlias = props.replicaKeyAlias ?? '';

    if (props.vaultAccount !== undefined) {
      this.vaultAccount = this.validateVaultAccount(props);
      this.identitySecretName = `${Names.uniqueResourceName(this, { maxLength: 120 })}-identity`;
    }
    if (props.recipient !== undefined) {
      validateRecipient(this, props.recipient);
      this.recipient = props.recipient;
      this.identitySecret = props.identitySecret;
      if (!props.identitySecret) {
        Annotations.of(this).addWarningV2('@restorable/backup-keys:no-identity-secret',
          'BackupKeys uses your own recipient and no identity secret: restore tests cannot decrypt backups. ' +
          'Pass identitySecret (a secret holding your age identity file) to let restore tests run.');
      }
      return;
    }
    if (props.identitySecret) {
      throw new RestorableError(this, 'identitySecret is for a key you bring: pass recipient too (the age1… line of age-keygen), ' +
        'or leave both out to have BackupKeys generate the key pair');
    }

    if (this.vaultAccount === undefined || props.replicaRegion !== undefined) {
      this.replicaRegion = this.validateReplicaRegion(props.replicaRegion);
      if (!props.replicaKeyAlias) {
        throw new RestorableError(this, `replicaKeyAlias is required: the alias of the KMS key in ${this.replicaRegion} that encrypts the identity's DR ` +
          'copy, for example replicaStore.identityKeyAliasName (the ReplicaStore in that region)');
      }
      validateAlias(this, this.replicaKeyAlias);
    } else if (props.replicaKeyAlias !== undefined) {
      throw new RestorableError(this, 'replicaKeyAlias is for the identity\'s DR copy in replicaRegion: give replicaRegion too, or leave both out ' +
        `to keep the offsite copy in the vault account ${this.vaultAccount} alone`);
    }
    const generation = props.generation ?? 1;
    if (!Number.isInteger(generation) || generation < 1) {
      throw new RestorableError(this, `generation must be a positive integer (1, 2, …), got ${generation}: increase it by one to rotate the key`);
    }

    const key = new kms.Key(this, 'Key', {
      description: 'Encrypts the age identity that opens Restorable backups',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.denyDecryptOutsideSecretsManager(key);
    const breakGlass = breakGlassRoleArn(this, props.breakGlassRole);
    denyDestroyingKey(key, [breakGlass]);
    this.encryptionKey = key;

    const secret = new secretsmanager.Secret(this, 'Identity', {
      description: 'age identity file (private keys) that opens Restorable backups; restore roles only',
      // Named only for a vault, which must name it at synth: naming a secret already deployed would replace it.
      secretName: this.identitySecretName,
      encryptionKey: key,
      // CloudFormation requires an initial value; the key generator replaces it with the identity file.
      // Never change this block: CloudFormation generates a new value whenever it changes.
      generateSecretString: { passwordLength: 32, excludePunctuation: true },
      replicaRegions: this.replicaRegion === undefined ? undefined
        : [{ region: this.replicaRegion, encryptionKey: kms.Key.fromKeyArn(this, 'ReplicaKey', this.replicaKeyArn(this.replicaKeyAlias)) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.identitySecret = secret;
    if (props.breakGlassRole) this.identityReaders.push(props.breakGlassRole);
    this.identityReadDeny = denyAllButIdentityRoles(secret, {
      readers: () => this.identityReaders,
      writeSid: 'OnlyTheGeneratorWritesTheIdentity',
      writeActions: IDENTITY_DESTRUCTIVE_ACTIONS,
      writers: () => [...this.identityWriters, deploymentRoleArn(this, props.deploymentRoleArn), breakGlass],
    });
    if (this.vaultAccount !== undefined) this.admitVaultCopier(secret, key, this.vaultAccount);
    acknowledgeNag(secret, 'SMG4', 'The identity is rotated by raising the generation prop, which appends a key; a Secrets Manager ' +
        'rotation would replace the value and make every older backup undecryptable.');

    const generator = this.keyGenerator(secret, key);
    const keyPair = new CustomResource(this, 'KeyPair', {
      serviceToken: generator.functionArn,
      resourceType: 'Custom::RestorableAgeIdentity',
      serviceTimeout: Duration.minutes(5),
      properties: { SecretId: secret.secretArn, Generation: String(generation) },
    });
    this.recipient = keyPair.getAttString('Recipient');

    if (props.alarmTopic) {
      alarmOnTampering(this, 'TamperingRule', props.alarmTopic, {
        keyArns: [key.keyArn, ...(props.watchedKeys ?? []).map((watched) => watched.keyArn)],
        secretArn: secret.secretArn,
        secretName: secret.secretName,
      });
    }
  }

  /**
   * The identity secret's ARN without the six characters Secrets Manager appends
   * (`arn:…:secretsmanager:REGION:ACCOUNT:secret:NAME`), known at synth, for the vault's VaultIdentity to copy
   * from. Needs `vaultAccount`. Secrets Manager takes it as a SecretId; in IAM policies append `-??????`.
   */
  public identitySourceArn(): string {
    if (this.identitySecretName === undefined) {
      throw new RestorableError(this, 'identitySourceArn() names the identity secret for a vault in another account: give BackupKeys ' +
        'vaultAccount (the vault\'s account id), which names the secret at synth and lets that account\'s identity copier read it');
    }
    const stack = Stack.of(this);
    return `arn:${Aws.PARTITION}:secretsmanager:${stack.region}:${stack.account}:secret:${this.identitySecretName}`;
  }

  /**
   * Lets a restore role read the identity: exempts it from the secret's deny, and grants GetSecretValue and
   * decryption through Secrets Manager, in the primary region and on the replica in the DR region, if any.
   * Never grant this to a dump role: dump tasks need only `recipient`.
   */
  public grantIdentityRead(role: iam.IRole, options: IdentityReadOptions = {}): iam.Grant {
    if (!this.identitySecret) {
      return iam.Grant.drop(role, 'read the age identity, which is not kept in AWS (recipient given without identitySecret)');
    }
    if (!this.encryptionKey) return this.identitySecret.grantRead(role); // a secret brought by the user: its policy is the user's
    // By path, the grant is the role's own policy alone: neither the secret's nor the key's policy names the role.
    // (The secret's grantRead would add the role to the key's policy when it lives in another stack.)
    const primary = options.rolePath ? this.grantIdentityReadToPrincipal(role) : this.identitySecret.grantRead(role);
    if (options.rolePath) {
      this.exemptReaderPath(rolesUnderPath(this, options.rolePath));
    } else if (!this.identityReaders.includes(role)) {
      this.identityReaders.push(role);
    }
    if (this.replicaRegion === undefined) return primary;

    const replicaSecret = iam.Grant.addToPrincipal({
      grantee: role,
      actions: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
      resourceArns: [Arn.format({ ...Arn.split(this.identitySecret.secretArn, ArnFormat.COLON_RESOURCE_NAME), region: this.replicaRegion })],
    });
    const replicaKey = iam.Grant.addToPrincipal({
      grantee: role,
      actions: ['kms:Decrypt'],
      resourceArns: [this.replicaKeyArn('key/*')],
      conditions: {
        'ForAnyValue:StringEquals': { 'kms:ResourceAliases': this.replicaKeyAlias },
        'StringEquals': { 'kms:ViaService': `secretsmanager.${this.replicaRegion}.amazonaws.com` },
      },
    });
    acknowledgeNag(role, this.replicaKeyWildcardFinding(), 'The replica key lives in another stack and is known here only by its alias; the statement is ' +
        'limited to that alias (kms:ResourceAliases) and to decryption through Secrets Manager.');
    return primary.combine(replicaSecret).combine(replicaKey);
  }

  /** Exempts every role whose ARN is like `pattern` from the secret's read deny. */
  private exemptReaderPath(pattern: string): void {
    // Both conditions must hold for the deny: a role named by its ARN or one under an exempt path gets through.
    if (!this.identityReaderPaths.length) {
      this.identityReadDeny!.addCondition('ArnNotLike', { 'aws:PrincipalArn': Lazy.list({ produce: () => this.identityReaderPaths }) });
    }
    if (!this.identityReaderPaths.includes(pattern)) this.identityReaderPaths.push(pattern);
  }

  /**
   * Lets the vault account's identity copier, and no other principal of that account, read the identity: the
   * account is the principal (its role may not exist yet when this deploys), narrowed to the copier's role path.
   * The vault account's own IAM policies must grant the copier the same, as VaultIdentity does.
   */
  private admitVaultCopier(secret: secretsmanager.Secret, key: kms.Key, vaultAccount: string): void {
    const copiers = `arn:${Aws.PARTITION}:iam::${vaultAccount}:role${ROLE_PATHS.identityCopier}*`;
    const vault = new iam.AccountPrincipal(vaultAccount);
    secret.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'TheVaultIdentityCopierReadsTheIdentity',
      principals: [vault],
      actions: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
      resources: ['*'],
      conditions: { ArnLike: { 'aws:PrincipalArn': copiers } },
    }));
    this.exemptReaderPath(copiers);
    key.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'TheVaultIdentityCopierDecryptsThroughSecretsManager',
      principals: [vault],
      actions: ['kms:Decrypt'],
      resources: ['*'],
      conditions: {
        ArnLike: { 'aws:PrincipalArn': copiers },
        StringEquals: { 'kms:ViaService': `secretsmanager.${Stack.of(this).region}.amazonaws.com` },
      },
    }));
  }

  /** GetSecretValue on the identity and decryption with its key through Secrets Manager, in the role's policy only. */
  private grantIdentityReadToPrincipal(role: iam.IRole): iam.Grant {
    const secret = iam.Grant.addToPrincipal({
      grantee: role,
      actions: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
      resourceArns: [this.identitySecret!.secretArn],
    });
    // The key's policy lets this account's IAM policies grant its use (and denies decryption outside Secrets Manager).
    return secret.combine(iam.Grant.addToPrincipal({
      grantee: role,
      actions: ['kms:Decrypt'],
      resourceArns: [this.encryptionKey!.keyArn],
      conditions: { StringEquals: { 'kms:ViaService': `secretsmanager.${Stack.of(this).region}.amazonaws.com` } },
    }));
  }

  /** An ARN of the replica region's KMS resources, such as `alias/…` or `key/*`. */
  private replicaKeyArn(resource: string): string {
    const [kind, ...name] = resource.split('/');
    return Stack.of(this).formatArn({
      service: 'kms', region: this.replicaRegion, resource: kind, resourceName: name.join('/'),
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    });
  }

  /** The cdk-nag finding for `key/*` in the replica region, as cdk-nag spells the resource. */
  private replicaKeyWildcardFinding(): string {
    const account = Stack.of(this).account;
    const shownAccount = Token.isUnresolved(account) ? '<AWS::AccountId>' : account;
    return `IAM5[Resource::arn:<AWS::Partition>:kms:${this.replicaRegion}:${shownAccount}:key/*]`;
  }

  /**
   * Decryption happens only through Secrets Manager, whose resource policy decides who reads the identity.
   * A dump role, or anyone granted `kms:Decrypt` on `*`, cannot use the key directly. (Limiting the key
   * itself to named roles would also lock out Secrets Manager's replication, which decrypts as the caller.)
   */
  private denyDecryptOutsideSecretsManager(key: kms.Key): void {
    key.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'DecryptOnlyThroughSecretsManager',
      effect: iam.Effect.DENY,
      principals: [new iam.AnyPrincipal()],
      actions: ['kms:Decrypt', 'kms:ReEncryptFrom'],
      resources: ['*'],
      conditions: { StringNotEquals: { 'kms:ViaService': `secretsmanager.${Stack.of(this).region}.amazonaws.com` } },
    }));
  }

  /** The function behind the custom resource: the only principal that writes the identity. */
  private keyGenerator(secret: secretsmanager.Secret, key: kms.Key): lambda.Function {
    const logGroup = new logs.LogGroup(this, 'KeyGeneratorLogs', { retention: logs.RetentionDays.ONE_YEAR });
    const role = new iam.Role(this, 'KeyGeneratorRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'Generates the age identity of Restorable backups into its secret',
    });
    logGroup.grantWrite(role);
    this.identityReaders.push(role);
    this.identityWriters.push(role.roleArn);
    role.addToPolicy(new iam.PolicyStatement({
      actions: ['secretsmanager:GetSecretValue', 'secretsmanager:PutSecretValue'],
      resources: [secret.secretArn],
    }));
    this.grantReadOfReplacedSecret(role, secret);
    key.grant(role, 'kms:Decrypt', 'kms:GenerateDataKey');
    if (this.replicaRegion !== undefined) {
      // Secrets Manager replicates each new value as the caller, so the caller must encrypt with the replica key.
      role.addToPolicy(new iam.PolicyStatement({
        actions: ['kms:Encrypt', 'kms:GenerateDataKey'],
        resources: [this.replicaKeyArn('key/*')],
        conditions: { 'ForAnyValue:StringEquals': { 'kms:ResourceAliases': this.replicaKeyAlias } },
      }));
      acknowledgeNag(role, this.replicaKeyWildcardFinding(), 'The replica key lives in another stack and is known here only by its alias; the statement is ' +
          'limited to that alias with kms:ResourceAliases.');
    }

    const generator = new lambda.Function(this, 'KeyGenerator', {
      description: 'Generates the age identity of Restorable backups (custom resource)',
      runtime: lambda.Runtime.NODEJS_22_X,
      handler: 'index.handler',
      code: lambda.Code.fromAsset(lambdaAsset(this, 'key-generator')),
      role,
      logGroup,
      timeout: Duration.minutes(1),
      memorySize: 256,
    });
    acknowledgeNag(generator, 'L1', NODE22_RUNTIME_REASON);
    return generator;
  }

  /**
   * Lets the key generator read the identity secret that CloudFormation replaced (naming the secret for a vault
   * replaces one deployed unnamed), to carry its identity file over: the old secret's ARN is unknown at synth, so
   * the statement names any secret of this account and region, but only those CloudFormation created for this
   * stack under the identity secret's logical id, which are the old and the new identity secret and no other.
   * The old secret keeps its policy, which exempts this role from its read deny, and is encrypted with the same key.
   */
  private grantReadOfReplacedSecret(role: iam.Role, secret: secretsmanager.Secret): void {
    const stack = Stack.of(this);
    const anySecret = stack.formatArn({ service: 'secretsmanager', resource: 'secret', resourceName: '*', arnFormat: ArnFormat.COLON_RESOURCE_NAME });
    role.addToPolicy(new iam.PolicyStatement({
      actions: ['secretsmanager:GetSecretValue'],
      resources: [anySecret],
      conditions: {
        StringEquals: {
          'secretsmanager:ResourceTag/aws:cloudformation:stack-id': Aws.STACK_ID,
          'secretsmanager:ResourceTag/aws:cloudformation:logical-id': stack.getLogicalId(secret.node.defaultChild as CfnElement),
        },
      },
    }));
    acknowledgeWildcard(role, anySecret, 'The identity secret this one replaced is read once, to carry its identity file over; its ARN is ' +
        'unknown at synth, so the statement is limited by the tags CloudFormation puts on the secrets it creates to this stack ' +
        'and the identity secret\'s logical id: the old and the new identity secret, no other secret.');
  }

  /** The vault account, checked: twelve digits, not this stack's account, for a key pair BackupKeys generates. */
  private validateVaultAccount(props: BackupKeysProps): string {
    const vaultAccount = props.vaultAccount!;
    if (props.recipient !== undefined) {
      throw new RestorableError(this, 'vaultAccount copies an identity BackupKeys generates into the vault account, but recipient brings your own key, ' +
        'whose identity is not in AWS: keep a copy of your identity file in the vault account yourself, and leave vaultAccount out');
    }
    if (Token.isUnresolved(vaultAccount) || !ACCOUNT_ID.test(vaultAccount)) {
      throw new RestorableError(this, `vaultAccount must be an AWS account id, twelve digits known at synth, such as '210987654321'; got '${vaultAccount}'`);
    }
    const stack = Stack.of(this);
    if (Token.isUnresolved(stack.account) || Token.isUnresolved(stack.region)) {
      throw new RestorableError(this, 'vaultAccount needs a stack with an explicit env (account and region): the vault\'s stack names the identity ' +
        'secret by its ARN, known at synth; set env: { account, region } on this stack');
    }
    if (vaultAccount === stack.account) {
      throw new RestorableError(this, `vaultAccount ${vaultAccount} is this stack's own account: a vault is in another account, which a compromise ` +
        'of this one cannot reach. For a copy in this account give replicaRegion and replicaKeyAlias instead');
    }
    return vaultAccount;
  }

  private validateReplicaRegion(replicaRegion: string | undefined): string {
    if (replicaRegion === undefined) {
      throw new RestorableError(this, 'replicaRegion is required: the identity secret is replicated to a DR region so that ' +
        'backups stay readable when the primary region is gone (for example replicaRegion: \'eu-west-1\')');
    }
    const stackRegion = Stack.of(this).region;
    if (!Token.isUnresolved(replicaRegion) && !Token.isUnresolved(stackRegion) && replicaRegion === stackRegion) {
      throw new RestorableError(this, `replicaRegion must differ from the stack's region (${replicaRegion}): ` +
        'a copy in the same region does not survive a regional outage');
    }
    return replicaRegion;
  }
}

function validateRecipient(scope: Construct, recipient: string): void {
  if (Token.isUnresolved(recipient) || AGE_RECIPIENT.test(recipient)) return;
  const shown = recipient.startsWith('AGE-SECRET-KEY') ? 'an identity (private key!)' : `'${recipient}'`;
  throw new RestorableError(scope, `recipient must be an age X25519 recipient, 'age1' followed by 58 lowercase characters, as ` +
    `printed by 'age-keygen -y key.txt'; got ${shown}`);
}

function validateAlias(scope: Construct, alias: string): void {
  if (!/^alias\/[a-zA-Z0-9/_-]+$/.test(alias) || alias.startsWith('alias/aws/')) {
    throw new RestorableError(scope, `replicaKeyAlias must be a customer key alias such as '${EXAMPLE_REPLICA_KEY_ALIAS}', got '${alias}'`);
  }
}
