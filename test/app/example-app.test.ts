/**
 * The example app, per environment in cdk.json: the stacks it makes, cdk-nag AwsSolutions with zero
 * unacknowledged findings, alarms that each notify and none twice, the errors a wrong environment gets, and the
 * real CLI synth, offline.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { App, Stack, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { AwsSolutionsChecks } from 'cdk-nag';
import { IConstruct } from 'constructs';
import { EnvironmentError, resolveEnvironment } from '../../bin/environments';
import { addExampleStacks } from '../../bin/example-app';

const run = promisify(execFile);
const root = join(__dirname, '..', '..');
const cdkJson = JSON.parse(readFileSync(join(root, 'cdk.json'), 'utf8'));
const environments = cdkJson.context.environments as Record<string, { account: string; region: string; replicaRegion: string; replicaAccount?: string }>;
const envNames = Object.keys(environments);

/** The example app for one environment, with cdk-nag as the CLI runs it. */
function exampleApp(name: string, outdir?: string) {
  const app = new App({ outdir, context: { ...cdkJson.context, env: name } });
  const stacks = addExampleStacks(app, resolveEnvironment(app.node.tryGetContext('environments'), app.node.tryGetContext('env')));
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, ...stacks };
}

/**
 * The example app for one environment, synthesized once (with cdk-nag, into a folder of its own) and shared by the
 * tests that only read it: each synth of it costs seconds, and Template.fromStack synthesizes the whole app again.
 * A synth that fails (a cdk-nag finding) throws in every test that asks for it. Tests that change the app make their own.
 */
type SynthesizedExample = ReturnType<typeof exampleApp> & {
  readonly outdir: string;
  readonly assembly: ReturnType<App['synth']>;
  /** The template of one of its stacks, as Template.fromStack reads it. */
  readonly template: (stack: Stack) => Template;
};
const synthesizedExamples = new Map<string, SynthesizedExample>();
function synthesizedExample(name: string): SynthesizedExample {
  let example = synthesizedExamples.get(name);
  if (!example) {
    const outdir = mkdtempSync(join(tmpdir(), 'restorable-nag-'));
    try {
      const made = exampleApp(name, outdir);
      const assembly = made.app.synth();
      example = { ...made, outdir, assembly, template: (stack) => Template.fromJSON(assembly.getStackByName(stack.stackName).template) };
    } catch (error) {
      rmSync(outdir, { recursive: true, force: true });
      throw error;
    }
    synthesizedExamples.set(name, example);
  }
  return example;
}
afterAll(() => {
  for (const { outdir } of synthesizedExamples.values()) rmSync(outdir, { recursive: true, force: true });
});

/** The parts of CDK's validation-report.json this test reads. */
interface ValidationReport {
  readonly pluginReports: {
    readonly pluginName: string;
    readonly violations: unknown[];
    readonly suppressedViolations: { readonly acknowledgedId: string; readonly acknowledgedAt: string }[];
  }[];
}

/** Every acknowledgement recorded in the tree: 'path id' → reason. */
function acknowledgements(root: IConstruct): Map<string, string> {
  const found = new Map<string, string>();
  for (const node of root.node.findAll()) {
    for (const entry of node.node.metadata.filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)) {
      for (const [id, reason] of Object.entries(entry.data as Record<string, string>)) found.set(`${node.node.path} ${id}`, reason);
    }
  }
  return found;
}

test('cdk.json lists at least dev and prod, each with a replica region of its own', () => {
  expect(envNames).toEqual(expect.arrayContaining(['dev', 'prod']));
  for (const name of envNames) expect(() => resolveEnvironment(environments, name)).not.toThrow();
  // Offline synth needs availability-zone context for every account and region pair.
  for (const env of Object.values(environments)) {
    for (const [account, region] of [[env.account, env.region], [env.replicaAccount ?? env.account, env.replicaRegion]]) {
      expect(cdkJson.context[`availability-zones:account=${account}:region=${region}`]).toHaveLength(3);
    }
  }
});

