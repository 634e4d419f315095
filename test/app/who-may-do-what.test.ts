/**
 * Who may do what: the example app's templates (dev environment) through an IAM policy simulator, every principal
 * against every call the trust boundaries are about, each cell asserted against the design (issue 14), and the
 * matrix printed in README.md between the who-may-do-what markers.
 *
 * S3, Secrets Manager and KMS are simulated separately, each with its own resource policy: a call is allowed only
 * when every authorisation it needs is (an S3 write needs kms:GenerateDataKey on the store's key through S3, reading
 * the identity needs kms:Decrypt through Secrets Manager). The calls' actions, resources and condition keys come
 * from one table (authorisationsFor in test/support/iam-simulation.ts), and every simulation fails when the
 * simulator ignored a context key. No local emulator enforces bucket-policy conditions: this simulation is the
 * proof of the bucket policy's effect.
 *
 * UPDATE_README_MATRIX=1 rewrites the README section from the simulation instead of comparing it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as iam from 'aws-cdk-lib/aws-iam';
import { ExampleStacks } from '../../bin/example-app';
import {
  backupKey, binlogIndexKey, binlogObjectKey, binlogStreamId, DumpFormat, latestKey, METRIC_NAMESPACE, restoreTestLatestKey, runbookKey, sourcePrefix,
} from '../../lib/contract';
import { DEFAULT_BREAK_GLASS_ROLE_NAME, ROLE_PATHS } from '../../lib/shared/trust-boundaries';
import {
  AN_ETAG, ApiCall, authorise, BucketModel, CallVerdict, decide, Deployment, describeVerdict, KeyModel, loadDeployment,
  ObjectTarget, Principal, principalOf, RoleModel, SecretModel, standInPrincipal,
} from '../support/iam-simulation';
import { allPowerful, logicalIdOf, roleOf, synthesizeExample } from '../support/example-deployment';

const ROOT = join(__dirname, '..', '..');
const README = join(ROOT, 'README.md');
const START = '<!-- who-may-do-what:start -->';
const END = '<!-- who-may-do-what:end -->';
const ENVIRONMENT = 'dev';

/** What the calls aim at: source A's objects, source B's, the identity secret and its key. */
interface Targets {
  readonly bucket: BucketModel;
  readonly prefix: string;
  readonly sourceB: string;
  /** A backup key of A that does not exist yet. */
  readonly newBackupA: ObjectTarget;
  /** A stored backup of A: tagged with its tier at creation, held and locked. */
  readonly backupA: ObjectTarget;
  readonly backupB: ObjectTarget;
  readonly latestA: ObjectTarget;
  readonly restoreTestLatestA: ObjectTarget;
  readonly runbookA: ObjectTarget;
  readonly identity: SecretModel;
  readonly identityKey: KeyModel;
}

type ColumnId =
  | 'createBackup' | 'overwriteBackup' | 'completeWithoutIfNoneMatch' | 'uploadPart' | 'updateLatest' | 'rewriteLatestUnconditionally' | 'releaseHold'
  | 'placeHold' | 'writeRestoreTestLatest' | 'writeRunbook' | 'tagLatest' | 'readBackupOfB' | 'listPrefixOfB'
  | 'deleteObjectVersion' | 'bypassGovernanceRetention' | 'readIdentity' | 'overwriteIdentity' | 'scheduleIdentityKeyDeletion';

interface Column {
  readonly id: ColumnId;
  readonly title: string;
  readonly call: (t: Targets) => ApiCall;
}

const TIER = { 'backup-tier': 'daily' };

