/** `restorable list`: a source's backups, newest first, from their manifests. */
import { S3Client, _Object } from '@aws-sdk/client-s3';
import { MANIFEST_SUFFIX, Manifest, latestKey, parseLatest, parseManifest, sourceNameProblem, sourcePrefix } from '../../../lib/contract';
import { CommandSpec, OptionKind, ParsedArgs, SOURCE_OPTIONS } from '../shared/args';
import { UsageError } from '../shared/errors';
import { getText, listAll } from '../shared/s3';
import { folderNames } from './status';

export const LIST_COMMAND: CommandSpec = {
  name: 'list',
  summary: 'List a source\'s backups, newest first, with time, tier, size and storage class.',
  options: {
    ...SOURCE_OPTIONS,
    json: { kind: OptionKind.FLAG, description: 'print the list as JSON' },
  },
};

export interface BackupListing {
  readonly key: string;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly tier: string;
  readonly size: number;
  readonly storageClass: string;
  readonly tables: number;
  readonly rows: number;
  readonly latest: boolean;
}

export async function runList(args: ParsedArgs, s3: S3Client): Promise<BackupListing[]> {
  const source = args.requiredString('source');
  const nameProblem = sourceNameProblem(source);
  if (nameProblem) throw new UsageError(nameProblem);
  const bucket = args.requiredString('bucket');
  const prefix = args.string('prefix');
  const objects = await listDatedFolders(s3, bucket, sourcePrefix(prefix, source));
  const storageClass = new Map(objects.map((o) => [o.Key, o.StorageClass ?? 'STANDARD']));
  const latestText = await getText(s3, bucket, latestKey(prefix, source));
  const latest = latestText ? parseLatest(latestText.text, latestKey(prefix, source)).key : undefined;
  const manifests: Manifest[] = [];
  for (const o of objects.filter((o) => o.Key?.endsWith(MANIFEST_SUFFIX))) {
    const text = await getText(s3, bucket, o.Key!);
    if (text) manifests.push(parseManifest(text.text, `s3://${bucket}/${o.Key}`));
  }
  return manifests
    .sort((a, b) => b.startedAt.localeCompare(a.startedAt))
    .map((m) => ({
      key: m.key, startedAt: m.startedAt, finishedAt: m.finishedAt, tier: m.tier, size: m.size,
      // The dump's own class: it is what a restore has to wait for when archived.
      storageClass: storageClass.get(m.key) ?? 'MISSING',
      tables: m.tables.length, rows: m.tables.reduce((sum, t) => sum + t.rows, 0), latest: m.key === latest,
    }));
}

/**
 * The objects of a source's dated folders (`{YYYY}/`, found with one delimited listing): its dumps and their
 * manifests, never its archived WAL or base backups (`wal/`, `base/`), which hold thousands of objects.
 */
async function listDatedFolders(s3: S3Client, bucket: string, prefix: string): Promise<_Object[]> {
  const years = (await folderNames(s3, bucket, prefix)).filter((name) => /^\d{4}$/.test(name));
  return (await Promise.all(years.map((year) => listAll(s3, bucket, `${prefix}${year}/`)))).flat();
}

export function formatListing(backups: readonly BackupListing[]): string {
  if (backups.length === 0) return 'no backups';
  const rows = backups.map((b) => [b.startedAt, b.tier, String(b.size), b.storageClass, `${b.key}${b.latest ? '  (latest)' : ''}`]);
  const header = ['STARTED', 'TIER', 'BYTES', 'CLASS', 'KEY'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  return [header, ...rows].map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ')).join('\n');
}
