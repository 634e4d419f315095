/**
 * The disaster-recovery drill, with standard tools only: the runbook is rendered, stored in the bucket and
 * printed back by `restorable runbook`; its standard-tool blocks are taken FROM THAT TEXT, the emulators'
 * endpoints put into the aws commands, and run in bash with Debian's aws CLI v2, jq, sha256sum, age, zstd and
 * psql/pg_restore or mysql. They restore real backups made by the agent, and the row counts match the manifest.
 * The PostgreSQL steps connect as the drill's superuser for what the runbook itself writes, and load the backup as
 * an owner role without superuser rights, which then owns every restored object.
 *
 * The identity is a real secret in Secrets Manager on moto's server, created in the primary region with a replica
 * in the DR region, as BackupKeys creates it; the aws CLI reaches it through a relay that records each request and
 * the region it is signed for. The DR path reads a second S3 emulator standing in for the replica bucket, with
 * the primary emulator killed, and the identity from the replica, with the relay refusing the primary region:
 * moto itself cannot lose a region (see region-outage.ts).
 *
 * The vault path: the vault is a bucket on moto's server in a second account, the identity the vault's own copy in
 * a secret of that account, both made as the vault's restore role (moto gives an assumed role's credentials the
 * role's account, and shows nothing of that account to any other). The runbook drilled there is the vault's own
 * (VaultRunbook's, rendered from the vault's facts alone, at `{source}/vault/RUNBOOK.md`), printed by
 * `restorable runbook --vault` beside the primary's that replication carries: its DR scene assumes that role with
 * `aws sts assume-role`, the primary emulator being dead and the primary region lost.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { CreateSecretCommand, DescribeSecretCommand, GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import {
  Engine, Manifest, ReportsCopy, RunbookFacts, RunbookPath, RunbookVia, latestKey, parseLatest, parseManifest, renderRunbook, runbookBlocks, runbookKey,
  secretArnInRegion, standardToolScript,
} from '../../lib/contract';
import {
  AgeKey, MYSQL, PG, S3Emulator, agentEnv, createMysqlFixture, createPgFixture, dropMysqlDatabase, dropPgDatabase, makeAgeKey,
  mysqlExec, mysqlTableStats, mysqlUser, pgQuery, pgTableStats, readerRole, requireAgentBundle, runAgent, startS3rver, uniqueName,
} from '../support';
import { Moto, motoName, sharedMoto } from '../support/moto';
import { RegionOutage } from '../support/region-outage';

const PRIMARY_REGION = 'us-east-1';
const DR_REGION = 'eu-west-1';
/** The vault: its account, region and restore role, which the runbook names. */
const VAULT_ACCOUNT = '222222222222';
const VAULT_REGION = 'eu-central-1';
const VAULT_ROLE = `arn:aws:iam::${VAULT_ACCOUNT}:role/restorable/restore/restorable-restore-${VAULT_REGION}`;
/** The identity secret's ARN in the primary region, as moto made it. */
let identityArn: string;
const PG_SOURCE = 'orders-pg';
const MARIA_SOURCE = 'shop-maria';
/** Debian's aws CLI v2 (the awscli package); a pip-installed v1 may come first on PATH otherwise. */
const DEBIAN_PATH = `/usr/bin:${process.env.PATH}`;

const pgDatabase = uniqueName('drill_pg');
/**
 * The role without superuser rights that owns what the PostgreSQL steps restore (the runbook's TARGET_OWNER): the
 * backup's SQL runs as it. Made by the drill's superuser, who is the runbook's TARGET_USER.
 */
const pgOwner = { name: uniqueName('drill_owner'), password: `owner-${process.pid}` };
const mariaDatabase = uniqueName('drill_maria');
const restoredDatabases: { engine: Engine; name: string }[] = [];

let primary: S3Emulator;
let replica: S3Emulator;
let moto: Moto;
/** The vault's bucket, on moto's server in the vault's account. */
const vaultBucket = motoName('drill-vault');
/** The vault's copy of the identity, by the partial ARN its deterministic name gives (as VaultIdentity's). */
let vaultIdentityArn: string;
let key: AgeKey;
/** The relay to moto's Secrets Manager that the runbook's aws commands are pointed at. */
let secretsRelay: RegionOutage;
let secretsEndpoint: string;

