import { Aws, Duration, Lazy, Names, RemovalPolicy, Stack, Token } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { InlinePolicyRole } from '../backups/inline-policy-role';
import { METRIC_NAMESPACE } from '../contract/metrics';
import { RestorableError, wholeMinutes } from '../shared/errors';
import { NODE22_RUNTIME_REASON, acknowledgeNag, acknowledgeWildcard } from '../shared/nag';
import { lambdaAsset } from '../shared/package-root';
import { ROLE_PATHS, alarmOnTampering, breakGlassRoleArn, deploymentRoleArn, rolesUnderPath } from '../shared/trust-boundaries';
import { ReplicaStore } from '../store/replica-store';
import { BackupKeys, IdentityReadOptions } from './backup-keys';
import { VAULT_IDENTITY_DIMENSION, VAULT_IDENTITY_KEYS } from './vault-identity-metrics';
import { denyAllButIdentityRoles } from './identity-secret-policy';

/**
 * What the vault secret's policy denies to all but the copier, CloudFormation and break-glass: every call that
 * writes a value, moves the current version, copies it elsewhere or deletes the secret.
 */
const VAULT_IDENTITY_DESTRUCTIVE_ACTIONS = [
  'secretsmanager:PutSecretValue', 'secretsmanager:UpdateSecret', 'secretsmanager:UpdateSecretVersionStage',
  'secretsmanager:ReplicateSecretToRegions', 'secretsmanager:DeleteSecret',
];

/** How many copy intervals may pass without a successful copy before the stale alarm speaks. */
const STALE_INTERVALS = 3;

export interface VaultIdentityProps {
  /**
   * The primary account's BackupKeys, given `vaultAccount` (this stack's account): its identity secret is copied.
   * Only names known at synth are read from it, so the two stacks never refer to each other's outputs.
   */
  readonly keys: BackupKeys;
  /** The vault (the ReplicaStore of this account) whose `identityKey` encrypts the copy. */
  readonly store: ReplicaStore;
  /**
   * Where the copier's failures and a copy gone stale alarm, and where changes to the copy's policy or key are
   * reported.
   */
  readonly alarmTopic: sns.ITopic;
  /**
   * How often the copier reads the primary's identity. A rotation there reaches the vault within this interval; the
   * stale alarm speaks after three intervals without a successful copy. Whole minutes, from 5 minutes to 1 day.
   * @default Duration.hours(1)
   */
  readonly copyInterval?: Duration;
  /**
   * The role of this account that gets through the copy's denies in an emergency (writing, deleting it), and may
   * read it. Its own IAM policy must still grant those actions.
   * @default - the role named `restorable-break-glass` in this account gets through the write and delete denies
   * (it need not exist until needed); nobody but restore roles and the copier reads the copy
   */
  readonly breakGlassRole?: iam.IRole;
  /**
   * The role CloudFormation deploys this stack with, exempt from the copy's write deny because CloudFormation
   * creates the secret and updates its description and key.
   * @default - the stack synthesizer's CloudFormation execution role (`cdk-hnb659fds-cfn-exec-role-{account}-{region}`
   * for the default bootstrap)
   */
  readonly deploymentRoleArn?: string;
}

/**
 * The vault account's own copy of the age identity, so that the vault's backups can be restored when the primary
 * account is lost or compromised. Secrets Manager replicates only within an account, so a function of this account
 * (the copier, under `/restorable/identity-copier/`, the only role of this account the primary's BackupKeys
 * admits) reads the primary's identity secret on a schedule and merges it into a secret of its own: the primary's
 * file first, then every key the copy held before. A key is never dropped, and anything that is not an age identity
 * file holding a key is refused, so that an attacker in the primary account can neither empty the copy nor replace
 * it. It writes only when the file changed.
 *
 * The copy is encrypted with the vault's `identityKey`, retained when the stack is deleted, and its resource policy
 * denies reading to all but the roles given to `grantIdentityRead`, and writing to all but the copier,
 * CloudFormation and break-glass. Alarms on `alarmTopic` when a copy fails, when none succeeded for three intervals,
 * and when the copy's policy or key is changed.
 */
