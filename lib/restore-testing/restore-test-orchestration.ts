import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Aspects, Duration, Fn, IAspect, Lazy, Stack, Stage, Token } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct, IConstruct } from 'constructs';
import { lambdaAsset } from '../shared/package-root';
import { METRIC_NAMESPACE } from '../contract/metrics';
import { RestorableError } from '../shared/errors';
import { RESTORE_TEST_AGENT_CONTAINER } from './restore-test-task';
import { acknowledgeNag, NODE22_RUNTIME_REASON } from '../shared/nag';
import { CONFIG_FILE, OrchestratorConfig, OrchestratorSource, REFUSED_ERROR } from './orchestrator-config';

/** Which copy of the backups a run restores. */
export enum RestoreTestCopy {
  /** The store in the primary region. */
  PRIMARY = 'primary',
  /** The replica in the DR region, with the identity secret's replica. */
  DR = 'dr',
}

/** One source's restore test in a run. */
export interface RestoreTestRun {
  readonly source: string;
  readonly taskDefinition: ecs.TaskDefinition;
  /** The name of the role the task runs with, without the `-{region}` every name ends with (RunTask's taskRoleArn override). */
  readonly taskRoleName: string;
  /**
   * The agent's arguments, known at synth: a value known only at deployment is a `{{NAME}}` placeholder, whose value
   * is the `NAME` of `RestoreTestOrchestrationProps.values`.
   */
  readonly command: string[];
}

/** What the orchestration runs, read when the app synthesizes, so that sources added later are included. */
export interface IRestoreTestPlan {
  /** The restore tests of one run, in order. */
  runs(copy: RestoreTestCopy): RestoreTestRun[];
  /** Every task definition the runs use. */
  taskDefinitions(): ecs.TaskDefinition[];
}

export interface RestoreTestOrchestrationProps {
  readonly plan: IRestoreTestPlan;
  readonly cluster: ecs.ICluster;
  readonly subnets: ec2.SubnetSelection;
  readonly securityGroup: ec2.ISecurityGroup;
  /** Roles the task definitions carry (execution and default task role): RunTask passes them. */
  readonly passableRoles: iam.IRole[];
  /** The IAM path of the restore-test roles, which RunTask passes as overrides. */
  readonly taskRolePath: string;
  /** What every restore-test role's ARN starts with: the ARN of the path, `arn:…:role/…/`. */
  readonly taskRoleArnPrefix: string;
  /** What every restore-test role's name ends with (its region). */
  readonly taskRoleNameSuffix: string;
  /** The values of the commands' `{{NAME}}` placeholders, known at deployment (bucket names, secret ARNs). */
  readonly values: Record<string, string>;
  /** How many restore tests run at once. */
  readonly maxConcurrency: number;
  /** A test still running after this long is stopped and counted as an orchestration failure. */
  readonly maxTestDuration: Duration;
  /** When the tests of the primary copy run. */
  readonly schedule: events.Schedule;
  /**
   * When the tests of the DR copy run.
   * @default - never
   */
  readonly drSchedule?: events.Schedule;
}

const POLL_INTERVAL = Duration.minutes(2);

/**
 * The orchestrator's code: the bundled handler beside its configuration (config.json), which names every source it
 * may start and, for each, the task definition, the role and the command of a primary and a DR test. Written when
 * the app synthesizes (an aspect), so that sources added after the RestoreTesting count too; a new configuration is
 * new code, deployed like any other.
 */
class ConfiguredCode extends lambda.Code {
  private asset?: s3assets.Asset;

  public bind(): lambda.CodeConfig {
    const asset = () => {
      if (!this.asset) throw new RestorableError('restore-test orchestrator', 'its configuration was not written before synthesis');
      return this.asset;
    };
    return { s3Location: { bucketName: Lazy.string({ produce: () => asset().s3BucketName }), objectKey: Lazy.string({ produce: () => asset().s3ObjectKey }) } };
  }

