/**
 * Who may do what with the vault: the example app's `prod` environment, whose offsite copy is a vault in another
 * account, through the IAM policy simulator. Every principal of both accounts against every call that would empty,
 * rewrite, unlock or read the vault, each cell asserted against the design (issue 16), and the matrix printed in
 * README.md between the vault-who-may-do-what markers.
 *
 * Across accounts a call needs both sides: the caller's identity policy and the resource's policy (bucket, key or
 * secret). No local emulator enforces either across accounts; this simulation is the proof. What S3 refuses by
 * itself whatever the policies say (shortening a COMPLIANCE lock, a bucket policy set from another account) is not
 * simulated: the cells show what the policies allow.
 *
 * UPDATE_README_MATRIX=1 rewrites the README section from the simulation instead of comparing it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ExampleStacks } from '../../bin/example-app';
import { backupKey, DumpFormat } from '../../lib/contract';
import { DEFAULT_BREAK_GLASS_ROLE_NAME, ROLE_PATHS } from '../../lib/shared/trust-boundaries';
import {
  ApiCall, BucketModel, CallVerdict, decide, Deployment, describeVerdict, KeyModel, loadDeployment, ObjectTarget, Principal, principalOf,
  RoleModel, SecretModel,
} from '../support/iam-simulation';
import { allPowerful, logicalIdOf, roleOf, synthesizeExample } from '../support/example-deployment';

const README = join(__dirname, '..', '..', 'README.md');
const START = '<!-- vault-who-may-do-what:start -->';
const END = '<!-- vault-who-may-do-what:end -->';
const ENVIRONMENT = 'prod';
const TIER = { 'backup-tier': 'monthly' };

/** What the calls aim at: the vault's objects of sources A and B, its bucket and key, and both copies of the identity. */
interface Targets {
  readonly vault: BucketModel;
  readonly vaultKey: KeyModel;
  /** A version the primary replicates now. */
  readonly newBackupA: ObjectTarget;
  /** A stored, locked replica of A. */
  readonly backupA: ObjectTarget;
  readonly backupB: ObjectTarget;
  readonly vaultIdentity: SecretModel;
  readonly primaryIdentity: SecretModel;
}

type ColumnId =
  | 'replicate' | 'createObject' | 'overwriteObject' | 'deleteVersion' | 'bypassGovernance' | 'lockCompliance' | 'lockGovernance'
  | 'changeLifecycle' | 'changeBucketPolicy' | 'readBackupA' | 'readBackupB' | 'readVaultIdentity' | 'writeVaultIdentity'
  | 'readPrimaryIdentity' | 'scheduleVaultKeyDeletion';

interface Column {
  readonly id: ColumnId;
  readonly title: string;
  readonly call: (t: Targets) => ApiCall;
}

const A_YEAR_ON = new Date('2027-06-01T00:00:00Z');
const A_DAY_ON = new Date('2026-06-02T00:00:00Z');

const COLUMNS: Column[] = [
  { id: 'replicate', title: 'replicate a version into the vault', call: (t) => ({ api: 'ReplicateObject', target: t.newBackupA }) },
  { id: 'createObject', title: 'create an object in the vault (If-None-Match)',
    call: (t) => ({ api: 'PutObject', target: t.newBackupA, ifNoneMatch: true, tags: TIER }) },
  { id: 'overwriteObject', title: 'overwrite a current version', call: (t) => ({ api: 'PutObject', target: t.backupA }) },
  { id: 'deleteVersion', title: 'delete a version', call: (t) => ({ api: 'DeleteObject', target: t.backupA, versionId: 'v1' }) },
  { id: 'bypassGovernance', title: 'delete a version, bypassing governance',
    call: (t) => ({ api: 'DeleteObject', target: t.backupA, versionId: 'v1', bypassGovernanceRetention: true }) },
  { id: 'lockCompliance', title: 'lock a version in COMPLIANCE (bypassing its GOVERNANCE lock)',
    call: (t) => ({ api: 'PutObjectRetention', target: t.backupA, mode: 'COMPLIANCE', retainUntil: A_YEAR_ON, bypassGovernanceRetention: true }) },
  { id: 'lockGovernance', title: 'shorten a lock to GOVERNANCE, one day',
    call: (t) => ({ api: 'PutObjectRetention', target: t.backupA, mode: 'GOVERNANCE', retainUntil: A_DAY_ON, bypassGovernanceRetention: true }) },
  { id: 'changeLifecycle', title: "change the vault's lifecycle", call: (t) => ({ api: 'PutBucketLifecycleConfiguration', bucket: t.vault }) },
  { id: 'changeBucketPolicy', title: "change the vault's bucket policy", call: (t) => ({ api: 'PutBucketPolicy', bucket: t.vault }) },
  { id: 'readBackupA', title: "read A's backup in the vault", call: (t) => ({ api: 'GetObject', target: t.backupA }) },
  { id: 'readBackupB', title: "read B's backup in the vault", call: (t) => ({ api: 'GetObject', target: t.backupB }) },
  { id: 'readVaultIdentity', title: "read the vault's identity", call: (t) => ({ api: 'GetSecretValue', secret: t.vaultIdentity }) },
  { id: 'writeVaultIdentity', title: "write the vault's identity", call: (t) => ({ api: 'PutSecretValue', secret: t.vaultIdentity }) },
  { id: 'readPrimaryIdentity', title: "read the primary's identity", call: (t) => ({ api: 'GetSecretValue', secret: t.primaryIdentity }) },
  { id: 'scheduleVaultKeyDeletion', title: "schedule deletion of the vault's key", call: (t) => ({ api: 'ScheduleKeyDeletion', key: t.vaultKey }) },
];

