/**
 * Planted MariaDB backups, end to end with the bundled agent and the real MariaDB 10.11 server: a backup is untrusted
 * input, since whoever holds a dump task's credentials can write one. Each backup here is made as such an attacker
 * would make it: a dump text of their own, without the sandbox line mariadb-dump writes at the top, holding one
 * payload (`\!`, `system`, LOAD DATA LOCAL INFILE, LOAD DATA INFILE, SELECT … INTO OUTFILE), or a roles companion
 * granting SUPER and FILE; compressed with zstd, encrypted with age to the recipient, with a matching manifest and
 * latest.json, written into the S3 emulator (moto) beside an honest backup's. Then `restorable restore-test` (as the
 * scratch sidecar connects: a login with every privilege) and `restorable restore` (as an operator's user with
 * rights on the target database alone) run against them: no marker file ever appears in a fresh directory that the
 * server and the client could both write to, no file is read, and the run fails naming the refusal, or reports what
 * it refused by name.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { LatestPointer, Manifest, latestKey, parseLatest } from '../../lib/contract';
import {
  AgeKey, MYSQL, MotoBucket, agentEnv, createMysqlDatabase, createMysqlFixture, dropMysqlDatabase, logLines, makeAgeKey, motoBucket, mysqlExec, runAgent,
  uniqueName,
} from '../support';

let s3: MotoBucket;
let key: AgeKey;
/** Markers and the file the payloads try to read: a fresh directory anyone may write to (the server runs as another user). */
let markers: string;
let secretFile: string;
const SECRET = `not-for-the-backup-${randomBytes(6).toString('hex')}`;
const honestSource = uniqueName('planted_src');
let honest: Manifest;
let honestManifestKey: string;
const databases: string[] = [honestSource];
const accounts: string[] = [];
/** An operator's login with rights on the restore targets alone, as the README tells operators to restore. */
const operator = `planted_op_${randomBytes(4).toString('hex')}`;
const OPERATOR_PASSWORD = `op-${randomBytes(8).toString('hex')}`;

const env = (password = MYSQL.password) => agentEnv({ ...s3.env, MYSQL_PWD: password });

function seal(text: string): Buffer {
  const compressed = spawnSync('zstd', ['-q', '-c'], { input: Buffer.from(text) });
  if (compressed.status !== 0) throw new Error(`zstd failed: ${compressed.stderr}`);
  const sealed = spawnSync('age', ['-r', key.recipient], { input: compressed.stdout });
  if (sealed.status !== 0) throw new Error(`age failed: ${sealed.stderr}`);
  return sealed.stdout;
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

async function put(k: string, body: Buffer | string): Promise<void> {
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: k, Body: body }));
}

/**
 * Writes a backup of `source` as an attacker with a dump role could: the honest backup's manifest as a template, the
 * object, companion, manifest and latest.json all their own.
 */
async function plant(source: string, dump: string, tables: Record<string, number>, roles?: string): Promise<void> {
  const at = new Date();
  // The honest backup's keys, under the planted source's name.
  const rename = (k: string) => k.split(honest.source).join(source);
  const object = seal(dump);
  const companion = roles === undefined ? undefined : seal(roles);
  const manifest: Manifest = {
    ...honest, source, database: honestSource, startedAt: at.toISOString(), finishedAt: at.toISOString(),
    key: rename(honest.key), size: object.length, sha256: sha256(object), dumpSize: Buffer.byteLength(dump),
    tables: Object.entries(tables).map(([table, rows]) => ({ schema: honestSource, table, rows })),
    companions: companion ? [{ ...honest.companions.find((c) => c.kind === 'globals')!, key: rename(honest.companions.find((c) => c.kind === 'globals')!.key), size: companion.length, sha256: sha256(companion) }] : [],
    globals: companion ? { captured: true } : { captured: false, reason: 'not captured' },
  };
  await put(manifest.key, object);
  if (companion) await put(manifest.companions[0].key, companion);
  const manifestKey = rename(honestManifestKey);
  await put(manifestKey, JSON.stringify(manifest));
  const pointer: LatestPointer = { formatVersion: 1, source, key: manifest.key, manifestKey, startedAt: manifest.startedAt, finishedAt: manifest.finishedAt,
    tier: manifest.tier, size: manifest.size, sha256: manifest.sha256 };
  await put(latestKey(undefined, source), JSON.stringify(pointer));
}

