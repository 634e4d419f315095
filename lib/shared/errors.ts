import { Duration } from 'aws-cdk-lib';
import { IConstruct } from 'constructs';

/**
 * A configuration mistake, said in one line: the construct path (or, where there is no construct, the call, such
 * as `SourceEngine.postgres('19')`), the property, what is wrong and how to fix it. Its stack is that line alone,
 * so that when the CDK CLI runs the app the user reads the message, not a trace through the library's files.
 */
export class RestorableError extends Error {
  /**
   * @param where the construct whose property is wrong (its path is named), or the call that was given a bad value
   * @param message the property, what is wrong and the fix
   */
  constructor(where: IConstruct | string, message: string) {
    super(`${typeof where === 'string' ? where : where.node.path}: ${message}`);
    this.name = 'RestorableError';
    Object.defineProperty(this, 'stack', { value: `${this.name}: ${this.message}`, configurable: true, writable: true });
  }
}

/** What a period given as a Duration must be, for wholeDays and wholeSeconds. */
export interface PeriodRule {
  /** The smallest value allowed, in the unit checked. */
  readonly min: number;
  /** The largest value allowed, in the unit checked. */
  readonly max?: number;
  /** A valid value as the user would write it, for example `Duration.days(7)`. */
  readonly example: string;
  /** Why the unit or range, when it is not obvious: for example 'S3 lifecycle rules count whole days'. */
  readonly why?: string;
}

/**
 * A Duration in whole days, or a problem (pushed to `problems`) that names the property, the value given, the
 * range and an example. Returns `rule.min` when the value is unusable, so that callers can go on collecting problems.
 */
export function wholeDays(property: string, value: Duration, rule: PeriodRule, problems: string[]): number {
  return wholeUnits(property, value, 'days', (d) => d.toDays({ integral: false }), rule, problems);
}

/** A Duration in whole seconds, or a problem (pushed to `problems`) that names the property; as wholeDays. */
export function wholeSeconds(property: string, value: Duration, rule: PeriodRule, problems: string[]): number {
  return wholeUnits(property, value, 'seconds', (d) => d.toSeconds({ integral: false }), rule, problems);
}

/** A Duration in whole minutes, or a problem (pushed to `problems`) that names the property; as wholeDays. */
export function wholeMinutes(property: string, value: Duration, rule: PeriodRule, problems: string[]): number {
  return wholeUnits(property, value, 'minutes', (d) => d.toMinutes({ integral: false }), rule, problems);
}

function wholeUnits(property: string, value: Duration, unit: string, convert: (d: Duration) => number, rule: PeriodRule, problems: string[]): number {
  // Duck-typed: an app may load its own copy of aws-cdk-lib.
  if (typeof (value as Partial<Duration> | undefined)?.toHumanString !== 'function') {
    problems.push(`${property} must be a Duration, for example ${rule.example} (got ${JSON.stringify(value)})`);
    return rule.min;
  }
  if (value.isUnresolved()) {
    problems.push(`${property} must be known at synth (got a token); for example ${rule.example}`);
    return rule.min;
  }
  const amount = convert(value);
  const range = rule.max === undefined ? `at least ${rule.min}` : `from ${rule.min} to ${rule.max}`;
  if (!Number.isInteger(amount) || amount < rule.min || (rule.max !== undefined && amount > rule.max)) {
    problems.push(`${property} must be a whole number of ${unit}, ${range} (got ${value.toHumanString()})` +
      `${rule.why ? `: ${rule.why}` : ''}; for example ${rule.example}`);
    return rule.min;
  }
  return amount;
}

/**
 * Props renamed in 0.2, by old name: a JavaScript app that still passes one would otherwise be given the default
 * in silence. Each value says what to write instead.
 */
export function renamedPropProblems(props: object | undefined, renamed: Record<string, string>, at = ''): string[] {
  if (!props) return [];
  return Object.keys(renamed).filter((old) => old in props)
    .map((old) => `${at}${old} was renamed: ${renamed[old]}`);
}
