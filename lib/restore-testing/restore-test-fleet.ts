import { Annotations, Duration, Stack, Token } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { RestorableError, wholeSeconds } from '../shared/errors';
import { ReportsCopy } from '../contract/names';
import { agentImage } from '../backups/agent-image';
import { BackupMonitoring } from '../monitoring/backup-monitoring';
import { BackupSource, taskSizeProblem } from '../backups/backup-source';
import { BackupBucket } from '../store/backup-bucket';
import { ReplicaStore } from '../store/replica-store';
import { RestoreTestAlarms } from './restore-test-alarms';
import { RestoreTestOrchestration } from './restore-test-orchestration';
import { RestoreTestTask } from './restore-test-task';
import { RestoreTestSourceProps, checkProblem, diskShortfall, expectLeftOutProblem, pointInTimeProblem, testsWalPointInTime } from './restore-test-source';
import { acknowledgeNag } from '../shared/nag';
import { RestoreTestLogs } from './restore-test-logs';
import { TestedSource, commandValues, restoreTestRuns } from './restore-test-runs';
import { IIdentityReader, ROLE_NAME_SUFFIX, RestoreTestRoles } from './restore-test-roles';

/** How restore-test tasks are sized and run, and how their results are watched: the same for every copy tested. */
export interface RestoreTestFleetOptions {
  /**
   * How many restore tests run at once; the others wait for a free slot.
   * @default 4
   */
  readonly maxConcurrency?: number;
  /**
   * A restore test still running after this long is stopped and counted as an orchestration failure.
   * @default Duration.hours(12)
   */
  readonly maxTestDuration?: Duration;
  /**
   * Fargate vCPU units of a restore-test task, shared by the agent and the scratch server.
   * @default 1024
   */
  readonly cpu?: number;
  /**
   * Fargate memory of a restore-test task, in MiB.
   * @default 4096
   */
  readonly memoryLimitMiB?: number;
  /**
   * Ephemeral storage of a restore-test task in GiB (21 to 200). The scratch server's data lives there, and so does
   * the decrypted dump: a restore test downloads, verifies and decrypts the whole dump to it before loading, so it
   * needs the largest dump's size plus 64 MiB free, on top of the restored data. A task without that room fails its
   * test before it touches the scratch database, naming the space it needs. A source with `expectedSize` warns at
   * synth when twice its expected size plus 1 GiB exceeds this.
   * @default 21 (Fargate's default)
   */
  readonly ephemeralStorageGiB?: number;
  /**
   * One failed-test alarm per source (and one RTO alarm per source with an rtoTarget) besides the fleet alarms.
   * @default false
   */
  readonly perSourceAlarms?: boolean;
  /**
   * How long the restore tests' logs are kept: the agent's and the scratch server's lines, which can quote row data,
   * in a log group of their own (never the backups'), encrypted with a key of its own.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * The agent's container image.
   * @default - built by `cdk deploy` from container/Dockerfile with the bundled agent
   */
  readonly image?: ecs.ContainerImage;
}

/** What differs between the fleets: the copy tested, where the tasks run, when. */
export interface RestoreTestFleetSetup extends RestoreTestFleetOptions {
  /** Its topic receives the alarms; it learns which sources are restore-tested. */
  readonly monitoring: BackupMonitoring;
  /** The bucket the tests read. */
  readonly store: BackupBucket;
  readonly identity: IIdentityReader;
  /** The identity secret's ARN, in the tasks' region and account. */
  readonly identitySecretArn: string;
  /** Also test this DR replica (another region of the same account), on `drSchedule`. */
  readonly drReplica?: ReplicaStore;
  /**
   * Where the tests' reports go under each source's restore-tests/: a vault's own tests report under `vault/`,
   * apart from the primary's that replication brings, and its freshness check reads them there.
   * @default - restore-tests/ itself
   */
  readonly reports?: ReportsCopy;
  readonly cluster: ecs.ICluster;
  readonly subnets?: ec2.SubnetSelection;
  readonly schedule: events.Schedule;
  readonly drSchedule?: events.Schedule;
  /** The age past which a source's newest test is overdue. */
  readonly overdueAfter?: Duration;
  /**
   * Opens the tasks' way to AWS APIs, and says whether VPC endpoints serve them (otherwise HTTPS goes out anywhere,
   * through NAT).
   */
  readonly allowEndpointsFrom: (group: ec2.SecurityGroup) => boolean;
  /** What the isolated-subnets warning adds for this fleet. */
  readonly isolatedSubnetsNote?: string;
  /** This fleet's own checks of a source it is given; throws a RestorableError. */
  readonly checkSource?: (props: RestoreTestSourceProps) => void;
}

