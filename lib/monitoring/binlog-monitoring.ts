/**
 * How BackupMonitoring watches a MariaDB source whose binlogs are streamed (BackupSourceProps.binlogStreaming): the
 * threshold addSource takes, and the alarms over what the freshness check publishes (BinlogArchiveAgeSeconds,
 * BinlogArchiveGaps).
 */
import { Duration } from 'aws-cdk-lib';
import { wholeSeconds } from '../shared/errors';
import type { MonitoringRuleSource } from './monitoring-rules';

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