/** A dump as mariadb-dump would write one, minus the sandbox line, with a payload between two tables. */
const dumpWith = (payload: string) => [
  '-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)',
  '/*!40101 SET NAMES utf8mb4 */;',
  'DROP TABLE IF EXISTS `t`;',
  'CREATE TABLE `t` (`id` int(11) NOT NULL, `v` text DEFAULT NULL, PRIMARY KEY (`id`));',
  "INSERT INTO `t` VALUES (1,'a'),(2,'b');",
  payload,
  'CREATE TABLE `after_payload` (`id` int(11) NOT NULL);',
  'INSERT INTO `after_payload` VALUES (1);',
  '',
].join('\n');
const DUMP_TABLES = { t: 2, after_payload: 1 };

interface Payload {
  readonly name: string;
  readonly line: () => string;
  /** What the failure must say: the refusal, in the client's or server's words. */
  readonly refusal: RegExp;
}

const PAYLOADS: readonly Payload[] = [
  { name: 'a shell escape (\\!)', line: () => `\\! touch ${join(markers, 'shell')}`, refusal: /Not allowed in the sandbox mode/ },
  { name: 'system', line: () => `system touch ${join(markers, 'system')}`, refusal: /Not allowed in the sandbox mode/ },
  { name: 'LOAD DATA LOCAL INFILE', line: () => `LOAD DATA LOCAL INFILE '${secretFile}' INTO TABLE \`t\` (\`v\`);`, refusal: /disabled the local infile capability/ },
  { name: 'LOAD DATA INFILE (on the server)', line: () => `LOAD DATA INFILE '${secretFile}' INTO TABLE \`t\` (\`v\`);`,
    // Without FILE, the server answers as if the login were wrong.
    refusal: /LOAD DATA INFILE[\s\S]*Access denied for user/ },
  { name: 'SELECT … INTO OUTFILE', line: () => `SELECT 'pwned' INTO OUTFILE '${join(markers, 'outfile')}';`, refusal: /Access denied.*FILE/ },
];

const sourceOf = (i: number) => `planted-${i}`;
const ROLES_SOURCE = 'planted-roles';
const evil = `planted_evil_${randomBytes(4).toString('hex')}`;
const HASH = '*3D1B09227FFD6EBE09FE3AA71FA8F338EC144A1B';

beforeAll(async () => {
  s3 = await motoBucket();
  key = makeAgeKey();
  markers = mkdtempSync(join(tmpdir(), 'restorable-planted-'));
  chmodSync(markers, 0o777);
  secretFile = join(markers, 'secret.txt');
  writeFileSync(secretFile, `${SECRET}\n`, { mode: 0o644 });
  // An honest backup by the agent: the template an attacker copies (and proof that the bucket works).
  createMysqlFixture(honestSource, 20);
  const run = await runAgent(['backup', '--source', 'planted-honest', '--engine', 'mariadb', '--bucket', s3.bucket, '--recipient', key.recipient,
    '--host', MYSQL.host, '--port', String(MYSQL.port), '--user', MYSQL.user, '--database', honestSource, '--json'], env());
  if (run.code !== 0) throw new Error(`the honest backup failed: ${run.stderr}`);
  const pointer = parseLatest((await s3.getText(latestKey(undefined, 'planted-honest')))!, 'latest.json');
  honest = JSON.parse((await s3.getText(pointer.manifestKey))!) as Manifest;
  honestManifestKey = pointer.manifestKey;
  expect(honest.companions.some((c) => c.kind === 'globals')).toBe(true);

  for (const [i, payload] of PAYLOADS.entries()) await plant(sourceOf(i), dumpWith(payload.line()), DUMP_TABLES);
  await plant(ROLES_SOURCE, dumpWith('-- nothing here'), DUMP_TABLES, [
    '-- Users and grants, from SHOW CREATE USER and SHOW GRANTS.',
    `-- ${evil}@%`,
    `CREATE USER IF NOT EXISTS \`${evil}\`@\`%\` IDENTIFIED BY PASSWORD '${HASH}';`,
    `GRANT SUPER, FILE ON *.* TO \`${evil}\`@\`%\`;`,
    `GRANT ALL PRIVILEGES ON *.* TO \`${evil}\`@\`%\` WITH GRANT OPTION;`,
    `GRANT SELECT ON \`${honestSource}\`.\`t\` TO \`${evil}\`@\`%\`;`,
    "SET GLOBAL local_infile = 1;",
    `\\! touch ${join(markers, 'roles-shell')}`,
    `GRANT SELECT ON \`${honestSource}\`.\`t\` TO \`${evil}\`@\`%\` /*!, SUPER ON *.* TO \`${evil}\`@\`%\` */;`,
  ].join('\n'));
  accounts.push(`'${evil}'@'%'`);

  for (const host of ['localhost', '127.0.0.1']) {
    mysqlExec(undefined, `CREATE USER '${operator}'@'${host}' IDENTIFIED BY '${OPERATOR_PASSWORD}'`);
    accounts.push(`'${operator}'@'${host}'`);
  }
});

