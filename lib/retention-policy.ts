/**
 * Retention math for a versioned, Object-Locked backup bucket: keep-counts become lifecycle ages,
 * each tier's effective retention is computed, and storage-class transitions are checked against
 * the minimum storage durations S3 charges anyway. Pure logic, no aws-cdk-lib, so it is easy to test
 * and to print in documentation.
 */
import { KeepCounts, TIERS, Tier, effectiveRetentionDays, expiryDays, keepCountProblems } from './contract/tiers';

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
    problems.push(`noncurrentVersionExpirationDays must be a positive whole number of days (got ${input.noncurrentDays}); for example 7`);
  }
  for (const t of input.transitions) {
    if (!isPositiveWhole(t.afterDays)) {
      problems.push(`transitions: the ${t.tier} transition to ${t.storageClass} has afterDays ${t.afterDays}; use a positive whole number of days`);
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
        `which allows Infrequent Access transitions from day ${IA_EARLIEST_TRANSITION_DAYS}; set afterDays to ${IA_EARLIEST_TRANSITION_DAYS} or more`);
    }
    if (transitions[i - 1]?.afterDays === t.afterDays) {
      problems.push(`transitions: the ${tier} tier has two transitions after ${t.afterDays} days; give each a different afterDays`);
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
