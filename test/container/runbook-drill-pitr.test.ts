/**
 * The runbook's point-in-time recovery, drilled with standard tools only: a real PostgreSQL 15 server archives its WAL
 * through `restorable wal-push`, `restorable basebackup` stores a base backup beside it, and the runbook of a WAL-archived source is stored
 * in the bucket and printed back by `restorable runbook`. Its scene and PITR blocks are taken FROM THAT TEXT, moto's
 * endpoint put into the aws commands, and run in bash as the server's operating-system user with Debian's aws CLI v2,
 * jq, sha256sum, age, zstd, tar and the server's own programs: the recovered server holds every transaction
 * committed at or before the target and none after it (track_commit_timestamp tells each row's commit time), and
 * neither the identity nor AWS credentials ever reach it.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { CopyObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import {
  Engine, PITR_WAL_MAX_BYTES, RunbookPath, RunbookVia, WAL_METADATA, baseBackupKey, manifestKeyFor, pitrScript, renderRunbook, runbookBlocks,
  runbookKey, walKey, walPrefix,
} from '../../lib/contract';
import { AGENT_BUNDLE, AgeKey, MotoBucket, agentEnv, clusterQuery, freePort, makeAgeKey, motoBucket, requireAgentBundle } from '../support';
import { Moto, motoName, sharedMoto } from '../support/moto';
import { PG15_BIN, Pg15Cluster, agentForCluster, clusterOwnedDir, runPg15 } from '../support/pg-wal-cluster';
import { Tick, archiveCurrentWal, commitTicks, startArchivingCluster, targetBetweenTicks } from './runbook-drill-pitr-source';

jest.setTimeout(180_000);

const SOURCE = 'ledger-pg';
const PREFIX = 'prod/';
const REGION = 'us-east-1';
/** Debian's aws CLI v2 (the awscli package) and the base system's tools. */
const TOOLS_PATH = '/usr/bin:/bin';
const AS_ROOT = userInfo().uid === 0;

let moto: Moto;
let s3: MotoBucket;
let key: AgeKey;
let identityArn: string;
let primary: Pg15Cluster;
let agent: string;
const leftovers: string[] = [];
/** Each tick's id and commit time (ms since the epoch), in commit order. */
let ticks: Tick[] = [];

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** A base backup by the agent's own `restorable basebackup` (the copy this file took), as the schedule runs it. */
function storeBaseBackup(): void {
  const run = spawnSync(process.execPath, [agent, 'basebackup', '--source', SOURCE, '--bucket', s3.bucket, '--prefix', PREFIX,
    '--recipient', key.recipient, '--host', primary.host, '--port', String(primary.port), '--user', primary.user, '--json'],
  { env: { ...agentEnv(s3.env), PATH: `${PG15_BIN}:${process.env.PATH}` }, encoding: 'utf8' });
  expect({ code: run.status, stderr: run.status === 0 ? '' : run.stderr }).toEqual({ code: 0, stderr: '' });
}

/**
 * The runbook as a person gets it: stored in the bucket, printed by `restorable runbook` (the copy of the agent this
 * file took once its bundle was checked, which the server's archive_command runs too).
 */
async function printedRunbook(): Promise<string> {
  const run = spawnSync(process.execPath, [agent, 'runbook', '--source', SOURCE, '--bucket', s3.bucket, '--prefix', PREFIX],
    { env: agentEnv(s3.env), encoding: 'utf8' });
  expect({ code: run.status, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
  return run.stdout;
}

/** The PITR script of the primary path, moto's endpoint put into the aws commands. */
function drillScript(runbook: string): string {
  return pitrScript(runbook, RunbookPath.PRIMARY).replace(/\baws (s3|s3api|secretsmanager) /g, `aws --endpoint-url ${moto.endpoint} $1 `);
}

/**
 * Rows of a query to the recovered server, by psql as the server's operating-system user: the only one its pg_hba.conf
 * admits (peer), over the socket in the drill's work directory.
 */
function recoveredQuery(run: DrillRun, port: number, sql: string): string[] {
  const out = runPg15('psql', ['-h', join(run.work, 'restore-work'), '-p', String(port), '-U', primary.user, '-d', 'postgres', '-XAtc', sql]);
  return out.split('\n').filter((line) => line !== '');
}

interface DrillRun { readonly status: number | null; readonly stdout: string; readonly stderr: string; readonly work: string }

/** Runs a script in bash as the server's operating-system user, in a directory of its own, with exactly `vars` (and AWS's). */
function runAsServerUser(script: string, vars: (work: string) => Record<string, string>): Promise<DrillRun> {
  const work = clusterOwnedDir('restorable-pitr-drill-');
  leftovers.push(work);
  const env = {
    PATH: TOOLS_PATH, HOME: work, AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing', AWS_PAGER: '', AWS_MAX_ATTEMPTS: '2',
    AWS_CONFIG_FILE: join(work, 'no-config'), AWS_SHARED_CREDENTIALS_FILE: join(work, 'no-credentials'),
    AWS_REQUEST_CHECKSUM_CALCULATION: 'when_required', AWS_RESPONSE_CHECKSUM_VALIDATION: 'when_required', ...vars(work),
  };
  const bash = ['bash', '--noprofile', '--norc', '-euo', 'pipefail', '-c', script];
  const argv = ['-i', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...bash];
  const [command, args] = AS_ROOT ? ['runuser', ['-u', 'postgres', '--', 'env', ...argv]] : ['env', argv];
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr, work }));
  });
}

