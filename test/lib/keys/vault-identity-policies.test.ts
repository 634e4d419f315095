/**
 * Who may read and write the identity across the two accounts, by IAM policy simulation over the synthesized
 * templates of a primary stack (BackupKeys with vaultAccount) and a vault stack (its ReplicaStore and VaultIdentity):
 * no emulator enforces resource policies across accounts, so the copier's tests against moto cannot show this part.
 * Each call is simulated as IAM evaluates it: the caller's own policies, the secret's resource policy, and the KMS
 * call Secrets Manager makes with the caller's permissions, under the key's policy.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as sns from 'aws-cdk-lib/aws-sns';
import { BackupKeys } from '../../../lib/keys/backup-keys';
import { VaultIdentity } from '../../../lib/keys/vault-identity';
import { ROLE_PATHS } from '../../../lib/shared/trust-boundaries';
import { ReplicaStore, ReplicaStoreProps } from '../../../lib/store/replica-store';
import {
  ApiCall, decide, Deployment, describeVerdict, loadDeployment, Principal, principalOf, SecretModel, StackTemplate, standInPrincipal,
} from '../../support/iam-simulation';

const PRIMARY = { account: '111122223333', region: 'eu-central-1' };
const VAULT = { account: '444455556666', region: 'eu-west-1' };

/** Broad grants a role of either account might hold: every Secrets Manager and KMS action on everything. */
const EVERYTHING = [{ Effect: 'Allow', Action: ['secretsmanager:*', 'kms:*'], Resource: '*' }];

let deployment: Deployment;
let primarySecret: SecretModel;
let vaultSecret: SecretModel;
let principals: Record<string, Principal>;

