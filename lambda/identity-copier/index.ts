/**
 * The vault's identity copier (VaultIdentity), on a schedule: reads the primary account's identity secret by its
 * ARN, checks that it is an age identity file holding at least one key, and merges it into the vault's own secret
 * (the primary's file first, then every key the vault held that the primary no longer has: no key is ever dropped).
 * It writes only when the merged file differs, and publishes how many keys the vault holds after each successful
 * run; a refused or unreadable primary fails the run, leaving the vault's copy as it was.
 *
 * No identity leaves this function but into the vault's secret: not in a log line, not in an error (every failure
 * is said by `describeFailure`, which redacts identities and quotes no value).
 */
import { CloudWatchClient, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { GetSecretValueCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { METRIC_NAMESPACE } from '../../lib/contract/metrics';
import { VAULT_IDENTITY_DIMENSION, VAULT_IDENTITY_KEYS } from '../../lib/keys/vault-identity-metrics';
import { redactIdentities } from '../key-generator/identity-file';
import { checkedIdentityFile, identityBlocks, IdentityFileRefused, mergeIdentityFiles } from './merge';

/** Where the copier reads and writes, from the function's environment (VaultIdentity sets it). */
export interface CopierSettings {
  /** The primary's identity secret: its ARN, with or without the six-character suffix. */
  readonly sourceSecretArn: string;
  /** The vault's own secret, by ARN or name. */
  readonly targetSecretId: string;
  /** The value of the metric's dimension: the vault secret's name. */
  readonly metricIdentity: string;
}

export interface CopierClients {
  /** A client in the primary secret's region. */
  readonly source: SecretsManagerClient;
  /** A client in the vault's region. */
  readonly target: SecretsManagerClient;
  readonly cloudwatch: CloudWatchClient;
}

export interface CopyResult {
  /** `copied` when the vault's secret got a new version, `unchanged` when it already held the merged file. */
  readonly outcome: 'copied' | 'unchanged';
  readonly keys: number;
  readonly fromPrimary: number;
  readonly keptFromVault: number;
}

const ACCESS_HINT = 'the primary\'s BackupKeys must name this account as vaultAccount (its secret\'s and key\'s policies then admit ' +
  'roles under /restorable/identity-copier/ of this account), and this function\'s role must allow secretsmanager:GetSecretValue on the ' +
  'secret and kms:Decrypt through Secrets Manager on its key';

export function settingsFromEnv(): CopierSettings {
  const required = (name: string) => {
    const value = process.env[name];
    if (!value) throw new Error(`environment variable ${name} is not set: the VaultIdentity construct sets it`);
    return value;
  };
  return {
    sourceSecretArn: required('SOURCE_SECRET_ARN'),
    targetSecretId: required('TARGET_SECRET_ID'),
    metricIdentity: required('METRIC_IDENTITY'),
  };
}

/** The region of a Secrets Manager ARN (`arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME`). */
export function regionOfSecretArn(arn: string): string {
  const parts = arn.split(':');
  if (parts.length < 7 || parts[0] !== 'arn' || parts[2] !== 'secretsmanager' || parts[5] !== 'secret' || !parts[3]) {
    throw new Error(`'${arn}' is not a Secrets Manager secret ARN (arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME)`);
  }
  return parts[3];
}

let clients: CopierClients | undefined;

export async function handler(): Promise<CopyResult> {
  let settings: CopierSettings;
  try {
    settings = settingsFromEnv();
    // The source client must be in the primary's region: a secret is read through its own region's endpoint.
    clients ??= {
      source: new SecretsManagerClient({ region: regionOfSecretArn(settings.sourceSecretArn) }),
      target: new SecretsManagerClient({}),
      cloudwatch: new CloudWatchClient({}),
    };
  } catch (error) {
    throw failed(error);
  }
  return copyIdentity(clients, settings);
}

/** One copy: read both, refuse a bad primary, merge, write on change, publish the key count. Throws on any failure. */
export async function copyIdentity(aws: CopierClients, settings: CopierSettings): Promise<CopyResult> {
  try {
    const vault = await readVault(aws.target, settings.targetSecretId);
    const heldKeys = new Set(identityBlocks(vault.text).map((block) => block.identity)).size;
    const primaryText = await readPrimary(aws.source, settings.sourceSecretArn);
    let primaryBlocks;
    try {
      primaryBlocks = await checkedIdentityFile(primaryText, `the primary's identity secret ${settings.sourceSecretArn}`);
    } catch (error) {
      if (error instanceof IdentityFileRefused) {
        throw new IdentityFileRefused(`${error.message}; the vault's copy keeps its ${heldKeys} key${heldKeys === 1 ? '' : 's'} unchanged. ` +
          'Find who changed the primary\'s identity secret, and put back its previous version (AWSPREVIOUS) there');
      }
      throw error;
    }
    const merged = mergeIdentityFiles(primaryBlocks, vault.text);
    const changed = merged.text !== vault.current;
    if (changed) {
      try {
        await aws.target.send(new PutSecretValueCommand({ SecretId: settings.targetSecretId, SecretString: merged.text }));
      } catch (error) {
        throw new Error(`writing the vault's identity secret ${settings.targetSecretId} failed: ${nameAndMessage(error)}`);
      }
    }
    await aws.cloudwatch.send(new PutMetricDataCommand({
      Namespace: METRIC_NAMESPACE,
      MetricData: [{
        MetricName: VAULT_IDENTITY_KEYS, Value: merged.keys, Unit: 'Count',
        Dimensions: [{ Name: VAULT_IDENTITY_DIMENSION, Value: settings.metricIdentity }],
      }],
    }));
    const result: CopyResult = {
      outcome: changed ? 'copied' : 'unchanged', keys: merged.keys, fromPrimary: merged.fromPrimary, keptFromVault: merged.keptFromVault,
    };
    console.log(JSON.stringify({ source: settings.sourceSecretArn, target: settings.targetSecretId, ...result }));
    return result;
  } catch (error) {
    throw failed(error);
  }
}

/** Logs the failure, redacted, and returns the error to throw: its message is the same redacted line. */
function failed(error: unknown): Error {
  const reason = describeFailure(error);
  console.error(JSON.stringify({ outcome: error instanceof IdentityFileRefused ? 'refused' : 'failed', reason }));
  const thrown = new Error(reason);
  thrown.name = error instanceof IdentityFileRefused ? error.name : 'IdentityCopyFailed';
  return thrown;
}

/** A one-line reason, with anything resembling an identity redacted. */
export function describeFailure(error: unknown): string {
  return redactIdentities(error instanceof Error ? error.message : String(error)).slice(0, 1000);
}

function nameAndMessage(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

async function readPrimary(source: SecretsManagerClient, arn: string): Promise<string> {
  let value;
  try {
    value = await source.send(new GetSecretValueCommand({ SecretId: arn }));
  } catch (error) {
    const name = error instanceof Error ? error.name : '';
    const hint = name === 'AccessDeniedException' || name === 'DecryptionFailure' ? ACCESS_HINT
      : name === 'ResourceNotFoundException' ? 'deploy the primary\'s stack with BackupKeys vaultAccount (which names the secret), and check that it names this secret'
        : undefined;
    throw new Error(`reading the primary's identity secret ${arn} failed: ${nameAndMessage(error)}${hint ? `; ${hint}` : ''}`);
  }
  if (value.SecretString === undefined) {
    throw new IdentityFileRefused(`the primary's identity secret ${arn} holds binary data, not an age identity file; nothing was copied`);
  }
  return value.SecretString;
}

/**
 * The vault's file to merge into, and its current value to compare with. When the current value holds no identity
 * (CloudFormation's placeholder before the first copy, or an overwrite by mistake), the previous version, if it holds
 * identities, is merged into instead, so that a mistaken write cannot make the copier drop keys.
 */
async function readVault(target: SecretsManagerClient, secretId: string): Promise<{ text: string; current: string }> {
  try {
    const current = (await target.send(new GetSecretValueCommand({ SecretId: secretId }))).SecretString ?? '';
    if (identityBlocks(current).length) return { text: current, current };
    try {
      const previous = (await target.send(new GetSecretValueCommand({ SecretId: secretId, VersionStage: 'AWSPREVIOUS' }))).SecretString ?? '';
      if (identityBlocks(previous).length) return { text: previous, current };
    } catch (error) {
      if (!(error instanceof Error && error.name === 'ResourceNotFoundException')) throw error;
    }
    return { text: '', current };
  } catch (error) {
    throw new Error(`reading the vault's identity secret ${secretId} failed: ${nameAndMessage(error)}`);
  }
}
