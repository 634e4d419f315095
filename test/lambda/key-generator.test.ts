/**
 * The key-generator custom resource, with the real age implementation and the real `age` CLI.
 * Secrets Manager has no emulator here, so it is mocked with aws-sdk-client-mock; the mock keeps the
 * secret's value like the service would, so that rotation works on what the previous call wrote.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import * as http from 'node:http';
import { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  GetSecretValueCommand, PutSecretValueCommand, SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { CustomResourceEvent, CustomResourceResponse } from '../../lambda/key-generator/cfn-response';
import { handler, respondTo } from '../../lambda/key-generator/index';

// age-encryption ships only as ESM and Jest runs CommonJS here: convert the real package with esbuild,
// exactly as scripts/bundle.mjs does for the Lambda asset.
jest.mock('age-encryption', () => {
  const { buildSync } = jest.requireActual<typeof import('esbuild')>('esbuild');
  const built = buildSync({
    entryPoints: [require.resolve('age-encryption')], bundle: true, platform: 'node', format: 'cjs', write: false,
  });
  const module = { exports: {} };
  new Function('module', 'exports', 'require', built.outputFiles[0].text)(module, module.exports, require);
  return module.exports;
});

const AGE = '/usr/bin/age';
const SECRET_ARN = 'arn:aws:secretsmanager:eu-central-1:123456789012:secret:BackupKeysIdentity-AbCdEf';
const CFN_PLACEHOLDER = 'q]Wx7pL2z!r^kT9vB3nM8cJ5hF1dG6sA';

const secretsMock = mockClient(SecretsManagerClient);
/** The AWSCURRENT and AWSPREVIOUS values, kept like Secrets Manager keeps them. */
let secretValue: string;
let previousValue: string | undefined;
let logged: string[];
let workDir: string;

