/**
 * MariaDB binlog streaming of a source, for point-in-time recovery with an RPO of seconds: which sources can have it
 * (MariaDB, self-managed or on Amazon RDS for MariaDB; not MySQL 8, not Aurora, not PostgreSQL, which archives WAL),
 * the settings a source gives with their defaults and checks, and what synth can tell about the server. The grant is
 * the store's (BackupBucket.grantBinlogPush), the service BinlogStreamer.
 */
import { createHash } from 'node:crypto';
import { Annotations, Duration, Stack, Token } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { BackupSource, DatabaseFlavour } from './backup-source';
import { DEFAULT_PARTIAL_UPLOAD_INTERVAL, DEFAULT_STREAMED_MAX_AGE, DatabaseHosting, maxArchiveAgeProblem, partialIntervalProblem } from './continuous';
import { BINLOG_FILE_PATTERN } from '../contract/binlog';
import { RestorableError } from '../shared/errors';

/** The warning id a user acknowledges once an RDS for MariaDB source's `binlog retention hours` is set. */
export const BINLOG_RETENTION_WARNING = '@restorable/database-backups:rds-binlog-retention';

/** The call that keeps an RDS for MariaDB server's binlogs for 7 days, which the agent asks for when they are kept less than a day. */
export const RDS_BINLOG_RETENTION_CALL = 'CALL mysql.rds_set_configuration(\'binlog retention hours\', 168);';

/** The range of default server ids, from 10^9 up to the largest MariaDB allows, far from the small ids servers are usually given. */
const DEFAULT_SERVER_IDS = { from: 1_000_000_000, to: 4_294_967_295 } as const;

/** Continuous streaming of a MariaDB source's binary logs, for point-in-time recovery. */
export interface BinlogStreaming {
  /**
   * How often the streamer uploads the binlog file the server is writing, up to its last whole event, when it has
   * grown: the most committed data that can be lost with the server. Whole seconds, 1 to 300. Each upload is a new
   * write-once object and its index: 17,280 of each a day at 5 seconds while the server writes.
   * @default Duration.seconds(5)
   */
  readonly partialUploadInterval?: Duration;
  /**
   * The server id the streamer connects with, as a replica does (`mariadb-binlog --stop-never-slave-server-id`). It
   * must be unique among the server's replicas and differ from the server's own server_id: a second connection with
   * the same id makes the server drop the first. 1 to 4294967295.
   * @default - derived from the source's name, stable across deployments, from 1000000000 to 4294967295
   */
  readonly serverId?: number;
  /**
   * The secret of the user the streamer connects as (RDS JSON shape; the host and port come from the source's endpoint
   * when it has one). The user needs REPLICATION SLAVE and BINLOG MONITOR: `GRANT REPLICATION SLAVE, BINLOG MONITOR ON
   * *.* TO …`. Only the streamer's role reads it.
   * @default - the source's own secret, whose user must then have those privileges
   */
  readonly replicationSecret?: secretsmanager.ISecret;
  /**
   * How old the newest streamed binlog object may get before monitoring alarms, counted from S3's own timestamps. A
   * server that writes nothing adds nothing: for one that is quiet for longer, give its longest quiet time, or have it
   * write a heartbeat (a row updated every minute) so that a silent stream always means a broken one.
   * @default Duration.minutes(5)
   */
  readonly maxArchiveAge?: Duration;
  /**
   * The binlog file the first stream starts from, such as `mysql-bin.000042`, when the streamer's spool is empty.
   * Later starts resume from the spool.
   * @default - the oldest binlog file the server still has (SHOW BINARY LOGS)
   */
  readonly startFile?: string;
}

/** A source's binlog streaming as it runs: every setting decided. */
export interface BinlogStreamingSettings {
  readonly partialUploadInterval: Duration;
  readonly serverId: number;
  readonly replicationSecret: secretsmanager.ISecret;
  readonly maxArchiveAge: Duration;
  /** When given: the file the first stream starts from. */
  readonly startFile?: string;
}