afterAll(async () => {
  for (const account of accounts) mysqlExec(undefined, `DROP USER IF EXISTS ${account}`);
  for (const db of databases) dropMysqlDatabase(db);
  if (markers) rmSync(markers, { recursive: true, force: true });
  await s3?.stop();
});

/** A fresh, empty target; the operator may do anything in it and nothing beyond it. */
function target(label: string): string {
  const name = uniqueName(`planted_${label}`);
  databases.push(name);
  createMysqlDatabase(name);
  for (const host of ['localhost', '127.0.0.1']) mysqlExec(undefined, `GRANT ALL PRIVILEGES ON \`${name}\`.* TO '${operator}'@'${host}'`);
  return name;
}

/** Whatever a payload could have left: markers in the fresh directory, or the secret's bytes in the target. */
function leftovers(database: string): { markers: string[]; secretRead: boolean } {
  const tables = mysqlExec(undefined, `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '${database}' AND table_name = 't'`);
  const secretRead = tables[0][0] === '1' && mysqlExec(database, `SELECT COUNT(*) FROM \`t\` WHERE v LIKE '%${SECRET}%'`)[0][0] !== '0';
  return { markers: readdirSync(markers).filter((f) => f !== 'secret.txt'), secretRead };
}

const restoreTest = (source: string, scratch: string) => runAgent(['restore-test', '--source', source, '--bucket', s3.bucket,
  '--identity-file', key.identityFile, '--host', MYSQL.host, '--port', String(MYSQL.port), '--user', MYSQL.user, '--database', scratch, '--json'], env());

const restore = (source: string, into: string, user: string, password: string, ...extra: string[]) => runAgent(['restore', '--source', source,
  '--bucket', s3.bucket, '--identity-file', key.identityFile, '--host', MYSQL.host, '--port', String(MYSQL.port), '--user', user,
  '--database', into, '--json', ...extra], env(password));

test('control: the marker directory is one the server writes to for a FILE holder, and the client without its flags runs a shell', () => {
  const control = spawnSync('mysql', ['-h', MYSQL.host, '-P', String(MYSQL.port), '-u', MYSQL.user, '--local-infile=1'], {
    input: `\\! touch ${join(markers, 'control-shell')}\nSELECT 'x' INTO OUTFILE '${join(markers, 'control-server')}';\n`,
    env: { ...process.env, MYSQL_PWD: MYSQL.password }, encoding: 'utf8',
  });
  expect({ status: control.status, stderr: control.stderr }).toEqual({ status: 0, stderr: '' });
  expect(readdirSync(markers).sort()).toEqual(['control-server', 'control-shell', 'secret.txt']);
  for (const f of ['control-server', 'control-shell']) rmSync(join(markers, f));
});

describe.each(PAYLOADS.map((p, i) => ({ ...p, source: sourceOf(i) })))('a planted dump holding $name', (payload) => {
  test('restore-test: the load fails naming the refusal, the report says so, nothing runs and nothing is read', async () => {
    const scratch = target('rt');
    const run = await restoreTest(payload.source, scratch);
    expect(run.code).toBe(1);
    const report = JSON.parse(run.stdout);
    expect(report).toMatchObject({ source: payload.source, success: false });
    expect(report.failures.join('\n')).toMatch(payload.refusal);
    expect(leftovers(scratch)).toEqual({ markers: [], secretRead: false });
    // Nothing after the payload ran: the load stopped there (never --force).
    expect(mysqlExec(undefined, `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '${scratch}' AND table_name = 'after_payload'`)).toEqual([['0']]);
    // It loaded as an account made for it, gone with the test.
    const loader = logLines(run.stderr).find((l) => l.msg === 'the backup loads as an account with rights on the target database alone')?.account as string;
    expect(loader).toMatch(/^restorable_load_[0-9a-f]+@/);
    expect(mysqlExec(undefined, `SELECT COUNT(*) FROM mysql.user WHERE user = '${loader.split('@')[0]}'`)).toEqual([['0']]);
  });

  test('restore by an operator with rights on the target alone: exit 1 naming the refusal, nothing runs and nothing is read', async () => {
    const into = target('op');
    const run = await restore(payload.source, into, operator, OPERATOR_PASSWORD);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(payload.refusal);
    expect(run.stderr).toMatch(/the target must not be trusted/);
    expect(leftovers(into)).toEqual({ markers: [], secretRead: false });
  });
});

