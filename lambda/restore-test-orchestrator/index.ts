/**
 * The restore-test orchestrator's steps, called by the RestoreTesting state machine for each source (its Map
 * state bounds how many run at once). It runs only what it is configured to run: its input names a source and a
 * copy (primary or DR), and the task definition, the role and the agent's command come from its own configuration
 * (config.json beside this file, written at synth, and its environment) for a source it knows. Any other input (an
 * unknown source or copy, a command, a role or a task definition given in the event, a task that is not the
 * source's test) is refused: it throws RestoreTestRefused, which fails the state machine's run, after logging why
 * and publishing the orchestration-failure metric, whose alarm says so.
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
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CloudWatchClient, StandardUnit } from '@aws-sdk/client-cloudwatch';
import { DescribeTasksCommand, ECSClient, RunTaskCommand, RunTaskCommandOutput, StopTaskCommand } from '@aws-sdk/client-ecs';
import { Metrics } from '../../lib/contract/metrics';
import { CONFIG_FILE, OrchestratorConfig, OrchestratorSource, REFUSED_ERROR } from '../../lib/restore-testing/orchestrator-config';
import { datum, publishMetrics, requiredEnv } from '../shared/aws';

/** Which copy a test restores. */
export type Copy = 'primary' | 'dr';

/** One source's restore test, resolved from the configuration: what RunTask is given. */
export interface RestoreTestItem {
  readonly source: string;
  readonly taskDefinition: string;
  readonly taskRoleArn: string;
  /** The agent's arguments: `restore-test --source … --bucket … …`. */
  readonly command: readonly string[];
}

/** Start a source's test: the source and the copy, nothing else. */
export interface StartEvent {
  readonly action: 'start';
  readonly source: string;
  readonly copy: Copy;
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
  /** The task definitions the configuration's sources refer to by index. */
  readonly taskDefinitions: readonly string[];
  /** What every restore-test role's ARN starts with (`arn:…:role/restorable/restore-test/…/`). */
  readonly roleArnPrefix: string;
  /** What every restore-test role's name ends with (`-{region}`). */
  readonly roleNameSuffix: string;
  /** The values of the commands' `{{NAME}}` placeholders. */
  readonly values: Readonly<Record<string, string>>;
}

/** Input the orchestrator does not run: its name is what the state machine's Catch and Retry match. */
export class RestoreTestRefused extends Error {
  public readonly name = REFUSED_ERROR;
}

export interface OrchestratorDeps {
  readonly ecs: ECSClient;
  readonly cloudwatch: CloudWatchClient;
  readonly settings: OrchestratorSettings;
  /** The sources it may start, and what runs for each. */
  readonly config: OrchestratorConfig;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly now?: () => Date;
}

/** Errors and `failures[]` reasons that pass with time: throttling, and capacity that is not there yet. */
const RETRYABLE_ERRORS = new Set(['ThrottlingException', 'TooManyRequestsException', 'ServerException', 'ServiceUnavailableException', 'LimitExceededException']);
const RETRYABLE_FAILURE = /capacity|RESOURCE:|AGENT|throttl|rate exceeded|timeout|try again/i;

const STARTED_BY = 'restorable-restore-test';

function failureMetric(source: string) {
  return [datum(Metrics.RESTORE_TEST_ORCHESTRATION_FAILURES, 1, StandardUnit.Count, source), datum(Metrics.RESTORE_TEST_ORCHESTRATION_FAILURES, 1, StandardUnit.Count)];
}

/**
 * Logs and reports a refusal (the fleet's orchestration-failure metric only: a name it does not know is no source
 * of its own), then throws it. A failure to publish does not hide the refusal.
 */
async function refuse(why: string, event: unknown, deps: Pick<OrchestratorDeps, 'cloudwatch'>): Promise<never> {
  const message = `restore-test orchestrator refused its input: ${why}`;
  console.error(JSON.stringify({ msg: 'restore-test input refused', reason: why, event: describeInput(event) }));
  try {
    await publishMetrics(deps.cloudwatch, [datum(Metrics.RESTORE_TEST_ORCHESTRATION_FAILURES, 1, StandardUnit.Count)]);
  } catch (err) {
    console.error(JSON.stringify({ msg: 'could not publish the refusal', error: (err as Error).message }));
  }
  throw new RestoreTestRefused(message);
}

/** The input, shortened for the log: a refused event may be large or hostile. */
function describeInput(event: unknown): string {
  const text = JSON.stringify(event) ?? String(event);
  return text.length > 500 ? `${text.slice(0, 500)}…` : text;
}

const EVENT_KEYS: Record<string, readonly string[]> = {
  start: ['action', 'source', 'copy'],
  check: ['action', 'source', 'taskArn'],
  failed: ['action', 'source', 'error'],
};

