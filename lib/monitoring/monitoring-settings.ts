/** A BackupMonitoring's settings, checked: every mistake at once, each naming its property. */
import { Duration } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { emailProblem } from './alarm-topic';
import type { BackupMonitoringProps } from './backup-monitoring';
import { RestorableError, renamedPropProblems, wholeDays, wholeMinutes } from '../shared/errors';

const DEFAULT_INTERVAL = Duration.minutes(15);
const DEFAULT_RATIO_FLOOR = 0.5;
const DEFAULT_HISTORY_COUNT = 10;
const DEFAULT_HISTORY = Duration.days(35);

/** A BackupMonitoring's settings, checked. */
export interface MonitoringSettings {
  readonly interval: Duration;
  readonly ratioFloor: number;
  readonly historyCount: number;
  readonly historyDays: number;
}

/** Checks a BackupMonitoring's props and throws every problem at once. */
export function monitoringSettings(scope: Construct, props: BackupMonitoringProps): MonitoringSettings {
  const problems = renamedPropProblems(props, { sizeHistoryDays: 'use sizeHistory: Duration.days(35)' });
  const interval = props.checkInterval ?? DEFAULT_INTERVAL;
  wholeMinutes('checkInterval', interval, {
    min: 1, max: 12 * 60, example: 'Duration.minutes(15)',
    why: 'its alarms look at twice the interval, and CloudWatch periods end at a day',
  }, problems);
  const ratioFloor = props.sizeRatioFloor ?? DEFAULT_RATIO_FLOOR;
  const floor = ratioFloorProblem('sizeRatioFloor', ratioFloor);
  if (floor) problems.push(floor);
  const historyCount = props.sizeHistoryCount ?? DEFAULT_HISTORY_COUNT;
  if (!(Number.isInteger(historyCount) && historyCount >= 1 && historyCount <= 100)) {
    problems.push(`sizeHistoryCount must be a whole number from 1 to 100 (got ${historyCount}); for example 10`);
  }
  const historyDays = wholeDays('sizeHistory', props.sizeHistory ?? DEFAULT_HISTORY, {
    min: 1, max: 100, example: 'Duration.days(35)', why: 'each day of history costs the size check one S3 LIST',
  }, problems);
  for (const email of props.alarmEmails ?? []) {
    const problem = emailProblem('alarmEmails', email);
    if (problem) problems.push(problem);
  }
  if (problems.length) throw new RestorableError(scope, problems.join('\n'));
  return { interval, ratioFloor, historyCount, historyDays };
}

/** What is wrong with a size floor, or undefined: it is a fraction of the median of recent backups. */
export function ratioFloorProblem(property: string, floor: number): string | undefined {
  if (floor > 0 && floor < 1) return undefined;
  return `${property} must be between 0 and 1 (got ${floor}); for example 0.5 alarms when a backup is under half the usual size`;
}
