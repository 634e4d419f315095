/**
 * Scale: a hundred sources in one stack, under CloudFormation's 500-resource limit with room to spare (450).
 * First the backups alone (generated keys, a replicated store, VPC endpoints, the alarm topic, a network rule and
 * an endpoint per source, both engines), to measure what one source costs; then every feature on: monitoring,
 * weekly and DR restore tests of every source, and the disaster-recovery runbook. Within CloudFormation's template
 * and Step Functions' definition limits, cdk-nag clean, and with every restore-test role's policy under IAM's
 * 10,240 characters once its tokens are real ARNs. The restore-test roles, one per source, live in nested stacks of
 * 25 sources: each nested template is measured and held to the same budgets, and the parent refers to nothing in
 * them (no outputs). Prints the numbers BENCHMARKS.md records.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App, Duration, NestedStack, Stack, Validations } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as sns from 'aws-cdk-lib/aws-sns';
import { AwsSolutionsChecks } from 'cdk-nag';
import {
  BackupKeys, BackupMonitoring, BackupStore, DatabaseBackups, DisasterRecoveryRunbook, ReplicaStore, RestoreTesting,
} from '../../lib';
import { ENV, mariadbSource, postgresSource, sampleVpc } from '../lib/database-backups-fixture';

// The synth times this file prints are an app's, with CDK's built-in template validation on as it is by default:
// test/support/synth-settings.ts turns it off for the other test files only.
delete process.env.CDK_VALIDATION;

const RESOURCE_BUDGET = 450;

type Template = {
  Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
  Outputs?: Record<string, unknown>;
  Parameters?: Record<string, unknown>;
};

/** A nested stack's template, as synthesized beside its parent's. */
interface NestedMeasurement {
  readonly path: string;
  readonly template: Template;
  readonly resources: number;
  readonly templateBytes: number;
}

interface Measurement {
  readonly template: Template;
  readonly resources: number;
  readonly synthSeconds: number;
  readonly byType: Record<string, number>;
  /** The template's size as JSON: CloudFormation accepts at most 1 MB (from S3). */
  readonly templateBytes: number;
  readonly nested: NestedMeasurement[];
}

/** Synthesizes `sourceCount` sources; with `everything`, also monitoring, restore testing and the runbook. */
function synthesize(sourceCount: number, everything: boolean): Measurement {
  const app = new App();
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  const replicaStack = new Stack(app, 'ScaleReplica', { env: { ...ENV, region: 'eu-central-1' } });
  const replica = new ReplicaStore(replicaStack, 'Replica');
  const stack = new Stack(app, 'Scale', { env: ENV });
  const store = new BackupStore(stack, 'Store', { replica });
  const alarmTopic = new sns.Topic(stack, 'Alarms', { enforceSSL: true });
  const keys = new BackupKeys(stack, 'Keys', {
    replicaRegion: replica.region, replicaKeyAlias: replica.identityKeyAliasName,
    alarmTopic: everything ? alarmTopic : undefined, watchedKeys: [store.encryptionKey],
  });
  const monitoring = everything ? new BackupMonitoring(stack, 'Monitoring', { store, alarmTopic }) : undefined;
  const backups = new DatabaseBackups(stack, 'DatabaseBackups', {
    store, keys, monitoring, vpc: sampleVpc(stack, true), vpcEndpoints: true, alarmTopic,
  });
  for (let i = 0; i < sourceCount; i++) {
    const name = `db-${String(i).padStart(3, '0')}`;
    backups.addSource(i % 2 === 0
      ? postgresSource(stack, name, { rpo: Duration.hours(1 + (i % 12)) })
      : mariadbSource(stack, name, { cpu: 2048, memoryLimitMiB: 4096, ephemeralStorageGiB: 30 }));
  }
  if (monitoring) {
    new RestoreTesting(stack, 'RestoreTesting', {
      backups, store, keys, monitoring, drSchedule: events.Schedule.cron({ day: '1', hour: '4', minute: '0' }),
      sources: backups.sources.map((source) => ({ source, rtoTarget: Duration.hours(4),
        checks: [{ name: 'rows exist', sql: 'SELECT 1 FROM information_schema.tables LIMIT 1', minRows: 1 }] })),
    });
    new DisasterRecoveryRunbook(stack, 'Runbook', { backups, store, keys });
  }
  const started = process.hrtime.bigint();
  const assembly = app.synth();
  const synthSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  const template = assembly.getStackByName('Scale').template as Template;
  const resources = Object.values(template.Resources);
  const byType: Record<string, number> = {};
  for (const { Type } of resources) byType[Type] = (byType[Type] ?? 0) + 1;
  const nested = app.node.findAll().filter((c): c is NestedStack => NestedStack.isNestedStack(c)).map((n) => {
    const nestedTemplate = JSON.parse(readFileSync(join(assembly.directory, n.templateFile), 'utf8')) as Template;
    return { path: n.node.path, template: nestedTemplate, resources: Object.keys(nestedTemplate.Resources).length,
      templateBytes: Buffer.byteLength(JSON.stringify(nestedTemplate)) };
  });
  return { template, resources: resources.length, synthSeconds, byType, templateBytes: Buffer.byteLength(JSON.stringify(template)), nested };
}

