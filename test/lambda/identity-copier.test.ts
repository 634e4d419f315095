/**
 * The vault's identity copier against Secrets Manager and CloudWatch on moto's server, with two accounts: the
 * primary's identity secret is created in account A (eu-central-1) and the vault's secret in account B (eu-west-1),
 * each with credentials moto issues for a role of that account (STS AssumeRole), so moto keeps them apart as AWS
 * would. The copier runs with B's credentials and reads A's secret by its partial ARN, as VaultIdentity configures it.
 *
 * moto neither enforces resource policies across accounts nor routes a request to the account an ARN names: it
 * serves each caller from the caller's own account. So the source client, with B's credentials, sends moto's
 * account header taken from the ARN, which is what AWS does by the ARN itself. Whether the primary's policies admit
 * B's copier (and only it) is the policy simulator's to prove, not this file's.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudWatchClient, GetMetricStatisticsCommand } from '@aws-sdk/client-cloudwatch';
import {
  CreateSecretCommand, GetSecretValueCommand, ListSecretVersionIdsCommand, PutSecretValueCommand, SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { identityBlock, prependIdentity } from '../../lambda/key-generator/identity-file';
import { METRIC_NAMESPACE } from '../../lib/contract/metrics';
import { VAULT_IDENTITY_DIMENSION, VAULT_IDENTITY_KEYS } from '../../lib/keys/vault-identity-metrics';
import { Moto, motoName, sharedMoto } from '../support/moto';

// age-encryption is ESM only: the real package, converted for Jest.
jest.mock('age-encryption', () => jest.requireActual<typeof import('../support/age-commonjs')>('../support/age-commonjs').ageAsCommonJs());

type Copier = typeof import('../../lambda/identity-copier/index');
type Credentials = { accessKeyId: string; secretAccessKey: string; sessionToken: string };

const AGE = '/usr/bin/age';
const PRIMARY_ACCOUNT = '111122223333';
const VAULT_ACCOUNT = '444455556666';
const PRIMARY_REGION = 'eu-central-1';
const VAULT_REGION = 'eu-west-1';
const CFN_PLACEHOLDER = 'q]Wx7pL2z!r^kT9vB3nM8cJ5hF1dG6sA';

let moto: Moto;
let copier: Copier;
let age: typeof import('age-encryption');
let primaryCredentials: Credentials;
let vaultCredentials: Credentials;
/** Account A's view, in the primary region: where BackupKeys' secret lives. */
let primary: SecretsManagerClient;
/** Account B's view, in the vault region: where VaultIdentity's secret lives. */
let vault: SecretsManagerClient;
let cloudwatch: CloudWatchClient;
let clients: import('../../lambda/identity-copier/index').CopierClients;
let sourceArn: string;
let vaultArn: string;
let metricIdentity: string;
let logged: string[];
let workDir: string;
let generation = 0;

/** Credentials moto issues for a role in `account`: requests signed with them are served from that account. */
async function credentialsOf(account: string): Promise<Credentials> {
  const sts = new STSClient(moto.config());
  try {
    const out = await sts.send(new AssumeRoleCommand({
      RoleArn: `arn:aws:iam::${account}:role/restorable/identity-copier/test`, RoleSessionName: 'identity-copier-test',
    }));
    return { accessKeyId: out.Credentials!.AccessKeyId!, secretAccessKey: out.Credentials!.SecretAccessKey!, sessionToken: out.Credentials!.SessionToken! };
  } finally {
    sts.destroy();
  }
}

/** A client with B's credentials whose requests moto serves from the account the secret's ARN names, as AWS does. */
function crossAccountClient(credentials: Credentials, region: string, arn: string): SecretsManagerClient {
  const client = new SecretsManagerClient({ ...moto.config(region), credentials });
  const owner = arn.split(':')[4];
  client.middlewareStack.add((next) => async (args) => {
    (args.request as { headers: Record<string, string> }).headers['x-moto-account-id'] = owner;
    return next(args);
  }, { step: 'build', name: 'motoRoutesByArn' });
  return client;
}

/** A new identity block in the key generator's format. */
async function newBlock(): Promise<{ identity: string; recipient: string; block: string }> {
  const identity = await age.generateX25519Identity();
  const recipient = await age.identityToRecipient(identity);
  generation += 1;
  return { identity, recipient, block: identityBlock(identity, recipient, generation, new Date('2026-01-01T00:00:00Z')) };
}

async function setPrimary(text: string): Promise<void> {
  await primary.send(new PutSecretValueCommand({ SecretId: sourceArn, SecretString: text }));
}

async function vaultValue(): Promise<string> {
  return (await vault.send(new GetSecretValueCommand({ SecretId: vaultArn }))).SecretString ?? '';
}

