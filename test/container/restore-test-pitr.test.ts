/**
 * The restore test of a WAL-archived source, `restorable restore-test --pitr-dir DIR`, against a real PostgreSQL 15
 * server that archives through `restorable wal-push` and moto's S3: the agent restores the newest base backup
 * (`restorable basebackup`'s) and the WAL after it to a chosen time into DIR, and the restore-test task's scratch
 * container replays it: its very entryPoint, command and environment, run through /bin/sh with the task's credential
 * variables set, in a mount namespace where the test's directory is the shared volume at /restore, the image's
 * entrypoint a stand-in that starts the server as its own user. The report carries `pitr`: the commit time recovered
 * to (the last tick at or before the target), the base backup, the WAL replayed and the seconds it took; every table
 * the newest dump names is there; the server's environment holds no credential. A target no archived commit reaches
 * fails the test in words.
 */
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Engine, PITR_TEST_FILES, parseRestoreTestPointer, restoreTestLatestKey } from '../../lib/contract';
import { RestoreTestReport } from '../../container/src/restore-test/report';
import { AGENT_BUNDLE, AgeKey, MotoBucket, agentEnv, clusterQuery, freePort, makeAgeKey, motoBucket, requireAgentBundle } from '../support';
import { PG15_BIN, Pg15Cluster, agentForCluster, clusterOwnedDir, runPg15 } from '../support/pg-wal-cluster';
import { Tick, archiveCurrentWal, commitTicks, startArchivingCluster, targetBetweenTicks } from './runbook-drill-pitr-source';
import { PITR_MOUNT, PITR_TEST_DIR, pitrScratchEntrypoint } from '../../lib/restore-testing/restore-test-task';

jest.setTimeout(180_000);

const SOURCE = 'ledger-pitr';
const DATABASE = 'ledger';

let s3: MotoBucket;
let key: AgeKey;
let primary: Pg15Cluster;
/** The bundled agent, copied where the server's user can run it (archive_command) once its bundle was checked. */
let agent: string;
const leftovers: string[] = [];
const servers: string[] = [];
const sidecars: ChildProcess[] = [];
/** The shared volume's mount point, made here when the machine has none (and removed after). */
let madeMountPoint = false;
/** Each tick's id and commit time (ms since the epoch), in commit order. */
let ticks: Tick[] = [];

const ledger = <T extends object = Record<string, unknown>>(text: string) => clusterQuery<T>(primary, DATABASE, text);

function agentRun(args: string[], env: Record<string, string> = {}): { code: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, [agent, ...args], { env: { ...agentEnv(s3.env), PATH: `${PG15_BIN}:${process.env.PATH}`, ...env }, encoding: 'utf8' });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** What ECS gives every container of a task: the task role's credentials, which the server must never see. */
const ECS_GIVES = {
  AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: '/v2/credentials/pitr-scratch-must-not-see-this',
  AWS_CONTAINER_AUTHORIZATION_TOKEN: 'token-pitr-scratch-must-not-see-this',
};

/**
 * The task's scratch container, run for real: the restore-test task definition's entryPoint, command and environment
 * for a point-in-time test (pitrScratchEntrypoint, which the construct test finds in the template), through /bin/sh,
 * with the credential variables set, in a mount namespace of its own where the test's directory is the shared volume
 * at /restore. The image's docker-entrypoint.sh is a stand-in that, as the image's does for a data directory that
 * exists, gives it to the server's user and execs the server as that user.
 */
function sidecar(parent: string): ChildProcess {
  const bin = mkdtempSync(join(tmpdir(), 'restorable-pitr-image-'));
  leftovers.push(bin);
  writeFileSync(join(bin, 'docker-entrypoint.sh'), '#!/bin/sh\nset -e\nchown -R postgres "$PGDATA"\nchmod 700 "$PGDATA"\nexec runuser -u postgres -- "$@"\n');
  chmodSync(join(bin, 'docker-entrypoint.sh'), 0o755);
  const { entryPoint, command, environment } = pitrScratchEntrypoint();
  const env = { PATH: `${bin}:${PG15_BIN}:/usr/sbin:/usr/bin:/sbin:/bin`, ...ECS_GIVES, ...environment };
  const inside = `mount --bind '${parent}' ${PITR_MOUNT} && exec env -i ${Object.entries(env).map(([k, v]) => `${k}='${v}'`).join(' ')} "$@"`;
  const child = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', inside, 'sidecar', ...entryPoint, ...command], { stdio: 'ignore' });
  sidecars.push(child);
  return child;
}

