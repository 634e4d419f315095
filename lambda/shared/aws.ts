/**
 * What both monitoring handlers share: clients that honour the SDK's endpoint variables, small S3 reads
 * that tell "absent" from "failed", metric publishing in bounded batches, and the topic message.
 */
import { CloudWatchClient, MetricDatum, PutMetricDataCommand, StandardUnit } from '@aws-sdk/client-cloudwatch';
import { GetObjectCommand, HeadObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { METRIC_NAMESPACE, SOURCE_DIMENSION } from '../../lib/contract/metrics';

/** Path-style addressing when an endpoint is set, as emulators need (the agent does the same). */
export function createS3Client(): S3Client {
  const endpoint = process.env.AWS_ENDPOINT_URL_S3 || process.env.AWS_ENDPOINT_URL || undefined;
  return new S3Client(endpoint ? { endpoint, forcePathStyle: true } : {});
}

/** Where the handlers read and report: the same for every invocation, from the environment. */
export interface MonitorClients {
  readonly s3: S3Client;
  readonly cloudwatch: CloudWatchClient;
  readonly sns: SNSClient;
  readonly bucket: string;
  readonly prefix: string;
  /** Where alarm-worthy findings are sent; none means metrics only. */
  readonly topicArn?: string;
}

export function requiredEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`environment variable ${name} is not set: the BackupMonitoring construct sets it`);
  return value;
}

export function clientsFromEnv(): MonitorClients {
  return {
    s3: createS3Client(),
    cloudwatch: new CloudWatchClient({}),
    sns: new SNSClient({}),
    bucket: requiredEnv('BUCKET_NAME'),
    prefix: process.env.KEY_PREFIX ?? '',
    topicArn: process.env.TOPIC_ARN || undefined,
  };
}

/** Whether S3 said the key does not exist (404); a 403 is never taken for absence. */
export function isNotFound(err: unknown): boolean {
  const e = err as S3ServiceException;
  return e?.name === 'NoSuchKey' || e?.name === 'NotFound' || e?.$metadata?.httpStatusCode === 404;
}

const MONITOR_ACCESS = 'the function needs s3:GetObject and s3:ListBucket on the store (BackupStore.grantMonitorRead)';

/**
 * Words for an S3 failure: which object, and what to check.
 * @param access what the calling function's role needs, said when S3 denies access
 */
export function s3Problem(action: string, bucket: string, key: string, err: unknown, access = MONITOR_ACCESS): Error {
  const e = err as S3ServiceException;
  const detail = e?.$metadata?.httpStatusCode === 403
    ? `access denied: ${access}`
    : `${e?.name ?? 'Error'}: ${e?.message ?? String(err)}`;
  return new Error(`S3 ${action} s3://${bucket}/${key} failed: ${detail}`);
}

/** A small object as text, or undefined when it does not exist. */
export async function getText(s3: S3Client, bucket: string, key: string): Promise<string | undefined> {
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return await out.Body!.transformToString('utf8');
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw s3Problem('GetObject', bucket, key, err);
  }
}

/** Whether an object exists (one HEAD request). */
export async function exists(s3: S3Client, bucket: string, key: string): Promise<boolean> {
  try {
    await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw s3Problem('HeadObject', bucket, key, err);
  }
}

/**
 * A small object as text with its LastModified (set by S3, not by the writer), or undefined when it does not exist.
 * With `maxBytes`, a bigger object is refused unread: what a task wrote is untrusted, and a pointer is small.
 */
export async function getStored(s3: S3Client, bucket: string, key: string, maxBytes?: number): Promise<{ text: string; lastModified: Date } | undefined> {
  let out;
  try {
    out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw s3Problem('GetObject', bucket, key, err);
  }
  if (maxBytes !== undefined && (out.ContentLength ?? 0) > maxBytes) {
    (out.Body as { destroy?: () => void } | undefined)?.destroy?.();
    throw new Error(`s3://${bucket}/${key} is ${out.ContentLength} bytes, more than the ${maxBytes} it can be: not read`);
  }
  try {
    const text = await out.Body!.transformToString('utf8');
    if (!out.LastModified) throw new Error('the response has no Last-Modified');
    return { text, lastModified: out.LastModified };
  } catch (err) {
    throw s3Problem('GetObject', bucket, key, err);
  }
}

/** An object's LastModified (one HEAD request), or undefined when it does not exist. */
export async function lastModified(s3: S3Client, bucket: string, key: string): Promise<Date | undefined> {
  try {
    const out = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    if (!out.LastModified) throw new Error('the response has no Last-Modified');
    return out.LastModified;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw s3Problem('HeadObject', bucket, key, err);
  }
}

/** One metric value, per source when `source` is given, else fleet-wide (no dimensions). */
export function datum(name: string, value: number, unit: StandardUnit, source?: string, at?: Date): MetricDatum {
  return {
    MetricName: name,
    Value: value,
    Unit: unit,
    Timestamp: at,
    Dimensions: source === undefined ? undefined : [{ Name: SOURCE_DIMENSION, Value: source }],
  };
}

/** PutMetricData takes at most 1000 values per call; stay well below. */
const METRICS_PER_CALL = 500;

export async function publishMetrics(cloudwatch: CloudWatchClient, data: readonly MetricDatum[]): Promise<void> {
  for (let i = 0; i < data.length; i += METRICS_PER_CALL) {
    await cloudwatch.send(new PutMetricDataCommand({ Namespace: METRIC_NAMESPACE, MetricData: data.slice(i, i + METRICS_PER_CALL) }));
  }
}

/** SNS subjects are plain ASCII of at most 100 characters. */
export async function notify(clients: MonitorClients, subject: string, lines: readonly string[]): Promise<boolean> {
  if (!clients.topicArn) return false;
  await clients.sns.send(new PublishCommand({
    TopicArn: clients.topicArn,
    Subject: subject.replace(/[^\x20-\x7e]/g, '?').slice(0, 100),
    Message: lines.join('\n'),
  }));
  return true;
}

/** Runs `work` over items with at most `limit` in flight, keeping the input order in the result. */
export async function mapBounded<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** Seconds from `from` to `to`, never negative (a clock skew must not read as a fresh backup from the future). */
export function secondsBetween(from: Date, to: Date): number {
  return Math.max(0, Math.round((to.getTime() - from.getTime()) / 1000));
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
