/**
 * A restore test's checks and tolerance: periods are Durations (the agent still reads seconds), and a bad check or
 * tolerance fails synth naming the source, the check and the property.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App, Duration, Stack } from 'aws-cdk-lib';
import * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import { BackupKeys, BackupMonitoring, BackupStore, DatabaseBackups, RestoreTestCheck, RestoreTesting, RowCountTolerance } from '../../../lib';
import { ENV, postgresSource, sampleVpc } from '../database-backups-fixture';

function restoreTesting(checks: RestoreTestCheck[], rtoTarget?: Duration) {
  const app = new App();
  const stack = new Stack(app, 'S', { env: ENV });
  const store = new BackupStore(stack, 'Store');
  const keys = new BackupKeys(stack, 'Keys', { replicaRegion: 'eu-central-1', replicaKeyAlias: 'alias/dr-secrets' });
  const monitoring = new BackupMonitoring(stack, 'Monitoring', { store });
  const backups = new DatabaseBackups(stack, 'DatabaseBackups', { store, keys, monitoring, vpc: sampleVpc(stack) });
  const source = backups.addSource(postgresSource(stack, 'orders-db'));
  return () => {
    const testing = new RestoreTesting(stack, 'RestoreTesting', { backups, store, keys, monitoring, sources: [{ source, checks, rtoTarget }] });
    // The agent's command is in the orchestrator's configuration, beside its handler.
    app.synth();
    const asset = testing.node.findChild('Orchestration').node.findChild('Code') as s3assets.Asset;
    return JSON.stringify(JSON.parse(readFileSync(join(app.outdir, asset.assetPath, 'config.json'), 'utf8')).sources['orders-db'].commands.primary);
  };
}

test('given a check with maxAge of an hour, when synthesized, then the agent is given maxAgeSeconds 3600', () => {
  const definition = restoreTesting([{ name: 'orders up to the backup', sql: 'SELECT max(placed_at) FROM orders', maxAge: Duration.hours(1) }])();
  expect(definition).toContain('maxAgeSeconds\\":3600');
  expect(definition).not.toContain('maxAge\\":');
});

test('given a maxAge that is not whole seconds, when synthesized, then the error names the source, the check and maxAge', () => {
  expect(restoreTesting([{ name: 'recent', sql: 'SELECT 1', maxAge: Duration.millis(1500) }]))
    .toThrow("S/RestoreTesting: source 'orders-db': check 'recent': maxAge must be a whole number of seconds, at least 0 (got 1 second 500 millis); for example Duration.hours(1)");
});

test('given a check that still says maxAgeSeconds, as 0.1 did, when synthesized, then the error names the new property', () => {
  const check = { name: 'recent', sql: 'SELECT 1', maxAgeSeconds: 3600 } as RestoreTestCheck;
  expect(restoreTesting([check])).toThrow("S/RestoreTesting: source 'orders-db': check 'recent': maxAgeSeconds was renamed: use maxAge: Duration.hours(1)");
});

test('given an RTO target that is not whole seconds, when synthesized, then the error names rtoTarget', () => {
  expect(restoreTesting([], Duration.millis(100)))
    .toThrow("S/RestoreTesting: source 'orders-db': rtoTarget must be a whole number of seconds, at least 1 (got 100 millis); for example Duration.hours(1)");
});

test('given a bad tolerance, then the error names the call and its argument', () => {
  expect(() => RowCountTolerance.rows(-1)).toThrow('RowCountTolerance.rows(-1): rows must be a whole number of rows, at least 0');
  expect(() => RowCountTolerance.percent(120)).toThrow('RowCountTolerance.percent(120): percent must be a percentage from 0 to 100');
});