/** The calls, as the README lists them. */
const COLUMNS: Column[] = [
  { id: 'createBackup', title: 'create a new backup key (If-None-Match, tagged)',
    call: (t) => ({ api: 'PutObject', target: t.newBackupA, ifNoneMatch: true, tags: TIER }) },
  { id: 'overwriteBackup', title: 'overwrite an existing backup key (no If-None-Match)',
    call: (t) => ({ api: 'PutObject', target: t.backupA }) },
  { id: 'completeWithoutIfNoneMatch', title: 'CompleteMultipartUpload without If-None-Match',
    call: (t) => ({ api: 'CompleteMultipartUpload', target: t.newBackupA }) },
  { id: 'uploadPart', title: 'UploadPart',
    call: (t) => ({ api: 'UploadPart', target: t.newBackupA }) },
  { id: 'updateLatest', title: 'update `latest.json` (If-Match)',
    call: (t) => ({ api: 'PutObject', target: t.latestA, ifMatch: AN_ETAG }) },
  { id: 'rewriteLatestUnconditionally', title: 'rewrite `latest.json` without If-Match',
    call: (t) => ({ api: 'PutObject', target: t.latestA }) },
  { id: 'releaseHold', title: 'release a legal hold (OFF)',
    call: (t) => ({ api: 'PutObjectLegalHold', target: t.backupA, status: 'OFF' }) },
  { id: 'placeHold', title: 'place a legal hold (ON)',
    call: (t) => ({ api: 'PutObjectLegalHold', target: t.backupA, status: 'ON' }) },
  { id: 'writeRestoreTestLatest', title: 'write `restore-tests/latest.json` (If-Match)',
    call: (t) => ({ api: 'PutObject', target: t.restoreTestLatestA, ifMatch: AN_ETAG }) },
  { id: 'writeRunbook', title: 'write `RUNBOOK.md` (If-Match)',
    call: (t) => ({ api: 'PutObject', target: t.runbookA, ifMatch: AN_ETAG }) },
  { id: 'tagLatest', title: 'tag `latest.json`',
    call: (t) => ({ api: 'PutObjectTagging', target: t.latestA, tags: { 'backup-tier': 'hourly' } }) },
  { id: 'readBackupOfB', title: "read B's backup",
    call: (t) => ({ api: 'GetObject', target: t.backupB }) },
  { id: 'listPrefixOfB', title: "list B's prefix",
    call: (t) => ({ api: 'ListObjectsV2', bucket: t.bucket, prefix: sourcePrefix(t.prefix, t.sourceB) }) },
  { id: 'deleteObjectVersion', title: 'DeleteObjectVersion',
    call: (t) => ({ api: 'DeleteObject', target: t.backupA, versionId: 'v1' }) },
  { id: 'bypassGovernanceRetention', title: 'BypassGovernanceRetention (delete a locked version)',
    call: (t) => ({ api: 'DeleteObject', target: t.backupA, versionId: 'v1', bypassGovernanceRetention: true }) },
  { id: 'readIdentity', title: 'read the identity',
    call: (t) => ({ api: 'GetSecretValue', secret: t.identity }) },
  { id: 'overwriteIdentity', title: 'overwrite the identity',
    call: (t) => ({ api: 'PutSecretValue', secret: t.identity }) },
  { id: 'scheduleIdentityKeyDeletion', title: "schedule deletion of the identity's key",
    call: (t) => ({ api: 'ScheduleKeyDeletion', key: t.identityKey }) },
];

type RowId = 'dumpA' | 'restoreTestA' | 'freshness' | 'size' | 'holdKeeper' | 'runbookWriter' | 'replication' | 'breakGlass' | 'administrator';

/**
 * The design (notes on issue 14): what each principal may do. Every call not listed is denied. Written from the
 * design, not from the simulator.
 */
