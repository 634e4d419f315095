/**
 * The restore-test orchestrator's steps, called by the RestoreTesting state machine for each source (its Map
 * state bounds how many run at once):
 *
 *   start: RunTask for one source's restore test, retrying throttling and capacity errors (RunTask reports
 *          capacity in `failures[]`, not as an exception). When the test cannot be started, the
 *          RestoreTestOrchestrationFailures metric says so, since the agent that publishes results never ran.
 *   check: DescribeTasks: has the task stopped, and did the agent run? A task running longer than the longest
 *          test allowed is stopped (a hung restore must not run, and cost, for ever). A task that stopped before its agent
 *          ran (an image that cannot be pulled, a scratch server that never became healthy) counts as an
 *          orchestration failure too; the agent publishes every outcome of a test that did run.
 *   failed: the state machine caught an error it could not retry away while starting or following a test:
 *          the failure metric says so, and the other sources' tests go on.
 */
import { CloudWatchClient, StandardUnit } from '@aws-sdk/client-cloudwatch';
import { DescribeTasksCommand, ECSClient, RunTaskCommand, RunTaskCommandOutput, StopTaskCommand } from '@aws-sdk/client-ecs';
import { Metrics } from '../../lib/contract/metrics';
import { datum, publishMetrics, requiredEnv } from '../shared/aws';

/** One source's restore test, as the state machine's definition lists it. */
export interface RestoreTestItem {
  readonly source: string;
  readonly taskDefinition: string;
  readonly taskRoleArn: string;
  /** The agent's arguments: `restore-test --source … --bucket … …`. */
  readonly command: readonly string[];
}

export interface StartEvent extends RestoreTestItem {
  readonly action: 'start';
}

export interface CheckEvent {
  readonly action: 'check';
  readonly source: string;
  readonly taskArn: string;
}

/** What the state machine caught: Step Functions' error and cause. */
export interface FailedEvent {
  readonly action: 'failed';
  readonly source: string;
  readonly error?: { readonly Error?: string; readonly Cause?: string };
}

export type OrchestratorEvent = StartEvent | CheckEvent | FailedEvent;

export interface StartResult {
  readonly source: string;
  readonly started: boolean;
  readonly taskArn?: string;
  readonly attempts: number;
  /** Why it could not be started. */
  readonly reason?: string;
}

export interface CheckResult {
  readonly source: string;
  readonly taskArn: string;
  readonly stopped: boolean;
  readonly agentExitCode?: number;
  readonly reason?: string;
}

export interface OrchestratorSettings {
  readonly cluster: string;
  readonly subnets: readonly string[];
  readonly securityGroups: readonly string[];
  readonly containerName: string;
  readonly maxAttempts: number;
  /** First retry delay; it doubles each time, with jitter. */
  readonly retryBaseMs: number;
  /** A test still running after this long is stopped and counted as an orchestration failure. */
  readonly maxTestSeconds: number;
}

export interface OrchestratorDeps {
  readonly ecs: ECSClient;
  readonly cloudwatch: CloudWatchClient;
  readonly settings: OrchestratorSettings;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly now?: () => Date;
}

/** Errors and `failures[]` reasons that pass with time: throttling, and capacity that is not there yet. */
const RETRYABLE_ERRORS = new Set(['ThrottlingException', 'TooManyRequestsException', 'ServerException', 'ServiceUnavailableException', 'LimitExceededException']);
const RETRYABLE_FAILURE = /capacity|RESOURCE:|AGENT|throttl|rate exceeded|timeout|try again/i;

