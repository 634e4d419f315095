/**
 * The restore-test orchestrator's steps: a start, throttling then a retry, a capacity error in `failures[]` then
 * a retry, a permanent failure that publishes the orchestration-failure metric, and the check of a stopped task.
 * It runs only what its configuration says, for a source it knows: anything else is refused, reported and never run.
 * ECS stays mocked with aws-sdk-client-mock: moto runs no container, and its RunTask neither throttles nor reports
 * capacity in `failures[]`. CloudWatch is moto's: each test publishes in an account of its own, and the failure
 * metric is read back from the server.
 */
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { DescribeTasksCommand, ECSClient, RunTaskCommand, StopTaskCommand } from '@aws-sdk/client-ecs';
import { mockClient } from 'aws-sdk-client-mock';
import { METRIC_NAMESPACE, Metrics, SOURCE_DIMENSION } from '../../lib/contract';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  OrchestratorDeps, RestoreTestItem, checkRestoreTest, configFromFile, orchestrate, reportFailure, settingsFromEnv, startRestoreTest,
} from '../../lambda/restore-test-orchestrator';
import { OrchestratorConfig } from '../../lib/restore-testing/orchestrator-config';
import { MotoAccount, motoAccount, storedMetrics } from '../support/moto-messaging';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const REGION = 'eu-west-1';
const ecsMock = mockClient(ECSClient);
/** This test's own account on moto, where the orchestrator's CloudWatch client publishes. */
let account: MotoAccount;

const item: RestoreTestItem = {
  source: 'orders-db',
  taskDefinition: 'arn:aws:ecs:eu-west-1:111111111111:task-definition/restore-test-postgres-15:3',
  taskRoleArn: 'arn:aws:iam::111111111111:role/restorable/restore-tests-1',
  command: ['restore-test', '--source', 'orders-db', '--bucket', 'backups', '--json'],
};
const TASK_ARN = 'arn:aws:ecs:eu-west-1:111111111111:task/cluster/abc123';
/** What RunTask's group and startedBy say of a restore test of orders-db. */
const OURS = { group: 'restore-test:orders-db', startedBy: 'restorable-restore-test' };

/** As RestoreTesting writes it: two sources, orders-db tested from both copies. */
const config: OrchestratorConfig = {
  version: 1,
  sources: {
    'orders-db': {
      taskDefinition: 1, role: 'orders-db-0a1b2c3d',
      commands: {
        primary: ['restore-test', '--source', 'orders-db', '--bucket', '{{BUCKET}}', '--identity-secret-id', '{{IDENTITY}}', '--json'],
        dr: ['restore-test', '--source', 'orders-db', '--bucket', '{{DR_BUCKET}}', '--bucket-region', 'eu-central-1', '--json'],
      },
    },
    'shop-db': { taskDefinition: 0, role: 'shop-db-4e5f6a7b', commands: { primary: ['restore-test', '--source', 'shop-db', '--bucket', '{{BUCKET}}'] } },
  },
};
const TASK_DEFINITIONS = ['arn:aws:ecs:eu-west-1:111111111111:task-definition/restore-test-mariadb:1', 'arn:aws:ecs:eu-west-1:111111111111:task-definition/restore-test-postgres:2'];
const ROLE_ARN_PREFIX = 'arn:aws:iam::111111111111:role/restorable/restore-test/RestoreTesting0A1B2C3D/';

const delays: number[] = [];
const deps = (): OrchestratorDeps => ({
  ecs: new ECSClient({ region: 'eu-west-1' }),
  cloudwatch: new CloudWatchClient(account.config(REGION)),
  settings: { cluster: 'arn:aws:ecs:eu-west-1:111111111111:cluster/restorable', subnets: ['subnet-a', 'subnet-b'], securityGroups: ['sg-1'],
    containerName: 'agent', maxAttempts: 4, retryBaseMs: 1000, maxTestSeconds: 3600, taskDefinitions: TASK_DEFINITIONS,
    roleArnPrefix: ROLE_ARN_PREFIX, roleNameSuffix: '-eu-west-1',
    values: { BUCKET: 'backups-bucket', IDENTITY: 'arn:aws:secretsmanager:eu-west-1:111111111111:secret:identity-Ab12Cd', DR_BUCKET: 'replica-bucket' } },
  config,
  sleep: async (ms) => { delays.push(ms); },
  now: () => new Date('2026-11-26T12:00:00Z'),
});

