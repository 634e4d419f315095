/**
 * Size anomaly check, on every new manifest (an EventBridge "Object Created" event): compares the new backup's
 * size with the median of the source's recent backups, and tells the topic when it shrank below the floor or
 * under the source's minimum, which usually means a broken dump rather than a smaller database.
 *
 * Bounded reads: one GET of the new manifest, then one LIST per UTC day prefix (`{source}/YYYY/MM/DD/`), newest
 * day first, until enough earlier backups are found or the day limit is reached. A listing gives each dump's
 * stored size, which is the size its manifest records, so no other manifest is read.
 */
import { StandardUnit } from '@aws-sdk/client-cloudwatch';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { parseManifest } from '../../lib/contract/manifest';
import { Metrics } from '../../lib/contract/metrics';
import { MANIFEST_SUFFIX, dayPrefix, manifestKeyFor, parseBackupKey } from '../../lib/contract/names';
import { MonitorClients, clientsFromEnv, datum, getText, notify, publishMetrics } from '../shared/aws';

/** Per-source limits, passed by the rule that matches the source's manifests. */
export interface SizeLimits {
  /** Alarm when the size over the median of recent backups falls below this. */
  readonly ratioFloor?: number;
  /** Alarm when the stored size is under this many bytes. */
  readonly minSizeBytes?: number;
}

/** EventBridge's S3 "Object Created" detail, with the limits of the sources the rule covers. */
export interface SizeEvent {
  readonly detail: { readonly bucket: { readonly name: string }; readonly object: { readonly key: string } };
  readonly sources?: Readonly<Record<string, SizeLimits>>;
}

export interface SizeOptions {
  /** The ratio floor of sources that do not set one. */
  readonly defaultRatioFloor: number;
  /** How many earlier backups make the median. */
  readonly historyCount: number;
  /** How many UTC days back to look for them, at most: one LIST each. */
  readonly historyDays: number;
}

export const DEFAULT_SIZE_OPTIONS: SizeOptions = { defaultRatioFloor: 0.5, historyCount: 10, historyDays: 35 };

export interface SizeReport {
  readonly source: string;
  readonly key: string;
  readonly sizeBytes: number;
  /** Sizes of the earlier backups the median came from, newest first. */
  readonly history: readonly number[];
  readonly medianBytes?: number;
  /** Size over the median; absent for a source's first backup. */
  readonly ratio?: number;
  /** min(ratio / floor, size / minimum): below 1 is an anomaly. */
  readonly fleetSignal?: number;
  /** What is wrong, in words; empty when the size looks normal. */
  readonly anomalies: readonly string[];
  readonly notified: boolean;
}

const DAY_MS = 86_400_000;
/** A day prefix holds three objects per backup; this many pages covers a backup every minute. */
const MAX_PAGES_PER_DAY = 5;