beforeAll(() => {
  const probe = spawnSync(AGE, ['--version'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    throw new Error(`the age CLI is required at ${AGE} (apt-get install age, or scripts/install-deps.sh): ${probe.error ?? probe.stderr}`);
  }
});

beforeEach(() => {
  workDir = mkdtempSync(join(tmpdir(), 'restorable-keys-'));
  secretValue = CFN_PLACEHOLDER;
  previousValue = undefined;
  secretsMock.reset();
  secretsMock.on(GetSecretValueCommand, { SecretId: SECRET_ARN }).callsFake(async (input) => {
    if (input.VersionStage === undefined || input.VersionStage === 'AWSCURRENT') return { SecretString: secretValue };
    if (input.VersionStage === 'AWSPREVIOUS' && previousValue !== undefined) return { SecretString: previousValue };
    throw Object.assign(new Error(`Secrets Manager can't find the specified secret value for staging label: ${input.VersionStage}`),
      { name: 'ResourceNotFoundException' });
  });
  secretsMock.on(PutSecretValueCommand, { SecretId: SECRET_ARN }).callsFake(async (input) => {
    previousValue = secretValue;
    secretValue = input.SecretString;
    return { VersionId: `v${secretsMock.commandCalls(PutSecretValueCommand).length}` };
  });
  logged = captureEverythingLogged();
});

afterEach(() => {
  jest.restoreAllMocks();
  rmSync(workDir, { recursive: true, force: true });
});

/** Collects whatever reaches the console or the process's output streams. */
function captureEverythingLogged(): string[] {
  const lines: string[] = [];
  const keep = (...args: unknown[]) => { lines.push(args.map(String).join(' ')); };
  for (const method of ['log', 'info', 'warn', 'error', 'debug'] as const) {
    jest.spyOn(console, method).mockImplementation(keep);
  }
  const write = (chunk: unknown) => { lines.push(String(chunk)); return true; };
  jest.spyOn(process.stdout, 'write').mockImplementation(write);
  jest.spyOn(process.stderr, 'write').mockImplementation(write);
  return lines;
}

function event(requestType: CustomResourceEvent['RequestType'], generation: number, responseUrl = 'http://127.0.0.1:1/'): CustomResourceEvent {
  return {
    RequestType: requestType,
    ResponseURL: responseUrl,
    StackId: 'arn:aws:cloudformation:eu-central-1:123456789012:stack/keys/guid',
    RequestId: `request-${requestType}-${generation}`,
    LogicalResourceId: 'BackupKeysIdentity',
    ResourceType: 'Custom::RestorableAgeIdentity',
    PhysicalResourceId: requestType === 'Create' ? undefined : SECRET_ARN,
    ResourceProperties: { ServiceToken: 'arn:aws:lambda:eu-central-1:123456789012:function:gen', SecretId: SECRET_ARN, Generation: String(generation) },
  };
}

function identityLines(text: string): string[] {
  return text.split('\n').filter((line) => line.startsWith('AGE-SECRET-KEY-1'));
}

/** Encrypts with the age CLI to the recipient, as the dump task does. */
function encryptWithCli(recipient: string, plaintext: string): string {
  const file = join(workDir, `backup-${Math.random().toString(36).slice(2)}.age`);
  execFileSync(AGE, ['-r', recipient, '-o', file], { input: plaintext });
  return file;
}

/** Decrypts with the age CLI and the secret's value saved as an identity file, as a restorer does. */
function decryptWithSecret(encryptedFile: string): string {
  const identityFile = join(workDir, 'identity.txt');
  writeFileSync(identityFile, secretValue, { mode: 0o600 });
  return execFileSync(AGE, ['-d', '-i', identityFile, encryptedFile], { encoding: 'utf8' });
}

describe('creating the key', () => {
  test('stores an identity file that the age CLI opens, and answers only with the recipient', async () => {
    const response = await respondTo(event('Create', 1));

    expect(response.Status).toBe('SUCCESS');
    expect(response.PhysicalResourceId).toBe(SECRET_ARN);
    const recipient = response.Data?.Recipient ?? '';
    expect(recipient).toMatch(/^age1[02-9ac-hj-np-z]{58}$/);
    expect(secretValue).not.toContain(CFN_PLACEHOLDER);
    expect(identityLines(secretValue)).toHaveLength(1);
    expect(secretValue).toMatch(/^# created: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n# generation: 1\n# public key: age1/);
    expect(secretValue).toContain(`# public key: ${recipient}\n`);

    const backup = encryptWithCli(recipient, 'orders table, 42 rows');
    expect(decryptWithSecret(backup)).toBe('orders table, 42 rows');
  });

  test('the identity is absent from the response and from everything logged', async () => {
    const server = await responseCollector();
    try {
      await handler(event('Create', 1, server.url));
      await handler(event('Update', 2, server.url));
    } finally {
      server.close();
    }
    const identities = identityLines(secretValue);
    expect(identities).toHaveLength(2);
    expect(server.bodies).toHaveLength(2);
    expect(logged.length).toBeGreaterThan(0);
    const everything = [...server.bodies, ...logged].join('\n');
    expect(everything).not.toMatch(/AGE-SECRET-KEY/i);
    for (const identity of identities) {
      // Not even part of the key material, in either case (bech32 is case-insensitive).
      expect(everything.toLowerCase()).not.toContain(identity.slice('AGE-SECRET-KEY-1'.length, 40).toLowerCase());
    }
    const answers = server.bodies.map((body) => JSON.parse(body) as CustomResourceResponse);
    expect(answers.map((answer) => answer.Status)).toEqual(['SUCCESS', 'SUCCESS']);
    expect(answers.map((answer) => Object.keys(answer.Data ?? {}))).toEqual([['Recipient'], ['Recipient']]);
  });

  test('a failure is reported to CloudFormation with the identity redacted, in the reason and the log', async () => {
    secretsMock.on(PutSecretValueCommand).callsFake(async (input) => {
      // The worst case: a service error that quotes the request.
      throw Object.assign(new Error(`Value rejected: ${input.SecretString}`), { name: 'InvalidRequestException' });
    });

    const response = await respondTo(event('Create', 1));

    expect(response.Status).toBe('FAILED');
    expect(response.Reason).toMatch(/^InvalidRequestException: Value rejected: # created: /);
    expect(response.Reason).toContain('AGE-SECRET-KEY-[redacted]');
    expect(response.Data).toBeUndefined();
    const everything = [JSON.stringify(response), ...logged].join('\n');
    expect(everything).not.toMatch(/AGE-SECRET-KEY-1[0-9A-Z]{10}/);
    expect(logged.join('\n')).toContain('InvalidRequestException');
  });

  test('bad properties fail with a reason that says what to fix', async () => {
    const bad = { ...event('Create', 1), ResourceProperties: { SecretId: SECRET_ARN, Generation: 'two' } };
    const response = await respondTo(bad);
    expect(response.Status).toBe('FAILED');
    expect(response.Reason).toBe("Error: property Generation must be a positive integer, got 'two'");
    expect(secretsMock.commandCalls(PutSecretValueCommand)).toHaveLength(0);
  });
});

describe('rotation', () => {
  test('a new generation goes in front, and a backup made with the old key still decrypts', async () => {
    const first = await respondTo(event('Create', 1));
    const oldRecipient = first.Data?.Recipient ?? '';
    const oldBackup = encryptWithCli(oldRecipient, 'made before the rotation');
    const oldIdentity = identityLines(secretValue)[0];

    const second = await respondTo(event('Update', 2));

    const newRecipient = second.Data?.Recipient ?? '';
    expect(newRecipient).toMatch(/^age1/);
    expect(newRecipient).not.toBe(oldRecipient);
    const identities = identityLines(secretValue);
    expect(identities).toHaveLength(2);
    expect(identities[1]).toBe(oldIdentity);
    expect(secretValue.indexOf('# generation: 2')).toBeLessThan(secretValue.indexOf('# generation: 1'));
    expect(decryptWithSecret(oldBackup)).toBe('made before the rotation');
    expect(decryptWithSecret(encryptWithCli(newRecipient, 'made after the rotation'))).toBe('made after the rotation');
  });

  test('an update that keeps the generation, or a retried request, keeps the key', async () => {
    const created = await respondTo(event('Create', 1));
    const before = secretValue;

    const updated = await respondTo(event('Update', 1));
    const retried = await respondTo(event('Create', 1));

    expect(updated.Data?.Recipient).toBe(created.Data?.Recipient);
    expect(retried.Data?.Recipient).toBe(created.Data?.Recipient);
    expect(secretValue).toBe(before);
    expect(secretsMock.commandCalls(PutSecretValueCommand)).toHaveLength(1);
  });

  test('a key generated offline with age-keygen is kept behind the new one', async () => {
    const keygen = execFileSync('/usr/bin/age-keygen', { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    secretValue = keygen;
    const offlineRecipient = /# public key: (age1\S+)/.exec(keygen)?.[1] ?? '';
    const offlineBackup = encryptWithCli(offlineRecipient, 'made with the offline key');

    const response = await respondTo(event('Create', 1));

    expect(response.Data?.Recipient).not.toBe(offlineRecipient);
    expect(secretValue.endsWith(keygen)).toBe(true);
    expect(decryptWithSecret(offlineBackup)).toBe('made with the offline key');
  });

  test('a value overwritten by mistake does not make the next rotation drop the old keys', async () => {
    const first = await respondTo(event('Create', 1));
    const oldBackup = encryptWithCli(first.Data?.Recipient ?? '', 'made before the mistake');
    previousValue = secretValue;
    secretValue = 'pasted-by-mistake';

    const rotated = await respondTo(event('Update', 2));

    expect(rotated.Status).toBe('SUCCESS');
    expect(identityLines(secretValue)).toHaveLength(2);
    expect(secretValue).not.toContain('pasted-by-mistake');
    expect(decryptWithSecret(oldBackup)).toBe('made before the mistake');
    expect(decryptWithSecret(encryptWithCli(rotated.Data?.Recipient ?? '', 'made after'))).toBe('made after');
  });

  test('an overwritten value is put back when the generation is unchanged', async () => {
    const first = await respondTo(event('Create', 1));
    const identityFile = secretValue;
    previousValue = secretValue;
    secretValue = 'pasted-by-mistake';

    const again = await respondTo(event('Update', 1));

    expect(again.Data?.Recipient).toBe(first.Data?.Recipient);
    expect(secretValue).toBe(identityFile);
    expect(logged.join('\n')).toContain('"outcome":"recovered"');
  });
});

describe('deleting the stack', () => {
  test('Delete succeeds without touching the secret', async () => {
    const response = await respondTo(event('Delete', 1));
    expect(response).toMatchObject({ Status: 'SUCCESS', PhysicalResourceId: SECRET_ARN });
    expect(secretsMock.calls()).toHaveLength(0);
  });
});

describe('the Lambda asset', () => {
  test('the bundled handler loads with plain node (age-encryption is ESM only and must be bundled in)', () => {
    const asset = join(__dirname, '../../assets/lambda/key-generator/index.js');
    if (!existsSync(asset)) throw new Error(`${asset} is missing: run 'npm run bundle' first`);
    const exported = execFileSync(process.execPath, ['-e', `process.stdout.write(typeof require(${JSON.stringify(asset)}).handler)`], {
      encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'],
    });
    expect(exported).toBe('function');
  });
});

/** A local stand-in for the pre-signed response URL, keeping every body it receives. */
async function responseCollector(): Promise<{ url: string; bodies: string[]; close: () => void }> {
  const bodies: string[] = [];
  const server = http.createServer((request, answer) => {
    let body = '';
    request.on('data', (chunk: Buffer) => { body += chunk.toString('utf8'); });
    request.on('end', () => { bodies.push(body); answer.end(); });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/response?X-Amz-Signature=abc`, bodies, close: () => server.close() };
}