export class VaultIdentity extends Construct {
  /** The vault's copy of the identity file. */
  public readonly secret: secretsmanager.ISecret;
  /** The same secret, under the name BackupKeys gives it, for code that reads either. */
  public readonly identitySecret: secretsmanager.ISecret;
  /** The copy's name, known at synth. */
  public readonly secretName: string;
  /**
   * The copy's ARN without the six characters Secrets Manager appends, known at synth, so that another stack (the
   * primary's runbook) can name it: `arn:…:secretsmanager:REGION:ACCOUNT:secret:NAME`. A valid SecretId.
   */
  public readonly secretPartialArn: string;
  /** The primary's identity secret the copier reads: `keys.identitySourceArn()`. */
  public readonly sourceSecretArn: string;
  /** The copier. */
  public readonly copier: lambda.IFunction;
  /** The copier's role, under ROLE_PATHS.identityCopier. */
  public readonly copierRole: iam.IRole;
  /** A copy failed: the primary's secret was unreadable or refused (not an identity file, no key), or the copy could not be written. */
  public readonly copyFailedAlarm: cloudwatch.Alarm;
  /** No copy succeeded for three intervals (or the copier has not run). */
  public readonly copyStaleAlarm: cloudwatch.Alarm;
  /** How often the copier runs. */
  public readonly copyInterval: Duration;

  private readonly store: ReplicaStore;
  /** Roles exempt from the read deny, by ARN; read lazily, so roles registered later count too. */
  private readonly readers: iam.IRole[] = [];
  /** IAM paths whose roles are exempt from the read deny, as `aws:PrincipalArn` patterns. */
  private readonly readerPaths: string[] = [];
  private readonly readDeny: iam.PolicyStatement;