  /** Stages the handler and `config` as one asset. */
  public write(scope: Construct, handlerFolder: string, config: OrchestratorConfig): void {
    if (this.asset) return;
    // Written inside the cloud assembly, which the app's next synth replaces, rather than left behind in a temp folder.
    const outdir = Stage.of(scope)?.outdir ?? os.tmpdir();
    const folder = fs.mkdtempSync(path.join(outdir, '.restorable-orchestrator-'));
    fs.copyFileSync(path.join(handlerFolder, 'index.js'), path.join(folder, 'index.js'));
    fs.writeFileSync(path.join(folder, CONFIG_FILE), `${JSON.stringify(config, undefined, 1)}\n`);
    this.asset = new s3assets.Asset(scope, 'Code', { path: folder });
  }
}

/**
 * Runs restore tests with bounded concurrency: a Step Functions distributed Map over the sources (at most
 * maxConcurrency at once, each a child execution) starts each test with the orchestrator Lambda, which retries
 * RunTask's throttling and capacity errors, then polls the task until it stops. Step Functions holds the queue and the tasks in flight, so no table or
 * custom state is needed, and each execution's history shows what happened to every source. A Lambda alone
 * could not wait for tasks that run for hours.
 */
export class RestoreTestOrchestration extends Construct {
  public readonly function: lambda.Function;
  public readonly stateMachine: sfn.StateMachine;

  constructor(scope: Construct, id: string, props: RestoreTestOrchestrationProps) {
    super(scope, id);
    this.function = this.createFunction(props);
    this.stateMachine = this.createStateMachine(props);
    const schedules: [string, events.Schedule | undefined, RestoreTestCopy, string][] = [
      ['Schedule', props.schedule, RestoreTestCopy.PRIMARY, 'Restorable restore tests of every source'],
      ['DrSchedule', props.drSchedule, RestoreTestCopy.DR, 'Restorable restore tests of every source from the DR copy'],
    ];
    for (const [ruleId, schedule, copy, description] of schedules) {
      if (!schedule) continue;
      new events.Rule(this, ruleId, {
        description, schedule,
        targets: [new targets.SfnStateMachine(this.stateMachine, { input: events.RuleTargetInput.fromObject({ copy }), retryAttempts: 3 })],
      });
    }
  }

