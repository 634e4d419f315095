/**
 * The key-generator custom resource, with the real age implementation and the real `age` CLI, against Secrets
 * Manager on moto's server: each test creates its own identity secret (a unique name) with a replica in a second
 * region, as BackupKeys does, runs the handler, and reads back what the server stored, in the primary region and
 * in the replica's (moto serves a replica under its own ARN in its own region, from the primary's versions: it
 * shows where a restorer reads, not a replication delay). aws-sdk-client-mock remains for one case only: a service
 * error that quotes the request, which moto never answers, to show that the identity is redacted from the reason and the log.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import * as http from 'node:http';
import { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateSecretCommand, DeleteSecretCommand, DescribeSecretCommand, GetSecretValueCommand, ListSecretVersionIdsCommand, PutSecretValueCommand, SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { secretArnInRegion } from '../../lib/contract';
import { CustomResourceEvent, CustomResourceResponse } from '../../lambda/key-generator/cfn-response';
import { Moto, motoName, sharedMoto } from '../support/moto';

// age-encryption is ESM only: the real package, converted for Jest.
jest.mock('age-encryption', () => jest.requireActual<typeof import('../support/age-commonjs')>('../support/age-commonjs').ageAsCommonJs());

type KeyGenerator = typeof import('../../lambda/key-generator/index');

const AGE = '/usr/bin/age';
const PRIMARY_REGION = 'eu-central-1';
const REPLICA_REGION = 'eu-west-1';
const CFN_PLACEHOLDER = 'q]Wx7pL2z!r^kT9vB3nM8cJ5hF1dG6sA';

let moto: Moto;
let savedEnv: NodeJS.ProcessEnv;
/** The handler module, loaded with the environment Lambda would give it in the primary region, pointed at moto. */
let keys: KeyGenerator;
let primary: SecretsManagerClient;
let replica: SecretsManagerClient;
/** This test's identity secret, created with CloudFormation's placeholder and a replica, as BackupKeys creates it. */
let secretArn: string;
let logged: string[];
let workDir: string;

/** A second copy of the handler module, with a Secrets Manager client (and SDK) of its own. */
function loadHandler(): KeyGenerator {
  let loaded: KeyGenerator | undefined;
  jest.isolateModules(() => { loaded = jest.requireActual<KeyGenerator>('../../lambda/key-generator/index'); });
  return loaded!;
}

/** Runs `work` with the environment Lambda gives a function in `region` (the SDK settles a client's region at its first request). */
async function inRegion<T>(region: string, work: () => Promise<T>): Promise<T> {
  const saved = { ...process.env };
  Object.assign(process.env, moto.env(region));
  try {
    return await work();
  } finally {
    process.env = saved;
  }
}

