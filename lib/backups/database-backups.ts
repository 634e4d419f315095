import { Duration, Names, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { AGENT_RUNTIME_PLATFORM, agentImage } from './agent-image';
import { BackupBucket } from '../store/backup-bucket';
import { AGENT_CONTAINER_NAME, AgentSchedules, agentSchedulerRole, sourceArguments } from './agent-schedules';
import { BackupJobAlerts } from './backup-job-alerts';
import { BackupKeys } from '../keys/backup-keys';
import { BackupMonitoring } from '../monitoring/backup-monitoring';
import {
  BackupSource, BackupSourceProps, DEFAULT_RPO, cronForRpo, cronProblem, rpoProblem, taskSizeProblem,
} from './backup-source';
import { Engine } from '../contract/manifest';
import { sourceNameProblem } from '../contract/names';
import { RestorableError } from '../shared/errors';
import { HoldKeeper } from './hold-keeper';
import { resolveBinlogStreaming } from './binlog-streaming';
import { hostingOf } from './continuous';
import { ContinuousArchiving } from './continuous-archiving';
import { resolveWalArchiving, walArchivingProblem } from './wal-archive';
import { grantSecretRead } from './secret-read';
import { AwsApiAccess } from './aws-api-access';
import { openDatabasePort } from './vpc-peers';
import { InlinePolicyRole } from './inline-policy-role';
import { acknowledgeNag } from '../shared/nag';
import { ROLE_PATHS } from '../shared/trust-boundaries';
import { mongoArguments, mongoConnectionProblem } from './mongodb-connection';
import { warnEngine } from './source-warnings';

export interface DatabaseBackupsProps {
  /** Where backups go. Each source's task may write only under its own prefix. */
  readonly store: BackupBucket;
  /** The age key pair: tasks encrypt to its public recipient and never see the identity. */
  readonly keys: BackupKeys;
  /** The VPC the backup tasks run in; it must reach the databases. */
  readonly vpc: ec2.IVpc;
  /**
   * The ECS cluster to run the tasks in. It needs Container Insights for the WAL receivers' down alarms.
   * @default - a cluster with Container Insights is created in `vpc`
   */
  readonly cluster?: ecs.ICluster;
  /**
   * The subnets the tasks run in.
   * @default - the VPC's private subnets with egress, or its isolated subnets when it has none
   */
  readonly subnets?: ec2.SubnetSelection;
  /**
   * Create the VPC endpoints the tasks need, so that they run in subnets without internet access: an S3 gateway
   * endpoint and interface endpoints for Secrets Manager, ECR (API and Docker), CloudWatch Logs and Monitoring.
   * The tasks' security group then lets them out on HTTPS only to those endpoints and to S3's prefix list (looked up
   * for the stack's account and region; an environment-agnostic stack falls back to HTTPS anywhere, and says so).
   *
   * The endpoints get policies: S3 reaches only the store's bucket and the layer bucket ECR serves images from,
   * Secrets Manager only the sources' secrets and the age identity, and ECR, Logs and Monitoring serve only this
   * account's principals (so that no one ships data out with another account's credentials). An endpoint's policy
   * holds for everything that uses it, and private DNS makes these endpoints the VPC's way to Secrets Manager, ECR, CloudWatch
   * Logs and Monitoring (and the gateway the selected subnets' way to S3 in this region): other workloads in this VPC
   * get the same limits. Where the VPC has other tenants, keep this false and give it endpoints of your own, which
   * Restorable never restricts.
   * @default false - the subnets must route to those services (a NAT gateway, or endpoints of your own), and the
   * tasks' security group allows HTTPS to any address, since the AWS APIs are then reached through NAT at their
   * public addresses
   */
  readonly vpcEndpoints?: boolean;
  /**
   * How long the agent's JSON logs are kept.
   * @default logs.RetentionDays.ONE_YEAR
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * Monitoring that watches every source added here: its freshness threshold is the source's RPO plus an hour
   * (the time a backup may take), and its size is checked on every new backup.
   * @default - sources are not monitored
   */
  readonly monitoring?: BackupMonitoring;
  /**
   * Where failed backup jobs are reported, with the source, exit code and reason, and where the job-failure and
   * dead-letter alarms notify.
   * @default - the monitoring topic when `monitoring` is given, else no notifications (the alarms still change state)
   */
  readonly alarmTopic?: sns.ITopic;
  /**
   * How many times EventBridge Scheduler retries a RunTask call that failed (for example on throttling).
   * @default 3
   */
  readonly retryAttempts?: number;
  /**
   * How long a scheduled run may keep being retried before it goes to the dead-letter queue.
   * @default Duration.hours(1)
   */
  readonly maxEventAge?: Duration;
  /**
   * The agent's container image.
   * @default - built by `cdk deploy` from container/Dockerfile with the bundled agent
   */
  readonly image?: ecs.ContainerImage;
  /**
   * How long a newer backup's passing restore-test report must have been stored before the hold keeper releases the
   * legal holds of older backups: time for the alarms, or a person, to notice a fake backup that passed its test.
   * @default Duration.days(7)
   */
  readonly holdReleaseAfter?: Duration;
  /**
   * Sources to back up; more can be added with `addSource`.
   * @default - none
   */
  readonly sources?: BackupSourceProps[];
}

export { AGENT_CONTAINER_NAME } from './agent-schedules';
export { RECEIVER_INSIGHTS_WARNING } from './continuous-archiving';
export { BINLOG_RETENTION_WARNING } from './binlog-streaming';
export { MONGODB_UNTESTED_WARNING, MYSQL_UNTESTED_WARNING } from './source-warnings';
export { DOCUMENTDB_CA_WARNING, MONGODB_VERSION_WARNING } from './mongodb-connection';

/** Each agent engine's task definition's construct id, before `Task`. */
const TASK_DEFINITION_IDS: Record<Engine, string> = { [Engine.POSTGRES]: 'Postgres', [Engine.MYSQL]: 'MySql', [Engine.MONGODB]: 'MongoDb' };

const DEFAULT_CPU = 1024;
/** How long a backup run may take before the freshness check counts its source stale: RPO + this. */
const BACKUP_RUN_ALLOWANCE = Duration.hours(1);
const DEFAULT_MEMORY_MIB = 2048;

/**
 * Scheduled backups on ECS Fargate: one schedule per source, derived from its RPO, runs the agent with that
 * source's own task role (passed with `overrides.taskRoleArn`) and secret (`--secret-id`). Task definitions,
 * security group, logs, cluster and alerts are shared; a source adds only its role, its schedule and its network
 * rule, so that a stack holds a hundred sources.
 *
 * Network: the tasks' security group admits nothing and lets out only the databases' ports, to the VPC's CIDR
 * (one rule per distinct port), and HTTPS: to the VPC endpoints and S3's prefix list with `vpcEndpoints`, to any
 * address without. A database outside the VPC's CIDR (in a peered VPC, say) needs a rule of your own:
 * `backups.securityGroup.addEgressRule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(port))`.
 */
export class DatabaseBackups extends Construct {
  /** The cluster the tasks run in. */
  public readonly cluster: ecs.ICluster;
  /** The tasks' security group: databases admit it; it lets out only the databases' ports and HTTPS. */
  public readonly securityGroup: ec2.SecurityGroup;
  /** The security group of the interface endpoints created with `vpcEndpoints`; undefined without them. */
  public readonly endpointSecurityGroup?: ec2.SecurityGroup;
  /** The agent's JSON logs. */
  public readonly logGroup: logs.LogGroup;
  /** The failure rule, its metric and alarm, and the schedules' dead-letter queue with its alarm. */
  public readonly alerts: BackupJobAlerts;
  /**
   * Keeps and releases the sources' Object Lock legal holds: the only principal besides break-glass that may release
   * one. Undefined when the store has no Object Lock.
   */
  public readonly holdKeeper?: HoldKeeper;

  private readonly props: DatabaseBackupsProps;
  private readonly subnets: ec2.SubnetSelection;
  private readonly image: ecs.ContainerImage;
  private readonly executionRole: iam.Role;
  private readonly defaultTaskRole: iam.Role;
  private readonly schedules: AgentSchedules;
  /** Every task role lives under this IAM path, so that the scheduler may pass exactly these roles. */
  private readonly taskRolePath: string;
  private readonly taskDefinitions = new Map<Engine, ecs.FargateTaskDefinition>();
  private readonly sourceList: BackupSource[] = [];
  private readonly sourcesScope: Construct;
  /** The tasks' way to the AWS APIs: the VPC endpoints of `vpcEndpoints`, or NAT. */
  private readonly apis: AwsApiAccess;
  /** The sources' base backups, WAL receivers and binlog streamers. */
  private readonly archiving: ContinuousArchiving;

  constructor(scope: Construct, id: string, props: DatabaseBackupsProps) {
    super(scope, id);
    if (!props?.vpc) {
      throw new RestorableError(this, `vpc is required: the backup tasks run in a VPC that reaches the databases ` +
        '(for example ec2.Vpc.fromLookup(this, \'Vpc\', { vpcId }))');
    }
    if (!props.store || !props.keys) {
      throw new RestorableError(this, `store and keys are required: pass the BackupStore the tasks write to and the BackupKeys whose recipient they encrypt to`);
    }
    this.props = props;
    this.subnets = props.subnets ?? { subnetType: props.vpc.privateSubnets.length ? ec2.SubnetType.PRIVATE_WITH_EGRESS : ec2.SubnetType.PRIVATE_ISOLATED };
    if (this.subnets.subnetType === ec2.SubnetType.PRIVATE_ISOLATED && !props.vpcEndpoints) {
      throw new RestorableError(this, `the backup tasks would run in isolated subnets, which reach neither ECR, S3, Secrets Manager ` +
        'nor CloudWatch: set vpcEndpoints: true, or choose subnets with a NAT route');
    }
    this.image = props.image ?? agentImage(this);
    this.cluster = props.cluster ?? new ecs.Cluster(this, 'Cluster', { vpc: props.vpc, containerInsightsV2: ecs.ContainerInsights.ENABLED });
    this.securityGroup = new ec2.SecurityGroup(this, 'TaskSecurityGroup', {
      vpc: props.vpc,
      description: 'Restorable backup tasks: out to the databases and AWS APIs, nothing in',
      allowAllOutbound: false,
    });
    this.apis = new AwsApiAccess(this, { vpc: props.vpc, subnets: this.subnets, store: props.store, tasks: this.securityGroup, endpoints: props.vpcEndpoints ?? false });
    this.endpointSecurityGroup = this.apis.endpointSecurityGroup;
    this.apis.allowHttps(this.securityGroup, 'Restorable backup tasks');
    this.logGroup = new logs.LogGroup(this, 'Logs', { retention: props.logRetention ?? logs.RetentionDays.ONE_YEAR });
    this.alerts = new BackupJobAlerts(this, 'Alerts', {
      cluster: this.cluster,
      alarmTopic: props.alarmTopic ?? props.monitoring?.topic,
    });

    const tasks = new iam.ServicePrincipal('ecs-tasks.amazonaws.com');
    this.executionRole = new iam.Role(this, 'ExecutionRole', { assumedBy: tasks, description: 'Pulls the Restorable agent image and ships its logs' });
    acknowledgeNag(this.executionRole, 'IAM5[Resource::*]', 'ecr:GetAuthorizationToken, which the execution role needs to pull the agent image, has no resource-level ' +
        'permissions; the image pull itself is granted on the one asset repository');
    this.defaultTaskRole = new iam.Role(this, 'DefaultTaskRole', {
      assumedBy: tasks,
      description: 'Placeholder task role with no permissions: every schedule overrides it with its source\'s own role',
    });
    // Under the dump path, which the store's bucket policy tells apart from every other kind of principal; one
    // folder per DatabaseBackups, so that its scheduler may pass exactly its own task roles.
    this.taskRolePath = `${ROLE_PATHS.dump}${Names.uniqueId(this)}/`;
    if (props.keys.identitySecret) this.apis.allowSecret(props.keys.identitySecret);
    this.schedules = new AgentSchedules({
      cluster: this.cluster, subnets: this.subnets, securityGroup: this.securityGroup, role: agentSchedulerRole(this, this.taskRolePath), alerts: this.alerts,
      retryAttempts: props.retryAttempts, maxEventAge: props.maxEventAge,
    });
    this.archiving = new ContinuousArchiving({
      owner: this, store: props.store, keys: props.keys, vpc: props.vpc, subnets: this.subnets, cluster: this.cluster, userCluster: props.cluster !== undefined,
      securityGroup: this.securityGroup, image: this.image, executionRole: this.executionRole, logGroup: this.logGroup, rolePath: this.taskRolePath,
      alarmTopic: props.alarmTopic ?? props.monitoring?.topic, schedules: this.schedules, allowSecret: (secret) => this.apis.allowSecret(secret),
    });
    this.sourcesScope = new Construct(this, 'Sources');
    if (props.store.objectLockEnabled) {
      this.holdKeeper = new HoldKeeper(this, 'HoldKeeper', {
        store: props.store,
        logGroup: this.logGroup,
        alarmTopic: props.alarmTopic ?? props.monitoring?.topic,
        releaseAfter: props.holdReleaseAfter,
      });
    }
    for (const source of props.sources ?? []) this.addSource(source);
  }

  /** Every source added so far, with its name and RPO for monitoring. */
  public get sources(): readonly BackupSource[] {
    return [...this.sourceList];
  }

  /** Backs up one more database: a task role for its prefix and secret, a schedule, and a network rule. */
  public addSource(props: BackupSourceProps): BackupSource {
    const name = props?.name;
    const problem = typeof name === 'string' ? sourceNameProblem(name) : 'a source needs a name';
    if (problem) throw new RestorableError(this, problem);
    if (this.sourceList.some((s) => s.name === name)) {
      throw new RestorableError(this, `source '${name}' is defined twice: source names are S3 prefixes and must be unique`);
    }
    if (!props.engine) throw new RestorableError(this, `source '${name}' has no engine: pass one, for example SourceEngine.postgres('16')`);
    if (!props.secret) {
      throw new RestorableError(this, `source '${name}' has no secret: pass the database user's Secrets Manager secret ` +
        '(RDS shape {host,port,username,password,dbname}); the agent reads it at run time, so no password is in the template');
    }
    const rpo = props.rpo ?? DEFAULT_RPO;
    const rpoError = rpoProblem(rpo);
    if (rpoError) throw new RestorableError(this, `source '${name}': ${rpoError}`);
    const cron = props.cron?.trim().replace(/^cron\((.*)\)$/, '$1') ?? cronForRpo(rpo);
    const cronError = props.cron === undefined ? undefined : cronProblem(props.cron);
    if (cronError) throw new RestorableError(this, `source '${name}': ${cronError}`);
    const cpu = props.cpu ?? DEFAULT_CPU;
    const memory = props.memoryLimitMiB ?? DEFAULT_MEMORY_MIB;
    const sizeError = taskSizeProblem(cpu, memory, props.ephemeralStorageGiB);
    if (sizeError) throw new RestorableError(this, `source '${name}': ${sizeError}`);
    const mongoError = mongoConnectionProblem(name, props.engine, props.mongodb, props.endpoint);
    if (mongoError) throw new RestorableError(this, mongoError);

    const scope = new Construct(this.sourcesScope, name);
    warnEngine(scope, props);
    const taskRole = this.createTaskRole(scope, props);
    this.openNetwork(props);
    this.apis.allowSecret(props.secret);
    const hosting = hostingOf(props.hosting, props.peer, props.endpoint);
    const walArchiving = props.walArchiving && resolveWalArchiving(this, { name, engine: props.engine, hosting }, props.walArchiving, props.secret);
    const binlogStreaming = props.binlogStreaming && resolveBinlogStreaming(scope, { name, engine: props.engine, hosting, peer: props.peer },
      props.binlogStreaming, props.secret);
    const run = { source: name, taskDefinition: this.taskDefinitionFor(props.engine.agentEngine), taskRole, cpu, memoryMiB: memory, ephemeralStorageGiB: props.ephemeralStorageGiB };
    const schedule = this.schedules.schedule(scope, 'Schedule', {
      ...run, cron, description: `Restorable: back up ${name} (${props.engine}); RPO ${rpo.toHumanString()}`,
      command: this.agentCommand(props, binlogStreaming !== undefined),
    });
    const source: BackupSource = {
      name, engine: props.engine, rpo, cron, taskRole, schedule, secret: props.secret, expectedSize: props.expectedSize,
      scratchImage: props.scratchImage ?? ecs.ContainerImage.fromRegistry(props.engine.defaultScratchImage), hosting, walArchiving, binlogStreaming,
      ...(walArchiving && this.archiving.archiveWal(scope, props, walArchiving, run)),
      binlogStreamer: binlogStreaming && this.archiving.streamBinlogs(scope, props, binlogStreaming),
    };
    this.sourceList.push(source);
    this.props.monitoring?.addSource(name, {
      maxAge: rpo.plus(BACKUP_RUN_ALLOWANCE),
      walArchive: walArchiving && { maxAge: walArchiving.maxArchiveAge, baseBackupMaxAge: walArchiving.maxBaseBackupAge },
      binlog: binlogStreaming && { maxAge: binlogStreaming.maxArchiveAge },
    });
    this.holdKeeper?.addSource(name, { walArchived: walArchiving !== undefined });
    return source;
  }

  /**
   * Lets a self-managed PostgreSQL source's database host archive its WAL with `restorable wal-push` as its
   * archive_command (the host's role, such as an EC2 instance role): write-once WAL objects under the source's
   * `wal/` prefix, nothing else. Refused, in words, for a source on RDS or Aurora, which allow no outside archiving.
   */
  public grantWalPush(grantee: iam.IGrantable, source: string): iam.Grant {
    return this.props.store.grantWalPush(grantee, this.walSource(source).name);
  }

  /**
   * Lets a recovering server's role fetch a source's archived WAL with `restorable wal-fetch` as its restore_command
   * (read and list the source's `wal/` prefix). Grant it the identity too (BackupKeys.grantIdentityRead).
   */
  public grantWalFetch(grantee: iam.IGrantable, source: string): iam.Grant {
    return this.props.store.grantWalFetch(grantee, this.walSource(source).name);
  }

  private walSource(name: string): BackupSource {
    const source = this.sourceList.find((s) => s.name === name);
    if (!source) {
      throw new RestorableError(this, `no source '${name}': add it with addSource first (known: ${this.sourceList.map((s) => s.name).join(', ') || 'none'})`);
    }
    const problem = walArchivingProblem(source);
    if (problem) throw new RestorableError(this, problem);
    return source;
  }

  /**
   * Lets other tasks in the VPC, such as restore tests, use the VPC endpoints created with `vpcEndpoints` (HTTPS
   * only): the endpoints' group admits the peer's groups, and those groups may go out to the endpoints and to S3's
   * prefix list. Does nothing when this construct created no endpoints: such tasks reach the AWS APIs through NAT.
   */
  public allowEndpointsFrom(peer: ec2.IConnectable, description: string): void {
    if (!this.endpointSecurityGroup) return;
    for (const group of peer.connections.securityGroups) {
      this.endpointSecurityGroup.addIngressRule(group, ec2.Port.tcp(443), description);
      this.apis.allowHttps(group, description);
    }
  }

  /** Failed backup tasks, all sources together (AWS/Events TriggeredRules of the failure rule). */
  public metricJobFailures(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.alerts.metricJobFailures(props);
  }

  /**
   * The agent's arguments for one source: everything but the password, which it reads from the secret. A dump of a
   * binlog-streamed source records where it sits in the binlog, where a point-in-time restore starts replaying.
   */
  private agentCommand(props: BackupSourceProps, binlogCoordinates: boolean): string[] {
    return [
      'backup', '--engine', props.engine.agentEngine, ...sourceArguments(this.props.store, this.props.keys, props),
      ...(props.database ? ['--database', props.database] : []),
      ...mongoArguments(props.mongodb),
      ...(props.expectedSize ? ['--expected-size', String(props.expectedSize.toBytes())] : []),
      ...(binlogCoordinates ? ['--binlog-coordinates'] : []),
      // The same condition under which grantBackupWrite allows s3:PutObjectLegalHold: the last good backup stays.
      ...(this.props.store.objectLockEnabled ? ['--legal-hold'] : []),
      '--json',
    ];
  }

  /** The source's own role: its prefix in the store and its secret, nothing else; never the age identity. */
  private createTaskRole(scope: Construct, props: BackupSourceProps): iam.IRole {
    const stack = Stack.of(this);
    const role = new InlinePolicyRole(scope, 'TaskRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
      }),
      path: this.taskRolePath,
      description: `Restorable backup task of source ${props.name}: writes its prefix, reads its own secret`,
    });
    this.props.store.grantBackupWrite(role, props.name);
    grantSecretRead(props.secret, role);
    return role;
  }

  /** Lets the tasks out to the database's port inside the VPC and, with a peer, the database let them in (vpc-peers.ts). */
  private openNetwork(props: BackupSourceProps): void {
    openDatabasePort(this, this.securityGroup, this.props.vpc, props);
  }

  /** One task definition per agent engine; sizes are overridden per source. */
  private taskDefinitionFor(engine: Engine): ecs.FargateTaskDefinition {
    const existing = this.taskDefinitions.get(engine);
    if (existing) return existing;
    const taskDefinition = new ecs.FargateTaskDefinition(this, `${TASK_DEFINITION_IDS[engine]}Task`, {
      cpu: DEFAULT_CPU,
      memoryLimitMiB: DEFAULT_MEMORY_MIB,
      executionRole: this.executionRole,
      taskRole: this.defaultTaskRole,
      runtimePlatform: AGENT_RUNTIME_PLATFORM,
    });
    taskDefinition.addContainer(AGENT_CONTAINER_NAME, {
      image: this.image,
      essential: true,
      command: ['--help'],
      logging: ecs.LogDrivers.awsLogs({ logGroup: this.logGroup, streamPrefix: engine }),
    });
    this.alerts.watch(taskDefinition);
    this.taskDefinitions.set(engine, taskDefinition);
    return taskDefinition;
  }
}