beforeAll(async () => {
  requireAgentBundle();
  agent = agentForCluster(AGENT_BUNDLE);
  leftovers.push(join(agent, '..'));
  moto = await sharedMoto();
  s3 = await motoBucket({ versioned: true });
  key = makeAgeKey();
  const secrets = new SecretsManagerClient(moto.config(REGION));
  try {
    identityArn = (await secrets.send(new CreateSecretCommand({ Name: motoName('restorable/pitr-identity'), SecretString: readFileSync(key.identityFile, 'utf8') }))).ARN!;
  } finally {
    secrets.destroy();
  }
  primary = await startArchivingCluster(agent, s3, key, SOURCE, PREFIX);
  await clusterQuery(primary, 'postgres', 'CREATE TABLE ticks (id serial PRIMARY KEY, note text NOT NULL)');
  await clusterQuery(primary, 'postgres', `INSERT INTO ticks (note) SELECT 'before the base backup' FROM generate_series(1, 500)`);
  storeBaseBackup();
  ticks = await commitTicks(primary, 'postgres', 'ticks', 30, 60);
  await archiveCurrentWal(primary);
  await s3.client.send(new PutObjectCommand({
    Bucket: s3.bucket, Key: runbookKey(PREFIX, SOURCE),
    Body: renderRunbook({ source: SOURCE, engine: Engine.POSTGRES, prefix: PREFIX, primary: { bucket: s3.bucket, region: REGION }, identitySecretArn: identityArn, walArchived: true }),
  }));
});

afterAll(async () => {
  for (const dir of leftovers) {
    try {
      runPg15('pg_ctl', ['-D', join(dir, 'pitr-data'), '-m', 'immediate', '-w', 'stop']);
    } catch {
      // no recovered server there
    }
    rmSync(dir, { recursive: true, force: true });
  }
  primary?.destroy();
  await s3?.stop();
});

test('the runbook of a WAL-archived source has a PITR section, the agent\'s restore --to and the standard tools\' blocks; others have none', async () => {
  const runbook = await printedRunbook();
  const blocks = runbookBlocks(runbook);
  expect(blocks.filter((b) => b.step.startsWith('pitr')).map((b) => `${b.step}:${b.via}`))
    .toEqual(['pitr1:restorable', 'pitr1:standard', 'pitr2:standard', 'pitr3:standard', 'pitr4:standard', 'pitr5:standard']);
  expect(blocks.find((b) => b.step === 'pitr1' && b.via === RunbookVia.RESTORABLE)!.code).toMatch(/^restorable restore .*--to "\$PITR_TARGET_TIME" --data-dir "\$PITR_DATA_DIR"/m);
  const plain = renderRunbook({ source: SOURCE, engine: Engine.POSTGRES, primary: { bucket: 'b', region: REGION } });
  expect(runbookBlocks(plain).filter((b) => b.step.startsWith('pitr'))).toEqual([]);
  expect(plain).not.toContain('PITR_DATA_DIR');
  expect(() => renderRunbook({ source: 'shop', engine: Engine.MYSQL, primary: { bucket: 'b', region: REGION }, walArchived: true }))
    .toThrow('walArchived is for PostgreSQL sources, and this one is mysql');
});