beforeAll(async () => {
  const probe = spawnSync(AGE, ['--version'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    throw new Error(`the age CLI is required at ${AGE} (apt-get install age, or scripts/install-deps.sh): ${probe.error ?? probe.stderr}`);
  }
  moto = await sharedMoto();
  savedEnv = { ...process.env };
  // The handler's client takes the endpoint, region and credentials from the environment, as in Lambda.
  Object.assign(process.env, moto.env(PRIMARY_REGION));
  keys = await import('../../lambda/key-generator/index');
  primary = new SecretsManagerClient(moto.config(PRIMARY_REGION));
  replica = new SecretsManagerClient(moto.config(REPLICA_REGION));
});

afterAll(() => {
  primary?.destroy();
  replica?.destroy();
  if (savedEnv) process.env = savedEnv;
});

beforeEach(async () => {
  workDir = mkdtempSync(join(tmpdir(), 'restorable-keys-'));
  const created = await primary.send(new CreateSecretCommand({
    Name: motoName('restorable/identity'), SecretString: CFN_PLACEHOLDER, AddReplicaRegions: [{ Region: REPLICA_REGION }],
  }));
  secretArn = created.ARN!;
  logged = captureEverythingLogged();
});

afterEach(() => {
  jest.restoreAllMocks();
  rmSync(workDir, { recursive: true, force: true });
});

/** The secret's value as the server holds it, by staging label. */
async function stored(stage: 'AWSCURRENT' | 'AWSPREVIOUS' = 'AWSCURRENT'): Promise<string> {
  return (await primary.send(new GetSecretValueCommand({ SecretId: secretArn, VersionStage: stage }))).SecretString ?? '';
}

/** The value the replica serves in its own region, under its own ARN, as a restorer in the DR region reads it. */
async function storedInReplica(): Promise<string> {
  return (await replica.send(new GetSecretValueCommand({ SecretId: secretArnInRegion(secretArn, REPLICA_REGION) }))).SecretString ?? '';
}

/** How many values the secret has held: the placeholder it was created with, plus one per write. */
async function versionCount(): Promise<number> {
  return ((await primary.send(new ListSecretVersionIdsCommand({ SecretId: secretArn, IncludeDeprecated: true }))).Versions ?? []).length;
}

/** What a person with console access would do by mistake: a new value. */
async function overwrite(value: string): Promise<void> {
  await primary.send(new PutSecretValueCommand({ SecretId: secretArn, SecretString: value }));
}

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
    StackId: `arn:aws:cloudformation:${PRIMARY_REGION}:123456789012:stack/keys/guid`,
    RequestId: `request-${requestType}-${generation}`,
    LogicalResourceId: 'BackupKeysIdentity',
    ResourceType: 'Custom::RestorableAgeIdentity',
    PhysicalResourceId: requestType === 'Create' ? undefined : secretArn,
    ResourceProperties: { ServiceToken: `arn:aws:lambda:${PRIMARY_REGION}:123456789012:function:gen`, SecretId: secretArn, Generation: String(generation) },
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

/** Decrypts with the age CLI and a secret's value saved as an identity file, as a restorer does. */
function decryptWith(identityFileText: string, encryptedFile: string): string {
  const identityFile = join(workDir, 'identity.txt');
  writeFileSync(identityFile, identityFileText, { mode: 0o600 });
  return execFileSync(AGE, ['-d', '-i', identityFile, encryptedFile], { encoding: 'utf8' });
}

describe('creating the key', () => {
  test('stores an identity file that the age CLI opens, and answers only with the recipient', async () => {
    const response = await keys.respondTo(event('Create', 1));

    expect(response.Status).toBe('SUCCESS');
    expect(response.PhysicalResourceId).toBe(secretArn);
    const recipient = response.Data?.Recipient ?? '';
    expect(recipient).toMatch(/^age1[02-9ac-hj-np-z]{58}$/);
    const value = await stored();
    expect(value).not.toContain(CFN_PLACEHOLDER);
    expect(identityLines(value)).toHaveLength(1);
    expect(value).toMatch(/^# created: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n# generation: 1\n# public key: age1/);
    expect(value).toContain(`# public key: ${recipient}\n`);
    // The placeholder is kept by the server as the previous value, as Secrets Manager keeps it.
    expect(await stored('AWSPREVIOUS')).toBe(CFN_PLACEHOLDER);

    const backup = encryptWithCli(recipient, 'orders table, 42 rows');
    expect(decryptWith(value, backup)).toBe('orders table, 42 rows');
  });

  test('the replica region serves the same identity file under its own ARN, and it opens the backups', async () => {
    const response = await keys.respondTo(event('Create', 1));
    const backup = encryptWithCli(response.Data?.Recipient ?? '', 'readable after losing the primary region');

    const described = await primary.send(new DescribeSecretCommand({ SecretId: secretArn }));
    expect(described.ReplicationStatus?.map((r) => [r.Region, r.Status])).toEqual([[REPLICA_REGION, 'InSync']]);
    const inReplica = await storedInReplica();
    expect(inReplica).toBe(await stored());
    expect(decryptWith(inReplica, backup)).toBe('readable after losing the primary region');
    // The primary's ARN means nothing in the replica's region: a restorer there must use the replica's.
    await expect(replica.send(new GetSecretValueCommand({ SecretId: secretArn }))).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
  });

  test('the identity is absent from the response and from everything logged', async () => {
    const server = await responseCollector();
    try {
      await keys.handler(event('Create', 1, server.url));
      await keys.handler(event('Update', 2, server.url));
    } finally {
      server.close();
    }
    const identities = identityLines(await stored());
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

  test('a failure the service answers after the key was made is reported with the reason, and the key is in neither reason nor log', async () => {
    // The handler deployed in the replica's region by mistake: the replica reads, but only the primary takes writes.
    const inReplicaRegion = loadHandler();
    const wrong = { ...event('Create', 1), ResourceProperties: { SecretId: secretArnInRegion(secretArn, REPLICA_REGION), Generation: '1' } };

    const response = await inRegion(REPLICA_REGION, () => inReplicaRegion.respondTo(wrong));

    expect(response.Status).toBe('FAILED');
    expect(response.Reason).toBe("InvalidParameterException: Operation not permitted on a replica secret. Call must be made in primary secret's region.");
    expect(response.Data).toBeUndefined();
    expect(logged.join('\n')).toContain('Operation not permitted on a replica secret');
    expect([JSON.stringify(response), ...logged].join('\n')).not.toMatch(/AGE-SECRET-KEY/i);
    expect(await stored()).toBe(CFN_PLACEHOLDER);
    expect(await versionCount()).toBe(1);
  });

  test('a failure is reported to CloudFormation with the identity redacted, in the reason and the log', async () => {
    // moto never quotes a request in an error, so the worst case is simulated: a service error that quotes the value.
    const secretsMock = mockClient(SecretsManagerClient);
    try {
      secretsMock.on(GetSecretValueCommand).resolves({ SecretString: CFN_PLACEHOLDER });
      secretsMock.on(PutSecretValueCommand).callsFake(async (input) => {
        throw Object.assign(new Error(`Value rejected: ${input.SecretString}`), { name: 'InvalidRequestException' });
      });

      const response = await keys.respondTo(event('Create', 1));

      expect(response.Status).toBe('FAILED');
      expect(response.Reason).toMatch(/^InvalidRequestException: Value rejected: # created: /);
      expect(response.Reason).toContain('AGE-SECRET-KEY-[redacted]');
      expect(response.Data).toBeUndefined();
      const everything = [JSON.stringify(response), ...logged].join('\n');
      expect(everything).not.toMatch(/AGE-SECRET-KEY-1[0-9A-Z]{10}/);
      expect(logged.join('\n')).toContain('InvalidRequestException');
    } finally {
      secretsMock.restore();
    }
  });

  test('bad properties fail with a reason that says what to fix, and nothing is written', async () => {
    const bad = { ...event('Create', 1), ResourceProperties: { SecretId: secretArn, Generation: 'two' } };
    const response = await keys.respondTo(bad);
    expect(response.Status).toBe('FAILED');
    expect(response.Reason).toBe("Error: property Generation must be a positive integer, got 'two'");
    expect(await stored()).toBe(CFN_PLACEHOLDER);
    expect(await versionCount()).toBe(1);
  });

  test('a secret that does not exist fails with the service\'s own reason', async () => {
    const missing = secretArn.replace(/:secret:.*$/, `:secret:${motoName('never-created')}`);
    const response = await keys.respondTo({ ...event('Create', 1), ResourceProperties: { SecretId: missing, Generation: '1' } });
    expect(response.Status).toBe('FAILED');
    expect(response.Reason).toMatch(/^ResourceNotFoundException: /);
  });
});

describe('rotation', () => {
  test('a new generation goes in front, and a backup made with the old key still decrypts, in both regions', async () => {
    const first = await keys.respondTo(event('Create', 1));
    const oldRecipient = first.Data?.Recipient ?? '';
    const oldBackup = encryptWithCli(oldRecipient, 'made before the rotation');
    const oldIdentity = identityLines(await stored())[0];

    const second = await keys.respondTo(event('Update', 2));

    const newRecipient = second.Data?.Recipient ?? '';
    expect(newRecipient).toMatch(/^age1/);
    expect(newRecipient).not.toBe(oldRecipient);
    const value = await stored();
    const identities = identityLines(value);
    expect(identities).toHaveLength(2);
    expect(identities[1]).toBe(oldIdentity);
    expect(value.indexOf('# generation: 2')).toBeLessThan(value.indexOf('# generation: 1'));
    expect(decryptWith(value, oldBackup)).toBe('made before the rotation');
    expect(decryptWith(value, encryptWithCli(newRecipient, 'made after the rotation'))).toBe('made after the rotation');
    // The replica follows: both generations, readable in the DR region.
    const inReplica = await storedInReplica();
    expect(inReplica).toBe(value);
    expect(decryptWith(inReplica, oldBackup)).toBe('made before the rotation');
    expect(await versionCount()).toBe(3);
  });

  test('an update that keeps the generation, or a retried request, keeps the key', async () => {
    const created = await keys.respondTo(event('Create', 1));
    const before = await stored();

    const updated = await keys.respondTo(event('Update', 1));
    const retried = await keys.respondTo(event('Create', 1));

    expect(updated.Data?.Recipient).toBe(created.Data?.Recipient);
    expect(retried.Data?.Recipient).toBe(created.Data?.Recipient);
    expect(await stored()).toBe(before);
    // One write only: the placeholder and the identity file.
    expect(await versionCount()).toBe(2);
  });

  test('a key generated offline with age-keygen is kept behind the new one', async () => {
    const keygen = execFileSync('/usr/bin/age-keygen', { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    await overwrite(keygen);
    const offlineRecipient = /# public key: (age1\S+)/.exec(keygen)?.[1] ?? '';
    const offlineBackup = encryptWithCli(offlineRecipient, 'made with the offline key');

    const response = await keys.respondTo(event('Create', 1));

    expect(response.Data?.Recipient).not.toBe(offlineRecipient);
    const value = await stored();
    expect(value.endsWith(keygen)).toBe(true);
    expect(decryptWith(value, offlineBackup)).toBe('made with the offline key');
  });

  test('a value overwritten by mistake does not make the next rotation drop the old keys', async () => {
    const first = await keys.respondTo(event('Create', 1));
    const oldBackup = encryptWithCli(first.Data?.Recipient ?? '', 'made before the mistake');
    await overwrite('pasted-by-mistake');

    const rotated = await keys.respondTo(event('Update', 2));

    expect(rotated.Status).toBe('SUCCESS');
    const value = await stored();
    expect(identityLines(value)).toHaveLength(2);
    expect(value).not.toContain('pasted-by-mistake');
    expect(decryptWith(value, oldBackup)).toBe('made before the mistake');
    expect(decryptWith(value, encryptWithCli(rotated.Data?.Recipient ?? '', 'made after'))).toBe('made after');
  });

  test('an overwritten value is put back when the generation is unchanged', async () => {
    const first = await keys.respondTo(event('Create', 1));
    const identityFile = await stored();
    await overwrite('pasted-by-mistake');

    const again = await keys.respondTo(event('Update', 1));

    expect(again.Data?.Recipient).toBe(first.Data?.Recipient);
    expect(await stored()).toBe(identityFile);
    expect(await storedInReplica()).toBe(identityFile);
    expect(logged.join('\n')).toContain('"outcome":"recovered"');
  });
});

describe('a replaced identity secret', () => {
  /** The secret CloudFormation retained when it replaced this test's: created and given an identity file before. */
  let oldArn: string;

  beforeEach(async () => {
    oldArn = (await primary.send(new CreateSecretCommand({ Name: motoName('restorable/identity-old'), SecretString: CFN_PLACEHOLDER }))).ARN!;
  });

  /** The Update CloudFormation sends once it has created the new secret (this test's) in place of `oldArn`. */
  function replacement(generation: number, oldGeneration = 1): CustomResourceEvent {
    return {
      ...event('Update', generation),
      PhysicalResourceId: oldArn,
      OldResourceProperties: { ServiceToken: 'arn:aws:lambda:eu-central-1:123456789012:function:gen', SecretId: oldArn, Generation: String(oldGeneration) },
    };
  }

  /** Gives the old secret an identity file as the generator did when it was the only one, and a backup made with it. */
  async function oldSecretWithABackup(): Promise<{ identityFile: string; recipient: string; backup: string }> {
    const created = await keys.respondTo({ ...event('Create', 1), ResourceProperties: { SecretId: oldArn, Generation: '1' } });
    const recipient = created.Data?.Recipient ?? '';
    const identityFile = (await primary.send(new GetSecretValueCommand({ SecretId: oldArn }))).SecretString ?? '';
    return { identityFile, recipient, backup: encryptWithCli(recipient, 'made before the secret was replaced') };
  }

  test('the old identity file is carried over whole, and the same generation keeps the recipient', async () => {
    const old = await oldSecretWithABackup();

    const response = await keys.respondTo(replacement(1));

    expect(response).toMatchObject({ Status: 'SUCCESS', PhysicalResourceId: secretArn, Data: { Recipient: old.recipient } });
    expect(await stored()).toBe(old.identityFile);
    expect(decryptWith(await stored(), old.backup)).toBe('made before the secret was replaced');
    // The replica region serves it too, and the old secret is left as it was.
    expect(await storedInReplica()).toBe(old.identityFile);
    expect((await primary.send(new GetSecretValueCommand({ SecretId: oldArn }))).SecretString).toBe(old.identityFile);
    expect(await versionCount()).toBe(2);
    const outcome = logged.map((line) => line.trim()).filter((line) => line.includes('"requestType":"Update"'));
    expect(outcome).toHaveLength(1);
    expect(JSON.parse(outcome[0])).toMatchObject({ outcome: 'carried-over', carriedOverFrom: oldArn, generation: 1, recipient: old.recipient });
  });

  test('with the next generation, the new identity goes in front of the carried-over ones', async () => {
    const old = await oldSecretWithABackup();

    const response = await keys.respondTo(replacement(2));

    expect(response.Status).toBe('SUCCESS');
    const newRecipient = response.Data?.Recipient ?? '';
    expect(newRecipient).toMatch(/^age1/);
    expect(newRecipient).not.toBe(old.recipient);
    const value = await stored();
    expect(value.endsWith(old.identityFile)).toBe(true);
    expect(identityLines(value)).toHaveLength(2);
    expect(value.indexOf('# generation: 2')).toBeLessThan(value.indexOf('# generation: 1'));
    expect(decryptWith(value, old.backup)).toBe('made before the secret was replaced');
    expect(decryptWith(value, encryptWithCli(newRecipient, 'made after'))).toBe('made after');
    // The old file alone first, then the new generation in front of it.
    expect(await versionCount()).toBe(3);
    expect(await stored('AWSPREVIOUS')).toBe(old.identityFile);
    expect(logged.join('\n')).toContain('"outcome":"carried-over-and-created"');
  });

  test.each([
    ['deleted for good', true],
    ['scheduled for deletion', false],
  ])('an old secret %s fails the update with a reason naming it, and the new secret gets no identity', async (_case, forceDelete) => {
    await oldSecretWithABackup();
    await primary.send(new DeleteSecretCommand({ SecretId: oldArn, ...(forceDelete ? { ForceDeleteWithoutRecovery: true } : { RecoveryWindowInDays: 7 }) }));

    const response = await keys.respondTo(replacement(1));

    expect(response.Status).toBe('FAILED');
    expect(response.Data).toBeUndefined();
    expect(response.Reason).toMatch(new RegExp(`^Error: the replaced identity secret ${oldArn} cannot be read \\((ResourceNotFoundException|InvalidRequestException)\\) and opens every earlier backup, so no new identity was generated: `));
    expect(response.Reason).toContain(`put its identity file into ${secretArn}`);
    expect(response.Reason!.length).toBeLessThanOrEqual(500);
    expect(await stored()).toBe(CFN_PLACEHOLDER);
    expect(await versionCount()).toBe(1);
    expect(logged.join('\n')).toContain(oldArn);
    expect(logged.join('\n')).not.toMatch(/AGE-SECRET-KEY/i);
  });

  test('an old secret that holds no identity fails the update too, rather than start without the old keys', async () => {
    const response = await keys.respondTo(replacement(1));

    expect(response.Status).toBe('FAILED');
    expect(response.Reason).toMatch(new RegExp(`^Error: the replaced identity secret ${oldArn} holds no age identity and opens every earlier backup`));
    expect(await stored()).toBe(CFN_PLACEHOLDER);
  });

  test('a retried update, after the carry-over, does not carry the old file over twice', async () => {
    const old = await oldSecretWithABackup();
    const first = await keys.respondTo(replacement(2));
    const afterFirst = await stored();

    const retried = await keys.respondTo(replacement(2));

    expect(retried.Data?.Recipient).toBe(first.Data?.Recipient);
    expect(await stored()).toBe(afterFirst);
    expect(identityLines(afterFirst)).toHaveLength(2);
    expect(afterFirst.split(old.identityFile)).toHaveLength(2);
    expect(await versionCount()).toBe(3);
    expect(logged.join('\n')).toContain('"outcome":"unchanged"');
  });

  test('an update that keeps the secret carries nothing over', async () => {
    await oldSecretWithABackup();
    const created = await keys.respondTo(event('Create', 1));

    const response = await keys.respondTo({ ...event('Update', 1), OldResourceProperties: { SecretId: secretArn, Generation: '1' } });

    expect(response.Data?.Recipient).toBe(created.Data?.Recipient);
    expect(identityLines(await stored())).toHaveLength(1);
    expect(logged.join('\n')).not.toContain('carried-over');
  });
});

describe('deleting the stack', () => {
  test('Delete succeeds without touching the secret', async () => {
    await keys.respondTo(event('Create', 1));
    const before = await stored();

    const response = await keys.respondTo(event('Delete', 1));

    expect(response).toMatchObject({ Status: 'SUCCESS', PhysicalResourceId: secretArn });
    expect(await stored()).toBe(before);
    expect(await versionCount()).toBe(2);
    expect(await storedInReplica()).toBe(before);
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
