/**
 * A point-in-time restore of a MariaDB source whose binlogs are streamed: the newest dump with binlog coordinates that
 * started before the target, restored as any dump is (restoreBackup), then the stored binlogs replayed from the dump's
 * coordinates to the target (select.ts picks them, fetch.ts verifies them, replay.ts runs them). Binlog times are whole
 * seconds and are when each statement started, so a restore to T replays, in binlog order, every event group up to the
 * first whose time is after floor(T), and stops before it; `latest` replays every whole group stored. Every binlog is
 * fetched and verified before the target is touched, and the identity can be dropped before any of the backup's SQL
 * runs. `restore --to` and the restore test both run this; the result says the exact last event applied.
 */
import { mkdtempSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { Engine, sourceNameProblem } from '../../../lib/contract';
import { onAbort } from '../shared/cleanup';
import { Connection, describeConnection } from '../shared/connection';
import { AgentError, UsageError } from '../shared/errors';
import { log } from '../shared/log';
import { requireTools } from '../shared/tools';
import { MysqlSession } from '../engines/mysql';
import { RetrievalOptions, RetrievalTier } from '../restore/archive';
import { RestoreResult, restoreBackup } from '../restore/restore';
import { LATEST, parseTarget } from '../pitr/restore';
import { LastGroup, fetchBinlogs } from './fetch';
import { BinlogPlan, DumpAfterTarget, planBinlogReplay, selectDumpWithCoordinates } from './select';
import { replayBinlogs } from './replay';

export interface BinlogPitrOptions {
  readonly bucket: string;
  readonly prefix?: string;
  readonly source: string;
  /** `latest`, or an ISO 8601 time with its zone; binlog times are whole seconds, so it counts to the second. */
  readonly to: string;
  /** An age identity file that opens the dump and the binlogs. */
  readonly identityFile: string;
  /** Called once nothing more needs decrypting (restore tests: before any of the backup's SQL runs). */
  readonly dropIdentity?: () => void;
  /** The target database's connection (it must exist and be empty unless `clean`). */
  readonly connect: () => Promise<Connection>;
  readonly clean?: boolean;
  /** A restore test into a scratch database: the dump loads, and the binlogs replay, as accounts made for it. */
  readonly scratch?: boolean;
  /** Operator restores: run the backup's SQL with the connecting user's rights, whatever they are. */
  readonly asConnectedUser?: boolean;
  /** Where the verified binlogs (and a restore test's dump) wait on disk, in a 0700 directory of their own (default: the temporary directory). */
  readonly workDir?: string;
  readonly retrieval?: RetrievalOptions;
  /** For tests: what "now" is, for a target in the future. */
  readonly now?: Date;
}

export interface BinlogPitrDeps {
  readonly s3: S3Client;
}

export interface BinlogPitrResult {
  readonly source: string;
  readonly bucket: string;
  /** `latest` or the target time as given. */
  readonly targetTime: string;
  /** The time of the last event group applied (ISO 8601, whole seconds as the binlog records them); absent when none was. */
  readonly recoveredTo?: string;
  /** True when the store holds a group after the target (replay stopped before it); false when the stored binlogs end before it. */
  readonly coveredTarget: boolean;
  readonly dumpKey: string;
  readonly dumpStartedAt: string;
  /** The dump's place in the binlog, where replay started. */
  readonly dumpCoordinates: { readonly file: string; readonly position: number; readonly gtid?: string };
  readonly stream: string;
  /** Binlog objects fetched, verified and replayed. */
  readonly binlogFilesReplayed: number;
  readonly binlogBytes: number;
  /** Transactions in the binlogs replayed that touch other databases than the dumped one: mariadb-binlog leaves them out. */
  readonly otherDatabaseGroups?: number;
  /** The last event group applied: the file, where it ends, its GTID. Absent when replay applied none. */
  readonly lastEvent?: { readonly file: string; readonly position: number; readonly gtid?: string };
  /** Where it went: user@host:port/database. */
  readonly target: string;
  /** Who ran the dump's SQL, and who replayed the binlogs. */
  readonly loadedAs: string;
  readonly replayedAs: string;
  readonly dump: RestoreResult;
  readonly replaySeconds: number;
  /** From the first S3 request until the last binlog event was applied. */
  readonly restoreSeconds: number;
}

const MiB = 1024 * 1024;
const DEFAULT_RETRIEVAL: RetrievalOptions = { tier: RetrievalTier.STANDARD, wait: false, days: 2, pollMs: 60_000 };

const iso = (seconds: number) => new Date(seconds * 1000).toISOString().replace('.000Z', 'Z');

function workDirectory(parent: string, bytes: number): { dir: string; remove: () => void } {
  let free: number;
  try {
    const stats = statfsSync(parent);
    free = stats.bavail * stats.bsize;
  } catch (err) {
    throw new AgentError(`cannot use the work directory ${parent}: ${(err as Error).message}`);
  }
  if (free < bytes + 64 * MiB) {
    throw new AgentError(`a point-in-time restore verifies the binlogs on disk before replaying them: it needs ${((bytes + 64 * MiB) / 1e9).toFixed(2)} GB ` +
      `free in ${parent}, only ${(free / 1e9).toFixed(2)} GB is. Point --spool-dir at a larger volume, or restore from a newer dump`);
  }
  const dir = mkdtempSync(join(parent, 'restorable-binlog-'));
  const forget = onAbort(() => rmSync(dir, { recursive: true, force: true }));
  return { dir, remove: () => { rmSync(dir, { recursive: true, force: true }); forget(); } };
}

export async function runBinlogPitrRestore(options: BinlogPitrOptions, deps: BinlogPitrDeps): Promise<BinlogPitrResult> {
  const nameProblem = sourceNameProblem(options.source);
  if (nameProblem) throw new UsageError(nameProblem);
  const now = options.now ?? new Date();
  const target = parseTarget(options.to, now);
  requireTools(['age', 'zstd', 'mysql', 'mariadb-binlog']);
  const started = Date.now();
  const location = { bucket: options.bucket, prefix: options.prefix, source: options.source };
  let { backup, coordinates } = await selectDumpWithCoordinates(deps.s3, location, target ?? now);
  let plan: BinlogPlan;
  for (let tries = 1; ; tries++) {
    try {
      plan = await planBinlogReplay(deps.s3, options.bucket, options.prefix, backup.manifest, target);
      break;
    } catch (err) {
      // A dump that started before the target but took its snapshot after it: the one before it, then.
      if (!(err instanceof DumpAfterTarget) || tries >= 3) throw err;
      log.info('the dump\'s snapshot came after the target; trying the dump before it', { key: backup.key });
      ({ backup, coordinates } = await selectDumpWithCoordinates(deps.s3, location, new Date(Date.parse(backup.manifest.startedAt) - 1)));
    }
  }
  const database = backup.manifest.database as string | undefined;
  if (typeof database !== 'string' || database.length === 0 || database.length > 64 || /[\x00-\x1f\x7f]/.test(database)) {
    throw new AgentError(`the dump ${backup.key} names no usable database (${JSON.stringify(database)}), and binlog replay keeps the events of the ` +
      'dumped database alone: nothing was restored. Restore a dump whose manifest names its database');
  }
  const work = workDirectory(options.workDir ?? tmpdir(), plan.objects.reduce((sum, o) => sum + o.index.size, 0));
  try {
    const fetched = await fetchBinlogs(deps.s3, options.bucket, plan.objects, work.dir, options.identityFile, database);
    if (fetched.groups > 0 && fetched.databaseGroups === 0) {
      throw new AgentError(`none of the ${fetched.groups} transactions in the binlogs to replay touches the dumped database '${database}' (a table or ` +
        'query of it, its name compared byte for byte as mariadb-binlog does): a replay would apply nothing and still claim the last one. The dump ' +
        'may name its database otherwise than the server logs it (case, a renamed database). Nothing was restored');
    }
    if (fetched.groups > fetched.databaseGroups) {
      log.info('transactions of other databases are left out of the replay', { database, leftOut: fetched.groups - fetched.databaseGroups });
    }
    const first = plan.objects[0];
    const last = plan.objects[plan.objects.length - 1];
    const connection = await options.connect();
    // The session holds the replaying account's option file until the replay ended.
    const session = new MysqlSession(connection);
    let dump: RestoreResult;
    let replaySeconds: number;
    let replayedAs: string;
    try {
      // Who replays is settled (and a user that may not, refused) before anything is restored.
      const replay = await session.planBinlogReplay({ scratch: options.scratch ?? false, asConnectedUser: options.asConnectedUser ?? false });
      replayedAs = replay.loadedAs;
      try {
        dump = await restoreBackup({
          location: { bucket: options.bucket, prefix: options.prefix, source: options.source, key: backup.key }, identityFile: options.identityFile,
          connect: async (engine) => {
            if (engine !== Engine.MYSQL) throw new AgentError(`${backup.key} is a ${engine} dump: binlog replay is for MariaDB sources`);
            return connection;
          },
          jobs: 1, clean: options.clean ?? false, withGlobals: false, spoolDir: work.dir, retrieval: options.retrieval ?? DEFAULT_RETRIEVAL,
          scratch: options.scratch, dropIdentity: options.dropIdentity, asConnectedUser: options.asConnectedUser,
        }, deps);
        if (dump.sha256 !== backup.manifest.sha256) throw new AgentError(`the dump restored (${dump.key}) is not the one whose coordinates were read: restore again`);
        options.dropIdentity?.();
        replaySeconds = await replayBinlogs({
          paths: fetched.paths, from: first.from, to: last.to, sourceDatabase: database, targetDatabase: connection.database,
        }, replay.stage());
      } finally {
        await replay.release();
      }
    } finally {
      await session.close();
    }
    const lastGroup: LastGroup | undefined = fetched.lastGroup;
    const restoreSeconds = (Date.now() - started) / 1000;
    const result: BinlogPitrResult = {
      source: options.source, bucket: options.bucket, targetTime: options.to, coveredTarget: plan.coveredTarget || target === undefined,
      ...(lastGroup ? { recoveredTo: iso(lastGroup.time), lastEvent: { file: lastGroup.file, position: lastGroup.position, ...(lastGroup.gtid ? { gtid: lastGroup.gtid } : {}) } } : {}),
      dumpKey: backup.key, dumpStartedAt: backup.manifest.startedAt,
      dumpCoordinates: { file: coordinates.file, position: coordinates.position, ...(coordinates.gtid ? { gtid: coordinates.gtid } : {}) },
      stream: plan.stream.stream, binlogFilesReplayed: plan.objects.length, binlogBytes: fetched.bytes,
      otherDatabaseGroups: fetched.groups - fetched.databaseGroups, target: describeConnection(connection),
      loadedAs: dump.loadedAs, replayedAs, dump, replaySeconds, restoreSeconds,
    };
    log.info('point-in-time restore finished', {
      dumpKey: result.dumpKey, targetTime: result.targetTime, recoveredTo: result.recoveredTo, lastFile: result.lastEvent?.file,
      lastPosition: result.lastEvent?.position, lastGtid: result.lastEvent?.gtid, binlogFilesReplayed: result.binlogFilesReplayed, restoreSeconds,
    });
    return result;
  } finally {
    work.remove();
  }
}

export function formatBinlogPitrResult(r: BinlogPitrResult): string {
  const to = r.lastEvent
    ? `recovered to ${r.recoveredTo}: the last event group applied ends at ${r.lastEvent.file}:${r.lastEvent.position}${r.lastEvent.gtid ? ` (GTID ${r.lastEvent.gtid})` : ''}`
    : 'recovered to the dump\'s snapshot: no binlog event group after it was applied';
  const short = r.coveredTarget ? '' : `\nThe stored binlogs end before ${r.targetTime}: everything stored was replayed. Check the binlog streamer of ${r.source}.`;
  return `restored ${r.source} to ${r.targetTime === LATEST ? 'the latest stored point' : r.targetTime} into ${r.target}: the dump s3://${r.bucket}/${r.dumpKey} ` +
    `(started ${r.dumpStartedAt}, SHA-256 verified, at ${r.dumpCoordinates.file}:${r.dumpCoordinates.position}), then ${r.binlogFilesReplayed} binlog ` +
    `files of stream ${r.stream}, each verified (${r.binlogBytes} bytes${r.otherDatabaseGroups ? `; ${r.otherDatabaseGroups} transactions of other databases left out` : ''}, replayed in ${r.replaySeconds.toFixed(1)} s as ${r.replayedAs}); ${to}; ` +
    `${r.restoreSeconds.toFixed(1)} s in all. Binlog times are whole seconds: every group up to the first after ${r.targetTime === LATEST ? 'the end' : 'the target\'s second'} was replayed.${short}`;
}
