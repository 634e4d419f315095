/**
 * The runbook of a MongoDB source, drilled with standard tools only: the agent backs up the MongoDB fixture on the
 * services' FerretDB into moto, the runbook is stored in the bucket and printed back by `restorable runbook`, and its
 * standard-tool blocks are taken FROM THAT TEXT, moto's endpoint put into the aws commands, and run in bash with
 * Debian's aws CLI v2, jq, sha256sum, age, zstd and mongorestore 100.10.0 (first on PATH through a wrapper that records
 * that it ran, and with what). The restored database is compared with the source document by document.
 *
 * The negative controls: a tampered object stops the steps at its checksum, before mongorestore runs; a manifest whose
 * counts disagree with what mongorestore loaded fails the count step. The agent's own blocks of steps 6 and 7 are run
 * too, to hold the login's words (auth source and mechanism) the runbook gives the agent to its real options.
 */
import { createHash } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import {
  Engine, Manifest, RunbookPath, RunbookVia, globalsKeyFor, latestKey, parseLatest, parseManifest, renderRunbook, runbookBlocks, runbookKey,
  standardToolScript,
} from '../../lib/contract';
import { standardBlocks } from '../../lib/contract/runbook-blocks';
import {
  AGENT_BUNDLE, AgeKey, MONGO, MONGO_TOOLS_DIR, MotoBucket, agentEnv, createMongoFixture, dropMongoDatabase, makeAgeKey, mongoDocuments, mongoFixtureCounts,
  mongoIndexes, mongoToolsPath, motoBucket, requireAgentBundle, runAgent, uniqueName,
} from '../support';
import { Moto, motoName, sharedMoto } from '../support/moto';

// Each run of the steps starts the aws CLI a handful of times, and FerretDB writes slowly.
jest.setTimeout(300_000);

const PREFIX = 'prod/';
const REGION = 'us-east-1';
const SOURCE = 'shop-mongo';
const TAMPERED = 'shop-mongo-tampered';
const MISCOUNTED = 'shop-mongo-miscounted';
const WITH_USERS = 'shop-mongo-users';
const CUSTOMERS = 400;
/** Debian's aws CLI v2 (the awscli package) and the base system's tools. */
const TOOLS_PATH = '/usr/bin:/bin';

const database = uniqueName('rb_mongo');
const restored: string[] = [];
const scratch = mkdtempSync(join(tmpdir(), 'restorable-mongo-drill-'));
let moto: Moto;
let s3: MotoBucket;
let key: AgeKey;
let identityArn: string;
const manifests: Record<string, Manifest> = {};

/**
 * PATH with a mongorestore first that records its argv into `record` and its environment into `record.env` (named in
 * the wrapper itself: the steps run mongorestore with an environment of its own), then runs the real one.
 */
function recordingPath(record: string): string {
  const dir = mkdtempSync(join(scratch, 'bin-'));
  writeFileSync(join(dir, 'mongorestore'), `#!/bin/bash
printf '%s\\n' "$@" > '${record}'
env > '${record}.env'
exec '${join(MONGO_TOOLS_DIR, 'mongorestore')}' "$@"
`);
  chmodSync(join(dir, 'mongorestore'), 0o755);
  return `${dir}:${mongoToolsPath(TOOLS_PATH)}`;
}

