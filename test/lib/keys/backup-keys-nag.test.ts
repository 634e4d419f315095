import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { App, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { AwsSolutionsChecks } from 'cdk-nag';
import { BackupKeys } from '../../../lib/keys/backup-keys';

beforeAll(() => {
  if (!existsSync(join(__dirname, '../../../assets/lambda/key-generator/index.js'))) {
    throw new Error("the key-generator asset is missing: run 'npm run bundle' before these tests");
  }
});

/** BackupKeys beside a restore role that reads the identity and a dump role that gets nothing of the identity. */
function nagCheckedApp(env?: { account: string; region: string }): App {
  const app = new App();
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  const stack = new Stack(app, 'KeysNag', { env });
  const keys = new BackupKeys(stack, 'BackupKeys', { replicaRegion: 'eu-west-1', replicaKeyAlias: 'alias/dr-secrets', generation: 2 });
  const restoreRole = new iam.Role(stack, 'RestoreRole', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
  keys.grantIdentityRead(restoreRole);
  const dumpRole = new iam.Role(stack, 'DumpRole', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
  dumpRole.addToPolicy(new iam.PolicyStatement({
    actions: ['ssm:GetParameter'],
    resources: [stack.formatArn({ service: 'ssm', resource: 'parameter', resourceName: 'restorable/recipient' })],
  }));
  return app;
}

describe('cdk-nag AwsSolutions', () => {
  test.each([
    ['an environment-agnostic stack', undefined],
    ['a stack with an explicit account and region', { account: '123456789012', region: 'eu-central-1' }],
  ])('BackupKeys with a restore role and a dump role has no unacknowledged findings: %s', (_name, env) => {
    expect(() => nagCheckedApp(env).synth()).not.toThrow();
  });

  test('BackupKeys with a vault account and no replica region, read by restore roles by path, has no unacknowledged findings', () => {
    const app = new App();
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    const stack = new Stack(app, 'KeysNag', { env: { account: '123456789012', region: 'eu-central-1' } });
    const keys = new BackupKeys(stack, 'BackupKeys', { vaultAccount: '210987654321' });
    keys.grantIdentityRead(new iam.Role(stack, 'RestoreRole', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'), path: '/restorable/restore-test/' }),
      { rolePath: '/restorable/restore-test/' });
    expect(() => app.synth()).not.toThrow();
  });
});
