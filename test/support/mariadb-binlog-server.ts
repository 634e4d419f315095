/**
 * MariaDB servers with binary logging, for binlog streaming and point-in-time tests.
 *
 * - BINLOG_MARIADB: the services' binlog server (scripts/services.sh: 127.0.0.1:3307, log_bin, ROW, server_id 1,
 *   16 MiB files). Shared by every test file: write into a database of your own, never restart, purge or reset it.
 * - startThrowawayMariadb(): a mariadbd of the installed binaries in a directory of its own, on a free port, for tests
 *   that kill, restart, purge or reset a server, or need other settings (another server_id, STATEMENT format, no
 *   log_bin). As root the server runs as the mysql user. Its data directory is copied from one mariadb-install-db run
 *   per process, so a server starts in about a second.
 *
 * Every server has the login restorable / restorable with all privileges (over 127.0.0.1 and the socket). The
 * password reaches the client in MYSQL_PWD, never in its arguments.
 */
import { ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort } from './net';

export interface MariadbAddress {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
}

/** The services' binlog server and where it keeps its binlog files (readable by root). */
export const BINLOG_MARIADB: MariadbAddress & { readonly dataDir: string; readonly binlogBasename: string } = {
  host: '127.0.0.1',
  port: Number(process.env.RESTORABLE_BINLOG_PORT ?? 3307),
  user: 'restorable',
  password: 'restorable',
  dataDir: join(process.env.RESTORABLE_BINLOG_DIR ?? '/var/lib/restorable-mariadb-binlog', 'data'),
  binlogBasename: 'binlog',
};

const MARIADBD = process.env.RESTORABLE_MARIADBD ?? '/usr/sbin/mariadbd';
const AS_ROOT = userInfo().uid === 0;
const CLIENT_TIMEOUT_MS = 120_000;

function clientArgs(server: MariadbAddress, database: string | undefined): string[] {
  return ['--no-defaults', '--protocol=tcp', '-h', server.host, '-P', String(server.port), '-u', server.user, '--batch', '--skip-column-names',
    ...(database ? [database] : [])];
}

function rows(stdout: string): string[][] {
  return stdout.split('\n').filter((l) => l !== '').map((l) => l.split('\t'));
}

/** Runs SQL on a server with the mariadb client; returns the batch output rows. */
export function mariadbExec(server: MariadbAddress, database: string | undefined, sql: string): string[][] {
  const result = spawnSync('mariadb', clientArgs(server, database), {
    input: sql, encoding: 'utf8', env: { ...process.env, MYSQL_PWD: server.password }, maxBuffer: 64 * 1024 * 1024, timeout: CLIENT_TIMEOUT_MS,
  });
  if (result.status !== 0) {
    throw new Error(`mariadb on port ${server.port} failed (for the services' binlog server, run 'npm run services'): ${result.stderr || result.error?.message}`);
  }
  return rows(result.stdout);
}

/** mariadbExec without blocking the event loop (for tests that run a ticker or read an agent's output meanwhile). */
export function mariadbExecAsync(server: MariadbAddress, database: string | undefined, sql: string): Promise<string[][]> {
  const child = spawn('mariadb', clientArgs(server, database), { env: { ...process.env, MYSQL_PWD: server.password }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
  child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
  child.stdin.end(sql);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(rows(stdout)) : reject(new Error(`mariadb on port ${server.port} failed: ${stderr}`))));
  });
}

export interface BinaryLog {
  readonly name: string;
  readonly size: number;
}

/** The server's binlog files, oldest first (SHOW BINARY LOGS). */
export function showBinaryLogs(server: MariadbAddress): BinaryLog[] {
  return mariadbExec(server, undefined, 'SHOW BINARY LOGS').map(([name, size]) => ({ name, size: Number(size) }));
}

