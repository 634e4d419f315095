/**
 * A MongoDB source's restore tests in the constructs: the scratch sidecar is the official mongo image of the source's
 * series, started through the wrapper that unsets the task role's credential variables, with its root user from
 * MONGO_INITDB_ROOT_* (so mongod runs with --auth) on loopback only; its health check passes only once the server
 * that stays (with --auth) is up; the agent logs in as that root user with the password in its own environment; the
 * agent's command restores into the scratch database; and RestoreTesting with a MongoDB source is cdk-nag clean.
 */
import { runInNewContext } from 'node:vm';
import { App, Duration, Stack, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import { AwsSolutionsChecks } from 'cdk-nag';
import { BackupKeys, BackupMonitoring, BackupStore, DatabaseBackups, RestoreTesting, SourceEngine } from '../../../lib';
import { BackupSource } from '../../../lib/backups/backup-source';
import { CREDENTIAL_VARIABLES, RESTORE_TEST_AGENT_CONTAINER, SCRATCH_CONTAINER, SCRATCH_DATABASE, SCRATCH_MONGO_PASSWORD, scratchConnection } from '../../../lib/restore-testing/restore-test-task';
import { RestoreTestCheck, restoreTestCommand } from '../../../lib/restore-testing/restore-test-source';
import { DatabaseFlavour } from '../../../lib/backups/backup-source';
import { ENV, optionOf, postgresSource, samplePeer, sampleSecret, sampleVpc } from '../database-backups-fixture';

type Container = Record<string, unknown> & { Name: string; HealthCheck?: { Command: string[] } };

function mongoTestingStack(nag = false) {
  const app = new App();
  if (nag) Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  const stack = new Stack(app, 'Backups', { env: ENV });
  const store = new BackupStore(stack, 'Store', { prefix: 'backups' });
  const keys = new BackupKeys(stack, 'Keys', { replicaRegion: 'eu-central-1', replicaKeyAlias: 'alias/dr-secrets' });
  const monitoring = new BackupMonitoring(stack, 'Monitoring', { store });
  const backups = new DatabaseBackups(stack, 'DatabaseBackups', { store, keys, monitoring, vpc: sampleVpc(stack) });
  const orders = backups.addSource(postgresSource(stack, 'orders-db'));
  const catalog = backups.addSource({
    name: 'catalog-db', engine: SourceEngine.mongodb('7.0'), secret: sampleSecret(stack, 'catalog-db'),
    endpoint: { hostname: 'catalog-db-2.example.internal', port: 27017 }, peer: samplePeer(stack, 'catalog-db', 27017),
  });
  const legacy = backups.addSource({
    name: 'legacy-catalog', engine: SourceEngine.mongodb('4.4'), secret: sampleSecret(stack, 'legacy-catalog'),
    endpoint: { hostname: 'legacy-catalog.example.internal', port: 27017 },
  });
  const testing = new RestoreTesting(stack, 'RestoreTesting', {
    backups, store, keys, monitoring, sources: [{ source: orders }, { source: catalog, rtoTarget: Duration.hours(1) }, { source: legacy }],
  });
  return { app, stack, testing, catalog };
}

const { stack, catalog } = mongoTestingStack();
const definitions = Object.values(Template.fromStack(stack).findResources('AWS::ECS::TaskDefinition'))
  .map((r) => r.Properties.ContainerDefinitions as Container[])
  .filter((containers) => containers.some((c) => c.Name === SCRATCH_CONTAINER));
const taskWith = (image: string) => {
  const found = definitions.find((containers) => containers.find((c) => c.Name === SCRATCH_CONTAINER)!.Image === image);
  if (!found) throw new Error(`no restore-test task with scratch image ${image}`);
  return { scratch: found.find((c) => c.Name === SCRATCH_CONTAINER)!, agent: found.find((c) => c.Name === RESTORE_TEST_AGENT_CONTAINER)! };
};
const environmentOf = (container: Container) => Object.fromEntries(((container.Environment ?? []) as { Name: string; Value: string }[]).map((e) => [e.Name, e.Value]));

describe('given MongoDB 7.0 and 4.4 sources beside a PostgreSQL one', () => {
  const mongo7 = taskWith('public.ecr.aws/docker/library/mongo:7.0');

  test('then each MongoDB series has a task whose scratch server is the official mongo image of that series', () => {
    const images = definitions.map((containers) => containers.find((c) => c.Name === SCRATCH_CONTAINER)!.Image).sort();
    expect(images).toEqual(['public.ecr.aws/docker/library/mongo:4.4', 'public.ecr.aws/docker/library/mongo:7.0', 'public.ecr.aws/docker/library/postgres:16']);
  });

  test('then the scratch server makes its root user from MONGO_INITDB_ROOT_*, and nothing else is in its environment', () => {
    expect(environmentOf(mongo7.scratch)).toEqual({ MONGO_INITDB_ROOT_USERNAME: 'root', MONGO_INITDB_ROOT_PASSWORD: SCRATCH_MONGO_PASSWORD });
    expect(scratchConnection(DatabaseFlavour.MONGODB)).toEqual({ port: 27017, user: 'root' });
    expect(mongo7.scratch.PortMappings).toEqual([{ ContainerPort: 27017, Protocol: 'tcp' }]);
  });

  test('then mongod starts through the wrapper that unsets the credential variables, bound to loopback only, without server-side JavaScript', () => {
    expect(mongo7.scratch.EntryPoint).toEqual(['/bin/sh', '-c', `unset ${CREDENTIAL_VARIABLES.join(' ')}; exec docker-entrypoint.sh "$@"`, 'scratch-entrypoint']);
    // --bind_ip given, so the image's entrypoint adds no --bind_ip_all; the root user given, so it adds --auth. The
    // backup's validators and views may hold $where or $function: --noscripting makes the server refuse them.
    expect(mongo7.scratch.Command).toEqual(['mongod', '--bind_ip', '127.0.0.1', '--noscripting']);
    expect(taskWith('public.ecr.aws/docker/library/mongo:4.4').scratch.Command).toEqual(['mongod', '--bind_ip', '127.0.0.1', '--noscripting']);
  });

  test('then the agent, and only a MongoDB task\'s agent, is given the scratch root user\'s password and its authentication database', () => {
    expect(environmentOf(mongo7.agent)).toEqual({ MONGODB_PASSWORD: SCRATCH_MONGO_PASSWORD, MONGODB_AUTH_SOURCE: 'admin' });
    expect(environmentOf(taskWith('public.ecr.aws/docker/library/postgres:16').agent)).toEqual({});
    expect(mongo7.agent.DependsOn).toEqual([{ ContainerName: SCRATCH_CONTAINER, Condition: 'HEALTHY' }]);
  });

  test('then the agent restores into the scratch database as root at 127.0.0.1:27017, with no password in its command', () => {
    const command = restoreTestCommand({ source: catalog }, {
      bucket: 'bucket', prefix: 'backups/', identitySecretArn: 'arn:identity', scratch: scratchConnection(DatabaseFlavour.MONGODB), database: SCRATCH_DATABASE,
    });
    expect([optionOf(command, '--host'), optionOf(command, '--port'), optionOf(command, '--user'), optionOf(command, '--database')])
      .toEqual(['127.0.0.1', '27017', 'root', SCRATCH_DATABASE]);
    expect(command.join(' ')).not.toContain(SCRATCH_MONGO_PASSWORD);
  });

  test('then the health check asks the loopback server with mongosh, or the legacy mongo shell of older images', () => {
    const [kind, shell] = mongo7.scratch.HealthCheck!.Command;
    expect(kind).toBe('CMD-SHELL');
    expect(shell).toMatch(/^\$\(command -v mongosh \|\| command -v mongo\) --quiet --host 127\.0\.0\.1 --port 27017 --eval '[^']+'$/);
    expect(taskWith('public.ecr.aws/docker/library/mongo:4.4').scratch.HealthCheck).toEqual(mongo7.scratch.HealthCheck);
  });
});

/**
 * The health check's script, run as the shells run it: `db.adminCommand` of mongosh throws a server's refusal (a
 * MongoServerError with its code), the legacy shell returns it as `{ ok: 0, code }`; `quit(n)` ends with that status.
 */
describe('the MongoDB health check script', () => {
  const script = /--eval '([^']+)'$/.exec(taskWith('public.ecr.aws/docker/library/mongo:7.0').scratch.HealthCheck!.Command[1])![1];
  const exitStatus = (adminCommand: () => unknown): number => {
    let status: number | undefined;
    runInNewContext(script, { db: { adminCommand }, quit: (n: number) => { status = n; } });
    if (status === undefined) throw new Error('the script did not quit');
    return status;
  };
  const refused = Object.assign(new Error('command listDatabases requires authentication'), { code: 13, codeName: 'Unauthorized' });

  test('is healthy once the server refuses an unauthenticated listDatabases (mongod with --auth), as mongosh or the legacy shell reports it', () => {
    expect(exitStatus(() => { throw refused; })).toBe(0);
    expect(exitStatus(() => ({ ok: 0, code: 13, codeName: 'Unauthorized', errmsg: 'requires authentication' }))).toBe(0);
  });

  test('is not healthy while the entrypoint\'s first server, without --auth, answers it, nor when the server cannot be reached', () => {
    expect(exitStatus(() => ({ ok: 1, databases: [{ name: 'admin' }] }))).toBe(1);
    expect(exitStatus(() => { throw new Error('connect ECONNREFUSED 127.0.0.1:27017'); })).toBe(1);
    expect(exitStatus(() => { throw Object.assign(new Error('not primary'), { code: 10107 }); })).toBe(1);
  });
});