test(`100 sources of backups alone stay under ${RESOURCE_BUDGET} resources, and cdk-nag stays clean`, () => {
  // Two sources, one per engine, carry every shared resource (both task definitions); the first synth also warms up.
  const two = synthesize(2, false);
  const hundred = synthesize(100, false);
  const perSource = (hundred.resources - two.resources) / 98;
  console.log(`CDK scale: 2 sources ${two.resources} resources (synth ${two.synthSeconds.toFixed(1)} s, cold); ` +
    `100 sources ${hundred.resources} resources (synth ${hundred.synthSeconds.toFixed(1)} s, template ${(hundred.templateBytes / 1024).toFixed(0)} KiB); ${perSource} per source\n` +
    `100 sources by type: ${JSON.stringify(hundred.byType)}`);
  expect(hundred.resources).toBeLessThan(RESOURCE_BUDGET);
  expect(hundred.templateBytes).toBeLessThan(1_000_000);
  // A source adds its role (policy inline), its schedule and its network rule: nothing else.
  expect(perSource).toBe(3);
  expect(hundred.byType['AWS::IAM::Role'] - two.byType['AWS::IAM::Role']).toBe(98);
  expect(hundred.byType['AWS::Scheduler::Schedule']).toBe(100);
  expect(hundred.byType['AWS::ECS::TaskDefinition']).toBe(2);
  expect(hundred.byType['AWS::IAM::Policy']).toBe(two.byType['AWS::IAM::Policy']);
  // A source's network rules are inline in the tasks' group (one per distinct port), and its secret joins one statement of
  // the Secrets Manager endpoint's policy, which must stay within a VPC endpoint policy's 20,480 characters.
  expect(hundred.byType['AWS::EC2::SecurityGroupEgress'] ?? 0).toBe(0);
  const secretsEndpoint = Object.values(hundred.template.Resources)
    .find((r) => r.Type === 'AWS::EC2::VPCEndpoint' && JSON.stringify(r.Properties.ServiceName).includes('secretsmanager'))!;
  const endpointPolicy = deployedLength(secretsEndpoint.Properties.PolicyDocument);
  console.log(`Secrets Manager endpoint policy at 100 sources: ~${endpointPolicy} characters deployed`);
  expect(endpointPolicy).toBeLessThan(20_480);
});

/** The policy's length once deployed: each intrinsic (innermost first) becomes a generous 100-character ARN or name. */
function deployedLength(value: unknown): number {
  const intrinsic = /\{"(?:Ref|Fn::[A-Za-z]+)":[^{}]*\}/g;
  let text = JSON.stringify(value);
  for (let previous = ''; previous !== text;) {
    previous = text;
    text = text.replace(intrinsic, `"${'x'.repeat(100)}"`);
  }
  return text.length;
}

test(`100 sources with monitoring, restore testing (weekly and DR) and the runbook stay under ${RESOURCE_BUDGET} resources, parent and nested`, () => {
  const { template, byType, templateBytes, synthSeconds, nested } = synthesize(100, true);
  const resources = Object.values(template.Resources);
  const machine = resources.find((r) => r.Type === 'AWS::StepFunctions::StateMachine')!;
  const restoreRoles = nested.flatMap((n) => Object.values(n.template.Resources)
    .filter((r) => r.Type === 'AWS::IAM::Role' && JSON.stringify(r.Properties.Path ?? '').startsWith('"/restorable/restore-test/')));
  const restorePolicies = nested.flatMap((n) => Object.values(n.template.Resources).filter((r) => r.Type === 'AWS::IAM::Policy'));
  const largestPolicy = Math.max(...restorePolicies.map((p) => deployedLength(p.Properties.PolicyDocument)));
  console.log(`full scale: parent ${resources.length} resources with 100 sources (synth ${synthSeconds.toFixed(1)} s, nested stacks included); ` +
    `template ${(templateBytes / 1024).toFixed(0)} KiB; state machine ${(Buffer.byteLength(JSON.stringify(machine)) / 1024).toFixed(1)} KiB of it ` +
    `(~${(deployedLength(machine.Properties.DefinitionString) / 1024).toFixed(1)} KiB deployed); alarms ${byType['AWS::CloudWatch::Alarm']}\n` +
    nested.map((n) => `  ${n.path}: ${n.resources} resources, ${(n.templateBytes / 1024).toFixed(0)} KiB, ` +
      `${Object.keys(n.template.Parameters ?? {}).length} parameters, ${Object.keys(n.template.Outputs ?? {}).length} outputs`).join('\n') +
    `\n${restoreRoles.length} restore-test roles, largest policy ~${largestPolicy} characters deployed`);
  expect(resources.length).toBeLessThan(RESOURCE_BUDGET);
  expect(templateBytes).toBeLessThan(1_000_000);
  expect(deployedLength(machine.Properties.DefinitionString)).toBeLessThan(1_000_000);
  // One role per source, 25 to a nested stack; each nested template within the same budgets, with no outputs for
  // the parent to read and the same few parameters.
  expect(restoreRoles).toHaveLength(100);
  expect(nested).toHaveLength(4);
  expect(byType['AWS::CloudFormation::Stack']).toBe(4);
  for (const n of nested) {
    expect([n.path, n.resources < RESOURCE_BUDGET, n.templateBytes < 1_000_000]).toEqual([n.path, true, true]);
    expect([n.path, n.template.Outputs ?? {}]).toEqual([n.path, {}]);
    expect(Object.keys(n.template.Parameters ?? {}).length).toBeLessThanOrEqual(10);
  }
  expect(JSON.stringify(template)).not.toContain('.Outputs.');
  expect(largestPolicy).toBeLessThan(10_240);
  // Two scratch images (postgres:16, mariadb:10.11) beside the two backup task definitions.
  expect(byType['AWS::ECS::TaskDefinition']).toBe(4);
  expect(byType['AWS::StepFunctions::StateMachine']).toBe(1);
});