/** Runs the restore test with the sidecar beside it; returns the agent's exit, its report and the test's directory. */
async function restoreTest(extra: string[]): Promise<{ code: number | null; stderr: string; report: RestoreTestReport; dir: string; port: number }> {
  const parent = clusterOwnedDir('restorable-pitr-test-');
  leftovers.push(parent);
  const dir = join(parent, 'pitr');
  const port = await freePort();
  // The scratch container starts first; the agent once the volume is open to it (its health check).
  sidecar(parent);
  const deadline = Date.now() + 10_000;
  while (!(statSync(parent).mode & 0o1000)) {
    if (Date.now() > deadline) throw new Error('the sidecar did not open the volume (chmod 1777) within 10 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [agent, 'restore-test', '--source', SOURCE, '--bucket', s3.bucket,
      '--identity-file', key.identityFile, '--pitr-dir', dir, '--host', '127.0.0.1', '--port', String(port), '--user', primary.user,
      '--pitr-wait', '90', '--json', ...extra], { env: { ...agentEnv(s3.env), PATH: `${PG15_BIN}:${process.env.PATH}` } });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { err += b.toString(); });
    child.on('close', (exit: number | null) => resolve({ code: exit, stdout: out, stderr: err }));
  });
  if (existsSync(join(dir, PITR_TEST_FILES.dataDir, 'postmaster.pid'))) servers.push(join(dir, PITR_TEST_FILES.dataDir));
  if (!stdout.includes('{')) throw new Error(`restore-test printed no report (exit ${code}):\n${stderr}`);
  return { code, stderr, report: JSON.parse(stdout.slice(stdout.indexOf('{'))) as RestoreTestReport, dir, port };
}

beforeAll(async () => {
  requireAgentBundle();
  if (process.getuid?.() !== 0) throw new Error('the sidecar runs in a mount namespace of its own (unshare -m), which needs root, as the tests run');
  if (!existsSync(PITR_MOUNT)) {
    mkdirSync(PITR_MOUNT);
    madeMountPoint = true;
  }
  agent = agentForCluster(AGENT_BUNDLE);
  leftovers.push(join(agent, '..'));
  s3 = await motoBucket({ versioned: true });
  key = makeAgeKey();
  primary = await startArchivingCluster(agent, s3, key, SOURCE);
  await clusterQuery(primary, 'postgres', `CREATE DATABASE ${DATABASE}`);
  await ledger('CREATE SCHEMA sales');
  await ledger('CREATE TABLE sales.orders (id int PRIMARY KEY, note text NOT NULL)');
  await ledger(`INSERT INTO sales.orders SELECT g, md5(g::text) FROM generate_series(1, 1000) g`);
  await ledger('CREATE TABLE ticks (id serial PRIMARY KEY, note text NOT NULL)');
  // The newest dump names the tables the test looks for; the base backup follows it.
  const dump = agentRun(['backup', '--source', SOURCE, '--engine', Engine.POSTGRES, '--bucket', s3.bucket, '--recipient', key.recipient,
    '--host', primary.host, '--port', String(primary.port), '--user', primary.user, '--database', DATABASE, '--json']);
  expect({ code: dump.code, stderr: dump.code === 0 ? '' : dump.stderr }).toEqual({ code: 0, stderr: '' });
  const base = agentRun(['basebackup', '--source', SOURCE, '--bucket', s3.bucket, '--recipient', key.recipient,
    '--host', primary.host, '--port', String(primary.port), '--user', primary.user, '--json']);
  expect({ code: base.code, stderr: base.code === 0 ? '' : base.stderr }).toEqual({ code: 0, stderr: '' });
  ticks = await commitTicks(primary, DATABASE, 'ticks', 30, 50);
  await archiveCurrentWal(primary);
});