function throttling(): Error {
  return Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException', $metadata: { httpStatusCode: 400 } });
}

/** Every metric value stored in this test's account, read back from moto, the per-source series before the fleet's. */
const failureMetrics = async () => (await storedMetrics(account.config(REGION)))
  .map((m) => ({ namespace: m.Namespace, name: m.MetricName, value: m.Value, dimensions: m.Dimensions }));

beforeEach(async () => {
  ecsMock.reset();
  account = await motoAccount();
  delays.length = 0;
  // The handler logs a JSON line per decision; the assertions read results and metrics instead.
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
  jest.spyOn(console, 'error').mockImplementation(() => undefined);
});

afterEach(() => jest.restoreAllMocks());

test('success: one RunTask with the source\'s task role, command, group and network; no failure metric', async () => {
  ecsMock.on(RunTaskCommand).resolves({ tasks: [{ taskArn: TASK_ARN }], failures: [] });
  const result = await startRestoreTest(item, deps());
  expect(result).toEqual({ source: 'orders-db', started: true, taskArn: TASK_ARN, attempts: 1 });
  const calls = ecsMock.commandCalls(RunTaskCommand);
  expect(calls).toHaveLength(1);
  expect(calls[0].args[0].input).toMatchObject({
    cluster: 'arn:aws:ecs:eu-west-1:111111111111:cluster/restorable',
    taskDefinition: item.taskDefinition,
    launchType: 'FARGATE',
    group: 'restore-test:orders-db',
    networkConfiguration: { awsvpcConfiguration: { subnets: ['subnet-a', 'subnet-b'], securityGroups: ['sg-1'], assignPublicIp: 'DISABLED' } },
    overrides: { taskRoleArn: item.taskRoleArn, containerOverrides: [{ name: 'agent', command: item.command }] },
  });
  expect(await failureMetrics()).toEqual([]);
  expect(delays).toEqual([]);
});

test('throttling, then a retry after a backoff, then the task starts', async () => {
  ecsMock.on(RunTaskCommand).rejectsOnce(throttling()).resolves({ tasks: [{ taskArn: TASK_ARN }] });
  const result = await startRestoreTest(item, deps());
  expect(result).toMatchObject({ started: true, taskArn: TASK_ARN, attempts: 2 });
  expect(ecsMock.commandCalls(RunTaskCommand)).toHaveLength(2);
  expect(delays).toHaveLength(1);
  expect(delays[0]).toBeGreaterThanOrEqual(500);
  expect(delays[0]).toBeLessThanOrEqual(1000);
  expect(await failureMetrics()).toEqual([]);
});

test('a capacity error in failures[] (no exception) is retried with growing delays until capacity appears', async () => {
  const capacity = { failures: [{ arn: item.taskDefinition, reason: 'Capacity is unavailable at this time. Please try again later or in a different availability zone' }], tasks: [] };
  ecsMock.on(RunTaskCommand).resolvesOnce(capacity).resolvesOnce(capacity).resolves({ tasks: [{ taskArn: TASK_ARN }] });
  const result = await startRestoreTest(item, deps());
  expect(result).toMatchObject({ started: true, attempts: 3 });
  expect(delays).toHaveLength(2);
  expect(delays[1]).toBeGreaterThanOrEqual(1000); // the second delay's floor is the first one's ceiling
  expect(await failureMetrics()).toEqual([]);
});

test('a capacity error that never clears gives up after maxAttempts and publishes the failure metric', async () => {
  ecsMock.on(RunTaskCommand).resolves({ failures: [{ reason: 'RESOURCE:MEMORY' }] });
  const result = await startRestoreTest(item, deps());
  expect(result).toEqual({ source: 'orders-db', started: false, attempts: 4, reason: 'still failing after 4 attempts: RESOURCE:MEMORY' });
  expect(ecsMock.commandCalls(RunTaskCommand)).toHaveLength(4);
  expect(await failureMetrics()).toHaveLength(2);
});

