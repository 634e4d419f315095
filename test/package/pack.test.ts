/**
 * The package as published works in someone else's app. From a copy of the checkout with nothing built (as a
 * clean clone is), `npm pack` builds everything itself (prepack); the tarball holds exactly the allowed files
 * within a byte budget; installed into a fresh CDK app that has only aws-cdk-lib, constructs and the CDK CLI,
 * it synthesizes an app with every public construct (offline, with the CLI), and `npx restorable` runs.
 */
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from '../support/paths';

const run = promisify(execFile);
const rootPackage = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8'));
/**
 * What the whole tarball may weigh: the library, the handler bundles and the agent bundle are about 2.6 MB, of which
 * the MongoDB driver the agent bundles (with bson and its URL parser) is about 0.4 MB.
 */
const TARBALL_BUDGET_BYTES = 3_000_000;
/** Every file the tarball may hold, as patterns over its paths. */
const ALLOWED = [
  /^package\.json$/, /^README\.md$/, /^LICENSE$/, /^CHANGELOG\.md$/,
  /^dist\/lib\/(.+\/)?[a-z0-9-]+\.(js|d\.ts)$/,
  /^assets\/lambda\/[a-z0-9-]+\/index\.js$/,
  /^assets\/agent\/restorable\.cjs$/,
  /^container\/Dockerfile$/, /^container\/Dockerfile\.dockerignore$/,
];

const work = mkdtempSync(join(tmpdir(), 'restorable-pack-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

let tarball: string;
let entries: { path: string; size: number; mode: number }[];

beforeAll(async () => {
  // The files git would check out (tracked or new, not ignored), so nothing built here leaks into the pack.
  const { stdout } = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: REPO_ROOT, maxBuffer: 16 << 20 });
  const checkout = join(work, 'checkout');
  for (const file of stdout.split('\0').filter(Boolean)) {
    mkdirSync(join(checkout, file, '..'), { recursive: true });
    cpSync(join(REPO_ROOT, file), join(checkout, file), { preserveTimestamps: true });
  }
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(checkout, 'node_modules'));
  const packed = await run('npm', ['pack', '--json', '--pack-destination', work, '--loglevel=error'], { cwd: checkout, maxBuffer: 64 << 20 });
  // prepack's own output comes first on stdout; npm's JSON report is the last thing there.
  const report = JSON.parse(packed.stdout.slice(packed.stdout.lastIndexOf('\n[\n') + 1)) as { filename: string; files: { path: string; size: number; mode: number }[] }[];
  tarball = join(work, report[0].filename);
  entries = report[0].files;
}, 600_000);

test('npm pack builds first and ships only the allowed files, every bundle, and the agent with its run bit', () => {
  const paths = entries.map((e) => e.path);
  expect(paths.filter((p) => !ALLOWED.some((pattern) => pattern.test(p)))).toEqual([]);
  expect(paths).toEqual(expect.arrayContaining([
    'dist/lib/index.js', 'dist/lib/index.d.ts', 'assets/agent/restorable.cjs', 'container/Dockerfile', 'container/Dockerfile.dockerignore',
    'LICENSE', 'README.md', 'CHANGELOG.md', 'package.json',
  ]));
  const handlers = readdirSync(join(REPO_ROOT, 'lambda')).filter((name) => existsSync(join(REPO_ROOT, 'lambda', name, 'index.ts')));
  expect(handlers.length).toBeGreaterThan(0);
  expect(paths.filter((p) => p.startsWith('assets/lambda/')).sort()).toEqual(handlers.map((name) => `assets/lambda/${name}/index.js`).sort());
  expect(entries.find((e) => e.path === 'assets/agent/restorable.cjs')!.mode & 0o111).toBe(0o111);
  expect(readFileSync(tarball).length).toBeLessThan(TARBALL_BUDGET_BYTES);
});