test('standard tools recover to a time between two commits: every tick committed by then is there, none after, and the server never held a credential', async () => {
  // Given a target halfway between two ticks in the middle, 60 ms apart.
  const { target, kept } = targetBetweenTicks(ticks);
  const port = await freePort();

  // When the printed runbook's scene and PITR blocks run, as the server's user.
  const run = await runAsServerUser(drillScript(await printedRunbook()), (work) => ({
    PITR_DATA_DIR: join(work, 'pitr-data'), PITR_TARGET_TIME: target.toISOString(), PG_BIN: PG15_BIN, PITR_PORT: String(port), PITR_USER: primary.user,
  }));
  expect({ status: run.status, stderr: run.status === 0 ? '' : run.stderr.slice(-4000) }).toEqual({ status: 0, stderr: '' });

  // Then the recovered server answers on its socket with every tick committed at or before the target, and none after.
  expect(recoveredQuery(run, port, 'SELECT id FROM ticks WHERE note = \'tick\' ORDER BY id').map(Number)).toEqual(kept);
  expect(recoveredQuery(run, port, 'SELECT count(*) FROM ticks WHERE note <> \'tick\'')).toEqual(['500']);
  expect(run.stdout).toMatch(/[1-9][0-9]* WAL files fetched and verified/);
  expect(run.stdout).toMatch(/recovery stopping before commit of transaction \d+, time /);
  expect(run.stdout).toContain('ledger-pg');

  // And the server's environment holds nothing of the shell's, the identity is gone, and its own settings are the runbook's.
  const postmaster = readFileSync(join(run.work, 'pitr-data', 'postmaster.pid'), 'utf8').split('\n')[0];
  const environ = readFileSync(`/proc/${postmaster}/environ`, 'utf8').split('\0').filter(Boolean).map((v) => v.split('=')[0]);
  expect(environ.filter((v) => /^AWS_|^PITR_|^IDENTITY/.test(v))).toEqual([]);
  expect(readdirSync(join(run.work, 'restore-work')).filter((f) => /identity|\.age$|\.tar$/.test(f))).toEqual([]);
  const [command] = recoveredQuery(run, port, 'SELECT current_setting(\'restore_command\')');
  expect(command).toMatch(/^test -f \S+\/wal-restore\/%f \|\| exit 1; /);
  expect(command).not.toMatch(/aws|age|identity/);

  // And it is reachable by the server's own operating-system user alone: no TCP port, a 0700 socket in a 0700
  // directory, peer authentication mapped to PITR_USER; and no logical replication worker connects to a publisher.
  const mode = (path: string) => (statSync(path).mode & 0o777).toString(8);
  expect([mode(join(run.work, 'restore-work')), mode(join(run.work, 'restore-work', `.s.PGSQL.${port}`))]).toEqual(['700', '700']);
  const settings = readFileSync(join(run.work, 'pitr-data', 'postgresql.conf'), 'utf8');
  expect(settings).toMatch(/^max_logical_replication_workers = 0$/m);
  expect(settings).toMatch(/^listen_addresses = ''$/m);
  expect(recoveredQuery(run, port, 'SELECT current_setting(\'listen_addresses\') || \'|\' || current_setting(\'unix_socket_permissions\') || \'|\' || ' +
    'current_setting(\'max_logical_replication_workers\')')).toEqual(['|0700|0']);
  expect(recoveredQuery(run, port, 'SELECT type || \' \' || auth_method || \' \' || array_to_string(options, \',\') FROM pg_hba_file_rules'))
    .toEqual(['local peer map=pitr']);
  expect(readFileSync(join(run.work, 'pitr-data', 'pg_ident.conf'), 'utf8')).toBe(`pitr ${AS_ROOT ? 'postgres' : userInfo().username} ${primary.user}\n`);
});

test('the restore_command exits 1 for a file that is not there and 255, which stops recovery, for one whose SHA-256 does not match', async () => {
  const code = runbookBlocks(await printedRunbook()).find((b) => b.step === 'pitr4')!.code;
  const template = /^restore_command = '(.*)'$/m.exec(code)![1];
  const dir = mkdtempSync(join(tmpdir(), 'restorable-pitr-command-'));
  leftovers.push(dir);
  const walDir = join(dir, 'wal-restore');
  execFileSync('mkdir', [walDir]);
  const file = '000000010000000000000007';
  writeFileSync(join(walDir, file), 'the segment as archived');
  writeFileSync(join(walDir, `${file}.sha256`), `${sha256(Buffer.from('the segment as archived'))}  ${file}\n`);
  const restore = (f: string) => {
    const command = template.replace(/\$WAL_DIR/g, walDir).replace(/%f/g, f).replace(/%p/g, join(dir, 'RECOVERYXLOG'));
    try {
      execFileSync('sh', ['-c', command], { cwd: dir, stdio: 'pipe' });
      return 0;
    } catch (err) {
      return (err as { status: number }).status;
    }
  };
  expect(restore(file)).toBe(0);
  expect(readFileSync(join(dir, 'RECOVERYXLOG'), 'utf8')).toBe('the segment as archived');
  expect(restore('000000010000000000000008')).toBe(1);
  expect(restore('00000002.history')).toBe(1);
  writeFileSync(join(walDir, file), 'the segment, changed on disk');
  expect(restore(file)).toBe(255);
});

