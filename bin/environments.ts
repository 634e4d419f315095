/**
 * The example app's environments, read from the `environments` context in cdk.json and chosen with
 * `-c env=NAME`. Bad or missing input becomes one clear sentence, not a stack trace.
 */

/** Where one environment's primary and replica stores live. */
export interface EnvironmentConfig {
  readonly account: string;
  readonly region: string;
  /** The DR region for the offsite copy; must differ from region. */
  readonly replicaRegion: string;
  /**
   * The account that holds the offsite copy. Another account than `account` makes the copy a vault that a
   * compromise of the primary account cannot empty; the same account (the default) keeps the replica beside the store.
   */
  readonly replicaAccount: string;
}

/** A configuration mistake the user can fix: the app prints the message alone and exits 1. */
export class EnvironmentError extends Error {}

const ACCOUNT = /^\d{12}$/;
const REGION = /^[a-z]{2}(-[a-z]+)+-\d$/;

/** Picks and checks the environment called `name` from the `environments` context value. */
export function resolveEnvironment(environments: unknown, name: unknown): EnvironmentConfig & { readonly name: string } {
  if (typeof environments !== 'object' || environments === null || Array.isArray(environments) || !Object.keys(environments).length) {
    throw new EnvironmentError('no "environments" context: run the app through the CDK CLI (npx cdk synth -c env=NAME), which reads cdk.json, ' +
      'and give cdk.json one, for example ' +
      '"environments": { "dev": { "account": "111111111111", "region": "eu-west-1", "replicaRegion": "eu-central-1" } }');
  }
  const envs = environments as Record<string, unknown>;
  const known = Object.keys(envs).join(', ');
  if (typeof name !== 'string' || name === '') {
    throw new EnvironmentError(`no environment chosen: run with -c env=NAME, where NAME is one of: ${known}`);
  }
  if (!Object.hasOwn(envs, name)) {
    throw new EnvironmentError(`unknown environment '${name}': run with -c env=NAME, where NAME is one of: ${known}`);
  }
  const config = (envs[name] ?? {}) as Partial<Record<keyof EnvironmentConfig, unknown>>;
  const field = (key: keyof EnvironmentConfig, pattern: RegExp, example: string): string => {
    const value = config[key];
    if (typeof value !== 'string' || !pattern.test(value)) {
      throw new EnvironmentError(`environments.${name}.${key} in cdk.json is ${JSON.stringify(value)}; set it to a value like "${example}"`);
    }
    return value;
  };
  const resolved = {
    name,
    account: field('account', ACCOUNT, '111111111111'),
    region: field('region', REGION, 'eu-west-1'),
    replicaRegion: field('replicaRegion', REGION, 'eu-central-1'),
  };
  const replicaAccount = config.replicaAccount === undefined ? resolved.account : field('replicaAccount', ACCOUNT, '333333333333');
  if (resolved.replicaRegion === resolved.region) {
    throw new EnvironmentError(`environments.${name}.replicaRegion equals its region (${resolved.region}); ` +
      'choose another region, so that the offsite copy survives a regional outage');
  }
  return { ...resolved, replicaAccount };
}
