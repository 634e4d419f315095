/** A server newer than pg_dump: the agent says exactly that, and how to fix it, before anything is stored. */
import { Client } from 'pg';
import { AgeKey, EmbeddedPostgres, S3Emulator, agentEnv, makeAgeKey, runAgent, startEmbeddedPostgres, startS3rver, sh } from '../support';

let s3: S3Emulator;
let key: AgeKey;
let server: EmbeddedPostgres;

beforeAll(async () => {
  s3 = await startS3rver();
  key = makeAgeKey();
  server = await startEmbeddedPostgres();
  const client = new Client({ host: '127.0.0.1', port: server.port, user: server.user, database: 'postgres' });
  await client.connect();
  await client.query('CREATE DATABASE app');
  await client.end();
  const app = new Client({ host: '127.0.0.1', port: server.port, user: server.user, database: 'app' });
  await app.connect();
  await app.query('CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 10)');
  await app.end();
}, 60_000);

afterAll(async () => {
  server?.stop();
  await s3?.stop();
});

test('pg_dump older than the server fails with the versions and the fix', async () => {
  const dumpMajor = sh('pg_dump --version').match(/(\d+)\./)![1];
  const run = await runAgent(['backup', '--source', 'newer', '--engine', 'postgres', '--bucket', s3.bucket, '--recipient', key.recipient,
    '--host', '127.0.0.1', '--port', String(server.port), '--user', server.user, '--database', 'app'], agentEnv(s3.env));
  expect(run.code).toBe(1);
  expect(run.stderr).toMatch(new RegExp(`pg_dump is older than the server: pg_dump \\(PostgreSQL\\) ${dumpMajor}\\.\\d+.* cannot dump PostgreSQL 17\\.`));
  expect(run.stderr).toContain('Install the PostgreSQL 17 client tools (Debian/Ubuntu: apt-get install postgresql-client-17');
  expect(run.stderr).not.toMatch(/^\s+at /m);
  expect(await s3.keys()).toEqual([]);
});
