/**
 * The upload's part size and queue: memory stays flat (at most ~128 MiB of part buffers) however large the
 * database, and a database too large for one object with capped parts is refused before anything is dumped.
 * Also: the tests' own guard against running a stale agent bundle.
 */
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentError } from '../../container/src/shared/errors';
import { MAX_PART, MAX_STORED_BYTES, partSizeFor, queueSizeFor } from '../../container/src/backup/upload';
import {
  AgeKey, PG, S3Emulator, agentEnv, createPgDatabase, dropPgDatabase, makeAgeKey, pgQuery, requireAgentBundle, runAgent, startS3rver, uniqueName,
} from '../support';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

describe('part size', () => {
  test('small databases keep the 5 MiB minimum', () => {
    expect(partSizeFor(0)).toBe(5 * MiB);
    expect(partSizeFor(1 * GiB)).toBe(5 * MiB);
    expect(partSizeFor(-1)).toBe(5 * MiB);
  });

  test('grows in whole MiB with the estimate, room for twice it in 8,000 parts', () => {
    expect(partSizeFor(100 * GiB)).toBe(26 * MiB);
    expect(partSizeFor(200 * GiB)).toBe(52 * MiB);
  });

  test('is capped at 64 MiB, however large the estimate that still fits', () => {
    expect(MAX_PART).toBe(64 * MiB);
    expect(partSizeFor(300 * GiB)).toBe(64 * MiB);
    expect(partSizeFor(MAX_STORED_BYTES)).toBe(64 * MiB);
  });

  test('every size keeps the buffers in flight at or under 128 MiB', () => {
    for (const estimate of [0, 10 * GiB, 60 * GiB, 64 * GiB, 65 * GiB, 250 * GiB, 500 * GiB, MAX_STORED_BYTES]) {
      const part = partSizeFor(estimate);
      expect(part * queueSizeFor(part)).toBeLessThanOrEqual(128 * MiB);
    }
    expect(queueSizeFor(5 * MiB)).toBe(4);
    expect(queueSizeFor(16 * MiB)).toBe(4);
    expect(queueSizeFor(17 * MiB)).toBe(2);
    expect(queueSizeFor(64 * MiB)).toBe(2);
  });

  test('an estimate beyond 10,000 capped parts is refused, naming the estimate, the limit and the fix', () => {
    expect(MAX_STORED_BYTES).toBe(10_000 * 64 * MiB);
    const refuse = () => partSizeFor(700 * GiB);
    expect(refuse).toThrow(AgentError);
    expect(refuse).toThrow('the database is estimated at 700 GiB');
    expect(refuse).toThrow('10,000 parts of at most 64 MiB, 625 GiB stored');
    expect(refuse).toThrow('Split the database into several sources');
    expect(refuse).toThrow('--expected-size');
    expect(() => partSizeFor(MAX_STORED_BYTES + 1)).toThrow(AgentError);
  });
});

describe('a backup too large for capped parts', () => {
  const database = uniqueName('part_size_src');
  let s3: S3Emulator;
  let key: AgeKey;
  beforeAll(async () => {
    s3 = await startS3rver();
    key = makeAgeKey();
    await createPgDatabase(database);
    await pgQuery(database, 'CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 10)');
  });
  afterAll(async () => {
    await dropPgDatabase(database);
    await s3?.stop();
  });

  test('is refused before anything is dumped or stored, with the estimate, the limit and the fix', async () => {
    const run = await runAgent(['backup', '--source', 'huge', '--engine', 'postgres', '--bucket', s3.bucket, '--recipient', key.recipient,
      '--host', PG.host, '--port', String(PG.port), '--user', PG.user, '--database', database, '--expected-size', '700G'],
    agentEnv({ ...s3.env, PGPASSWORD: PG.password }));
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('the database is estimated at 700 GiB');
    expect(run.stderr).toContain('Split the database into several sources');
    expect(run.stderr).not.toContain('unexpected error');
    expect(run.stderr).not.toContain('backup started');
    expect(await s3.keys()).toEqual([]);
  });
});

describe('the agent bundle the tests run', () => {
  let dir: string;
  let bundle: string;
  let source: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'bundle-guard-'));
    source = join(dir, 'src');
    mkdirSync(join(source, 'commands'), { recursive: true });
    writeFileSync(join(source, 'cli.ts'), '');
    writeFileSync(join(source, 'commands', 'backup.ts'), '');
    bundle = join(dir, 'restorable.cjs');
    writeFileSync(bundle, '');
    const old = new Date(Date.now() - 60_000);
    utimesSync(join(source, 'cli.ts'), old, old);
    utimesSync(join(source, 'commands', 'backup.ts'), old, old);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('is accepted when it is newer than every source file', () => {
    expect(requireAgentBundle(bundle, [source])).toBe(bundle);
  });

  test('is refused, with the fix, when a source file changed after it was built', () => {
    const later = new Date(Date.now() + 60_000);
    utimesSync(join(source, 'commands', 'backup.ts'), later, later);
    expect(() => requireAgentBundle(bundle, [source])).toThrow(/is older than .*backup\.ts: it is stale, run 'npm run bundle'/);
  });

  test('is refused when missing', () => {
    rmSync(bundle);
    expect(() => requireAgentBundle(bundle, [source])).toThrow(/is missing: run 'npm run bundle'/);
  });
});
