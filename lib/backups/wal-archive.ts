/**
 * Continuous WAL archiving of a PostgreSQL source: which sources can have it, since only a self-managed server lets
 * an outside archiver have its WAL (the hosting and the streaming timing are continuous.ts', shared with binlog
 * streaming), and how its WAL is archived (the settings a source gives, with their defaults and checks). The grants themselves are the store's (BackupBucket.grantWalPush, grantWalFetch); the receiver is
 * WalReceiver, the base backups' schedule AgentSchedules'.
 */
import { Duration } from 'aws-cdk-lib';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { BackupSource, DatabaseFlavour, cronProblem } from './backup-source';
import { DEFAULT_PARTIAL_UPLOAD_INTERVAL, DEFAULT_STREAMED_MAX_AGE, DatabaseHosting, maxArchiveAgeProblem, partialIntervalProblem } from './continuous';
import { SLOT_NAME_PATTERN } from '../contract/wal';
import { RestorableError } from '../shared/errors';

export { DatabaseHosting, hostingOf } from './continuous';

/** What decides whether a source's WAL can be archived. */
export type WalArchivedSource = Pick<BackupSource, 'name' | 'engine' | 'hosting'>;

/** Why a source's WAL cannot be archived by Restorable, or undefined when it can. */
export function walArchivingProblem(source: WalArchivedSource): string | undefined {
  if (source.engine.flavour !== DatabaseFlavour.POSTGRES) {
    return `source '${source.name}' is ${source.engine}: WAL archiving is for PostgreSQL sources`;
  }
  if (source.hosting === DatabaseHosting.SELF_MANAGED) return undefined;
  const product = source.hosting === DatabaseHosting.AURORA ? 'Aurora' : 'RDS';
  return `source '${source.name}' runs on Amazon ${product}, which allows no archive_command or outside physical replication: ` +
    `use ${product}'s own point-in-time recovery (automated backups, retention up to 35 days) for an RPO of minutes, and keep ` +
    'Restorable\'s dumps as the encrypted, offsite, restore-tested copy. If the server is in fact your own, set hosting: DatabaseHosting.SELF_MANAGED';
}

/** How a source's WAL leaves its server. */
export enum WalArchiveMode {
  /**
   * Pulled: a WAL receiver (`restorable wal-receive`, an ECS service per source) streams it over a replication slot
   * and uploads each finished file, and the segment being written every few seconds: an RPO of seconds, nothing to
   * install on the database host.
   */
  RECEIVE = 'receive',
  /**
   * Pushed: the server's archive_command runs `restorable wal-push %p` on the database host, whose role is granted
   * with `DatabaseBackups.grantWalPush`. A file is archived once PostgreSQL finishes it: the RPO is archive_timeout.
   */
  PUSH = 'push',
}

/** Continuous WAL archiving of a self-managed PostgreSQL source, for point-in-time recovery. */
export interface WalArchiving {
  /**
   * How the WAL leaves the server.
   * @default WalArchiveMode.RECEIVE
   */
  readonly mode?: WalArchiveMode;
  /**
   * How often the receiver uploads the segment it is writing, when it has grown: the most committed WAL that can be
   * lost with the server. Whole seconds, 1 to 300. Each upload is a new write-once object (and, with Object Lock, a
   * legal hold): 17,280 objects a day at 5 seconds while the server writes. Only for RECEIVE.
   * @default Duration.seconds(5)
   */
  readonly partialUploadInterval?: Duration;
  /**
   * When base backups (`restorable basebackup`) run: an EventBridge Scheduler cron expression in UTC, as for `cron`.
   * Point-in-time recovery starts from the newest base backup before the target, then replays WAL from there.
   * @default '0 2 * * ? *' - daily at 02:00 UTC
   */
  readonly baseBackupCron?: string;
  /**
   * The secret of a user with the REPLICATION attribute, which the receiver and base backups connect as (RDS JSON
   * shape; the host and port come from the source's endpoint when it has one). pg_hba.conf must admit it for
   * `replication` connections from the backup tasks' subnets.
   * @default - the source's own secret, whose user must then have REPLICATION
   */
  readonly replicationSecret?: secretsmanager.ISecret;
  /**
   * The replication slot the receiver streams from, created on first start if absent. Only for RECEIVE.
   * @default - `restorable_` and the source's name with '-' as '_', such as `restorable_orders_db`
   */
  readonly slotName?: string;
  /**
   * How old the newest archived WAL may get before monitoring alarms, counted from S3's own timestamps. A server that
   * writes nothing archives nothing: for one that is quiet for longer, give its longest quiet time, or have it write
   * a heartbeat (a row updated every minute) so that a silent archive always means a broken one.
   * @default - 5 minutes with RECEIVE; 15 minutes with PUSH, which archives only when a segment fills or
   * archive_timeout passes (set archive_timeout well under this)
   */
  readonly maxArchiveAge?: Duration;
  /**
   * How old the newest base backup may get before monitoring alarms: the base backup schedule's interval plus the
   * time a base backup takes. Give it with a baseBackupCron that runs less often than daily.
   * @default Duration.hours(25)
   */
  readonly maxBaseBackupAge?: Duration;
}

