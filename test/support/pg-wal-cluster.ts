/**
 * A throwaway PostgreSQL 15 cluster of the installed server binaries (the version the local service runs), for tests
 * of physical backups and WAL: archive_command and restore_command run as the server runs them, with the environment
 * the cluster was started with. initdb refuses to run as root, so as root the cluster runs as the postgres user, in a
 * directory of its own; a file it must read (an age identity) is copied in with copyIn().
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { ClusterAddress } from './pg-cluster';
import { freePort } from './net';

export const PG15_BIN = process.env.RESTORABLE_PG15_BIN ?? '/usr/lib/postgresql/15/bin';
const AS_ROOT = userInfo().uid === 0;
/** The longest a PostgreSQL program may run in a test before it is killed and the test fails. */
const PG15_COMMAND_TIMEOUT_MS = 120_000;

function postgresIds(): { uid: number; gid: number } {
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres']).toString().trim());
  return { uid: id('-u'), gid: id('-g') };
}

/** Runs a PostgreSQL program as the cluster's owner, with exactly `env` (plus PATH), and returns its stdout. */
export function runPg15(command: string, args: readonly string[], env: Record<string, string> = {}): string {
  const vars = Object.entries({ PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }).map(([k, v]) => `${k}=${v}`);
  const argv = ['-i', ...vars, join(PG15_BIN, command), ...args];
  try {
    // Bounded: pg_basebackup -X none, for one, waits for ever for WAL the archiver cannot store.
    const options = { stdio: 'pipe' as const, timeout: PG15_COMMAND_TIMEOUT_MS, killSignal: 'SIGKILL' as const };
    return AS_ROOT
      ? execFileSync('runuser', ['-u', 'postgres', '--', 'env', ...argv], options).toString()
      : execFileSync('env', argv, options).toString();
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    throw new Error(`${command} failed: ${e.stderr?.toString() ?? e.message}`);
  }
}

/** A directory the cluster's owner owns (0700). */
export function clusterOwnedDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (AS_ROOT) {
    const { uid, gid } = postgresIds();
    chownSync(dir, uid, gid);
  }
  chmodSync(dir, 0o700);
  return dir;
}

/**
 * The bundled agent where the cluster's owner can run it: a checkout may sit in a directory other users cannot enter
 * (CI proves the suite runs from one), and archive_command and restore_command run as the server's user.
 */
export function agentForCluster(bundle: string): string {
  return copyForCluster(clusterOwnedDir('restorable-agent-'), bundle, 'restorable.cjs');
}

/** Copies a file into a cluster's directory, readable by the cluster's owner alone (an age identity); returns the copy's path. */
export function copyForCluster(dir: string, path: string, name: string): string {
  const copy = join(dir, name);
  copyFileSync(path, copy);
  chmodSync(copy, 0o600);
  if (AS_ROOT) {
    const { uid, gid } = postgresIds();
    chownSync(copy, uid, gid);
  }
  return copy;
}

export interface Pg15Cluster extends ClusterAddress {
  /** The directory that holds the data directory, the socket, the log and copied-in files. */
  readonly dir: string;
  readonly data: string;
  /** The server's log so far. */
  log(): string;
  /** Copies a file into the cluster's directory, readable by its owner alone; returns the copy's path. */
  copyIn(path: string, name: string): string;
  start(): void;
  stop(mode?: 'fast' | 'immediate'): void;
  /** Stops the server (immediately) and removes everything. */
  destroy(): void;
}

export interface Pg15Options {
  /** Settings appended to postgresql.conf (values quoted as PostgreSQL wants them). */
  readonly settings?: Record<string, string>;
  /** The server's environment: what archive_command and restore_command see. */
  readonly env?: Record<string, string>;
  /** An existing data directory (a base backup) under `dir`, instead of initdb. */
  readonly from?: { readonly dir: string; readonly data: string };
}

function appendSettings(data: string, settings: Record<string, string>): void {
  const lines = Object.entries(settings).map(([name, value]) => `${name} = ${value}`);
  writeFileSync(join(data, 'postgresql.conf'), `${readFileSync(join(data, 'postgresql.conf'), 'utf8')}\n${lines.join('\n')}\n`);
}

/** Creates (initdb, superuser `restorable`, trust over loopback) or adopts a data directory, and starts it on a free port. */
export async function startPg15Cluster(options: Pg15Options = {}): Promise<Pg15Cluster> {
  const dir = options.from?.dir ?? clusterOwnedDir('restorable-pg15-');
  const data = options.from?.data ?? join(dir, 'data');
  if (!options.from) runPg15('initdb', ['-D', data, '-U', 'restorable', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  const port = await freePort();
  appendSettings(data, { port: String(port), listen_addresses: "'127.0.0.1'", unix_socket_directories: `'${dir}'`, ...options.settings });
  const logFile = join(dir, 'log');
  const cluster: Pg15Cluster = {
    host: '127.0.0.1', port, user: 'restorable', dir, data,
    log: () => { try { return readFileSync(logFile, 'utf8'); } catch { return ''; } },
    copyIn: (path, name) => copyForCluster(dir, path, name),
    start: () => { runPg15('pg_ctl', ['-D', data, '-l', logFile, '-w', '-t', '60', 'start'], options.env); },
    stop: (mode = 'fast') => { runPg15('pg_ctl', ['-D', data, '-m', mode, '-w', 'stop']); },
    destroy: () => {
      try {
        runPg15('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } catch {
        // not running
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
  cluster.start();
  return cluster;
}