const EXPECTED: Record<RowId, { readonly title: string; readonly allowed: ColumnId[] }> = {
  // Adds backups: creates with If-None-Match (multipart parts are exempt, the completion is not), moves its
  // latest.json forward with If-Match, places holds. Never releases one, never touches reports, runbooks or tags
  // of pointers, never sees another source.
  dumpA: { title: 'dump role (A)', allowed: ['createBackup', 'uploadPart', 'updateLatest', 'placeHold'] },
  // Writes A's restore-test report and reads the identity; reads A's backups but never B's (a role per source).
  restoreTestA: { title: 'restore-test role (A)', allowed: ['writeRestoreTestLatest', 'readIdentity'] },
  // The checks read pointers and HEAD backups (HeadObject is s3:GetObject; the pointers need kms:Decrypt) and list
  // every source: they read, nothing more.
  freshness: { title: 'freshness function', allowed: ['readBackupOfB', 'listPrefixOfB'] },
  size: { title: 'size function', allowed: ['readBackupOfB', 'listPrefixOfB'] },
  // The only principal that releases holds; it keeps them too, and reads pointers, manifests and reports.
  holdKeeper: { title: 'hold keeper', allowed: ['releaseHold', 'placeHold', 'readBackupOfB', 'listPrefixOfB'] },
  // The only principal that writes runbooks (If-None-Match to create, If-Match to update).
  runbookWriter: { title: 'runbook writer', allowed: ['writeRunbook'] },
  // S3 replication reads with GetObjectVersionForReplication, not GetObject; ListBucket is in its standard grant.
  replication: { title: 'replication role', allowed: ['listPrefixOfB'] },
  // Gets through every deny but the identity read: the default break-glass name only passes the destructive
  // denies (README, key recovery), and reading the identity needs it passed as breakGlassRole.
  breakGlass: { title: 'break-glass role', allowed: COLUMNS.map((c) => c.id).filter((id) => id !== 'readIdentity') },
  // Identity policy `*` on `*`, not break-glass: may add and read, but the bucket, key and secret policies refuse
  // it everything that destroys, rewrites or releases.
  administrator: {
    title: 'account administrator (not break-glass)',
    allowed: ['createBackup', 'uploadPart', 'updateLatest', 'placeHold', 'readBackupOfB', 'listPrefixOfB'],
  },
};
const ROWS = Object.keys(EXPECTED) as RowId[];

/**
 * What the design lets a row do in this app. Each restore-tested source has a role of its own, so a test of A
 * reads and decrypts none of B's backups; a shared role would be a finding, not another expectation.
 */
function expectedAllowed(row: RowId, s: Simulated): ColumnId[] {
  if (row === 'restoreTestA' && s.restoreTestRoleOfB.arn === s.principals.restoreTestA.roleArn) {
    throw new Error(`sources A and B share the restore-test role ${s.restoreTestRoleOfB.arn}: a test of A could read B's backups`);
  }
  return EXPECTED[row].allowed;
}

/**
 * The restore-test role that holds `source`'s grants: the role RestoreTesting made for that source (a construct named
 * after it), or, where roles hold several sources' grants (TestRole1, TestRole2, … of eight sources each, in the
 * order the sources were added), the one of its group.
 */
function restoreTestRoleOf(deployment: Deployment, stacks: ExampleStacks, source: string): RoleModel {
  const roles = stacks.restoreTesting.node.findAll().filter((c): c is iam.Role => c instanceof iam.Role);
  const own = roles.filter((r) => r.node.scopes.some((scope) => scope.node.id === source));
  if (own.length === 1) return roleOf(deployment, own[0], `the restore-test role of ${source}`);
  const grouped = roles.filter((r) => /^TestRole\d+$/.test(r.node.id)).sort((a, b) => Number(a.node.id.slice(8)) - Number(b.node.id.slice(8)));
  const index = stacks.backups.sources.findIndex((s) => s.name === source);
  const role = grouped[Math.floor(index / 8)];
  if (!role) throw new Error(`RestoreTesting has no role for ${source}: neither one named after it nor a TestRoleN`);
  return roleOf(deployment, role, `the restore-test role of ${source}`);
}

/**
 * The hold keeper: the role under ROLE_PATHS.holdKeeper in the primary stack once DatabaseBackups creates it. Until
 * then a stand-in at that path with the identity policy the design gives it (list the store, read pointers,
 * manifests and reports, read and set legal holds, decrypt what it reads, publish its metrics); the row switches
 * to the real role by itself as soon as the template has one.
 */