/** What decides whether a source's binlogs can be streamed, and what synth can tell about its server. */
export interface BinlogStreamedSource extends Pick<BackupSource, 'name' | 'engine' | 'hosting'> {
  /** The database's network side, when it is an RDS instance of this app: synth reads its settings. */
  readonly peer?: ec2.IConnectable;
}

/** The server id a source's streamer connects with by default: a hash of the source's name into 10^9 … 2^32 - 1. */
export function defaultServerId(source: string): number {
  const hash = createHash('sha256').update(`restorable binlog streamer ${source}`).digest().readUInt32BE(0);
  return DEFAULT_SERVER_IDS.from + (hash % (DEFAULT_SERVER_IDS.to - DEFAULT_SERVER_IDS.from + 1));
}

/** Why a source's binlogs cannot be streamed by Restorable, or undefined when they can. */
export function binlogStreamingProblem(source: Pick<BackupSource, 'name' | 'engine' | 'hosting'>): string | undefined {
  const { name, engine } = source;
  if (engine.flavour === DatabaseFlavour.POSTGRES) {
    return `source '${name}' is ${engine}: binlog streaming is for MariaDB sources; a PostgreSQL server of your own archives its WAL (walArchiving)`;
  }
  if (engine.flavour === DatabaseFlavour.MYSQL) {
    return `source '${name}' is ${engine}: binlog streaming is for MariaDB sources, since the agent image carries MariaDB's client tools, ` +
      'whose binlog coordinates and GTIDs differ from MySQL 8\'s; MySQL 8 sources stay dump-only';
  }
  if (engine.flavour === DatabaseFlavour.MONGODB) {
    return `source '${name}' is ${engine}: binlog streaming is for MariaDB sources; a MongoDB source is dump-only (its oplog is not archived)`;
  }
  if (source.hosting === DatabaseHosting.AURORA) {
    return `source '${name}' runs on Amazon Aurora, which is MySQL-compatible only: its binlogs are MySQL's, whose coordinates and GTIDs ` +
      'the agent image\'s MariaDB client tools do not read. Use Aurora\'s own point-in-time recovery (and backtrack), and keep Restorable\'s ' +
      'dumps as the encrypted, offsite, restore-tested copy. If the server is in fact a MariaDB of your own, set hosting: DatabaseHosting.SELF_MANAGED';
  }
  return undefined;
}

/**
 * A source's binlog streaming with its defaults filled in, or a RestorableError in words when the source cannot
 * stream binlogs, a setting is out of range, or the RDS instance it names cannot give the streamer what it needs.
 * Notes on the server that synth cannot check go on `scope`: for RDS a warning about `binlog retention hours`.
 */
export function resolveBinlogStreaming(scope: Construct, source: BinlogStreamedSource, given: BinlogStreaming,
  sourceSecret: secretsmanager.ISecret): BinlogStreamingSettings {
  const fail = (problem: string): never => {
    throw new RestorableError(scope, `source '${source.name}': binlogStreaming: ${problem}`);
  };
  const problem = binlogStreamingProblem(source);
  if (problem) throw new RestorableError(scope, problem);
  const partialUploadInterval = given.partialUploadInterval ?? DEFAULT_PARTIAL_UPLOAD_INTERVAL;
  const maxArchiveAge = given.maxArchiveAge ?? DEFAULT_STREAMED_MAX_AGE;
  const timingError = partialIntervalProblem(partialUploadInterval) ?? maxArchiveAgeProblem(maxArchiveAge, partialUploadInterval);
  if (timingError) fail(timingError);
  const serverId = given.serverId ?? defaultServerId(source.name);
  if (!Number.isInteger(serverId) || serverId < 1 || serverId > DEFAULT_SERVER_IDS.to) {
    fail(`serverId ${serverId} must be a whole number from 1 to ${DEFAULT_SERVER_IDS.to}, unique among the server's replicas`);
  }
  if (given.startFile !== undefined && !BINLOG_FILE_PATTERN.test(given.startFile)) {
    fail(`startFile '${given.startFile}' is not a binlog file name: give one as SHOW BINARY LOGS lists it, such as 'mysql-bin.000042'`);
  }
  const format = noteServer(scope, source, serverId);
  if (format !== undefined && format.toUpperCase() !== 'ROW') {
    fail(`the RDS instance's parameter group sets binlog_format to ${format}, and the streamed binlogs must be ROW (a statement-based ` +
      'binlog replays differently on another server): set binlog_format to ROW in that parameter group');
  }
  return { partialUploadInterval, serverId, replicationSecret: given.replicationSecret ?? sourceSecret, maxArchiveAge, startFile: given.startFile };
}