test('restore by a user holding FILE and SUPER: refused before the target is touched; with --load-as-connected-user, the client-side payloads are still refused', async () => {
  const refused = await restore(sourceOf(0), target('root'), MYSQL.user, MYSQL.password);
  expect(refused.code).toBe(2);
  expect(refused.stderr).toMatch(/ holds .*FILE, SUPER.* beyond its databases, and the backup's SQL .* would run with them/);
  for (const i of [0, 1, 2]) {
    const into = target('root');
    const run = await restore(sourceOf(i), into, MYSQL.user, MYSQL.password, '--load-as-connected-user');
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(PAYLOADS[i].refusal);
    expect(leftovers(into)).toEqual({ markers: [], secretRead: false });
  }
});

describe('a planted roles companion granting SUPER and FILE', () => {
  const expectedRefusals = [
    { what: `GRANT SUPER, FILE ON *.* TO \`${evil}\`@\`%\``, why: 'SUPER, FILE on *.* reaches beyond the restored database' },
    { what: `GRANT ALL PRIVILEGES ON *.* TO \`${evil}\`@\`%\` WITH GRANT OPTION`, why: 'ALL PRIVILEGES on *.* reaches beyond the restored database' },
    { what: 'SET GLOBAL local_infile …', why: 'SET changes settings or passwords: only SET DEFAULT ROLE is applied' },
  ];
  const grantsOf = () => mysqlExec(undefined, `SHOW GRANTS FOR '${evil}'@'%'`).map(([g]) => g.replace(/ IDENTIFIED BY PASSWORD '[^']*'/, ''));

  afterEach(() => { mysqlExec(undefined, `DROP USER IF EXISTS '${evil}'@'%'`); });

  test('restore-test: the account comes back with its grant on the scratch database only; the rest is refused by name in the report', async () => {
    const scratch = target('rt_roles');
    const run = await restoreTest(ROLES_SOURCE, scratch);
    const report = JSON.parse(run.stdout);
    expect({ code: run.code, failures: report.failures }).toEqual({ code: 0, failures: [] });
    const refused = report.refused.filter((r: { from: string }) => r.from === 'roles');
    expect(refused.map((r: { what: string; why: string }) => ({ what: r.what, why: r.why }))).toEqual(expect.arrayContaining([
      expectedRefusals[0], expectedRefusals[1], expectedRefusals[2],
      { what: expect.stringMatching(/^\\! touch /), why: 'a client command, which a roles companion never holds' },
      { what: `GRANT SELECT ON \`${honestSource}\`.\`t\` TO \`${evil}\`@\`%\` …`, why: expect.stringContaining('executable comment') },
    ]));
    expect(run.stdout).not.toContain(HASH.slice(1));
    expect(grantsOf()).toEqual([`GRANT USAGE ON *.* TO \`${evil}\`@\`%\``, `GRANT SELECT ON \`${scratch}\`.\`t\` TO \`${evil}\`@\`%\``]);
    expect(mysqlExec(undefined, 'SELECT @@GLOBAL.local_infile')).toEqual([['1']]); // as the server was: untouched
    expect(leftovers(scratch)).toEqual({ markers: [], secretRead: false });
  });

  test('restore --with-globals: the same refusals in the result, the same single grant', async () => {
    const into = target('roles');
    const run = await restore(ROLES_SOURCE, into, MYSQL.user, MYSQL.password, '--with-globals', '--load-as-connected-user');
    expect({ code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({ code: 0, stderr: '' });
    const result = JSON.parse(run.stdout);
    expect(result.globals.created).toEqual([`${evil}@%`]);
    expect(result.globals.refused).toEqual(expect.arrayContaining([expectedRefusals[0], expectedRefusals[1], expectedRefusals[2]]));
    expect(run.stdout).not.toContain(HASH.slice(1));
    expect(grantsOf()).toEqual([`GRANT USAGE ON *.* TO \`${evil}\`@\`%\``, `GRANT SELECT ON \`${into}\`.\`t\` TO \`${evil}\`@\`%\``]);
    expect(leftovers(into)).toEqual({ markers: [], secretRead: false });
    expect(existsSync(join(markers, 'roles-shell'))).toBe(false);
  });
});
