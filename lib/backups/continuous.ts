/**
 * What the two kinds of continuous archiving share, PostgreSQL's WAL (wal-archive.ts) and MariaDB's binlogs
 * (binlog-streaming.ts): where a source is hosted, which decides what can be archived from outside, and the timing
 * of a streaming service: how often it uploads the file it is writing, and how old the newest archived object may get
 * before monitoring alarms.
 */
import { Duration } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as rds from 'aws-cdk-lib/aws-rds';
import type { SourceEndpoint } from './backup-source';

/** Where a source's database runs, which decides whether its WAL or binlogs can be archived from outside. */
export enum DatabaseHosting {
  /** A server of your own (EC2, ECS or EKS, on premises), which allows archive_command and physical replication. */
  SELF_MANAGED = 'self-managed',
  /** Amazon RDS, which allows neither, and has its own point-in-time recovery (automated backups). */
  RDS = 'rds',
  /** Amazon Aurora, which allows neither, and has its own point-in-time recovery (and, for MySQL, backtrack). */
  AURORA = 'aurora',
}

/**
 * The hosting a source declares, or the one its `peer` (an RDS instance or an Aurora cluster) or its endpoint's host
 * name (`….rds.amazonaws.com`, with `.cluster-` for Aurora) shows; a server of your own otherwise.
 */
export function hostingOf(given: DatabaseHosting | undefined, peer: ec2.IConnectable | undefined, endpoint: SourceEndpoint | undefined): DatabaseHosting {
  if (given) return given;
  if (peer instanceof rds.DatabaseClusterBase) return DatabaseHosting.AURORA;
  if (peer instanceof rds.DatabaseInstanceBase) return DatabaseHosting.RDS;
  const host = endpoint?.hostname ?? '';
  if (/\.rds\.amazonaws\.com(\.cn)?$/.test(host)) return host.includes('.cluster-') ? DatabaseHosting.AURORA : DatabaseHosting.RDS;
  return DatabaseHosting.SELF_MANAGED;
}

/** The default partial upload interval of a streaming service (a WAL receiver, a binlog streamer). */
export const DEFAULT_PARTIAL_UPLOAD_INTERVAL = Duration.seconds(5);
/** The default maximum age of a streamed archive's newest object. */
export const DEFAULT_STREAMED_MAX_AGE = Duration.minutes(5);

/** What is wrong with a partial upload interval (whole seconds, 1 to 300), or undefined. */
export function partialIntervalProblem(interval: Duration): string | undefined {
  const seconds = interval.toSeconds({ integral: false });
  if (Number.isInteger(seconds) && seconds >= 1 && seconds <= 300) return undefined;
  return `partialUploadInterval ${interval.toHumanString()} must be whole seconds from 1 to 300`;
}

/**
 * What is wrong with an archive's maximum age (whole seconds, at least a minute, and longer than the interval at
 * which a streaming service uploads, when there is one), or undefined.
 */
export function maxArchiveAgeProblem(maxAge: Duration, partialInterval?: Duration): string | undefined {
  const seconds = maxAge.toSeconds({ integral: false });
  if (!Number.isInteger(seconds) || seconds < 60) return `maxArchiveAge ${maxAge.toHumanString()} must be whole seconds, at least a minute`;
  if (partialInterval && seconds <= partialInterval.toSeconds({ integral: false })) {
    return `maxArchiveAge ${maxAge.toHumanString()} must be longer than partialUploadInterval ${partialInterval.toHumanString()}`;
  }
  return undefined;
}