export async function checkSize(event: SizeEvent, clients: MonitorClients, options: SizeOptions = DEFAULT_SIZE_OPTIONS): Promise<SizeReport | undefined> {
  const manifestKey = decodeKey(event?.detail?.object?.key);
  const parsed = parseBackupKey(manifestKey.slice(0, -MANIFEST_SUFFIX.length));
  if (!manifestKey.endsWith(MANIFEST_SUFFIX) || !parsed) {
    console.log(JSON.stringify({ ignored: manifestKey, reason: 'not the manifest of a backup' }));
    return undefined;
  }
  const where = `s3://${clients.bucket}/${manifestKey}`;
  const text = await getText(clients.s3, clients.bucket, manifestKey);
  if (text === undefined) throw new Error(`${where} is gone: the event names a manifest that does not exist`);
  const manifest = parseManifest(text, where);
  const { source } = manifest;
  const limits = event.sources?.[source] ?? {};
  const floor = limits.ratioFloor ?? options.defaultRatioFloor;

  const history = await recentSizes(clients, source, manifest.key, parsed.startedAt, options);
  const medianBytes = history.length ? median(history) : undefined;
  const ratio = medianBytes ? manifest.size / medianBytes : undefined;
  const signals = [
    ...(ratio !== undefined ? [ratio / floor] : []),
    ...(limits.minSizeBytes ? [manifest.size / limits.minSizeBytes] : []),
  ];
  const fleetSignal = signals.length ? Math.min(...signals) : undefined;
  const anomalies = [
    ...(ratio !== undefined && ratio < floor
      ? [`size dropped to ${percent(ratio)} of the median of the ${history.length} previous backups (${manifest.size} bytes against ${medianBytes} bytes; floor ${percent(floor)})`]
      : []),
    ...(limits.minSizeBytes && manifest.size < limits.minSizeBytes
      ? [`size ${manifest.size} bytes is under the minimum of ${limits.minSizeBytes} bytes`]
      : []),
  ];

  // Stamped now, not with the backup's time: the alarm judges the period in which the verdict arrives.
  await publishMetrics(clients.cloudwatch, [
    datum(Metrics.BACKUP_SIZE_BYTES, manifest.size, StandardUnit.Bytes, source),
    ...(ratio !== undefined ? [datum(Metrics.BACKUP_SIZE_RATIO, ratio, StandardUnit.None, source)] : []),
    ...(fleetSignal !== undefined ? [datum(Metrics.FLEET_SIZE_RATIO, fleetSignal, StandardUnit.None)] : []),
  ]);
  const notified = anomalies.length > 0 && await notify(clients, `Restorable: backup of ${source} looks broken (size anomaly)`, [
    `Backup ${manifest.key} of source ${source}:`,
    ...anomalies.map((a) => `- ${a}`),
    '',
    `Recent sizes, newest first: ${history.join(', ') || 'none'}`,
    'A sudden drop usually means a broken dump (wrong database, missing tables, truncated output), not a smaller database.',
  ]);
  const report = { source, key: manifest.key, sizeBytes: manifest.size, history, medianBytes, ratio, fleetSignal, anomalies, notified };
  console.log(JSON.stringify(report));
  return report;
}

/**
 * Sizes of the source's verified backups that started before this one, newest first, at most historyCount:
 * one LIST per day prefix, walking back from the backup's own day. A dump without its manifest never passed
 * verification and does not count.
 */
async function recentSizes(clients: MonitorClients, source: string, key: string, startedAt: Date, options: SizeOptions): Promise<number[]> {
  const found: { startedAt: number; size: number }[] = [];
  for (let day = 0; day < options.historyDays && found.length < options.historyCount; day++) {
    const objects = await listDay(clients, dayPrefix(clients.prefix, source, new Date(startedAt.getTime() - day * DAY_MS)));
    for (const [objectKey, size] of objects) {
      const backup = parseBackupKey(objectKey);
      if (!backup || objectKey === key || backup.startedAt >= startedAt || !objects.has(manifestKeyFor(objectKey))) continue;
      found.push({ startedAt: backup.startedAt.getTime(), size });
    }
  }
  return found.sort((a, b) => b.startedAt - a.startedAt).slice(0, options.historyCount).map((b) => b.size);
}

async function listDay(clients: MonitorClients, prefix: string): Promise<Map<string, number>> {
  const objects = new Map<string, number>();
  let token: string | undefined;
  for (let page = 0; page < MAX_PAGES_PER_DAY; page++) {
    const out = await clients.s3.send(new ListObjectsV2Command({ Bucket: clients.bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of out.Contents ?? []) objects.set(o.Key!, o.Size ?? 0);
    token = out.IsTruncated ? out.NextContinuationToken : undefined;
    if (!token) break;
  }
  return objects;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const percent = (x: number) => `${(x * 100).toFixed(0)}%`;

/** S3 event keys are URL-encoded, with '+' for a space. */
function decodeKey(key: unknown): string {
  if (typeof key !== 'string') throw new Error('the event has no detail.object.key: expected an EventBridge S3 "Object Created" event');
  return decodeURIComponent(key.replace(/\+/g, ' '));
}

function optionsFromEnv(): SizeOptions {
  const number = (name: string, fallback: number) => (process.env[name] ? Number(process.env[name]) : fallback);
  return {
    defaultRatioFloor: number('DEFAULT_RATIO_FLOOR', DEFAULT_SIZE_OPTIONS.defaultRatioFloor),
    historyCount: number('HISTORY_COUNT', DEFAULT_SIZE_OPTIONS.historyCount),
    historyDays: number('HISTORY_DAYS', DEFAULT_SIZE_OPTIONS.historyDays),
  };
}

export async function handler(event: SizeEvent): Promise<SizeReport | undefined> {
  return checkSize(event, clientsFromEnv(), optionsFromEnv());
}
