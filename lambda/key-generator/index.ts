/**
 * Custom resource behind BackupKeys: makes sure the identity secret holds an age X25519 identity of the
 * requested generation, newest first, and answers CloudFormation with the recipient (public key) only.
 *
 * The identity never leaves this function except into the secret: not in the response, not in a log line,
 * not in an error (every failure is reported through `describeFailure`, which redacts identities).
 */
import { GetSecretValueCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { CustomResourceEvent, CustomResourceResponse, sendResponse } from '../shared/cfn-response';
import { identityBlock, newestIdentity, prependIdentity, redactIdentities } from './identity-file';

const secrets = new SecretsManagerClient({});

/** The custom resource's properties, as CloudFormation passes them (strings). */
interface KeyProperties {
  readonly secretId: string;
  readonly generation: number;
}

type Outcome = 'created' | 'unchanged' | 'recovered' | 'retained';

export async function handler(event: CustomResourceEvent): Promise<void> {
  const response = await respondTo(event);
  await sendResponse(event.ResponseURL, response);
}

/** Never throws: a thrown error would leave CloudFormation waiting for an hour. */
export async function respondTo(event: CustomResourceEvent): Promise<CustomResourceResponse> {
  const common = { StackId: event.StackId, RequestId: event.RequestId, LogicalResourceId: event.LogicalResourceId };
  try {
    if (event.RequestType === 'Delete') {
      // Deleting the stack must not delete the keys: backups outlive it, and the secret is retained.
      log(event, 'retained');
      return { ...common, Status: 'SUCCESS', PhysicalResourceId: event.PhysicalResourceId ?? event.RequestId };
    }
    const properties = readProperties(event.ResourceProperties);
    const { recipient, outcome } = await ensureGeneration(properties);
    log(event, outcome, { generation: properties.generation, recipient });
    return { ...common, Status: 'SUCCESS', PhysicalResourceId: properties.secretId, Data: { Recipient: recipient } };
  } catch (error) {
    const reason = describeFailure(error);
    console.error(JSON.stringify({ requestType: event.RequestType, logicalResourceId: event.LogicalResourceId, reason }));
    return { ...common, Status: 'FAILED', Reason: reason, PhysicalResourceId: event.PhysicalResourceId ?? event.RequestId };
  }
}

function readProperties(properties: Record<string, unknown>): KeyProperties {
  const secretId = properties.SecretId;
  if (typeof secretId !== 'string' || secretId === '') {
    throw new Error('property SecretId is missing: pass the ARN of the identity secret');
  }
  const generation = Number(properties.Generation);
  if (!Number.isInteger(generation) || generation < 1) {
    throw new Error(`property Generation must be a positive integer, got '${String(properties.Generation)}'`);
  }
  return { secretId, generation };
}

/**
 * Keeps the identity of the newest generation if it is the one asked for (an update of other properties,
 * or a retried request), and otherwise puts a new identity in front of all the old ones.
 */
async function ensureGeneration({ secretId, generation }: KeyProperties): Promise<{ recipient: string; outcome: Outcome }> {
  const { text: existing, recovered } = await readIdentityFile(secretId);
  const newest = newestIdentity(existing);
  if (newest && newest.generation === generation) {
    if (recovered) await putIdentityFile(secretId, existing);
    return { recipient: await identityToRecipient(newest.identity), outcome: recovered ? 'recovered' : 'unchanged' };
  }
  const identity = await generateX25519Identity();
  const recipient = await identityToRecipient(identity);
  await putIdentityFile(secretId, prependIdentity(existing, identityBlock(identity, recipient, generation, new Date())));
  return { recipient, outcome: 'created' };
}

/**
 * The current identity file. When the current value holds no identity, it is CloudFormation's placeholder on
 * the first deployment, or an overwrite by mistake: then the previous version, if it holds identities, is
 * the file to keep, so that a mistaken write cannot make us drop the keys of every existing backup.
 */
async function readIdentityFile(secretId: string): Promise<{ text: string; recovered: boolean }> {
  const current = (await secrets.send(new GetSecretValueCommand({ SecretId: secretId }))).SecretString ?? '';
  if (newestIdentity(current)) return { text: current, recovered: false };
  try {
    const previous = await secrets.send(new GetSecretValueCommand({ SecretId: secretId, VersionStage: 'AWSPREVIOUS' }));
    if (previous.SecretString && newestIdentity(previous.SecretString)) return { text: previous.SecretString, recovered: true };
  } catch (error) {
    if (!(error instanceof Error && error.name === 'ResourceNotFoundException')) throw error;
  }
  return { text: current, recovered: false };
}

async function putIdentityFile(secretId: string, text: string): Promise<void> {
  await secrets.send(new PutSecretValueCommand({ SecretId: secretId, SecretString: text }));
}

/** A one-line reason for CloudFormation and the log, with anything resembling an identity redacted. */
export function describeFailure(error: unknown): string {
  const name = error instanceof Error ? error.name : 'Error';
  const message = error instanceof Error ? error.message : String(error);
  return redactIdentities(`${name}: ${message}`).slice(0, 500);
}

function log(event: CustomResourceEvent, outcome: Outcome, details: Record<string, string | number> = {}): void {
  console.log(JSON.stringify({
    requestType: event.RequestType, logicalResourceId: event.LogicalResourceId, outcome, ...details,
  }));
}
