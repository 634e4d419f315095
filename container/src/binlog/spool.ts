/**
 * The binlog streamer's spool: `live/`, where mariadb-binlog writes the server's files under their own names
 * (--result-file=live/), and `state.json`, what the streamer last stored. The spool outlives the task (EFS in AWS), so
 * that a new task first stores what an earlier one left, then resumes from the newest file it holds.
 *
 * A file is closed once the next one exists in live/; the newest is the one mariadb-binlog writes (from its start,
 * whenever it starts again on it).
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BINLOG_FILE_PATTERN, BINLOG_STREAM_PATTERN, binlogSequence } from '../../../lib/contract';
import { AgentError } from '../shared/errors';
import { publishFile } from '../wal/files';

export const SPOOL_STATE_FILE = 'state.json';
export const SPOOL_LIVE_DIR = 'live';
const STATE_VERSION = 1;

/** What the streamer stored last: the stream it is on, and the newest object of it (a file, up to `bytes`). */
export interface BinlogSpoolState {
  readonly formatVersion: number;
  readonly stream: string;
  readonly serverId: number;
  readonly serverVersion: string;
  /** The newest file stored (whole or in part); the first file of the stream before anything is stored. */
  readonly file: string;
  /** How much of it is stored: 0 before anything is. */
  readonly bytes: number;
  /** Its format description's time (Unix seconds), once stored: a re-fetched file with another is another file. */
  readonly created?: number;
  /** SHA-256 of its stored bytes after the format description: a re-fetched copy must begin with the same. */
  readonly afterFormatSha256?: string;
}

export function liveDir(spool: string): string {
  return join(spool, SPOOL_LIVE_DIR);
}

/** The binlog files in live/, in the server's order (by sequence number). */
export function spoolFiles(spool: string): string[] {
  mkdirSync(liveDir(spool), { recursive: true, mode: 0o700 });
  return readdirSync(liveDir(spool)).filter((n) => BINLOG_FILE_PATTERN.test(n)).sort((a, b) => binlogSequence(a) - binlogSequence(b));
}

/** Empties live/ (a new stream starts from the server's oldest file). */
export function clearLive(spool: string): void {
  rmSync(liveDir(spool), { recursive: true, force: true });
  mkdirSync(liveDir(spool), { recursive: true, mode: 0o700 });
}

/** The state, or undefined for a spool without one. A state that does not read is refused in words. */
export function readSpoolState(spool: string): BinlogSpoolState | undefined {
  const path = join(spool, SPOOL_STATE_FILE);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new AgentError(`could not read the spool's state ${path}: ${(err as Error).message}`);
  }
  let s: Partial<BinlogSpoolState>;
  try {
    s = JSON.parse(text) as Partial<BinlogSpoolState>;
  } catch {
    s = {};
  }
  const count = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  if (s.formatVersion !== STATE_VERSION || typeof s.stream !== 'string' || !BINLOG_STREAM_PATTERN.test(s.stream) || !count(s.serverId) ||
    typeof s.file !== 'string' || !BINLOG_FILE_PATTERN.test(s.file) || !count(s.bytes) || typeof s.serverVersion !== 'string' ||
    (s.created !== undefined && !count(s.created)) || (s.afterFormatSha256 !== undefined && !/^[0-9a-f]{64}$/.test(s.afterFormatSha256))) {
    throw new AgentError(`the spool's state ${path} does not read as the streamer's: remove it (and ${liveDir(spool)}) to start a new stream ` +
      'from the server\'s oldest binlog, which the monitoring reports as a gap until the next dump');
  }
  return s as BinlogSpoolState;
}

export function writeSpoolState(spool: string, state: Omit<BinlogSpoolState, 'formatVersion'>): BinlogSpoolState {
  const full: BinlogSpoolState = { formatVersion: STATE_VERSION, ...state };
  const tmp = join(spool, `${SPOOL_STATE_FILE}.tmp`);
  writeFileSync(tmp, `${JSON.stringify(full, null, 2)}\n`, { mode: 0o600 });
  publishFile(tmp, join(spool, SPOOL_STATE_FILE));
  return full;
}
