/**
 * Custom resource behind BackupKeys: makes sure the identity secret holds an age X25519 identity of the
 * requested generation, newest first, and answers CloudFormation with the recipient (public key) only.
 *
 * The identity never leaves this function except into the secret: not in the response, not in a log line,
 * not in an error (every failure is reported through `describeFailure`, which redacts identities).
 *
 * When CloudFormation replaces the secret (naming it for a vault replaces one deployed unnamed), the update names
 * the new secret and the old one: the old secret's identity file, which opens every earlier backup, is carried
 * over into the new one before the generation is applied, and the update fails rather than start without it.
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

type Outcome = 'created' | 'unchanged' | 'recovered' | 'retained' | 'carried-over' | 'carried-over-and-created';

/** An identity file as read from a secret; `recovered` when it is the previous version, the current one holding no identity. */
interface IdentityFile {
  readonly text: string;
  readonly recovered: boolean;
}

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
    const replaced = replacedSecretId(event, properties);
    const { recipient, outcome } = await ensureGeneration(properties, replaced);
    const details: Record<string, string | number> = { generation: properties.generation, recipient };
    if (replaced && outcome.startsWith('carried-over')) details.carriedOverFrom = replaced;
    log(event, outcome, details);
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

/** The secret an Update replaces, when CloudFormation replaced the identity secret: the old SecretId, if another. */
function replacedSecretId(event: CustomResourceEvent, { secretId }: KeyProperties): string | undefined {
  if (event.RequestType !== 'Update') return undefined;
  const old = event.OldResourceProperties?.SecretId;
  return typeof old === 'string' && old !== '' && old !== secretId ? old : undefined;
}

/**
 * Keeps the identity of the newest generation if it is the one asked for (an update of other properties,
 * or a retried request), and otherwise puts a new identity in front of all the old ones. A new secret that
 * replaces `replaced` and holds no identity yet first gets the replaced secret's identity file, whole.
 */
async function ensureGeneration(
  { secretId, generation }: KeyProperties, replaced?: string,
): Promise<{ recipient: string; outcome: Outcome }> {
  let file = await readIdentityFile(secretId);
  // A new secret that already holds identities was carried over to by an earlier attempt (a retry): not twice.
  const carryOver = replaced !== undefined && !newestIdentity(file.text);
  if (carryOver) {
    file = { text: await readReplacedIdentityFile(replaced, secretId), recovered: false };
    await putIdentityFile(secretId, file.text);
  }
  const newest = newestIdentity(file.text);
  if (newest && newest.generation === generation) {
    if (file.recovered) await putIdentityFile(secretId, file.text);
    const outcome = carryOver ? 'carried-over' : file.recovered ? 'recovered' : 'unchanged';
    return { recipient: await identityToRecipient(newest.identity), outcome };
  }
  const identity = await generateX25519Identity();
  const recipient = await identityToRecipient(identity);
  await putIdentityFile(secretId, prependIdentity(file.text, identityBlock(identity, recipient, generation, new Date())));
  return { recipient, outcome: carryOver ? 'carried-over-and-created' : 'created' };
}

/**
 * The identity file of the secret CloudFormation replaced. It opens every backup made before, so when it cannot
 * be read the update fails, and says what to do: a new identity alone would leave those backups behind unnoticed.
 */
async function readReplacedIdentityFile(replaced: string, secretId: string): Promise<string> {
  // The service's message comes last, where the 500 characters of a reason may cut it: its name comes with the problem.
  const refuse = (problem: string, cause?: unknown) => new Error(`the replaced identity secret ${replaced} ${problem} and opens every ` +
    'earlier backup, so no new identity was generated: restore it (restore-secret, if scheduled for deletion) and make it readable, ' +
    `or put its identity file into ${secretId} with the break-glass role, then deploy again` +
    (cause instanceof Error ? `. ${cause.message}` : ''));
  let file: IdentityFile;
  try {
    file = await readIdentityFile(replaced);
  } catch (error) {
    throw refuse(`cannot be read (${error instanceof Error ? error.name : 'Error'})`, error);
  }
  if (!newestIdentity(file.text)) throw refuse('holds no age identity');
  return file.text;
}

/**
 * The current identity file. When the current value holds no identity, it is CloudFormation's placeholder on
 * the first deployment, or an overwrite by mistake: then the previous version, if it holds identities, is
 * the file to keep, so that a mistaken write cannot make us drop the keys of every existing backup.
 */
async function readIdentityFile(secretId: string): Promise<IdentityFile> {
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
