/**
 * Scale: a hundred sources in one stack with every feature on (generated keys, a replicated store in the same
 * stack, VPC endpoints, the alarm topic, a network rule and an endpoint per source, both engines), under
 * CloudFormation's 500-resource limit with room to spare (450). Prints the numbers BENCHMARKS.md records.
 * Re-run it when monitoring and restore testing join the stack.
 */
import { App, Duration, Stack, Validations } from 'aws-cdk-lib';
import * as sns from 'aws-cdk-lib/aws-sns';
import { AwsSolutionsChecks } from 'cdk-nag';
import { BackupKeys, BackupStore, ReplicaStore } from '../../lib';
import { DatabaseBackups } from '../../lib/database-backups';
import { ENV, mariadbSource, postgresSource, sampleVpc } from '../lib/database-backups-fixture';

const RESOURCE_BUDGET = 450;

interface Measurement {
  readonly resources: number;
  readonly synthSeconds: number;
  readonly byType: Record<string, number>;
  /** The template's size as JSON: CloudFormation accepts at most 1 MB (from S3). */
  readonly templateBytes: number;
}

function synthesize(sourceCount: number): Measurement {
  const app = new App();
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  const replicaStack = new Stack(app, 'ScaleReplica', { env: { ...ENV, region: 'eu-central-1' } });
  const replica = new ReplicaStore(replicaStack, 'Replica');
  const stack = new Stack(app, 'Scale', { env: ENV });
  const store = new BackupStore(stack, 'Store', { replica });
  const keys = new BackupKeys(stack, 'Keys', { replicaRegion: replica.region, replicaKeyAlias: replica.keyAliasName });
  const alarmTopic = new sns.Topic(stack, 'Alarms', { enforceSSL: true });
  const backups = new DatabaseBackups(stack, 'DatabaseBackups', { store, keys, vpc: sampleVpc(stack, true), vpcEndpoints: true, alarmTopic });
  for (let i = 0; i < sourceCount; i++) {
    const name = `db-${String(i).padStart(3, '0')}`;
    backups.addSource(i % 2 === 0
      ? postgresSource(stack, name, { rpo: Duration.hours(1 + (i % 12)) })
      : mariadbSource(stack, name, { cpu: 2048, memoryLimitMiB: 4096, ephemeralStorageGiB: 30 }));
  }
  const started = process.hrtime.bigint();
  const assembly = app.synth();
  const synthSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  const template = assembly.getStackByName('Scale').template as { Resources: Record<string, { Type: string }> };
  const resources = Object.values(template.Resources);
  const byType: Record<string, number> = {};
  for (const { Type } of resources) byType[Type] = (byType[Type] ?? 0) + 1;
  return { resources: resources.length, synthSeconds, byType, templateBytes: Buffer.byteLength(JSON.stringify(template)) };
}

test(`100 sources with every feature on stay under ${RESOURCE_BUDGET} resources, and cdk-nag stays clean`, () => {
  // Two sources, one per engine, carry every shared resource (both task definitions); the first synth also warms up.
  const two = synthesize(2);
  const hundred = synthesize(100);
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
});