async function backup(source: string): Promise<Manifest> {
  const run = await runAgent(['backup', '--source', source, '--engine', 'mongodb', '--bucket', s3.bucket, '--prefix', PREFIX, '--recipient', key.recipient,
    '--host', MONGO.host, '--port', String(MONGO.port), '--user', MONGO.user, '--auth-source', MONGO.authSource, '--auth-mechanism', MONGO.authMechanism,
    '--database', database, '--json'], agentEnv({ ...s3.env, MONGODB_PASSWORD: MONGO.password, PATH: mongoToolsPath() }));
  expect({ code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({ code: 0, stderr: '' });
  const manifestKey = parseLatest((await s3.getText(latestKey(PREFIX, source)))!, 'latest.json').manifestKey;
  return parseManifest((await s3.getText(manifestKey))!, manifestKey);
}

/** The runbook as a person gets it: stored in the bucket, printed by `restorable runbook`. */
async function printedRunbook(source: string): Promise<string> {
  await s3.client.send(new PutObjectCommand({
    Bucket: s3.bucket, Key: runbookKey(PREFIX, source),
    Body: renderRunbook({ source, engine: Engine.MONGODB, prefix: PREFIX, primary: { bucket: s3.bucket, region: REGION }, identitySecretArn: identityArn }),
  }));
  const run = await runAgent(['runbook', '--source', source, '--bucket', s3.bucket, '--prefix', PREFIX], agentEnv(s3.env));
  expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
  return run.stdout;
}

interface DrillRun { readonly status: number | null; readonly stdout: string; readonly stderr: string; readonly script: string; readonly argv?: string[]; readonly env?: string[] }

/**
 * The printed runbook's standard-tool steps 0 to 8 (or, `viaAgent`, its scene and then the agent's blocks of steps 6 and
 * 7, `restorable` being the bundled agent), moto's endpoint put into the aws commands, run in bash into `into`.
 */
async function drill(source: string, into: string, viaAgent = false): Promise<DrillRun> {
  const runbook = await printedRunbook(source);
  const steps = viaAgent
    ? [standardBlocks(runbook, RunbookPath.PRIMARY, /^0$/), `restorable() { '${process.execPath}' '${AGENT_BUNDLE}' "$@"; }`,
      ...runbookBlocks(runbook).filter((b) => b.via === RunbookVia.RESTORABLE && /^[67]$/.test(b.step)).map((b) => b.code)].join('\n')
    : standardToolScript(runbook, RunbookPath.PRIMARY);
  const script = steps.replace(/\baws (s3|s3api|secretsmanager) /g, `aws --endpoint-url ${moto.endpoint} $1 `);
  const work = mkdtempSync(join(scratch, 'work-'));
  const record = join(scratch, `${into}.argv`);
  restored.push(into);
  const env = {
    ...(viaAgent ? moto.env(REGION) : {}), PATH: recordingPath(record), HOME: work,
    AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing', AWS_PAGER: '', AWS_MAX_ATTEMPTS: '2',
    AWS_CONFIG_FILE: join(work, 'no-config'), AWS_SHARED_CREDENTIALS_FILE: join(work, 'no-credentials'),
    AWS_REQUEST_CHECKSUM_CALCULATION: 'when_required', AWS_RESPONSE_CHECKSUM_VALIDATION: 'when_required',
    TARGET_HOST: MONGO.host, TARGET_PORT: String(MONGO.port), TARGET_USER: MONGO.user, TARGET_DATABASE: into,
    TARGET_AUTH_SOURCE: MONGO.authSource, TARGET_AUTH_MECHANISM: MONGO.authMechanism, MONGODB_PASSWORD: MONGO.password,
  };
  try {
    const result = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn('bash', ['--noprofile', '--norc', '-euo', 'pipefail', '-c', script], { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
      child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
      child.on('error', reject);
      child.on('close', (status) => resolve({ status, stdout, stderr }));
    });
    return { ...result, script, argv: existsSync(record) ? readFileSync(record, 'utf8').split('\n').filter(Boolean) : undefined,
      env: existsSync(`${record}.env`) ? readFileSync(`${record}.env`, 'utf8').split('\n').filter(Boolean).map((l) => l.split('=')[0]) : undefined };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The manifest's key of a source's latest backup. */
const manifestKeyOf = async (source: string) => parseLatest((await s3.getText(latestKey(PREFIX, source)))!, 'latest.json').manifestKey;

const collections = async (name: string) => Object.keys(await mongoDocuments(name));

beforeAll(async () => {
  requireAgentBundle();
  moto = await sharedMoto();
  s3 = await motoBucket();
  key = makeAgeKey();
  const secrets = new SecretsManagerClient(moto.config(REGION));
  try {
    identityArn = (await secrets.send(new CreateSecretCommand({ Name: motoName('restorable/mongo-identity'), SecretString: readFileSync(key.identityFile, 'utf8') }))).ARN!;
  } finally {
    secrets.destroy();
  }
  await createMongoFixture(database, CUSTOMERS);
  for (const source of [SOURCE, TAMPERED, MISCOUNTED, WITH_USERS]) manifests[source] = await backup(source);
}, 300_000);

afterAll(async () => {
  for (const name of [database, ...restored]) await dropMongoDatabase(name).catch(() => undefined);
  rmSync(scratch, { recursive: true, force: true });
});

test('the runbook\'s own standard-tool steps restore the latest backup into another database, document by document', async () => {
  const target = uniqueName('rb_mongo_std');
  const run = await drill(SOURCE, target);
  if (run.status !== 0) throw new Error(`the runbook's standard-tool steps failed (${run.status}):\n${run.stderr}\n--- script ---\n${run.script}`);

  // The backup is untrusted input: its own database's collections only, renamed, stopping at the first error; nothing
  // dropped, no UUIDs, users or roles taken from it; the password in mongorestore's --config file, never its argv.
  expect(run.argv).toEqual(expect.arrayContaining(['--archive=dump.archive', '--nsInclude', `${database}.*`, '--nsExclude', `${database}.system.*`,
    '--nsFrom', `${database}.*`, '--nsTo', `${target}.*`, '--stopOnError', '--config', 'mongo.yaml']));
  expect(run.argv!.filter((a) => /^--(drop|preserveUUID|restoreDbUsersAndRoles|password)\b|^-p$/.test(a))).toEqual([]);
  // It ran with nothing of the steps' environment: no AWS credentials, no password, a HOME of its own.
  expect(run.env!.filter((name) => !['PATH', 'HOME', 'TZ', 'LANG', 'PWD', 'SHLVL', '_'].includes(name))).toEqual([]);
  const commands = run.script.split('\n').filter((l) => !l.trimStart().startsWith('#')).join('\n');
  expect(commands.replaceAll('${TARGET_REPLACE:+--drop}', '')).not.toMatch(/--drop|--preserveUUID|--restoreDbUsersAndRoles/);

  // Every collection's count as mongorestore reported it matched the manifest's.
  const manifest = manifests[SOURCE];
  const counts = mongoFixtureCounts(CUSTOMERS);
  expect(Object.fromEntries(manifest.tables.map((t) => [t.table, t.rows]))).toEqual(counts);
  expect(run.stdout).toContain('row counts match the manifest');
  expect(run.stdout.split('\n').filter((l) => l.startsWith('ok ')).sort()).toEqual(
    Object.entries(counts).map(([table, rows]) => `ok ${database}.${table} ${rows}`).sort());

  // The restored database is the source's, document by document, index by index.
  const [original, copy] = [await mongoDocuments(database), await mongoDocuments(target)];
  expect(Object.keys(copy).sort()).toEqual(Object.keys(counts).sort());
  for (const name of Object.keys(counts)) {
    expect(copy[name].length).toBe(counts[name]);
    expect(copy[name]).toEqual(original[name]);
  }
  expect(await mongoIndexes(target)).toEqual(await mongoIndexes(database));
});

test('a tampered object stops the steps at its checksum, before mongorestore runs', async () => {
  const objectKey = manifests[TAMPERED].key;
  const bytes = Buffer.from(await s3.getBytes(objectKey));
  bytes[Math.floor(bytes.length / 2)] ^= 0x01;
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: objectKey, Body: bytes }));

  const target = uniqueName('rb_mongo_tampered');
  const run = await drill(TAMPERED, target);
  expect(run.status).not.toBe(0);
  expect(run.stdout).toMatch(/^backup\.age: FAILED$/m);
  expect(run.stderr).toContain('computed checksum did NOT match');
  expect(run.argv).toBeUndefined();
  expect(await collections(target)).toEqual([]);
});

test('a manifest whose counts disagree with what mongorestore loaded fails the count step', async () => {
  const manifest = manifests[MISCOUNTED];
  const manifestKey = await manifestKeyOf(MISCOUNTED);
  const altered = { ...manifest, tables: manifest.tables.map((t) => (t.table === 'orders' ? { ...t, rows: t.rows + 1 } : t)) };
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: manifestKey, Body: JSON.stringify(altered) }));

  const target = uniqueName('rb_mongo_miscounted');
  const run = await drill(MISCOUNTED, target);
  expect(run.status).not.toBe(0);
  const orders = mongoFixtureCounts(CUSTOMERS).orders;
  expect(run.stderr).toContain(`MISMATCH ${database}.orders: manifest ${orders + 1}, restored ${orders}`);
  // mongorestore ran (the count step is what failed), and the step stopped before claiming a match.
  expect(run.argv).toContain('--stopOnError');
  expect(run.stdout).not.toContain('row counts match the manifest');
});

