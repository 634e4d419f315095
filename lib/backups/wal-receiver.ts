import { Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { AGENT_RUNTIME_PLATFORM } from './agent-image';
import { AGENT_CONTAINER_NAME, AgentConnection, sourceArguments } from './agent-schedules';
import { InlinePolicyRole } from './inline-policy-role';
import { grantSecretRead } from './secret-read';
import { WalArchivingSettings } from './wal-archive';
import { WalSpool } from './wal-spool';
import type { BackupKeys } from '../keys/backup-keys';
import type { BackupBucket } from '../store/backup-bucket';

/** Where the spool is mounted in the receiver's container. */
export const SPOOL_PATH = '/spool';
/** How long ECS waits after SIGTERM before SIGKILL: the receiver uploads the partial segment in that time. Fargate's most. */
const STOP_TIMEOUT = Duration.seconds(120);
/** How long the receiver may be down before its alarm fires: a deployment or a restart takes a minute or two. */
const DOWN_MINUTES = 5;

export interface WalReceiverProps {
  /** The source and the connection the receiver streams from (the replication secret, the endpoint). */
  readonly connection: AgentConnection;
  readonly settings: WalArchivingSettings;
  readonly store: BackupBucket;
  readonly keys: BackupKeys;
  readonly cluster: ecs.ICluster;
  readonly subnets: ec2.SubnetSelection;
  /** The backup tasks' group (the databases admit it, and it reaches the AWS APIs); the spool's receiver group is added. */
  readonly securityGroup: ec2.ISecurityGroup;
  readonly spool: WalSpool;
  readonly image: ecs.ContainerImage;
  readonly executionRole: iam.IRole;
  readonly logGroup: logs.ILogGroup;
  /** The IAM path of the task role: under ROLE_PATHS.dump, as every role that only adds backups. */
  readonly rolePath: string;
  /** Where the receiver-down alarm notifies. @default - no notification, the alarm still changes state */
  readonly alarmTopic?: sns.ITopic;
  /** @default 512 */
  readonly cpu?: number;
  /** @default 1024 */
  readonly memoryLimitMiB?: number;
}

/**
 * One source's WAL receiver: `restorable wal-receive` as an ECS Fargate service of one task, streaming the source's
 * WAL over its replication slot into a spool directory on EFS and uploading each file, and the segment being written
 * every partialUploadInterval, into the store.
 *
 * Never two receivers on one slot: a deployment stops the running task before it starts the new one (minimum
 * healthy 0 %, maximum 100 %); a task that keeps failing to start is rolled back by the deployment circuit breaker,
 * and a task that stops is replaced by ECS. Its role may add WAL under the source's `wal/` prefix (tagged with the
 * daily tier, write-once, legal holds placed only) and read the replication secret, and nothing else: not read a WAL
 * file's bytes, not delete, not touch the source's dumps or another source.
 */
export class WalReceiver extends Construct {
  public readonly service: ecs.FargateService;
  public readonly taskRole: iam.IRole;
  /** The source's receiver has had no running task for 5 minutes (Container Insights' RunningTaskCount). */
  public readonly downAlarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: WalReceiverProps) {
    super(scope, id);
    const { connection: source, settings } = props;
    const role = new InlinePolicyRole(this, 'TaskRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': Stack.of(this).account } },
      }),
      path: props.rolePath,
      description: `Restorable WAL receiver of source ${source.name}: adds WAL under its wal/ prefix, reads its replication secret`,
    });
    props.store.grantWalPush(role, source.name);
    grantSecretRead(source.secret, role);
    this.taskRole = role;

    const accessPoint = props.spool.addSource(this, source.name);
    props.spool.grantMount(role, accessPoint);
    const taskDefinition = new ecs.FargateTaskDefinition(this, 'Task', {
      cpu: props.cpu ?? 512,
      memoryLimitMiB: props.memoryLimitMiB ?? 1024,
      executionRole: props.executionRole,
      taskRole: role,
      runtimePlatform: AGENT_RUNTIME_PLATFORM,
      volumes: [{
        name: 'spool',
        efsVolumeConfiguration: {
          fileSystemId: props.spool.fileSystem.fileSystemId,
          transitEncryption: 'ENABLED',
          authorizationConfig: { accessPointId: accessPoint.accessPointId, iam: 'ENABLED' },
        },
      }],
    });
    const container = taskDefinition.addContainer(AGENT_CONTAINER_NAME, {
      image: props.image,
      essential: true,
      command: [
        'wal-receive', ...sourceArguments(props.store, props.keys, source),
        '--spool', SPOOL_PATH,
        '--slot', settings.slotName!,
        '--partial-interval', String(settings.partialUploadInterval!.toSeconds()),
        // Whole segments and history files only; the hold keeper releases them below the settled base backup.
        ...(props.store.objectLockEnabled ? ['--legal-hold'] : []),
        '--json',
      ],
      stopTimeout: STOP_TIMEOUT,
      logging: ecs.LogDrivers.awsLogs({ logGroup: props.logGroup, streamPrefix: `wal-receiver-${source.name}` }),
    });
    container.addMountPoints({ containerPath: SPOOL_PATH, sourceVolume: 'spool', readOnly: false });

    this.service = new ecs.FargateService(this, 'Service', {
      cluster: props.cluster,
      taskDefinition,
      desiredCount: 1,
      minHealthyPercent: 0,
      maxHealthyPercent: 100,
      circuitBreaker: { enable: true, rollback: true },
      vpcSubnets: props.subnets,
      securityGroups: [props.securityGroup, props.spool.receiverSecurityGroup],
      assignPublicIp: false,
      platformVersion: ecs.FargatePlatformVersion.LATEST,
    });

    this.downAlarm = new cloudwatch.Alarm(this, 'DownAlarm', {
      alarmDescription: `The WAL receiver of ${source.name} has had no running task for ${DOWN_MINUTES} minutes: its WAL is not being ` +
        'archived (the replication slot keeps it on the server, whose disk fills). See the receiver\'s logs and the service\'s events.',
      metric: this.metricRunningTasks(),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: DOWN_MINUTES,
      datapointsToAlarm: DOWN_MINUTES,
      // Container Insights reports nothing for a service with no task, and nothing without Container Insights.
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });
    if (props.alarmTopic) {
      this.downAlarm.addAlarmAction(new cwActions.SnsAction(props.alarmTopic));
      this.downAlarm.addOkAction(new cwActions.SnsAction(props.alarmTopic));
    }
  }

  /** The receiver's running tasks, per minute (ECS Container Insights, which the cluster must have). */
  public metricRunningTasks(options?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: 'ECS/ContainerInsights',
      metricName: 'RunningTaskCount',
      dimensionsMap: { ClusterName: this.service.cluster.clusterName, ServiceName: this.service.serviceName },
      statistic: cloudwatch.Stats.MINIMUM,
      period: Duration.minutes(1),
      ...options,
    });
  }
}