test('cdk-nag finds nothing unacknowledged in RestoreTesting with MongoDB sources', () => {
  const { app } = mongoTestingStack(true);
  expect(() => app.synth()).not.toThrow();
});

test('a MongoDB source with its own scratch image uses it as given', () => {
  const image = `registry.example.com/mongo@sha256:${'1'.repeat(64)}`;
  const app = new App();
  const s = new Stack(app, 'S', { env: ENV });
  const store = new BackupStore(s, 'Store');
  const keys = new BackupKeys(s, 'Keys', { replicaRegion: 'eu-central-1', replicaKeyAlias: 'alias/dr-secrets' });
  const monitoring = new BackupMonitoring(s, 'Monitoring', { store });
  const backups = new DatabaseBackups(s, 'DatabaseBackups', { store, keys, monitoring, vpc: sampleVpc(s) });
  const source: BackupSource = backups.addSource({
    name: 'catalog-db', engine: SourceEngine.mongodb('8.0'), secret: sampleSecret(s, 'catalog-db'),
    endpoint: { hostname: 'catalog.example.internal', port: 27017 }, scratchImage: ecs.ContainerImage.fromRegistry(image),
  });
  new RestoreTesting(s, 'RestoreTesting', { backups, store, keys, monitoring, sources: [{ source }] });
  const images = Object.values(Template.fromStack(s).findResources('AWS::ECS::TaskDefinition'))
    .flatMap((r) => r.Properties.ContainerDefinitions as Container[]).filter((c) => c.Name === SCRATCH_CONTAINER).map((c) => c.Image);
  expect(images).toEqual([image]);
});

