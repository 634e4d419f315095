import { DEFAULT_KEEP_COUNTS, Tier } from '../../../lib/contract/tiers';
import {
  MINIMUM_STORAGE_DAYS, complianceRetentionWarning, planRetention, retentionProblems, retentionTable, vaultRetention,
} from '../../../lib/store/retention-policy';

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

describe('a vault\'s retention', () => {
  test('given the defaults, when planned for a vault, then each tier keeps noncurrent versions and is locked for its effective retention', () => {
    expect(retentionTable(vaultRetention(planRetention(defaults)))).toBe([
      '| Tier | Keep | Expiry (days) | Noncurrent (days) | Lock (days) | Effective retention (days) | Storage class |',
      '|---|---|---|---|---|---|---|',
      '| hourly | 24 | 1 | 8 | 9 | 9 | STANDARD |',
      '| daily | 7 | 7 | 14 | 21 | 21 | STANDARD |',
      '| weekly | 4 | 28 | 35 | 63 | 63 | STANDARD |',
      '| monthly | 12 | 372 | 379 | 751 | 751 | STANDARD, then GLACIER from day 30 |',
    ].join('\n'));
  });

  test('given a lock longer than every tier, when planned for a vault, then an overwritten backup still lives the whole lock', () => {
    const plan = vaultRetention(planRetention({ ...defaults, lockDays: 400 }));
    expect(plan.map((p) => [p.lockDays, p.noncurrentDays, p.effectiveDays])).toEqual([[401, 400, 401], [407, 400, 407], [428, 400, 428], [772, 400, 772]]);
  });

  test('given a vault\'s plan, when warned about, then the warning says each tier\'s COMPLIANCE days and that nobody can delete sooner', () => {
    const warning = complianceRetentionWarning(vaultRetention(planRetention(defaults)), 7);
    expect(warning).toContain('hourly backups 9 days, daily backups 21 days, weekly backups 63 days, monthly backups 751 days; ' +
      'pointers, manifests, runbooks and reports 7 days');
    expect(warning).toContain('nobody, not even the vault account\'s root, can delete a locked version or shorten its lock');
    expect(warning).toContain('hourly 8 days, daily 14 days, weekly 35 days, monthly 379 days');
  });
});