async function vaultVersions(): Promise<number> {
  return ((await vault.send(new ListSecretVersionIdsCommand({ SecretId: vaultArn, IncludeDeprecated: true }))).Versions ?? []).length;
}

function copy() {
  return copier.copyIdentity(clients, { sourceSecretArn: sourceArn, targetSecretId: vaultArn, metricIdentity });
}

/** Collects whatever reaches the console or the process's output streams. */
function captureEverythingLogged(): string[] {
  const lines: string[] = [];
  const keep = (...args: unknown[]) => { lines.push(args.map(String).join(' ')); };
  for (const method of ['log', 'info', 'warn', 'error', 'debug'] as const) {
    jest.spyOn(console, method).mockImplementation(keep);
  }
  return lines;
}

/** Encrypts with the age CLI to the recipient, as a dump task does, and decrypts with an identity file, as a restorer does. */
function roundTrip(recipient: string, identityFileText: string, plaintext: string): string {
  const encrypted = join(workDir, `backup-${Math.random().toString(36).slice(2)}.age`);
  execFileSync(AGE, ['-r', recipient, '-o', encrypted], { input: plaintext });
  const identityFile = join(workDir, 'identity.txt');
  writeFileSync(identityFile, identityFileText, { mode: 0o600 });
  return execFileSync(AGE, ['-d', '-i', identityFile, encrypted], { encoding: 'utf8' });
}

