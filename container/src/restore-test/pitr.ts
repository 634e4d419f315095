/**
 * The restore test of a WAL-archived PostgreSQL source: a point-in-time restore to a recent time (runPitrRestore: the
 * newest base backup before it, the WAL after it fetched and verified by the agent), replayed by a server of the
 * source's version that the agent does not run. The agent prepares a directory it shares with that server (a task
 * volume shared with the sidecar in AWS), writes the server's whole configuration there, the base backup's own set
 * aside, and a marker; the server starts once the marker is there, with neither the identity (dropped before) nor
 * any credential, replays and promotes. The agent then checks it: out of recovery, recovered to at or before the
 * target and not too long before it, the tables the newest dump's manifest names present, the user's checks.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { Client } from 'pg';
import { Engine, PITR_TEST_FILES, RestoreTestPitr } from '../../../lib/contract';
import { LATEST, runPitrRestore } from '../pitr/restore';
import { readRecovery } from '../pitr/server';
import { restoreCommandFor } from '../pitr/wal-feed';
import { BackupLocation, selectBackup } from '../restore/download';
import { OptionKind, OptionSpecs, ParsedArgs } from '../shared/args';
import { Connection } from '../shared/connection';
import { AgentError, UsageError, redactor } from '../shared/errors';
import { log } from '../shared/log';
import { UserCheck } from './checks';
import { TableOutcome, Validation, openScratch, validateChecks } from './validate';

export const PITR_TEST_OPTIONS: OptionSpecs = {
  'pitr-dir': {
    kind: OptionKind.STRING, placeholder: 'DIR',
    description: 'test a point-in-time restore of a WAL-archived PostgreSQL source in DIR, which a server of the source\'s version shares: ' +
      'it starts postgres -D DIR/data -c config_file=DIR/server.conf once DIR/ready appears (the sidecar in AWS)',
  },
  'pitr-to': {
    kind: OptionKind.STRING, placeholder: 'recent|latest|TIME',
    description: 'where to recover to: recent (a minute ago, the default), latest (everything archived) or an ISO 8601 time; binlog times are ' +
      'whole seconds, so with --binlog-pitr every transaction up to the first after the target\'s second is replayed',
  },
  'pitr-max-gap': {
    kind: OptionKind.STRING, placeholder: 'SECONDS',
    description: 'how much older than the target the last transaction recovered may be (default 3600; 300 with --binlog-pitr)',
  },
  'pitr-wait': {
    kind: OptionKind.STRING, placeholder: 'SECONDS',
    description: 'how long to wait for the server to start, replay and promote (default 21600)',
  },
};

/** The flag of a restore test of a binlog-streamed source (binlog-pitr.ts), which shares --pitr-to and --pitr-max-gap. */
export const BINLOG_PITR_FLAG = 'binlog-pitr';

/** `recent`: this long before the test started. */
export const RECENT_SECONDS = 60;
const DEFAULT_MAX_GAP_SECONDS = 3600;
const DEFAULT_WAIT_SECONDS = 6 * 3600;

export interface PitrTestSettings extends PitrTarget {
  readonly dir: string;
  readonly waitSeconds: number;
}

function wholeSeconds(args: ParsedArgs, name: string, fallback: number): number {
  const text = args.string(name);
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0) throw new UsageError(`--${name} must be a whole number of seconds above 0 (got '${text}')`);
  return value;
}

/** Where a point-in-time restore test recovers to, and how far before it the last transaction recovered may be. */
export interface PitrTarget {
  /** `latest`, or the target time (ISO 8601, UTC). */
  readonly to: string;
  readonly maxGapSeconds: number;
}