describe('a MongoDB source\'s checks', () => {
  /** A RestoreTesting of one MongoDB and one PostgreSQL source with these checks, or the error that refuses them. */
  function testing(mongoChecks: RestoreTestCheck[], postgresChecks: RestoreTestCheck[] = []) {
    const s = new Stack(new App(), 'S', { env: ENV });
    const store = new BackupStore(s, 'Store');
    const keys = new BackupKeys(s, 'Keys', { replicaRegion: 'eu-central-1', replicaKeyAlias: 'alias/dr-secrets' });
    const monitoring = new BackupMonitoring(s, 'Monitoring', { store });
    const backups = new DatabaseBackups(s, 'DatabaseBackups', { store, keys, monitoring, vpc: sampleVpc(s) });
    const catalogSource = backups.addSource({
      name: 'catalog-db', engine: SourceEngine.mongodb('7.0'), secret: sampleSecret(s, 'catalog-db'), endpoint: { hostname: 'catalog.example.internal', port: 27017 },
    });
    const orders = backups.addSource(postgresSource(s, 'orders-db'));
    return () => new RestoreTesting(s, 'RestoreTesting', {
      backups, store, keys, monitoring, sources: [{ source: catalogSource, checks: mongoChecks }, { source: orders, checks: postgresChecks }],
    });
  }

  test('given a collection, a filter in Extended JSON, a field and a sort, then the agent is given them as its checks file has them', () => {
    const checks: RestoreTestCheck[] = [
      { name: 'products listed', collection: 'products', filter: { listed: true, price: { $gte: 1 } }, minRows: 100 },
      { name: 'newest price', collection: 'prices', field: 'amount', sort: { updatedAt: -1 }, equals: '9.99' },
      { name: 'prices fresh', collection: 'prices', filter: { updatedAt: { $gte: { $date: '2026-01-01T00:00:00Z' } } }, field: 'updatedAt', maxAge: Duration.hours(6) },
    ];
    const command = restoreTestCommand({ source: catalog, checks }, {
      bucket: 'bucket', prefix: '', identitySecretArn: 'arn:identity', scratch: scratchConnection(DatabaseFlavour.MONGODB), database: SCRATCH_DATABASE,
    });
    expect(JSON.parse(optionOf(command, '--checks-json') as string)).toEqual([
      { name: 'products listed', collection: 'products', filter: { listed: true, price: { $gte: 1 } }, minRows: 100 },
      { name: 'newest price', collection: 'prices', field: 'amount', sort: { updatedAt: -1 }, equals: '9.99' },
      { name: 'prices fresh', collection: 'prices', filter: { updatedAt: { $gte: { $date: '2026-01-01T00:00:00Z' } } }, field: 'updatedAt', maxAgeSeconds: 21600 },
    ]);
    expect(testing(checks)).not.toThrow();
  });

  test.each<[string, RestoreTestCheck, string]>([
    ['an sql query', { name: 'c', sql: 'SELECT 1', minRows: 1 }, "check 'c' has an sql query, and the source is MongoDB: give a collection and a filter instead"],
    ['no collection', { name: 'c', minRows: 1 }, "check 'c' needs the collection it reads"],
    ['a collection with $', { name: 'c', collection: 'a$b', minRows: 1 }, "check 'c' needs the collection it reads (a MongoDB collection name, no $ or NUL, at most 255 bytes)"],
    ['a system collection', { name: 'c', collection: 'system.users', minRows: 1 }, "check 'c' reads system.users, a system collection"],
    ['a filter that is a list', { name: 'c', collection: 'a', filter: [] as unknown as Record<string, unknown>, minRows: 1 }, "check 'c': filter must be a query document"],
    ['maxAge without a field', { name: 'c', collection: 'a', maxAge: Duration.hours(1) }, "check 'c': maxAge needs the time field"],
    ['minRows with a field', { name: 'c', collection: 'a', field: 'x', minRows: 1 }, "check 'c': minRows counts the documents that match the filter"],
    ['a sort without a field', { name: 'c', collection: 'a', sort: { x: 1 }, equals: '1' }, "check 'c': sort chooses the document whose field equals compares"],
    ['two expectations', { name: 'c', collection: 'a', minRows: 1, equals: '1' }, "check 'c' must have exactly one of minRows, equals and maxAge (it has 2)"],
  ])('given %s, then the check is refused in words', (_, check, message) => {
    expect(testing([check])).toThrow(`source 'catalog-db': ${message}`);
  });

  test('given pointInTime, then it is refused: a MongoDB source is dump-only', () => {
    const s = new Stack(new App(), 'S', { env: ENV });
    const store = new BackupStore(s, 'Store');
    const keys = new BackupKeys(s, 'Keys', { replicaRegion: 'eu-central-1', replicaKeyAlias: 'alias/dr-secrets' });
    const monitoring = new BackupMonitoring(s, 'Monitoring', { store });
    const backups = new DatabaseBackups(s, 'DatabaseBackups', { store, keys, monitoring, vpc: sampleVpc(s) });
    const source = backups.addSource({ name: 'catalog-db', engine: SourceEngine.mongodb('7.0'), secret: sampleSecret(s, 'catalog-db') });
    expect(() => new RestoreTesting(s, 'RestoreTesting', { backups, store, keys, monitoring, sources: [{ source, pointInTime: true }] }))
      .toThrow("source 'catalog-db': pointInTime is for sources whose WAL or binlogs are archived, and 'catalog-db' is MongoDB, which is dump-only");
  });

  test('given expectLeftOut, then the namespaces a restore leaves out are passed to the agent as it takes them', () => {
    const command = restoreTestCommand({ source: catalog, expectLeftOut: ['catalog.system.js', 'analytics.*'] }, {
      bucket: 'bucket', prefix: '', identitySecretArn: 'arn:identity', scratch: scratchConnection(DatabaseFlavour.MONGODB), database: SCRATCH_DATABASE,
    });
    expect(optionOf(command, '--expect-left-out')).toBe('catalog.system.js;analytics.*');
  });

  test('given a collection on a PostgreSQL source\'s check, then it is refused: SQL sources give sql', () => {
    expect(testing([], [{ name: 'c', collection: 'orders', minRows: 1 }]))
      .toThrow("source 'orders-db': check 'c' names a collection, which is for MongoDB sources: give an sql query instead");
    expect(testing([], [{ name: 'c', minRows: 1 }])).toThrow("source 'orders-db': check 'c' needs an sql query");
  });
});