function failureMetric(source: string) {
  return [datum(Metrics.RESTORE_TEST_ORCHESTRATION_FAILURES, 1, StandardUnit.Count, source), datum(Metrics.RESTORE_TEST_ORCHESTRATION_FAILURES, 1, StandardUnit.Count)];
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function startRestoreTest(event: RestoreTestItem, deps: OrchestratorDeps): Promise<StartResult> {
  const { settings } = deps;
  const sleep = deps.sleep ?? defaultSleep;
  let reason = '';
  for (let attempt = 1; attempt <= settings.maxAttempts; attempt++) {
    let retryable: boolean;
    try {
      const out: RunTaskCommandOutput = await deps.ecs.send(new RunTaskCommand({
        cluster: settings.cluster,
        taskDefinition: event.taskDefinition,
        launchType: 'FARGATE',
        count: 1,
        group: `restore-test:${event.source}`,
        startedBy: 'restorable-restore-test',
        networkConfiguration: { awsvpcConfiguration: { subnets: [...settings.subnets], securityGroups: [...settings.securityGroups], assignPublicIp: 'DISABLED' } },
        overrides: { taskRoleArn: event.taskRoleArn, containerOverrides: [{ name: settings.containerName, command: [...event.command] }] },
        propagateTags: 'TASK_DEFINITION',
      }));
      const taskArn = out.tasks?.[0]?.taskArn;
      if (taskArn) {
        console.log(JSON.stringify({ msg: 'restore test started', source: event.source, taskArn, attempt }));
        return { source: event.source, started: true, taskArn, attempts: attempt };
      }
      const failures = out.failures ?? [];
      reason = failures.map((f) => `${f.reason ?? 'unknown'}${f.detail ? ` (${f.detail})` : ''}`).join('; ') || 'RunTask returned no task and no failure';
      retryable = failures.length > 0 && failures.every((f) => RETRYABLE_FAILURE.test(`${f.reason ?? ''} ${f.detail ?? ''}`));
    } catch (err) {
      const e = err as Error & { $retryable?: unknown };
      reason = `${e.name}: ${e.message}`;
      retryable = RETRYABLE_ERRORS.has(e.name) || Boolean(e.$retryable);
    }
    console.log(JSON.stringify({ msg: 'RunTask did not start the restore test', source: event.source, attempt, reason, retryable }));
    if (!retryable || attempt === settings.maxAttempts) {
      await publishMetrics(deps.cloudwatch, failureMetric(event.source));
      const why = retryable ? `still failing after ${attempt} attempts: ${reason}` : reason;
      console.error(JSON.stringify({ msg: 'restore test could not be started', source: event.source, reason: why }));
      return { source: event.source, started: false, attempts: attempt, reason: why };
    }
    const delay = settings.retryBaseMs * 2 ** (attempt - 1);
    await sleep(delay / 2 + Math.random() * (delay / 2));
  }
  throw new Error('unreachable: maxAttempts must be at least 1');
}

export async function checkRestoreTest(event: CheckEvent, deps: OrchestratorDeps): Promise<CheckResult> {
  const out = await deps.ecs.send(new DescribeTasksCommand({ cluster: deps.settings.cluster, tasks: [event.taskArn] }));
  const task = out.tasks?.[0];
  const base = { source: event.source, taskArn: event.taskArn };
  if (!task) {
    // ECS forgets stopped tasks after about an hour; a test that long gone has reported (or its absence will be alarmed on).
    return { ...base, stopped: true, reason: `ECS no longer knows the task: ${out.failures?.map((f) => f.reason).join('; ') ?? 'not found'}` };
  }
  if (task.lastStatus !== 'STOPPED') {
    const runningSeconds = task.startedAt ? ((deps.now?.() ?? new Date()).getTime() - task.startedAt.getTime()) / 1000 : 0;
    if (runningSeconds <= deps.settings.maxTestSeconds) return { ...base, stopped: false };
    const reason = `still running after ${Math.round(runningSeconds)} s, over the longest test allowed (${deps.settings.maxTestSeconds} s): stopped`;
    await deps.ecs.send(new StopTaskCommand({ cluster: deps.settings.cluster, task: event.taskArn, reason: 'Restorable: restore test over its time limit' }));
    await publishMetrics(deps.cloudwatch, failureMetric(event.source));
    console.error(JSON.stringify({ msg: 'restore-test task stopped: over its time limit', source: event.source, taskArn: event.taskArn, runningSeconds }));
    return { ...base, stopped: true, reason };
  }
  const agent = task.containers?.find((c) => c.name === deps.settings.containerName);
  const agentExitCode = agent?.exitCode;
  const reason = [task.stoppedReason, agent?.reason].filter(Boolean).join('; ') || undefined;
  if (agentExitCode === undefined) {
    await publishMetrics(deps.cloudwatch, failureMetric(event.source));
    console.error(JSON.stringify({ msg: 'restore-test task stopped before its agent ran', source: event.source, taskArn: event.taskArn, reason }));
  } else {
    console.log(JSON.stringify({ msg: 'restore-test task stopped', source: event.source, taskArn: event.taskArn, agentExitCode }));
  }
  return { ...base, stopped: true, agentExitCode, reason };
}

export async function reportFailure(event: FailedEvent, deps: Pick<OrchestratorDeps, 'cloudwatch'>): Promise<{ source: string; reported: boolean }> {
  await publishMetrics(deps.cloudwatch, failureMetric(event.source));
  console.error(JSON.stringify({ msg: 'restore test orchestration failed', source: event.source, error: event.error?.Error, cause: event.error?.Cause }));
  return { source: event.source, reported: true };
}

export function settingsFromEnv(): OrchestratorSettings {
  const env = process.env;
  const list = (name: string) => requiredEnv(name).split(',').map((s) => s.trim()).filter(Boolean);
  const number = (name: string, fallback: number) => {
    const value = Number(env[name] ?? fallback);
    if (!Number.isInteger(value) || value < 1) throw new Error(`environment variable ${name} must be a positive whole number (got '${env[name]}')`);
    return value;
  };
  return {
    cluster: requiredEnv('CLUSTER_ARN'),
    subnets: list('SUBNET_IDS'),
    securityGroups: list('SECURITY_GROUP_IDS'),
    containerName: requiredEnv('CONTAINER_NAME'),
    maxAttempts: number('MAX_ATTEMPTS', 6),
    retryBaseMs: number('RETRY_BASE_MS', 2000),
    maxTestSeconds: number('MAX_TEST_SECONDS', 12 * 3600),
  };
}

let clients: { ecs: ECSClient; cloudwatch: CloudWatchClient } | undefined;

export async function handler(event: OrchestratorEvent): Promise<StartResult | CheckResult | { source: string; reported: boolean }> {
  // The retry loop here is the whole policy, so the SDK's own retries are off.
  clients ??= { ecs: new ECSClient({ maxAttempts: 1 }), cloudwatch: new CloudWatchClient({}) };
  const deps = { ...clients, settings: settingsFromEnv() };
  if (event?.action === 'start') return startRestoreTest(event, deps);
  if (event?.action === 'check') return checkRestoreTest(event, deps);
  if (event?.action === 'failed') return reportFailure(event, deps);
  throw new Error(`unknown action ${JSON.stringify((event as { action?: unknown })?.action)}: expected 'start', 'check' or 'failed'`);
}
