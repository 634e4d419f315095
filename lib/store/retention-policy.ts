/**
 * Retention math for a versioned, Object-Locked backup bucket: keep-counts become lifecycle ages,
 * each tier's effective retention is computed, and storage-class transitions are checked against
 * the minimum storage durations S3 charges anyway. Pure logic, no aws-cdk-lib, so it is easy to test
 * and to print in documentation.
 */
import { KeepCounts, TIERS, Tier, effectiveRetentionDays, expiryDays, keepCountProblems } from '../contract/tiers';

/**
 * Days an object is charged for in a storage class even if it leaves earlier.
 * Keys are S3 storage class names (the values of `s3.StorageClass`).
 */
export const MINIMUM_STORAGE_DAYS: Readonly<Record<string, number>> = {
  STANDARD_IA: 30,
  ONEZONE_IA: 30,
  GLACIER_IR: 90,
  GLACIER: 90,
  DEEP_ARCHIVE: 180,
};

/** S3 refuses lifecycle transitions into the Infrequent Access classes before an object is 30 days old. */
const IA_CLASSES = ['STANDARD_IA', 'ONEZONE_IA'];
const IA_EARLIEST_TRANSITION_DAYS = 30;

/** Move a tier's backups to a cheaper storage class once they reach an age. */
export interface TierTransitionPlan {
  readonly tier: Tier;
  /** An S3 storage class name, for example `GLACIER` or `DEEP_ARCHIVE`. */
  readonly storageClass: string;
  readonly afterDays: number;
}

/** Everything that decides how long backups live. */
export interface RetentionInput {
  readonly keep: KeepCounts;
  /** Days a version survives after it stops being current (expiry or a deletion). */
  readonly noncurrentDays: number;
  /** Object Lock default retention in days; 0 when Object Lock is off. */
  readonly lockDays: number;
  readonly transitions: readonly TierTransitionPlan[];
}

/** How one tier's backups live and die. */
export interface TierRetention {
  readonly tier: Tier;
  readonly keepCount: number;
  /** Age at which the lifecycle rule expires the current version (adds a delete marker). */
  readonly expirationDays: number;
  /** Days the expired version survives as noncurrent before it is deleted. */
  readonly noncurrentDays: number;
  /** Object Lock default retention, in days (0 when Object Lock is off). */
  readonly lockDays: number;
  /** How long a backup really exists: max(expiration + noncurrent, lock). */
  readonly effectiveDays: number;
  /** Storage class transitions, earliest first. */
  readonly transitions: readonly { readonly storageClass: string; readonly afterDays: number }[];
}

const isPositiveWhole = (n: number) => Number.isInteger(n) && n > 0;

/** Each tier's lifecycle ages and effective retention, shortest-lived tier first. */
export function planRetention(input: RetentionInput): TierRetention[] {
  const expiry = expiryDays(input.keep);
  return TIERS.map((tier) => ({
    tier,
    keepCount: input.keep[tier],
    expirationDays: expiry[tier],
    noncurrentDays: input.noncurrentDays,
    lockDays: input.lockDays,
    effectiveDays: effectiveRetentionDays(expiry[tier], input.noncurrentDays, input.lockDays),
    transitions: input.transitions
      .filter((t) => t.tier === tier)
      .map(({ storageClass, afterDays }) => ({ storageClass, afterDays }))
      .sort((a, b) => a.afterDays - b.afterDays),
  }));
}

/**
 * Every problem with a retention configuration, in words that name the property and the fix.
 * Empty when the configuration is sound.
 */
export function retentionProblems(input: RetentionInput): string[] {
  const problems = keepCountProblems(input.keep);
  if (!isPositiveWhole(input.noncurrentDays)) {
    problems.push(`noncurrentVersionExpiration must be a whole number of days, at least 1 (got ${input.noncurrentDays} days); for example Duration.days(7)`);
  }
  for (const t of input.transitions) {
    if (!isPositiveWhole(t.afterDays)) {
      problems.push(`transitions: the ${t.tier} transition to ${t.storageClass} is after ${t.afterDays} days; its transitionAfter must be a whole number of days, at least 1`);
    }
  }
  // Ages and costs only make sense once the numbers themselves are valid.
  if (problems.length) return problems;

  for (const plan of planRetention(input)) problems.push(...tierProblems(plan));
  return problems;
}

