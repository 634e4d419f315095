/**
 * The external programs the agent drives, where to find them and how to tell a person to install them.
 */
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { AgentError } from './errors';

const INSTALL_HINTS: Record<string, string> = {
  zstd: 'install zstd (Debian/Ubuntu: apt-get install zstd)',
  age: 'install age 1.1 or later (Debian/Ubuntu: apt-get install age)',
  pg_dump: 'install the PostgreSQL client tools of the server\'s major version (Debian/Ubuntu: apt-get install postgresql-client-NN)',
  pg_dumpall: 'install the PostgreSQL client tools of the server\'s major version (Debian/Ubuntu: apt-get install postgresql-client-NN)',
  pg_restore: 'install the PostgreSQL client tools of the server\'s major version (Debian/Ubuntu: apt-get install postgresql-client-NN)',
  mysqldump: 'install the MariaDB or MySQL client (Debian/Ubuntu: apt-get install mariadb-client)',
  mysql: 'install the MariaDB or MySQL client (Debian/Ubuntu: apt-get install mariadb-client)',
  mongodump: 'install the MongoDB Database Tools 100.10 (https://www.mongodb.com/try/download/database-tools; Debian/Ubuntu: the mongodb-database-tools package)',
  mongorestore: 'install the MongoDB Database Tools 100.10 (https://www.mongodb.com/try/download/database-tools; Debian/Ubuntu: the mongodb-database-tools package)',
};

export function installHint(command: string): string {
  return INSTALL_HINTS[command] ?? `install ${command}`;
}

/** The absolute path of a program on PATH, or undefined. */
export function findOnPath(command: string, path = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/** Fails before any work starts when a program the job needs is missing, naming each and how to install it. */
export function requireTools(commands: readonly string[]): void {
  const missing = commands.filter((command) => !findOnPath(command));
  if (missing.length) {
    throw new AgentError(missing.map((command) => `${command} was not found on PATH: ${installHint(command)}`).join('\n'));
  }
}

/** The first line of `command --version` (or the given flag), for the manifest. */
export function toolVersion(command: string, flag = '--version'): string {
  const result = spawnSync(command, [flag], { encoding: 'utf8', timeout: 10_000 });
  if (result.error || result.status !== 0) {
    throw new AgentError(`could not run '${command} ${flag}': ${result.error?.message ?? result.stderr.trim()}; ${installHint(command)}`);
  }
  return `${result.stdout}${result.stderr}`.trim().split('\n')[0];
}

/** Runs a program to completion with no stdin and returns its exit code and output. */
export function capture(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
  });
}