/** Credentials of the vault's restore role, as moto hands them out: they act in the vault's account. */
async function vaultCredentials(): Promise<{ accessKeyId: string; secretAccessKey: string; sessionToken: string }> {
  const sts = new STSClient(moto.config(VAULT_REGION));
  try {
    const { Credentials } = await sts.send(new AssumeRoleCommand({ RoleArn: VAULT_ROLE, RoleSessionName: 'drill-setup' }));
    return { accessKeyId: Credentials!.AccessKeyId!, secretAccessKey: Credentials!.SecretAccessKey!, sessionToken: Credentials!.SessionToken! };
  } finally {
    sts.destroy();
  }
}

/** The facts of the primary's runbook whose replica is the vault: replication carries it to the vault. */
function vaultFacts(source: string, engine: Engine): RunbookFacts {
  return {
    ...facts(source, engine),
    replica: { bucket: vaultBucket, region: VAULT_REGION },
    vault: { account: VAULT_ACCOUNT, restoreRoleArn: VAULT_ROLE, identitySecretArn: vaultIdentityArn },
  };
}

/** The facts of the vault's own runbook, as VaultRunbook's writer has them in the vault's account: nothing of the primary's. */
function vaultOwnFacts(source: string, engine: Engine): RunbookFacts {
  return {
    source, engine, prefix: 'prod/',
    replica: { bucket: vaultBucket, region: VAULT_REGION },
    vault: { account: VAULT_ACCOUNT, restoreRoleArn: VAULT_ROLE, identitySecretArn: vaultIdentityArn },
  };
}

function facts(source: string, engine: Engine): RunbookFacts {
  return {
    source, engine, prefix: 'prod/',
    primary: { bucket: primary.bucket, region: PRIMARY_REGION },
    replica: { bucket: replica.bucket, region: DR_REGION },
    identitySecretArn: identityArn,
  };
}

