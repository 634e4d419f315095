/**
 * `restorable wal-receive`: continuous WAL archiving by pulling, with nothing installed on the database host. It drives
 * pg_receivewal over a replication slot into a spool directory that outlives the task, and stores every finished
 * segment and history file, and every few seconds the growing segment, write-once under {source}/wal/ (WalReceiver in
 * wal/receiver.ts; each object as wal-push stores one, archiveWal in wal/archive.ts). It runs until SIGTERM or SIGINT,
 * then stores the last of the spool and exits 0.
 */
import { accessSync, constants, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { Engine, SLOT_NAME_PATTERN, sourceNameProblem, walKey } from '../../../lib/contract';
import { RECIPIENT_ENV, RECIPIENT_OPTIONS, recipientFromArgs } from '../backup/encrypt';
import { libpqEnv } from '../engines/postgres';
import { CommandSpec, OptionKind, ParsedArgs, SOURCE_OPTIONS } from '../shared/args';
import { onAbort, runAbortActions } from '../shared/cleanup';
import { CONNECTION_OPTIONS, resolveConnection } from '../shared/connection';
import { UsageError } from '../shared/errors';
import { log } from '../shared/log';
import { requireTools } from '../shared/tools';
import { archiveWal } from '../wal/archive';
import { ReceiveSummary, WalReceiver } from '../wal/receiver';
import { DEFAULT_ZSTD_LEVEL } from '../backup/encrypt';
import { compressionLevel } from './wal-push';

export const DEFAULT_PARTIAL_INTERVAL_SECONDS = 5;
export const DEFAULT_RETRY_FOR_SECONDS = 120;

/** The connection options but --database: a replication connection names none. */
const REPLICATION_CONNECTION_OPTIONS = Object.fromEntries(Object.entries(CONNECTION_OPTIONS).filter(([name]) => name !== 'database'));

/** What wal-receive and binlog-stream take about their output: the sealed files' zstd level and the summary's form. */
export const STREAMING_OUTPUT_OPTIONS: CommandSpec['options'] = {
  'compression-level': { kind: OptionKind.STRING, placeholder: 'N', description: `zstd level 1-19 (default ${DEFAULT_ZSTD_LEVEL})` },
  'json': { kind: OptionKind.FLAG, description: 'print the summary as JSON' },
};

export const WAL_RECEIVE_COMMAND: CommandSpec = {
  name: 'wal-receive',
  summary: 'Archive a PostgreSQL server\'s WAL continuously by streaming it (pg_receivewal over a replication slot) into a spool ' +
    'directory that outlives the task, storing each finished segment and history file, and the growing segment every few seconds, ' +
    `write-once under {source}/wal/. Runs until SIGTERM or SIGINT, then stores the last of it. The recipient may also come from ${RECIPIENT_ENV}; ` +
    'the password only from the secret or PGPASSWORD.',
  options: {
    ...SOURCE_OPTIONS,
    ...RECIPIENT_OPTIONS,
    ...REPLICATION_CONNECTION_OPTIONS,
    'spool': { kind: OptionKind.STRING, placeholder: 'DIR', description: 'where pg_receivewal writes: must survive the task (EFS), since the slot moves on once WAL is here', required: true },
    'slot': { kind: OptionKind.STRING, placeholder: 'NAME', description: 'the replication slot, created if missing (default restorable_{source}, - as _)' },
    'partial-interval': {
      kind: OptionKind.STRING, placeholder: 'SECONDS',
      description: `how often the growing segment is stored when it grew (default ${DEFAULT_PARTIAL_INTERVAL_SECONDS}): at most this much WAL is only on the server and in the spool`,
    },
    'retry-for': {
      kind: OptionKind.STRING, placeholder: 'SECONDS',
      description: `how long pg_receivewal or storing may keep failing before the command gives up and exits 1 (default ${DEFAULT_RETRY_FOR_SECONDS})`,
    },
    'legal-hold': { kind: OptionKind.FLAG, description: 'place an Object Lock legal hold on each whole segment and history file stored, never on a received partial (the bucket needs Object Lock)' },
    ...STREAMING_OUTPUT_OPTIONS,
  },
};

/** What a long-running streaming command (wal-receive, binlog-stream) is given. */
export interface StreamingCommandDeps {
  readonly s3: S3Client;
  readonly secrets: SecretsManagerClient;
  readonly env?: NodeJS.ProcessEnv;
  /** Called once the command runs, with the function that stops it (the command's signal handlers call it). */
  readonly onStart?: (stop: (reason: string) => void) => void;
}


/** The slot a source's receiver uses unless told otherwise. */
export function defaultSlotName(source: string): string {
  return `restorable_${source.replace(/-/g, '_')}`.slice(0, 63);
}

export function seconds(args: ParsedArgs, name: string, fallback: number, min: number, max: number): number {
  const text = args.string(name);
  const value = text === undefined ? fallback : Number(text);
  if (!Number.isFinite(value) || value < min || value > max) throw new UsageError(`--${name} must be a number of seconds from ${min} to ${max} (got '${text}')`);
  return value;
}

/** The spool, created if missing; refused when it is not a directory the agent may write. */
export function spoolDir(path: string): string {
  const dir = resolve(path);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (!statSync(dir).isDirectory()) throw new Error('not a directory');
    accessSync(dir, constants.W_OK | constants.R_OK | constants.X_OK);
  } catch (err) {
    throw new UsageError(`--spool ${path} cannot be used as the spool (${(err as Error).message}): give a directory the agent may create and write`);
  }
  return dir;
}

