/**
 * What a backup source is: an engine with its flavour and version, a
 * connection (endpoint and the user's secret), a schedule that follows from its RPO, and the task's size.
 * Plain types and checks; the construct that runs them is DatabaseBackups.
 */
import { Duration, Size } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Engine } from '../contract/manifest';
import { RestorableError } from '../shared/errors';
import type { BinlogStreamer } from './binlog-streamer';
import type { BinlogStreaming, BinlogStreamingSettings } from './binlog-streaming';
import type { DatabaseHosting } from './continuous';
import type { MongoDbConnection } from './mongodb-connection';
import type { WalArchiving, WalArchivingSettings } from './wal-archive';
import type { WalReceiver } from './wal-receiver';

/** The database product a source runs. Plain files will join this list. */
export enum DatabaseFlavour {
  POSTGRES = 'postgres',
  MARIADB = 'mariadb',
  MYSQL = 'mysql',
  /** MongoDB, self-managed or on Atlas, and MongoDB-compatible services such as Amazon DocumentDB. */
  MONGODB = 'mongodb',
}

/** The oldest and newest PostgreSQL majors the agent image can dump: its pg_dump must be at least as new as the server. */
export const POSTGRES_MAJORS = { oldest: 13, newest: 18 } as const;

/**
 * A source's engine: its flavour and version, which choose the agent's dump engine and the restore-test image.
 * Versions are strings everywhere, as aws-cdk-lib's RDS engine versions give them: for example
 * `SourceEngine.postgres(rds.PostgresEngineVersion.VER_16_4.postgresMajorVersion)` is `SourceEngine.postgres('16')`.
 */
export class SourceEngine {
  /** PostgreSQL of a major version, '13' to '18': dumped with the image's newest pg_dump. */
  public static postgres(majorVersion: string): SourceEngine {
    const call = `SourceEngine.postgres(${shown(majorVersion)})`;
    const { oldest, newest } = POSTGRES_MAJORS;
    if (typeof majorVersion !== 'string' || !/^\d+$/.test(majorVersion)) {
      throw new RestorableError(call, `majorVersion must be a PostgreSQL major version as a string, '${oldest}' to '${newest}', for example '16'`);
    }
    const major = Number(majorVersion);
    if (major < oldest || major > newest) {
      throw new RestorableError(call, `majorVersion: PostgreSQL ${majorVersion} is not supported: give a major version from '${oldest}' to '${newest}', ` +
        `since the agent image's pg_dump ${newest} can dump servers up to its own version`);
    }
    return new SourceEngine(DatabaseFlavour.POSTGRES, majorVersion, Engine.POSTGRES, 5432, officialImage('postgres', majorVersion));
  }

  /** MariaDB of a release series, for example '10.11' or '11.4'. */
  public static mariadb(version: string): SourceEngine {
    return new SourceEngine(DatabaseFlavour.MARIADB, checkSeries('mariadb', 'MariaDB', version, '10.11'), Engine.MYSQL, 3306, officialImage('mariadb', version));
  }

  /**
   * MySQL of a release series, for example '8.0' or '8.4'. Dumped with the MariaDB client, which reads MySQL 8;
   * untested so far (only MariaDB runs in the agent image's tests), so DatabaseBackups warns at synth for each
   * MySQL source. MySQL 8 dumps do not load into MariaDB: restore tests use a MySQL scratch server.
   */
  public static mysql(version: string): SourceEngine {
    return new SourceEngine(DatabaseFlavour.MYSQL, checkSeries('mysql', 'MySQL', version, '8.4'), Engine.MYSQL, 3306, officialImage('mysql', version));
  }

