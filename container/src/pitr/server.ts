/**
 * The restored server, for `restore --to … --port N`: started as pg_ctl starts it, with the server program of the source's major version, watched
 * through its own log until recovery ends and it accepts connections, and read for what it recovered to. The agent
 * image holds PostgreSQL clients only: a server comes from --pg-bin (locally the installed server, in AWS a sidecar of
 * the source's version).
 */
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { majorOf } from '../engines/postgres';
import { AgentError } from '../shared/errors';
import { log } from '../shared/log';
import { findOnPath } from '../shared/tools';

/** The server program of the source's major version: from `pgBin`, else on PATH; a clear error when there is none or another version. */
export function serverControl(pgBin: string | undefined, serverVersion: string): string {
  const postgres = pgBin ? join(pgBin, 'postgres') : findOnPath('postgres');
  if (!postgres || !existsSync(postgres)) {
    throw new AgentError(`no PostgreSQL server to start: ${pgBin ? `${pgBin} holds no postgres program` : 'postgres is not on PATH'}. The agent image holds ` +
      `clients only: give --pg-bin with the bin directory of a PostgreSQL ${serverVersion} server, or leave out --port and start ` +
      'the restored data directory with such a server yourself (it then recovers on its own)');
  }
  const version = spawnSync(postgres, ['--version'], { encoding: 'utf8' });
  const said = `${version.stdout ?? ''}`.trim();
  if (version.status !== 0 || majorOf(said) !== majorOf(serverVersion)) {
    throw new AgentError(`the base backup is of PostgreSQL ${serverVersion}, but ${postgres} ${version.status === 0 ? `is ${said}` : 'does not run'}: ` +
      `a data directory opens only with a server of its own major version; give --pg-bin with a PostgreSQL ${serverVersion} bin directory`);
  }
  return postgres;
}

export interface Recovered {
  /** The commit time of the last transaction replayed, as the server logged it, in ISO 8601 UTC; undefined when none was. */
  readonly recoveredTo?: string;
  /** WAL segments the server restored through restore_command. */
  readonly walFilesReplayed: number;
}

/** `2026-12-02 13:00:00.12345+00` (timestamptz_to_str) → `2026-12-02T13:00:00.123450Z`, always with six digits of microseconds. */
export function logTimeToIso(text: string): string | undefined {
  const m = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(\.\d+)?([+-])(\d{2})(?::?(\d{2}))?(?::\d{2})?$/.exec(text.trim());
  if (!m) return undefined;
  const [, day, time, fraction = '', sign, hours, minutes = '00'] = m;
  const offsetMs = (sign === '+' ? 1 : -1) * (Number(hours) * 60 + Number(minutes)) * 60_000;
  const utc = new Date(Date.parse(`${day}T${time}Z`) - offsetMs);
  // The server drops trailing zeros of the microseconds; written out whole, times compare as strings.
  return `${utc.toISOString().slice(0, 19)}.${fraction.slice(1).padEnd(6, '0')}Z`;
}

/** Reads what a finished recovery says in the server's log. */
export function readRecovery(logText: string): Recovered {
  const last = [...logText.matchAll(/last completed transaction was at log time (\d{4}-\d{2}-\d{2} [0-9:.]+[+-][0-9:]+)/g)].pop();
  const restored = new Set([...logText.matchAll(/restored log file "([0-9A-F]{24})" from archive/g)].map((m) => m[1]));
  return { recoveredTo: last ? logTimeToIso(last[1]) : undefined, walFilesReplayed: restored.size };
}

const tail = (text: string) => text.split('\n').slice(-25).join('\n');

/**
 * The restored server's whole environment: a search path and nothing else. The agent's own holds AWS credentials
 * (variables, or the container's credential endpoint) and the identity's secret id; the server replays backup
 * content and runs restore_command, and must reach none of them.
 */
export function serverEnvironment(): NodeJS.ProcessEnv {
  return { PATH: '/usr/local/bin:/usr/bin:/bin' };
}

export async function startAndAwaitRecovery(postgres: string, dataDir: string, logFile: string, failed: () => Error | undefined): Promise<Recovered> {
  // As pg_ctl starts it: in a session of its own, its output to the log, outliving the agent.
  const logFd = openSync(logFile, 'a', 0o600);
  const server = spawn(postgres, ['-D', dataDir], { detached: true, stdio: ['ignore', logFd, logFd], env: serverEnvironment() });
  closeSync(logFd);
  let exited: string | undefined;
  server.on('exit', (code, signal) => { exited = signal ? `was stopped by ${signal}` : `exited with code ${code}`; });
  server.on('error', (err) => { exited = `could not start (${err.message})`; });
  server.unref();
  log.info('restored server started; recovering', { dataDir, logFile, pid: server.pid });
  const readLog = () => { try { return readFileSync(logFile, 'utf8'); } catch { return ''; } };
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    const text = readLog();
    if (/database system is ready to accept connections/.test(text)) return readRecovery(text);
    const problem = failed();
    if (exited || problem) {
      if (!exited) server.kill('SIGQUIT');
      throw new AgentError(`${problem ? `${problem.message}; ` : ''}the restored server ${exited ?? 'was stopped'} before recovery ended. ` +
        `Its log (${logFile}) ends:\n${tail(text)}`);
    }
  }
}