/**
 * A source whose archive is the first's, copied, its first WAL segment's metadata given `metadata`: returns its
 * runbook, the manifest and the changed segment's key.
 */
async function copiedSource(other: string, metadata: Record<string, string>): Promise<{ runbook: string; startWalFile: string; changed: string }> {
  for (const k of await s3.keys(`${PREFIX}${SOURCE}/`)) {
    if (k.endsWith('RUNBOOK.md')) continue;
    const to = `${PREFIX}${other}/${k.slice(`${PREFIX}${SOURCE}/`.length)}`.replace(`/${SOURCE}_`, `/${other}_`);
    await s3.client.send(new CopyObjectCommand({ Bucket: s3.bucket, CopySource: `${s3.bucket}/${k}`, Key: to }));
  }
  const manifestKey = (await s3.keys(`${PREFIX}${other}/base/`)).find((k) => k.endsWith('.manifest.json'))!;
  const manifest = JSON.parse((await s3.getText(manifestKey))!);
  manifest.source = other;
  manifest.key = manifestKey.replace(/\.manifest\.json$/, '');
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: manifestKey, Body: JSON.stringify(manifest) }));
  const changed = walKey(PREFIX, other, manifest.startWalFile);
  const head = await s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: changed }));
  await s3.client.send(new CopyObjectCommand({
    Bucket: s3.bucket, CopySource: `${s3.bucket}/${changed}`, Key: changed, MetadataDirective: 'REPLACE', Metadata: { ...head.Metadata, ...metadata },
  }));
  expect((await s3.keys(walPrefix(PREFIX, other))).length).toBeGreaterThan(1);
  const runbook = renderRunbook({ source: other, engine: Engine.POSTGRES, prefix: PREFIX, primary: { bucket: s3.bucket, region: REGION }, identitySecretArn: identityArn, walArchived: true });
  return { runbook, startWalFile: manifest.startWalFile, changed };
}

/** The PITR blocks of `runbook`, run to now, as the server's user, on a port no server gets. */
function drillToNow(runbook: string): Promise<DrillRun> {
  return runAsServerUser(drillScript(runbook), (work) => ({
    PITR_DATA_DIR: join(work, 'pitr-data'), PITR_TARGET_TIME: new Date().toISOString(), PG_BIN: PG15_BIN, PITR_PORT: '1', PITR_USER: primary.user,
  }));
}

test('a WAL object whose bytes are not the ones its metadata records stops the standard tools before any server starts, naming it', async () => {
  // Given a second source whose archive is the first's, one segment's recorded SHA-256 changed.
  const { runbook, startWalFile, changed } = await copiedSource('ledger-pg-damaged', { [WAL_METADATA.plaintextSha256]: '0'.repeat(64) });

  // When its PITR blocks run, to now.
  const run = await drillToNow(runbook);

  // Then sha256sum stops it at that file, and no server ever started.
  expect(run.status).not.toBe(0);
  expect(run.stderr).toContain(`${startWalFile}: FAILED`);
  expect(run.stderr).toContain(`${changed}: its contents are not the ones its SHA-256 records (damaged, or not the file archived): stopped`);
  expect(readdirSync(join(run.work, 'pitr-data'))).not.toContain('postmaster.pid');
});