test('prod keeps its offsite copy in a vault of another account, with its own identity, monitoring and monthly restore tests; dev beside its store', () => {
  const prod = synthesizedExample('prod');
  expect(prod.replica.account).not.toBe(prod.primary.account);
  expect(prod.replicaStore.isVault).toBe(true);
  expect(prod.keys.vaultAccount).toBe(prod.replica.account);
  expect(prod.vault).toBeDefined();
  for (const part of [prod.vault!.identity, prod.vault!.monitoring, prod.vault!.restoreTesting, prod.vault!.runbook]) expect(Stack.of(part)).toBe(prod.replica);
  prod.template(prod.replica).hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'cron(0 5 1 * ? *)' });
  // The primary account never reads the vault: its restore tests have no DR schedule, and its state machine runs the primary copy alone.
  const primaryRules = prod.template(prod.primary).findResources('AWS::Events::Rule');
  expect(JSON.stringify(primaryRules)).not.toContain('"copy":"dr"');
  expect(JSON.stringify(prod.template(prod.primary).toJSON())).not.toContain(prod.replicaStore.keyAliasName.replace('alias/', 'key/'));

  const dev = synthesizedExample('dev');
  expect([dev.replica.account, dev.replicaStore.isVault, dev.vault]).toEqual([dev.primary.account, false, undefined]);
});