  /**
   * MongoDB of a release series, for example '7.0' or '8.0': self-managed, MongoDB Atlas reached over the network, or
   * a MongoDB-compatible service such as Amazon DocumentDB (give the MongoDB version its API is compatible with, for
   * example '5.0' for DocumentDB 5.0). Dumped with `mongodump --archive` of the agent image's MongoDB Database Tools
   * {@link MONGODB_TOOLS.version}, which support MongoDB servers {@link MONGODB_TOOLS.oldest} to
   * {@link MONGODB_TOOLS.newest}: an older series is refused (the tools cannot connect to it), and a newer one warns
   * at synth until you acknowledge it, since those tools do not claim to support it. Restore tests load the backups
   * into the official `mongo` image of the same series. The endpoint is one server's host and port (for a replica
   * set, a secondary or hidden member keeps dumps off the primary; for Atlas, one of the cluster's hosts with
   * `mongodb: { tls: true }`): `mongodb+srv://` names are not resolved.
   */
  public static mongodb(version: string): SourceEngine {
    checkSeries('mongodb', 'MongoDB', version, '7.0');
    const { oldest, newest } = MONGODB_TOOLS;
    if (compareSeries(version, oldest) < 0) {
      throw new RestorableError(`SourceEngine.mongodb(${shown(version)})`, `version: MongoDB ${version} is not supported: give a release series ` +
        `from '${oldest}' on, since the agent image's MongoDB Database Tools ${MONGODB_TOOLS.version} do not support servers older than ` +
        `MongoDB ${oldest} (upgrade the server, or for Amazon DocumentDB give '${oldest}' or newer as the compatible MongoDB version); newest supported: '${newest}'`);
    }
    return new SourceEngine(DatabaseFlavour.MONGODB, version, Engine.MONGODB, 27017, officialImage('mongo', version));
  }

  private constructor(
    /** The database product. */
    public readonly flavour: DatabaseFlavour,
    /** Its major version or release series, as given. */
    public readonly version: string,
    /** The agent's `--engine`: sources of one agent engine share a task definition. */
    public readonly agentEngine: Engine,
    /** The port the server listens on unless the endpoint says otherwise. */
    public readonly defaultPort: number,
    /** The image of a scratch server of the same version, for restore tests. */
    public readonly defaultScratchImage: string,
  ) {}

  /** For example 'postgres 16'. */
  public toString(): string {
    return `${this.flavour} ${this.version}`;
  }
}

/**
 * Where the default scratch images come from: the Docker Official Images as ECR Public serves them, not Docker Hub,
 * whose anonymous pull limits a weekly burst of restore tests would hit. ECR Public is on the internet, so the
 * tasks need a NAT route to pull from it (or an ECR pull-through cache of it in the stack's region).
 */
export const OFFICIAL_IMAGES = 'public.ecr.aws/docker/library';

/**
 * The official image of an engine's version, by tag, for example `public.ecr.aws/docker/library/postgres:16`.
 *
 * By tag, not by digest: no digest of these tags as ECR Public serves them could be verified when this was
 * written, and a wrong one would break every pull. A tag moves when the image is rebuilt (a patch release, a base
 * image update), so each restore test runs the newest build of that series. To pin one build, give the source a
 * scratchImage by digest, `ecs.ContainerImage.fromRegistry('public.ecr.aws/docker/library/postgres@sha256:…')`,
 * with the digest that `docker buildx imagetools inspect public.ecr.aws/docker/library/postgres:16` prints;
 * a scratchImage is used as given.
 */
function officialImage(repository: string, version: string): string {
  return `${OFFICIAL_IMAGES}/${repository}:${version}`;
}

/**
 * The MongoDB Database Tools in the agent image (mongodump, mongorestore) and the MongoDB server series they support,
 * as MongoDB's compatibility pages for that version list them: 4.2, 4.4, 5.0, 6.0, 7.0 and 8.0.
 */
export const MONGODB_TOOLS = { version: '100.10.0', oldest: '4.2', newest: '8.0' } as const;

/** Whether a MongoDB release series is newer than the agent image's Database Tools support. */
export function newerThanMongoTools(version: string): boolean {
  return compareSeries(version, MONGODB_TOOLS.newest) > 0;
}

/** Compares two 'major.minor' release series numerically. */
function compareSeries(a: string, b: string): number {
  const [am, an] = a.split('.').map(Number);
  const [bm, bn] = b.split('.').map(Number);
  return am !== bm ? am - bm : an - bn;
}

/** A value as the user wrote it in the call: strings quoted, anything else as it is. */
function shown(value: unknown): string {
  return typeof value === 'string' ? `'${value}'` : String(value);
}

function checkSeries(method: string, product: string, version: string, example: string): string {
  if (typeof version !== 'string' || !/^\d+\.\d+$/.test(version)) {
    throw new RestorableError(`SourceEngine.${method}(${shown(version)})`,
      `version must be a ${product} release series as a string, for example '${example}'`);
  }
  return version;
}