async function backup(source: string, engine: Engine, database: string): Promise<Manifest> {
  const connection = engine === Engine.POSTGRES
    ? { args: ['--host', PG.host, '--port', String(PG.port), '--user', PG.user], env: { PGPASSWORD: PG.password } }
    : { args: ['--host', MYSQL.host, '--port', String(MYSQL.port), '--user', MYSQL.user], env: { MYSQL_PWD: MYSQL.password } };
  const run = await runAgent(['backup', '--source', source, '--engine', engine, '--bucket', primary.bucket, '--prefix', 'prod/',
    '--recipient', key.recipient, ...connection.args, '--database', database, '--json'], agentEnv({ ...primary.env, ...connection.env }));
  expect({ code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({ code: 0, stderr: '' });
  const manifestKey = parseLatest((await primary.getText(latestKey('prod/', source)))!, 'latest.json').manifestKey;
  return parseManifest((await primary.getText(manifestKey))!, manifestKey);
}

/** What S3 replication would do: every object of the primary, under the same key, in the replica bucket. */
async function replicate(): Promise<void> {
  for (const k of await primary.keys()) {
    await replica.client.send(new PutObjectCommand({ Bucket: replica.bucket, Key: k, Body: await primary.getBytes(k) }));
  }
}

/** The runbook as a person gets it: stored in the bucket, printed by `restorable runbook`. */
async function printedRunbook(s3: S3Emulator, source: string): Promise<string> {
  const run = await runAgent(['runbook', '--source', source, '--bucket', s3.bucket, '--prefix', 'prod/'], agentEnv(s3.env));
  expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
  return run.stdout;
}

/** The standard-tool script of a path, with this test's endpoints put into the aws commands. */
function drillScript(runbook: string, path: RunbookPath, s3Endpoint: string, secretsEndpoint: string): string {
  return standardToolScript(runbook, path)
    .replace(/\baws (s3|s3api) /g, `aws --endpoint-url ${s3Endpoint} $1 `)
    .replace(/\baws secretsmanager /g, `aws --endpoint-url ${secretsEndpoint} secretsmanager `);
}

function runBash(script: string, cwd: string, env: NodeJS.ProcessEnv): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['--noprofile', '--norc', '-euo', 'pipefail', '-c', script], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

async function runDrill(script: string, engine: Engine, target: string): Promise<string> {
  const work = mkdtempSync(join(tmpdir(), 'restorable-drill-'));
  const env = {
    PATH: DEBIAN_PATH, HOME: work, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_PAGER: '', AWS_MAX_ATTEMPTS: '2',
    AWS_CONFIG_FILE: join(work, 'no-config'), AWS_SHARED_CREDENTIALS_FILE: join(work, 'no-credentials'),
    AWS_REQUEST_CHECKSUM_CALCULATION: 'when_required', AWS_RESPONSE_CHECKSUM_VALIDATION: 'when_required',
    TARGET_DATABASE: target, TARGET_USER: engine === Engine.POSTGRES ? PG.user : MYSQL.user,
    TARGET_HOST: engine === Engine.POSTGRES ? PG.host : MYSQL.host,
    TARGET_PORT: String(engine === Engine.POSTGRES ? PG.port : MYSQL.port),
    ...(engine === Engine.POSTGRES
      ? { PGPASSWORD: PG.password, TARGET_OWNER: pgOwner.name, TARGET_OWNER_PASSWORD: pgOwner.password }
      : { MYSQL_PWD: MYSQL.password }),
  };
  restoredDatabases.push({ engine, name: target });
  try {
    // Asynchronously: the Secrets Manager relay answers from this very process.
    const result = await runBash(script, work, env);
    if (result.status !== 0) throw new Error(`the runbook's standard-tool script failed (${result.status}):\n${result.stderr}\n--- script ---\n${script}`);
    // The identity copy and the decrypted dump are gone once step 8 ran.
    expect(spawnSync('find', ['.', '-name', 'identity.txt', '-o', '-name', 'dump.*'], { cwd: work, encoding: 'utf8' }).stdout).toBe('');
    return result.stdout;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

async function restoredCounts(engine: Engine, database: string): Promise<Record<string, number>> {
  const stats = engine === Engine.POSTGRES ? await pgTableStats(database) : mysqlTableStats(database);
  return Object.fromEntries([...stats].map(([table, s]) => [engine === Engine.POSTGRES ? table : `${mariaDatabase}.${table}`, s.rows]));
}

const manifestCounts = (m: Manifest) => Object.fromEntries(m.tables.map((t) => [`${t.schema}.${t.table}`, t.rows]));

let manifests: Record<string, Manifest>;

beforeAll(async () => {
  requireAgentBundle();
  const version = spawnSync('aws', ['--version'], { env: { PATH: DEBIAN_PATH }, encoding: 'utf8' });
  const said = `${version.stdout}${version.stderr}`.trim();
  if (!said.startsWith('aws-cli/2')) {
    throw new Error(`the drill needs Debian's aws CLI v2 (apt package awscli, /usr/bin/aws), but 'aws --version' says '${said || version.error?.message}': ` +
      'run scripts/install-deps.sh');
  }
  primary = await startS3rver('drill-primary');
  replica = await startS3rver('drill-replica');
  key = makeAgeKey();
  moto = await sharedMoto();
  const secrets = new SecretsManagerClient(moto.config(PRIMARY_REGION));
  const drSecrets = new SecretsManagerClient(moto.config(DR_REGION));
  try {
    identityArn = (await secrets.send(new CreateSecretCommand({
      Name: motoName('restorable/identity'), SecretString: readFileSync(key.identityFile, 'utf8'), AddReplicaRegions: [{ Region: DR_REGION }],
    }))).ARN!;
    // The runbook names the replica by the primary's ARN in the DR region: that is the replica's own ARN.
    const replicaSecret = await drSecrets.send(new DescribeSecretCommand({ SecretId: secretArnInRegion(identityArn, DR_REGION) }));
    expect(replicaSecret).toMatchObject({ ARN: secretArnInRegion(identityArn, DR_REGION), PrimaryRegion: PRIMARY_REGION });
  } finally {
    secrets.destroy();
    drSecrets.destroy();
  }
  secretsRelay = new RegionOutage(moto.endpoint);
  secretsEndpoint = await secretsRelay.start();

  await pgQuery('postgres', `DROP ROLE IF EXISTS ${pgOwner.name}`);
  await pgQuery('postgres', `CREATE ROLE ${pgOwner.name} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '${pgOwner.password}'`);
  await createPgFixture(pgDatabase, { customers: 300 });
  createMysqlFixture(mariaDatabase, 300);
  manifests = {
    [PG_SOURCE]: await backup(PG_SOURCE, Engine.POSTGRES, pgDatabase),
    [MARIA_SOURCE]: await backup(MARIA_SOURCE, Engine.MYSQL, mariaDatabase),
  };
  // Rendered as the custom resource renders it at deploy time, into both buckets (the replica after replication).
  for (const [source, engine] of [[PG_SOURCE, Engine.POSTGRES], [MARIA_SOURCE, Engine.MYSQL]] as const) {
    await primary.client.send(new PutObjectCommand({ Bucket: primary.bucket, Key: runbookKey('prod/', source), Body: renderRunbook(facts(source, engine)) }));
  }
  await replicate();

  // The vault: its bucket and its copy of the identity, made in its account; replication's copies, runbooks rendered
  // for the vault as the writer renders them in the primary, from where replication carries them.
  const credentials = await vaultCredentials();
  const vaultS3 = new S3Client({ ...moto.config(VAULT_REGION), credentials });
  const vaultSecrets = new SecretsManagerClient({ ...moto.config(VAULT_REGION), credentials });
  const defaultAccountSecrets = new SecretsManagerClient(moto.config(VAULT_REGION));
  try {
    await vaultS3.send(new CreateBucketCommand({ Bucket: vaultBucket, CreateBucketConfiguration: { LocationConstraint: VAULT_REGION } }));
    for (const k of await primary.keys()) await vaultS3.send(new PutObjectCommand({ Bucket: vaultBucket, Key: k, Body: await primary.getBytes(k) }));
    const name = motoName('restorable/vault-identity');
    vaultIdentityArn = `arn:aws:secretsmanager:${VAULT_REGION}:${VAULT_ACCOUNT}:secret:${name}`;
    const created = await vaultSecrets.send(new CreateSecretCommand({ Name: name, SecretString: readFileSync(key.identityFile, 'utf8') }));
    expect(created.ARN).toMatch(new RegExp(`^${vaultIdentityArn}-[A-Za-z0-9]{6}$`));
    // Nobody outside the vault's account sees it: the runbook's assume-role is what reaches it.
    await expect(defaultAccountSecrets.send(new GetSecretValueCommand({ SecretId: vaultIdentityArn }))).rejects.toThrow(/can't find the specified secret/);
    for (const [source, engine] of [[PG_SOURCE, Engine.POSTGRES], [MARIA_SOURCE, Engine.MYSQL]] as const) {
      await vaultS3.send(new PutObjectCommand({ Bucket: vaultBucket, Key: runbookKey('prod/', source), Body: renderRunbook(vaultFacts(source, engine)) }));
      // The vault's own, written by the vault's account where replication may not write.
      await vaultS3.send(new PutObjectCommand({
        Bucket: vaultBucket, Key: runbookKey('prod/', source, ReportsCopy.VAULT), Body: renderRunbook(vaultOwnFacts(source, engine)),
      }));
    }
  } finally {
    vaultS3.destroy();
    vaultSecrets.destroy();
    defaultAccountSecrets.destroy();
  }
});

afterAll(async () => {
  await secretsRelay?.stop();
  for (const { engine, name } of restoredDatabases) {
    if (engine === Engine.POSTGRES) await dropPgDatabase(name);
    else dropMysqlDatabase(name);
  }
  await dropPgDatabase(pgDatabase);
  await pgQuery('postgres', `DROP ROLE IF EXISTS ${readerRole(pgDatabase)}`);
  await pgQuery('postgres', `DROP ROLE IF EXISTS ${pgOwner.name}`);
  dropMysqlDatabase(mariaDatabase);
  await primary?.stop();
  await replica?.stop();
});

describe.each([
  { source: PG_SOURCE, engine: Engine.POSTGRES },
  { source: MARIA_SOURCE, engine: Engine.MYSQL },
])('$engine', ({ source, engine }) => {
  test('primary path: the runbook\'s own standard-tool commands restore the latest backup, row counts as in the manifest', async () => {
    // Given the runbook as stored in the primary bucket.
    const runbook = await printedRunbook(primary, source);
    expect(runbook).toContain(`# Disaster recovery runbook: ${source}`);
    const script = drillScript(runbook, RunbookPath.PRIMARY, primary.endpoint, secretsEndpoint);
    expect(script).toContain(`BUCKET='${primary.bucket}'`);
    if (engine === Engine.MYSQL) {
      // The backup is untrusted input: every client run that reads it is sandboxed, LOAD DATA LOCAL off, never --force.
      const loads = script.split('\n').filter((l) => /\bmysql .*(< (users|dump|grants)\.sql|-e "CREATE)/.test(l));
      expect(loads).toHaveLength(4);
      for (const line of loads) expect(line).toContain('--sandbox --local-infile=0');
      expect(script).not.toContain('--force');
    } else {
      // The backup is untrusted input: the superuser (TARGET_USER) runs no line of it; the load connects as the owner.
      expect(script).not.toMatch(/psql [^\n]*-f globals\.sql|-U "\$TARGET_USER"[^\n]*dump\.pgdump/);
      expect(script).toContain('pg_restore --exit-on-error -L toc.list --no-owner --role="$TARGET_OWNER"');
      expect(script).toContain('-U "$TARGET_OWNER" -d "$TARGET_DATABASE" dump.pgdump');
    }

    // When its commands run against the emulators.
    const target = uniqueName(`drill_${engine}_primary`);
    const before = secretsRelay.requests.length;
    const output = await runDrill(script, engine, target);

    // Then the identity came from the primary region's secret, and every table's rows match the manifest.
    expect(secretsRelay.requests.slice(before)).toEqual([{ target: 'secretsmanager.GetSecretValue', secretId: identityArn, region: PRIMARY_REGION }]);
    const manifest = manifests[source];
    expect(output).toContain('row counts match the manifest');
    expect(output.split('\n').filter((l) => l.startsWith('ok '))).toHaveLength(manifest.tables.length);
    expect(await restoredCounts(engine, target)).toEqual(manifestCounts(manifest));
    expect(manifest.tables.reduce((sum, t) => sum + t.rows, 0)).toBeGreaterThan(900);
    if (engine === Engine.MYSQL) {
      // The grant on the backed-up database followed it to the new name.
      expect(mysqlExec(undefined, `SHOW GRANTS FOR '${mysqlUser(mariaDatabase)}'@'localhost'`).map(([g]) => g))
        .toContain(`GRANT SELECT ON \`${target}\`.\`customer_totals\` TO \`${mysqlUser(mariaDatabase)}\`@\`localhost\``);
    } else {
      // The backup's SQL ran as the owner, not as the superuser that connected for the rest: it owns the database and
      // every restored table, view and function. The superuser's own role line was shown and left out.
      const owners = await pgQuery<{ kind: string; name: string; owner: string }>(target, `
        SELECT 'database' AS kind, datname AS name, pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = current_database()
        UNION ALL SELECT 'relation', n.nspname || '.' || c.relname, pg_get_userbyid(c.relowner) FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname IN ('public', 'sales') AND c.relkind IN ('r', 'v', 'S')
        UNION ALL SELECT 'function', n.nspname || '.' || p.proname, pg_get_userbyid(p.proowner) FROM pg_proc p
          JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname IN ('public', 'sales')`);
      expect(owners.filter((o) => o.kind === 'relation').length).toBeGreaterThanOrEqual(manifest.tables.length);
      expect(owners.filter((o) => o.owner !== pgOwner.name)).toEqual([]);
      expect(output).toMatch(new RegExp(`^left out of globals\\.sql: ALTER ROLE ${PG.user} WITH SUPERUSER`, 'm'));
      // The grant to the backed-up database's role came along, given by the owner.
      expect((await pgQuery<{ ok: boolean }>(target, `SELECT has_table_privilege('${readerRole(pgDatabase)}', 'sales.customer_totals', 'SELECT') AS ok`))[0].ok)
        .toBe(true);
    }
  });

  test('the agent\'s restore blocks say who runs the backup\'s SQL: PostgreSQL an owner without superuser rights, MariaDB the connecting account', () => {
    const restores = runbookBlocks(renderRunbook(facts(source, engine)))
      .filter((b) => b.via === RunbookVia.RESTORABLE && /^restorable restore /m.test(b.code));
    expect(restores.map((b) => b.step)).toEqual(['6', 'glacier']);
    for (const b of restores) {
      if (engine === Engine.POSTGRES) expect(b.code).toMatch(/--database "\$TARGET_DATABASE" --owner "\$TARGET_OWNER"/);
      // The agent refuses --owner for MariaDB; nor does it load as the connecting account unless told to.
      else expect(b.code.split('\n').filter((l) => !l.startsWith('#'))).not.toContainEqual(expect.stringMatching(/--owner|--load-as-connected-user/));
    }
    expect(restores[0].code).toContain('--load-as-connected-user');
    expect(restores[0].code).toContain('only for a backup you trust');
  });
});

describe('DR path: primary region gone', () => {
  beforeAll(() => {
    primary.kill();
    secretsRelay.lose(PRIMARY_REGION);
  });

  test.each([
    { source: PG_SOURCE, engine: Engine.POSTGRES },
    { source: MARIA_SOURCE, engine: Engine.MYSQL },
  ])('$engine: restores from the replica bucket with the identity from the DR region', async ({ source, engine }) => {
    // Given the runbook as stored in the replica bucket, the primary emulator being dead.
    const runbook = await printedRunbook(replica, source);
    const script = drillScript(runbook, RunbookPath.DR, replica.endpoint, secretsEndpoint);
    expect(script).toContain(`BUCKET='${replica.bucket}'`);
    expect(script).toContain(`AWS_REGION='${DR_REGION}'`);

    // When its DR-path commands run.
    const target = uniqueName(`drill_${engine}_dr`);
    const before = secretsRelay.requests.length;
    const output = await runDrill(script, engine, target);

    // Then the identity came from the replica secret, signed for the DR region, and the rows match.
    expect(secretsRelay.requests.slice(before)).toEqual([
      { target: 'secretsmanager.GetSecretValue', secretId: secretArnInRegion(identityArn, DR_REGION), region: DR_REGION },
    ]);
    expect(output).toContain('row counts match the manifest');
    expect(await restoredCounts(engine, target)).toEqual(manifestCounts(manifests[source]));
  });

  test('the agent\'s own DR commands name the DR region: its verify reads the replica, and the identity from the DR region', async () => {
    // Given the runbook as stored in the replica bucket: the DR scene, then the agent's step 4 (verify, with the identity).
    const blocks = runbookBlocks(await printedRunbook(replica, PG_SOURCE));
    const agentCommands = blocks.filter((b) => b.via === RunbookVia.RESTORABLE && /^restorable /m.test(b.code));
    expect(agentCommands.length).toBeGreaterThan(0);
    for (const b of agentCommands) expect(b.code).toContain('--region "$AWS_REGION"');
    const scene = blocks.find((b) => b.step === '0' && b.path === RunbookPath.DR)!.code;
    const verify = blocks.find((b) => b.step === '4' && b.via === RunbookVia.RESTORABLE)!.code;

    // When they run in bash, `restorable` being the bundled agent, with nothing of the region in the environment.
    const work = mkdtempSync(join(tmpdir(), 'restorable-drill-'));
    const before = secretsRelay.requests.length;
    try {
      const result = await runBash(`restorable() { '${process.execPath}' '${requireAgentBundle()}' "$@"; }\n${scene}\n${verify}`, work, {
        PATH: DEBIAN_PATH, HOME: work, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_EC2_METADATA_DISABLED: 'true',
        AWS_CONFIG_FILE: join(work, 'no-config'), AWS_SHARED_CREDENTIALS_FILE: join(work, 'no-credentials'),
        AWS_ENDPOINT_URL_S3: replica.endpoint, AWS_ENDPOINT_URL_SECRETS_MANAGER: secretsEndpoint, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
        TARGET_HOST: PG.host, TARGET_USER: PG.user, TARGET_DATABASE: 'not-restored-into', TARGET_OWNER: pgOwner.name,
      });
      // Then the backup in the replica verifies, and the identity came from the replica secret, signed for the DR region.
      expect({ status: result.status, stderr: result.stderr.split('\n').filter((l) => l.startsWith('restorable')) }).toEqual({ status: 0, stderr: [] });
      expect(result.stdout).toContain(manifests[PG_SOURCE].key);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
    expect(secretsRelay.requests.slice(before)).toEqual([
      { target: 'secretsmanager.GetSecretValue', secretId: secretArnInRegion(identityArn, DR_REGION), region: DR_REGION },
    ]);
  });

  test('the agent\'s PostgreSQL restore block, run as written by a superuser: the backup loads as the owner, which owns what it restored', async () => {
    // Given the runbook as stored in the replica bucket: the DR scene, then the agent's step 6 (the database made, then restore --owner).
    const blocks = runbookBlocks(await printedRunbook(replica, PG_SOURCE));
    const scene = blocks.find((b) => b.step === '0' && b.path === RunbookPath.DR)!.code;
    const restore = blocks.find((b) => b.step === '6' && b.via === RunbookVia.RESTORABLE)!.code;
    const target = uniqueName('drill_postgres_agent');
    restoredDatabases.push({ engine: Engine.POSTGRES, name: target });

    // When they run in bash, connected as the drill's superuser, `restorable` being the bundled agent.
    const work = mkdtempSync(join(tmpdir(), 'restorable-drill-'));
    let result: { readonly loadedAs: string };
    try {
      const run = await runBash(`restorable() { '${process.execPath}' '${requireAgentBundle()}' "$@"; }\n${scene}\n${restore}\ncat restore-result.json`, work, {
        PATH: DEBIAN_PATH, HOME: work, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_EC2_METADATA_DISABLED: 'true',
        AWS_CONFIG_FILE: join(work, 'no-config'), AWS_SHARED_CREDENTIALS_FILE: join(work, 'no-credentials'),
        AWS_ENDPOINT_URL_S3: replica.endpoint, AWS_ENDPOINT_URL_SECRETS_MANAGER: secretsEndpoint, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
        TARGET_HOST: PG.host, TARGET_PORT: String(PG.port), TARGET_USER: PG.user, PGPASSWORD: PG.password, TARGET_DATABASE: target, TARGET_OWNER: pgOwner.name,
      });
      expect({ status: run.status, stderr: run.status === 0 ? '' : run.stderr }).toEqual({ status: 0, stderr: '' });
      result = JSON.parse(run.stdout.slice(run.stdout.indexOf('{')));
    } finally {
      rmSync(work, { recursive: true, force: true });
    }

    // Then the backup's SQL ran as a member of the owner, and the owner owns every restored relation; the rows match.
    expect(result.loadedAs).toMatch(new RegExp(` as ${pgOwner.name}$`));
    const owners = await pgQuery<{ owner: string }>(target, `SELECT DISTINCT pg_get_userbyid(c.relowner) AS owner FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname IN ('public', 'sales') AND c.relkind IN ('r', 'v', 'S')`);
    expect(owners).toEqual([{ owner: pgOwner.name }]);
    expect(await restoredCounts(Engine.POSTGRES, target)).toEqual(manifestCounts(manifests[PG_SOURCE]));
  });

  test('the runbook\'s row-count check fails loudly when the restored rows differ from the manifest', async () => {
    // Given a manifest in the replica that claims one more row in one table than the backup holds.
    const manifest = manifests[PG_SOURCE];
    const [first, ...rest] = manifest.tables;
    const claimed = { ...manifest, tables: [{ ...first, rows: first.rows + 1 }, ...rest] };
    await replica.client.send(new PutObjectCommand({ Bucket: replica.bucket, Key: `${manifest.key}.manifest.json`, Body: JSON.stringify(claimed) }));
    const script = drillScript(await printedRunbook(replica, PG_SOURCE), RunbookPath.DR, replica.endpoint, secretsEndpoint);

    // Then the drill stops at step 7 and names the table.
    await expect(runDrill(script, Engine.POSTGRES, uniqueName('drill_postgres_mismatch')))
      .rejects.toThrow(`MISMATCH ${first.schema}.${first.table}: manifest ${first.rows + 1}, restored ${first.rows}`);
  });
});

describe('vault path: the primary account gone, the vault in another account', () => {
  // After the DR path: the primary emulator is dead, and the primary region lost.
  beforeAll(() => {
    primary.kill();
    secretsRelay.lose(PRIMARY_REGION);
  });

  /** The vault's own runbook, as stored in the vault, printed by `restorable runbook --vault` as the vault's restore role. */
  async function vaultRunbook(source: string): Promise<string> {
    const credentials = await vaultCredentials();
    const run = await runAgent(['runbook', '--vault', '--source', source, '--bucket', vaultBucket, '--prefix', 'prod/'], agentEnv({
      AWS_ENDPOINT_URL_S3: moto.endpoint, AWS_REGION: VAULT_REGION, AWS_ACCESS_KEY_ID: credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey, AWS_SESSION_TOKEN: credentials.sessionToken,
    }));
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    return run.stdout;
  }

  /** The DR path's standard-tool script, its aws commands pointed at moto (S3 and STS) and the relay (Secrets Manager). */
  const vaultScript = (runbook: string) => drillScript(runbook, RunbookPath.DR, moto.endpoint, secretsEndpoint)
    .replace(/\baws sts /g, `aws --endpoint-url ${moto.endpoint} sts `);

  test.each([
    { source: PG_SOURCE, engine: Engine.POSTGRES },
    { source: MARIA_SOURCE, engine: Engine.MYSQL },
  ])('$engine: the vault\'s own runbook\'s DR commands assume the vault\'s restore role, restore from the vault with its own identity, rows as in the manifest', async ({ source, engine }) => {
    // Given the vault's own runbook, written by the vault's account: it names the vault's account, region, role and
    // identity, and nothing of the primary's.
    const runbook = await vaultRunbook(source);
    expect(runbook).toContain(`| Account | ${VAULT_ACCOUNT}, as the role \`${VAULT_ROLE}\` |`);
    expect(runbook).not.toContain(primary.bucket);
    expect(runbookBlocks(runbook).filter((b) => b.path === RunbookPath.PRIMARY)).toEqual([]);
    const script = vaultScript(runbook);
    expect(script).toContain(`BUCKET='${vaultBucket}'`);
    expect(script).toContain(`AWS_REGION='${VAULT_REGION}'`);
    expect(script).toContain(`RESTORE_ROLE='${VAULT_ROLE}'`);
    expect(script).toContain(`IDENTITY_SECRET='${vaultIdentityArn}'`);

    // When its commands run, from credentials of no account of the vault's.
    const target = uniqueName(`drill_${engine}_vault`);
    const before = secretsRelay.requests.length;
    const output = await runDrill(script, engine, target);

    // Then they acted as the vault's restore role, read the vault's own identity in the vault's region, and the rows match.
    expect(output).toContain(`arn:aws:sts::${VAULT_ACCOUNT}:assumed-role/restorable-restore-${VAULT_REGION}/restore-${source}`);
    expect(secretsRelay.requests.slice(before)).toEqual([{ target: 'secretsmanager.GetSecretValue', secretId: vaultIdentityArn, region: VAULT_REGION }]);
    expect(output).toContain('row counts match the manifest');
    expect(await restoredCounts(engine, target)).toEqual(manifestCounts(manifests[source]));
  });

  test('without the role\'s credentials the vault\'s identity is out of reach: the same script, its assume-role left out, stops at step 2', async () => {
    const script = vaultScript(await vaultRunbook(PG_SOURCE));
    const withoutRole = script.replace(/^if \[ -z "\$\{AWS_PROFILE:-\}" \]; then\n[\s\S]*?^fi\n/m, '');
    expect(withoutRole).not.toContain('assume-role');
    const before = secretsRelay.requests.length;

    const failure = await runDrill(withoutRole, Engine.POSTGRES, uniqueName('drill_postgres_no_role')).then(() => 'it ran', (err: Error) => err.message);
    // (moto's S3 lets any account read any bucket; its Secrets Manager keeps each account's secrets to that account.)
    expect(failure).toMatch(/the runbook's standard-tool script failed[\s\S]*GetSecretValue operation: Secrets Manager can't find the specified secret/);
    expect(secretsRelay.requests.slice(before)).toEqual([{ target: 'secretsmanager.GetSecretValue', secretId: vaultIdentityArn, region: VAULT_REGION }]);
  });
});
