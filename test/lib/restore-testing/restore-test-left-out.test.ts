/**
 * What a restore test may leave out, and the disk it needs: a source's expectLeftOut reaches the agent as one
 * --expect-left-out argument, a bad list or a MariaDB/MySQL source fails synth naming the source, and a source whose
 * expectedSize does not fit the task's ephemeral storage (twice the size plus 1 GiB) warns at synth.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Annotations as CoreAnnotations, App, Size, Stack } from 'aws-cdk-lib';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import * as events from 'aws-cdk-lib/aws-events';
import * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import { BackupKeys, BackupMonitoring, BackupStore, DatabaseBackups, ReplicaStore, RestoreTesting, RestoreTestingProps, RestoreTestSourceProps } from '../../../lib';
import { OrchestratorConfig } from '../../../lib/restore-testing/orchestrator-config';
import { BackupSource, BackupSourceProps } from '../../../lib/backups/backup-source';
import { ENV, mariadbSource, postgresSource, sampleVpc } from '../database-backups-fixture';

const DISK_TOO_SMALL = '@restorable/restore-testing:disk-too-small';

interface Options {
  /** The orders-db source's props beyond the fixture's. */
  readonly orders?: Partial<BackupSourceProps>;
  /** Its restore test's props beyond the source. */
  readonly test?: Omit<RestoreTestSourceProps, 'source'>;
  /** Adds a MariaDB source, shop-db, with these restore-test props. */
  readonly shop?: Omit<RestoreTestSourceProps, 'source'>;
  readonly testing?: Partial<RestoreTestingProps>;
  /** The store has a replica, and the DR copy is tested monthly. */
  readonly dr?: boolean;
}

function stackWith(options: Options = {}) {
  const app = new App();
  const replica = options.dr ? new ReplicaStore(new Stack(app, 'Replica', { env: { ...ENV, region: 'eu-central-1' } }), 'Replica') : undefined;
  const stack = new Stack(app, 'S', { env: ENV });
  const store = new BackupStore(stack, 'Store', { replica });
  const keys = new BackupKeys(stack, 'Keys', { replicaRegion: 'eu-central-1', replicaKeyAlias: replica?.keyAliasName ?? 'alias/dr-secrets' });
  const monitoring = new BackupMonitoring(stack, 'Monitoring', { store });
  const backups = new DatabaseBackups(stack, 'DatabaseBackups', { store, keys, monitoring, vpc: sampleVpc(stack) });
  const orders = backups.addSource(postgresSource(stack, 'orders-db', options.orders));
  const sources: RestoreTestSourceProps[] = [{ source: orders, ...options.test }];
  if (options.shop) sources.push({ source: backups.addSource(mariadbSource(stack, 'shop-db')), ...options.shop });
  const drSchedule = options.dr ? events.Schedule.cron({ day: '1', hour: '4', minute: '0' }) : undefined;
  const create = () => new RestoreTesting(stack, 'RestoreTesting', { backups, store, keys, monitoring, sources, drSchedule, ...options.testing });
  return { app, stack, create };
}

/** The agent commands of orders-db's restore tests, as the orchestrator's configuration holds them after synth. */
function commands(options: Options): OrchestratorConfig['sources'][string]['commands'] {
  const { app, create } = stackWith(options);
  const testing = create();
  app.synth();
  const asset = testing.node.findChild('Orchestration').node.findChild('Code') as s3assets.Asset;
  return (JSON.parse(readFileSync(join(app.outdir, asset.assetPath, 'config.json'), 'utf8')) as OrchestratorConfig).sources['orders-db'].commands;
}
const command = (options: Options): readonly string[] => commands(options).primary!;

/** The disk warnings of a stack, as [construct path, message without the ack suffix]. */
function diskWarnings(stack: Stack): [string, string][] {
  return Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp(`\\[ack: ${DISK_TOO_SMALL}\\]$`))
    .map((w) => [w.id, String(w.entry.data).replace(` [ack: ${DISK_TOO_SMALL}]`, '')]);
}

