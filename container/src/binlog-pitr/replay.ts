/**
 * The replay itself: one mariadb-binlog over every verified file, from the dump's position in the first to the stop
 * position in the last, only the dumped database's events (renamed when the restore goes into another database),
 * with TZ=UTC (its output then never depends on the host's zone), piped into the MariaDB client in sandbox and binary
 * mode as the replaying account (MysqlSession.planBinlogReplay). The client reads from its stdin only; mariadb-binlog
 * reads local files only and no option file.
 *
 * Both children get an environment made for them (PATH, an empty 0700 HOME, TZ=UTC, LANG=C), never the agent's: that
 * holds the task's credentials URI or an operator's AWS keys, and mariadb-binlog is a C parser fed bytes the least
 * trusted writer chose. The client's password is in its 0600 option file, as for every other client run.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentError } from '../shared/errors';
import { log } from '../shared/log';
import { ProcessPipeline, StageSpec, isolatedEnv } from '../shared/pipeline';

export interface ReplayRange {
  /** The verified files, in order. */
  readonly paths: readonly string[];
  /** The position in the first file replay starts at. */
  readonly from: number;
  /** The position in the last file replay stops before. */
  readonly to: number;
  /** The database the binlog names (the dump's), and the one the restore writes (the same, or another name). */
  readonly sourceDatabase: string;
  readonly targetDatabase: string;
}

/** mariadb-binlog's arguments for a range: --database names the source's database (MariaDB 10.11 filters before it renames). */
export function binlogArgs(range: ReplayRange): string[] {
  const rename = range.sourceDatabase === range.targetDatabase ? [] : [`--rewrite-db=${range.sourceDatabase}->${range.targetDatabase}`];
  return ['--no-defaults', `--start-position=${range.from}`, `--stop-position=${range.to}`, `--database=${range.sourceDatabase}`, ...rename, ...range.paths];
}

export function binlogStage(range: ReplayRange, home: string): StageSpec {
  return { name: 'mariadb-binlog', command: 'mariadb-binlog', args: binlogArgs(range), env: isolatedEnv(home) };
}

/** Replays the range through `client`; throws in words when either side fails (the target then holds part of it). */
export async function replayBinlogs(range: ReplayRange, client: StageSpec): Promise<number> {
  if (range.paths.length === 0 || (range.paths.length === 1 && range.to <= range.from)) return 0;
  const started = Date.now();
  const home = mkdtempSync(join(tmpdir(), 'restorable-replay-home-'));
  const pipeline = new ProcessPipeline([binlogStage(range, home), { ...client, env: isolatedEnv(home) }]);
  try {
    await pipeline.done;
  } catch (err) {
    throw new AgentError(`replaying the binlogs failed: ${(err as Error).message}\nThe target holds the dump and part of the binlogs: do not ` +
      'trust it. Drop it and restore again (a query the replaying account may not run, a BINLOG statement refused, or a server that stopped are the usual causes)');
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
  const seconds = (Date.now() - started) / 1000;
  log.info('binlogs replayed', { files: range.paths.length, from: range.from, to: range.to, seconds });
  return seconds;
}