/** Where the database listens; an `rds.Endpoint` fits. It may be a read replica's. */
export interface SourceEndpoint {
  readonly hostname: string;
  readonly port: number;
}

/** One database to back up. */
export interface BackupSourceProps {
  /** The source's name: its S3 prefix, metric dimension and task group. 1 to 48 characters of a-z, 0-9 and '-'. */
  readonly name: string;
  /** The engine, for example `SourceEngine.postgres('16')`. */
  readonly engine: SourceEngine;
  /**
   * The database user's secret, in the RDS JSON shape `{host,port,username,password,dbname}`. Only this source's
   * task role may read it; the agent reads it itself (`--secret-id`), so the password is never in the task definition.
   * A secret encrypted with a customer-managed key must carry it (`Secret.fromSecretAttributes({ secretCompleteArn,
   * encryptionKey })`), so that the role is also granted kms:Decrypt.
   */
  readonly secret: secretsmanager.ISecret;
  /**
   * Where to connect, overriding the secret's host and port: for example a read replica, so that dumps do not
   * load the primary.
   * @default - the host and port in the secret
   */
  readonly endpoint?: SourceEndpoint;
  /**
   * The database to dump.
   * @default - the secret's `dbname`
   */
  readonly database?: string;
  /**
   * A MongoDB source's login and TLS beyond the secret: its authentication database and mechanism, and TLS with
   * the CA file to check the server against (Amazon DocumentDB). Refused for other engines.
   * @default - what the secret says (`authSource`, `authMechanism`, `tls` or `ssl`, `tlsCAFile`), else the `admin`
   * database, a negotiated SCRAM mechanism and no TLS
   */
  readonly mongodb?: MongoDbConnection;
  /**
   * Recovery point objective: the most data you accept to lose. The schedule follows from it (an RPO of 1 hour
   * gives a backup every hour, on the hour), and monitoring uses it as the freshness threshold. At least 15 minutes.
   * @default Duration.days(1)
   */
  readonly rpo?: Duration;
  /**
   * An explicit EventBridge Scheduler cron expression in UTC, `minutes hours day-of-month month day-of-week year`
   * (for example '30 2 * * ? *'); it replaces the schedule derived from the RPO.
   * @default - derived from the RPO
   */
  readonly cron?: string;
  /**
   * The database's network side (an RDS instance or cluster, or `ec2.Connections` around its security group):
   * the backup tasks are allowed in on the endpoint's port.
   * @default - no rule is added: the database must already admit the backup tasks' security group
   */
  readonly peer?: ec2.IConnectable;
  /**
   * Fargate vCPU units of this source's task (256 = 1/4 vCPU). zstd uses every core.
   * @default 1024
   */
  readonly cpu?: number;
  /**
   * Fargate memory of this source's task, in MiB; it must suit the CPU (Fargate's table of valid pairs).
   * @default 2048
   */
  readonly memoryLimitMiB?: number;
  /**
   * Fargate ephemeral storage in GiB (21 to 200). Backups stream and need none; restores of parallel dumps spool.
   * @default 21 (Fargate's default, no override)
   */
  readonly ephemeralStorageGiB?: number;
  /**
   * How big the database is expected to get. The agent sizes its multipart upload parts from the larger of this
   * and the database's own statistics (`--expected-size`), so that a dump that outgrows the statistics still fits
   * in S3's 10,000 parts.
   * @default - the database's own size estimate, taken at the start of each backup
   */
  readonly expectedSize?: Size;
  /**
   * The scratch server image that restore tests load this source's backups into, for example a PostGIS image. It
   * is used as given (pin it with `@sha256:…` to run one build); it must be the engine's official image or built on
   * it, since the restore test relies on its entrypoint, environment variables and health-check tools.
   * @default - the official image of the engine's version from ECR Public, by tag, such as
   * `public.ecr.aws/docker/library/postgres:16`
   */
  readonly scratchImage?: ecs.ContainerImage;
  /**
   * Where the database runs. Only a server of your own lets Restorable archive its WAL (`grantWalPush`); Amazon RDS
   * and Aurora have their own point-in-time recovery instead.
   * @default - RDS or Aurora when `peer` is an RDS instance or cluster, or the endpoint's host name is an RDS one;
   * a server of your own otherwise
   */
  readonly hosting?: DatabaseHosting;
  /**
   * Continuous WAL archiving, for point-in-time recovery with an RPO of seconds (a self-managed PostgreSQL server
   * only; refused in words for RDS, Aurora and other engines): a WAL receiver service (or the server's own
   * archive_command with wal-push), scheduled base backups, and monitoring of the archive's age. Dumps go on as
   * scheduled: they stay the portable, restore-tested copy.
   * @default - no WAL archiving: the data at risk is everything since the last dump
   */
  readonly walArchiving?: WalArchiving;
  /**
   * Continuous streaming of a MariaDB source's binary logs, for point-in-time recovery with an RPO of seconds (MariaDB
   * of your own or on Amazon RDS for MariaDB; refused in words for MySQL 8, Aurora and PostgreSQL): a binlog streamer
   * service, dumps that record where they sit in the binlog (`backup --binlog-coordinates`), and monitoring of the
   * stream's age and gaps. The server needs log_bin ON and binlog_format ROW (on RDS: automated backups on, a parameter
   * group with binlog_format ROW, and `binlog retention hours` set). Dumps go on as scheduled: a restore to a time
   * starts from the newest dump before it.
   * @default - no binlog streaming: the data at risk is everything since the last dump
   */
  readonly binlogStreaming?: BinlogStreaming;
}