describe('expectLeftOut', () => {
  test('given two patterns, when synthesized, then the agent is given them as one --expect-left-out joined with ;', () => {
    const args = command({ test: { expectLeftOut: ['EVENT TRIGGER audit_*', 'EXTENSION postgis'] } });
    const at = args.indexOf('--expect-left-out');
    expect(at).toBeGreaterThan(0);
    expect(args[at + 1]).toBe('EVENT TRIGGER audit_*;EXTENSION postgis');
    // Before the flags that end every command.
    expect(args.slice(-2)).toEqual(['--publish-metrics', '--json']);
  });

  test('given no expectLeftOut, or an empty list, when synthesized, then the command has no --expect-left-out', () => {
    expect(command({})).not.toContain('--expect-left-out');
    expect(command({ test: { expectLeftOut: [] } })).not.toContain('--expect-left-out');
  });

  test('given a DR schedule, when synthesized, then the DR test is given the same patterns', () => {
    const { primary, dr } = commands({ test: { expectLeftOut: ['EXTENSION postgis'] }, dr: true });
    expect(dr).toBeDefined();
    for (const args of [primary, dr]) expect(args).toEqual(expect.arrayContaining(['--expect-left-out', 'EXTENSION postgis']));
  });

  test('given a pattern with ;, when synthesized, then the error names the source and the pattern and says to give it as its own item', () => {
    expect(stackWith({ test: { expectLeftOut: ['EVENT TRIGGER a; EXTENSION postgis'] } }).create)
      .toThrow("S/RestoreTesting: source 'orders-db': expectLeftOut: the pattern 'EVENT TRIGGER a; EXTENSION postgis' contains ';', " +
        'which separates patterns for the agent: give each pattern as its own list item');
  });

  test.each([[''], ['   ']])('given the blank pattern %j, when synthesized, then the error says every pattern must be a non-empty string', (blank) => {
    expect(stackWith({ test: { expectLeftOut: ['EXTENSION postgis', blank] } }).create)
      .toThrow(`S/RestoreTesting: source 'orders-db': expectLeftOut: every pattern must be a non-empty string (got ${JSON.stringify(blank)}), for example 'EVENT TRIGGER audit_*'`);
  });

  test('given a pattern that is not a string (from JavaScript), when synthesized, then the error says so', () => {
    expect(stackWith({ test: { expectLeftOut: [42 as unknown as string] } }).create)
      .toThrow("S/RestoreTesting: source 'orders-db': expectLeftOut: every pattern must be a non-empty string (got 42)");
  });

  test('given expectLeftOut on a MariaDB source, when synthesized, then the error names the source and its engine and says it is for PostgreSQL', () => {
    expect(stackWith({ shop: { expectLeftOut: ['EVENT TRIGGER *'] } }).create)
      .toThrow("S/RestoreTesting: source 'shop-db': expectLeftOut is for PostgreSQL and MongoDB sources, and this one is mariadb 10.11: a MariaDB or MySQL " +
        'restore test leaves nothing out of the backup (a command the load refuses fails the test, naming it); remove expectLeftOut');
  });

  test('given addSource with expectLeftOut, when synthesized, then it is validated like the sources prop', () => {
    const { stack, create } = stackWith();
    const testing = create();
    const backups = stack.node.findChild('DatabaseBackups') as DatabaseBackups;
    const source: BackupSource = backups.addSource(postgresSource(stack, 'billing-db'));
    expect(() => testing.addSource({ source, expectLeftOut: ['a;b'] })).toThrow("S/RestoreTesting: source 'billing-db': expectLeftOut: the pattern 'a;b' contains ';'");
  });
});

describe('the restore-test task\'s disk', () => {
  test('given no expectedSize, when synthesized, then nothing is said', () => {
    const { stack, create } = stackWith();
    create();
    expect(diskWarnings(stack)).toEqual([]);
  });

  test('given expectedSize 10 GiB and the default 21 GiB, when synthesized, then nothing is said (2 × 10 + 1 fits)', () => {
    const { stack, create } = stackWith({ orders: { expectedSize: Size.gibibytes(10) } });
    create();
    expect(diskWarnings(stack)).toEqual([]);
  });

  test('given expectedSize 12 GiB and the default 21 GiB, when synthesized, then it warns naming the source, what it needs and ephemeralStorageGiB', () => {
    const { stack, create } = stackWith({ orders: { expectedSize: Size.gibibytes(12) } });
    create();
    expect(diskWarnings(stack)).toEqual([['/S/RestoreTesting',
      "source 'orders-db' expects up to 12 GiB (expectedSize), and its restore test keeps the decrypted dump (the dump plus 64 MiB) and " +
      "the scratch server's data on the task's ephemeral storage, 21 GiB: allow 25 GiB (twice expectedSize plus 1 GiB). " +
      "Raise RestoreTesting's ephemeralStorageGiB to at least 25; a test without room fails before it touches the scratch database, naming the space it needs"]]);
  });

  test('given expectedSize 12 GiB and ephemeralStorageGiB 25, when synthesized, then nothing is said', () => {
    const { stack, create } = stackWith({ orders: { expectedSize: Size.gibibytes(12) }, testing: { ephemeralStorageGiB: 25 } });
    create();
    expect(diskWarnings(stack)).toEqual([]);
  });

  test('given expectedSize 10.5 GiB (in MiB) and the default, when synthesized, then it warns to raise it to 22', () => {
    const { stack, create } = stackWith({ orders: { expectedSize: Size.mebibytes(10752) } });
    create();
    const [[, message]] = diskWarnings(stack);
    expect(message).toContain("source 'orders-db' expects up to 10.5 GiB (expectedSize)");
    expect(message).toContain('allow 22 GiB (twice expectedSize plus 1 GiB)');
    expect(message).toContain('ephemeralStorageGiB to at least 22;');
  });

  test('given expectedSize a MiB over 10 GiB, when synthesized, then what it needs is rounded up, never down', () => {
    const { stack, create } = stackWith({ orders: { expectedSize: Size.mebibytes(10241) } });
    create();
    const [[, message]] = diskWarnings(stack);
    expect(message).toContain('expects up to 10.01 GiB');
    expect(message).toContain('allow 21.01 GiB');
    expect(message).toContain('ephemeralStorageGiB to at least 22;');
  });

  test('given expectedSize 150 GiB, when synthesized, then it says that is more than a Fargate task has', () => {
    const { stack, create } = stackWith({ orders: { expectedSize: Size.gibibytes(150) }, testing: { ephemeralStorageGiB: 200 } });
    create();
    const [[, message]] = diskWarnings(stack);
    expect(message).toContain('allow 301 GiB');
    expect(message).toContain('That is more than a Fargate task has (ephemeralStorageGiB, at most 200)');
  });

  test('given the warning acknowledged the standard way, when synthesized, then it is gone', () => {
    const { stack, create } = stackWith({ orders: { expectedSize: Size.gibibytes(12) } });
    const testing = create();
    CoreAnnotations.of(testing).acknowledgeWarning(DISK_TOO_SMALL, 'the dump compresses to a quarter of the database');
    expect(diskWarnings(stack)).toEqual([]);
  });
});
