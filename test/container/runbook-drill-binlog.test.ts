/**
 * The runbook's binlog point-in-time recovery, drilled with standard tools only: a database on the services' binlog
 * server (MariaDB 10.11, ROW format) commits ticks, the agent dumps it with binlog coordinates, the server's binlogs are
 * stored as the streamer stores them, and the runbook of a binlog-streamed source is stored in the bucket and printed
 * back by `restorable runbook`. Its scene and binlog blocks are taken FROM THAT TEXT, moto's endpoint put into the aws
 * commands, and run in bash with Debian's aws CLI v2, jq, sha256sum, age, zstd, mariadb-binlog and mariadb into the
 * services' other MariaDB: the restored database holds every tick whose second is at or before the target and none
 * after, and an index that disagrees with its file's events is refused.
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CopyObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import {
  BinlogIndex, Engine, Manifest, RunbookPath, RunbookVia, binlogIndexKey, binlogScript, renderRunbook, runbookBlocks, runbookKey,
} from '../../lib/contract';
import { AgeKey, MYSQL, MotoBucket, agentEnv, dropMysqlDatabase, makeAgeKey, motoBucket, mysqlExec, requireAgentBundle, uniqueName } from '../support';
import { Moto, motoName, sharedMoto } from '../support/moto';
import { BINLOG_MARIADB, mariadbExec } from '../support/mariadb-binlog-server';
import {
  BinlogTick, StoredStream, commitTicks, createTickDatabase, dumpWithCoordinates, storeServerBinlogs, targetAmongTicks, ticksOf,
} from './runbook-drill-binlog-source';

// Each run of the scripts starts the aws CLI some fifteen times: minutes on a loaded machine.
jest.setTimeout(360_000);

const SOURCE = 'shop-binlog';
const PREFIX = 'prod/';
const REGION = 'us-east-1';
/** Debian's aws CLI v2 (the awscli package) and the base system's tools, MariaDB's client among them. */
const TOOLS_PATH = '/usr/bin:/bin';

const database = uniqueName('binlog_drill');
const restored: string[] = [];
let moto: Moto;
let s3: MotoBucket;
let key: AgeKey;
let identityArn: string;
let manifest: Manifest;
let stored: StoredStream;
/** Every tick, in commit order. */
let ticks: BinlogTick[] = [];
/** The agent, copied once its bundle was checked (other work may touch the sources meanwhile). */
let agent: string;
/** The drill to latest, started beside the one to a time: each spends most of its time starting the aws CLI. */
let latestRun: Promise<DrillRun> | undefined;
const latestInto = uniqueName('binlog_latest');
/** The ticks the dump holds, and where those committed after the binlog file was switched begin. */
const DUMPED = 6;
const AFTER_FLUSH = 16;

const facts = (source: string) => ({
  source, engine: Engine.MYSQL, prefix: PREFIX, primary: { bucket: s3.bucket, region: REGION }, identitySecretArn: identityArn, binlogStreamed: true,
});

