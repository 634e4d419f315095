/**
 * Scheduled agent runs: every scheduled task of a DatabaseBackups (a source's dumps, its base backups) is started by
 * EventBridge Scheduler in the shared cluster, subnets and security group, with the source's own task role passed in
 * `overrides.taskRoleArn`, its size, and the agent's arguments; failures go to the shared alerts and dead-letter queue.
 */
import { Duration, Stack, Token, Tokenization } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as schedulerTargets from 'aws-cdk-lib/aws-scheduler-targets';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { BackupJobAlerts, TASK_GROUP_PREFIX } from './backup-job-alerts';
import type { SourceEndpoint } from './backup-source';
import type { BackupKeys } from '../keys/backup-keys';
import type { BackupBucket } from '../store/backup-bucket';
import { acknowledgeNag } from '../shared/nag';

/** The container's name in every backup task definition; the schedules' overrides address it. */
export const AGENT_CONTAINER_NAME = 'agent';

/** What every scheduled run of one DatabaseBackups shares. */
export interface AgentSchedulesProps {
  readonly cluster: ecs.ICluster;
  readonly subnets: ec2.SubnetSelection;
  readonly securityGroup: ec2.ISecurityGroup;
  /** The role Scheduler starts tasks with: it may pass the task roles. */
  readonly role: iam.IRole;
  readonly alerts: BackupJobAlerts;
  /** @default 3 */
  readonly retryAttempts?: number;
  /** @default Duration.hours(1) */
  readonly maxEventAge?: Duration;
}

/** One scheduled agent command of one source. */
export interface AgentRun {
  /** The source the run belongs to: its task group, where failures are reported. */
  readonly source: string;
  readonly description: string;
  /** EventBridge Scheduler cron expression (UTC), without `cron(…)`. */
  readonly cron: string;
  readonly taskDefinition: ecs.FargateTaskDefinition;
  readonly taskRole: iam.IRole;
  readonly cpu: number;
  readonly memoryMiB: number;
  readonly ephemeralStorageGiB?: number;
  /** The agent's arguments. */
  readonly command: string[];
}

/** Creates the schedules of one DatabaseBackups. */
export class AgentSchedules {
  constructor(private readonly props: AgentSchedulesProps) {}

  /** A schedule that runs the agent with the run's command, role and size. */
  public schedule(scope: Construct, id: string, run: AgentRun): scheduler.Schedule {
    const { props } = this;
    return new scheduler.Schedule(scope, id, {
      description: run.description,
      schedule: scheduler.ScheduleExpression.expression(`cron(${run.cron})`),
      target: new schedulerTargets.EcsRunFargateTask(props.cluster, {
        taskDefinition: run.taskDefinition,
        vpcSubnets: props.subnets,
        securityGroups: [props.securityGroup],
        group: `${TASK_GROUP_PREFIX}${run.source}`,
        role: props.role,
        deadLetterQueue: props.alerts.deadLetterQueue,
        retryAttempts: props.retryAttempts ?? 3,
        maxEventAge: props.maxEventAge ?? Duration.hours(1),
        input: scheduler.ScheduleTargetInput.fromObject({
          taskRoleArn: run.taskRole.roleArn,
          cpu: String(run.cpu),
          memory: String(run.memoryMiB),
          ...(run.ephemeralStorageGiB ? { ephemeralStorage: { sizeInGiB: run.ephemeralStorageGiB } } : {}),
          containerOverrides: [{ name: AGENT_CONTAINER_NAME, command: run.command }],
        }),
      }),
    });
  }
}

/** How the agent reaches a source's database: its secret, and the endpoint that overrides the secret's host and port. */
export interface AgentConnection {
  readonly name: string;
  readonly secret: secretsmanager.ISecret;
  readonly endpoint?: SourceEndpoint;
}

/**
 * The arguments every agent command that writes a source's backups takes: the source, the store, the recipient and
 * the connection (everything but the password, which the agent reads from the secret).
 */
export function sourceArguments(store: BackupBucket, keys: BackupKeys, source: AgentConnection): string[] {
  return [
    '--source', source.name,
    '--bucket', store.bucket.bucketName, ...(store.prefix ? ['--prefix', store.prefix] : []),
    '--recipient', keys.recipient,
    '--secret-id', source.secret.secretArn,
    ...(source.endpoint ? ['--host', source.endpoint.hostname, '--port', Tokenization.stringifyNumber(source.endpoint.port)] : []),
  ];
}

/**
 * The role Scheduler starts a DatabaseBackups' tasks with (`SchedulerRole` in `scope`): it may pass the task roles
 * under `taskRolePath`, and only to ECS tasks.
 */
export function agentSchedulerRole(scope: Construct, taskRolePath: string): iam.Role {
  const stack = Stack.of(scope);
  const role = new iam.Role(scope, 'SchedulerRole', {
    assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', { conditions: { StringEquals: { 'aws:SourceAccount': stack.account } } }),
    description: 'Starts Restorable backup tasks with their sources\' task roles',
  });
  const taskRoles = stack.formatArn({ service: 'iam', region: '', resource: 'role', resourceName: `${taskRolePath.slice(1)}*` });
  role.addToPolicy(new iam.PolicyStatement({
    actions: ['iam:PassRole'],
    resources: [taskRoles],
    conditions: { StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' } },
  }));
  acknowledgeNag(role, `IAM5[Resource::arn:<AWS::Partition>:iam::${nagAccount(stack)}:role${taskRolePath}*]`, 'The path holds only the task roles of this DatabaseBackups (one per source); one statement instead of ' +
      'a hundred role ARNs keeps the policy under its size limit');
  return role;
}

/** The account as cdk-nag prints it in a finding. */
function nagAccount(stack: Stack): string {
  return Token.isUnresolved(stack.account) ? '<AWS::AccountId>' : stack.account;
}
