/**
 * RestoreTesting of a WAL-archived source: its restore test is a point-in-time restore whose scratch server is a
 * PostgreSQL of the source's version booting from the data directory the agent restores onto a volume the two
 * containers share. Template assertions: the volume and its mounts; the scratch container's shell, which removes the
 * credential variables before anything else, opens the volume, waits for the agent's ready marker and execs the image's
 * entrypoint with the test's own configuration; the health check and the agent's HEALTHY dependency; the agent's
 * command; a source without WAL archiving keeps its own task definition and dump restore. What the shell does to a
 * real server is test/container/restore-test-pitr.test.ts, which runs this very entryPoint and command.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import { BackupKeys, BackupMonitoring, BackupStore, DatabaseBackups, DatabaseHosting, RestoreTesting } from '../../../lib';
import { PITR_TEST_FILES } from '../../../lib/contract';
import { OrchestratorConfig } from '../../../lib/restore-testing/orchestrator-config';
import { CREDENTIAL_VARIABLES, PITR_MOUNT, PITR_TEST_DIR, pitrScratchEntrypoint } from '../../../lib/restore-testing/restore-test-task';
import { RestoreTestSourceProps } from '../../../lib/restore-testing/restore-test-source';
import { ENV, mariadbSource, postgresSource, sampleVpc } from '../database-backups-fixture';

type Container = Record<string, unknown>;

function restoreTestingStack(sources: (backups: DatabaseBackups, stack: Stack) => RestoreTestSourceProps[]) {
  const app = new App();
  const stack = new Stack(app, 'Backups', { env: ENV });
  const store = new BackupStore(stack, 'Store', { prefix: 'backups' });
  const keys = new BackupKeys(stack, 'Keys', { replicaRegion: 'eu-central-1', replicaKeyAlias: 'alias/dr-secrets' });
  const monitoring = new BackupMonitoring(stack, 'Monitoring', { store });
  const backups = new DatabaseBackups(stack, 'DatabaseBackups', { store, keys, monitoring, vpc: sampleVpc(stack) });
  const testing = new RestoreTesting(stack, 'RestoreTesting', { backups, store, keys, monitoring, sources: sources(backups, stack) });
  return { app, stack, testing };
}

const fixture = restoreTestingStack((backups, stack) => [
  { source: backups.addSource(postgresSource(stack, 'ledger-db', { hosting: DatabaseHosting.SELF_MANAGED, walArchiving: {} })), pointInTimeMaxGap: Duration.minutes(30) },
  { source: backups.addSource(postgresSource(stack, 'quiet-db', { hosting: DatabaseHosting.SELF_MANAGED, walArchiving: {} })), pointInTimeTarget: 'latest' },
  { source: backups.addSource(postgresSource(stack, 'orders-db')) },
  { source: backups.addSource(mariadbSource(stack, 'shop-db')) },
]);
const template = Template.fromStack(fixture.stack);

function orchestratorConfig(): OrchestratorConfig {
  const asset = fixture.testing.node.findChild('Orchestration').node.findChild('Code') as s3assets.Asset;
  return JSON.parse(readFileSync(join(fixture.app.synth().directory, asset.assetPath, 'config.json'), 'utf8'));
}

const taskDefinitions = Object.entries(template.findResources('AWS::ECS::TaskDefinition'))
  .filter(([, r]) => (r.Properties.ContainerDefinitions as Container[]).some((c) => c.Name === 'scratch'));
const withVolume = taskDefinitions.filter(([, r]) => (r.Properties.Volumes ?? []).length > 0);
const container = (properties: Record<string, unknown>, name: string) => (properties.ContainerDefinitions as Container[]).find((c) => c.Name === name)!;

describe('given a WAL-archived PostgreSQL 16 source beside a PostgreSQL and a MariaDB source that are not', () => {
  test('then the WAL-archived source has a task definition of its own with one task volume, mounted read-write at /restore in both containers', () => {
    expect(withVolume).toHaveLength(1);
    expect(taskDefinitions).toHaveLength(3);
    const [, pitrTask] = withVolume[0];
    expect(pitrTask.Properties.Volumes).toEqual([{ Name: 'restore' }]);
    for (const name of ['scratch', 'agent']) {
      expect(container(pitrTask.Properties, name).MountPoints).toEqual([{ ContainerPath: PITR_MOUNT, ReadOnly: false, SourceVolume: 'restore' }]);
    }
    // The dump-restoring task definitions keep no volume: nothing outlives their task either way.
    for (const [, r] of taskDefinitions.filter((t) => !withVolume.includes(t))) expect(container(r.Properties, 'agent').MountPoints).toBeUndefined();
  });

  test('then its scratch server is the source\'s version, booting from the restored data once the agent says ready, without the task\'s credentials', () => {
    const scratch = container(withVolume[0][1].Properties, 'scratch');
    expect(scratch.Image).toMatch(/(^|\/)postgres:16$/);
    const [shell, dashC, script, name] = scratch.EntryPoint as string[];
    expect([shell, dashC, name]).toEqual(['/bin/sh', '-c', 'scratch-entrypoint']);
    expect(script).toBe([
      `unset ${CREDENTIAL_VARIABLES.join(' ')}`,
      'chmod 1777 /restore',
      `until [ -f ${PITR_TEST_DIR}/${PITR_TEST_FILES.ready} ]; do sleep 2; done`,
      `chown -R postgres:postgres ${PITR_TEST_DIR}/data ${PITR_TEST_DIR}/wal`,
      `exec docker-entrypoint.sh "$@" >> ${PITR_TEST_DIR}/server.log 2>&1`,
    ].join('; '));
    expect(scratch.Command).toEqual(['postgres', '-D', `${PITR_TEST_DIR}/data`, '-c', `config_file=${PITR_TEST_DIR}/server.conf`]);
    expect(scratch.Environment).toEqual([{ Name: 'PGDATA', Value: `${PITR_TEST_DIR}/data` }]);
    expect(scratch.Essential).toBe(false);
    expect({ entryPoint: scratch.EntryPoint, command: scratch.Command }).toEqual({ entryPoint: pitrScratchEntrypoint().entryPoint, command: pitrScratchEntrypoint().command });
  });

  test('then the agent waits for the volume to be open to it (the scratch container\'s health), not for a server, which it starts later', () => {
    const { Properties } = withVolume[0][1];
    expect(container(Properties, 'scratch').HealthCheck).toMatchObject({ Command: ['CMD-SHELL', 'test -k /restore'], Interval: 5 });
    expect(container(Properties, 'agent').DependsOn).toEqual([{ ContainerName: 'scratch', Condition: 'HEALTHY' }]);
    expect(Properties.PidMode).toBeUndefined();
  });

  test('then the WAL-archived source\'s command restores to a recent time into the shared directory and checks the dump\'s database; the others load a dump', () => {
    const config = orchestratorConfig();
    const ledger = config.sources['ledger-db'].commands.primary!;
    expect(ledger).toEqual(expect.arrayContaining(['--pitr-dir', PITR_TEST_DIR, '--pitr-max-gap', '1800', '--host', '127.0.0.1', '--port', '5432', '--user', 'postgres']));
    expect(ledger).not.toContain('--database');
    expect(ledger).not.toContain('--pitr-to');
    for (const other of ['orders-db', 'shop-db']) {
      const command = config.sources[other].commands.primary!;
      expect(command).toEqual(expect.arrayContaining(['--database', 'restore_test']));
      expect(command).not.toContain('--pitr-dir');
    }
    expect(config.sources['ledger-db'].taskDefinition).not.toBe(config.sources['orders-db'].taskDefinition);
    // A quiet source recovers everything archived; it shares the point-in-time task definition of its image.
    expect(config.sources['quiet-db'].commands.primary).toEqual(expect.arrayContaining(['--pitr-dir', PITR_TEST_DIR, '--pitr-to', 'latest']));
    expect(config.sources['quiet-db'].taskDefinition).toBe(config.sources['ledger-db'].taskDefinition);
  });
});

test('pointInTime: false tests a WAL-archived source\'s newest dump instead, in the shared dump-restoring task definition', () => {
  const { testing, app } = restoreTestingStack((backups, stack) => [
    { source: backups.addSource(postgresSource(stack, 'ledger-db', { hosting: DatabaseHosting.SELF_MANAGED, walArchiving: {} })), pointInTime: false },
    { source: backups.addSource(postgresSource(stack, 'orders-db')) },
  ]);
  const out = app.synth().directory;
  const asset = testing.node.findChild('Orchestration').node.findChild('Code') as s3assets.Asset;
  const config: OrchestratorConfig = JSON.parse(readFileSync(join(out, asset.assetPath, 'config.json'), 'utf8'));
  expect(config.sources['ledger-db'].commands.primary).not.toContain('--pitr-dir');
  expect(config.sources['ledger-db'].taskDefinition).toBe(config.sources['orders-db'].taskDefinition);
});

test.each([
  ['pointInTime: true', { pointInTime: true }, "source 'orders-db': pointInTime needs the source's WAL archived: give 'orders-db' walArchiving in DatabaseBackups, or remove pointInTime"],
  ['pointInTimeMaxGap', { pointInTimeMaxGap: Duration.minutes(5) }, "source 'orders-db': pointInTimeMaxGap is for a point-in-time restore test, which 'orders-db' does not have: remove it"],
  ['pointInTimeTarget', { pointInTimeTarget: 'latest' as const }, "source 'orders-db': pointInTimeTarget is for a point-in-time restore test, which 'orders-db' does not have: remove it"],
])('a source without WAL archiving refuses %s in words', (_label, extra, message) => {
  expect(() => restoreTestingStack((backups, stack) => [{ source: backups.addSource(postgresSource(stack, 'orders-db')), ...extra }])).toThrow(message);
});