beforeAll(async () => {
  const probe = spawnSync(AGE, ['--version'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    throw new Error(`the age CLI is required at ${AGE} (apt-get install age, or scripts/install-deps.sh): ${probe.error ?? probe.stderr}`);
  }
  moto = await sharedMoto();
  copier = await import('../../lambda/identity-copier/index');
  age = await import('age-encryption');
  primaryCredentials = await credentialsOf(PRIMARY_ACCOUNT);
  vaultCredentials = await credentialsOf(VAULT_ACCOUNT);
  primary = new SecretsManagerClient({ ...moto.config(PRIMARY_REGION), credentials: primaryCredentials });
  vault = new SecretsManagerClient({ ...moto.config(VAULT_REGION), credentials: vaultCredentials });
  cloudwatch = new CloudWatchClient({ ...moto.config(VAULT_REGION), credentials: vaultCredentials });
});

afterAll(() => {
  primary?.destroy();
  vault?.destroy();
  cloudwatch?.destroy();
});

let firstBlock: { identity: string; recipient: string; block: string };

beforeEach(async () => {
  workDir = mkdtempSync(join(tmpdir(), 'restorable-copier-'));
  firstBlock = await newBlock();
  const created = await primary.send(new CreateSecretCommand({ Name: motoName('restorable/identity'), SecretString: firstBlock.block }));
  expect(created.ARN).toContain(`:${PRIMARY_ACCOUNT}:`);
  // VaultIdentity names the primary's secret without its suffix, as BackupKeys.identitySourceArn() gives it.
  sourceArn = created.ARN!.replace(/-[A-Za-z0-9]{6}$/, '');
  metricIdentity = motoName('vault-identity');
  const copy = await vault.send(new CreateSecretCommand({ Name: metricIdentity, SecretString: CFN_PLACEHOLDER }));
  expect(copy.ARN).toContain(`:${VAULT_ACCOUNT}:`);
  vaultArn = copy.ARN!;
  clients = { source: crossAccountClient(vaultCredentials, PRIMARY_REGION, sourceArn), target: vault, cloudwatch };
  logged = captureEverythingLogged();
});

afterEach(() => {
  clients.source.destroy();
  jest.restoreAllMocks();
  rmSync(workDir, { recursive: true, force: true });
});

describe('two accounts on the emulator', () => {
  test('the vault\'s credentials alone do not see the primary\'s secret: each account is served apart', async () => {
    await expect(vault.send(new GetSecretValueCommand({ SecretId: sourceArn }))).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
    await expect(primary.send(new GetSecretValueCommand({ SecretId: vaultArn }))).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
  });
});

describe('copying', () => {
  test('the first copy replaces the placeholder with the primary\'s identity file, which opens its backups', async () => {
    const result = await copy();

    expect(result).toEqual({ outcome: 'copied', keys: 1, fromPrimary: 1, keptFromVault: 0 });
    const copied = await vaultValue();
    expect(copied).toBe(firstBlock.block);
    expect(await vaultVersions()).toBe(2);
    expect(roundTrip(firstBlock.recipient, copied, 'orders, 42 rows')).toBe('orders, 42 rows');
  });

  test('publishes how many keys the vault holds, under the vault secret\'s name', async () => {
    await copy();

    const now = Date.now();
    const stats = await cloudwatch.send(new GetMetricStatisticsCommand({
      Namespace: METRIC_NAMESPACE, MetricName: VAULT_IDENTITY_KEYS,
      Dimensions: [{ Name: VAULT_IDENTITY_DIMENSION, Value: metricIdentity }],
      StartTime: new Date(now - 600_000), EndTime: new Date(now + 60_000), Period: 60, Statistics: ['Minimum', 'SampleCount'],
    }));
    expect(stats.Datapoints?.map((d) => [d.Minimum, d.SampleCount])).toEqual([[1, 1]]);
  });

  test('a rotation (a new key in front) reaches the vault in the primary\'s order', async () => {
    await copy();
    const second = await newBlock();
    const rotated = prependIdentity(firstBlock.block, second.block);
    await setPrimary(rotated);

    const result = await copy();

    expect(result).toEqual({ outcome: 'copied', keys: 2, fromPrimary: 2, keptFromVault: 0 });
    expect(await vaultValue()).toBe(rotated);
    expect(roundTrip(second.recipient, await vaultValue(), 'after rotation')).toBe('after rotation');
    expect(roundTrip(firstBlock.recipient, await vaultValue(), 'before rotation')).toBe('before rotation');
  });

  test('an unchanged primary writes no new version', async () => {
    await copy();
    const versions = await vaultVersions();

    const result = await copy();

    expect(result.outcome).toBe('unchanged');
    expect(await vaultVersions()).toBe(versions);
  });

  test('keys the primary dropped stay in the vault, after the primary\'s keys, and open the backups made with them', async () => {
    // Given a vault that copied a primary holding two keys
    const second = await newBlock();
    await setPrimary(prependIdentity(firstBlock.block, second.block));
    await copy();

    // When the primary's file is replaced by one holding a third key alone
    const third = await newBlock();
    await setPrimary(third.block);
    const result = await copy();

    // Then the vault keeps both older keys, after the primary's, and still opens their backups
    expect(result).toEqual({ outcome: 'copied', keys: 3, fromPrimary: 1, keptFromVault: 2 });
    const kept = await vaultValue();
    expect(kept).toBe(`${third.block}${second.block}${firstBlock.block}`);
    expect(roundTrip(firstBlock.recipient, kept, 'made with a dropped key')).toBe('made with a dropped key');
    expect(roundTrip(third.recipient, kept, 'made with the new key')).toBe('made with the new key');

    // and copying again changes nothing
    const versions = await vaultVersions();
    expect((await copy()).outcome).toBe('unchanged');
    expect(await vaultVersions()).toBe(versions);
    expect(await vaultValue()).toBe(kept);
  });

  test('a primary whose lines carry stray whitespace is copied as a file age reads: rebuilt from its keys, never as written', async () => {
    // Given a primary age itself would refuse whole ("unknown identity type"): an indented key, an indented comment,
    // a line of spaces and a trailing non-breaking space
    const second = await newBlock();
    const lines = (block: string) => block.trimEnd().split('\n');
    const [secondComment, secondKey] = [lines(second.block).slice(0, -1), lines(second.block).at(-1)!];
    const untidy = [...secondComment.map((line) => `  ${line}`), `   ${secondKey}\u00a0`, '   ', ...lines(firstBlock.block)].join('\n');
    await setPrimary(untidy);
    const refused = join(workDir, 'untidy.txt');
    writeFileSync(refused, untidy, { mode: 0o600 });
    expect(spawnSync(AGE, ['-d', '-i', refused], { input: 'x' }).status).not.toBe(0);

    // When the vault copies it
    expect(await copy()).toMatchObject({ outcome: 'copied', keys: 2 });

    // Then the copy holds both keys, cleanly, and age opens backups of either with it
    const copied = await vaultValue();
    expect(copied).toBe(prependIdentity(firstBlock.block, second.block));
    expect(roundTrip(second.recipient, copied, 'newer')).toBe('newer');
    expect(roundTrip(firstBlock.recipient, copied, 'older')).toBe('older');
  });

  test('a key the primary dropped and later holds again is not doubled, and neither change writes a version', async () => {
    const second = await newBlock();
    await setPrimary(prependIdentity(firstBlock.block, second.block));
    await copy();
    const versions = await vaultVersions();
    // The older key dropped: the vault already holds the same keys in the same order.
    await setPrimary(second.block);
    expect(await copy()).toEqual({ outcome: 'unchanged', keys: 2, fromPrimary: 1, keptFromVault: 1 });

    await setPrimary(prependIdentity(firstBlock.block, second.block));
    const result = await copy();

    expect(result).toEqual({ outcome: 'unchanged', keys: 2, fromPrimary: 2, keptFromVault: 0 });
    expect(await vaultValue()).toBe(prependIdentity(firstBlock.block, second.block));
    expect(await vaultVersions()).toBe(versions);
  });
});

describe('refusing a primary that is not an identity file', () => {
  test.each([
    ['replaced by other text', 'password=hunter2\nnot an identity\n', /is not an age identity file: lines 1, 2 are neither a comment nor an age identity/],
    ['emptied to comments', '# emptied\n\n', /holds no age identity \(no AGE-SECRET-KEY-… line\)/],
    ['a single space', ' ', /holds no age identity \(no AGE-SECRET-KEY-… line; it is empty\)/],
  ])('%s: the run fails saying so, and the vault keeps its copy unchanged', async (_case, value, message) => {
    await copy();
    const before = await vaultValue();
    const versions = await vaultVersions();
    await setPrimary(value);

    const failure = copy();

    await expect(failure).rejects.toThrow(message);
    await expect(failure).rejects.toThrow(/the vault's copy keeps its 1 key unchanged/);
    expect(await vaultValue()).toBe(before);
    expect(await vaultVersions()).toBe(versions);
    expect(logged.join('\n')).toMatch(/"outcome":"refused"/);
    expect(logged.join('\n')).not.toContain('hunter2');
  });

  test('a damaged identity line is refused without being repeated, and the good keys stay', async () => {
    await copy();
    const before = await vaultValue();
    // The right shape, a wrong checksum: the last character changed.
    const last = firstBlock.identity.slice(-1);
    const damaged = `${firstBlock.identity.slice(0, -1)}${last === 'Q' ? 'P' : 'Q'}`;
    await setPrimary(`# public key: ${firstBlock.recipient}\n${damaged}\n`);

    const failure = copy();

    await expect(failure).rejects.toThrow(/holds a damaged age identity: line 2 is not a valid X25519 identity/);
    const reason = await failure.catch((error: Error) => error.message);
    expect(reason).not.toContain(damaged.slice(20));
    expect(logged.join('\n')).not.toContain(damaged.slice(20));
    expect(await vaultValue()).toBe(before);
  });

  test('a primary that is gone fails naming the secret and what to check', async () => {
    const missing = `${sourceArn}-gone`;
    await expect(copier.copyIdentity(clients, { sourceSecretArn: missing, targetSecretId: vaultArn, metricIdentity }))
      .rejects.toThrow(new RegExp(`reading the primary's identity secret ${missing} failed: ResourceNotFoundException.*BackupKeys vaultAccount`));
    expect(await vaultValue()).toBe(CFN_PLACEHOLDER);
  });

  test('no identity from either secret reaches the log or an error', async () => {
    const second = await newBlock();
    await setPrimary(prependIdentity(firstBlock.block, second.block));
    await copy();
    await setPrimary('garbage');
    await copy().catch(() => undefined);

    const everything = logged.join('\n');
    expect(everything).toMatch(/"outcome":"copied"/);
    expect(everything).not.toMatch(/AGE-SECRET-KEY-1[0-9A-Z]/);
  });
});

describe('the handler, as Lambda runs it', () => {
  test('reads its settings from the environment and the primary through the primary\'s region', async () => {
    // moto cannot route across accounts without the header, so this case puts the "primary" in the vault's account:
    // it shows the wiring (environment, the source client's region taken from the ARN), not the account boundary.
    const inPrimaryRegion = new SecretsManagerClient({ ...moto.config(PRIMARY_REGION), credentials: vaultCredentials });
    const primaryInVaultAccount = await inPrimaryRegion.send(new CreateSecretCommand({ Name: motoName('restorable/identity'), SecretString: firstBlock.block }));
    inPrimaryRegion.destroy();
    const saved = { ...process.env };
    Object.assign(process.env, moto.env(VAULT_REGION), {
      AWS_ACCESS_KEY_ID: vaultCredentials.accessKeyId, AWS_SECRET_ACCESS_KEY: vaultCredentials.secretAccessKey, AWS_SESSION_TOKEN: vaultCredentials.sessionToken,
      SOURCE_SECRET_ARN: primaryInVaultAccount.ARN!.replace(/-[A-Za-z0-9]{6}$/, ''), TARGET_SECRET_ID: vaultArn, METRIC_IDENTITY: metricIdentity,
    });
    try {
      let isolated: Copier | undefined;
      jest.isolateModules(() => { isolated = jest.requireActual<Copier>('../../lambda/identity-copier/index'); });
      expect(await isolated!.handler()).toEqual({ outcome: 'copied', keys: 1, fromPrimary: 1, keptFromVault: 0 });
      expect(await vaultValue()).toBe(firstBlock.block);
    } finally {
      process.env = saved;
    }
  });

  test('a missing setting fails naming the variable', async () => {
    const saved = { ...process.env };
    delete process.env.SOURCE_SECRET_ARN;
    try {
      let isolated: Copier | undefined;
      jest.isolateModules(() => { isolated = jest.requireActual<Copier>('../../lambda/identity-copier/index'); });
      await expect(isolated!.handler()).rejects.toThrow(/environment variable SOURCE_SECRET_ARN is not set: the VaultIdentity construct sets it/);
    } finally {
      process.env = saved;
    }
  });
});