/** Below this, dumps are the wrong tool. */
export const MINIMUM_RPO = Duration.minutes(15);
export const DEFAULT_RPO = Duration.days(1);

/** Intervals that divide an hour or a day evenly, so that backups fall on round times. */
const MINUTE_STEPS = [15, 20, 30];
const HOUR_STEPS = [1, 2, 3, 4, 6, 8, 12];

/** The throttle that makes an RPO under 15 minutes an error, in words that say what to use instead. */
export function rpoProblem(rpo: Duration): string | undefined {
  if (rpo.toMinutes({ integral: false }) >= MINIMUM_RPO.toMinutes()) return undefined;
  return `rpo: an RPO of ${rpo.toHumanString()} is under the 15-minute minimum: full dumps are not continuous backup. ` +
    'Use 15 minutes or more; a shorter RPO needs WAL archiving (walArchiving, for a PostgreSQL server of your own), ' +
    'or your database service\'s own point-in-time restore';
}

/**
 * The cron expression (Scheduler syntax, UTC) of the longest round interval that does not exceed the RPO:
 * 15, 20 or 30 minutes, 1 to 12 hours, or daily at midnight. Longer RPOs still get daily backups.
 */
export function cronForRpo(rpo: Duration): string {
  const minutes = rpo.toMinutes({ integral: false });
  if (minutes < 60) return `0/${largestAtMost(MINUTE_STEPS, minutes)} * * * ? *`;
  const hours = largestAtMost(HOUR_STEPS, minutes / 60);
  if (minutes < 24 * 60) return hours === 1 ? '0 * * * ? *' : `0 0/${hours} * * ? *`;
  return '0 0 * * ? *';
}

function largestAtMost(steps: readonly number[], limit: number): number {
  return [...steps].reverse().find((step) => step <= limit) ?? steps[0];
}