/** A Fargate task's ephemeral storage when the task definition does not set it. */
const FARGATE_EPHEMERAL_GIB = 21;
/** A source's expectedSize may not fit the restore-test task's ephemeral storage (one warning per such source). */
export const DISK_TOO_SMALL_WARNING = '@restorable/restore-testing:disk-too-small';

/**
 * The machinery of scheduled restore tests, shared by RestoreTesting (the primary store and its DR replica, in the
 * primary's account) and VaultRestoreTesting (a vault, in its own account): one task definition per scratch image,
 * one role per source in nested stacks (RestoreTestRoles), a log group of their own (RestoreTestLogs), the state
 * machine and orchestrator (RestoreTestOrchestration), and the alarms (RestoreTestAlarms).
 */
export abstract class RestoreTestFleet extends Construct {
  /** Runs the tests: start an execution with `{"copy": "primary"}` (or `"dr"`) to test now, off schedule. */
  public readonly stateMachine: sfn.StateMachine;
  /** Starts each test (retrying RunTask) and follows its task. */
  public readonly orchestrator: lambda.IFunction;
  /** Some restore test failed (RestoreTestSuccess below 1); it clears when tests pass again. */
  public readonly testFailedAlarm: cloudwatch.Alarm;
  /**
   * Some source's newest restore test is overdue, or a tested source has had a backup that long and still no
   * restore-test report, or the freshness check publishes nothing.
   */
  public readonly testOverdueAlarm: cloudwatch.Alarm;
  /** A test could not be started, its task stopped before the agent ran, or the state machine failed. */
  public readonly orchestrationFailedAlarm: cloudwatch.Alarm;
  /**
   * The restore-test tasks' security group: no database admits it, and it admits nothing. It lets out HTTPS only: to
   * the VPC endpoints and S3's prefix list when there are endpoints, and to any address when the tasks
   * need the internet, through NAT (AWS APIs without endpoints, scratch images from ECR Public or another registry
   * outside this region's ECR, the DR region's S3 and Secrets Manager with `drSchedule`). The scratch server runs
   * in the task beside the agent, on the same network, and ECS gives every container of a task the task role's
   * credentials: mirror the scratch images into this region's ECR, pinned by digest, so that no public image runs
   * next to the identity and the tests need no way out but the endpoints.
   */
  public readonly securityGroup: ec2.SecurityGroup;
  protected readonly tested: TestedSource[] = [];
  /** One role per source, in nested stacks of 25 sources. */
  protected readonly roles: RestoreTestRoles;
  private readonly setup: RestoreTestFleetSetup;
  private readonly taskDefinitions = new Map<unknown, RestoreTestTask>();
  /** The key of a scratch image's point-in-time task definition, apart from its dump-restoring one. */
  private readonly pointInTimeKeys = new Map<unknown, { readonly image: unknown }>();
  /** The agent's and the scratch servers' log group. */
  private readonly logs: RestoreTestLogs;
  /** The alarms, metrics and dashboard widgets that watch the tests. */
  private readonly watch: RestoreTestAlarms;
  private readonly executionRole: iam.Role;
  private readonly defaultTaskRole: iam.Role;
  private readonly image: ecs.ContainerImage;
  private readonly cpu: number;
  private readonly memory: number;