/**
 * Notes on `scope` what the server must give the streamer; for an RDS instance of this app, refuses what its
 * properties show it cannot. Returns the binlog_format its parameter group sets, when synth can read one.
 */
function noteServer(scope: Construct, source: BinlogStreamedSource, serverId: number): string | undefined {
  const needs = `log_bin ON, binlog_format ROW, a server_id other than 0 and ${serverId}, and a user with REPLICATION SLAVE and BINLOG MONITOR`;
  if (source.hosting !== DatabaseHosting.RDS) {
    Annotations.of(scope).addInfo(`The binlog streamer of '${source.name}' needs the server's ${needs}: binlog_format must be ROW ` +
      '(set it in the server\'s configuration). The agent checks each at start and says exactly what to change.');
    return undefined;
  }
  const instance = source.peer instanceof rds.DatabaseInstanceBase ? source.peer : undefined;
  const settings = instance && instanceSettings(instance);
  if (settings?.backupRetentionDays === 0) {
    throw new RestorableError(scope, `source '${source.name}': binlogStreaming: the RDS instance has automated backups off (backupRetention 0), ` +
      'and RDS writes binlogs only while they are on: give it a backupRetention of at least Duration.days(1)');
  }
  const format = settings?.binlogFormat;
  Annotations.of(scope).addWarningV2(BINLOG_RETENTION_WARNING, `Source '${source.name}' streams binlogs from Amazon RDS for MariaDB, which ` +
    'keeps binlogs only for its \'binlog retention hours\', NULL by default: purged almost at once, before a restarted streamer can read them. ' +
    `Run \`${RDS_BINLOG_RETENTION_CALL}\` on the instance (the agent refuses to stream while it is NULL or under 24 hours)` +
    (format === undefined ? ', and give the instance a parameter group with binlog_format ROW (RDS\'s default is MIXED)' : '') +
    '; then acknowledge this warning.');
  return format;
}

/** What synth can read of an RDS instance defined in this app: its automated backups' retention and its binlog_format. */
function instanceSettings(instance: rds.DatabaseInstanceBase): { backupRetentionDays?: number; binlogFormat?: string } | undefined {
  const cfn = instance.node.defaultChild;
  if (!(cfn instanceof rds.CfnDBInstance)) return undefined;
  const stack = Stack.of(instance);
  const retention = stack.resolve(cfn.backupRetentionPeriod);
  const groupRef = stack.resolve(cfn.dbParameterGroupName) as { Ref?: string } | undefined;
  const group = groupRef?.Ref && stack.node.findAll().find((c): c is rds.CfnDBParameterGroup =>
    c instanceof rds.CfnDBParameterGroup && stack.resolve(c.logicalId) === groupRef.Ref);
  const parameters = group ? stack.resolve(group.parameters) as Record<string, unknown> | undefined : undefined;
  const format = Object.entries(parameters ?? {}).find(([name]) => name.toLowerCase() === 'binlog_format')?.[1];
  return {
    backupRetentionDays: typeof retention === 'number' ? retention : undefined,
    binlogFormat: typeof format === 'string' && !Token.isUnresolved(format) ? format : undefined,
  };
}
