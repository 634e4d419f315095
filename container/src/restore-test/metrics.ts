/**
 * Restore-test metrics in CloudWatch: per source (Source dimension) and fleet-wide (no dimension), so that
 * one fleet alarm watches every source. Published when running in AWS (ECS sets ECS_CONTAINER_METADATA_URI_V4)
 * or when asked with --publish-metrics.
 */
import { CloudWatchClient, MetricDatum, PutMetricDataCommand, StandardUnit } from '@aws-sdk/client-cloudwatch';
import { METRIC_NAMESPACE, Metrics, SOURCE_DIMENSION } from '../../../lib/contract';
import { log } from '../shared/log';

export interface RestoreTestMeasurements {
  readonly source: string;
  readonly success: boolean;
  readonly restoreDurationSeconds?: number;
  readonly restoredBackupAgeSeconds?: number;
  /** The source's RTO target: with it, the duration is also published as a share of the target. */
  readonly rtoSeconds?: number;
  readonly at: Date;
}

export function shouldPublish(flag: boolean, env: NodeJS.ProcessEnv = process.env): boolean {
  return flag || Boolean(env.ECS_CONTAINER_METADATA_URI_V4);
}

export function restoreTestData(m: RestoreTestMeasurements): MetricDatum[] {
  const values: [string, number | undefined, StandardUnit][] = [
    [Metrics.RESTORE_TEST_SUCCESS, m.success ? 1 : 0, StandardUnit.None],
    [Metrics.RESTORE_DURATION_SECONDS, m.restoreDurationSeconds, StandardUnit.Seconds],
    [Metrics.RESTORED_BACKUP_AGE_SECONDS, m.restoredBackupAgeSeconds, StandardUnit.Seconds],
    [Metrics.RESTORE_RTO_RATIO, m.rtoSeconds && m.restoreDurationSeconds !== undefined ? m.restoreDurationSeconds / m.rtoSeconds : undefined, StandardUnit.None],
  ];
  return values.filter(([, value]) => value !== undefined).flatMap(([MetricName, Value, Unit]) => [
    { MetricName, Value, Unit, Timestamp: m.at, Dimensions: [{ Name: SOURCE_DIMENSION, Value: m.source }] },
    { MetricName, Value, Unit, Timestamp: m.at },
  ]);
}

/**
 * Publishes the measurements; returns a problem instead of throwing, so the report still names the test's own result.
 * The problem is not logged here: it goes into the report and the run's one failure line.
 */
export async function publishRestoreTest(client: CloudWatchClient, m: RestoreTestMeasurements): Promise<string | undefined> {
  try {
    await client.send(new PutMetricDataCommand({ Namespace: METRIC_NAMESPACE, MetricData: restoreTestData(m) }));
    log.info('restore-test metrics published', { namespace: METRIC_NAMESPACE, source: m.source, success: m.success });
    return undefined;
  } catch (err) {
    const e = err as Error;
    return `the metrics could not be published: ${e.name}: ${e.message} (the task role needs cloudwatch:PutMetricData on the ${METRIC_NAMESPACE} namespace)`;
  }
}
