/**
 * A scratch server has none of the source's roles, while the dump's owners and grants name them. The restore
 * test applies the roles the backup captured before loading it: here the owning role is dropped after the
 * backup (roles are cluster-wide, so that is how a fresh server looks), and the restore test still passes.
 */
import {
  AgeKey, PG, S3Emulator, agentEnv, createPgDatabase, dropPgDatabase, makeAgeKey, pgQuery, runAgent, startS3rver, uniqueName,
} from '../support';

const source = 'rt-roles';
const database = uniqueName('rt_roles_src');
const scratch = uniqueName('rt_roles_scratch');
const owner = uniqueName('rt_owner');
let s3: S3Emulator;
let key: AgeKey;

const env = () => agentEnv({ ...s3.env, PGPASSWORD: PG.password });
const connection = ['--host', PG.host, '--port', String(PG.port), '--user', PG.user];

beforeAll(async () => {
  s3 = await startS3rver();
  key = makeAgeKey();
  await pgQuery('postgres', `DROP ROLE IF EXISTS ${owner}; CREATE ROLE ${owner} NOLOGIN`);
  await createPgDatabase(database);
  await pgQuery(database, `CREATE TABLE ledger (id int PRIMARY KEY, amount numeric); ALTER TABLE ledger OWNER TO ${owner};
    INSERT INTO ledger SELECT g, g * 1.5 FROM generate_series(1, 500) g;`);
});

afterAll(async () => {
  await dropPgDatabase(database);
  await dropPgDatabase(scratch);
  await pgQuery('postgres', `DROP ROLE IF EXISTS ${owner}`);
  await s3?.stop();
});

test('the owning role is missing on the scratch server: the backup\'s roles are applied first, and the test passes', async () => {
  const backup = await runAgent(['backup', '--source', source, '--engine', 'postgres', '--bucket', s3.bucket, '--recipient', key.recipient,
    ...connection, '--database', database, '--json'], env());
  expect(backup.code).toBe(0);
  await dropPgDatabase(database);
  await pgQuery('postgres', `DROP ROLE ${owner}`);
  await createPgDatabase(scratch);

  const run = await runAgent(['restore-test', '--source', source, '--bucket', s3.bucket, '--identity-file', key.identityFile,
    ...connection, '--database', scratch, '--json'], env());
  expect(run.stderr).not.toContain('restorable restore-test:');
  expect(run.code).toBe(0);
  expect(JSON.parse(run.stdout)).toMatchObject({ success: true, tables: [{ table: 'public.ledger', expected: 500, actual: 500, passed: true }] });
  // The role came back; a restore test restores no owners (the objects are loaded by a role without superuser rights),
  // and says so, as a note that does not fail it.
  expect(await pgQuery('postgres', 'SELECT rolname FROM pg_roles WHERE rolname = $1', [owner])).toEqual([{ rolname: owner }]);
  expect(JSON.parse(run.stdout).refused).toContainEqual({ what: expect.stringMatching(new RegExp(`^ownership by ${owner} \\(\\d+ entries\\)$`)), why: expect.stringMatching(/^a restore test restores no owners: the objects are restored owned by restorable_load_[0-9a-f]{12}$/),
    expected: true, from: 'dump' });
});