afterAll(async () => {
  for (const child of sidecars) if (child.exitCode === null) child.kill('SIGKILL');
  for (const data of servers) {
    try {
      runPg15('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
    } catch {
      // not running
    }
  }
  for (const dir of leftovers) rmSync(dir, { recursive: true, force: true });
  primary?.destroy();
  if (madeMountPoint) rmdirSync(PITR_MOUNT);
  await s3?.stop();
});

test('a point-in-time restore to a time between two ticks: recovered to the last commit by then, tables there, reported with pitr', async () => {
  // Given a target halfway between two ticks in the middle.
  const between = targetBetweenTicks(ticks);
  const { last } = between;
  const target = between.target.toISOString();

  // When the restore test runs with the sidecar's part played beside it.
  const { code, stderr, report, dir, port } = await restoreTest(['--pitr-to', target]);

  // Then it passed, and its report says what it recovered to and from what.
  expect({ code, failures: report.failures, stderr: code === 0 ? '' : stderr }).toEqual({ code: 0, failures: [], stderr: '' });
  expect(report.pitr).toMatchObject({ targetTime: target, baseBackupKey: report.key });
  expect(report.pitr!.baseBackupKey).toMatch(new RegExp(`^${SOURCE}/base/.*\\.tar\\.zst\\.age$`));
  expect(Math.abs(Date.parse(report.pitr!.recoveredTo) - last.committedAt)).toBeLessThanOrEqual(1);
  expect(report.pitr!.walFilesReplayed).toBeGreaterThanOrEqual(1);
  expect(report.pitr!.restoreSeconds).toBeGreaterThan(0);
  expect(report.durationSeconds).toBeGreaterThanOrEqual(report.pitr!.restoreSeconds);
  expect(report.tables.map((t) => [t.table, t.passed])).toEqual([['public.ticks', true], ['sales.orders', true]]);
  expect(report.target).toBe(`${primary.user}@127.0.0.1:${port}/${DATABASE}`);

  // And the restored server holds every tick committed by the target and none after.
  const restored = await clusterQuery<{ id: number }>({ host: '127.0.0.1', port, user: primary.user }, DATABASE, 'SELECT id FROM ticks ORDER BY id');
  expect(restored.map((r) => r.id)).toEqual(between.kept);
  // The server, started by the sidecar's shell, holds none of the task's credentials.
  const postmaster = readFileSync(join(dir, PITR_TEST_FILES.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0];
  const environ = readFileSync(`/proc/${postmaster}/environ`, 'utf8').split('\0').filter(Boolean);
  expect(environ.map((v) => v.split('=')[0]).filter((name) => /^AWS_/.test(name))).toEqual([]);
  expect(environ).toContain(`PGDATA=${PITR_TEST_DIR}/${PITR_TEST_FILES.dataDir}`);
  // The server read its settings from the test's own file; the base backup's are set aside.
  expect(readFileSync(join(dir, PITR_TEST_FILES.config), 'utf8')).toContain("hot_standby = 'off'");
  const settingsFiles = readdirSync(join(dir, PITR_TEST_FILES.dataDir)).filter((f) => /^(postgresql(\.auto)?\.conf|pg_hba\.conf|pg_ident\.conf)/.test(f));
  expect(settingsFiles.length).toBeGreaterThan(0);
  expect(settingsFiles.filter((f) => !/\.from-(base-)?backup$/.test(f))).toEqual([]);

  // And restore-tests/latest.json carries the pitr that status reads.
  const pointer = parseRestoreTestPointer((await s3.getText(restoreTestLatestKey(undefined, SOURCE)))!, 'latest.json');
  expect(pointer.pitr).toEqual(report.pitr);
});

test('a target past every archived commit fails the test, saying the server stopped short of it', async () => {
  const target = new Date(ticks[ticks.length - 1].committedAt + 5_000).toISOString();
  await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(target) - Date.now() + 100)));

  const { code, report } = await restoreTest(['--pitr-to', target]);

  expect(code).toBe(1);
  expect(report.success).toBe(false);
  expect(report.pitr).toBeUndefined();
  expect(report.failures.join('\n')).toContain(`the restored server did not recover (no transaction in the archive committed after ${target}: ` +
    'for a source that may commit nothing for longer than 60 s, test with --pitr-to latest, pointInTimeTarget \'latest\' in RestoreTesting): ');
  expect(report.failures.join('\n')).toMatch(/the restored server stopped: .*FATAL: {2}recovery ended before configured recovery target was reached/);
});

test('--pitr-to latest recovers everything archived: every tick is there, and the report says the last commit', async () => {
  const { code, report, port } = await restoreTest(['--pitr-to', 'latest']);

  expect({ code, failures: report.failures }).toEqual({ code: 0, failures: [] });
  expect(report.pitr!.targetTime).toBe('latest');
  expect(Math.abs(Date.parse(report.pitr!.recoveredTo) - ticks[ticks.length - 1].committedAt)).toBeLessThanOrEqual(1);
  const restored = await clusterQuery<{ n: string }>({ host: '127.0.0.1', port, user: primary.user }, DATABASE, 'SELECT count(*) AS n FROM ticks');
  expect(Number(restored[0].n)).toBe(ticks.length);
});
