/**
 * The corruption matrix: every way a stored backup goes bad, against every command that reads one, per engine.
 * Each cell damages the emulator's own copy of one backup (a byte changed in the age header, the first, a middle
 * or the last 64 KiB chunk; cut short at a chunk boundary; bytes appended; replaced by another valid backup of
 * the same source; deleted under its manifest; or read with a wrong identity), runs `verify`, `verify
 * --identity-file`, `restore` (streamed), `restore --jobs 2` (spooled) and `restore-test` against it side by
 * side, then puts the original bytes back. Every run must exit 1 (never 0, never 70: a command that stopped
 * before settling), say which s3:// object is wrong and how, print no stack trace and nothing on stdout but
 * restore-test's own failing report, and leave no target half-written without saying so. (verify without an
 * identity cannot tell a wrong identity: it passes there, as it must.)
 *
 * Used by corruption-matrix-postgres.test.ts and corruption-matrix-mariadb.test.ts.
 */
import { randomBytes } from 'node:crypto';
import { CloudWatchClient, GetMetricStatisticsCommand } from '@aws-sdk/client-cloudwatch';
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { METRIC_NAMESPACE, Manifest, Metrics, SOURCE_DIMENSION, restoreTestLatestKey } from '../../lib/contract';
import {
  AgeKey, AgentRun, S3Emulator, agentEnv, appendStored, flipStoredByte, makeAgeKey, motoName, replaceStored,
  runAgent, sharedMoto, startS3rver, truncateStored, uniqueName,
} from '../support';

export interface MatrixEngine {
  readonly label: string;
  /** The --engine of the backups, and the start of the source's name. */
  readonly engine: 'postgres' | 'mariadb';
  readonly server: { readonly host: string; readonly port: number; readonly user: string; readonly password: string };
  readonly passwordVariable: string;
  /** A source database holding a few MB of incompressible rows, so that the object spans many age chunks. */
  createSource(database: string): Promise<void>;
  /** A change between the two backups, so that the second is another valid backup of the same source. */
  changeSource(database: string): Promise<void>;
  dropSource(database: string): Promise<void>;
  createEmpty(database: string): Promise<void>;
  drop(database: string): Promise<void>;
  /** Tables and views in a database. */
  tableCount(database: string): Promise<number>;
  /** Whether a streamed restore that fails leaves its target as it was (pg_restore's single transaction). */
  readonly streamedRollsBack: boolean;
}

/** What a cell and its commands share. */
interface Fixture {
  readonly s3: S3Emulator;
  readonly key: AgeKey;
  readonly source: string;
  /** The backup every cell damages, and another of the same source, taken later. */
  readonly target: string;
  readonly other: string;
  readonly original: Buffer;
}

/** Where age's payload starts (after the header and the 16-byte nonce), and the stored size of a full chunk. */
const CHUNK = 64 * 1024 + 16;
function payloadStart(bytes: Buffer): number {
  const mac = bytes.indexOf('\n--- ');
  if (mac < 0) throw new Error('the stored object has no age header');
  return bytes.indexOf('\n', mac + 1) + 1 + 16;
}

