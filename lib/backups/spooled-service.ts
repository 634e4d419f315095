/**
 * What a WAL receiver and a binlog streamer share: one source's long-lived agent command as an ECS Fargate service of
 * one task, never two at once, spooling what it streams to the source's directory on the shared EFS spool before it
 * uploads it, with a task role of its own and an alarm when it is down. Each kind says only what differs: its
 * command, what its role may write, and the words of its role and alarm.
 */
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
import { WalSpool } from './wal-spool';
import type { BackupKeys } from '../keys/backup-keys';
import type { BackupBucket } from '../store/backup-bucket';

/** Where the spool is mounted in the service's container. */
export const SPOOL_PATH = '/spool';
/** How long ECS waits after SIGTERM before SIGKILL: the service uploads the file it is writing in that time. Fargate's most. */
const STOP_TIMEOUT = Duration.seconds(120);
/** How long the service may be down before its alarm fires: a deployment or a restart takes a minute or two. */
export const DOWN_MINUTES = 5;

/** What every spooled service of a source is given. */
export interface SpooledServiceProps {
  /** The source and the connection the service streams from (the replication secret, the endpoint). */
  readonly connection: AgentConnection;
  readonly store: BackupBucket;
  readonly keys: BackupKeys;
  readonly cluster: ecs.ICluster;
  readonly subnets: ec2.SubnetSelection;
  /** The backup tasks' group (the databases admit it, and it reaches the AWS APIs); the spool's client group is added. */
  readonly securityGroup: ec2.ISecurityGroup;
  readonly spool: WalSpool;
  readonly image: ecs.ContainerImage;
  readonly executionRole: iam.IRole;
  readonly logGroup: logs.ILogGroup;
  /** The IAM path of the task role: under ROLE_PATHS.dump, as every role that only adds backups. */
  readonly rolePath: string;
  /** Where the service-down alarm notifies. @default - no notification, the alarm still changes state */
  readonly alarmTopic?: sns.ITopic;
  /** @default 512 */
  readonly cpu?: number;
  /** @default 1024 */
  readonly memoryLimitMiB?: number;
}

/** What one kind of spooled service is: everything the shared construct does not decide. */
export interface SpooledServiceKind {
  /** The agent's command, such as `wal-receive`. */
  readonly command: string;
  /** The command's own options, after the source's connection and `--spool`. */
  readonly options: string[];
  readonly roleDescription: string;
  /** What the task role may do in the store. */
  readonly grantStore: (role: iam.IRole) => void;
  /** The log stream prefix, such as `wal-receiver-orders-db`. */
  readonly logStreamPrefix: string;
  /** The down alarm's description: what it means, in words, and what to look at. */
  readonly downAlarmDescription: string;
}

/**
 * One source's spooled agent service: its task role (the kind's store grant, the connection's secret, its spool
 * directory), its task definition with the spool mounted over TLS and IAM, the service of one task (a deployment
 * stops the running task before it starts the new one: minimum healthy 0 %, maximum 100 %; a task that keeps failing
 * to start is rolled back by the deployment circuit breaker, one that stops is replaced by ECS) and its down alarm.
 */
export abstract class SpooledService extends Construct {
  public readonly service: ecs.FargateService;
  public readonly taskRole: iam.IRole;
  /** The service has had no running task for 5 minutes (Container Insights' RunningTaskCount). */
  public readonly downAlarm: cloudwatch.Alarm;

  protected constructor(scope: Construct, id: string, props: SpooledServiceProps, kind: SpooledServiceKind) {
    super(scope, id);
    const source = props.connection;
    const role = new InlinePolicyRole(this, 'TaskRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': Stack.of(this).account } },
      }),
      path: props.rolePath,
      description: kind.roleDescription,
    });
    kind.grantStore(role);
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
      command: [kind.command, ...sourceArguments(props.store, props.keys, source), '--spool', SPOOL_PATH, ...kind.options, '--json'],
      stopTimeout: STOP_TIMEOUT,
      logging: ecs.LogDrivers.awsLogs({ logGroup: props.logGroup, streamPrefix: kind.logStreamPrefix }),
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
      alarmDescription: kind.downAlarmDescription,
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

  /** The service's running tasks, per minute (ECS Container Insights, which the cluster must have). */
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
