/**
 * `restorable binlog-stream`: continuous archiving of a MariaDB server's binary logs, for point-in-time recovery. It
 * drives mariadb-binlog as a replica of the server into a spool directory that outlives the task, and stores every
 * closed binlog file whole, and every few seconds the growing one up to its last whole event, each with its index,
 * write-once under {source}/binlog/{stream}/ (BinlogStreamer in binlog/streamer.ts). It runs until SIGTERM or SIGINT,
 * then stores the last of the spool and exits 0.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BINLOG_FILE_PATTERN, Engine, sourceNameProblem } from '../../../lib/contract';
import { RECIPIENT_ENV, RECIPIENT_OPTIONS, recipientFromArgs } from '../backup/encrypt';
import { StreamSummary, BinlogStreamer } from '../binlog/streamer';
import { s3BinlogStore } from '../binlog/store';
import { MysqlSession } from '../engines/mysql';
import { CommandSpec, OptionKind, ParsedArgs, SOURCE_OPTIONS } from '../shared/args';
import { onAbort } from '../shared/cleanup';
import { CONNECTION_OPTIONS, resolveConnection } from '../shared/connection';
import { UsageError } from '../shared/errors';
import { log } from '../shared/log';
import { requireTools } from '../shared/tools';
import { compressionLevel } from './wal-push';
import { DEFAULT_PARTIAL_INTERVAL_SECONDS, DEFAULT_RETRY_FOR_SECONDS, STREAMING_OUTPUT_OPTIONS, StreamingCommandDeps, seconds, spoolDir } from './wal-receive';

/** The connection options but --database: a replica's connection names none. */
const REPLICATION_CONNECTION_OPTIONS = Object.fromEntries(Object.entries(CONNECTION_OPTIONS).filter(([name]) => name !== 'database'));

export const BINLOG_STREAM_COMMAND: CommandSpec = {
  name: 'binlog-stream',
  summary: 'Archive a MariaDB server\'s binary logs continuously by streaming them (mariadb-binlog as a replica) into a spool directory ' +
    'that outlives the task, storing each closed binlog file, and the growing one every few seconds, with an index of where ' +
    `replay to a time stops, write-once under {source}/binlog/. Runs until SIGTERM or SIGINT, then stores the last of it. The recipient may also come from ${RECIPIENT_ENV}; ` +
    'the password only from the secret or MYSQL_PWD. The user needs REPLICATION SLAVE and BINLOG MONITOR; the server log_bin, binlog_format=ROW ' +
    'and a server_id; RDS for MariaDB binlog retention hours of 24 or more.',
  options: {
    ...SOURCE_OPTIONS,
    ...RECIPIENT_OPTIONS,
    ...REPLICATION_CONNECTION_OPTIONS,
    'spool': { kind: OptionKind.STRING, placeholder: 'DIR', description: 'where mariadb-binlog writes: must survive the task (EFS), so that a new task resumes where the last stopped', required: true },
    'server-id': {
      kind: OptionKind.STRING, placeholder: 'N', required: true,
      description: 'the streamer\'s replica server id, 1 to 4294967295: unique among the server and all its replicas (a duplicate disconnects the other)',
    },
    'start-file': { kind: OptionKind.STRING, placeholder: 'FILE', description: 'the binlog a first stream starts from (default the server\'s oldest)' },
    'partial-interval': {
      kind: OptionKind.STRING, placeholder: 'SECONDS',
      description: `how often the growing binlog is stored when it grew (default ${DEFAULT_PARTIAL_INTERVAL_SECONDS}): at most this much is only on the server and in the spool`,
    },
    'retry-for': {
      kind: OptionKind.STRING, placeholder: 'SECONDS',
      description: `how long mariadb-binlog or storing may keep failing before the command gives up and exits 1 (default ${DEFAULT_RETRY_FOR_SECONDS})`,
    },
    'legal-hold': { kind: OptionKind.FLAG, description: 'place an Object Lock legal hold on each whole binlog file stored, never on a partial (the bucket needs Object Lock)' },
    ...STREAMING_OUTPUT_OPTIONS,
  },
};