function tierProblems(plan: TierRetention): string[] {
  const problems: string[] = [];
  const { tier, transitions, expirationDays, effectiveDays } = plan;
  transitions.forEach((t, i) => {
    if (t.afterDays >= expirationDays) {
      problems.push(`transitions: the ${tier} transition to ${t.storageClass} after ${t.afterDays} days is at or after the tier's expiry ` +
        `(${expirationDays} days, from keep.${tier} = ${plan.keepCount}); transition earlier than ${expirationDays} days, keep more ${tier} backups, or drop the transition`);
    }
    if (IA_CLASSES.includes(t.storageClass) && t.afterDays < IA_EARLIEST_TRANSITION_DAYS) {
      problems.push(`transitions: the ${tier} transition to ${t.storageClass} after ${t.afterDays} days is refused by S3, ` +
        `which allows Infrequent Access transitions from day ${IA_EARLIEST_TRANSITION_DAYS}; set transitionAfter to Duration.days(${IA_EARLIEST_TRANSITION_DAYS}) or more`);
    }
    if (transitions[i - 1]?.afterDays === t.afterDays) {
      problems.push(`transitions: the ${tier} tier has two transitions after ${t.afterDays} days; give each a different transitionAfter`);
    }
    const minimum = MINIMUM_STORAGE_DAYS[t.storageClass];
    if (minimum === undefined) {
      problems.push(`transitions: the ${tier} transition targets ${t.storageClass}, which has no known minimum storage duration; ` +
        `use one of ${Object.keys(MINIMUM_STORAGE_DAYS).join(', ')}`);
      return;
    }
    // An object stays in this class until the next transition, or until it is really gone.
    const leavesAt = transitions[i + 1]?.afterDays ?? effectiveDays;
    const daysInClass = leavesAt - t.afterDays;
    if (daysInClass < minimum) {
      const next = transitions[i + 1];
      const leaving = next
        ? `it enters at day ${t.afterDays} and moves on to ${next.storageClass} at day ${leavesAt}`
        : `it enters at day ${t.afterDays} and is gone at day ${leavesAt}, the tier's effective retention`;
      const latest = leavesAt - minimum;
      const fix = next
        ? `move the ${next.storageClass} transition to day ${t.afterDays + minimum} or later, or drop one of the two`
        : latest >= 1
          ? `transition no later than day ${latest}, choose a class with a shorter minimum, or keep more ${tier} backups`
          : `drop this transition (no day pays off), choose a class with a shorter minimum, or keep more ${tier} backups`;
      problems.push(`transitions: ${tier} backups would spend ${daysInClass} days in ${t.storageClass}, ` +
        `whose minimum storage charge is ${minimum} days (${leaving}); ${fix}`);
    }
  });
  return problems;
}