export async function runWalReceive(args: ParsedArgs, deps: StreamingCommandDeps): Promise<ReceiveSummary> {
  const env = deps.env ?? process.env;
  const source = args.requiredString('source');
  const nameProblem = sourceNameProblem(source);
  if (nameProblem) throw new UsageError(nameProblem);
  const bucket = args.requiredString('bucket');
  const prefix = args.string('prefix');
  const recipient = recipientFromArgs(args, env);
  const level = compressionLevel(args);
  const slot = args.string('slot') ?? defaultSlotName(source);
  if (!SLOT_NAME_PATTERN.test(slot)) throw new UsageError(`--slot '${slot}' is not a replication slot name: 1 to 63 lower-case letters, digits and _`);
  const partialIntervalMs = seconds(args, 'partial-interval', DEFAULT_PARTIAL_INTERVAL_SECONDS, 1, 3600) * 1000;
  const retryForMs = seconds(args, 'retry-for', DEFAULT_RETRY_FOR_SECONDS, 1, 86_400) * 1000;
  const spool = spoolDir(args.requiredString('spool'));
  requireTools(['pg_receivewal', 'zstd', 'age']);
  // A replication connection names no database; the connection's resolver wants one, which libpq then ignores.
  const connection = await resolveConnection(Engine.POSTGRES, args, { PGDATABASE: 'postgres', ...env }, deps.secrets);
  // The slot's name is the receiver's application_name, which synchronous_standby_names can list.
  const childEnv: NodeJS.ProcessEnv = { ...libpqEnv(connection, env), PGAPPNAME: slot };
  delete childEnv.PGDATABASE;

  const workDir = mkdtempSync(join(tmpdir(), 'restorable-wal-receive-'));
  const remove = () => rmSync(workDir, { recursive: true, force: true });
  const forget = onAbort(remove);
  const receiver = new WalReceiver({
    spool, slot, partialIntervalMs, retryForMs, env: childEnv,
    store: (path, file, length) => archiveWal({
      s3: deps.s3, bucket, key: walKey(prefix, source, file), file, path, length, recipient, level, workDir, legalHold: args.flag('legal-hold'),
    }),
  });
  log.info('receiving WAL', { source, slot, spool, host: connection.host, port: connection.port, user: connection.user, partialIntervalSeconds: partialIntervalMs / 1000 });
  deps.onStart?.((reason) => receiver.stop(reason));
  try {
    return await receiver.run();
  } finally {
    remove();
    forget();
  }
}

export function formatWalReceiveSummary(s: ReceiveSummary): string {
  return `stopped${s.stoppedBy ? ` by ${s.stoppedBy}` : ''}: stored ${s.segments} segments, ${s.historyFiles} history files and ${s.partials} received partials ` +
    `from slot ${s.slot}${s.lastPartial ? `; the newest WAL stored is ${s.lastPartial}` : ''}; pg_receivewal was restarted ${s.restarts} times`;
}

/**
 * A long-lived command's own signal handling (wal-receive, binlog-stream), instead of the agent's usual "stopped by": the first SIGTERM or SIGINT stops it
 * cleanly (its child program flushes and exits, the spool is stored a last time, exit 0); a second one stops it at once.
 */
export function stopOnSignals(stop: (reason: string) => void, command = 'wal-receive'): void {
  let stopping = false;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (stopping) {
        process.stderr.write(`restorable ${command}: stopped by a second ${signal} before the spool was stored; the spool keeps it for the next run\n`);
        runAbortActions();
        process.exit(signal === 'SIGTERM' ? 143 : 130);
      }
      stopping = true;
      stop(signal);
    });
  }
}