/** Makes a database of its own on a binlog server (dropping one of that name first). */
export function createBinlogDatabase(server: MariadbAddress, database: string): void {
  mariadbExec(server, undefined, `DROP DATABASE IF EXISTS \`${database}\`; CREATE DATABASE \`${database}\` CHARACTER SET utf8mb4;`);
}

export interface ThrowawayMariadbOptions {
  /** server_id (default 1). */
  readonly serverId?: number;
  /** Binary logging on (default true), with the basename `binlog` in the data directory. */
  readonly logBin?: boolean;
  /** max_binlog_size in bytes (default 16 MiB). */
  readonly maxBinlogSize?: number;
  /** More server settings, as in my.cnf (`binlog_format: 'STATEMENT'`); they override the defaults. */
  readonly settings?: Readonly<Record<string, string>>;
}

export interface ThrowawayMariadb extends MariadbAddress {
  /** The directory that holds everything: my.cnf, data/, the socket and the error log. */
  readonly dir: string;
  readonly dataDir: string;
  readonly socket: string;
  readonly serverId: number;
  readonly binlogBasename: string;
  /** The running server's process id, if it runs. */
  pid(): number | undefined;
  /** The server's error log so far. */
  log(): string;
  exec(sql: string, database?: string): string[][];
  execAsync(sql: string, database?: string): Promise<string[][]>;
  /** Starts the server (again) on the same port and data directory; resolves once it answers. */
  start(): Promise<void>;
  /** Shuts the server down cleanly (SIGTERM) and waits for it to exit. */
  stop(): Promise<void>;
  /** SIGKILLs the server: what it had not written is lost, as in a crash. */
  kill(): Promise<void>;
  restart(): Promise<void>;
  /** Kills the server and removes its directory. */
  destroy(): Promise<void>;
}

function ownByServer(path: string): void {
  if (!AS_ROOT) return;
  execFileSync('chown', ['-R', 'mysql:mysql', path]);
}

let template: string | undefined;

/** One freshly installed data directory per process, copied for each server. */
function templateDataDir(): string {
  if (template && existsSync(join(template, 'data', 'mysql'))) return join(template, 'data');
  const dir = mkdtempSync(join(tmpdir(), 'restorable-mariadb-template-'));
  // A tmpdir of its own: a server starting removes every '#sql' temporary file in its tmpdir, another's included.
  mkdirSync(join(dir, 'tmp'));
  ownByServer(dir);
  const result = spawnSync('mariadb-install-db', ['--no-defaults', `--user=${AS_ROOT ? 'mysql' : userInfo().username}`, `--datadir=${join(dir, 'data')}`, `--tmpdir=${join(dir, 'tmp')}`,
    '--auth-root-authentication-method=normal', '--skip-test-db', '--innodb-log-file-size=16M'], { encoding: 'utf8', timeout: CLIENT_TIMEOUT_MS });
  if (result.status !== 0) throw new Error(`mariadb-install-db failed: ${result.stderr || result.stdout || result.error?.message}`);
  template = dir;
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'data');
}

function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => { clearTimeout(timer); resolve(true); });
  });
}

