/**
 * How BackupMonitoring watches a MariaDB source whose binlogs are streamed (BackupSourceProps.binlogStreaming): the
 * threshold addSource takes, and the alarms over what the freshness check publishes (BinlogArchiveAgeSeconds,
 * BinlogArchiveGaps). Two fleet alarms for all such sources, made with the first (a store without any pays nothing), and
 * with perSourceAlarms two more per source.
 */
import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { Construct } from 'constructs';
import { BackupBucket } from '../store/backup-bucket';
import { wholeSeconds } from '../shared/errors';
import type { MonitoringRuleSource } from './monitoring-rules';
import { WalAlarmContext, archiveGap, runNowAdvice, staleArchive } from './wal-archive-monitoring';

/** How a source's streamed binlogs are watched. */
export interface MonitoredBinlog {
  /**
   * The newest binlog object of the source's newest stream (by the time S3 stored it) older than this alarms: the
   * continuous RPO is broken. Give the streamer's partial-upload interval plus the longest quiet time of the server:
   * a server that writes nothing grows no binlog, and its newest object then ages while no data is at risk.
   */
  readonly maxAge: Duration;
}

/** A watched binlog stream's threshold in seconds, or none; problems are pushed, each naming its property. */
export function binlogThresholds(source: string, binlog: MonitoredBinlog | undefined, problems: string[]):
  Pick<MonitoringRuleSource, 'binlogMaxAgeSeconds'> {
  if (binlog === undefined) return {};
  return {
    binlogMaxAgeSeconds: wholeSeconds(`binlog.maxAge of source '${source}'`, binlog?.maxAge,
      { min: 1, example: 'Duration.minutes(5)' }, problems),
  };
}

/** The fleet alarms of binlog-streamed sources. */
export interface BinlogAlarms {
  readonly stale: cloudwatch.Alarm;
  readonly gaps: cloudwatch.Alarm;
}

/** The metrics the alarms watch, as BackupMonitoring reads them (its period: twice the check interval). */
export interface BinlogMetrics {
  metricBinlogArchiveAge(source: string): cloudwatch.IMetric;
  metricBinlogGaps(source?: string): cloudwatch.IMetric;
  metricFleetBinlogStaleness(): cloudwatch.IMetric;
}

/** What the alarms are made with: BackupMonitoring's alarm maker, its metrics and store. */
export type BinlogAlarmContext = Omit<WalAlarmContext, 'monitoring'> & { readonly monitoring: BinlogMetrics };

const STREAM_STOPPED = 'Check the source\'s binlog streamer service (its log says why it stopped or restarts), and whether the server wrote anything at all.';

/** A dump with binlog coordinates makes every later time restorable again. */
const newDumpAdvice = (store: BackupBucket, source: string) =>
  runNowAdvice(store, source, 'Run a dump now: start the source\'s scheduled dump task', 'backup', ' --binlog-coordinates');

/** The two fleet alarms, over the worst source. */
export function addFleetBinlogAlarms({ alarm, monitoring, store }: BinlogAlarmContext): BinlogAlarms {
  return {
    stale: alarm('BinlogArchiveStaleAlarm', monitoring.metricFleetBinlogStaleness(), staleArchive(1,
      'A source\'s newest streamed binlog object is older than its binlog maxAge (the value is the worst age over its threshold): ' +
        `its continuous RPO is broken. ${STREAM_STOPPED} The freshness check's message names the source, its stream and newest binlog object.`)),
    gaps: alarm('BinlogGapsAlarm', monitoring.metricBinlogGaps(), archiveGap(
      'A source\'s binlogs cannot be replayed from its newest dump to its newest streamed event (the value is how many sources): ' +
        'its binlog stream began anew after the dump (the server purged a file before it was streamed, RESET MASTER, another server), a file is ' +
        'missing, or the dump has no binlog coordinates. Point-in-time recovery cannot reach past it. ' +
        `${newDumpAdvice(store, 'SOURCE')} The freshness check's message names the source, why the stream began (its stream.json) and the command.`)),
  };
}

/** With perSourceAlarms: a source's own two, in its scope. */
export function addSourceBinlogAlarms({ alarm, monitoring, store }: BinlogAlarmContext, source: MonitoringRuleSource, scope: Construct): void {
  alarm('BinlogArchiveAgeAlarm', monitoring.metricBinlogArchiveAge(source.name), staleArchive(source.binlogMaxAgeSeconds!,
    `The newest streamed binlog object of ${source.name} is older than ${source.binlogMaxAgeSeconds} s, or none was found: its ` +
      `continuous RPO is broken. ${STREAM_STOPPED}`), scope);
  alarm('BinlogGapsAlarm', monitoring.metricBinlogGaps(source.name), archiveGap(
    `The binlogs of ${source.name} cannot be replayed from its newest dump to its newest streamed event (a new stream after the dump, ` +
      `a missing file, or a dump without coordinates): point-in-time recovery cannot reach past it. ${newDumpAdvice(store, source.name)}`), scope);
}