/** The retention plan as a Markdown table, for documentation and synth-time output. */
export function retentionTable(plans: readonly TierRetention[]): string {
  const rows = plans.map((p) => {
    const classes = p.transitions.length
      ? `STANDARD, then ${p.transitions.map((t) => `${t.storageClass} from day ${t.afterDays}`).join(', ')}`
      : 'STANDARD';
    return `| ${p.tier} | ${p.keepCount} | ${p.expirationDays} | ${p.noncurrentDays} | ${p.lockDays} | ${p.effectiveDays} | ${classes} |`;
  });
  return [
    '| Tier | Keep | Expiry (days) | Noncurrent (days) | Lock (days) | Effective retention (days) | Storage class |',
    '|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}

/** Backups of a tier one source makes, at most, per day: an hourly RPO makes 24 hourly backups a day. */
const BACKUPS_PER_DAY: Record<Tier, number> = { [Tier.HOURLY]: 24, [Tier.DAILY]: 1, [Tier.WEEKLY]: 1 / 7, [Tier.MONTHLY]: 1 / 31 };
const RATE_IN_WORDS: Record<Tier, string> = { [Tier.HOURLY]: '× 24 a day at an hourly RPO', [Tier.DAILY]: '× 1 a day', [Tier.WEEKLY]: '÷ 7, one a week', [Tier.MONTHLY]: '÷ 31, one a month' };

/** Days a tier's backups would live without Object Lock: its expiry, then its noncurrent days. */
function unlockedDays(plan: TierRetention): number {
  return plan.expirationDays + plan.noncurrentDays;
}

/** How many backups of a tier one source holds at once, at most, while each is kept for the lock. */
function keptByLock(plan: TierRetention): number {
  return Math.ceil(plan.lockDays * BACKUPS_PER_DAY[plan.tier]);
}

/**
 * The warning for a lock that outlasts some tiers, or undefined: what each such tier really keeps and for how long,
 * in backups per source, the effective retention of every tier, and how to get back to what keep asks.
 * @param lock the lock as the user chose it, for example 'GOVERNANCE, 30 days'
 */
export function lockBeyondRetentionWarning(plans: readonly TierRetention[], lock: string): string | undefined {
  const outlasted = plans.filter((p) => p.lockDays > unlockedDays(p));
  if (!outlasted.length) return undefined;
  const tiers = outlasted.map((p) => `${p.tier} backups ${p.effectiveDays} days instead of ${unlockedDays(p)} ` +
    `(${p.expirationDays}-day expiry + ${p.noncurrentDays} noncurrent days): up to ${keptByLock(p)} per source ` +
    `(${p.lockDays} days ${RATE_IN_WORDS[p.tier]}) where keep.${p.tier} asks for ${p.keepCount}`);
  return `objectLockDefaultRetention (${lock}) is longer than the ${inWords(outlasted.map((p) => p.tier))} ` +
    `tier${outlasted.length > 1 ? 's' : ''} keep${outlasted.length > 1 ? '' : 's'} a backup, so the lock decides how long ` +
    `they live: ${tiers.join('; ')}. None of them can be deleted before its lock passes, and each is billed until then. ` +
    `Effective retention per tier: ${plans.map((p) => `${p.tier} ${p.effectiveDays} days`).join(', ')}. ` +
    `To keep what keep asks, shorten the lock to ${Math.min(...plans.map(unlockedDays))} days or less; if the longer retention is wanted, acknowledge this warning.`;
}

/** 'a', 'a and b', 'a, b and c'. */
function inWords(items: readonly string[]): string {
  return items.length > 1 ? `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}` : items.join('');
}

/**
 * The error for a COMPLIANCE lock longer than the longest tier keeps a backup, or undefined: every backup would be
 * kept, undeletable by anyone, for the whole lock.
 */
export function complianceLockProblem(plans: readonly TierRetention[], acknowledgement: string): string | undefined {
  const longest = plans.reduce((a, b) => (unlockedDays(b) > unlockedDays(a) ? b : a));
  const lockDays = longest.lockDays;
  if (lockDays <= unlockedDays(longest)) return undefined;
  return `objectLockDefaultRetention is COMPLIANCE for ${lockDays} days, longer than any tier keeps a backup (the longest, ` +
    `${longest.tier}, keeps one ${unlockedDays(longest)} days): every backup of every tier, hourly ones included, would be kept ` +
    `${lockDays} days, and nobody, not even the account root, could delete it or shorten its lock before then; that is up to ` +
    `${plans.map((p) => `${keptByLock(p)} ${p.tier}`).join(', ')} backups per source at once. Shorten the lock to ` +
    `${unlockedDays(longest)} days or less, choose s3.ObjectLockRetention.governance(...), or set ${acknowledgement}: true to keep them`;
}

/**
 * A vault's tiers. The primary account can replicate a new version over an existing key at any time, which makes the
 * old one noncurrent at once, so each tier keeps noncurrent versions for the tier's effective retention: an
 * overwritten backup still lives as long as one that expired, and the tier's effective retention grows by as much.
 * The retention keeper locks each tiered version in COMPLIANCE for all of that: lifecycle keeps it that long anyway,
 * and a lock no shorter means that no tag the primary replicates later (moving a backup to a shorter-lived tier) can
 * shorten its life.
 */
export function vaultRetention(plans: readonly TierRetention[]): TierRetention[] {
  return plans.map((p) => {
    const lockDays = Math.max(p.lockDays, p.expirationDays);
    const noncurrentDays = effectiveRetentionDays(p.expirationDays, p.noncurrentDays, lockDays);
    const effectiveDays = effectiveRetentionDays(p.expirationDays, noncurrentDays, lockDays);
    return { ...p, lockDays: effectiveDays, noncurrentDays, effectiveDays };
  });
}

/**
 * The vault's COMPLIANCE locks in words, per tier: how long the retention keeper locks each backup, and that nobody can
 * delete it sooner.
 * @param defaultDays the vault's default lock, which untagged objects (pointers, manifests, reports) get
 */
export function complianceRetentionWarning(plans: readonly TierRetention[], defaultDays: number): string {
  const tiers = plans.map((p) => `${p.tier} backups ${p.lockDays} days`).join(', ');
  return `This ReplicaStore is a vault: its retention keeper locks every new version in COMPLIANCE mode from the day it was ` +
    `written: ${tiers}; pointers, manifests, runbooks and reports ${defaultDays} days; longer where the primary's lock already ` +
    `runs longer. Until then nobody, not even the vault account's root, can delete a locked version or shorten its lock, and each ` +
    `is billed until then. Noncurrent versions are kept for each tier's effective retention (${plans.map((p) => `${p.tier} ` +
    `${p.noncurrentDays} days`).join(', ')}), since the primary can replicate a new version over a key. To lock for less, keep fewer ` +
    'backups in the vault (its keep) or shorten its objectLockDefaultRetention; acknowledge this warning once the numbers are right.';
}