  private createFunction(props: RestoreTestOrchestrationProps): lambda.Function {
    const asset = lambdaAsset(this, 'restore-test-orchestrator');
    const stack = Stack.of(this);
    const logGroup = new logs.LogGroup(this, 'Logs', { retention: logs.RetentionDays.THREE_MONTHS });
    const role = new iam.Role(this, 'Role', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'), description: 'Starts and follows Restorable restore-test tasks' });
    logGroup.grantWrite(role);
    const { cluster } = props;
    const taskDefinitionArns = Lazy.list({ produce: () => props.plan.taskDefinitions().map((t) => t.taskDefinitionArn) });
    role.addToPolicy(new iam.PolicyStatement({ actions: ['ecs:RunTask'], resources: taskDefinitionArns, conditions: { ArnEquals: { 'ecs:cluster': cluster.clusterArn } } }));
    role.addToPolicy(new iam.PolicyStatement({
      actions: ['ecs:DescribeTasks', 'ecs:StopTask'],
      resources: [stack.formatArn({ service: 'ecs', resource: 'task', resourceName: `${cluster.clusterName}/*` })],
      conditions: { ArnEquals: { 'ecs:cluster': cluster.clusterArn } },
    }));
    role.addToPolicy(new iam.PolicyStatement({
      actions: ['iam:PassRole'],
      resources: [...props.passableRoles.map((r) => r.roleArn), stack.formatArn({ service: 'iam', region: '', resource: 'role', resourceName: `${props.taskRolePath.slice(1)}*` })],
      conditions: { StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' } },
    }));
    role.addToPolicy(new iam.PolicyStatement({ actions: ['cloudwatch:PutMetricData'], resources: ['*'], conditions: { StringEquals: { 'cloudwatch:namespace': METRIC_NAMESPACE } } }));
    // As cdk-nag prints them: an environment-agnostic stack's account and region as pseudo parameters.
    const account = Token.isUnresolved(stack.account) ? '<AWS::AccountId>' : stack.account;
    const region = Token.isUnresolved(stack.region) ? '<AWS::Region>' : stack.region;
    for (const [id, reason] of [
      ['Resource::*', `cloudwatch:PutMetricData has no resource-level permissions; the namespace condition limits it to ${METRIC_NAMESPACE}`],
      [`Resource::arn:<AWS::Partition>:ecs:${region}:${account}:task/<${stack.getLogicalId(cluster.node.defaultChild as ecs.CfnCluster)}>/*`,
        'Task ARNs are created at run time; DescribeTasks and StopTask are limited to tasks of the backup cluster'],
      [`Resource::arn:<AWS::Partition>:iam::${account}:role${props.taskRolePath}*`, 'The path holds only the restore-test roles of this RestoreTesting'],
    ]) acknowledgeNag(role, `IAM5[${id}]`, reason);

    const code = new ConfiguredCode();
    const fn = new lambda.Function(this, 'Function', {
      description: 'Restorable restore tests: starts the test of a source it is configured for (retrying throttling and capacity) and follows its task',
      runtime: lambda.Runtime.NODEJS_22_X,
      handler: 'index.handler',
      code,
      role,
      logGroup,
      timeout: Duration.minutes(3),
      memorySize: 256,
      environment: {
        CLUSTER_ARN: cluster.clusterArn,
        SUBNET_IDS: cluster.vpc.selectSubnets(props.subnets).subnetIds.join(','),
        SECURITY_GROUP_IDS: props.securityGroup.securityGroupId,
        CONTAINER_NAME: RESTORE_TEST_AGENT_CONTAINER,
        MAX_TEST_SECONDS: String(props.maxTestDuration.toSeconds()),
        TASK_DEFINITIONS: Lazy.string({ produce: () => Fn.join(',', props.plan.taskDefinitions().map((t) => t.taskDefinitionArn)) }),
        ROLE_ARN_PREFIX: props.taskRoleArnPrefix,
        ROLE_NAME_SUFFIX: props.taskRoleNameSuffix,
        ...Object.fromEntries(Object.entries(props.values).map(([name, value]) => [`VALUE_${name}`, value])),
      },
    });
    const aspect: IAspect = {
      visit: (node: IConstruct) => {
        if (node === this) code.write(this, asset, orchestratorConfig(props.plan, props.drSchedule !== undefined));
      },
    };
    Aspects.of(this).add(aspect);
    acknowledgeNag(fn, 'L1', NODE22_RUNTIME_REASON);
    return fn;
  }

  private createStateMachine(props: RestoreTestOrchestrationProps): sfn.StateMachine {
    const invoke = (id: string, payload: Record<string, unknown>) => new tasks.LambdaInvoke(this, id, {
      lambdaFunction: this.function, payload: sfn.TaskInput.fromObject(payload), payloadResponseOnly: true,
    });
    // Only the source and the copy: what runs, and as whom, is the orchestrator's own configuration.
    const start = invoke('StartTest', { 'action': 'start', 'source.$': '$.source', 'copy.$': '$.copy' });
    const wait = new sfn.Wait(this, 'WaitForTask', { time: sfn.WaitTime.duration(POLL_INTERVAL) });
    const check = invoke('CheckTask', { 'action': 'check', 'source.$': '$.source', 'taskArn.$': '$.taskArn' });
    const done = new sfn.Succeed(this, 'TestDone', { comment: 'The agent published the result; a failure to start published the orchestration metric' });
    // An error that retries did not clear is reported for its source, and the other sources' tests go on.
    const reportFailure = invoke('ReportFailure', { 'action': 'failed', 'source.$': '$.source', 'error.$': '$.error' }).next(done);
    // A source the orchestrator does not know (or a task that is not its test) is refused: the child execution fails
    // with the orchestrator's message, which fails the run (and raises the orchestration alarm); never retried.
    const refused = new sfn.Fail(this, 'Refused', { errorPath: '$.error.Error', causePath: '$.error.Cause', comment: 'The orchestrator refused its input' });
    for (const step of [start, check]) {
      step.addRetry({ errors: [REFUSED_ERROR], maxAttempts: 0 });
      step.addRetry({ errors: [sfn.Errors.ALL], interval: Duration.seconds(30), maxAttempts: 4, backoffRate: 2 });
      step.addCatch(refused, { errors: [REFUSED_ERROR], resultPath: '$.error' });
      step.addCatch(reportFailure, { resultPath: '$.error' });
    }
    const followTask = wait.next(check).next(new sfn.Choice(this, 'Stopped?').when(sfn.Condition.booleanEquals('$.stopped', true), done).otherwise(wait));
    const perSource = start.next(new sfn.Choice(this, 'Started?').when(sfn.Condition.booleanEquals('$.started', true), followTask).otherwise(done));
    // A distributed Map runs each source as a child execution with its own history: polling a long restore
    // would otherwise fill the 25,000 events of one execution's history.
    const map = new sfn.DistributedMap(this, 'TestEachSource', { itemsPath: '$.sources', maxConcurrency: props.maxConcurrency, mapExecutionType: sfn.StateMachineType.STANDARD });
    map.itemProcessor(perSource);
    const list = (id: string, copy: RestoreTestCopy) => new sfn.Pass(this, id, {
      result: sfn.Result.fromObject({ sources: Lazy.any({ produce: () => props.plan.runs(copy).map((run) => ({ source: run.source, copy })) }) }),
    }).next(map);
    const which = new sfn.Choice(this, 'WhichCopy')
      .when(sfn.Condition.stringEquals('$.copy', RestoreTestCopy.DR), props.drSchedule ? list('DrSources', RestoreTestCopy.DR) : new sfn.Fail(this, 'NoDrCopy', { error: 'NoDrCopy', cause: 'drSchedule is not configured' }))
      .otherwise(list('PrimarySources', RestoreTestCopy.PRIMARY));
    const logGroup = new logs.LogGroup(this, 'StateMachineLogs', { retention: logs.RetentionDays.THREE_MONTHS });
    const stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      definitionBody: sfn.DefinitionBody.fromChainable(which),
      comment: 'Restorable restore tests: every source, a bounded number at a time',
      timeout: Duration.days(2),
      tracingEnabled: true,
      logs: { destination: logGroup, level: sfn.LogLevel.ALL },
    });
    acknowledgeNag(stateMachine.role, `IAM5[Resource::<${Stack.of(this).getLogicalId(this.function.node.defaultChild as lambda.CfnFunction)}.Arn>:*]`, 'CDK grants InvokeFunction on the orchestrator\'s versions too; it is the one function');
    // The distributed Map starts and stops its child executions: the grant names this state machine's executions.
    const stack = Stack.of(this);
    const nag = (value: string) => (Token.isUnresolved(value) ? `<AWS::${value === stack.region ? 'Region' : 'AccountId'}>` : value);
    const machineName = JSON.stringify({ 'Fn::Select': [6, { 'Fn::Split': [':', { Ref: stack.getLogicalId(stateMachine.node.defaultChild as sfn.CfnStateMachine) }] }] });
    for (const suffix of [':*', '/*:*']) {
      acknowledgeNag(stateMachine, `IAM5[Resource::arn:<AWS::Partition>:states:${nag(stack.region)}:${nag(stack.account)}:execution:${machineName}${suffix}]`, 'The distributed Map runs each source as a child execution of this state machine; the wildcard is its own executions');
    }
    acknowledgeNag(stateMachine.role, 'IAM5[Resource::*]', 'X-Ray and CloudWatch Logs delivery actions have no resource-level permissions');
    return stateMachine;
  }
}