describe.each(envNames)('environment %s', (name) => {
  const env = environments[name];

  test('given -c env, when synthesized, then a primary stack and a replica stack in the DR region replicate into each other', () => {
    const { primary, replica, store, replicaStore, template } = synthesizedExample(name);
    expect([primary.region, primary.account]).toEqual([env.region, env.account]);
    expect([replica.region, replica.account]).toEqual([env.replicaRegion, env.replicaAccount ?? env.account]);
    expect(primary.dependencies).toEqual([replica]);
    const bucket = Object.values(template(primary).findResources('AWS::S3::Bucket', { Properties: { ReplicationConfiguration: {} } }));
    expect(bucket).toHaveLength(1);
    expect(JSON.stringify(bucket[0].Properties.ReplicationConfiguration))
      .toContain(`:kms:${env.replicaRegion}:${env.replicaAccount ?? env.account}:${replicaStore.keyAliasName}`);
    expect(store.replica).toBe(replicaStore);
  });

  test('given the sample sources, when synthesized, then two PostgreSQL sources, a MariaDB and a MongoDB source are scheduled, restore-tested and monitored, one archives its WAL and one streams its binlogs', () => {
    const example = synthesizedExample(name);
    const { primary, backups, restoreTesting } = example;
    expect(backups.sources.map((s) => [s.name, s.engine.agentEngine]))
      .toEqual([['orders-db', 'postgres'], ['shop-db', 'mysql'], ['ledger-db', 'postgres'], ['catalog-db', 'mongodb']]);
    const template = example.template(primary);
    const commands = Object.values(template.findResources('AWS::Scheduler::Schedule'))
      .map((schedule) => JSON.stringify(schedule.Properties.Target.Input));
    // A dump schedule per source, and the base backups of the WAL-archived one.
    expect(commands).toHaveLength(5);
    expect(commands.find((c) => c.includes('orders-db'))).toContain('\\"--engine\\",\\"postgres\\"');
    expect(commands.find((c) => c.includes('shop-db'))).toContain('\\"--engine\\",\\"mysql\\"');
    expect(commands.find((c) => c.includes('catalog-db'))).toContain('\\"--engine\\",\\"mongodb\\"');
    expect(commands.find((c) => c.includes('catalog-db'))).toContain('\\"--auth-source\\",\\"admin\\"');
    // The catalog's restore tests load into a scratch mongo of its series.
    const scratchImages = Object.values(template.findResources('AWS::ECS::TaskDefinition'))
      .flatMap((definition) => definition.Properties.ContainerDefinitions as { Name: string; Image: unknown }[])
      .filter((container) => container.Name === 'scratch').map((container) => container.Image);
    expect(scratchImages).toContain('public.ecr.aws/docker/library/mongo:7.0');
    const ledger = commands.filter((c) => c.includes('ledger-db'));
    expect(ledger.map((c) => /\\"command\\":\[\\"([a-z-]+)\\"/.exec(c)?.[1]).sort()).toEqual(['backup', 'basebackup']);
    // ledger-db's WAL receiver and shop-db's binlog streamer: one task each, never two at once.
    const services = Object.values(template.findResources('AWS::ECS::Service'));
    expect(services.map((service) => service.Properties.TaskDefinition.Ref).sort())
      .toEqual([expect.stringMatching(/ledgerdbWalReceiverTask/), expect.stringMatching(/shopdbBinlogStreamerTask/)]);
    for (const service of services) {
      expect(service.Properties).toMatchObject({ DesiredCount: 1, DeploymentConfiguration: { MinimumHealthyPercent: 0, MaximumPercent: 100 } });
    }
    expect(restoreTesting).toBeDefined();
    const freshnessInput = Object.values(template.findResources('AWS::Events::Rule'))
      .flatMap((rule) => (rule.Properties.Targets ?? []) as { Input?: string }[])
      .map((target) => target.Input ?? '').find((input) => input.includes('maxAgeSeconds'));
    expect(JSON.parse(freshnessInput!).sources.map((s: { source: string }) => s.source)).toEqual(['orders-db', 'shop-db', 'ledger-db', 'catalog-db']);
  });

  test('given the VPC endpoints, then the tasks reach S3 by its prefix list, which cdk.json holds so that synth needs no lookup', () => {
    const { primary, assembly, template } = synthesizedExample(name);
    const egress = Object.values(template(primary).findResources('AWS::EC2::SecurityGroup'))
      .flatMap((group) => (group.Properties.SecurityGroupEgress ?? []) as { DestinationPrefixListId?: string }[]);
    const prefixLists = [...new Set(egress.map((rule) => rule.DestinationPrefixListId).filter(Boolean))];
    expect(prefixLists).toHaveLength(1);
    expect(prefixLists[0]).toMatch(/^pl-[0-9a-f]{8,17}$/);
    expect(assembly.manifest.missing ?? []).toEqual([]);
  });

  test('given cdk-nag AwsSolutions, when synthesized, then there are zero unacknowledged findings', () => {
    expect(() => synthesizedExample(name)).not.toThrow();
  });

  test('given the acknowledgements, then each has a specific reason, IAM5 ones name their exact finding, and each suppresses a finding in the validation report', () => {
    const { app, outdir } = synthesizedExample(name);
    const acks = acknowledgements(app);
    expect(acks.size).toBeGreaterThanOrEqual(4);
    for (const [where, reason] of acks) {
      expect(`${where}: ${reason}`).toMatch(/: .{60,}/);
      // The plugin-qualified form: CDK suppresses the finding itself and lists it in the report.
      expect(where).toMatch(/ AwsSolutions::AwsSolutions-/);
      if (where.includes('IAM5')) expect(where).toMatch(/AwsSolutions-IAM5\[(Resource|Action)::.+\]$/);
    }
    const report = JSON.parse(readFileSync(join(outdir, 'validation-report.json'), 'utf8')) as ValidationReport;
    const nag = report.pluginReports.find((r) => r.pluginName === 'AwsSolutions')!;
    expect(nag.violations).toEqual([]);
    const suppressed = new Set(nag.suppressedViolations.map((v) => `${v.acknowledgedAt} ${v.acknowledgedId}`));
    // An acknowledgement that suppresses nothing is stale, or names its finding wrongly.
    expect([...acks.keys()].filter((ack) => !suppressed.has(ack))).toEqual([]);
  });
});

/**
 * What an alarm watches: its metric (or metric math) with its dimensions, and its threshold, in the account and
 * region of its stack (a vault's alarms watch the vault account's metrics of the same name).
 */
function watched(stack: Stack, alarm: Record<string, unknown>): string {
  const dimensions = ((alarm.Dimensions ?? []) as { Name: string }[]).slice().sort((a, b) => a.Name.localeCompare(b.Name));
  return JSON.stringify({ where: [stack.account, stack.region], namespace: alarm.Namespace, metric: alarm.MetricName, dimensions,
    metrics: alarm.Metrics, threshold: alarm.Threshold });
}

/**
 * Every alarm of the stacks, by stack and logical id: those without an action, and those that watch what another watches.
 * `template` reads a stack's template (Template.fromStack by default).
 */
function alarmProblems(stacks: Stack[], template: (stack: Stack) => Template = Template.fromStack): { silent: string[]; duplicates: string[] } {
  const alarms = stacks.flatMap((stack) => Object.entries(template(stack).findResources('AWS::CloudWatch::Alarm'))
    .map(([id, alarm]) => ({ stack, where: `${stack.stackName}/${id}`, properties: alarm.Properties as Record<string, unknown> })));
  expect(alarms.length).toBeGreaterThan(5);
  const seen = new Map<string, string>();
  const duplicates: string[] = [];
  for (const alarm of alarms) {
    const key = watched(alarm.stack, alarm.properties);
    if (seen.has(key)) duplicates.push(`${alarm.where} duplicates ${seen.get(key)}`);
    else seen.set(key, alarm.where);
  }
  const silent = alarms.filter((a) => !(Array.isArray(a.properties.AlarmActions) && a.properties.AlarmActions.length)).map((a) => a.where);
  return { silent, duplicates };
}

describe.each(envNames)('the alarms of environment %s', (name) => {
  const problems = () => {
    const { primary, replica, template } = synthesizedExample(name);
    return alarmProblems([primary, replica], template);
  };

  test('given both stacks, then every alarm notifies someone: each has an alarm action', () => {
    expect(problems().silent).toEqual([]);
  });

  test('given both stacks, then no two alarms watch the same metric with the same dimensions and threshold', () => {
    expect(problems().duplicates).toEqual([]);
  });
});

test('control: a second, silent replication alarm is found as both', () => {
  const { primary, replica, store } = exampleApp(envNames[0]);
  new cloudwatch.Alarm(primary, 'SecondReplicationAlarm', { metric: store.metricFailedReplication(), threshold: 0, evaluationPeriods: 1 });
  const { silent, duplicates } = alarmProblems([primary, replica]);
  expect(silent).toEqual([expect.stringContaining('SecondReplicationAlarm')]);
  expect(duplicates).toEqual([expect.stringMatching(/SecondReplicationAlarm.* duplicates .*ReplicationFailedAlarm/)]);
});

test('control: cdk-nag does fail this synth when a finding is not acknowledged', () => {
  const { app, primary } = exampleApp(envNames[0]);
  new s3.Bucket(primary, 'UnloggedBucket');
  expect(() => app.synth()).toThrow(/AwsSolutions-S1/);
});

describe('environment errors', () => {
  test('given no env, then the error says how to choose one and lists the known ones', () => {
    expect(() => resolveEnvironment(environments, undefined))
      .toThrow(new EnvironmentError(`no environment chosen: run with -c env=NAME, where NAME is one of: ${envNames.join(', ')}`));
  });

  test('given an unknown env, then the error names it and lists the known ones', () => {
    expect(() => resolveEnvironment(environments, 'staging'))
      .toThrow(`unknown environment 'staging': run with -c env=NAME, where NAME is one of: ${envNames.join(', ')}`);
  });

  test('given no environments context, then the error shows what to add', () => {
    expect(() => resolveEnvironment(undefined, 'dev')).toThrow(/^no "environments" context: run the app through the CDK CLI/);
  });

  test('given a bad account, then the error names environments.<env>.account', () => {
    expect(() => resolveEnvironment({ dev: { account: '42', region: 'eu-west-1', replicaRegion: 'eu-central-1' } }, 'dev'))
      .toThrow('environments.dev.account in cdk.json is "42"; set it to a value like "111111111111"');
  });

  test('given a replica region equal to the region, then the error names environments.<env>.replicaRegion', () => {
    expect(() => resolveEnvironment({ dev: { account: '111111111111', region: 'eu-west-1', replicaRegion: 'eu-west-1' } }, 'dev'))
      .toThrow('environments.dev.replicaRegion equals its region (eu-west-1); choose another region, so that the offsite copy survives a regional outage');
  });
});

/** The environment of a child process with no AWS credentials or region at all. */
function offlineEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('AWS_') && !key.startsWith('CDK_')));
  return { ...env, ...extra };
}