type RowId =
  | 'primaryAdministrator' | 'primaryBreakGlass' | 'replication' | 'dumpA'
  | 'vaultRestoreTestA' | 'vaultRestore' | 'retentionKeeper' | 'identityCopier' | 'vaultAdministrator' | 'vaultBreakGlass';

/** The design (issue 16): what each principal may do to the vault. Every call not listed is denied. */
const EXPECTED: Record<RowId, { readonly title: string; readonly allowed: ColumnId[] }> = {
  // The primary account, even with `*` on `*` and even its break-glass role, gets nothing of the vault: the vault's
  // policies admit it only to replicate, by the replication role's path, and the primary's identity secret admits
  // only restore roles and the vault's copier.
  primaryAdministrator: { title: 'primary account: administrator', allowed: [] },
  primaryBreakGlass: { title: 'primary account: break-glass', allowed: [] },
  // Replicates, and nothing else: no put, no delete, no read of what is there.
  replication: { title: "primary's replication role", allowed: ['replicate'] },
  dumpA: { title: 'dump role (A)', allowed: [] },
  // The vault's restore tests read their own source's backups and the vault's identity: never the primary's.
  vaultRestoreTestA: { title: 'vault restore-test role (A)', allowed: ['readBackupA', 'readVaultIdentity'] },
  // People restoring from the vault read every tested source and the identity.
  vaultRestore: { title: 'vault restore role', allowed: ['readBackupA', 'readBackupB', 'readVaultIdentity'] },
  // Makes each new version's lock COMPLIANCE, the only call that bypasses governance there; never shortens, deletes or reads.
  retentionKeeper: { title: 'retention keeper', allowed: ['lockCompliance'] },
  // Reads the primary's identity and writes the vault's copy, which it merges into (so reads it too).
  identityCopier: { title: 'identity copier', allowed: ['readVaultIdentity', 'writeVaultIdentity', 'readPrimaryIdentity'] },
  // The vault account owns the vault: its administrator may add objects, read ciphertext and change the bucket's
  // configuration (which the tampering alarms of that account report), but not delete, overwrite, unlock or read the identity.
  vaultAdministrator: {
    title: 'vault account: administrator',
    allowed: ['createObject', 'changeLifecycle', 'changeBucketPolicy', 'readBackupA', 'readBackupB'],
  },
  // Gets through the vault's denies (not the identity's reads, which name their readers, nor replication, which is the primary's).
  vaultBreakGlass: {
    title: 'vault account: break-glass',
    allowed: ['createObject', 'overwriteObject', 'deleteVersion', 'bypassGovernance', 'lockCompliance', 'lockGovernance', 'changeLifecycle',
      'changeBucketPolicy', 'readBackupA', 'readBackupB', 'writeVaultIdentity', 'scheduleVaultKeyDeletion'],
  },
};
const ROWS = Object.keys(EXPECTED) as RowId[];

interface Simulated {
  readonly stacks: ExampleStacks;
  readonly targets: Targets;
  readonly principals: Record<RowId, Principal>;
  readonly verdicts: Record<RowId, Record<ColumnId, CallVerdict>>;
}