/** The runbook as a person gets it: stored in the bucket, printed by `restorable runbook` (the copy of the agent this file took). */
async function printedRunbook(source = SOURCE): Promise<string> {
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: runbookKey(PREFIX, source), Body: renderRunbook(facts(source)) }));
  const run = spawnSync(process.execPath, [agent, 'runbook', '--source', source, '--bucket', s3.bucket, '--prefix', PREFIX], { env: agentEnv(s3.env), encoding: 'utf8' });
  expect({ code: run.status, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
  return run.stdout;
}

interface DrillRun { readonly status: number | null; readonly stdout: string; readonly stderr: string; readonly left: string[] }

/**
 * The printed runbook's scene and binlog blocks (those `steps` matches), moto's endpoint put into the aws commands, run
 * in bash in a directory of their own; `prepare` may put files into its work directory first.
 */
async function drill(target: string, into: string, options: { source?: string; steps?: RegExp; prepare?: (work: string) => void } = {}): Promise<DrillRun> {
  const runbook = await printedRunbook(options.source);
  const script = (options.steps ? runbookBlocks(runbook).filter((b) => b.via === RunbookVia.STANDARD && options.steps!.test(b.step)).map((b) => b.code).join('\n')
    : binlogScript(runbook, RunbookPath.PRIMARY)).replace(/\baws (s3|s3api|secretsmanager) /g, `aws --endpoint-url ${moto.endpoint} $1 `);
  const work = mkdtempSync(join(tmpdir(), 'restorable-binlog-drill-'));
  options.prepare?.(work);
  restored.push(into);
  const env = {
    PATH: TOOLS_PATH, HOME: work, AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing', AWS_PAGER: '', AWS_MAX_ATTEMPTS: '2',
    AWS_CONFIG_FILE: join(work, 'no-config'), AWS_SHARED_CREDENTIALS_FILE: join(work, 'no-credentials'),
    AWS_REQUEST_CHECKSUM_CALCULATION: 'when_required', AWS_RESPONSE_CHECKSUM_VALIDATION: 'when_required',
    TARGET_HOST: MYSQL.host, TARGET_PORT: String(MYSQL.port), TARGET_USER: MYSQL.user, MYSQL_PWD: MYSQL.password, TARGET_DATABASE: into,
    BINLOG_TARGET_TIME: target,
  };
  try {
    return await new Promise<DrillRun>((resolve, reject) => {
      const child = spawn('bash', ['--noprofile', '--norc', '-euo', 'pipefail', '-c', script], { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
      child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
      child.on('error', reject);
      child.on('close', (status) => resolve({ status, stdout, stderr, left: readdirSync(join(work, 'restore-work')) }));
    });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const restoredTicks = (into: string) => mysqlExec(into, 'SELECT id FROM ticks WHERE note = \'tick\' ORDER BY id').map(([id]) => Number(id));

beforeAll(async () => {
  agent = join(mkdtempSync(join(tmpdir(), 'restorable-binlog-agent-')), 'restorable.cjs');
  copyFileSync(requireAgentBundle(), agent);
  moto = await sharedMoto();
  s3 = await motoBucket({ versioned: true });
  key = makeAgeKey();
  const secrets = new SecretsManagerClient(moto.config(REGION));
  try {
    identityArn = (await secrets.send(new CreateSecretCommand({ Name: motoName('restorable/binlog-identity'), SecretString: readFileSync(key.identityFile, 'utf8') }))).ARN!;
  } finally {
    secrets.destroy();
  }
  createTickDatabase(database, 300);
  await commitTicks(database, DUMPED, 150);
  manifest = await dumpWithCoordinates(s3, key, SOURCE, PREFIX, database);
  await commitTicks(database, AFTER_FLUSH - DUMPED, 220);
  // The dump's file is closed and the ticks go on in the next: replay crosses files.
  mariadbExec(BINLOG_MARIADB, undefined, 'FLUSH BINARY LOGS');
  ticks = await commitTicks(database, 10, 220);
  stored = await storeServerBinlogs(s3, key, SOURCE, PREFIX, manifest.binlog!.file);
});

afterAll(async () => {
  await latestRun;
  for (const name of [database, ...restored]) {
    try {
      if (name === database) mariadbExec(BINLOG_MARIADB, undefined, `DROP DATABASE IF EXISTS \`${name}\``);
      else dropMysqlDatabase(name);
    } catch {
      // already gone
    }
  }
  await s3?.stop();
  if (agent) rmSync(join(agent, '..'), { recursive: true, force: true });
});

test('the runbook of a binlog-streamed source has a binlog section, the agent\'s restore --to and the standard tools\' blocks; others have none', async () => {
  const blocks = runbookBlocks(await printedRunbook());
  expect(blocks.filter((b) => b.step.startsWith('binlog')).map((b) => `${b.step}:${b.via}`))
    .toEqual(['binlog1:restorable', 'binlog1:standard', 'binlog2:standard', 'binlog3:standard', 'binlog4:standard', 'binlog5:standard']);
  expect(blocks.find((b) => b.step === 'binlog1' && b.via === RunbookVia.RESTORABLE)!.code).toMatch(/^restorable restore .*--to "\$BINLOG_TARGET_TIME" /m);
  const plain = renderRunbook({ ...facts(SOURCE), binlogStreamed: undefined });
  expect(runbookBlocks(plain).filter((b) => b.step.startsWith('binlog'))).toEqual([]);
  expect(plain).not.toContain('BINLOG_TARGET_TIME');
  expect(() => renderRunbook({ ...facts('ledger'), engine: Engine.POSTGRES })).toThrow('binlogStreamed is for MariaDB sources, and this one is postgres');
});

test('standard tools restore the dump and replay the binlogs to a second in the middle: every tick of that second or before is there, none after', async () => {
  const { target, kept } = targetAmongTicks(ticks, AFTER_FLUSH);
  expect(kept.length).toBeGreaterThan(AFTER_FLUSH);
  expect(kept.length).toBeLessThan(ticks.length);
  const into = uniqueName('binlog_at');

  latestRun = drill('latest', latestInto);
  const run = await drill(target.toISOString(), into);

  expect({ status: run.status, stderr: run.status === 0 ? '' : run.stderr.slice(-4000) }).toEqual({ status: 0, stderr: '' });
  expect(restoredTicks(into)).toEqual(kept);
  expect(mysqlExec(into, 'SELECT count(*) FROM ticks WHERE note <> \'tick\'')).toEqual([['300']]);
  // The dump's file and at least the one after it, switched to mid-way.
  expect(Number(/(\d+) binlog files fetched and verified/.exec(run.stdout)?.[1])).toBeGreaterThanOrEqual(2);
  const lastKept = ticks.find((t) => t.id === kept[kept.length - 1])!;
  expect(run.stdout).toMatch(new RegExp(`last transaction: \\S+ \\d+ 0-1-\\d+ ${new Date(lastKept.at * 1000).toISOString().replace('.000', '')}`));
  // Nothing decrypted or secret is left behind: the identity, the dump and the binlogs are gone.
  expect(run.left.filter((f) => /identity|\.age$|dump\.sql|binlog-restore/.test(f))).toEqual([]);
});

test('to latest, every tick streamed is replayed, up to the end of the partial of the file the server is writing', async () => {
  const run = await (latestRun ?? drill('latest', latestInto));
  expect({ status: run.status, stderr: run.status === 0 ? '' : run.stderr.slice(-4000) }).toEqual({ status: 0, stderr: '' });
  expect(restoredTicks(latestInto)).toEqual(ticksOf(database).map((t) => t.id));
  expect(stored.objects[stored.objects.length - 1].key).toMatch(/\.partial\.[0-9A-F]{12}\.zst\.age$/);
});

/** The stored objects, stream and dump copied under another source, each index replaced by `forge` of it. */
async function copiedWithForgedIndex(source: string, forge: (index: BinlogIndex) => BinlogIndex): Promise<void> {
  for (const { key: objectKey, index } of stored.objects) {
    const to = objectKey.replace(`${PREFIX}${SOURCE}/`, `${PREFIX}${source}/`);
    await s3.client.send(new CopyObjectCommand({ Bucket: s3.bucket, Key: to, CopySource: `${s3.bucket}/${objectKey}` }));
    const copy = { ...index, source, key: to };
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: binlogIndexKey(to), Body: JSON.stringify(forge(copy)) }));
  }
  const stream = `${PREFIX}${SOURCE}/binlog/${stored.stream}/stream.json`;
  await s3.client.send(new CopyObjectCommand({ Bucket: s3.bucket, Key: stream.replace(`/${SOURCE}/`, `/${source}/`), CopySource: `${s3.bucket}/${stream}` }));
  for (const k of [manifest.key, `${manifest.key}.manifest.json`]) {
    await s3.client.send(new CopyObjectCommand({ Bucket: s3.bucket, Key: k.replace(`${PREFIX}${SOURCE}/`, `${PREFIX}${source}/`), CopySource: `${s3.bucket}/${k}` }));
  }
}

test('an index whose marks let replay run past the target is refused before anything is replayed', async () => {
  const { target } = targetAmongTicks(ticks, AFTER_FLUSH);
  const source = 'shop-binlog-forged';
  // The streamer claims the files hold nothing after the target: replay would run to the end of the stream.
  await copiedWithForgedIndex(source, (index) => ({ ...index, marks: index.marks.filter(([time]) => time <= Math.floor(target.getTime() / 1000)) }));
  // The dump's restore (binlog2) is left out: the identity is put where it would have fetched it.
  const run = await drill(target.toISOString(), uniqueName('binlog_forged'), {
    source, steps: /^(0|binlog[134])$/,
    prepare: (work) => {
      mkdirSync(join(work, 'restore-work'), { mode: 0o700 });
      copyFileSync(key.identityFile, join(work, 'restore-work', 'identity.txt'));
    },
  });
  expect(run.status).not.toBe(0);
  expect(run.stderr).toMatch(/its index says replay stops at -, its events at \d+: refused \(the index was not built from this file\)/);
  expect(run.stdout).not.toMatch(/binlog files fetched and verified/);
});
