/**
 * Backups in Glacier Flexible Retrieval or Deep Archive cannot be read until S3 makes a temporary
 * copy. That is not an error: request the copy (RestoreObject), say when it will be readable, and
 * either stop with exit code 75 ("try again later") or, with --wait, poll until it is readable.
 */
import { HeadObjectCommand, HeadObjectCommandOutput, RestoreObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { OptionKind, OptionSpecs, ParsedArgs } from '../shared/args';
import { AgentError, UsageError } from '../shared/errors';
import { log } from '../shared/log';
import { isDenied, listedAbsent, s3Problem } from '../shared/s3';

export enum RetrievalTier {
  EXPEDITED = 'Expedited',
  STANDARD = 'Standard',
  BULK = 'Bulk',
}

/** Exit code when an archived backup is being retrieved but is not readable yet (sysexits EX_TEMPFAIL). */
export const EXIT_NOT_YET_READABLE = 75;

export const ARCHIVE_OPTIONS: OptionSpecs = {
  'retrieval-tier': { kind: OptionKind.STRING, placeholder: 'TIER', description: 'for archived backups: Expedited, Standard (default) or Bulk' },
  'wait': { kind: OptionKind.FLAG, description: 'for archived backups: wait until the retrieved copy is readable, then go on' },
};

export interface RetrievalOptions {
  readonly tier: RetrievalTier;
  readonly wait: boolean;
  /** Days S3 keeps the temporary copy. */
  readonly days: number;
  readonly pollMs: number;
}

export function retrievalOptions(args: ParsedArgs): RetrievalOptions {
  const text = args.string('retrieval-tier') ?? RetrievalTier.STANDARD;
  const tier = Object.values(RetrievalTier).find((t) => t.toLowerCase() === text.toLowerCase());
  if (!tier) throw new UsageError(`--retrieval-tier must be Expedited, Standard or Bulk (got '${text}')`);
  const fromEnv = Number(process.env.RESTORABLE_RETRIEVAL_POLL_MS);
  return { tier, wait: args.flag('wait'), days: 2, pollMs: Number.isFinite(fromEnv) && fromEnv > 0 ? fromEnv : 60_000 };
}

/** AWS's published worst cases, in hours, per storage class and retrieval tier. */
const RETRIEVAL_HOURS: Record<string, Partial<Record<RetrievalTier, number>>> = {
  GLACIER: { [RetrievalTier.EXPEDITED]: 5 / 60, [RetrievalTier.STANDARD]: 5, [RetrievalTier.BULK]: 12 },
  DEEP_ARCHIVE: { [RetrievalTier.STANDARD]: 12, [RetrievalTier.BULK]: 48 },
};

/** The class that decides retrieval time, or undefined when the object reads directly. */
function archivedClass(head: HeadObjectCommandOutput): string | undefined {
  if (head.StorageClass === 'GLACIER' || head.StorageClass === 'DEEP_ARCHIVE') return head.StorageClass;
  if (head.ArchiveStatus === 'DEEP_ARCHIVE_ACCESS') return 'DEEP_ARCHIVE';
  if (head.ArchiveStatus === 'ARCHIVE_ACCESS') return 'GLACIER';
  return undefined;
}

/** `ongoing-request="false", expiry-date="…"`: a readable copy; `ongoing-request="true"`: still coming. */
function restoreState(head: HeadObjectCommandOutput): 'none' | 'ongoing' | 'readable' {
  if (!head.Restore) return 'none';
  return /ongoing-request="true"/.test(head.Restore) ? 'ongoing' : 'readable';
}

async function head(s3: S3Client, bucket: string, key: string, versionId?: string): Promise<HeadObjectCommandOutput> {
  try {
    return await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }));
  } catch (err) {
    const status = (err as S3ServiceException)?.$metadata?.httpStatusCode;
    // A 403 may be S3's answer for a missing key to a role that may not list it: the current version's absence is
    // learnt by listing the key (a given version's cannot be).
    if (status === 404 || (!versionId && isDenied(err) && await listedAbsent(s3, bucket, key))) {
      throw new AgentError(`s3://${bucket}/${key}${versionId ? ` (version ${versionId})` : ''} does not exist, though its manifest does: ` +
        'the backup object was deleted or expired. With a versioned bucket, `aws s3api list-object-versions` shows older versions for --version-id.');
    }
    throw s3Problem('HeadObject', bucket, key, err);
  }
}

/**
 * Returns once the object can be read. For an archived object without a readable copy, requests one
 * and then either throws (exit 75, saying when to come back) or, with `wait`, polls until it is readable.
 */
export async function ensureReadable(s3: S3Client, bucket: string, key: string, versionId: string | undefined,
  options: RetrievalOptions): Promise<void> {
  let state = await head(s3, bucket, key, versionId);
  const storageClass = archivedClass(state);
  if (!storageClass || restoreState(state) === 'readable') return;
  const where = `s3://${bucket}/${key}`;
  const hours = RETRIEVAL_HOURS[storageClass][options.tier];
  if (hours === undefined) {
    throw new UsageError(`${where} is in ${storageClass}, which has no ${options.tier} retrieval: use --retrieval-tier Standard or Bulk`);
  }
  if (restoreState(state) === 'none') {
    try {
      await s3.send(new RestoreObjectCommand({
        Bucket: bucket, Key: key, VersionId: versionId,
        RestoreRequest: { ...(state.ArchiveStatus ? {} : { Days: options.days }), GlacierJobParameters: { Tier: options.tier } },
      }));
      log.info('archived backup: retrieval requested', { key, storageClass, tier: options.tier });
    } catch (err) {
      if ((err as S3ServiceException)?.name !== 'RestoreAlreadyInProgress') throw s3Problem('RestoreObject', bucket, key, err);
    }
  }
  const readableBy = new Date(Date.now() + hours * 3_600_000).toISOString();
  const estimate = `${options.tier} retrieval from ${storageClass} takes up to ${hours >= 1 ? `${hours} hours` : `${Math.round(hours * 60)} minutes`}`;
  if (!options.wait) {
    throw new AgentError(`${where} is archived in ${storageClass}: its retrieval has started and it should be readable by ${readableBy} ` +
      `(${estimate}). Run the same command again then, or add --wait to wait for it.`, EXIT_NOT_YET_READABLE);
  }
  log.info('archived backup: waiting for the retrieved copy', { key, storageClass, readableBy });
  while (restoreState(state) !== 'readable') {
    await new Promise((resolve) => setTimeout(resolve, options.pollMs));
    state = await head(s3, bucket, key, versionId);
  }
  log.info('archived backup: readable now', { key });
}