test('a permanent failure is not retried: the failure metric is published per source and fleet-wide', async () => {
  ecsMock.on(RunTaskCommand).rejects(Object.assign(new Error('User is not authorized to perform: iam:PassRole'), { name: 'AccessDeniedException' }));
  const result = await startRestoreTest(item, deps());
  expect(result).toEqual({ source: 'orders-db', started: false, attempts: 1, reason: 'AccessDeniedException: User is not authorized to perform: iam:PassRole' });
  expect(delays).toEqual([]);
  expect(await failureMetrics()).toEqual([
    { namespace: METRIC_NAMESPACE, name: Metrics.RESTORE_TEST_ORCHESTRATION_FAILURES, value: 1, dimensions: [{ Name: SOURCE_DIMENSION, Value: 'orders-db' }] },
    { namespace: METRIC_NAMESPACE, name: Metrics.RESTORE_TEST_ORCHESTRATION_FAILURES, value: 1, dimensions: undefined },
  ]);
});

test('a permanent failures[] reason (a missing task definition) is not retried either', async () => {
  ecsMock.on(RunTaskCommand).resolves({ failures: [{ arn: item.taskDefinition, reason: 'MISSING' }] });
  const result = await startRestoreTest(item, deps());
  expect(result).toMatchObject({ started: false, attempts: 1, reason: 'MISSING' });
  expect(await failureMetrics()).toHaveLength(2);
});

describe('check', () => {
  const check = { action: 'check' as const, source: 'orders-db', taskArn: TASK_ARN };

  test('a running task is not stopped; nothing is published', async () => {
    ecsMock.on(DescribeTasksCommand).resolves({ tasks: [{ taskArn: TASK_ARN, ...OURS, lastStatus: 'RUNNING', startedAt: new Date('2026-11-26T11:30:00Z') }] });
    expect(await checkRestoreTest(check, deps())).toEqual({ source: 'orders-db', taskArn: TASK_ARN, stopped: false });
    expect(await failureMetrics()).toEqual([]);
  });

  test('a task running past the longest test allowed is stopped and counted as a failure', async () => {
    ecsMock.on(DescribeTasksCommand).resolves({ tasks: [{ taskArn: TASK_ARN, ...OURS, lastStatus: 'RUNNING', startedAt: new Date('2026-11-26T10:00:00Z') }] });
    ecsMock.on(StopTaskCommand).resolves({});
    expect(await checkRestoreTest(check, deps())).toEqual({ source: 'orders-db', taskArn: TASK_ARN, stopped: true,
      reason: 'still running after 7200 s, over the longest test allowed (3600 s): stopped' });
    expect(ecsMock.commandCalls(StopTaskCommand)[0].args[0].input).toMatchObject({ task: TASK_ARN, cluster: expect.stringContaining('cluster/restorable') });
    expect(await failureMetrics()).toHaveLength(2);
  });

  test('a task whose agent exited (pass or fail) is done: the agent published its own result', async () => {
    ecsMock.on(DescribeTasksCommand).resolves({ tasks: [{ taskArn: TASK_ARN, ...OURS, lastStatus: 'STOPPED', stoppedReason: 'Essential container in task exited',
      containers: [{ name: 'scratch', exitCode: 0 }, { name: 'agent', exitCode: 1 }] }] });
    expect(await checkRestoreTest(check, deps())).toMatchObject({ stopped: true, agentExitCode: 1 });
    expect(await failureMetrics()).toEqual([]);
  });

  test('a task that stopped before its agent ran (scratch never healthy) publishes the failure metric', async () => {
    ecsMock.on(DescribeTasksCommand).resolves({ tasks: [{ taskArn: TASK_ARN, ...OURS, lastStatus: 'STOPPED', stoppedReason: 'Task failed container health checks',
      containers: [{ name: 'scratch' }, { name: 'agent', reason: 'dependency scratch is unhealthy' }] }] });
    expect(await checkRestoreTest(check, deps())).toEqual({ source: 'orders-db', taskArn: TASK_ARN, stopped: true, agentExitCode: undefined,
      reason: 'Task failed container health checks; dependency scratch is unhealthy' });
    expect((await failureMetrics()).map((m) => m.name)).toEqual([Metrics.RESTORE_TEST_ORCHESTRATION_FAILURES, Metrics.RESTORE_TEST_ORCHESTRATION_FAILURES]);
  });
});