/** The one role under `path` in `account`, whose name starts with `prefix` when given. */
function onlyRole(deployment: Deployment, path: string, account: string, prefix = ''): RoleModel {
  const found = deployment.rolesUnderPath(path).filter((r) => r.account === account && r.name.startsWith(prefix));
  if (found.length !== 1) throw new Error(`expected one role under ${path}${prefix ? ` named ${prefix}…` : ''} in ${account}, found ${found.length}`);
  return found[0];
}

async function simulate(): Promise<Simulated> {
  const { stacks, templates } = synthesizeExample(ENVIRONMENT);
  if (!stacks.vault) throw new Error(`the example app's ${ENVIRONMENT} environment has no vault: give it a replicaAccount of its own in cdk.json`);
  const deployment = loadDeployment(templates);
  const [sourceA, sourceB] = stacks.backups.sources;
  const prefix = stacks.replicaStore.prefix;
  const vaultId = logicalIdOf(stacks.replicaStore.bucket);
  const vault = deployment.bucket(vaultId.stack, vaultId.logicalId);
  if (!vault.key) throw new Error('the vault bucket has no KMS key of the example app');
  const secret = (construct: Parameters<typeof logicalIdOf>[0]) => {
    const id = logicalIdOf(construct);
    return deployment.secret(id.stack, id.logicalId);
  };
  const at = new Date('2026-05-01T01:00:00Z');
  const object = (key: string): ObjectTarget => ({ bucket: vault, key, existingTags: TIER });
  const targets: Targets = {
    vault, vaultKey: vault.key,
    newBackupA: { bucket: vault, key: backupKey(prefix, sourceA.name, new Date('2026-06-01T11:00:00Z'), DumpFormat.PG_CUSTOM) },
    backupA: object(backupKey(prefix, sourceA.name, at, DumpFormat.PG_CUSTOM)),
    backupB: object(backupKey(prefix, sourceB.name, at, DumpFormat.SQL)),
    vaultIdentity: secret(stacks.vault.identity.secret),
    primaryIdentity: secret(stacks.keys.identitySecret!),
  };

  const primaryAccount = stacks.primary.account;
  const vaultAccount = stacks.replica.account;
  const role = (row: RowId, model: RoleModel) => principalOf(model, EXPECTED[row].title);
  const principals: Record<RowId, Principal> = {
    primaryAdministrator: allPowerful(EXPECTED.primaryAdministrator.title, `arn:aws:iam::${primaryAccount}:role/Administrator`,
      'not in the template: an administrator role of the primary account, `*` on `*`'),
    primaryBreakGlass: allPowerful(EXPECTED.primaryBreakGlass.title, `arn:aws:iam::${primaryAccount}:role/${DEFAULT_BREAK_GLASS_ROLE_NAME}`,
      "not in the template: the primary account's default break-glass role, `*` on `*`"),
    replication: role('replication', roleOf(deployment, stacks.store.replicationRole, 'the store')),
    dumpA: role('dumpA', roleOf(deployment, sourceA.taskRole, `source ${sourceA.name}`)),
    vaultRestoreTestA: role('vaultRestoreTestA', onlyRole(deployment, ROLE_PATHS.restoreTest, vaultAccount, `${sourceA.name}-`)),
    vaultRestore: role('vaultRestore', roleOf(deployment, stacks.vault.restoreTesting.restoreRole, 'the vault restore role')),
    retentionKeeper: role('retentionKeeper', onlyRole(deployment, ROLE_PATHS.retentionKeeper, vaultAccount)),
    identityCopier: role('identityCopier', onlyRole(deployment, ROLE_PATHS.identityCopier, vaultAccount)),
    vaultAdministrator: allPowerful(EXPECTED.vaultAdministrator.title, `arn:aws:iam::${vaultAccount}:role/Administrator`,
      'not in the template: an administrator role of the vault account, `*` on `*`'),
    vaultBreakGlass: allPowerful(EXPECTED.vaultBreakGlass.title, `arn:aws:iam::${vaultAccount}:role/${DEFAULT_BREAK_GLASS_ROLE_NAME}`,
      "not in the template: the vault account's default break-glass role, `*` on `*`"),
  };

  const verdicts = {} as Record<RowId, Record<ColumnId, CallVerdict>>;
  for (const row of ROWS) {
    verdicts[row] = {} as Record<ColumnId, CallVerdict>;
    for (const column of COLUMNS) verdicts[row][column.id] = await decide(principals[row], column.call(targets));
  }
  return { stacks, targets, principals, verdicts };
}

