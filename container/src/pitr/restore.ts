/**
 * A point-in-time restore of a PostgreSQL source into a data directory: the newest base backup that finished before
 * the target (verified against its manifest as it is unpacked), recovery settings that stop at the target (or replay
 * everything, for the latest point) and promote, and the archived WAL fetched and verified by the agent into a local
 * directory while the server replays it (wal-feed.ts). The server never holds the identity or any credential: its
 * restore_command only copies from that directory. With a port, the server is started and watched until recovery
 * ended; the result says the exact commit time it recovered to. `restore --to` and the restore test both run this.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { sourceNameProblem } from '../../../lib/contract';
import { AgentError, UsageError } from '../shared/errors';
import { log } from '../shared/log';
import { requireTools } from '../shared/tools';
import { selectBaseBackup, unpackBaseBackup } from './select';
import { Recovered, serverControl, startAndAwaitRecovery } from './server';
import { WalFeed, planWal, restoreCommandFor, segmentBytes } from './wal-feed';

export const LATEST = 'latest';
const DEFAULT_LOOKAHEAD = 32;

export interface PitrOptions {
  readonly bucket: string;
  readonly prefix?: string;
  readonly source: string;
  /** `latest`, or an ISO 8601 time with its zone (up to microseconds), handed to PostgreSQL as written. */
  readonly to: string;
  /** Where the restored data directory goes: absent or empty. */
  readonly dataDir: string;
  /** Where fetched WAL waits for replay (absent or empty; default: the data directory's path + `.wal`). */
  readonly walDir?: string;
  /** An age identity file that opens the base backup and the WAL. */
  readonly identityFile: string;
  /** Called once nothing more needs decrypting (the WAL feed ended). */
  readonly dropIdentity?: () => void;
  /** Start the restored server on this port and wait until it recovered. */
  readonly port?: number;
  /** The bin directory of a server of the source's major version (default: pg_ctl on PATH). */
  readonly pgBin?: string;
  /** How far S3's clock may be behind the server's when WAL past the target is chosen (default 60 s). */
  readonly clockMarginSeconds?: number;
  /** WAL files fetched at once (default 4). */
  readonly concurrency?: number;
  /** With a port: how many WAL files past the one the server asked for last may wait on disk (default 32, 512 MiB of 16 MiB segments). */
  readonly lookahead?: number;
}

export interface PitrDeps {
  readonly s3: S3Client;
}