const CRON_FIELDS = [
  { name: 'minutes', pattern: /^[\d,\-*/]+$/ },
  { name: 'hours', pattern: /^[\d,\-*/]+$/ },
  { name: 'day-of-month', pattern: /^[\d,\-*/?LW]+$/ },
  { name: 'month', pattern: /^[\d,\-*/A-Z]+$/ },
  { name: 'day-of-week', pattern: /^[\d,\-*/?LA-Z#]+$/ },
  { name: 'year', pattern: /^[\d,\-*/]+$/ },
];

/** What is wrong with a Scheduler cron expression, or undefined when it looks valid. */
export function cronProblem(cron: string): string | undefined {
  const example = "for example '30 2 * * ? *' (02:30 UTC every day)";
  const fields = cron.trim().replace(/^cron\((.*)\)$/, '$1').trim().split(/\s+/);
  if (fields.length !== 6) {
    return `cron '${cron}' has ${fields.length} fields; give 6: minutes hours day-of-month month day-of-week year, ${example}`;
  }
  const bad = CRON_FIELDS.find((field, i) => !field.pattern.test(fields[i].toUpperCase()));
  if (bad) return `cron '${cron}' has an invalid ${bad.name} field '${fields[CRON_FIELDS.indexOf(bad)]}'; ${example}`;
  const [, , dayOfMonth, , dayOfWeek] = fields;
  if ((dayOfMonth === '?') === (dayOfWeek === '?')) {
    return `cron '${cron}' must have '?' in exactly one of day-of-month and day-of-week, ${example}`;
  }
  if (runsPerHour(fields[0]) > 4) {
    return `cron '${cron}' runs more than 4 times an hour: full dumps are not continuous backup; ` +
      'run at most every 15 minutes and look to WAL/binlog archiving for a shorter RPO';
  }
  return undefined;
}

/** How many times an hour a minutes field fires (an upper bound for forms it does not parse). */
function runsPerHour(minutes: string): number {
  return minutes.split(',').reduce((sum, part) => {
    const [range, step] = part.split('/');
    const stepSize = step === undefined ? 1 : Number(step);
    if (!Number.isInteger(stepSize) || stepSize < 1) return sum + 60;
    const [from, to] = range === '*' ? [0, 59] : range.includes('-') ? range.split('-').map(Number) : [Number(range), step === undefined ? Number(range) : 59];
    return sum + Math.floor((to - from) / stepSize) + 1;
  }, 0);
}

/** Fargate's valid memory (MiB) for each CPU size. */
const FARGATE_MEMORY: Record<number, { min: number; max: number; step: number }> = {
  256: { min: 512, max: 2048, step: 512 },
  512: { min: 1024, max: 4096, step: 1024 },
  1024: { min: 2048, max: 8192, step: 1024 },
  2048: { min: 4096, max: 16384, step: 1024 },
  4096: { min: 8192, max: 30720, step: 1024 },
  8192: { min: 16384, max: 61440, step: 4096 },
  16384: { min: 32768, max: 122880, step: 8192 },
};

/** What is wrong with a source's task size, or undefined. */
export function taskSizeProblem(cpu: number, memoryMiB: number, ephemeralGiB: number | undefined): string | undefined {
  const memory = FARGATE_MEMORY[cpu];
  if (!memory) return `cpu ${cpu} is not a Fargate size: use one of ${Object.keys(FARGATE_MEMORY).join(', ')}`;
  if (memoryMiB < memory.min || memoryMiB > memory.max || (memoryMiB - memory.min) % memory.step !== 0) {
    return `memoryLimitMiB ${memoryMiB} does not suit cpu ${cpu}: Fargate allows ${memory.min} to ${memory.max} in steps of ${memory.step}`;
  }
  if (ephemeralGiB !== undefined && (!Number.isInteger(ephemeralGiB) || ephemeralGiB < 21 || ephemeralGiB > 200)) {
    return `ephemeralStorageGiB ${ephemeralGiB} is out of range: Fargate allows 21 to 200`;
  }
  return undefined;
}

/** A source as DatabaseBackups runs it: what monitoring and restore testing need to know about it. */
export interface BackupSource {
  readonly name: string;
  readonly engine: SourceEngine;
  /** The freshness threshold for monitoring. */
  readonly rpo: Duration;
  /** The schedule's cron expression (UTC), derived from the RPO unless given. */
  readonly cron: string;
  /** The role the source's tasks run with. */
  readonly taskRole: iam.IRole;
  readonly schedule: scheduler.ISchedule;
  readonly secret: secretsmanager.ISecret;
  readonly expectedSize?: Size;
  /** The scratch server image restore tests use. */
  readonly scratchImage: ecs.ContainerImage;
  /** Where the database runs (BackupSourceProps.hosting, or what its peer or endpoint shows). */
  readonly hosting: DatabaseHosting;
  /** The source's WAL archiving with every default decided; undefined when its WAL is not archived. */
  readonly walArchiving?: WalArchivingSettings;
  /** The base backups' schedule, when the WAL is archived. */
  readonly baseBackupSchedule?: scheduler.ISchedule;
  /** The WAL receiver, when the WAL is archived with WalArchiveMode.RECEIVE. */
  readonly walReceiver?: WalReceiver;
  /** The source's binlog streaming with every default decided; undefined when its binlogs are not streamed. */
  readonly binlogStreaming?: BinlogStreamingSettings;
  /** The binlog streamer, when the binlogs are streamed. */
  readonly binlogStreamer?: BinlogStreamer;
}