/** --pitr-to and --pitr-max-gap, checked: shared by the tests of WAL-archived and of binlog-streamed sources. */
export function pitrTarget(args: ParsedArgs, now: Date, defaultMaxGapSeconds = DEFAULT_MAX_GAP_SECONDS): PitrTarget {
  const text = args.string('pitr-to') ?? 'recent';
  let to: string;
  if (text === 'recent') to = new Date(now.getTime() - RECENT_SECONDS * 1000).toISOString();
  else if (text === LATEST) to = LATEST;
  else if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$/.test(text) && !Number.isNaN(Date.parse(text))) to = text;
  else throw new UsageError(`--pitr-to must be recent, latest or an ISO 8601 time with its zone, such as 2026-12-02T13:45:00Z (got '${text}')`);
  return { to, maxGapSeconds: wholeSeconds(args, 'pitr-max-gap', defaultMaxGapSeconds) };
}

/** The PITR options, checked; undefined without --pitr-dir (a test of the newest dump, or of binlogs with --binlog-pitr). */
export function pitrTestSettings(args: ParsedArgs, now: Date): PitrTestSettings | undefined {
  const dir = args.string('pitr-dir');
  if (dir === undefined) {
    // --binlog-pitr takes the target and the gap too; the wait is for a server only a WAL restore test starts.
    const others = (args.flag(BINLOG_PITR_FLAG) ? ['pitr-wait'] : ['pitr-to', 'pitr-max-gap', 'pitr-wait']).filter((name) => args.string(name) !== undefined);
    if (others.length) throw new UsageError(`--${others[0]} is for a point-in-time restore test: give --pitr-dir too`);
    return undefined;
  }
  return { dir: resolve(dir), ...pitrTarget(args, now), waitSeconds: wholeSeconds(args, 'pitr-wait', DEFAULT_WAIT_SECONDS) };
}

/** The base backup's own settings files: untrusted input (a setting can run a program or load a library), set aside unread. */
const BACKUP_SETTINGS = ['postgresql.conf', 'postgresql.auto.conf', 'pg_hba.conf', 'pg_ident.conf'];

const setting = (name: string, value: string) => `${name} = '${value.replace(/'/g, "''")}'`;

/**
 * The server's whole configuration: loopback only, trust for the agent there alone, nothing archived or loaded, and
 * the recovery settings of runPitrRestore's directories. The base backup's settings files are renamed `*.from-backup`.
 */
export function writeServerConfig(settings: PitrTestSettings, port: number): void {
  const data = join(settings.dir, PITR_TEST_FILES.dataDir);
  for (const file of BACKUP_SETTINGS) {
    if (existsSync(join(data, file))) renameSync(join(data, file), join(data, `${file}.from-backup`));
  }
  const hba = join(settings.dir, 'pg_hba.conf');
  const ident = join(settings.dir, 'pg_ident.conf');
  writeFileSync(hba, 'host all all 127.0.0.1/32 trust\n');
  writeFileSync(ident, '');
  const lines = [
    `# Written by restorable restore-test: the base backup's own settings are in ${data}/*.from-backup, unread.`,
    setting('port', String(port)), setting('listen_addresses', '127.0.0.1'), setting('unix_socket_directories', ''),
    setting('hba_file', hba), setting('ident_file', ident),
    setting('archive_mode', 'off'), setting('ssl', 'off'), setting('shared_preload_libraries', ''),
    // Off: the agent waits for the promoted server, and a standby's checks of the source's settings do not apply.
    setting('hot_standby', 'off'),
    // A restored subscriber must not connect to its publisher and take changes meant for the source.
    setting('max_logical_replication_workers', '0'),
    setting('restore_command', restoreCommandFor(join(settings.dir, PITR_TEST_FILES.walDir))),
    ...(settings.to === LATEST ? [] : [setting('recovery_target_time', new Date(settings.to).toISOString().replace('T', ' ').replace('Z', '+00'))]),
    setting('recovery_target_action', 'promote'), setting('recovery_target_timeline', 'latest'),
  ];
  writeFileSync(join(settings.dir, PITR_TEST_FILES.config), `${lines.join('\n')}\n`);
}

const serverLog = (settings: PitrTestSettings) => {
  try {
    return readFileSync(join(settings.dir, PITR_TEST_FILES.serverLog), 'utf8');
  } catch {
    return '';
  }
};

/** A FATAL or PANIC line of the server's, other than its answer to a connection while it is still recovering. */
const SERVER_FAILURE = /^.*\b(FATAL|PANIC): {2}(?!the database system is (starting up|not yet accepting connections|not accepting connections|in recovery mode)).*$/m;