export interface PitrResult {
  readonly source: string;
  readonly bucket: string;
  readonly baseBackupKey: string;
  readonly baseBackupFinishedAt: string;
  /** `latest` or the target time as given. */
  readonly targetTime: string;
  /** The commit time of the last transaction replayed (ISO 8601 UTC, to the microsecond: six digits); with a port only. */
  readonly recoveredTo?: string;
  /** WAL files the agent fetched and verified. */
  readonly walFilesFetched: number;
  /** WAL segments the server replayed from them (with a port). */
  readonly walFilesReplayed?: number;
  /** The received partial put in place as the last segment, when the archive ended with one. */
  readonly receivedPartial?: string;
  /** From the first S3 request until the server accepted connections (or the WAL was fetched, without a port). */
  readonly restoreSeconds: number;
  readonly dataDir: string;
  readonly walDir: string;
  /** The restored server's port and log, when it was started (it is left running). */
  readonly port?: number;
  readonly serverLog?: string;
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$/;
/** Characters a path may not have: it is written into a shell script and into a PostgreSQL setting. */
const UNSAFE_PATH = /['"\\$`\n\r]/;

/** The target time, or undefined for the latest point; a UsageError for anything else. */
export function parseTarget(to: string, now: Date = new Date()): Date | undefined {
  if (to === LATEST) return undefined;
  const at = new Date(to);
  if (!ISO_TIME.test(to) || Number.isNaN(at.getTime())) {
    throw new UsageError(`--to must be 'latest' or an ISO 8601 time with its zone, such as 2026-12-02T13:45:00Z or 2026-12-02T14:45:00.250+01:00 (got '${to}')`);
  }
  if (at.getTime() > now.getTime()) throw new UsageError(`--to ${to} is in the future (it is ${now.toISOString()}): give a past time, or 'latest'`);
  return at;
}

function emptyDirectory(path: string, what: string): string {
  const dir = resolve(path);
  if (UNSAFE_PATH.test(dir)) throw new UsageError(`${what} ${dir} has a quote, backslash, '$', backquote or line break: choose a plainer path`);
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    throw new UsageError(`${what} ${dir} is not empty: a restore goes into an empty or new directory, so that nothing of another cluster mixes in`);
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  return dir;
}

/**
 * Writes a file of the restore's own into the data directory: whatever is at the path (a link a base backup brought)
 * is removed first, and the file is created new ('wx'), so that no link is ever followed.
 */
function writeNew(path: string, text: string, options: { mode?: number } = {}): void {
  rmSync(path, { force: true });
  writeFileSync(path, text, { flag: 'wx', mode: options.mode ?? 0o600 });
}

/** The base backup's settings files that can run a program or load a library: set aside unread, under this suffix. */
const SET_ASIDE = ['postgresql.conf', 'postgresql.auto.conf', 'pg_hba.conf', 'pg_ident.conf'];
export const SET_ASIDE_SUFFIX = '.from-base-backup';

/**
 * The restored server's configuration. The base backup's postgresql.conf and postgresql.auto.conf are untrusted input
 * (a setting such as recovery_end_command runs a program as the server's user, which could read the identity while
 * WAL is still being fetched): they are set aside as `*.from-base-backup` for a person to merge back, and the server
 * gets a configuration of its own with what recovery needs. Its authentication rules (pg_hba.conf, pg_ident.conf) are
 * set aside too: a forged `host all all 127.0.0.1/32 trust` would let every local user in as a superuser. Without a
 * port the server gets `local all all peer` (the operating-system user of the same name only); with a port, started
 * here, it listens on no TCP address, only on a socket in the WAL directory, which is its owner's alone (0700), and
 * admits whoever reaches that socket: the restoring user (and root).
 */
export function writeServerConfig(dataDir: string, walDir: string, to: string, port: number | undefined): void {
  for (const file of SET_ASIDE) {
    if (existsSync(resolve(dataDir, file))) renameSync(resolve(dataDir, file), resolve(dataDir, `${file}${SET_ASIDE_SUFFIX}`));
  }
  const settings: Record<string, string> = {
    restore_command: restoreCommandFor(walDir),
    // PostgreSQL reads `2026-12-02 13:45:00.250+00`, not ISO 8601's T and Z.
    ...(to === LATEST ? {} : { recovery_target_time: to.replace('T', ' ').replace(/Z$/, '+00') }),
    recovery_target_action: 'promote',
    recovery_target_timeline: 'latest',
    // The copy must never archive into the source's archive. No hot standby: the source's connection limits then need
    // not be matched, and the server opens once it has promoted.
    archive_mode: 'off',
    hot_standby: 'off',
    // A restored subscriber must not connect to its publisher and take changes meant for the source.
    max_logical_replication_workers: '0',
    ...(port !== undefined ? { port: String(port), listen_addresses: '', unix_socket_directories: walDir, unix_socket_permissions: '0700' } : {}),
  };
  const lines = Object.entries(settings).map(([name, value]) => `${name} = '${value.replace(/'/g, "''")}'`);
  writeNew(resolve(dataDir, 'postgresql.conf'), `# Written by restorable restore: point-in-time recovery to ${to}. The base backup's own ` +
    `settings are in ${SET_ASIDE.map((f) => `${f}${SET_ASIDE_SUFFIX}`).join(' and ')}, unread.\n${lines.join('\n')}\n`, { mode: 0o600 });
  const hba = port !== undefined ? 'local all all trust' : 'local all all peer';
  writeNew(resolve(dataDir, 'pg_hba.conf'), `# Written by restorable restore: the base backup's own rules are in pg_hba.conf${SET_ASIDE_SUFFIX}, unread.\n${hba}\n`, { mode: 0o600 });
  writeNew(resolve(dataDir, 'pg_ident.conf'), '', { mode: 0o600 });
  rmSync(resolve(dataDir, 'standby.signal'), { force: true });
  writeNew(resolve(dataDir, 'recovery.signal'), '');
}

export async function runPitrRestore(options: PitrOptions, deps: PitrDeps): Promise<PitrResult> {
  const nameProblem = sourceNameProblem(options.source);
  if (nameProblem) throw new UsageError(nameProblem);
  const target = parseTarget(options.to);
  requireTools(['age', 'zstd', 'tar']);
  const started = Date.now();
  const choice = await selectBaseBackup(deps.s3, options.bucket, options.prefix, options.source, target);
  const postgres = options.port !== undefined ? serverControl(options.pgBin, choice.manifest.serverVersion) : undefined;
  const dataDir = emptyDirectory(options.dataDir, 'the data directory');
  const walDir = emptyDirectory(options.walDir ?? `${dataDir}.wal`, 'the WAL directory');
  await unpackBaseBackup(deps.s3, options.bucket, choice, options.identityFile, dataDir);
  writeServerConfig(dataDir, walDir, options.to, options.port);

  const margin = (options.clockMarginSeconds ?? 60) * 1000;
  const plan = await planWal(deps.s3, options.bucket, options.prefix, options.source, choice.manifest.startWalFile,
    target ? new Date(target.getTime() + margin) : undefined);
  // With a server replaying as it goes, a bounded window of WAL waits on disk; without one, all of it must be there.
  const feed = new WalFeed(deps.s3, options.bucket, plan, walDir, options.identityFile, segmentBytes(dataDir, choice.manifest.endWalFile),
    options.concurrency ?? 4, postgres ? options.lookahead ?? DEFAULT_LOOKAHEAD : Infinity);
  let feedError: Error | undefined;
  feed.done.catch((err: Error) => { feedError = err; });
  const receivedPartial = plan.find((p) => p.receivedPartial)?.key;
  let recovered: Recovered | undefined;
  let fetched: number;
  try {
    if (postgres) {
      const serverLog = resolve(walDir, 'server.log');
      recovered = await startAndAwaitRecovery(postgres, dataDir, serverLog, () => feedError);
      // Out of recovery: the server asks for no more WAL.
      feed.stop();
    }
    fetched = (await feed.done).fetched;
  } catch (err) {
    feed.stop();
    throw feedError && err !== feedError
      ? new AgentError(`fetching WAL failed, so recovery stopped short: ${feedError.message}\n${(err as Error).message}`)
      : err;
  } finally {
    options.dropIdentity?.();
  }
  if (postgres) feed.removeFetched();
  const restoreSeconds = (Date.now() - started) / 1000;
  const result: PitrResult = {
    source: options.source, bucket: options.bucket, baseBackupKey: choice.key, baseBackupFinishedAt: choice.manifest.finishedAt,
    targetTime: options.to, recoveredTo: recovered?.recoveredTo, walFilesFetched: fetched, walFilesReplayed: recovered?.walFilesReplayed,
    receivedPartial, restoreSeconds, dataDir, walDir,
    ...(postgres ? { port: options.port, serverLog: resolve(walDir, 'server.log') } : {}),
  };
  log.info('point-in-time restore finished', { ...result });
  return result;
}

export function formatPitrResult(r: PitrResult): string {
  const from = `from the base backup s3://${r.bucket}/${r.baseBackupKey} (finished ${r.baseBackupFinishedAt}) and ${r.walFilesFetched} WAL files, each verified`;
  const partial = r.receivedPartial ? `, the last a received partial (${r.receivedPartial})` : '';
  if (r.port === undefined) {
    return `restored ${r.source} into ${r.dataDir} ${from}${partial}, ${r.restoreSeconds.toFixed(1)} s. Start it with a PostgreSQL server of the ` +
      `source's version: it recovers to ${r.targetTime} from ${r.walDir} and promotes.`;
  }
  return `restored ${r.source} to ${r.targetTime} into ${r.dataDir} ${from}${partial}: recovered to ${r.recoveredTo ?? 'the end of the base backup (no transaction replayed)'}, ` +
    `${r.walFilesReplayed ?? 0} WAL segments replayed, ${r.restoreSeconds.toFixed(1)} s; the server runs on port ${r.port}, on its socket only: psql -h ${r.walDir} -p ${r.port} (log: ${r.serverLog})`;
}