test('an error the state machine caught is reported with the failure metric', async () => {
  const result = await reportFailure({ action: 'failed', source: 'orders-db', error: { Error: 'Lambda.Unknown', Cause: 'timed out' } }, deps());
  expect(result).toEqual({ source: 'orders-db', reported: true });
  expect((await failureMetrics()).map((m) => [m.name, m.value, m.dimensions?.[0]?.Value ?? 'fleet'])).toEqual([
    [Metrics.RESTORE_TEST_ORCHESTRATION_FAILURES, 1, 'orders-db'], [Metrics.RESTORE_TEST_ORCHESTRATION_FAILURES, 1, 'fleet'],
  ]);
});

describe('it runs only what it is configured to run', () => {
  /** What a refusal leaves: no task started or stopped, and the fleet's failure metric alone (no dimension named by the input). */
  const expectRefusedAndReported = async () => {
    expect(ecsMock.commandCalls(RunTaskCommand)).toHaveLength(0);
    expect(ecsMock.commandCalls(StopTaskCommand)).toHaveLength(0);
    expect(await failureMetrics()).toEqual([{ namespace: METRIC_NAMESPACE, name: Metrics.RESTORE_TEST_ORCHESTRATION_FAILURES, value: 1, dimensions: undefined }]);
  };

  test('a known source: its configured task definition, role (by name under the path, in this region) and command, placeholders filled', async () => {
    ecsMock.on(RunTaskCommand).resolves({ tasks: [{ taskArn: TASK_ARN }] });
    await expect(orchestrate({ action: 'start', source: 'orders-db', copy: 'primary' }, deps())).resolves.toMatchObject({ started: true, taskArn: TASK_ARN });
    expect(ecsMock.commandCalls(RunTaskCommand)[0].args[0].input).toMatchObject({
      taskDefinition: TASK_DEFINITIONS[1],
      group: 'restore-test:orders-db',
      overrides: {
        taskRoleArn: `${ROLE_ARN_PREFIX}orders-db-0a1b2c3d-eu-west-1`,
        containerOverrides: [{ name: 'agent', command: ['restore-test', '--source', 'orders-db', '--bucket', 'backups-bucket',
          '--identity-secret-id', 'arn:aws:secretsmanager:eu-west-1:111111111111:secret:identity-Ab12Cd', '--json'] }],
      },
    });
  });

  test('the DR copy runs the DR command of the same source, with the same task definition and role', async () => {
    ecsMock.on(RunTaskCommand).resolves({ tasks: [{ taskArn: TASK_ARN }] });
    await orchestrate({ action: 'start', source: 'orders-db', copy: 'dr' }, deps());
    expect(ecsMock.commandCalls(RunTaskCommand)[0].args[0].input).toMatchObject({
      taskDefinition: TASK_DEFINITIONS[1],
      overrides: { taskRoleArn: `${ROLE_ARN_PREFIX}orders-db-0a1b2c3d-eu-west-1`,
        containerOverrides: [{ command: ['restore-test', '--source', 'orders-db', '--bucket', 'replica-bucket', '--bucket-region', 'eu-central-1', '--json'] }] },
    });
  });

  test.each([
    ['a source it does not know', { action: 'start', source: 'payroll-db', copy: 'primary' }, /"payroll-db" is not a source this orchestrator tests/],
    ['a name that is an inherited property', { action: 'start', source: 'constructor', copy: 'primary' }, /"constructor" is not a source/],
    ['no source', { action: 'start', copy: 'primary' }, /undefined is not a source/],
    ['a command of its own', { action: 'start', source: 'orders-db', copy: 'primary', command: ['sh', '-c', 'curl evil'] },
      /'start' takes only action, source, copy; got command too \(the command, task definition and role come from the orchestrator's own configuration\)/],
    ['a role and a task definition of its own', { action: 'start', source: 'orders-db', copy: 'primary', taskRoleArn: `${ROLE_ARN_PREFIX}other`, taskDefinition: 'x' },
      /got taskRoleArn, taskDefinition too/],
    ['a copy that is not configured for the source', { action: 'start', source: 'shop-db', copy: 'dr' }, /source 'shop-db' has no "dr" test configured/],
    ['a copy that does not exist', { action: 'start', source: 'orders-db', copy: 'staging' }, /has no "staging" test configured/],
    ['an unknown action', { action: 'stop', source: 'orders-db' }, /unknown action "stop": expected 'start', 'check' or 'failed'/],
    ['no object at all', 'restore-test --source orders-db', /the input is not an object/],
    ['a failure report for a source it does not know', { action: 'failed', source: 'payroll-db', error: {} }, /"payroll-db" is not a source/],
    ['a check without its task', { action: 'check', source: 'orders-db' }, /check needs the taskArn/],
  ])('refused: %s, with a clear message, the failure metric, and nothing run', async (_what, event, message) => {
    const refusal = orchestrate(event, deps());
    await expect(refusal).rejects.toThrow(message);
    await expect(refusal).rejects.toMatchObject({ name: 'RestoreTestRefused', message: expect.stringMatching(/^restore-test orchestrator refused its input: /) });
    await expectRefusedAndReported();
  });

  test('refused: a check of a task that is not the source\'s restore test, which is never stopped even past the time limit', async () => {
    ecsMock.on(DescribeTasksCommand).resolves({ tasks: [{ taskArn: TASK_ARN, group: 'family:orders-db-backup', lastStatus: 'RUNNING', startedAt: new Date('2026-11-20T00:00:00Z') }] });
    await expect(orchestrate({ action: 'check', source: 'orders-db', taskArn: TASK_ARN }, deps()))
      .rejects.toThrow(`task ${TASK_ARN} is not a restore test of 'orders-db' (group "family:orders-db-backup")`);
    await expectRefusedAndReported();
  });

  test('a placeholder the environment does not give is refused, not passed on', async () => {
    const base = deps();
    await expect(orchestrate({ action: 'start', source: 'orders-db', copy: 'dr' }, { ...base, settings: { ...base.settings, values: {} } }))
      .rejects.toThrow("the command of 'orders-db' needs {{DR_BUCKET}}, which its environment does not give");
    await expectRefusedAndReported();
  });
});

test('the settings come from the environment the construct sets, the sources from config.json beside the handler', () => {
  const saved = { ...process.env };
  Object.assign(process.env, {
    CLUSTER_ARN: 'cluster-arn', SUBNET_IDS: 'subnet-a,subnet-b', SECURITY_GROUP_IDS: 'sg-1', CONTAINER_NAME: 'agent', RETRY_BASE_MS: '1',
    TASK_DEFINITIONS: TASK_DEFINITIONS.join(','), ROLE_ARN_PREFIX, ROLE_NAME_SUFFIX: '-eu-west-1', VALUE_BUCKET: 'backups-bucket',
  });
  const folder = mkdtempSync(join(tmpdir(), 'orchestrator-config-'));
  try {
    expect(settingsFromEnv()).toMatchObject({ cluster: 'cluster-arn', subnets: ['subnet-a', 'subnet-b'], securityGroups: ['sg-1'], retryBaseMs: 1,
      taskDefinitions: TASK_DEFINITIONS, roleArnPrefix: ROLE_ARN_PREFIX, roleNameSuffix: '-eu-west-1', values: { BUCKET: 'backups-bucket' } });
    delete process.env.CLUSTER_ARN;
    expect(() => settingsFromEnv()).toThrow('environment variable CLUSTER_ARN is not set');
    writeFileSync(join(folder, 'config.json'), JSON.stringify(config));
    expect(configFromFile(folder)).toEqual(config);
    writeFileSync(join(folder, 'config.json'), JSON.stringify({ sources: {} }));
    expect(() => configFromFile(folder)).toThrow('config.json is not a restore-test orchestrator configuration (version 1)');
  } finally {
    process.env = saved;
    rmSync(folder, { recursive: true, force: true });
  }
});