describe('the app on the command line', () => {
  test('given an unknown env, when the app runs, then it exits 1 with one clear line and no stack trace', async () => {
    const context = JSON.stringify({ environments, env: 'staging' });
    const failure = await run('npx', ['tsx', 'bin/app.ts'], { cwd: root, env: offlineEnv({ CDK_CONTEXT_JSON: context }) })
      .then(() => undefined, (error: { code: number; stderr: string }) => error);
    expect(failure?.code).toBe(1);
    expect(failure?.stderr.trim()).toBe(`Error: unknown environment 'staging': run with -c env=NAME, where NAME is one of: ${envNames.join(', ')}`);
  });

  test.each(envNames)('given env %s and no AWS credentials, when `cdk synth` runs, then both templates are written', async (name) => {
    const out = mkdtempSync(join(tmpdir(), 'restorable-synth-'));
    try {
      const started = Date.now();
      await run('npx', ['cdk', 'synth', '--quiet', '-c', `env=${name}`, '-o', out], { cwd: root, env: offlineEnv() });
      const seconds = (Date.now() - started) / 1000;
      expect(existsSync(join(out, `Restorable-${name}.template.json`))).toBe(true);
      expect(existsSync(join(out, `Restorable-${name}-Replica.template.json`))).toBe(true);
      expect(seconds).toBeLessThan(60);
      console.log(`cdk synth -c env=${name}: ${seconds.toFixed(1)} s`);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