test('a WAL object recording a plaintext size over 1 GiB is refused unread, and one that decompresses to more than it records is cut off', async () => {
  // Given two more copies of the archive: one segment records 1 GiB and a byte, another 1000 bytes (it holds 16 MiB).
  const oversized = await copiedSource('ledger-pg-oversized', { [WAL_METADATA.plaintextSize]: String(PITR_WAL_MAX_BYTES + 1) });
  const understated = await copiedSource('ledger-pg-understated', { [WAL_METADATA.plaintextSize]: '1000' });

  // When their PITR blocks run, to now.
  const [big, small] = await Promise.all([drillToNow(oversized.runbook), drillToNow(understated.runbook)]);

  // Then the first is refused before it is decrypted, the second after 1001 bytes, and no server ever started.
  expect(big.status).not.toBe(0);
  expect(big.stderr).toContain(`${oversized.changed} records no plaintext size of at most 1 GiB ('${PITR_WAL_MAX_BYTES + 1}'): not a WAL file, stopped`);
  expect(readdirSync(join(big.work, 'restore-work', 'wal-restore'))).toEqual([]);
  expect(small.status).not.toBe(0);
  expect(small.stderr).toContain(`${understated.changed} does not decrypt and decompress to the 1000 bytes its metadata records: stopped`);
  expect(statSync(join(small.work, 'restore-work', 'wal-restore', understated.startWalFile)).size).toBe(1001);
  for (const run of [big, small]) expect(readdirSync(join(run.work, 'pitr-data'))).not.toContain('postmaster.pid');
});

/** A base backup of `other` holding `entries` of `dir`, its manifest recording `tarSize` (the tar's own size unless given). */
async function fakeBaseBackup(other: string, dir: string, entries: string[], tarSize?: number): Promise<string> {
  const tar = execFileSync('tar', ['-C', dir, '-c', ...entries], { maxBuffer: 16 * 1024 * 1024 });
  const sealed = execFileSync('bash', ['-c', `zstd -q | age -r '${key.recipient}'`], { input: tar, maxBuffer: 16 * 1024 * 1024 });
  const startedAt = new Date(Date.now() - 60_000);
  const objectKey = baseBackupKey(PREFIX, other, startedAt);
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: objectKey, Body: sealed }));
  await s3.client.send(new PutObjectCommand({
    Bucket: s3.bucket, Key: manifestKeyFor(objectKey), Body: JSON.stringify({
      source: other, key: objectKey, sha256: sha256(sealed), size: sealed.length, tarSize: tarSize ?? tar.length,
      startedAt: startedAt.toISOString(), finishedAt: startedAt.toISOString(), timeline: 1, startWalFile: '000000010000000000000002',
    }),
  }));
  return renderRunbook({ source: other, engine: Engine.POSTGRES, prefix: PREFIX, primary: { bucket: s3.bucket, region: REGION }, identitySecretArn: identityArn, walArchived: true });
}

test('a base backup holding a link is refused before it is unpacked', async () => {
  // Given a base backup of a third source whose tar holds a symbolic link beside PG_VERSION and backup_label.
  const dir = mkdtempSync(join(tmpdir(), 'restorable-pitr-linked-'));
  leftovers.push(dir);
  writeFileSync(join(dir, 'PG_VERSION'), '15\n');
  writeFileSync(join(dir, 'backup_label'), 'START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n');
  execFileSync('ln', ['-s', '/etc', join(dir, 'pg_tblspc')]);
  const runbook = await fakeBaseBackup('ledger-pg-linked', dir, ['PG_VERSION', 'backup_label', 'pg_tblspc']);

  const run = await drillToNow(runbook);
  expect(run.status).not.toBe(0);
  expect(run.stderr).toContain('the base backup holds links, special files or names outside its directory; not unpacked');
  expect(run.stderr).toMatch(/pg_tblspc -> \/etc/);
  expect(existsSync(join(run.work, 'pitr-data'))).toBe(false);
});

test('a base backup that decompresses to more than its manifest\'s tar size is cut off at a byte more and refused', async () => {
  // Given a base backup whose tar is 1 MiB of zeros and more, its manifest recording 4096 bytes.
  const dir = mkdtempSync(join(tmpdir(), 'restorable-pitr-bomb-'));
  leftovers.push(dir);
  writeFileSync(join(dir, 'PG_VERSION'), '15\n');
  writeFileSync(join(dir, 'zeros'), Buffer.alloc(1024 * 1024));
  const other = 'ledger-pg-bomb';
  const runbook = await fakeBaseBackup(other, dir, ['PG_VERSION', 'zeros'], 4096);

  const run = await drillToNow(runbook);
  expect(run.status).not.toBe(0);
  expect(run.stderr).toMatch(new RegExp(`${other}_\\S+ does not decrypt and decompress to the 4096 bytes its manifest records: stopped`));
  expect(readdirSync(join(run.work, 'restore-work')).filter((f) => /\.tar$/.test(f))).toEqual([]);
  expect(existsSync(join(run.work, 'pitr-data'))).toBe(false);
});
