/**
 * CloudWatch and SNS on moto's shared server: an account of a test's own, the metrics it stored read back,
 * and what its topic delivered read back through an SQS queue subscribed to it.
 *
 * The handlers publish into the contract's one namespace, and their fleet-wide metrics carry no dimension, so no
 * name of ours can keep two tests apart there. moto keeps every service's state per account, and takes the account
 * from the credentials: `motoAccount()` assumes a role in a fresh random account id (STS AssumeRole, as one would
 * reach another account), and everything done with those credentials is that test's alone.
 */
import { randomInt } from 'node:crypto';
import { CloudWatchClient, Dimension, GetMetricStatisticsCommand, ListMetricsCommand } from '@aws-sdk/client-cloudwatch';
import { CreateTopicCommand, SNSClient, SubscribeCommand } from '@aws-sdk/client-sns';
import {
  CreateQueueCommand, DeleteMessageCommand, GetQueueAttributesCommand, ReceiveMessageCommand, SQSClient,
} from '@aws-sdk/client-sqs';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { Moto, motoName, sharedMoto } from './moto';

export interface MotoCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken: string;
}

export interface MotoAccount {
  readonly accountId: string;
  readonly credentials: MotoCredentials;
  /** Client options for any AWS SDK v3 client, acting in this account. */
  config(region?: string): { endpoint: string; region: string; credentials: MotoCredentials; forcePathStyle: true };
  /** The environment a handler or an agent needs to act in this account (the SDK reads these variables). */
  env(region?: string): Record<string, string>;
}

/** A fresh account on the server (by default the shared one), nobody else's. */
export async function motoAccount(server?: Moto): Promise<MotoAccount> {
  const moto = server ?? await sharedMoto();
  const accountId = String(randomInt(100_000_000_000, 999_999_999_999));
  const sts = new STSClient(moto.config());
  try {
    const { Credentials: c } = await sts.send(new AssumeRoleCommand({
      RoleArn: `arn:aws:iam::${accountId}:role/restorable-test`, RoleSessionName: 'restorable-test',
    }));
    if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken) throw new Error(`moto's AssumeRole returned no credentials for account ${accountId}`);
    const credentials = { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken };
    return {
      accountId,
      credentials,
      config: (region = 'us-east-1') => ({ ...moto.config(region), credentials }),
      env: (region = 'us-east-1') => ({
        ...moto.env(region),
        AWS_ACCESS_KEY_ID: credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey, AWS_SESSION_TOKEN: credentials.sessionToken,
      }),
    };
  } finally {
    sts.destroy();
  }
}

/** One stored series: a metric with its dimensions (none for a fleet-wide one), and what the server holds for it. */
export interface StoredMetric {
  readonly Namespace: string;
  readonly MetricName: string;
  /** Undefined for a metric stored without dimensions. */
  readonly Dimensions?: { Name: string; Value: string }[];
  readonly Unit?: string;
  /** How many values were stored. */
  readonly SampleCount: number;
  readonly Sum: number;
  /** The value, when exactly one was stored. */
  readonly Value?: number;
}

const WHOLE_TIME = { StartTime: new Date('2000-01-01T00:00:00Z'), EndTime: new Date('2100-01-01T00:00:00Z'), Period: 100 * 365 * 86_400 };

const seriesKey = (namespace: string, name: string, dimensions: readonly Dimension[]) =>
  JSON.stringify([namespace, name, [...dimensions].map((d) => [d.Name, d.Value]).sort()]);

/**
 * Every series stored in the account and region of `config`, read back from the server (ListMetrics, then
 * GetMetricStatistics over all time), sorted by namespace, name and dimensions. moto's statistics for a query
 * without dimensions cover every series of that name, so a dimensionless series is what remains of them once
 * the series with dimensions are taken away.
 */