export async function runBinlogStream(args: ParsedArgs, deps: StreamingCommandDeps): Promise<StreamSummary> {
  const env = deps.env ?? process.env;
  const source = args.requiredString('source');
  const nameProblem = sourceNameProblem(source);
  if (nameProblem) throw new UsageError(nameProblem);
  const bucket = args.requiredString('bucket');
  const prefix = args.string('prefix');
  const recipient = recipientFromArgs(args, env);
  const level = compressionLevel(args);
  const serverIdText = args.requiredString('server-id');
  const serverId = Number(serverIdText);
  if (!/^\d+$/.test(serverIdText) || serverId < 1 || serverId > 4294967295) throw new UsageError(`--server-id must be a whole number from 1 to 4294967295 (got '${serverIdText}')`);
  const startFile = args.string('start-file');
  if (startFile !== undefined && !BINLOG_FILE_PATTERN.test(startFile)) throw new UsageError(`--start-file '${startFile}' is not a binlog file name (such as mariadb-bin.000042)`);
  const partialIntervalMs = seconds(args, 'partial-interval', DEFAULT_PARTIAL_INTERVAL_SECONDS, 1, 3600) * 1000;
  const retryForMs = seconds(args, 'retry-for', DEFAULT_RETRY_FOR_SECONDS, 1, 86_400) * 1000;
  const spool = spoolDir(args.requiredString('spool'));
  requireTools(['mariadb-binlog', 'mysql', 'zstd', 'age']);
  // A replica's connection names no database; the session's queries run in information_schema, which every user may use.
  const connection = await resolveConnection(Engine.MYSQL, args, { ...env, MYSQL_DATABASE: 'information_schema' }, deps.secrets);
  const session = new MysqlSession({ ...connection, database: 'information_schema' });
  // mariadb-binlog reads the password from MYSQL_PWD in its environment, never from its arguments.
  const childEnv: NodeJS.ProcessEnv = { PATH: env.PATH, HOME: env.HOME, TZ: 'UTC', ...(connection.password !== undefined ? { MYSQL_PWD: connection.password } : {}) };

  const workDir = mkdtempSync(join(tmpdir(), 'restorable-binlog-stream-'));
  const remove = () => rmSync(workDir, { recursive: true, force: true });
  const forget = onAbort(remove);
  const streamer = new BinlogStreamer({
    source, spool, serverId, partialIntervalMs, retryForMs, startFile,
    connectionArgs: ['--protocol=TCP', `--host=${connection.host}`, `--port=${connection.port}`, `--user=${connection.user}`],
    env: childEnv,
    query: (sql) => session.query(sql),
    store: s3BinlogStore({ s3: deps.s3, bucket, prefix, source, recipient, level, workDir, legalHold: args.flag('legal-hold') }),
  });
  log.info('streaming binlogs', { source, spool, host: connection.host, port: connection.port, user: connection.user, serverId, partialIntervalSeconds: partialIntervalMs / 1000 });
  deps.onStart?.((reason) => streamer.stop(reason));
  try {
    return await streamer.run();
  } finally {
    await session.close();
    remove();
    forget();
  }
}

export function formatBinlogStreamSummary(s: StreamSummary): string {
  const streams = s.streamsStarted.map((x) => `${x.stream} (${x.reason}: ${x.detail})`).join('; ');
  return `stopped${s.stoppedBy ? ` by ${s.stoppedBy}` : ''}: stored ${s.files} closed binlog files and ${s.partials} partials` +
    `${s.stream ? ` in stream ${s.stream}` : ''}${s.last ? `; the newest is ${s.last.file} up to byte ${s.last.bytes}` : ''}` +
    `${streams ? `; streams begun: ${streams}` : ''}; mariadb-binlog was restarted ${s.restarts} times`;
}
