/**
 * The continuous archiving of DatabaseBackups' sources: a WAL-archived PostgreSQL source's base backups and WAL
 * receiver, a MariaDB source's binlog streamer. The spooled services share one EFS spool (created with the first),
 * the backup tasks' cluster, subnets, security group, image and logs.
 */
import { Annotations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { AgentConnection, AgentRun, AgentSchedules, sourceArguments } from './agent-schedules';
import type { BackupSourceProps } from './backup-source';
import { BinlogStreamer } from './binlog-streamer';
import { BinlogStreamingSettings } from './binlog-streaming';
import { grantSecretRead } from './secret-read';
import { SpooledServiceProps } from './spooled-service';
import { WalArchiveMode, WalArchivingSettings } from './wal-archive';
import { WalReceiver } from './wal-receiver';
import { WalSpool } from './wal-spool';
import type { BackupKeys } from '../keys/backup-keys';
import type { BackupBucket } from '../store/backup-bucket';

/** The warning id a user acknowledges once the cluster they gave has Container Insights, which the spooled services' down alarms read. */
export const RECEIVER_INSIGHTS_WARNING = '@restorable/database-backups:receiver-container-insights';

/** What DatabaseBackups shares with its sources' continuous archiving. */
export interface ContinuousArchivingProps {
  /** Where the shared spool is created, as `WalSpool`: the DatabaseBackups. */
  readonly owner: Construct;
  readonly store: BackupBucket;
  readonly keys: BackupKeys;
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.SubnetSelection;
  readonly cluster: ecs.ICluster;
  /** The cluster is the user's own, which may lack the Container Insights the down alarms read. */
  readonly userCluster: boolean;
  readonly securityGroup: ec2.ISecurityGroup;
  readonly image: ecs.ContainerImage;
  readonly executionRole: iam.IRole;
  readonly logGroup: logs.ILogGroup;
  readonly rolePath: string;
  readonly alarmTopic?: sns.ITopic;
  readonly schedules: AgentSchedules;
  /** Lets a secret through the Secrets Manager endpoint, when DatabaseBackups made one. */
  readonly allowSecret: (secret: secretsmanager.ISecret) => void;
}

/** The resources of one source's WAL archiving. */
export interface WalArchivingResources {
  readonly baseBackupSchedule: ReturnType<AgentSchedules['schedule']>;
  readonly walReceiver?: WalReceiver;
}

export class ContinuousArchiving {
  private spool?: WalSpool;

  constructor(private readonly props: ContinuousArchivingProps) {}

  /**
   * A WAL-archived source's base backups, scheduled with its dump task's role and size (its prefix grant covers base/),
   * and with RECEIVE its WAL receiver on the shared spool. With Object Lock both place legal holds (the receiver on
   * whole segments and history files only), which the hold keeper, told the source is WAL-archived, releases below
   * the base backup a restore test settled.
   */
  public archiveWal(scope: Construct, source: BackupSourceProps, settings: WalArchivingSettings,
    run: Omit<AgentRun, 'description' | 'cron' | 'command'>): WalArchivingResources {
    const { store, keys } = this.props;
    const connection = { name: source.name, secret: settings.replicationSecret, endpoint: source.endpoint };
    if (settings.replicationSecret !== source.secret) {
      grantSecretRead(settings.replicationSecret, run.taskRole);
      this.props.allowSecret(settings.replicationSecret);
    }
    const baseBackupSchedule = this.props.schedules.schedule(scope, 'BaseBackupSchedule', {
      ...run, cron: settings.baseBackupCron, description: `Restorable: base backup of ${source.name} for point-in-time recovery`,
      command: ['basebackup', ...sourceArguments(store, keys, connection), ...(store.objectLockEnabled ? ['--legal-hold'] : []), '--json'],
    });
    if (settings.mode !== WalArchiveMode.RECEIVE) return { baseBackupSchedule };
    this.warnInsights(scope, `The WAL receiver of '${source.name}'`);
    return { baseBackupSchedule, walReceiver: new WalReceiver(scope, 'WalReceiver', { ...this.spooledServiceProps(connection), settings }) };
  }

  /**
   * A MariaDB source's binlog streamer on the shared spool, connecting with the replication secret, which only the
   * streamer's role reads (the dumps connect with the source's own).
   */
  public streamBinlogs(scope: Construct, source: BackupSourceProps, settings: BinlogStreamingSettings): BinlogStreamer {
    const connection = { name: source.name, secret: settings.replicationSecret, endpoint: source.endpoint };
    if (settings.replicationSecret !== source.secret) this.props.allowSecret(settings.replicationSecret);
    this.warnInsights(scope, `The binlog streamer of '${source.name}'`);
    return new BinlogStreamer(scope, 'BinlogStreamer', { ...this.spooledServiceProps(connection), settings });
  }

  private spooledServiceProps(connection: AgentConnection): SpooledServiceProps {
    const { props } = this;
    this.spool ??= new WalSpool(props.owner, 'WalSpool', { vpc: props.vpc, subnets: props.subnets });
    return {
      connection, store: props.store, keys: props.keys, cluster: props.cluster, subnets: props.subnets, securityGroup: props.securityGroup,
      spool: this.spool, image: props.image, executionRole: props.executionRole, logGroup: props.logGroup, rolePath: props.rolePath,
      alarmTopic: props.alarmTopic,
    };
  }

  private warnInsights(scope: Construct, service: string): void {
    if (!this.props.userCluster) return;
    Annotations.of(scope).addWarningV2(RECEIVER_INSIGHTS_WARNING, `${service} runs in a cluster of your own: its down ` +
      'alarm reads Container Insights\' RunningTaskCount, and treats no data as down. Turn Container Insights on for that cluster, or the ' +
      'alarm stays in ALARM; then acknowledge this warning.');
  }
}