interface Cell {
  readonly name: string;
  /** Damages the stored copy; the original bytes are put back after the cell. */
  readonly damage?: (f: Fixture) => Promise<void> | void;
  readonly wrongIdentity?: boolean;
  /** What the message must say right after naming the object (`s3://bucket/key`). */
  readonly problem: (f: Fixture) => RegExp;
  /** Commands that cannot see this damage, and why: they must pass. */
  readonly passes?: Readonly<Record<string, string>>;
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
const where = (f: Fixture) => `s3://${f.s3.bucket}/${f.target}`;
/** The words for damaged bytes: the SHA-256 against the manifest, or age's own authentication, whichever notices first. */
const DAMAGED = String.raw`(does not match its manifest: read \d+ bytes with SHA-256 [0-9a-f]{64}, the manifest recorded \d+ bytes` +
  String.raw`|is damaged or truncated: age could not authenticate its bytes|could not be decrypted although the identity holds its recipient's key: the object's header is damaged)`;
const damaged = (f: Fixture) => new RegExp(`${escape(where(f))} ${DAMAGED}`);

const CELLS: readonly Cell[] = [
  { name: 'a byte changed in the age header', damage: (f) => flipStoredByte(f.s3, f.target, 30), problem: damaged },
  { name: 'a byte changed in the first chunk', damage: (f) => flipStoredByte(f.s3, f.target, payloadStart(f.original) + 100), problem: damaged },
  {
    name: 'a byte changed in a middle chunk',
    damage: (f) => flipStoredByte(f.s3, f.target, payloadStart(f.original) + Math.floor((f.original.length - payloadStart(f.original)) / CHUNK / 2) * CHUNK + 100),
    problem: damaged,
  },
  { name: 'a byte changed in the last chunk', damage: (f) => flipStoredByte(f.s3, f.target, -1), problem: damaged },
  {
    name: 'cut short at a chunk boundary',
    damage: (f) => truncateStored(f.s3, f.target, payloadStart(f.original) + Math.floor((f.original.length - payloadStart(f.original)) / CHUNK / 2) * CHUNK),
    problem: damaged,
  },
  { name: 'bytes appended', damage: (f) => appendStored(f.s3, f.target, randomBytes(4096)), problem: damaged },
  {
    name: 'replaced by another valid backup of the same source',
    damage: async (f) => replaceStored(f.s3, f.target, await f.s3.getBytes(f.other)),
    problem: (f) => new RegExp(`${escape(where(f))} does not match its manifest: read \\d+ bytes with SHA-256 [0-9a-f]{64}, the manifest recorded ${f.original.length} bytes`),
  },
  {
    name: 'deleted, its manifest kept',
    damage: async (f) => { await f.s3.client.send(new DeleteObjectCommand({ Bucket: f.s3.bucket, Key: f.target })); },
    problem: (f) => new RegExp(`${escape(where(f))} does not exist, though its manifest does: the backup object was deleted or expired`),
  },
  {
    name: 'read with a wrong identity',
    wrongIdentity: true,
    problem: (f) => new RegExp(`the identity does not open ${escape(where(f))} \\(age: no identity matched any of the recipients\\): it was encrypted to another key`),
    passes: { 'verify': 'without an identity, verify decrypts nothing, and the bytes are intact' },
  },
];

interface Command {
  readonly name: string;
  readonly argv: readonly string[];
  readonly identity: boolean;
  /** The database the command writes into, if any. */
  readonly writes?: 'restore' | 'spool' | 'scratch';
}

const COMMANDS: readonly Command[] = [
  { name: 'verify', argv: ['verify'], identity: false },
  { name: 'verify --identity-file', argv: ['verify'], identity: true },
  // The targets are connected to as a superuser: loading as it is said explicitly (what the load runs is not what this tests).
  { name: 'restore', argv: ['restore', '--load-as-connected-user'], identity: true, writes: 'restore' },
  { name: 'restore --jobs 2', argv: ['restore', '--jobs', '2', '--load-as-connected-user'], identity: true, writes: 'spool' },
  { name: 'restore-test', argv: ['restore-test', '--json', '--publish-metrics'], identity: true, writes: 'scratch' },
];

/** The plain-text lines of stderr: the error a person reads, without the JSON log lines. */
const message = (run: AgentRun) => run.stderr.split('\n').filter((l) => l !== '' && !l.startsWith('{')).join('\n');

interface Outcome {
  readonly run: AgentRun;
  /** Tables in the command's target afterwards. */
  readonly tables?: number;
}

export function corruptionMatrix(e: MatrixEngine): void {
  // The metrics go to the shared AWS emulator's default account: the source's name keeps them apart.
  const source = motoName(`matrix-${e.engine}`);
  const sourceDb = uniqueName(`cm_${e.engine}`);
  const targets = { restore: uniqueName(`cm_${e.engine}_restore`), spool: uniqueName(`cm_${e.engine}_spool`), scratch: uniqueName(`cm_${e.engine}_scratch`) };
  let f: Fixture;
  let wrongKey: AgeKey;
  let cloudwatchEndpoint: string;
  let restoreTests = 0;

  const env = () => agentEnv({ ...f.s3.env, [e.passwordVariable]: e.server.password, AWS_ENDPOINT_URL_CLOUDWATCH: cloudwatchEndpoint });
  const connection = (database: string) => ['--host', e.server.host, '--port', String(e.server.port), '--user', e.server.user, '--database', database];

  async function backup(): Promise<string> {
    const run = await runAgent(['backup', '--source', source, '--engine', e.engine, '--bucket', f.s3.bucket, '--recipient', f.key.recipient,
      ...connection(sourceDb), '--json'], env());
    if (run.code !== 0) throw new Error(`the backup the matrix damages failed: ${run.stderr}`);
    const { key, manifestKey } = JSON.parse(run.stdout) as { key: string; manifestKey: string };
    // The matrix is about the backup object: leave its roles companion out, as a backup without one would be.
    const manifest = JSON.parse((await f.s3.getText(manifestKey))!) as Manifest;
    await f.s3.client.send(new PutObjectCommand({ Bucket: f.s3.bucket, Key: manifestKey,
      Body: JSON.stringify({ ...manifest, companions: manifest.companions.filter((c) => c.kind !== 'globals') }) }));
    return key;
  }

  beforeAll(async () => {
    cloudwatchEndpoint = (await sharedMoto()).endpoint;
    const s3 = await startS3rver();
    const key = makeAgeKey();
    wrongKey = makeAgeKey();
    f = { s3, key, source, target: '', other: '', original: Buffer.alloc(0) };
    await e.createSource(sourceDb);
    const target = await backup();
    await e.changeSource(sourceDb);
    await new Promise((resolve) => setTimeout(resolve, 1100 - (Date.now() % 1000))); // keys have one-second resolution
    const other = await backup();
    f = { ...f, target, other, original: await s3.getBytes(target) };
    // Many chunks: the first, a middle and the last are different ones.
    expect(f.original.length).toBeGreaterThan(2 * 1024 * 1024);
    for (const db of Object.values(targets)) await e.createEmpty(db);
  });

  afterAll(async () => {
    for (const db of Object.values(targets)) await e.drop(db);
    await e.dropSource(sourceDb);
    await f?.s3.stop();
  });

  async function run(cell: Cell, command: Command): Promise<Outcome> {
    const identity = command.identity ? ['--identity-file', (cell.wrongIdentity ? wrongKey : f.key).identityFile] : [];
    const into = command.writes ? connection(targets[command.writes]) : [];
    const agentRun = await runAgent([...command.argv, '--source', source, '--bucket', f.s3.bucket, '--key', f.target, ...identity, ...into], env());
    return { run: agentRun, tables: command.writes ? await e.tableCount(targets[command.writes]) : undefined };
  }

  describe.each(CELLS)('$name', (cell) => {
    const commands = COMMANDS.filter((c) => !cell.passes?.[c.name]);
    const passing = COMMANDS.filter((c) => cell.passes?.[c.name]);
    const outcomes = new Map<string, Outcome>();

    beforeAll(async () => {
      // Targets a MariaDB load left tables in are made anew: every cell starts from empty ones.
      for (const db of Object.values(targets)) if (await e.tableCount(db) > 0) await e.createEmpty(db);
      await cell.damage?.(f);
      const runs = await Promise.all([...commands, ...passing].map((c) => run(cell, c)));
      [...commands, ...passing].forEach((c, i) => outcomes.set(c.name, runs[i]));
      restoreTests += commands.filter((c) => c.writes === 'scratch').length;
    });

    afterAll(async () => {
      if (!f?.original.length) return;
      if ((await f.s3.keys(f.target)).includes(f.target)) replaceStored(f.s3, f.target, f.original);
      else await f.s3.client.send(new PutObjectCommand({ Bucket: f.s3.bucket, Key: f.target, Body: f.original }));
    });

    if (passing.length) {
      test.each(passing.map((c) => [c.name, cell.passes![c.name]] as const))('%s passes: %s', (name) => {
        const { run: r } = outcomes.get(name)!;
        expect({ code: r.code, message: message(r), stdout: r.stdout }).toEqual({ code: 0, message: '', stdout: expect.stringContaining(where(f)) });
      });
    }

    test.each(commands.map((c) => [c.name, c] as const))('%s', async (_name, command) => {
      const { run: r, tables } = outcomes.get(command.name)!;
      const problem = cell.problem(f);
      const said = message(r);
      // All at once, so that a failing cell shows everything it did.
      expect({ code: r.code, message: said, stackTrace: /\n\s+at /.test(r.stderr), unexpected: r.stderr.includes('unexpected error') }).toEqual({
        code: 1, message: expect.stringMatching(new RegExp(`^restorable ${command.argv[0]}: [^]*${problem.source}`)), stackTrace: false, unexpected: false,
      });
      if (command.writes !== 'scratch') expect(r.stdout).toBe('');

      if (command.writes === 'restore' || command.writes === 'spool') {
        // Every failed restore says what became of its target: untouched, or not to be trusted.
        expect(said).toMatch(/(Nothing was restored|Found before the target was touched): \S+ is unchanged|did not complete, and the target must not be trusted/);
      }
      if (command.writes === 'restore') {
        if (e.streamedRollsBack) expect(tables).toBe(0);
        // A SQL load is no transaction: what it wrote stays, and the message must say the target cannot be trusted.
        else if (tables! > 0) expect(said).toMatch(/did not complete, and the target must not be trusted: it may hold part of the backup/);
      }
      if (command.writes === 'spool') {
        // The dump is verified on disk before the target is touched.
        expect(tables).toBe(0);
        expect(said).toMatch(/(Nothing was restored|Found before the target was touched): \S+ is unchanged/);
      }
      if (command.writes === 'scratch') {
        const report = JSON.parse(r.stdout);
        expect(report).toMatchObject({ source, success: false, key: f.target, tablesChecked: 0, failures: [expect.stringMatching(new RegExp(`^the restore failed: [^]*${problem.source}`))] });
        // Recorded where the freshness check and `status` read it, and published.
        expect(report.recordingProblems).toBeUndefined();
        expect(JSON.parse((await f.s3.getText(report.reportKey))!)).toEqual(report);
        expect(JSON.parse((await f.s3.getText(restoreTestLatestKey(undefined, source)))!)).toMatchObject({ success: false, reason: report.reason });
        expect(said).toContain(`the restore test of ${source} failed`);
      }
    });
  });

  test('every failed restore test published RestoreTestSuccess = 0', async () => {
    const cloudwatch = new CloudWatchClient({ endpoint: cloudwatchEndpoint, region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
    try {
      const out = await cloudwatch.send(new GetMetricStatisticsCommand({
        Namespace: METRIC_NAMESPACE, MetricName: Metrics.RESTORE_TEST_SUCCESS, Dimensions: [{ Name: SOURCE_DIMENSION, Value: source }],
        StartTime: new Date(Date.now() - 3_600_000), EndTime: new Date(Date.now() + 3_600_000), Period: 7200, Statistics: ['SampleCount', 'Maximum'],
      }));
      const points = out.Datapoints ?? [];
      expect(restoreTests).toBe(CELLS.length);
      expect({ samples: points.reduce((n, p) => n + (p.SampleCount ?? 0), 0), highest: Math.max(...points.map((p) => p.Maximum ?? 0)) })
        .toEqual({ samples: restoreTests, highest: 0 });
    } finally {
      cloudwatch.destroy();
    }
  });
}
