/**
 * A MongoDB backup, end to end: the bundled agent against the services' FerretDB (a MongoDB-wire server) with the real
 * mongodump 100.10.0, into the S3 emulator; then a restore with standard tools only (age, zstd, mongorestore
 * --archive --nsFrom/--nsTo) into another database, compared document by document and index by index.
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Engine, Manifest, Tier } from '../../lib/contract';
import { BACKUP_COMMAND } from '../../container/src/commands/backup';
import { mongoToolFlags } from '../../container/src/engines/mongodb';
import { parseCommandArgs } from '../../container/src/shared/args';
import { resolveConnection } from '../../container/src/shared/connection';
import {
  AgeKey, MONGO, MONGO_TOOLS_DIR, S3Emulator, agentEnv, createMongoFixture, download, dropMongoDatabase, makeAgeKey, mongoDocuments,
  mongoFixtureCounts, mongoIndexes, mongoToolArgs, mongoToolsPath, prependPath, runAgent, sh, startS3rver, uniqueName,
} from '../support';

const source = 'shop-mongo';
const customers = 2000;
let s3: S3Emulator;
let key: AgeKey;
const database = uniqueName('bk_mongo');
const restored = uniqueName('bk_mongo_std');
const agentTmp = mkdtempSync(join(tmpdir(), 'restorable-backup-mongo-test-'));
const spy = mkdtempSync(join(tmpdir(), 'restorable-mongodump-spy-'));

beforeAll(async () => {
  s3 = await startS3rver();
  key = makeAgeKey();
  await createMongoFixture(database, customers);
}, 120_000);

afterAll(async () => {
  await dropMongoDatabase(database).catch(() => undefined);
  await dropMongoDatabase(restored).catch(() => undefined);
  await s3?.stop();
  rmSync(agentTmp, { recursive: true, force: true });
  rmSync(spy, { recursive: true, force: true });
});

/** A mongodump first on PATH that records its argv, its environment and its --config file, then runs the real one. */
function spyingMongodump(): string {
  const dir = join(spy, 'bin');
  sh(`mkdir -p '${dir}'`);
  writeFileSync(join(dir, 'mongodump'), `#!/bin/bash
printf '%s\\n' "$@" > '${spy}/argv'
env > '${spy}/env'
for a in "$@"; do case "$a" in --config=*) f="\${a#--config=}"; stat -c '%a' "$f" > '${spy}/config-mode'; cp "$f" '${spy}/config';; esac; done
exec '${join(MONGO_TOOLS_DIR, 'mongodump')}' "$@"
`);
  chmodSync(join(dir, 'mongodump'), 0o755);
  return dir;
}

test('backs up a MongoDB database; standard tools restore it under another name, document by document', async () => {
  const run = await runAgent(['backup', '--source', source, '--engine', 'mongodb', '--bucket', s3.bucket, '--recipient-file', key.recipientFile,
    '--host', MONGO.host, '--port', String(MONGO.port), '--user', MONGO.user, '--auth-source', MONGO.authSource,
    '--auth-mechanism', MONGO.authMechanism, '--database', database, '--json'],
  agentEnv({ ...s3.env, MONGODB_PASSWORD: MONGO.password, TMPDIR: agentTmp, PATH: prependPath(spyingMongodump(), mongoToolsPath()) }));
  expect(run.stderr).not.toContain('restorable backup:');
  expect(run.code).toBe(0);
  const result = JSON.parse(run.stdout);
  expect(result.key).toMatch(new RegExp(`^${source}/.*/${source}_[-0-9_]+Z\\.archive\\.zst\\.age$`));
  expect(result.tier).toBe(Tier.MONTHLY);

  // The password: never in argv, the environment of mongodump or the logs; in a 0600 --config file, gone afterwards.
  const argv = readFileSync(join(spy, 'argv'), 'utf8');
  // The services' login has its user name as password: only --username and paths (restorable-…) may hold those letters.
  expect(argv.split('\n').filter((a) => a !== `--username=${MONGO.user}` && !a.startsWith('--config=')).join('\n')).not.toContain(MONGO.password);
  expect(argv).not.toMatch(/--password|-p\b/);
  expect(argv).toContain(`--db=${database}`);
  expect(argv).toContain('--archive');
  expect(argv).not.toContain('--gzip');
  expect(readFileSync(join(spy, 'env'), 'utf8')).not.toMatch(/MONGODB_PASSWORD/);
  expect(readFileSync(join(spy, 'config'), 'utf8')).toBe(`password: "${MONGO.password}"\n`);
  expect(readFileSync(join(spy, 'config-mode'), 'utf8').trim()).toBe('600');
  const configArg = argv.split('\n').find((a) => a.startsWith('--config='))!.slice('--config='.length);
  expect(existsSync(configArg)).toBe(false);
  expect(readdirSync(agentTmp).filter((n) => n.startsWith('restorable-mongo-'))).toEqual([]);
  expect(run.stderr.replaceAll(`"${MONGO.user}@`, '').replaceAll(`${MONGO.user}@`, '')).not.toMatch(/password|restorable:/i);

  const manifest = JSON.parse((await s3.getText(result.manifestKey))!) as Manifest;
  expect(manifest).toMatchObject({ engine: 'mongodb', format: 'archive', database });
  expect(manifest.toolVersions.mongodump).toMatch(/\b100\.10\.0\b/);
  expect(manifest.serverVersion).toMatch(/^MongoDB \d+\.\d+/);
  const expected = mongoFixtureCounts(customers);
  expect(Object.fromEntries(manifest.tables.map((t) => [t.table, t.rows]))).toEqual(expected);
  expect(manifest.tables.every((t) => t.schema === database)).toBe(true);
  expect(result.rows).toBe(Object.values(expected).reduce((a, b) => a + b, 0));
  // A per-database dump is no snapshot: the manifest says so.
  expect(manifest.warnings.join('\n')).toMatch(/--oplog/);
  // FerretDB has no usersInfo: the server's words are kept as the reason, and there is no companion.
  expect(manifest.globals.captured).toBe(false);
  expect(manifest.globals.reason).toMatch(/cannot read the users and roles of \S+ \(usersInfo, rolesInfo\): .*no such command/i);
  expect(manifest.companions).toEqual([]);
  expect(manifest.dumpSize).toBeGreaterThan(100_000);

  // Standard tools only: age, zstd and mongorestore, with the password in mongorestore's own --config file.
  const file = await download(s3, result.key);
  const config = join(spy, 'restore.yaml');
  writeFileSync(config, `password: ${MONGO.password}\n`, { mode: 0o600 });
  const tool = [join(MONGO_TOOLS_DIR, 'mongorestore'), ...mongoToolArgs(), `--config=${config}`, '--archive',
    `--nsFrom=${database}.*`, `--nsTo=${restored}.*`, '--stopOnError'].map((a) => `'${a}'`).join(' ');
  sh(`age -d -i '${key.identityFile}' '${file}' | zstd -d | ${tool}`);
  expect(statSync(file).size).toBe(manifest.size);

  const [original, copy] = [await mongoDocuments(database), await mongoDocuments(restored)];
  expect(Object.keys(copy).sort()).toEqual(Object.keys(original).sort());
  for (const name of Object.keys(original)) {
    expect(copy[name].length).toBe(expected[name]);
    expect(copy[name]).toEqual(original[name]);
  }
  expect(await mongoIndexes(restored)).toEqual(await mongoIndexes(database));
}, 300_000);