export async function storedMetrics(config: ReturnType<MotoAccount['config']>): Promise<StoredMetric[]> {
  const cloudwatch = new CloudWatchClient(config);
  try {
    const series = new Map<string, { namespace: string; name: string; dimensions: Dimension[] }>();
    let token: string | undefined;
    do {
      const page = await cloudwatch.send(new ListMetricsCommand({ NextToken: token }));
      for (const m of page.Metrics ?? []) {
        const dimensions = m.Dimensions ?? [];
        series.set(seriesKey(m.Namespace!, m.MetricName!, dimensions), { namespace: m.Namespace!, name: m.MetricName!, dimensions });
      }
      token = page.NextToken;
    } while (token);

    const statistics = async (namespace: string, name: string, dimensions: Dimension[]) => {
      const out = await cloudwatch.send(new GetMetricStatisticsCommand({
        ...WHOLE_TIME, Namespace: namespace, MetricName: name, Dimensions: dimensions.length ? dimensions : undefined,
        Statistics: ['SampleCount', 'Sum'],
      }));
      const points = out.Datapoints ?? [];
      return {
        count: points.reduce((n, p) => n + (p.SampleCount ?? 0), 0),
        sum: points.reduce((n, p) => n + (p.Sum ?? 0), 0),
        unit: points[0]?.Unit,
      };
    };

    const stored: StoredMetric[] = [];
    const all = [...series.values()];
    for (const { namespace, name, dimensions } of all) {
      const whole = await statistics(namespace, name, dimensions);
      let { count, sum } = whole;
      if (dimensions.length === 0) {
        for (const other of all.filter((s) => s.namespace === namespace && s.name === name && s.dimensions.length > 0)) {
          const part = await statistics(namespace, name, other.dimensions);
          count -= part.count;
          sum -= part.sum;
        }
      }
      if (count === 0) continue;
      stored.push({
        Namespace: namespace, MetricName: name, Unit: whole.unit, SampleCount: count, Sum: sum, Value: count === 1 ? sum : undefined,
        Dimensions: dimensions.length ? dimensions.map((d) => ({ Name: d.Name!, Value: d.Value! })) : undefined,
      });
    }
    const order = (m: StoredMetric) => seriesKey(m.Namespace, m.MetricName, m.Dimensions ?? []);
    return stored.sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0));
  } finally {
    cloudwatch.destroy();
  }
}

/** A notification as the topic delivered it, out of its SNS envelope. */
export interface DeliveredNotification {
  readonly TopicArn: string;
  readonly Subject?: string;
  readonly Message: string;
}

export interface TopicInbox {
  readonly topicArn: string;
  readonly queueUrl: string;
  /** Every notification delivered since the last call, oldest first (moto delivers while Publish is answered). */
  received(): Promise<DeliveredNotification[]>;
}

/** A topic with an SQS queue subscribed to it (protocol sqs, the SNS envelope kept), in the account of `config`. */
export async function topicInbox(config: ReturnType<MotoAccount['config']>, prefix = 'alarms'): Promise<TopicInbox> {
  const name = motoName(prefix);
  const sns = new SNSClient(config);
  const sqs = new SQSClient(config);
  try {
    const { TopicArn } = await sns.send(new CreateTopicCommand({ Name: name }));
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: `${name}-inbox` }));
    const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['QueueArn'] }));
    await sns.send(new SubscribeCommand({ TopicArn, Protocol: 'sqs', Endpoint: Attributes!.QueueArn }));
    return {
      topicArn: TopicArn!,
      queueUrl: QueueUrl!,
      received: () => drain(config, QueueUrl!),
    };
  } finally {
    sns.destroy();
    sqs.destroy();
  }
}

async function drain(config: ReturnType<MotoAccount['config']>, queueUrl: string): Promise<DeliveredNotification[]> {
  const sqs = new SQSClient(config);
  try {
    const notifications: DeliveredNotification[] = [];
    for (;;) {
      const { Messages = [] } = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }));
      if (Messages.length === 0) return notifications;
      for (const message of Messages) {
        const envelope = JSON.parse(message.Body ?? '{}') as { Type?: string; TopicArn?: string; Subject?: string; Message?: string };
        if (envelope.Type !== 'Notification' || envelope.TopicArn === undefined || envelope.Message === undefined) {
          throw new Error(`the queue ${queueUrl} holds something other than an SNS notification: ${message.Body}`);
        }
        notifications.push({ TopicArn: envelope.TopicArn, Subject: envelope.Subject, Message: envelope.Message });
        await sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: message.ReceiptHandle }));
      }
    }
  } finally {
    sqs.destroy();
  }
}
