/**
 * Scale with restore testing: the 100-source stack of test/app/scale.test.ts (every feature on) plus monitoring
 * and weekly and DR restore tests of every source, under the 450-resource budget, within CloudFormation's
 * template and Step Functions' definition limits, cdk-nag clean, and with every restore-test role's policy
 * under IAM's 10,240 characters once its tokens are real ARNs.
 */
import { App, Duration, Stack, Validations } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as sns from 'aws-cdk-lib/aws-sns';
import { AwsSolutionsChecks } from 'cdk-nag';
import { BackupKeys, BackupMonitoring, BackupStore, DatabaseBackups, ReplicaStore, RestoreTesting } from '../../lib';
import { ENV, mariadbSource, postgresSource, sampleVpc } from './database-backups-fixture';

const RESOURCE_BUDGET = 450;

type Template = { Resources: Record<string, { Type: string; Properties: Record<string, unknown> }> };

function synthesize(sourceCount: number): Template {
  const app = new App();
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  const replicaStack = new Stack(app, 'ScaleReplica', { env: { ...ENV, region: 'eu-central-1' } });
  const replica = new ReplicaStore(replicaStack, 'Replica');
  const stack = new Stack(app, 'Scale', { env: ENV });
  const store = new BackupStore(stack, 'Store', { replica });
  const keys = new BackupKeys(stack, 'Keys', { replicaRegion: replica.region, replicaKeyAlias: replica.keyAliasName });
  const alarmTopic = new sns.Topic(stack, 'Alarms', { enforceSSL: true });
  const monitoring = new BackupMonitoring(stack, 'Monitoring', { store, alarmTopic });
  const backups = new DatabaseBackups(stack, 'DatabaseBackups', { store, keys, monitoring, vpc: sampleVpc(stack, true), vpcEndpoints: true, alarmTopic });
  for (let i = 0; i < sourceCount; i++) {
    const name = `db-${String(i).padStart(3, '0')}`;
    backups.addSource(i % 2 === 0
      ? postgresSource(stack, name, { rpo: Duration.hours(1 + (i % 12)) })
      : mariadbSource(stack, name, { cpu: 2048, memoryLimitMiB: 4096, ephemeralStorageGiB: 30 }));
  }
  new RestoreTesting(stack, 'RestoreTesting', {
    backups, store, keys, monitoring, drSchedule: events.Schedule.cron({ day: '1', hour: '4', minute: '0' }),
    sources: backups.sources.map((source) => ({ source, rtoTarget: Duration.hours(4),
      checks: [{ name: 'rows exist', sql: 'SELECT 1 FROM information_schema.tables LIMIT 1', minRows: 1 }] })),
  });
  return app.synth().getStackByName('Scale').template as Template;
}

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

test(`100 sources with monitoring and restore testing (weekly and DR) stay under ${RESOURCE_BUDGET} resources`, () => {
  const template = synthesize(100);
  const resources = Object.values(template.Resources);
  const byType: Record<string, number> = {};
  for (const { Type } of resources) byType[Type] = (byType[Type] ?? 0) + 1;
  const templateBytes = Buffer.byteLength(JSON.stringify(template));
  const machine = resources.find((r) => r.Type === 'AWS::StepFunctions::StateMachine')!;
  const restoreRoles = Object.entries(template.Resources)
    .filter(([id, r]) => r.Type === 'AWS::IAM::Role' && id.startsWith('RestoreTestingTestRole'));
  const restorePolicies = resources.filter((r) => r.Type === 'AWS::IAM::Policy'
    && restoreRoles.some(([id]) => JSON.stringify(r.Properties.Roles) === JSON.stringify([{ Ref: id }])));
  const largestPolicy = Math.max(...restorePolicies.map((p) => deployedLength(p.Properties.PolicyDocument)));
  console.log(`restore-testing scale: ${resources.length} resources with 100 sources; template ${(templateBytes / 1024).toFixed(0)} KiB; ` +
    `state machine ${(Buffer.byteLength(JSON.stringify(machine)) / 1024).toFixed(0)} KiB of it (~${(deployedLength(machine.Properties.DefinitionString) / 1024).toFixed(0)} KiB deployed); ` +
    `${restoreRoles.length} restore-test roles, largest policy ~${largestPolicy} characters deployed; alarms ${byType['AWS::CloudWatch::Alarm']}`);
  expect(resources.length).toBeLessThan(RESOURCE_BUDGET);
  expect(templateBytes).toBeLessThan(1_000_000);
  expect(deployedLength(machine.Properties.DefinitionString)).toBeLessThan(1_000_000);
  expect(restoreRoles).toHaveLength(13);
  expect(largestPolicy).toBeLessThan(10_240);
  // Two scratch images (postgres:16, mariadb:10.11) beside the two backup task definitions.
  expect(byType['AWS::ECS::TaskDefinition']).toBe(4);
  expect(byType['AWS::StepFunctions::StateMachine']).toBe(1);
});
