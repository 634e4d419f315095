/**
 * `restorable status` of a MongoDB source, after a real backup of the services' FerretDB and a real restore test into
 * a scratch database on it: the newest archive, its age, and the measured restore time, as for the SQL engines.
 */
import {
  MONGO, S3Emulator, agentEnv, createMongoFixture, dropMongoDatabase, makeAgeKey, mongoToolsPath, requireAgentBundle, runAgent, startS3rver,
  uniqueName,
} from '../support';

jest.setTimeout(120_000);

const PREFIX = 'prod/';
const SOURCE = 'catalog-db';
const database = uniqueName('status_mongo');
const scratch = uniqueName('status_mongo_scratch');
let s3: S3Emulator;

const login = ['--host', MONGO.host, '--port', String(MONGO.port), '--user', MONGO.user, '--auth-source', MONGO.authSource, '--auth-mechanism', MONGO.authMechanism];
const env = () => agentEnv({ ...s3.env, MONGODB_PASSWORD: MONGO.password, PATH: mongoToolsPath() });

beforeAll(async () => {
  requireAgentBundle();
  s3 = await startS3rver('status-mongo');
  await createMongoFixture(database, 200);
  const key = makeAgeKey();
  const backup = await runAgent(['backup', '--source', SOURCE, '--engine', 'mongodb', '--bucket', s3.bucket, '--prefix', PREFIX,
    '--recipient', key.recipient, ...login, '--database', database, '--json'], env());
  expect({ code: backup.code, stderr: backup.code === 0 ? '' : backup.stderr }).toEqual({ code: 0, stderr: '' });
  const test = await runAgent(['restore-test', '--source', SOURCE, '--bucket', s3.bucket, '--prefix', PREFIX, '--identity-file', key.identityFile,
    ...login, '--database', scratch, '--json'], env());
  expect({ code: test.code, success: JSON.parse(test.stdout).success }).toEqual({ code: 0, success: true });
});

afterAll(async () => {
  for (const name of [database, scratch]) await dropMongoDatabase(name);
  await s3?.stop();
});

test('a tested MongoDB source is ready: its newest archive, the data at risk and the measured restore time', async () => {
  const run = await runAgent(['status', '--bucket', s3.bucket, '--prefix', PREFIX, '--json'], agentEnv(s3.env));
  expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
  const [catalog] = JSON.parse(run.stdout).sources;
  expect(catalog).toMatchObject({ source: SOURCE, readiness: 'ready', lastRestoreTest: { success: true } });
  expect(catalog.newestBackup.key).toMatch(/^prod\/catalog-db\/\d{4}\/\d{2}\/\d{2}\/catalog-db_.*\.archive\.zst\.age$/);
  expect(catalog.newestBackup.ageSeconds).toBeLessThan(300);
  expect(catalog.summary).toMatch(/^catalog-db: back online in about \d+ seconds?, with data from \d+ (second|minute)s? ago \(restore test passed/);
});