test('connection options: flags, then the secret\'s fields, then MONGODB_* variables; TLS and the auth mechanism reach the tools', async () => {
  const base = ['--source', 's', '--engine', 'mongodb', '--bucket', 'b', '--recipient', 'age1x', '--user', 'app', '--database', 'shop'];
  const resolve = (extra: string[], env: NodeJS.ProcessEnv = {}) => resolveConnection(Engine.MONGODB, parseCommandArgs(BACKUP_COMMAND, [...base, ...extra]), env);
  // MongoDB's own users: admin, SCRAM negotiated, no TLS.
  const plain = await resolve([], { MONGODB_PASSWORD: 'pw' });
  expect(plain.mongo).toEqual({ authSource: 'admin', tls: false });
  expect(mongoToolFlags(plain)).toEqual(['--host=localhost', '--port=27017', '--username=app', '--authenticationDatabase=admin']);
  // No password, no login: given --username alone, mongorestore would read a password from its stdin, the archive.
  expect(mongoToolFlags(await resolve([]), '/tmp/x/tools.yaml')).toEqual(['--host=localhost', '--port=27017']);
  // DocumentDB: TLS with its CA bundle, from the variables a task definition sets.
  const docdb = await resolve([], { MONGODB_PASSWORD: 'pw', MONGODB_TLS: 'true', MONGODB_TLS_CA_FILE: '/etc/ssl/global-bundle.pem' });
  expect(mongoToolFlags(docdb, '/tmp/x/tools.yaml')).toEqual(['--host=localhost', '--port=27017', '--username=app', '--authenticationDatabase=admin',
    '--config=/tmp/x/tools.yaml', '--ssl', '--sslCAFile=/etc/ssl/global-bundle.pem']);
  // LDAP / FerretDB: PLAIN against $external; flags win over the variables.
  const ldap = await resolve(['--auth-source', '$external', '--auth-mechanism', 'plain'], { MONGODB_AUTH_SOURCE: 'admin', MONGODB_AUTH_MECHANISM: 'SCRAM-SHA-1' });
  expect(ldap.mongo).toEqual({ authSource: '$external', authMechanism: 'PLAIN', tls: false });
  // PLAIN sends the password as it is: beyond loopback only with TLS.
  await expect(resolve(['--host', 'ldap-db.internal', '--auth-mechanism', 'PLAIN']))
    .rejects.toThrow('--auth-mechanism PLAIN sends the password as it is: add --tls (or "tls": true in the secret, MONGODB_TLS=true) to reach ldap-db.internal');
  expect((await resolve(['--host', 'ldap-db.internal', '--auth-mechanism', 'PLAIN', '--tls'])).mongo).toMatchObject({ authMechanism: 'PLAIN', tls: true });
  // A connection string where a host belongs is refused before anything runs, its user and password not repeated.
  for (const host of ['mongodb+srv://app:Hunter2Secret@cluster0.abcde.mongodb.net', 'app:Hunter2Secret@db.internal', 'db.internal/shop?tls=true']) {
    const refused = resolve(['--host', host]);
    await expect(refused).rejects.toThrow(/is a connection string, not a host name: give the host alone/);
    await expect(refused).rejects.not.toThrow(/Hunter2Secret|app:/);
  }
  await expect(resolve(['--auth-mechanism', 'GSSAPI'])).rejects.toThrow(/--auth-mechanism must be one of SCRAM-SHA-256, SCRAM-SHA-1, PLAIN \(got 'GSSAPI'\)/);
  // Other engines carry no MongoDB options.
  expect((await resolveConnection(Engine.POSTGRES, parseCommandArgs(BACKUP_COMMAND, base), {})).mongo).toBeUndefined();
});
