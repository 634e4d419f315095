import { DEFAULT_KEEP_COUNTS, Tier } from '../../../lib/contract/tiers';
import { MINIMUM_STORAGE_DAYS, planRetention, retentionProblems, retentionTable } from '../../../lib/store/retention-policy';

const defaults = { keep: DEFAULT_KEEP_COUNTS, noncurrentDays: 7, lockDays: 7, transitions: [{ tier: Tier.MONTHLY, storageClass: 'GLACIER', afterDays: 30 }] };

describe('retention policy', () => {
  test('given the defaults, when planned, then the table shows expiry, noncurrent, lock and effective retention per tier', () => {
    expect(retentionTable(planRetention(defaults))).toBe([
      '| Tier | Keep | Expiry (days) | Noncurrent (days) | Lock (days) | Effective retention (days) | Storage class |',
      '|---|---|---|---|---|---|---|',
      '| hourly | 24 | 1 | 7 | 7 | 8 | STANDARD |',
      '| daily | 7 | 7 | 7 | 7 | 14 | STANDARD |',
      '| weekly | 4 | 28 | 7 | 7 | 35 | STANDARD |',
      '| monthly | 12 | 372 | 7 | 7 | 379 | STANDARD, then GLACIER from day 30 |',
    ].join('\n'));
    expect(retentionProblems(defaults)).toEqual([]);
  });

  test('given transitions out of order, when planned, then each tier lists them earliest first', () => {
    const plan = planRetention({ ...defaults, transitions: [
      { tier: Tier.MONTHLY, storageClass: 'DEEP_ARCHIVE', afterDays: 120 },
      { tier: Tier.MONTHLY, storageClass: 'STANDARD_IA', afterDays: 30 },
    ] });
    expect(plan[3].transitions).toEqual([{ storageClass: 'STANDARD_IA', afterDays: 30 }, { storageClass: 'DEEP_ARCHIVE', afterDays: 120 }]);
    expect(retentionProblems({ ...defaults, transitions: [
      { tier: Tier.MONTHLY, storageClass: 'DEEP_ARCHIVE', afterDays: 120 },
      { tier: Tier.MONTHLY, storageClass: 'STANDARD_IA', afterDays: 30 },
    ] })).toEqual([]);
  });

  test('given a long lock, when planned, then the lock sets the effective retention of short tiers', () => {
    expect(planRetention({ ...defaults, lockDays: 90 }).map((p) => p.effectiveDays)).toEqual([90, 90, 90, 379]);
  });

  test('the minimum storage durations are those S3 charges: IA 30, Glacier 90, Deep Archive 180', () => {
    expect(MINIMUM_STORAGE_DAYS).toMatchObject({ STANDARD_IA: 30, GLACIER: 90, DEEP_ARCHIVE: 180 });
  });
});