/** The orchestrator's configuration: every source it may start, with what runs for each copy. */
function orchestratorConfig(plan: IRestoreTestPlan, dr: boolean): OrchestratorConfig {
  const taskDefinitions = plan.taskDefinitions();
  const sources: Record<string, OrchestratorSource> = {};
  const copies = dr ? [RestoreTestCopy.PRIMARY, RestoreTestCopy.DR] : [RestoreTestCopy.PRIMARY];
  for (const copy of copies) {
    for (const run of plan.runs(copy)) {
      const taskDefinition = taskDefinitions.indexOf(run.taskDefinition);
      const existing = sources[run.source];
      if (taskDefinition < 0 || (existing && (existing.taskDefinition !== taskDefinition || existing.role !== run.taskRoleName))) {
        throw new RestorableError(`restore tests of '${run.source}'`, 'each source has one task definition and one role, in every copy');
      }
      sources[run.source] = { taskDefinition, role: run.taskRoleName, commands: { ...existing?.commands, [copy]: run.command } };
    }
  }
  const config: OrchestratorConfig = { version: 1, sources };
  const text = JSON.stringify(config);
  if (Token.isUnresolved(text) || /\$\{Token\[/.test(text)) {
    throw new RestorableError('restore-test orchestrator', 'a restore-test command holds a value known only at deployment: give it as a {{NAME}} placeholder');
  }
  return config;
}