function holdKeeper(deployment: Deployment, stacks: ExampleStacks, targets: Targets): { principal: Principal; role?: RoleModel } {
  const found = deployment.rolesUnderPath(ROLE_PATHS.holdKeeper);
  if (found.length > 1) throw new Error(`more than one hold keeper: ${found.map((r) => r.arn).join(', ')}`);
  if (found.length === 1) return { principal: principalOf(found[0], EXPECTED.holdKeeper.title), role: found[0] };
  const { bucket } = targets;
  const arn = `arn:aws:iam::${stacks.primary.account}:role${ROLE_PATHS.holdKeeper}${stacks.primary.stackName}-HoldKeeperRole`;
  return {
    principal: standInPrincipal(EXPECTED.holdKeeper.title, arn, [
      { Effect: 'Allow', Action: 's3:ListBucket', Resource: bucket.arn },
      { Effect: 'Allow', Action: ['s3:GetObject', 's3:GetObjectLegalHold', 's3:PutObjectLegalHold'], Resource: `${bucket.arn}/*` },
      { Effect: 'Allow', Action: 'kms:Decrypt', Resource: bucket.key!.arn,
        Condition: { StringEquals: { 'kms:ViaService': `s3.${bucket.region}.amazonaws.com` } } },
      { Effect: 'Allow', Action: 'cloudwatch:PutMetricData', Resource: '*', Condition: { StringEquals: { 'cloudwatch:namespace': METRIC_NAMESPACE } } },
    ], `not in the template yet, so simulated at its design path (${ROLE_PATHS.holdKeeper}) with the identity policy the design gives it`),
  };
}

interface Simulated {
  readonly stacks: ExampleStacks;
  readonly deployment: Deployment;
  readonly targets: Targets;
  readonly principals: Record<RowId, Principal>;
  /** The roles the rows stand for, when they are in the template. */
  readonly roles: Partial<Record<RowId, RoleModel>>;
  readonly verdicts: Record<RowId, Record<ColumnId, CallVerdict>>;
  /** The restore-test role that holds B's grants: A's own when they share one. */
  readonly restoreTestRoleOfB: RoleModel;
}