  /**
   * @param setup called once the construct exists (so that its errors name it), before anything is made
   * @param sources the sources tested from the start
   */
  protected constructor(scope: Construct, id: string, setup: (self: Construct) => RestoreTestFleetSetup, sources: (self: Construct) => RestoreTestSourceProps[]) {
    super(scope, id);
    const props = setup(this);
    const concurrency = props.maxConcurrency ?? 4;
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 40) {
      throw new RestorableError(this, `maxConcurrency must be a whole number from 1 to 40 (got ${concurrency}): each running test is a Fargate task`);
    }
    const maxTestSeconds = props.maxTestDuration?.toSeconds({ integral: false });
    if (maxTestSeconds !== undefined && !(Number.isInteger(maxTestSeconds) && maxTestSeconds >= 15 * 60 && maxTestSeconds <= 24 * 3600)) {
      throw new RestorableError(this, `maxTestDuration must be whole seconds from 15 minutes to 24 hours (got ${props.maxTestDuration!.toHumanString()}): ` +
        'a run follows its tests for at most two days');
    }
    this.setup = props;
    this.cpu = props.cpu ?? 1024;
    this.memory = props.memoryLimitMiB ?? 4096;
    const sizeProblem = taskSizeProblem(this.cpu, this.memory, props.ephemeralStorageGiB);
    if (sizeProblem) throw new RestorableError(this, `the restore-test task's size: ${sizeProblem}`);
    this.image = props.image ?? agentImage(this);
    const tasksPrincipal = new iam.ServicePrincipal('ecs-tasks.amazonaws.com');
    this.executionRole = new iam.Role(this, 'ExecutionRole', { assumedBy: tasksPrincipal, description: 'Pulls the Restorable agent and scratch images and ships their logs' });
    acknowledgeNag(this.executionRole, 'IAM5[Resource::*]', 'ecr:GetAuthorizationToken, needed to pull the agent image, has no resource-level permissions; the pull itself is granted on the one asset repository');
    this.defaultTaskRole = new iam.Role(this, 'DefaultTaskRole', { assumedBy: tasksPrincipal, description: 'Placeholder with no permissions: every restore test overrides it with its source\'s restore-test role' });
    // Under the restore-test path, the only principals the bucket policy lets write restore-test reports; one folder
    // per fleet, so that its orchestrator may pass exactly its own roles.
    this.roles = new RestoreTestRoles(this, { store: props.store, identity: props.identity, drReplica: props.drReplica });
    this.logs = new RestoreTestLogs(this, 'Logs', { retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH });

    // Not the backup tasks' group, which the production databases admit: a restore test talks only to its own
    // sidecar (localhost in the task) and to AWS APIs, and must not reach a production database.
    // The scratch server is the agent's sidecar, on localhost inside the task, which no security group rule governs.
    this.securityGroup = new ec2.SecurityGroup(this, 'TaskSecurityGroup', {
      vpc: props.cluster.vpc,
      description: 'Restorable restore-test tasks: out to AWS APIs and image registries, nothing in',
      allowAllOutbound: false,
    });
    if (!props.allowEndpointsFrom(this.securityGroup)) this.allowHttpsOut();
    // A DR test reads the replica and the identity's replica in the DR region, at that region's public endpoints:
    // the gateway endpoint serves only this region's S3 (so its policy does not apply), and the interface
    // endpoints' private DNS only this region's names.
    if (props.drSchedule) this.allowHttpsOut();
    this.watch = new RestoreTestAlarms(this, { monitoring: props.monitoring, perSourceAlarms: props.perSourceAlarms, overdueAfter: props.overdueAfter });
    for (const source of sources(this)) this.addSource(source);
    const orchestration = new RestoreTestOrchestration(this, 'Orchestration', {
      plan: {
        runs: (copy) => restoreTestRuns(this.tested, props.store, copy, props.drReplica, props.reports),
        taskDefinitions: () => [...this.taskDefinitions.values()].map((t) => t.taskDefinition),
      },
      cluster: props.cluster,
      subnets: this.subnets(),
      securityGroup: this.securityGroup,
      passableRoles: [this.executionRole, this.defaultTaskRole],
      taskRolePath: this.roles.path,
      taskRoleArnPrefix: this.roles.arnPrefix(),
      taskRoleNameSuffix: ROLE_NAME_SUFFIX,
      values: commandValues(props.store, props.identitySecretArn, props.drReplica),
      maxConcurrency: concurrency,
      maxTestDuration: props.maxTestDuration ?? Duration.hours(12),
      schedule: props.schedule,
      drSchedule: props.drSchedule,
    });
    this.orchestrator = orchestration.function;
    this.stateMachine = orchestration.stateMachine;
    // A run starts once every role it passes exists: the parent waits for the nested stacks (no reference, no output).
    this.roles.forEachStack((stack) => this.stateMachine.node.addDependency(stack));