  constructor(scope: Construct, id: string, props: VaultIdentityProps) {
    super(scope, id);
    if (!props?.keys || !props.store || !props.alarmTopic) {
      throw new RestorableError(this, 'keys, store and alarmTopic are required: the primary account\'s BackupKeys (with vaultAccount), ' +
        'the vault\'s ReplicaStore whose identityKey encrypts the copy, and the topic its alarms notify');
    }
    this.store = props.store;
    const { primaryAccount, primaryRegion } = this.validate(props);
    const stack = Stack.of(this);
    const problems: string[] = [];
    this.copyInterval = props.copyInterval ?? Duration.hours(1);
    wholeMinutes('copyInterval', this.copyInterval, { min: 5, max: 1440, example: 'Duration.hours(1)',
      why: 'the copier runs on an EventBridge rate, and its alarms look at whole intervals' }, problems);
    if (problems.length) throw new RestorableError(this, problems.join('; '));
    this.sourceSecretArn = props.keys.identitySourceArn();

    // The copy: named at synth, so that the primary's runbook can name it.
    this.secretName = `${Names.uniqueResourceName(this, { maxLength: 120 })}-identity`;
    this.secretPartialArn = `arn:${Aws.PARTITION}:secretsmanager:${stack.region}:${stack.account}:secret:${this.secretName}`;
    const secret = new secretsmanager.Secret(this, 'Secret', {
      description: 'Vault copy of the age identity file that opens Restorable backups, copied from the primary account; restore roles only',
      secretName: this.secretName,
      encryptionKey: props.store.identityKey,
      // CloudFormation requires an initial value; the copier replaces it with the identity file. Never change this
      // block: CloudFormation generates a new value whenever it changes (the copier would then merge from the previous).
      generateSecretString: { passwordLength: 32, excludePunctuation: true },
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.secret = secret;
    this.identitySecret = secret;
    acknowledgeNag(secret, 'SMG4', 'The copy follows the primary\'s identity, which is rotated by raising BackupKeys\' generation (a key is ' +
      'appended); a Secrets Manager rotation would replace the value and make every older backup undecryptable in the vault.');

    const role = new InlinePolicyRole(this, 'CopierRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      path: ROLE_PATHS.identityCopier,
      description: `Copies the age identity from the primary account ${primaryAccount} into ${this.node.path}: the only writer of the copy`,
    });
    this.copierRole = role;
    if (props.breakGlassRole) this.readers.push(props.breakGlassRole);
    this.readers.push(role);

    this.readDeny = denyAllButIdentityRoles(secret, {
      readers: () => this.readers,
      writeSid: 'OnlyTheCopierWritesTheIdentity',
      writeActions: VAULT_IDENTITY_DESTRUCTIVE_ACTIONS,
      writers: () => [role.roleArn, deploymentRoleArn(this, props.deploymentRoleArn), breakGlassRoleArn(this, props.breakGlassRole)],
    });

    this.grantCopier(role, secret, primaryAccount, primaryRegion);
    const logGroup = new logs.LogGroup(this, 'CopierLogs', { retention: logs.RetentionDays.ONE_YEAR });
    logGroup.grantWrite(role);
    const fn = new lambda.Function(this, 'Copier', {
      description: `Restorable identity copier of ${this.node.path}: merges the primary account's age identity into the vault's copy, never dropping a key`,
      runtime: lambda.Runtime.NODEJS_22_X,
      handler: 'index.handler',
      code: lambda.Code.fromAsset(lambdaAsset(this, 'identity-copier')),
      role,
      logGroup,
      timeout: Duration.minutes(1),
      memorySize: 256,
      environment: {
        SOURCE_SECRET_ARN: this.sourceSecretArn,
        TARGET_SECRET_ID: secret.secretArn,
        METRIC_IDENTITY: this.secretName,
      },
    });
    acknowledgeNag(fn, 'L1', NODE22_RUNTIME_REASON);
    this.copier = fn;
    new events.Rule(this, 'Schedule', {
      description: `Copies the age identity from the primary account ${primaryAccount} into the vault`,
      schedule: events.Schedule.rate(this.copyInterval),
      targets: [new targets.LambdaFunction(fn, { retryAttempts: 2 })],
    });

    const action = new cwActions.SnsAction(props.alarmTopic);
    this.copyFailedAlarm = this.metricCopyErrors().createAlarm(this, 'CopyFailedAlarm', {
      alarmDescription: `The identity copier of ${this.node.path} failed: the primary's identity secret ${this.sourceSecretArn} could not be read, ` +
        'was refused (not an age identity file, or no key in it: someone changed it), or the copy could not be written. The copy keeps every key ' +
        'it held. The copier\'s log says which; a refused primary means the primary account\'s identity secret must be put back.',
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.copyStaleAlarm = this.metricKeys({ statistic: cloudwatch.Stats.SAMPLE_COUNT }).createAlarm(this, 'CopyStaleAlarm', {
      alarmDescription: `No copy of the age identity into ${this.node.path} succeeded for ${STALE_INTERVALS} intervals of ` +
        `${this.copyInterval.toHumanString()}: a rotation in the primary account has not reached the vault. See the copy-failed alarm and ` +
        'the copier\'s log.',
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: STALE_INTERVALS,
      datapointsToAlarm: STALE_INTERVALS,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });
    this.copyFailedAlarm.addAlarmAction(action);
    this.copyStaleAlarm.addAlarmAction(action);
    alarmOnTampering(this, 'TamperingRule', props.alarmTopic, {
      keyArns: [props.store.identityKey.keyArn],
      secretArn: secret.secretArn,
      secretName: this.secretName,
    });
  }

  /**
   * Lets a restore role of this account read the copy: exempts it from the copy's read deny (by its ARN, or every
   * role under `rolePath`), and grants GetSecretValue and decryption with the vault's identity key through Secrets
   * Manager. Never grant this to a role the primary account can assume.
   */
  public grantIdentityRead(role: iam.IRole, options: IdentityReadOptions = {}): iam.Grant {
    if (!options.rolePath) {
      if (!this.readers.includes(role)) this.readers.push(role);
      return this.secret.grantRead(role);
    }
    // By path, the grant is the role's own policy alone: neither the secret's nor the key's policy names the role.
    if (!this.readerPaths.length) {
      // Both conditions must hold for the deny: a role named by its ARN or one under a granted path gets through.
      this.readDeny.addCondition('ArnNotLike', { 'aws:PrincipalArn': Lazy.list({ produce: () => this.readerPaths }) });
    }
    const pattern = rolesUnderPath(this, options.rolePath);
    if (!this.readerPaths.includes(pattern)) this.readerPaths.push(pattern);
    const read = iam.Grant.addToPrincipal({
      grantee: role,
      actions: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
      resourceArns: [this.secret.secretArn],
    });
    return read.combine(iam.Grant.addToPrincipal({
      grantee: role,
      actions: ['kms:Decrypt'],
      resourceArns: [this.store.identityKey.keyArn],
      conditions: { StringEquals: { 'kms:ViaService': `secretsmanager.${Stack.of(this).region}.amazonaws.com` } },
    }));
  }

  /** How many keys the copy holds, published after each successful copy: the minimum over one interval by default. */
  public metricKeys(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: METRIC_NAMESPACE,
      metricName: VAULT_IDENTITY_KEYS,
      dimensionsMap: { [VAULT_IDENTITY_DIMENSION]: this.secretName },
      statistic: cloudwatch.Stats.MINIMUM,
      period: this.copyInterval,
      ...props,
    });
  }

  /** The copier's failed runs: the sum over one interval by default. */
  public metricCopyErrors(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.copier.metricErrors({ statistic: cloudwatch.Stats.SUM, period: this.copyInterval, ...props });
  }

  /** Reading the primary's secret (and decrypting it through Secrets Manager there); reading and writing the copy; the metric. */
  private grantCopier(role: InlinePolicyRole, secret: secretsmanager.Secret, primaryAccount: string, primaryRegion: string): void {
    const source = `${this.sourceSecretArn}-??????`;
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['secretsmanager:GetSecretValue'],
      resources: [source],
    }));
    // `?` matches one character each: Secrets Manager's six random ones, unknown until the primary account creates it.
    const primaryKeys = `arn:${Aws.PARTITION}:kms:${primaryRegion}:${primaryAccount}:key/*`;
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['kms:Decrypt'],
      resources: [primaryKeys],
      conditions: { StringEquals: { 'kms:ViaService': `secretsmanager.${primaryRegion}.amazonaws.com` } },
    }));
    acknowledgeWildcard(role, primaryKeys, 'The primary\'s identity key lives in another account and is known here by no name; the statement is ' +
      'limited to decryption through Secrets Manager in the primary\'s region, and that key\'s own policy admits this role\'s path alone.');
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['secretsmanager:GetSecretValue', 'secretsmanager:PutSecretValue'],
      resources: [secret.secretArn],
    }));
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
      resources: [this.store.identityKey.keyArn],
      conditions: { StringEquals: { 'kms:ViaService': `secretsmanager.${Stack.of(this).region}.amazonaws.com` } },
    }));
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['cloudwatch:PutMetricData'],
      resources: ['*'],
      conditions: { StringEquals: { 'cloudwatch:namespace': METRIC_NAMESPACE } },
    }));
    acknowledgeNag(role, 'IAM5[Resource::*]', `cloudwatch:PutMetricData has no resource-level permissions; the cloudwatch:namespace condition limits it to the ${METRIC_NAMESPACE} namespace`);
  }

  /** The primary's account and region, after checking that keys, store and this stack make a vault. */
  private validate(props: VaultIdentityProps): { primaryAccount: string; primaryRegion: string } {
    const stack = Stack.of(this);
    if (Token.isUnresolved(stack.account) || Token.isUnresolved(stack.region)) {
      throw new RestorableError(this, 'a VaultIdentity needs a stack with an explicit env (account and region): the primary account\'s ' +
        'BackupKeys admits this account by its id; set env: { account, region } on this stack');
    }
    const keysStack = Stack.of(props.keys);
    const primaryAccount = keysStack.account;
    if (props.keys.vaultAccount === undefined) {
      throw new RestorableError(this, `keys: the BackupKeys ${props.keys.node.path} has no vaultAccount, so its identity secret admits no ` +
        `copier of another account: give it vaultAccount: '${stack.account}'`);
    }
    if (props.keys.vaultAccount !== stack.account) {
      throw new RestorableError(this, `keys: the BackupKeys ${props.keys.node.path} admits the vault account ${props.keys.vaultAccount}, ` +
        `but this stack is in ${stack.account}: give it vaultAccount: '${stack.account}', or put the VaultIdentity in the stack of account ` +
        `${props.keys.vaultAccount}`);
    }
    if (props.store.account !== stack.account || props.store.region !== stack.region) {
      throw new RestorableError(this, `store: the ReplicaStore ${props.store.node.path} is in ${props.store.account} ${props.store.region}, ` +
        `not in this stack's ${stack.account} ${stack.region}: give the vault's ReplicaStore of this account`);
    }
    return { primaryAccount, primaryRegion: keysStack.region };
  }
}