async function simulate(): Promise<Simulated> {
  const { stacks, templates } = synthesizeExample(ENVIRONMENT);
  const deployment = loadDeployment(templates);
  const [sourceA, sourceB] = stacks.backups.sources;
  const prefix = stacks.store.prefix;
  const storeBucket = logicalIdOf(stacks.store.bucket);
  const bucket = deployment.bucket(storeBucket.stack, storeBucket.logicalId);
  if (!stacks.keys.identitySecret) throw new Error('the example app has no identity secret');
  const secretId = logicalIdOf(stacks.keys.identitySecret);
  const identity = deployment.secret(secretId.stack, secretId.logicalId);
  if (!identity.key) throw new Error('the identity secret has no KMS key of the example app');
  const at = new Date('2026-05-31T01:00:00Z');
  const object = (key: string, existingTags?: Record<string, string>): ObjectTarget => ({ bucket, key, existingTags });
  const targets: Targets = {
    bucket, prefix, sourceB: sourceB.name,
    newBackupA: object(backupKey(prefix, sourceA.name, new Date('2026-06-01T11:00:00Z'), DumpFormat.PG_CUSTOM)),
    backupA: object(backupKey(prefix, sourceA.name, at, DumpFormat.PG_CUSTOM), TIER),
    backupB: object(backupKey(prefix, sourceB.name, at, DumpFormat.SQL), TIER),
    latestA: object(latestKey(prefix, sourceA.name)),
    restoreTestLatestA: object(restoreTestLatestKey(prefix, sourceA.name)),
    runbookA: object(runbookKey(prefix, sourceA.name)),
    identity, identityKey: identity.key,
  };

  const account = stacks.primary.account;
  const hold = holdKeeper(deployment, stacks, targets);
  const roles: Partial<Record<RowId, RoleModel>> = {
    dumpA: roleOf(deployment, sourceA.taskRole, `source ${sourceA.name}`),
    restoreTestA: restoreTestRoleOf(deployment, stacks, sourceA.name),
    freshness: roleOf(deployment, stacks.monitoring.freshnessFunction.role, 'the freshness function'),
    size: roleOf(deployment, stacks.monitoring.sizeAnomalyFunction.role, 'the size function'),
    holdKeeper: hold.role,
    runbookWriter: roleOf(deployment, stacks.runbook.writer.role, 'the runbook writer'),
    replication: roleOf(deployment, stacks.store.replicationRole, 'the store'),
  };
  const fromTemplate = (id: RowId) => principalOf(roles[id]!, EXPECTED[id].title);
  const principals: Record<RowId, Principal> = {
    dumpA: fromTemplate('dumpA'),
    restoreTestA: fromTemplate('restoreTestA'),
    freshness: fromTemplate('freshness'),
    size: fromTemplate('size'),
    holdKeeper: hold.principal,
    runbookWriter: fromTemplate('runbookWriter'),
    replication: fromTemplate('replication'),
    breakGlass: allPowerful(EXPECTED.breakGlass.title, `arn:aws:iam::${account}:role/${DEFAULT_BREAK_GLASS_ROLE_NAME}`,
      'not in the template (it need not exist until it is needed): the default break-glass role, `*` on `*`'),
    administrator: allPowerful(EXPECTED.administrator.title, `arn:aws:iam::${account}:role/Administrator`,
      'not in the template: an administrator role, `*` on `*`'),
  };

  const verdicts = {} as Record<RowId, Record<ColumnId, CallVerdict>>;
  for (const row of ROWS) {
    verdicts[row] = {} as Record<ColumnId, CallVerdict>;
    for (const column of COLUMNS) verdicts[row][column.id] = await decide(principals[row], column.call(targets));
  }
  const restoreTestRoleOfB = restoreTestRoleOf(deployment, stacks, sourceB.name);
  return { stacks, deployment, targets, principals, roles, verdicts, restoreTestRoleOfB };
}

/** The calls on the store's bucket, retargeted at another bucket of the same kind. */
const S3_COLUMNS = COLUMNS.filter((c) => !['readIdentity', 'overwriteIdentity', 'scheduleIdentityKeyDeletion'].includes(c.id));

function onBucket(targets: Targets, bucket: BucketModel): Targets {
  const move = (target: ObjectTarget): ObjectTarget => ({ ...target, bucket });
  return {
    ...targets, bucket, newBackupA: move(targets.newBackupA), backupA: move(targets.backupA), backupB: move(targets.backupB),
    latestA: move(targets.latestA), restoreTestLatestA: move(targets.restoreTestLatestA), runbookA: move(targets.runbookA),
  };
}

/** The matrix as README.md prints it: one line per call, one column per principal. */
function renderMatrix(s: Simulated): string {
  const escape = (text: string) => text.replace(/\|/g, '\\|');
  const standIns = ROWS.filter((row) => s.principals[row].standIn);
  const lines = [
    '<!-- Generated by test/app/who-may-do-what.test.ts: run `UPDATE_README_MATRIX=1 npx jest test/app/who-may-do-what.test.ts` after a policy change. -->',
    '',
    `A is \`${s.stacks.backups.sources[0].name}\` and B is \`${s.stacks.backups.sources[1].name}\`, two sources of the example app ` +
    `(\`-c env=${ENVIRONMENT}\`); a call is allowed only when S3, KMS and Secrets Manager each allow what it needs of them.`,
    '',
    `| Call | ${ROWS.map((row) => escape(EXPECTED[row].title)).join(' | ')} |`,
    `|---|${ROWS.map(() => '---').join('|')}|`,
    ...COLUMNS.map((column) => `| ${escape(column.title)} | ${ROWS.map((row) => escape(describeVerdict(s.verdicts[row][column.id]))).join(' | ')} |`),
    '',
    '✅ allowed; ⛔ refused by a Deny: the Sid of the bucket, secret or key policy statement, "own policy" for a deny in the ' +
    "principal's identity policy; · nothing grants it (\"no KMS grant\": S3 or Secrets Manager would, the key would not). " +
    `Break-glass is the role \`${DEFAULT_BREAK_GLASS_ROLE_NAME}\` and the administrator a role that is not it, both with \`*\` on \`*\`.`,
    ...standIns.filter((row) => row === 'holdKeeper').map(() => `The ${EXPECTED.holdKeeper.title} is ${s.principals.holdKeeper.standIn}.`),
  ];
  return lines.join('\n');
}