test('installed into a fresh CDK app, every public construct synthesizes with the CDK CLI, and npx restorable runs', async () => {
  const app = join(work, 'app');
  mkdirSync(app);
  const dev = rootPackage.devDependencies as Record<string, string>;
  writeFileSync(join(app, 'package.json'), JSON.stringify({
    name: 'someone-elses-app', private: true,
    dependencies: { 'aws-cdk-lib': dev['aws-cdk-lib'], constructs: dev.constructs, 'aws-cdk': dev['aws-cdk'], restorable: `file:${tarball}` },
  }));
  writeFileSync(join(app, 'cdk.json'), JSON.stringify({
    app: 'node app.js',
    context: {
      'availability-zones:account=123456789012:region=eu-west-1': ['eu-west-1a', 'eu-west-1b', 'eu-west-1c'],
      'availability-zones:account=123456789012:region=eu-central-1': ['eu-central-1a', 'eu-central-1b', 'eu-central-1c'],
    },
  }));
  writeFileSync(join(app, 'app.js'), APP);
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: app, maxBuffer: 64 << 20 });

  const synth = await run('npx', ['cdk', 'synth', '--quiet', '--no-notices', '--no-version-reporting'], { cwd: app, maxBuffer: 64 << 20 });
  expect(synth.stderr).not.toMatch(/Error/);
  const template = JSON.parse(readFileSync(join(app, 'cdk.out', 'Backups.template.json'), 'utf8')) as { Resources: Record<string, { Type: string }> };
  const types = new Set(Object.values(template.Resources).map((r) => r.Type));
  for (const type of ['AWS::S3::Bucket', 'AWS::Scheduler::Schedule', 'AWS::ECS::TaskDefinition', 'AWS::StepFunctions::StateMachine', 'AWS::Lambda::Function']) {
    expect(types).toContain(type);
  }

  const help = await run('npx', ['restorable', '--help'], { cwd: app });
  expect(help.stdout).toMatch(/^restorable \S+: backups you can prove you can restore/);
  expect(help.stdout).toMatch(/verify/);
}, 600_000);

/** Someone else's app: a VPC, two RDS instances, and every public construct, in plain JavaScript. */
const APP = `
const { App, Duration, Stack } = require('aws-cdk-lib');
const ec2 = require('aws-cdk-lib/aws-ec2');
const rds = require('aws-cdk-lib/aws-rds');
const {
  BackupKeys, BackupMonitoring, BackupStore, DatabaseBackups, DisasterRecoveryRunbook, ReplicaStore, RestoreTesting, SourceEngine,
} = require('restorable');

const app = new App();
const account = '123456789012';
const dr = new Stack(app, 'BackupsDr', { env: { account, region: 'eu-central-1' } });
const replica = new ReplicaStore(dr, 'Replica');
const main = new Stack(app, 'Backups', { env: { account, region: 'eu-west-1' } });
const vpc = new ec2.Vpc(main, 'Vpc', { maxAzs: 2 });
const orders = new rds.DatabaseInstance(main, 'Orders', {
  engine: rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_16 }), vpc, databaseName: 'orders',
});
const shop = new rds.DatabaseInstance(main, 'Shop', {
  engine: rds.DatabaseInstanceEngine.mariaDb({ version: rds.MariaDbEngineVersion.VER_10_11 }), vpc, databaseName: 'shop',
});
const store = new BackupStore(main, 'Store', { replica });
const keys = new BackupKeys(main, 'Keys', { replicaRegion: 'eu-central-1', replicaKeyAlias: replica.keyAliasName });
const monitoring = new BackupMonitoring(main, 'Monitoring', { store, alarmEmails: ['oncall@example.com'] });
const backups = new DatabaseBackups(main, 'Backups', { store, keys, monitoring, vpc });
const ordersSource = backups.addSource({ name: 'orders-db', engine: SourceEngine.postgres('16'), secret: orders.secret, rpo: Duration.hours(1), peer: orders });
const shopSource = backups.addSource({ name: 'shop-db', engine: SourceEngine.mariadb('10.11'), secret: shop.secret, peer: shop });
new RestoreTesting(main, 'RestoreTesting', { store, keys, backups, monitoring, sources: [
  { source: ordersSource, checks: [{ name: 'orders up to the backup', sql: 'SELECT max(placed_at) FROM orders', maxAge: Duration.hours(1) }] },
  { source: shopSource },
] });
new DisasterRecoveryRunbook(main, 'Runbook', { backups, store, keys });
app.synth();
`;