/** The configured source an event names, or a refusal: only the keys of its action, a known source, a known copy. */
async function knownSource(event: Record<string, unknown>, deps: Pick<OrchestratorDeps, 'cloudwatch' | 'config'>): Promise<OrchestratorSource> {
  const allowed = EVENT_KEYS[String(event.action)] ?? [];
  const extra = Object.keys(event).filter((key) => !allowed.includes(key));
  if (extra.length) {
    await refuse(`'${event.action}' takes only ${allowed.join(', ')}; got ${extra.join(', ')} too (the command, task definition and role ` +
      'come from the orchestrator\'s own configuration)', event, deps);
  }
  const source = event.source;
  if (typeof source !== 'string' || !Object.prototype.hasOwnProperty.call(deps.config.sources, source)) {
    await refuse(`${JSON.stringify(source)} is not a source this orchestrator tests (it knows ${Object.keys(deps.config.sources).length})`, event, deps);
  }
  return deps.config.sources[source as string];
}

/** What RunTask runs for a source and a copy, from the configuration alone. */
export async function configuredRun(event: StartEvent, deps: Pick<OrchestratorDeps, 'cloudwatch' | 'config' | 'settings'>): Promise<RestoreTestItem> {
  const configured = await knownSource(event as unknown as Record<string, unknown>, deps);
  const { settings } = deps;
  const copy = event.copy;
  const command = copy === 'primary' || copy === 'dr' ? configured.commands[copy] : undefined;
  if (!command) await refuse(`source '${event.source}' has no ${JSON.stringify(copy)} test configured (copies: ${Object.keys(configured.commands).join(', ')})`, event, deps);
  const taskDefinition = settings.taskDefinitions[configured.taskDefinition];
  if (!taskDefinition) await refuse(`source '${event.source}' names task definition ${configured.taskDefinition}, which the environment does not list`, event, deps);
  const placeholder = /\{\{([A-Z0-9_]+)\}\}/g;
  const missing = command!.flatMap((arg) => [...arg.matchAll(placeholder)].map((m) => m[0]).filter((whole) => settings.values[whole.slice(2, -2)] === undefined));
  if (missing.length) await refuse(`the command of '${event.source}' needs ${missing.join(', ')}, which its environment does not give`, event, deps);
  const filled = command!.map((arg) => arg.replace(placeholder, (_whole, name: string) => settings.values[name]));
  return { source: event.source, taskDefinition, taskRoleArn: `${settings.roleArnPrefix}${configured.role}${settings.roleNameSuffix}`, command: filled };
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
        startedBy: STARTED_BY,
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
  // The role may describe and stop any task of the cluster: follow and stop only this source's restore tests.
  if (task.group !== `restore-test:${event.source}` || task.startedBy !== STARTED_BY) {
    await refuse(`task ${event.taskArn} is not a restore test of '${event.source}' (group ${JSON.stringify(task.group)})`, event, deps);
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
    taskDefinitions: list('TASK_DEFINITIONS'),
    roleArnPrefix: requiredEnv('ROLE_ARN_PREFIX'),
    roleNameSuffix: env.ROLE_NAME_SUFFIX ?? '',
    values: Object.fromEntries(Object.entries(env).filter(([name]) => name.startsWith('VALUE_')).map(([name, value]) => [name.slice('VALUE_'.length), value ?? ''])),
  };
}

/** The configuration written beside the handler at synth. */
export function configFromFile(folder = __dirname): OrchestratorConfig {
  const config = JSON.parse(readFileSync(join(folder, CONFIG_FILE), 'utf8')) as OrchestratorConfig;
  if (config?.version !== 1 || typeof config.sources !== 'object' || config.sources === null) {
    throw new Error(`${CONFIG_FILE} is not a restore-test orchestrator configuration (version 1)`);
  }
  return config;
}

let clients: { ecs: ECSClient; cloudwatch: CloudWatchClient } | undefined;
let configuration: OrchestratorConfig | undefined;

/** One step, for input it accepts; see the top of this file. */
export async function orchestrate(event: unknown, deps: OrchestratorDeps): Promise<StartResult | CheckResult | { source: string; reported: boolean }> {
  if (typeof event !== 'object' || event === null || Array.isArray(event)) return refuse('the input is not an object', event, deps);
  const input = event as Record<string, unknown>;
  if (input.action === 'start') return startRestoreTest(await configuredRun(input as unknown as StartEvent, deps), deps);
  if (input.action === 'check' || input.action === 'failed') {
    await knownSource(input, deps);
    if (input.action === 'failed') return reportFailure(input as unknown as FailedEvent, deps);
    if (typeof input.taskArn !== 'string') return refuse('check needs the taskArn its start returned', event, deps);
    return checkRestoreTest(input as unknown as CheckEvent, deps);
  }
  return refuse(`unknown action ${JSON.stringify(input.action)}: expected 'start', 'check' or 'failed'`, event, deps);
}

export async function handler(event: unknown): Promise<StartResult | CheckResult | { source: string; reported: boolean }> {
  // The retry loop here is the whole policy, so the SDK's own retries are off.
  clients ??= { ecs: new ECSClient({ maxAttempts: 1 }), cloudwatch: new CloudWatchClient({}) };
  configuration ??= configFromFile();
  return orchestrate(event, { ...clients, settings: settingsFromEnv(), config: configuration });
}