beforeAll(() => {
  for (const asset of ['key-generator', 'identity-copier']) {
    if (!existsSync(join(__dirname, `../../../assets/lambda/${asset}/index.js`))) {
      throw new Error(`the ${asset} asset is missing: run 'npm run bundle' before these tests`);
    }
  }
  const app = new App();
  const primaryStack = new Stack(app, 'Primary', { env: PRIMARY });
  const keys = new BackupKeys(primaryStack, 'BackupKeys', { vaultAccount: VAULT.account });
  keys.grantIdentityRead(new iam.Role(primaryStack, 'RestoreTest', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'), path: ROLE_PATHS.restoreTest }),
    { rolePath: ROLE_PATHS.restoreTest });
  const vaultStack = new Stack(app, 'Vault', { env: VAULT });
  const alarmTopic = new sns.Topic(vaultStack, 'Alarms');
  const store = new ReplicaStore(vaultStack, 'Store', { primaryAccount: PRIMARY.account, alarmTopic } as ReplicaStoreProps);
  const identity = new VaultIdentity(vaultStack, 'Identity', { keys, store, alarmTopic });
  identity.grantIdentityRead(new iam.Role(vaultStack, 'DrRestore', { assumedBy: new iam.AccountRootPrincipal(), path: ROLE_PATHS.restore }),
    { rolePath: ROLE_PATHS.restore });
  const assembly = app.synth();
  const templates: StackTemplate[] = [primaryStack, vaultStack].map((stack) => ({
    id: stack.node.path, stackName: stack.stackName, account: stack.account, region: stack.region,
    template: assembly.getStackByName(stack.stackName).template,
  }));
  deployment = loadDeployment(templates);

  const only = <T>(found: T[], what: string): T => {
    if (found.length !== 1) throw new Error(`expected one ${what}, found ${found.length}`);
    return found[0];
  };
  primarySecret = only(deployment.secrets.filter((s) => s.account === PRIMARY.account), 'secret in the primary account');
  vaultSecret = only(deployment.secrets.filter((s) => s.account === VAULT.account), 'secret in the vault account');
  const role = (path: string, account: string) => only(deployment.roles.filter((r) => r.path === path && r.account === account), `role under ${path} in ${account}`);
  const copier = role(ROLE_PATHS.identityCopier, VAULT.account);
  principals = {
    copier: principalOf(copier, 'the vault\'s identity copier'),
    vaultRestore: principalOf(role(ROLE_PATHS.restore, VAULT.account), 'a vault restore role'),
    primaryRestoreTest: principalOf(role(ROLE_PATHS.restoreTest, PRIMARY.account), 'a primary restore-test role'),
    vaultAdmin: standInPrincipal('a vault administrator', `arn:aws:iam::${VAULT.account}:role/admin`, EVERYTHING,
      'any role of the vault account outside the copier\'s path, with every Secrets Manager and KMS action'),
    vaultImpostor: standInPrincipal('a vault role named like the copier, under another path', `arn:aws:iam::${VAULT.account}:role/other/identity-copier`,
      copier.identityPolicies.flatMap((p) => (p.policy as { Statement: Record<string, unknown>[] }).Statement),
      'the copier\'s own grants, on a role outside /restorable/identity-copier/'),
    primaryAdmin: standInPrincipal('a primary administrator', `arn:aws:iam::${PRIMARY.account}:role/admin`, EVERYTHING,
      'any role of the primary account outside the restore paths, with every Secrets Manager and KMS action'),
    copierInAnotherAccount: standInPrincipal('an identity copier of a third account', 'arn:aws:iam::777788889999:role/restorable/identity-copier/x',
      EVERYTHING, 'the copier\'s path in an account the primary never named'),
  };
});

async function verdict(principal: string, call: ApiCall): Promise<string> {
  return describeVerdict(await decide(principals[principal], call));
}

describe('the primary\'s identity secret', () => {
  test('the vault\'s identity copier reads it and decrypts it through Secrets Manager, across the accounts', async () => {
    expect(await verdict('copier', { api: 'GetSecretValue', secret: primarySecret })).toBe('✅');
  });

  test('the copier cannot write it', async () => {
    expect(await verdict('copier', { api: 'PutSecretValue', secret: primarySecret })).toBe('⛔ OnlyTheGeneratorWritesTheIdentity');
  });

  test.each([
    ['vaultAdmin'], ['vaultImpostor'], ['vaultRestore'], ['copierInAnotherAccount'],
  ])('no other principal of another account reads it: %s', async (principal) => {
    expect(await verdict(principal, { api: 'GetSecretValue', secret: primarySecret })).toBe('⛔ OnlyRestoreRolesReadTheIdentity');
  });

  test('its key, too, lets only the copier\'s path of the vault account decrypt: the copier\'s grants on another path get nothing', async () => {
    const decryptions = async (principal: string) => (await decide(principals[principal], { api: 'GetSecretValue', secret: primarySecret }))
      .steps.filter((step) => step.authorisation.service === 'kms').map((step) => step.result);
    expect(await decryptions('copier')).toEqual(['Allowed']);
    expect(await decryptions('vaultImpostor')).not.toEqual(['Allowed']);
    expect(await decryptions('copierInAnotherAccount')).not.toEqual(['Allowed']);
  });

  test('in the primary account, restore roles still read it and an administrator is still denied', async () => {
    expect(await verdict('primaryRestoreTest', { api: 'GetSecretValue', secret: primarySecret })).toBe('✅');
    expect(await verdict('primaryAdmin', { api: 'GetSecretValue', secret: primarySecret })).toBe('⛔ OnlyRestoreRolesReadTheIdentity');
  });
});

describe('the vault\'s copy', () => {
  test('the copier reads and writes it', async () => {
    expect(await verdict('copier', { api: 'GetSecretValue', secret: vaultSecret })).toBe('✅');
    expect(await verdict('copier', { api: 'PutSecretValue', secret: vaultSecret })).toBe('✅');
  });

  test('a vault restore role granted by path reads it but cannot write it', async () => {
    expect(await verdict('vaultRestore', { api: 'GetSecretValue', secret: vaultSecret })).toBe('✅');
    expect(await verdict('vaultRestore', { api: 'PutSecretValue', secret: vaultSecret })).not.toBe('✅');
  });

  test('a vault administrator can neither read nor overwrite it', async () => {
    expect(await verdict('vaultAdmin', { api: 'GetSecretValue', secret: vaultSecret })).toBe('⛔ OnlyRestoreRolesReadTheIdentity');
    expect(await verdict('vaultAdmin', { api: 'PutSecretValue', secret: vaultSecret })).toBe('⛔ OnlyTheCopierWritesTheIdentity');
  });

  test('the primary account, even its administrator, neither reads nor writes it', async () => {
    for (const principal of ['primaryAdmin', 'primaryRestoreTest']) {
      expect(await verdict(principal, { api: 'GetSecretValue', secret: vaultSecret })).not.toBe('✅');
      expect(await verdict(principal, { api: 'PutSecretValue', secret: vaultSecret })).not.toBe('✅');
    }
  });
});
