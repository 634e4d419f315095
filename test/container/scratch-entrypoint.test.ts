/**
 * The scratch database's entrypoint, run for real: the exact entryPoint and command of the synthesized restore-test
 * task definition, through /bin/sh, with the variables ECS gives every container of a task (the task role's
 * credentials) set, around a real server: PostgreSQL and MariaDB here, `sleep` standing in for MySQL 8.4 (no MySQL
 * server is installed). The image's docker-entrypoint.sh is a stand-in that, like the image's, ends by exec-ing
 * the server it is given, here with a throwaway data directory and a free port. Each case reads the server
 * process's /proc/<pid>/environ: the credential variables are gone, the image's settings are not; a program the
 * PostgreSQL server starts (COPY … TO PROGRAM, as a superuser) sees none either; the MariaDB server runs with the
 * scratch settings (local_infile off, secure_file_priv in an empty directory it cannot write to, loopback only). A
 * control runs the stand-in without the wrapper and finds the variables.
 *
 * Run as root, as the tests are: the wrapper creates /var/lib/mysql-files, so each case runs in a mount
 * namespace of its own (unshare) with a tmpfs on /var/lib, and the machine's /var/lib is left alone.
 */
import { ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import { BackupSource, SourceEngine } from '../../lib/backups/backup-source';
import { CREDENTIAL_VARIABLES, RestoreTestTask, SCRATCH_CONTAINER } from '../../lib/restore-testing/restore-test-task';
import { freePort, waitForPort } from '../support/net';

interface ScratchContainer {
  readonly entryPoint: string[];
  readonly command: string[];
  readonly environment: Record<string, string>;
}

/** The scratch container of the restore-test task definition for an engine, as the template has it. */
function synthesized(engine: SourceEngine): ScratchContainer {
  const stack = new Stack(new App(), 'Scratch');
  const role = (id: string) => new iam.Role(stack, id, { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
  const source = { name: 'db', engine, scratchImage: ecs.ContainerImage.fromRegistry(engine.defaultScratchImage) } as unknown as BackupSource;
  new RestoreTestTask(stack, 'Task', {
    source, agentImage: ecs.ContainerImage.fromRegistry('registry.example.com/agent:1'), executionRole: role('Execution'), defaultTaskRole: role('Default'),
    logGroup: new logs.LogGroup(stack, 'Logs'), cpu: 1024, memoryLimitMiB: 2048, scratchStartTimeout: Duration.minutes(10),
  });
  const [definition] = Object.values(Template.fromStack(stack).findResources('AWS::ECS::TaskDefinition'));
  const scratch = (definition.Properties.ContainerDefinitions as Record<string, unknown>[]).find((c) => c.Name === SCRATCH_CONTAINER)!;
  return {
    entryPoint: scratch.EntryPoint as string[],
    command: scratch.Command as string[],
    environment: Object.fromEntries((scratch.Environment as { Name: string; Value: string }[]).map((e) => [e.Name, e.Value])),
  };
}

/** What ECS puts in every container's environment: the task role's credentials, and the task metadata endpoint. */
const ECS_GIVES = {
  AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: '/v2/credentials/7a4c5e0e-scratch-must-not-see-this',
  AWS_CONTAINER_CREDENTIALS_FULL_URI: 'http://169.254.170.23/v1/credentials',
  AWS_CONTAINER_AUTHORIZATION_TOKEN: 'token-scratch-must-not-see-this',
  AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: '/var/run/secrets/token-scratch-must-not-see-this',
  ECS_CONTAINER_METADATA_URI_V4: 'http://169.254.170.2/v4/metadata',
};

const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function environOf(pid: number): Record<string, string> {
  const raw = readFileSync(`/proc/${pid}/environ`, 'utf8');
  return Object.fromEntries(raw.split('\0').filter(Boolean).map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
}

function idOf(user: string): { uid: number; gid: number } {
  return { uid: Number(execFileSync('id', ['-u', user]).toString().trim()), gid: Number(execFileSync('id', ['-g', user]).toString().trim()) };
}

/** A directory for one case, which the server's own user may enter. */
function caseDir(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `scratch-entrypoint-${name}-`));
  chmodSync(dir, 0o755);
  mkdirSync(join(dir, 'bin'));
  return dir;
}

/** The image's entrypoint, stood in for: checks the server it is given, then execs `exec` with the given flags after. */
function standInEntrypoint(dir: string, server: string, exec: string): void {
  const script = join(dir, 'bin', 'docker-entrypoint.sh');
  writeFileSync(script, [
    '#!/bin/sh',
    `[ "$1" = ${server} ] || { echo "docker-entrypoint.sh: expected ${server}, got $1" >&2; exit 64; }`,
    'shift',
    `printf '%s\\n' "$@" > ${join(dir, 'server-flags')}`,
    `exec ${exec} "$@"`,
    '',
  ].join('\n'));
  chmodSync(script, 0o755);
}

const started: ChildProcess[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const child of started.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});
afterAll(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Runs argv as the container would, in a mount namespace of its own with a tmpfs on /var/lib; the pid stays the server's. */
function runAsContainer(dir: string, argv: string[], environment: Record<string, string>): ChildProcess {
  const harness = ['unshare', '--mount', '--propagation', 'private', '/bin/sh', '-c', 'mount -t tmpfs tmpfs /var/lib && exec "$@"', 'harness'];
  const child = spawn(harness[0], [...harness.slice(1), ...argv], {
    env: { ...environment, ...ECS_GIVES, PATH: `${join(dir, 'bin')}:${SYSTEM_PATH}`, HOME: dir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => { output += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { output += d.toString(); });
  child.on('exit', (code, signal) => { if (code !== null && code !== 0) process.stderr.write(`scratch case exited ${code ?? signal}: ${output}\n`); });
  started.push(child);
  return child;
}

/** Waits until the process `pid` runs `binary` (the exec chain has reached the server). */
async function execed(pid: number, binary: RegExp, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let exe = '';
    try { exe = readlinkSync(`/proc/${pid}/exe`); } catch { /* gone or not yet */ }
    if (binary.test(exe)) return;
    if (Date.now() > deadline) throw new Error(`process ${pid} runs '${exe}', not ${binary}, after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function expectNoCredentials(environ: Record<string, string>): void {
  for (const name of CREDENTIAL_VARIABLES) expect(environ).not.toHaveProperty(name);
  expect(Object.values(environ).join('\n')).not.toContain('scratch-must-not-see-this');
}

function postgresBin(): string {
  const root = '/usr/lib/postgresql';
  const majors = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'postgres'))).sort((a, b) => Number(b) - Number(a)) : [];
  if (!majors.length) throw new Error(`no PostgreSQL server under ${root}: run scripts/install-deps.sh`);
  return join(root, majors[0], 'bin');
}

test('given the template\'s scratch entrypoint for PostgreSQL around a real postgres, then neither the server nor a program it starts holds the credential variables', async () => {
  const scratch = synthesized(SourceEngine.postgres('16'));
  const dir = caseDir('postgres');
  dirs.push(dir);
  const bin = postgresBin();
  const postgres = idOf('postgres');
  chownSync(dir, postgres.uid, postgres.gid);
  const asPostgres = `setpriv --reuid=${postgres.uid} --regid=${postgres.gid} --init-groups`;
  execFileSync('setpriv', [`--reuid=${postgres.uid}`, `--regid=${postgres.gid}`, '--init-groups', join(bin, 'initdb'), '-D', join(dir, 'data'), '-U', 'postgres', '--auth=trust', '--no-sync'], { stdio: 'pipe' });
  const port = await freePort();
  standInEntrypoint(dir, 'postgres', `${asPostgres} ${join(bin, 'postgres')} -D ${join(dir, 'data')} -k ${dir} -p ${port}`);

  const server = runAsContainer(dir, [...scratch.entryPoint, ...scratch.command], scratch.environment);
  await execed(server.pid!, /\/postgres$/);
  await waitForPort(port, 30_000, 'the scratch PostgreSQL');

  const environ = environOf(server.pid!);
  expectNoCredentials(environ);
  expect(environ).toMatchObject({ POSTGRES_DB: 'restore_test', POSTGRES_HOST_AUTH_METHOD: 'trust', ECS_CONTAINER_METADATA_URI_V4: ECS_GIVES.ECS_CONTAINER_METADATA_URI_V4 });
  expect(readFileSync(join(dir, 'server-flags'), 'utf8').trim().split('\n')).toEqual(['-c', 'listen_addresses=127.0.0.1']);

  const psql = (sql: string) => execFileSync(join(bin, 'psql'), ['-X', '-At', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-c', sql],
    { env: { PATH: SYSTEM_PATH }, encoding: 'utf8' }).trim();
  expect(psql('SHOW listen_addresses')).toBe('127.0.0.1');
  // What a backup's COPY … TO PROGRAM would see if it ran with rights it should never have: no credentials.
  const seen = join(dir, 'seen-by-program');
  psql(`COPY (SELECT 1) TO PROGRAM 'env > ${seen}'`);
  const programEnv = Object.fromEntries(readFileSync(seen, 'utf8').split('\n').filter((l) => l.includes('=')).map((l) => [l.split('=')[0], l.slice(l.indexOf('=') + 1)]));
  expectNoCredentials(programEnv);
  expect(programEnv).toHaveProperty('POSTGRES_DB', 'restore_test');
});

test('given the template\'s scratch entrypoint for MariaDB around a real mariadbd, then the server holds no credential variables and runs with the scratch settings', async () => {
  const scratch = synthesized(SourceEngine.mariadb('10.11'));
  const dir = caseDir('mariadb');
  dirs.push(dir);
  const mysql = idOf('mysql');
  const run = join(dir, 'run');
  mkdirSync(run);
  chownSync(run, mysql.uid, mysql.gid);
  execFileSync('mariadb-install-db', ['--no-defaults', `--datadir=${join(dir, 'data')}`, '--user=mysql', '--skip-test-db', '--auth-root-authentication-method=socket'], { stdio: 'pipe' });
  const port = await freePort();
  const socket = join(run, 'socket');
  // As in the image, the server starts as root and switches to mysql itself.
  standInEntrypoint(dir, 'mariadbd', `mariadbd --no-defaults --datadir=${join(dir, 'data')} --socket=${socket} --port=${port} --pid-file=${join(run, 'pid')} ` +
    `--log-error=${join(run, 'log')} --user=mysql`);

  const server = runAsContainer(dir, [...scratch.entryPoint, ...scratch.command], scratch.environment);
  await execed(server.pid!, /\/mariadbd$/);
  await waitForPort(port, 30_000, 'the scratch MariaDB');

  const environ = environOf(server.pid!);
  expectNoCredentials(environ);
  expect(environ).toMatchObject({ MARIADB_DATABASE: 'restore_test', MARIADB_ALLOW_EMPTY_ROOT_PASSWORD: '1' });
  expect(readFileSync(join(dir, 'server-flags'), 'utf8').trim().split('\n')).toEqual(['--bind-address=127.0.0.1', '--local-infile=0', '--secure-file-priv=/var/lib/mysql-files']);

  // The directory the wrapper made, seen in the server's own mount namespace: empty, root's, not writable by mysql.
  const filesDir = `/proc/${server.pid}/root/var/lib/mysql-files`;
  expect(statSync(filesDir)).toMatchObject({ uid: 0, gid: 0 });
  expect(statSync(filesDir).mode & 0o022).toBe(0);
  expect(readdirSync(filesDir)).toEqual([]);

  // As the server's root account, which holds FILE: more than the load's account may do.
  const sql = (statement: string) => spawnSync('mariadb', ['--no-defaults', '-S', socket, '-u', 'root', '-N', '-B', '-e', statement], { encoding: 'utf8' });
  expect(sql('SELECT @@local_infile, @@secure_file_priv, @@bind_address').stdout.trim()).toBe('0\t/var/lib/mysql-files/\t127.0.0.1');
  expect(sql("SELECT LOAD_FILE('/etc/passwd') IS NULL").stdout.trim()).toBe('1');
  expect(sql(`SELECT 1 INTO OUTFILE '${join(dir, 'outfile')}'`).stderr).toMatch(/--secure-file-priv/);
  expect(sql("SELECT 1 INTO OUTFILE '/var/lib/mysql-files/outfile'").stderr).toMatch(/Permission denied/);
  expect(existsSync(join(dir, 'outfile'))).toBe(false);
});

test('given the template\'s scratch entrypoint for MySQL 8.4, with sleep standing in for mysqld, then the process holds no credential variables; without the wrapper it would', async () => {
  const scratch = synthesized(SourceEngine.mysql('8.4'));
  const dir = caseDir('mysql');
  dirs.push(dir);
  standInEntrypoint(dir, 'mysqld', 'sleep 60 #');

  const wrapped = runAsContainer(dir, [...scratch.entryPoint, ...scratch.command], scratch.environment);
  await execed(wrapped.pid!, /\/sleep$/);
  expectNoCredentials(environOf(wrapped.pid!));
  expect(environOf(wrapped.pid!)).toMatchObject({ MYSQL_DATABASE: 'restore_test', MYSQL_ALLOW_EMPTY_PASSWORD: 'yes' });
  expect(readFileSync(join(dir, 'server-flags'), 'utf8').trim().split('\n'))
    .toEqual(['--bind-address=127.0.0.1', '--local-infile=0', '--secure-file-priv=/var/lib/mysql-files', '--mysqlx=0']);
  expect(readdirSync(`/proc/${wrapped.pid}/root/var/lib/mysql-files`)).toEqual([]);

  // The control: the image's entrypoint alone, as ECS would start it without the override.
  const bare = runAsContainer(dir, ['docker-entrypoint.sh', ...scratch.command], scratch.environment);
  await execed(bare.pid!, /\/sleep$/);
  expect(environOf(bare.pid!)).toMatchObject({
    AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: ECS_GIVES.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI,
    AWS_CONTAINER_AUTHORIZATION_TOKEN: ECS_GIVES.AWS_CONTAINER_AUTHORIZATION_TOKEN,
  });
});