/** Starts a throwaway binlog server: see the top of this file. Call destroy() in afterAll. */
export async function startThrowawayMariadb(options: ThrowawayMariadbOptions = {}): Promise<ThrowawayMariadb> {
  const serverId = options.serverId ?? 1;
  const dir = mkdtempSync(join(tmpdir(), 'restorable-mariadb-'));
  chmodSync(dir, 0o700);
  const dataDir = join(dir, 'data');
  execFileSync('cp', ['-a', templateDataDir(), dataDir]);
  const socket = join(dir, 'mysqld.sock');
  const errorLog = join(dir, 'error.log');
  writeFileSync(errorLog, '');
  mkdirSync(join(dir, 'tmp'));
  const port = await freePort();
  const settings: Record<string, string> = {
    datadir: dataDir, tmpdir: join(dir, 'tmp'), socket, 'pid-file': join(dir, 'mysqld.pid'), 'log-error': errorLog, port: String(port), 'bind-address': '127.0.0.1',
    'skip-name-resolve': '', server_id: String(serverId), binlog_format: 'ROW', binlog_row_image: 'FULL',
    max_binlog_size: String(options.maxBinlogSize ?? 16 * 1024 * 1024), innodb_buffer_pool_size: '64M', innodb_log_file_size: '16M',
    'character-set-server': 'utf8mb4', 'collation-server': 'utf8mb4_general_ci',
    ...(options.logBin === false ? {} : { log_bin: 'binlog' }), ...(AS_ROOT ? { user: 'mysql' } : {}), ...options.settings,
  };
  const lines = Object.entries(settings).map(([k, v]) => (v === '' ? k : `${k} = ${v}`));
  writeFileSync(join(dir, 'my.cnf'), `[mariadbd]\n${lines.join('\n')}\n`);
  ownByServer(dir);

  const root: MariadbAddress = { host: 'localhost', port, user: 'root', password: '' };
  const rootPing = () => spawnSync('mariadb-admin', ['--no-defaults', '-u', 'root', `--socket=${socket}`, '--connect-timeout=2', 'ping'], { encoding: 'utf8', timeout: 10_000 }).status === 0;
  let child: ChildProcess | undefined;

  const server: ThrowawayMariadb = {
    host: '127.0.0.1', port, user: 'restorable', password: 'restorable', dir, dataDir, socket, serverId, binlogBasename: 'binlog',
    pid: () => (child && child.exitCode === null && child.signalCode === null ? child.pid : undefined),
    log: () => { try { return readFileSync(errorLog, 'utf8'); } catch { return ''; } },
    exec: (sql, database) => mariadbExec(server, database, sql),
    execAsync: (sql, database) => mariadbExecAsync(server, database, sql),
    start: async () => {
      if (server.pid()) throw new Error(`the MariaDB on port ${port} is already running`);
      const started = spawn(MARIADBD, [`--defaults-file=${join(dir, 'my.cnf')}`], { stdio: 'ignore' });
      child = started;
      const deadline = Date.now() + 60_000;
      while (!rootPing()) {
        if (started.exitCode !== null || started.signalCode !== null) throw new Error(`the MariaDB on port ${port} exited at start: ${server.log().slice(-2000)}`);
        if (Date.now() > deadline) throw new Error(`the MariaDB on port ${port} did not answer within 60 s: ${server.log().slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    stop: async () => {
      if (!server.pid()) return;
      child!.kill('SIGTERM');
      if (!(await waitForExit(child!, 60_000))) {
        child!.kill('SIGKILL');
        await waitForExit(child!, 10_000);
      }
    },
    kill: async () => {
      if (!server.pid()) return;
      child!.kill('SIGKILL');
      await waitForExit(child!, 10_000);
    },
    restart: async () => {
      await server.stop();
      await server.start();
    },
    destroy: async () => {
      await server.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };

  await server.start();
  const rootSql = (sql: string) => {
    const result = spawnSync('mariadb', ['--no-defaults', '-u', root.user, `--socket=${socket}`], { input: sql, encoding: 'utf8', timeout: CLIENT_TIMEOUT_MS });
    if (result.status !== 0) throw new Error(`creating the test login on the MariaDB on port ${port} failed: ${result.stderr}`);
  };
  try {
    rootSql(`CREATE USER 'restorable'@'127.0.0.1' IDENTIFIED BY 'restorable'; CREATE USER 'restorable'@'localhost' IDENTIFIED BY 'restorable';
      GRANT ALL PRIVILEGES ON *.* TO 'restorable'@'127.0.0.1' WITH GRANT OPTION; GRANT ALL PRIVILEGES ON *.* TO 'restorable'@'localhost' WITH GRANT OPTION;`);
  } catch (err) {
    await server.destroy();
    throw err;
  }
  return server;
}
