/**
 * What the monitoring handler tests share: real backups made by the bundled agent into the S3 emulator,
 * an S3 client that counts its requests, and CloudWatch and SNS mocked (no emulator exists for them).
 */
import { CloudWatchClient, MetricDatum, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { S3Client } from '@aws-sdk/client-s3';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { LatestPointer } from '../../lib/contract';
import { MonitorClients } from '../../lambda/shared/aws';
import { AgeKey, PG, S3Emulator, agentEnv, dropPgDatabase, pgQuery, readerRole, runAgent } from '../support';

export const TOPIC_ARN = 'arn:aws:sns:us-east-1:123456789012:restorable-alarms';

export const cloudwatchMock = mockClient(CloudWatchClient);
export const snsMock = mockClient(SNSClient);

export interface CountingClients {
  readonly clients: MonitorClients;
  /** S3 requests sent so far, by command name. */
  readonly requests: string[];
}

/** Clients for a handler: the real SDK against the emulator (every request counted), mocked CloudWatch and SNS. */
export function monitorClients(s3: S3Emulator, prefix: string): CountingClients {
  const requests: string[] = [];
  const client = new S3Client({ endpoint: s3.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  client.middlewareStack.add((next, context) => (args) => {
    requests.push(String(context.commandName));
    return next(args);
  }, { step: 'initialize', name: 'countRequests' });
  return {
    requests,
    clients: { s3: client, cloudwatch: new CloudWatchClient({ region: 'us-east-1' }), sns: new SNSClient({ region: 'us-east-1' }), bucket: s3.bucket, prefix, topicArn: TOPIC_ARN },
  };
}

export function resetAwsMocks(): void {
  cloudwatchMock.reset();
  snsMock.reset();
  cloudwatchMock.on(PutMetricDataCommand).resolves({});
  snsMock.on(PublishCommand).resolves({ MessageId: 'test' });
}

/** Every metric value published since the last reset, with its namespace. */
export function publishedMetrics(): (MetricDatum & { Namespace?: string })[] {
  return cloudwatchMock.commandCalls(PutMetricDataCommand)
    .flatMap((call) => (call.args[0].input.MetricData ?? []).map((d) => ({ ...d, Namespace: call.args[0].input.Namespace })));
}

export function publishedMessages(): { Subject?: string; Message?: string; TopicArn?: string }[] {
  return snsMock.commandCalls(PublishCommand).map((call) => call.args[0].input);
}

/** One real backup of a PostgreSQL database by the bundled agent; fails loudly with the agent's stderr. */
export async function backUp(s3: S3Emulator, key: AgeKey, source: string, database: string, prefix = ''): Promise<LatestPointer> {
  // Backup keys have one-second resolution: two backups of a source started in the same second share a key.
  await new Promise((resolve) => setTimeout(resolve, 1100));
  const run = await runAgent(['backup', '--source', source, '--engine', 'postgres', '--bucket', s3.bucket, '--prefix', prefix,
    '--recipient', key.recipient, '--host', PG.host, '--port', String(PG.port), '--user', PG.user, '--database', database, '--json'],
  agentEnv({ ...s3.env, PGPASSWORD: PG.password }));
  if (run.code !== 0) throw new Error(`the agent's backup of ${source} failed (${run.code}): ${run.stderr}`);
  const latest = await s3.getText(`${prefix}${source}/latest.json`);
  if (!latest) throw new Error(`the agent's backup of ${source} left no latest.json`);
  return JSON.parse(latest) as LatestPointer;
}

/** Runs `work` with extra environment variables, as Lambda would set them, and restores the environment after. */
export async function withEnv<T>(vars: Record<string, string>, work: () => Promise<T>): Promise<T> {
  const saved = { ...process.env };
  Object.assign(process.env, vars);
  try {
    return await work();
  } finally {
    for (const name of Object.keys(vars)) {
      if (saved[name] === undefined) delete process.env[name];
      else process.env[name] = saved[name];
    }
  }
}

/**
 * The hooks every monitoring handler test shares: fresh AWS mocks and a quiet console.log (the handlers log one JSON
 * line per source) around each test; the fixture database and the emulator gone after the file.
 */
export function monitorTestHooks(database: string, s3: () => S3Emulator | undefined): void {
  afterAll(async () => {
    await dropPgDatabase(database);
    await pgQuery('postgres', `DROP ROLE IF EXISTS ${readerRole(database)}`);
    await s3()?.stop();
  });
  beforeEach(() => {
    resetAwsMocks();
    jest.spyOn(console, 'log').mockImplementation(() => undefined);
  });
  afterEach(() => jest.restoreAllMocks());
}
