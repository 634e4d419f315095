import { Duration, Lazy } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { BackupBucket } from '../store/backup-bucket';
import { MANIFEST_SUFFIX, sourcePrefix } from '../contract/names';
import { RestorableError } from '../shared/errors';

/** Sources per schedule target and per manifest rule: keeps each target's input and each rule's pattern well under EventBridge's limits. */
const SOURCES_PER_RULE = 25;

/** What the freshness and size checks need to know of one watched source. */
export interface MonitoringRuleSource {
  readonly name: string;
  readonly maxAgeSeconds: number;
  readonly minSizeBytes?: number;
  readonly ratioFloor: number;
  /** With a watched WAL archive: the newest WAL object's age limit. */
  readonly walMaxAgeSeconds?: number;
  /** With a watched WAL archive: the newest base backup's age limit. */
  readonly baseBackupMaxAgeSeconds?: number;
  /** With streamed binlogs: the newest binlog object's age limit. */
  readonly binlogMaxAgeSeconds?: number;
}

export interface MonitoringRulesProps {
  readonly store: BackupBucket;
  /** How often the freshness check runs. */
  readonly interval: Duration;
  readonly freshnessFunction: lambda.IFunction;
  readonly sizeAnomalyFunction: lambda.IFunction;
  /** Whether a source is restore-tested; asked at synth, so the order of calls does not matter. */
  readonly isRestoreTested: (source: string) => boolean;
}

/**
 * The EventBridge rules that bring a BackupMonitoring's sources to its functions, 25 sources per rule: a schedule
 * whose input carries each source's age threshold, and a manifest rule that matches its sources' keys and carries
 * their size limits. The rules are created in the given scope (the BackupMonitoring), so their construct ids, and
 * the logical ids of deployed rules, are those of the BackupMonitoring's own children.
 */
export class MonitoringRules {
  private readonly chunks: MonitoringRuleSource[][] = [];

  constructor(private readonly scope: Construct, private readonly props: MonitoringRulesProps) {}

  /** Brings one more source to the checks: into the last chunk, or a new chunk with its two rules when that is full. */
  public addSource(source: MonitoringRuleSource): void {
    this.chunkFor().push(source);
    this.manifestRule(this.chunks.length).addEventPattern({
      detail: { object: { key: events.Match.wildcard(`${sourcePrefix(this.props.store.prefix, source.name)}*${MANIFEST_SUFFIX}`) } },
    });
  }

  /** The current chunk of sources, or a new one with its schedule when the last is full. */
  private chunkFor(): MonitoringRuleSource[] {
    const last = this.chunks[this.chunks.length - 1];
    if (last && last.length < SOURCES_PER_RULE) return last;
    const chunk: MonitoringRuleSource[] = [];
    this.chunks.push(chunk);
    const n = this.chunks.length;
    const suffix = n === 1 ? '' : String(n);
    const { isRestoreTested } = this.props;
    new events.Rule(this.scope, `FreshnessSchedule${suffix}`, {
      description: `Freshness check of Restorable backups, sources ${(n - 1) * SOURCES_PER_RULE + 1}-${n * SOURCES_PER_RULE}`,
      schedule: events.Schedule.rate(this.props.interval),
      targets: [new targets.LambdaFunction(this.props.freshnessFunction, {
        event: events.RuleTargetInput.fromObject({
          sources: Lazy.any({
            produce: () => chunk.map((s) => ({
              source: s.name,
              maxAgeSeconds: s.maxAgeSeconds,
              ...(isRestoreTested(s.name) ? { restoreTested: true } : {}),
              ...(s.walMaxAgeSeconds !== undefined ? { wal: { maxAgeSeconds: s.walMaxAgeSeconds, baseBackupMaxAgeSeconds: s.baseBackupMaxAgeSeconds } } : {}),
              ...(s.binlogMaxAgeSeconds !== undefined ? { binlog: { maxAgeSeconds: s.binlogMaxAgeSeconds } } : {}),
            })),
          }),
        }),
        retryAttempts: 2,
      })],
    });
    new events.Rule(this.scope, `NewBackupRule${suffix}`, {
      description: `Size check of each new Restorable backup manifest, sources ${(n - 1) * SOURCES_PER_RULE + 1}-${n * SOURCES_PER_RULE}`,
      eventPattern: {
        source: ['aws.s3'],
        detailType: ['Object Created'],
        detail: { bucket: { name: [this.props.store.bucket.bucketName] } },
      },
      targets: [new targets.LambdaFunction(this.props.sizeAnomalyFunction, {
        event: events.RuleTargetInput.fromObject({
          detail: events.EventField.fromPath('$.detail'),
          sources: Lazy.any({ produce: () => Object.fromEntries(chunk.map((s) => [s.name, { ratioFloor: s.ratioFloor, minSizeBytes: s.minSizeBytes }])) }),
        }),
        retryAttempts: 2,
      })],
    });
    return chunk;
  }

  private manifestRule(n: number): events.Rule {
    return this.scope.node.findChild(`NewBackupRule${n === 1 ? '' : n}`) as events.Rule;
  }
}

/** New manifests reach the size check through EventBridge, which the store's bucket must be told to notify. */
export function enableEventBridgeNotifications(scope: Construct, store: BackupBucket): void {
  const cfnBucket = store.bucket.node.defaultChild;
  if (!(cfnBucket instanceof s3.CfnBucket)) {
    throw new RestorableError(scope, 'store: its bucket is not defined in this app, so its EventBridge notifications cannot be turned on here');
  }
  cfnBucket.addPropertyOverride('NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled', true);
}