function readmeSection(readme: string): { before: string; section: string; after: string } | undefined {
  const start = readme.indexOf(START);
  const end = readme.indexOf(END);
  if (start < 0 || end < start) return undefined;
  return { before: readme.slice(0, start + START.length), section: readme.slice(start + START.length, end), after: readme.slice(end) };
}

const allowedOrDenied = (allowed: boolean) => (allowed ? 'allowed' : 'denied');

describe('who may do what, by IAM policy simulation of the example app', () => {
  let s: Simulated;
  beforeAll(async () => { s = await simulate(); });

  test('the simulator ignores misspelled context keys, and the harness refuses them: the check that guards every cell', async () => {
    const authorisation = {
      service: 's3' as const, action: 's3:PutObject', resource: `${s.targets.bucket.arn}/${s.targets.newBackupA.key}`,
      resourceAccount: s.targets.bucket.account, resourcePolicy: s.targets.bucket.policy,
      context: { 's3:ObjectCreationOperation': 'PutObject', 's3:If-None-Matches': '*' },
    };
    await expect(authorise(s.principals.dumpA, authorisation)).rejects.toThrow(/ignored the context keys s3:If-None-Matches/);
  });

  test('every principal of the matrix is found: the template\'s roles by their constructs, the others as stand-ins', () => {
    for (const row of ROWS) {
      const principal = s.principals[row];
      if (principal.standIn) expect([row, principal.roleArn]).toEqual([row, expect.stringMatching(/^arn:aws:iam::\d{12}:role\//)]);
      else expect(principal.identityPolicies.length).toBeGreaterThan(0);
    }
  });

  // The bucket policy tells the kinds of principal apart by aws:PrincipalArn against these paths.
  test.each([
    ['dumpA', ROLE_PATHS.dump], ['restoreTestA', ROLE_PATHS.restoreTest], ['holdKeeper', ROLE_PATHS.holdKeeper],
    ['runbookWriter', ROLE_PATHS.runbookWriter],
  ] as [RowId, string][])('the %s role lives under %s', (row, path) => {
    expect(s.principals[row].roleArn).toContain(`:role${path}`);
  });

  // Both stores are BackupBuckets with the same policy: what `*` on `*` may do there shows the bucket policy alone.
  test('the DR replica bucket refuses and allows the same S3 calls as the primary, for break-glass and an administrator', async () => {
    const replicaId = logicalIdOf(s.stacks.replicaStore.bucket);
    const replica = onBucket(s.targets, s.deployment.bucket(replicaId.stack, replicaId.logicalId));
    expect(replica.bucket.policy).toBeDefined();
    for (const row of ['breakGlass', 'administrator'] as RowId[]) {
      for (const column of S3_COLUMNS) {
        const verdict = await decide(s.principals[row], column.call(replica));
        expect([row, column.id, describeVerdict(verdict)]).toEqual([row, column.id, describeVerdict(s.verdicts[row][column.id])]);
      }
    }
  });

  test.each(ROWS)('%s: every call as the design says', (row) => {
    const expected = Object.fromEntries(COLUMNS.map((c) => [c.id, allowedOrDenied(expectedAllowed(row, s).includes(c.id))]));
    const actual = Object.fromEntries(COLUMNS.map((c) => [c.id, allowedOrDenied(s.verdicts[row][c.id].allowed)]));
    expect(actual).toEqual(expected);
  });

  test('README.md prints the matrix the simulation computes', () => {
    const readme = readFileSync(README, 'utf8');
    const parts = readmeSection(readme);
    if (!parts) {
      throw new Error(`README.md has no matrix section: add the two lines\n${START}\n${END}\nunder a heading "### Who may do what" ` +
        'in its trust-boundary section, then run UPDATE_README_MATRIX=1 npx jest test/app/who-may-do-what.test.ts');
    }
    const rendered = `\n${renderMatrix(s)}\n`;
    if (process.env.UPDATE_README_MATRIX === '1') {
      writeFileSync(README, `${parts.before}${rendered}${parts.after}`);
      return;
    }
    expect(parts.section).toBe(rendered);
  });

  // Binlog streaming (issue 18): binlog/ is the binlog streamer's alone, as wal/ is the WAL archiver's: a name the
  // dump role wrote there first would make the streamer's write-once store of that file fail, and streaming stall.
  test('the dump role (A) cannot write under A\'s binlog/, which only its binlog streamer writes', async () => {
    const key = binlogObjectKey(s.targets.prefix, s.stacks.backups.sources[0].name, binlogStreamId(new Date('2026-06-01T00:00:00Z')), 'mysql-bin.000001');
    for (const target of [key, binlogIndexKey(key)]) {
      const verdict = await decide(s.principals.dumpA, { api: 'PutObject', target: { bucket: s.targets.bucket, key: target }, ifNoneMatch: true, tags: TIER });
      expect([target, describeVerdict(verdict)]).toEqual([target, '⛔ own policy']);
    }
  });

  // The example app's shop-db (B) streams its binlogs: its streamer adds B's binlogs and may do nothing the matrix
  // lists, and B's own dump role may not write there either.
  test('the binlog streamer (B) adds B\'s binlogs, write-once and tagged, and is refused every call of the matrix', async () => {
    const sourceB = s.stacks.backups.sources.find((source) => source.name === s.targets.sourceB);
    const streamer = principalOf(roleOf(s.deployment, sourceB?.binlogStreamer?.taskRole, `the binlog streamer of ${s.targets.sourceB}`), 'binlog streamer (B)');
    expect(streamer.roleArn).toContain(`:role${ROLE_PATHS.dump}`);
    const stream = binlogStreamId(new Date('2026-06-01T00:00:00Z'));
    const binlogOf = (source: string): ObjectTarget => ({ bucket: s.targets.bucket, key: binlogObjectKey(s.targets.prefix, source, stream, 'mysql-bin.000001') });
    const binlogB = binlogOf(s.targets.sourceB);
    const calls: [string, Principal, ApiCall, string][] = [
      ['store a binlog of B', streamer, { api: 'PutObject', target: binlogB, ifNoneMatch: true, tags: TIER }, '✅'],
      ['replace one', streamer, { api: 'PutObject', target: binlogB, tags: TIER }, '⛔ WriteOnce'],
      ['store a binlog of A', streamer, { api: 'PutObject', target: binlogOf(s.stacks.backups.sources[0].name), ifNoneMatch: true, tags: TIER }, '· no grant'],
      ['B\'s dump role stores a binlog of B', roleOfSource(s, s.targets.sourceB), { api: 'PutObject', target: binlogB, ifNoneMatch: true, tags: TIER }, '⛔ own policy'],
      ...COLUMNS.map((column): [string, Principal, ApiCall, string] => [column.title, streamer, column.call(s.targets), 'refused']),
    ];
    for (const [title, principal, call, expected] of calls) {
      const verdict = await decide(principal, call);
      const actual = expected === 'refused' ? allowedOrDenied(verdict.allowed) : describeVerdict(verdict);
      expect([title, actual]).toEqual([title, expected === 'refused' ? 'denied' : expected]);
    }
  });
});

/** A source's dump role, as a principal. */
function roleOfSource(s: Simulated, name: string): Principal {
  const source = s.stacks.backups.sources.find((candidate) => candidate.name === name);
  return principalOf(roleOf(s.deployment, source?.taskRole, `source ${name}`), `dump role (${name})`);
}
