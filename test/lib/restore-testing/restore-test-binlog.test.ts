/**
 * RestoreTesting of a MariaDB source whose binlogs are streamed: its restore test is a point-in-time restore into the
 * ordinary scratch MariaDB (no shared volume, no sidecar), the agent told --binlog-pitr with the scratch database and,
 * by default, the source's maxArchiveAge as the largest gap between the target and the last transaction replayed.
 * What the agent does with it against a real server is test/container/restore-test-binlog.test.ts.
 */
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { BackupKeys, BackupMonitoring, BackupStore, DatabaseBackups, DatabaseHosting, RestoreTesting } from '../../../lib';
import { pointInTimeProblem, restoreTestCommand, testsPointInTime, testsWalPointInTime } from '../../../lib/restore-testing/restore-test-source';
import { ENV, mariadbSource, sampleVpc } from '../database-backups-fixture';

const app = new App();
const stack = new Stack(app, 'Backups', { env: ENV });
const store = new BackupStore(stack, 'Store', { prefix: 'backups' });
const keys = new BackupKeys(stack, 'Keys', { replicaRegion: 'eu-central-1', replicaKeyAlias: 'alias/dr-secrets' });
const monitoring = new BackupMonitoring(stack, 'Monitoring', { store });
const backups = new DatabaseBackups(stack, 'DatabaseBackups', { store, keys, monitoring, vpc: sampleVpc(stack) });
const streamed = backups.addSource(mariadbSource(stack, 'shop-db', { hosting: DatabaseHosting.SELF_MANAGED, binlogStreaming: { maxArchiveAge: Duration.minutes(2) } }));
const plain = backups.addSource(mariadbSource(stack, 'cart-db'));
const target = { bucket: '{{BUCKET}}', prefix: 'backups/', identitySecretArn: '{{IDENTITY}}', scratch: { port: 3306, user: 'root' }, database: 'restore_test' } as never;

const option = (argv: readonly string[], name: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);

test('a binlog-streamed source is tested to a point in time by default, in the scratch database, with its maxArchiveAge as the largest gap', () => {
  expect([testsPointInTime({ source: streamed }), testsWalPointInTime({ source: streamed })]).toEqual([true, false]);
  const argv = restoreTestCommand({ source: streamed }, target);
  expect(argv).toContain('--binlog-pitr');
  expect(option(argv, '--database')).toBe('restore_test');
  expect(option(argv, '--pitr-max-gap')).toBe('120');
  expect(argv).not.toContain('--pitr-dir');
  expect(argv).not.toContain('--pitr-to');
});

test('pointInTimeTarget and pointInTimeMaxGap are passed as given; pointInTime: false tests the newest dump as before', () => {
  const argv = restoreTestCommand({ source: streamed, pointInTimeTarget: 'latest', pointInTimeMaxGap: Duration.minutes(30) }, target);
  expect([option(argv, '--pitr-to'), option(argv, '--pitr-max-gap')]).toEqual(['latest', '1800']);
  const dump = restoreTestCommand({ source: streamed, pointInTime: false }, target);
  expect(dump.filter((a) => a.startsWith('--pitr') || a === '--binlog-pitr')).toEqual([]);
  expect(restoreTestCommand({ source: plain }, target).filter((a) => a.startsWith('--pitr') || a === '--binlog-pitr')).toEqual([]);
});

test('pointInTime on a MariaDB source without binlog streaming is refused, naming binlogStreaming', () => {
  expect(pointInTimeProblem({ source: plain, pointInTime: true }))
    .toBe("pointInTime needs the source's binlogs streamed: give 'cart-db' binlogStreaming in DatabaseBackups, or remove pointInTime");
});

test('the binlog-streamed and the plain MariaDB source share one task definition: a scratch MariaDB without a shared volume', () => {
  new RestoreTesting(stack, 'RestoreTesting', { backups, store, keys, monitoring, sources: [{ source: streamed }, { source: plain }] });
  const tasks = Object.values(Template.fromStack(stack).findResources('AWS::ECS::TaskDefinition'))
    .filter((r) => (r.Properties.ContainerDefinitions as { Name: string }[]).some((c) => c.Name === 'scratch'));
  expect(tasks).toHaveLength(1);
  expect(tasks[0].Properties.Volumes ?? []).toEqual([]);
});
