import { Duration, Lazy, Stack, Token } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { lambdaAsset } from '../shared/package-root';
import { METRIC_NAMESPACE } from '../contract/metrics';
import { RESTORE_TEST_AGENT_CONTAINER } from './restore-test-task';
import { acknowledgeNag, NODE22_RUNTIME_REASON } from '../shared/nag';

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
  /** The role the task runs with (RunTask's taskRoleArn override). */
  readonly taskRole: iam.IRole;
  /** The agent's arguments. */
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

function runItem(run: RestoreTestRun): Record<string, unknown> {
  return { source: run.source, taskDefinition: run.taskDefinition.taskDefinitionArn, taskRoleArn: run.taskRole.roleArn, command: run.command };
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

    const fn = new lambda.Function(this, 'Function', {
      description: 'Restorable restore tests: starts a source\'s test (retrying throttling and capacity) and follows its task',
      runtime: lambda.Runtime.NODEJS_22_X,
      handler: 'index.handler',
      code: lambda.Code.fromAsset(asset),
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
      },
    });
    acknowledgeNag(fn, 'L1', NODE22_RUNTIME_REASON);
    return fn;
  }

  private createStateMachine(props: RestoreTestOrchestrationProps): sfn.StateMachine {
    const invoke = (id: string, payload: Record<string, unknown>) => new tasks.LambdaInvoke(this, id, {
      lambdaFunction: this.function, payload: sfn.TaskInput.fromObject(payload), payloadResponseOnly: true,
    });
    const start = invoke('StartTest', {
      'action': 'start', 'source.$': '$.source', 'taskDefinition.$': '$.taskDefinition', 'taskRoleArn.$': '$.taskRoleArn', 'command.$': '$.command',
    });
    const wait = new sfn.Wait(this, 'WaitForTask', { time: sfn.WaitTime.duration(POLL_INTERVAL) });
    const check = invoke('CheckTask', { 'action': 'check', 'source.$': '$.source', 'taskArn.$': '$.taskArn' });
    const done = new sfn.Succeed(this, 'TestDone', { comment: 'The agent published the result; a failure to start published the orchestration metric' });
    // An error that retries did not clear is reported for its source, and the other sources' tests go on.
    const reportFailure = invoke('ReportFailure', { 'action': 'failed', 'source.$': '$.source', 'error.$': '$.error' }).next(done);
    for (const step of [start, check]) {
      step.addRetry({ errors: [sfn.Errors.ALL], interval: Duration.seconds(30), maxAttempts: 4, backoffRate: 2 });
      step.addCatch(reportFailure, { resultPath: '$.error' });
    }
    const followTask = wait.next(check).next(new sfn.Choice(this, 'Stopped?').when(sfn.Condition.booleanEquals('$.stopped', true), done).otherwise(wait));
    const perSource = start.next(new sfn.Choice(this, 'Started?').when(sfn.Condition.booleanEquals('$.started', true), followTask).otherwise(done));
    // A distributed Map runs each source as a child execution with its own history: polling a long restore
    // would otherwise fill the 25,000 events of one execution's history.
    const map = new sfn.DistributedMap(this, 'TestEachSource', { itemsPath: '$.sources', maxConcurrency: props.maxConcurrency, mapExecutionType: sfn.StateMachineType.STANDARD });
    map.itemProcessor(perSource);
    const list = (id: string, copy: RestoreTestCopy) => new sfn.Pass(this, id, {
      result: sfn.Result.fromObject({ sources: Lazy.any({ produce: () => props.plan.runs(copy).map(runItem) }) }),
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
