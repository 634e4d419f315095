/**
 * A BackupBucket's props, checked and turned into days: the Object Lock default retention, the lifecycle ages and
 * the retention plan. Every mistake is reported at once, in words that name the property; a lock that decides how
 * long some tier lives is a warning, and a COMPLIANCE lock that outlasts every tier is an error until acknowledged.
 */
import { Annotations, Duration } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import type { BackupBucketProps, TierTransition } from './backup-bucket';
import { DEFAULT_KEEP_COUNTS, Tier, keepCountProblems } from '../contract/tiers';
import { RestorableError, renamedPropProblems, wholeDays } from '../shared/errors';
import {
  RetentionInput, TierRetention, complianceLockProblem, lockBeyondRetentionWarning, planRetention, retentionProblems, vaultRetention,
} from './retention-policy';

/** The Object Lock default retention when none is given. */
export const DEFAULT_LOCK = s3.ObjectLockRetention.governance(Duration.days(7));
const DEFAULT_TRANSITIONS: TierTransition[] = [{ tier: Tier.MONTHLY, storageClass: s3.StorageClass.GLACIER, transitionAfter: Duration.days(30) }];
const DEFAULT_NONCURRENT = Duration.days(7);
const DEFAULT_ACCESS_LOGS = Duration.days(365);
const WHOLE_DAYS = 'S3 counts it in whole days';

/** The warning id a user acknowledges to keep a lock that outlasts some tiers. */
export const LOCK_BEYOND_RETENTION_WARNING = '@restorable/backup-bucket:lock-beyond-retention';
const ACKNOWLEDGE_COMPLIANCE = 'acknowledgeComplianceLockBeyondRetention';

/** Props of 0.1, by old name, with what to write instead. */
const RENAMED: Record<string, string> = {
  objectLockMode: 'use objectLockDefaultRetention: s3.ObjectLockRetention.governance(...) or .compliance(...), or objectLockEnabled: false',
  lockRetentionDays: 'use objectLockDefaultRetention: s3.ObjectLockRetention.governance(Duration.days(7))',
  noncurrentVersionExpirationDays: 'use noncurrentVersionExpiration: Duration.days(7)',
  accessLogsExpirationDays: 'use accessLogsExpiration: Duration.days(365)',
};

/** A BackupBucket's settings in days, checked. */
export interface BucketSettings {
  /** The default retention as S3 gets it (whole days), or undefined when Object Lock is off. */
  readonly lock?: s3.ObjectLockRetention;
  readonly noncurrentDays: number;
  readonly accessLogDays: number;
  /** Each tier's expiry, lock and effective retention, shortest-lived first. */
  readonly retention: TierRetention[];
}

/**
 * Checks a BackupBucket's props (throwing every problem at once) and reports a lock that outlasts tiers.
 * @param vault the bucket is a vault: its tiers are planned as vaultRetention says
 */
export function bucketSettings(scope: Construct, props: BackupBucketProps, vault = false): BucketSettings {
  const keep = props.keep ?? DEFAULT_KEEP_COUNTS;
  const problems = [...renamedPropProblems(props, RENAMED), ...keepCountProblems(keep)];
  const lock = objectLock(props, problems);
  const noncurrentDays = wholeDays('noncurrentVersionExpiration', props.noncurrentVersionExpiration ?? DEFAULT_NONCURRENT,
    { min: 1, example: 'Duration.days(7)', why: WHOLE_DAYS }, problems);
  const accessLogDays = wholeDays('accessLogsExpiration', props.accessLogsExpiration ?? DEFAULT_ACCESS_LOGS,
    { min: 1, example: 'Duration.days(365)', why: WHOLE_DAYS }, problems);
  const transitions = (props.transitions ?? DEFAULT_TRANSITIONS).map((t, i) => {
    problems.push(...renamedPropProblems(t, { afterDays: 'use transitionAfter: Duration.days(30)' }, `transitions[${i}].`));
    return {
      tier: t.tier,
      storageClass: t.storageClass.value,
      afterDays: wholeDays(`transitions[${i}].transitionAfter`, t.transitionAfter, { min: 1, example: 'Duration.days(30)', why: WHOLE_DAYS }, problems),
    };
  });
  const input: RetentionInput = { keep, noncurrentDays, lockDays: lock ? lock.duration.toDays() : 0, transitions };
  // The ages and costs of each tier only make sense once every number is valid.
  if (!problems.length) problems.push(...retentionProblems(input));
  if (problems.length) throw new RestorableError(scope, problems.join('\n'));

  const retention = planRetention(input);
  if (lock) reportLockBeyondRetention(scope, lock, retention, props.acknowledgeComplianceLockBeyondRetention ?? false);
  return { lock, noncurrentDays, accessLogDays, retention: vault ? vaultRetention(retention) : retention };
}

/** The default retention in whole days, or undefined when Object Lock is turned off. */
function objectLock(props: BackupBucketProps, problems: string[]): s3.ObjectLockRetention | undefined {
  if (props.objectLockEnabled === false) {
    if (props.objectLockDefaultRetention) {
      problems.push('objectLockDefaultRetention is set but objectLockEnabled is false; remove objectLockDefaultRetention, ' +
        'or leave objectLockEnabled unset to keep Object Lock on');
    }
    return undefined;
  }
  const retention = props.objectLockDefaultRetention ?? DEFAULT_LOCK;
  const days = wholeDays('objectLockDefaultRetention', retention.duration,
    { min: 1, max: 36500, example: 's3.ObjectLockRetention.governance(Duration.days(7))', why: WHOLE_DAYS }, problems);
  return retention.mode === s3.ObjectLockMode.COMPLIANCE
    ? s3.ObjectLockRetention.compliance(Duration.days(days))
    : s3.ObjectLockRetention.governance(Duration.days(days));
}

function reportLockBeyondRetention(scope: Construct, lock: s3.ObjectLockRetention, retention: TierRetention[], acknowledged: boolean): void {
  if (lock.mode === s3.ObjectLockMode.COMPLIANCE && !acknowledged) {
    const problem = complianceLockProblem(retention, ACKNOWLEDGE_COMPLIANCE);
    if (problem) throw new RestorableError(scope, problem);
  }
  const warning = lockBeyondRetentionWarning(retention, `${lock.mode}, ${lock.duration.toDays()} days`);
  if (warning) Annotations.of(scope).addWarningV2(LOCK_BEYOND_RETENTION_WARNING, warning);
}