/** A source's WAL archiving as it runs: every setting decided. */
export interface WalArchivingSettings {
  readonly mode: WalArchiveMode;
  /** Only with RECEIVE. */
  readonly partialUploadInterval?: Duration;
  readonly baseBackupCron: string;
  readonly replicationSecret: secretsmanager.ISecret;
  /** Only with RECEIVE. */
  readonly slotName?: string;
  readonly maxArchiveAge: Duration;
  readonly maxBaseBackupAge: Duration;
}

/** The default base backup schedule: daily at 02:00 UTC. */
export const DEFAULT_BASE_BACKUP_CRON = '0 2 * * ? *';

/** The replication slot a receiver uses by default: `restorable_` and the source's name, '-' as '_'. */
export function defaultSlotName(source: string): string {
  return `restorable_${source.replace(/-/g, '_')}`;
}

/**
 * A source's WAL archiving with its defaults filled in, or a RestorableError in words when the source cannot archive
 * WAL (not PostgreSQL, or on RDS or Aurora) or a setting is out of range.
 */
export function resolveWalArchiving(scope: Construct, source: WalArchivedSource, given: WalArchiving, sourceSecret: secretsmanager.ISecret): WalArchivingSettings {
  const fail = (problem: string): never => {
    throw new RestorableError(scope, `source '${source.name}': walArchiving: ${problem}`);
  };
  const problem = walArchivingProblem(source);
  if (problem) throw new RestorableError(scope, problem);
  const mode = given.mode ?? WalArchiveMode.RECEIVE;
  if (!Object.values(WalArchiveMode).includes(mode)) fail(`mode '${mode}' is not a WalArchiveMode: use WalArchiveMode.RECEIVE or WalArchiveMode.PUSH`);
  const receive = mode === WalArchiveMode.RECEIVE;
  if (!receive && (given.partialUploadInterval || given.slotName)) {
    fail('partialUploadInterval and slotName are for WalArchiveMode.RECEIVE: with PUSH, the server\'s archive_command archives whole files');
  }
  const interval = given.partialUploadInterval ?? DEFAULT_PARTIAL_UPLOAD_INTERVAL;
  const intervalError = partialIntervalProblem(interval);
  if (intervalError) fail(intervalError);
  const slotName = given.slotName ?? defaultSlotName(source.name);
  if (!SLOT_NAME_PATTERN.test(slotName)) fail(`slotName '${slotName}' must be 1 to 63 characters of a-z, 0-9 and '_', as PostgreSQL requires`);
  const cronError = given.baseBackupCron === undefined ? undefined : cronProblem(given.baseBackupCron);
  if (cronError) fail(`baseBackupCron: ${cronError}`);
  const maxArchiveAge = given.maxArchiveAge ?? (receive ? DEFAULT_STREAMED_MAX_AGE : Duration.minutes(15));
  const maxAgeError = maxArchiveAgeProblem(maxArchiveAge, receive ? interval : undefined);
  if (maxAgeError) fail(maxAgeError);
  return {
    mode,
    partialUploadInterval: receive ? interval : undefined,
    baseBackupCron: given.baseBackupCron?.trim().replace(/^cron\((.*)\)$/, '$1') ?? DEFAULT_BASE_BACKUP_CRON,
    replicationSecret: given.replicationSecret ?? sourceSecret,
    slotName: receive ? slotName : undefined,
    maxArchiveAge,
    maxBaseBackupAge: given.maxBaseBackupAge ?? Duration.hours(25),
  };
}
