/**
 * Grandfather-father-son retention tiers: which tier a backup belongs to,
 * and how keep-counts become lifecycle ages. No aws-cdk-lib here.
 */

/** The object tag that carries a backup's tier; lifecycle rules filter on it. */
export const TIER_TAG = 'backup-tier';

export enum Tier {
  HOURLY = 'hourly',
  DAILY = 'daily',
  WEEKLY = 'weekly',
  MONTHLY = 'monthly',
}

/** From the shortest-lived tier to the longest. */
export const TIERS: readonly Tier[] = [Tier.HOURLY, Tier.DAILY, Tier.WEEKLY, Tier.MONTHLY];

/** How many backups of each tier to keep. */
export interface KeepCounts {
  readonly hourly: number;
  readonly daily: number;
  readonly weekly: number;
  readonly monthly: number;
}

export const DEFAULT_KEEP_COUNTS: KeepCounts = { hourly: 24, daily: 7, weekly: 4, monthly: 12 };

/** Monday-based ISO week start (UTC midnight) of a time. */
function isoWeekStart(at: Date): number {
  const day = Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate());
  const weekday = (at.getUTCDay() + 6) % 7; // Monday = 0
  return day - weekday * 86_400_000;
}

/**
 * The tier of a backup that starts at `at`, given when the previous *successful* backup started.
 * First of the month → monthly, else first of the ISO week → weekly, else first of the day → daily,
 * else hourly. So a failed midnight backup makes the 01:00 one the daily.
 */
export function tierFor(at: Date, previous: Date | undefined): Tier {
  if (!previous) return Tier.MONTHLY;
  if (previous.getUTCFullYear() !== at.getUTCFullYear() || previous.getUTCMonth() !== at.getUTCMonth()) {
    return Tier.MONTHLY;
  }
  if (isoWeekStart(previous) !== isoWeekStart(at)) return Tier.WEEKLY;
  if (previous.getUTCDate() !== at.getUTCDate()) return Tier.DAILY;
  return Tier.HOURLY;
}

/**
 * Keep-counts as expiry ages in whole days. The backup at the far end of the count must still exist,
 * so each count is rounded up: 24 hourly → 1 day, 7 daily → 7, 4 weekly → 28, 12 monthly → 372 (31-day months).
 */
export function expiryDays(counts: KeepCounts): Record<Tier, number> {
  return {
    [Tier.HOURLY]: Math.max(1, Math.ceil(counts.hourly / 24)),
    [Tier.DAILY]: counts.daily,
    [Tier.WEEKLY]: counts.weekly * 7,
    [Tier.MONTHLY]: counts.monthly * 31,
  };
}

/**
 * How long a backup really lives in a versioned, Object-Locked bucket: expiry only adds a delete
 * marker, the version goes when noncurrent expiry runs and the lock has passed.
 */
export function effectiveRetentionDays(expiry: number, noncurrentDays: number, lockDays: number): number {
  return Math.max(expiry + noncurrentDays, lockDays);
}

/** Validates keep-counts; returns the problems in words, naming the property and the fix. */
export function keepCountProblems(counts: KeepCounts, property = 'keep'): string[] {
  return TIERS.filter((tier) => !(Number.isInteger(counts[tier]) && counts[tier] > 0))
    .map((tier) => `${property}.${tier} must be a positive whole number of backups (got ${counts[tier]}); for example ${DEFAULT_KEEP_COUNTS[tier]}`);
}