/** The matrix as README.md prints it: one line per call, one column per principal. */
function renderMatrix(s: Simulated): string {
  const escape = (text: string) => text.replace(/\|/g, '\\|');
  return [
    '<!-- Generated by test/app/vault-who-may-do-what.test.ts: run `UPDATE_README_MATRIX=1 npx jest test/app/vault-who-may-do-what.test.ts` after a policy change. -->',
    '',
    `The example app's \`-c env=${ENVIRONMENT}\`: the primary in account ${s.stacks.primary.account}, the vault in account ` +
    `${s.stacks.replica.account}. A is \`${s.stacks.backups.sources[0].name}\` and B is \`${s.stacks.backups.sources[1].name}\`.`,
    '',
    `| Call | ${ROWS.map((row) => escape(EXPECTED[row].title)).join(' | ')} |`,
    `|---|${ROWS.map(() => '---').join('|')}|`,
    ...COLUMNS.map((column) => `| ${escape(column.title)} | ${ROWS.map((row) => escape(describeVerdict(s.verdicts[row][column.id]))).join(' | ')} |`),
    '',
    '✅ allowed; ⛔ refused by a Deny (the Sid of the bucket, secret or key policy statement, "own policy" for a deny in the ' +
    "principal's identity policy); · nothing grants it. Administrators and break-glass roles are `*` on `*`; break-glass is each " +
    `account's \`${DEFAULT_BREAK_GLASS_ROLE_NAME}\`. S3 itself also refuses to shorten a COMPLIANCE lock and a bucket policy set from another ` +
    'account, whatever the policies say.',
  ].join('\n');
}

const allowedOrDenied = (allowed: boolean) => (allowed ? 'allowed' : 'denied');

describe('who may do what with the vault, by IAM policy simulation of the example app across two accounts', () => {
  let s: Simulated;
  beforeAll(async () => { s = await simulate(); });

  test('the vault is in another account than the primary, and each principal is in the account the design puts it in', () => {
    expect(s.stacks.replica.account).not.toBe(s.stacks.primary.account);
    const vaultRows: RowId[] = ['vaultRestoreTestA', 'vaultRestore', 'retentionKeeper', 'identityCopier', 'vaultAdministrator', 'vaultBreakGlass'];
    for (const row of ROWS) {
      expect([row, s.principals[row].account]).toEqual([row, vaultRows.includes(row) ? s.stacks.replica.account : s.stacks.primary.account]);
    }
    expect(s.principals.replication.roleArn).toContain(`:role${ROLE_PATHS.replication}`);
  });

  // A control: the replication role is refused once its ARN is not under the path the vault admits (same policies).
  test('control: the replication role\'s own policy at another path is refused by the vault', async () => {
    const elsewhere = { ...s.principals.replication, roleArn: s.principals.replication.roleArn.replace(ROLE_PATHS.replication, '/elsewhere/') };
    expect((await decide(elsewhere, COLUMNS[0].call(s.targets))).allowed).toBe(false);
  });

  test.each(ROWS)('%s: every call as the design says', (row) => {
    const expected = Object.fromEntries(COLUMNS.map((c) => [c.id, allowedOrDenied(EXPECTED[row].allowed.includes(c.id))]));
    const actual = Object.fromEntries(COLUMNS.map((c) => [c.id, allowedOrDenied(s.verdicts[row][c.id].allowed)]));
    expect(actual).toEqual(expected);
  });

  test('README.md prints the matrix the simulation computes', () => {
    const readme = readFileSync(README, 'utf8');
    const start = readme.indexOf(START);
    const end = readme.indexOf(END);
    if (start < 0 || end < start) {
      throw new Error(`README.md has no vault matrix section: add the two lines\n${START}\n${END}\nto its vault section, then run ` +
        'UPDATE_README_MATRIX=1 npx jest test/app/vault-who-may-do-what.test.ts');
    }
    const rendered = `\n${renderMatrix(s)}\n`;
    if (process.env.UPDATE_README_MATRIX === '1') {
      writeFileSync(README, `${readme.slice(0, start + START.length)}${rendered}${readme.slice(end)}`);
      return;
    }
    expect(readme.slice(start + START.length, end)).toBe(rendered);
  });
});
