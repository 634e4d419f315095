/**
 * What the monitoring handler tests share: real backups made by the bundled agent into a bucket on moto's server,
 * an S3 client that counts its requests, and CloudWatch and SNS on moto too. Each test acts in an account of
 * its own (the metrics go to the contract's one namespace, the fleet-wide ones without dimensions, so names
 * cannot keep tests apart): what the handler published is read back from the server, the metrics with
 * ListMetrics and GetMetricStatistics, the notifications from an SQS queue subscribed to the test's topic.
 */
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import { LatestPointer } from '../../lib/contract';
import { MonitorClients } from '../../lambda/shared/aws';
import { AgeKey, PG, S3Emulator, agentEnv, dropPgDatabase, motoBucket, pgQuery, readerRole, runAgent } from '../support';
import { DeliveredNotification, MotoAccount, TopicInbox, motoAccount, storedMetrics, topicInbox } from '../support/moto-messaging';

/** The bucket the backups go to: on moto, where the handlers' accounts read it too. */
export const monitorBucket = (): Promise<S3Emulator> => motoBucket();

interface TestAccount {
  readonly account: MotoAccount;
  readonly inbox: TopicInbox;
  /** Notifications read from the queue so far in this test. */
  readonly delivered: DeliveredNotification[];
}

let current: TestAccount | undefined;

function account(): TestAccount {
  if (!current) throw new Error('no test account: call monitorTestHooks() in the test file');
  return current;
}

/** The topic the handler under test notifies: the current test's own. */
export function topicArn(): string {
  return account().inbox.topicArn;
}

export interface CountingClients {
  readonly clients: MonitorClients;
  /** S3 requests sent so far, by command name. */
  readonly requests: string[];
}

/** Clients for a handler, all acting in the current test's account: the S3 client counts every request it sends. */
export function monitorClients(s3: S3Emulator, prefix: string): CountingClients {
  const requests: string[] = [];
  const config = account().account.config();
  const client = new S3Client(config);
  client.middlewareStack.add((next, context) => (args) => {
    requests.push(String(context.commandName));
    return next(args);
  }, { step: 'initialize', name: 'countRequests' });
  return {
    requests,
    clients: { s3: client, cloudwatch: new CloudWatchClient(config), sns: new SNSClient(config), bucket: s3.bucket, prefix, topicArn: topicArn() },
  };
}

/** The environment Lambda would give the handler: the construct's variables, and credentials for the test's account. */
export function handlerEnv(vars: Record<string, string>): Record<string, string> {
  return { ...account().account.env(), ...vars };
}

export interface PublishedMetric {
  readonly Namespace: string;
  readonly MetricName: string;
  readonly Dimensions?: { Name: string; Value: string }[];
  readonly Value: number;
  readonly Unit?: string;
}

/**
 * Every metric value stored in this test's account, read back from the server, sorted by name and dimensions.
 * Each series must hold exactly one value: the tests run a handler once per account.
 */
export async function publishedMetrics(): Promise<PublishedMetric[]> {
  const stored = await storedMetrics(account().account.config());
  const repeated = stored.filter((m) => m.SampleCount !== 1);
  if (repeated.length) throw new Error(`series stored more than once in one test: ${JSON.stringify(repeated)}`);
  return stored.map(({ Namespace, MetricName, Dimensions, Value, Unit }) => ({ Namespace, MetricName, Dimensions, Value: Value!, Unit }));
}

/** Every notification the test's topic delivered to its queue so far, oldest first. */
export async function publishedMessages(): Promise<DeliveredNotification[]> {
  const { inbox, delivered } = account();
  delivered.push(...await inbox.received());
  return [...delivered];
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
 * The hooks every monitoring handler test shares: a fresh account with its topic and queue, and a quiet console.log
 * (the handlers log one JSON line per source), around each test; the fixture database gone after the file.
 */
export function monitorTestHooks(database: string, s3: () => S3Emulator | undefined): void {
  afterAll(async () => {
    await dropPgDatabase(database);
    await pgQuery('postgres', `DROP ROLE IF EXISTS ${readerRole(database)}`);
    await s3()?.stop();
  });
  beforeEach(async () => {
    const testAccount = await motoAccount();
    current = { account: testAccount, inbox: await topicInbox(testAccount.config()), delivered: [] };
    jest.spyOn(console, 'log').mockImplementation(() => undefined);
  });
  afterEach(() => {
    current = undefined;
    jest.restoreAllMocks();
  });
}