/** Waits until the server at `connection` accepts connections out of recovery; fails at once on its own failure. */
async function awaitPromotion(connection: Connection, settings: PitrTestSettings): Promise<void> {
  const deadline = Date.now() + settings.waitSeconds * 1000;
  for (;;) {
    const failure = SERVER_FAILURE.exec(serverLog(settings));
    if (failure) {
      throw new AgentError(`the restored server stopped: ${failure[0].trim()}. Its log (${join(settings.dir, PITR_TEST_FILES.serverLog)}) ends:\n` +
        serverLog(settings).split('\n').slice(-15).join('\n'));
    }
    const client = new Client({ host: connection.host, port: connection.port, user: connection.user, database: 'postgres', connectionTimeoutMillis: 5000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      const { rows } = await client.query<{ recovering: boolean }>('SELECT pg_is_in_recovery() AS recovering');
      if (!rows[0].recovering) return;
    } catch {
      // not up yet
    } finally {
      await client.end().catch(() => undefined);
    }
    if (Date.now() > deadline) {
      throw new AgentError(`the restored server did not accept connections out of recovery at ${connection.host}:${connection.port} within ` +
        `${settings.waitSeconds} s (--pitr-wait); is a server of the source's version watching ${join(settings.dir, PITR_TEST_FILES.ready)}?`);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

export interface PitrTestRun {
  readonly pitr?: RestoreTestPitr;
  readonly baseBackupStartedAt?: string;
  /** The database the tables and checks were read in, and how. */
  readonly target?: Connection;
  readonly validation?: Validation;
  readonly failures: readonly string[];
}

export interface PitrTestInput {
  readonly location: BackupLocation;
  readonly settings: PitrTestSettings;
  readonly identityFile: string;
  readonly dropIdentity: () => void;
  /** The server to wait for and check: host and port (loopback in the task), and the user to connect as. */
  readonly connection: Connection;
  /** The database whose tables and checks are read: by default the newest dump's. */
  readonly database?: string;
  readonly checks: readonly UserCheck[];
}

/** Every table the manifest of the dump names is in the restored database: counts differ, as the times do. */
export function tablesPresent(expected: readonly string[], restored: ReadonlySet<string>): TableOutcome[] {
  return expected.map((table) => restored.has(table)
    ? { table, passed: true, detail: `table ${table} is there` }
    : { table, passed: false, detail: `table ${table}, which the dump holds, is missing from the point-in-time restore` });
}

/**
 * Restores to the target, has the shared server replay it, and checks it. Whatever stops it is a failure of the test,
 * named with its step; a UsageError is the caller's.
 */
export async function runPitrTest(input: PitrTestInput, s3: S3Client): Promise<PitrTestRun> {
  const { settings, location } = input;
  const failures: string[] = [];
  let step = 'the point-in-time restore failed';
  try {
    if (existsSync(settings.dir) && readdirSync(settings.dir).length) {
      throw new UsageError(`--pitr-dir ${settings.dir} is not empty: a point-in-time restore test starts from an empty directory`);
    }
    // Readable by the server's user, which owns nothing here until its start: the data directory itself is 0700.
    mkdirSync(settings.dir, { recursive: true, mode: 0o755 });
    const started = Date.now();
    const restored = await runPitrRestore({
      bucket: location.bucket, prefix: location.prefix, source: location.source, to: settings.to,
      dataDir: join(settings.dir, PITR_TEST_FILES.dataDir), walDir: join(settings.dir, PITR_TEST_FILES.walDir),
      identityFile: input.identityFile, dropIdentity: input.dropIdentity,
    }, { s3 });
    input.dropIdentity();
    writeServerConfig(settings, input.connection.port);
    writeFileSync(join(settings.dir, PITR_TEST_FILES.ready), `${new Date().toISOString()}\n`);
    log.info('restored data directory ready for the server', { dir: settings.dir, baseBackup: restored.baseBackupKey, walFiles: restored.walFilesFetched });
    step = 'the restored server did not recover';
    await awaitPromotion(input.connection, settings);
    const restoreSeconds = (Date.now() - started) / 1000;
    const recovery = readRecovery(serverLog(settings));
    const pitr: RestoreTestPitr = {
      targetTime: settings.to, recoveredTo: recovery.recoveredTo ?? '', baseBackupKey: restored.baseBackupKey,
      walFilesReplayed: recovery.walFilesReplayed, restoreSeconds,
    };
    failures.push(...recoveryProblems(pitr, settings));

    step = 'validating the point-in-time restore failed';
    let newest: Awaited<ReturnType<typeof selectBackup>> | undefined;
    try {
      newest = await selectBackup(s3, location);
    } catch (err) {
      failures.push(`no dump names the tables to look for (${redactor.redact((err as Error).message)}): only the server and the checks were tested`);
    }
    const database = input.database ?? newest?.manifest.database ?? input.connection.database;
    const target = { ...input.connection, database };
    const db = await openScratch(Engine.POSTGRES, target);
    let validation: Validation;
    try {
      // maxAge checks count back from the point recovered to, as they count from a dump's start.
      const anchor = pitr.recoveredTo ? new Date(pitr.recoveredTo) : settings.to === LATEST ? new Date() : new Date(settings.to);
      const tables = newest ? tablesPresent(newest.manifest.tables.map((t) => `${t.schema}.${t.table}`), new Set(await db.tables())) : [];
      const checked = await validateChecks(db, input.checks, anchor);
      validation = { tables, checks: checked.checks, rowsChecked: 0, failures: [...tables.filter((t) => !t.passed).map((t) => t.detail), ...checked.failures] };
    } finally {
      await db.close();
    }
    failures.push(...validation.failures);
    return { pitr, baseBackupStartedAt: restored.baseBackupFinishedAt, target, validation, failures };
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const message = redactor.redact(err instanceof Error ? err.message : String(err));
    // PostgreSQL ends recovery in error when no archived transaction committed after the target.
    const quiet = settings.to !== LATEST && /recovery ended before configured recovery target was reached/.test(message)
      ? ` (no transaction in the archive committed after ${settings.to}: for a source that may commit nothing for longer than ` +
        `${RECENT_SECONDS} s, test with --pitr-to latest, pointInTimeTarget 'latest' in RestoreTesting)` : '';
    failures.push(`${step}${quiet}: ${message}`);
    return { failures };
  } finally {
    input.dropIdentity();
  }
}

/** What a recovery-time problem says of where the transactions come from: WAL by default. */
export interface RecoveryWords {
  /** Why no time recovered to is known. */
  readonly unknown: string;
  /** The question that ends a gap's failure: what to look at. */
  readonly stale: string;
}

const WAL_WORDS: RecoveryWords = {
  unknown: 'the server\'s log does not say which transaction recovery replayed last ("last completed transaction was at log time"): no transaction ' +
    'was replayed after the base backup, or the log is not the server\'s',
  stale: 'is WAL still being archived?',
};

/** Recovered to a known time, at or before the target and at most the allowed gap before it. */
export function recoveryProblems(pitr: Pick<RestoreTestPitr, 'targetTime' | 'recoveredTo'>, settings: PitrTarget, words: RecoveryWords = WAL_WORDS): string[] {
  if (!pitr.recoveredTo) return [words.unknown];
  if (pitr.targetTime === LATEST) return [];
  const gap = (Date.parse(pitr.targetTime) - Date.parse(pitr.recoveredTo)) / 1000;
  if (gap < 0) return [`recovered to ${pitr.recoveredTo}, after the target ${pitr.targetTime}: recovery went past the time it was asked to stop at`];
  if (gap > settings.maxGapSeconds) {
    return [`recovered to ${pitr.recoveredTo}, ${Math.round(gap)} s before the target ${pitr.targetTime}, more than the ${settings.maxGapSeconds} s allowed ` +
      `(--pitr-max-gap): the archive holds no transaction nearer the target; ${words.stale}`];
  }
  return [];
}