    const fleet = this.watch.addFleetAlarms(this.stateMachine);
    this.testFailedAlarm = fleet.testFailed;
    this.testOverdueAlarm = fleet.testOverdue;
    this.orchestrationFailedAlarm = fleet.orchestrationFailed;
  }

  /** Tests one more source; its row on the monitoring dashboard gains its restore duration and last result. */
  public addSource(props: RestoreTestSourceProps): void {
    const source = props?.source;
    if (!source?.name) throw new RestorableError(this, `addSource needs a source from DatabaseBackups (backups.sources or addSource's result)`);
    if (this.tested.some((t) => t.source.name === source.name)) {
      throw new RestorableError(this, `source '${source.name}' is restore-tested twice; pass it once, with all its checks`);
    }
    for (const check of props.checks ?? []) {
      const problem = checkProblem(check, source.engine.flavour);
      if (problem) throw new RestorableError(this, `source '${source.name}': ${problem}`);
    }
    const problems: string[] = [];
    if (props.rtoTarget !== undefined) wholeSeconds(`source '${source.name}': rtoTarget`, props.rtoTarget, { min: 1, example: 'Duration.hours(1)' }, problems);
    if (problems.length) throw new RestorableError(this, problems[0]);
    const leftOutProblem = expectLeftOutProblem(props);
    if (leftOutProblem) throw new RestorableError(this, `source '${source.name}': ${leftOutProblem}`);
    const pitrProblem = pointInTimeProblem(props);
    if (pitrProblem) throw new RestorableError(this, `source '${source.name}': ${pitrProblem}`);
    this.setup.checkSource?.(props);
    const shortfall = diskShortfall(props, this.setup.ephemeralStorageGiB ?? FARGATE_EPHEMERAL_GIB);
    if (shortfall) Annotations.of(this).addWarningV2(DISK_TOO_SMALL_WARNING, shortfall);
    // A binlog point-in-time test restores into the ordinary scratch server: only WAL needs the PostgreSQL sidecar.
    const task = this.taskFor(source, testsWalPointInTime(props));
    if (!pulledThroughEndpoints(source.scratchImage, Stack.of(this).region)) this.allowHttpsOut();
    const role = this.roles.add(source.name);
    this.setup.monitoring.expectRestoreTests(source.name);
    this.tested.push({ ...props, task, role });
    this.watch.addSource(source.name, props.rtoTarget);
  }

  /** Lets a person or a pipeline run the restore tests now (states:StartExecution on the state machine). */
  public grantRunNow(grantee: iam.IGrantable): iam.Grant {
    return this.stateMachine.grantStartExecution(grantee);
  }

  /** 1 for a passed restore test, 0 for a failed one (minimum per period); fleet-wide without a source. */
  public metricRestoreTestSuccess(source?: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.watch.metricRestoreTestSuccess(source, props);
  }

  /** The measured RTO: seconds from the start of the download to the end of validation (maximum per period). */
  public metricRestoreDuration(source?: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.watch.metricRestoreDuration(source, props);
  }

  /** How old the restored backup was when its test finished. */
  public metricRestoredBackupAge(source?: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.watch.metricRestoredBackupAge(source, props);
  }

  /** Restore tests that could not be started, or whose task stopped before the agent ran. */
  public metricOrchestrationFailures(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.watch.metricOrchestrationFailures(props);
  }

  /** The measured restore over its source's RTO target, the worst of the fleet; above 1 is a missed RTO. */
  public metricRtoRatio(source?: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.watch.metricRtoRatio(source, props);
  }

  /** One task definition per scratch image and kind of test: sources of one engine and version share it. */
  private taskFor(source: BackupSource, pointInTime: boolean): RestoreTestTask {
    // A registry image is known by its name; an image of the user's own (an asset, ECR) by its identity.
    const name = (source.scratchImage as unknown as { imageName?: unknown }).imageName;
    const image = typeof name === 'string' ? name : source.scratchImage;
    const key = pointInTime ? this.pointInTimeKeys.get(image) ?? this.pointInTimeKeys.set(image, { image }).get(image)! : image;
    const existing = this.taskDefinitions.get(key);
    if (existing) {
      if (existing.scratchFlavour !== source.engine.flavour) {
        throw new RestorableError(this, `source '${source.name}' (${source.engine}) uses the scratch image of a ${existing.scratchFlavour} source; give it a scratchImage of its own engine`);
      }
      return existing;
    }
    const task = new RestoreTestTask(this, `Task${this.taskDefinitions.size + 1}`, {
      source, agentImage: this.image, executionRole: this.executionRole, defaultTaskRole: this.defaultTaskRole,
      logGroup: this.logs.logGroup, cpu: this.cpu, memoryLimitMiB: this.memory,
      ephemeralStorageGiB: this.setup.ephemeralStorageGiB, scratchStartTimeout: Duration.minutes(10), pointInTime,
    });
    this.taskDefinitions.set(key, task);
    return task;
  }

  /**
   * HTTPS to any address, out through the subnets' NAT: one inline rule, whichever of the reasons needs it (the
   * same description makes a second call add nothing). ECR Public and other registries have no fixed addresses.
   */
  private allowHttpsOut(): void {
    this.securityGroup.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443),
      'Restorable restore-test tasks to HTTPS anywhere, through NAT: image registries, the DR region, AWS APIs without endpoints');
  }

  /** The subnets the tasks run in; isolated ones cannot reach ECR Public, where the default scratch images live. */
  private subnets(): ec2.SubnetSelection {
    const { vpc } = this.setup.cluster;
    const subnets = this.setup.subnets ?? { subnetType: vpc.privateSubnets.length ? ec2.SubnetType.PRIVATE_WITH_EGRESS : ec2.SubnetType.PRIVATE_ISOLATED };
    if (subnets.subnetType === ec2.SubnetType.PRIVATE_ISOLATED) {
      Annotations.of(this).addWarningV2('@restorable/restore-testing:isolated-subnets',
        'Restore tests run in isolated subnets, which reach ECR through VPC endpoints but not ECR Public (public.ecr.aws), where the default scratch images live: ' +
        'give each source a scratchImage in this region\'s ECR (for example an ECR pull-through cache of ECR Public), or choose subnets with a NAT route.' +
        (this.setup.isolatedSubnetsNote ?? ''));
    }
    return subnets;
  }
}

/**
 * Whether Fargate pulls a scratch image from ECR in the stack's region, through the VPC endpoints (the ECR API and
 * Docker endpoints, and the layers from S3), rather than from a registry on the internet such as ECR Public or Docker Hub.
 */
function pulledThroughEndpoints(image: ecs.ContainerImage, region: string): boolean {
  // An asset is pushed to the bootstrap repository of the stack's own environment.
  if (image instanceof ecs.AssetImage) return true;
  const name = (image as unknown as { imageName?: unknown }).imageName;
  if (typeof name !== 'string') return false;
  const host = name.split('/')[0];
  if (host.includes(`.dkr.ecr.${region}.`)) return true;
  // A repository whose region is still a token is one of the stack's own environment.
  return image instanceof ecs.EcrImage && Token.isUnresolved(host) && (host.split('.dkr.ecr.')[1] ?? '').startsWith('${Token[');
}