test('a users and roles companion is shown for a person to read, never loaded', async () => {
  // FerretDB has no usersInfo, so the agent stores no companion: one is planted as a MongoDB server's backup has it,
  // compressed and encrypted as the agent stores it, and listed in the manifest. A user's name carries a terminal escape.
  const manifest = manifests[WITH_USERS];
  const companion = JSON.stringify({
    database, users: [{ _id: `${database}.app_reader\u001b[2J`, user: 'app_reader\u001b[2J', db: database, roles: [{ role: 'read', db: database }] }],
    roles: [{ role: 'auditor', db: database, privileges: [{ resource: { db: database, collection: '' }, actions: ['find'] }], roles: [] }],
  });
  const sealed = spawnSync('bash', ['-o', 'pipefail', '-c', `zstd -q | age -r '${key.recipient}'`], { input: companion });
  expect({ status: sealed.status, stderr: sealed.stderr.toString() }).toEqual({ status: 0, stderr: '' });
  const companionKey = globalsKeyFor(manifest.key);
  expect(companionKey).toMatch(/\.globals\.json\.zst\.age$/);
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: companionKey, Body: sealed.stdout }));
  const planted = { ...manifest, companions: [{ kind: 'globals', key: companionKey, size: sealed.stdout.length, sha256: createHash('sha256').update(sealed.stdout).digest('hex') }] };
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: await manifestKeyOf(WITH_USERS), Body: JSON.stringify(planted) }));

  const target = uniqueName('rb_mongo_users');
  const run = await drill(WITH_USERS, target);
  if (run.status !== 0) throw new Error(`the runbook's standard-tool steps failed (${run.status}):\n${run.stderr}`);
  expect(run.stdout).toContain('users and roles of the backup, to recreate by hand (not loaded):');
  expect(run.stdout).toContain('"user": "app_reader\\u001b[2J"');
  expect(run.stdout).toContain('"role": "auditor"');
  expect(run.stdout).not.toContain('\u001b');
  // mongorestore was not asked to take them, and the documents came all the same.
  expect(run.argv!.some((a) => /UsersAndRoles/.test(a))).toBe(false);
  expect(run.stdout).toContain('row counts match the manifest');
  expect(Object.keys(await mongoDocuments(target)).sort()).toEqual(Object.keys(mongoFixtureCounts(CUSTOMERS)).sort());
});

test('the agent\'s restore, as the runbook writes it, restores the latest backup with the same words for the login', async () => {
  const target = uniqueName('rb_mongo_agent');
  const run = await drill(SOURCE, target, true);
  if (run.status !== 0) throw new Error(`the runbook's restorable steps failed (${run.status}):\n${run.stderr}\n--- script ---\n${run.script}`);
  expect(run.script).toContain('--auth-source "$TARGET_AUTH_SOURCE"');
  expect(run.argv).toEqual(expect.arrayContaining(['--stopOnError']));
  expect(run.argv!.filter((a) => /^--(drop|preserveUUID|restoreDbUsersAndRoles|password)\b/.test(a))).toEqual([]);
  // Step 7's agent block prints the manifest's counts as the restore reported them.
  const counts = mongoFixtureCounts(CUSTOMERS);
  expect(run.stdout.trim().split('\n').sort()).toEqual(Object.entries(counts).map(([table, rows]) => `${database}\t${table}\t${rows}`).sort());
  const [original, copy] = [await mongoDocuments(database), await mongoDocuments(target)];
  expect(Object.keys(copy).sort()).toEqual(Object.keys(counts).sort());
  for (const name of Object.keys(counts)) expect(copy[name]).toEqual(original[name]);
});
