/**
 * `npm run drill`: the whole idea in a minute, on your machine. For a PostgreSQL and a MariaDB database, it
 * makes a sample database, backs it up with the agent into a local S3 emulator (encrypted to a fresh age key),
 * then restore-tests it into an empty scratch database, and prints what a person wants to know: the backup's
 * size and time, the restore time, the data's age, the tables and rows checked, and pass or fail.
 *
 * Needs the local servers of `npm run services` (PostgreSQL and MariaDB on 127.0.0.1, login restorable /
 * restorable; PG* and MYSQL_* variables override), and age, zstd, pg_dump and mysqldump on PATH.
 * Everything it creates is removed at the end. Exit code 0 only if both restore tests passed.
 */
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';

const ROOT = join(__dirname, '..');
const AGENT = join(ROOT, 'assets/agent/restorable.cjs');
const BUCKET = 'drill';
const PG = { host: process.env.PGHOST ?? '127.0.0.1', port: Number(process.env.PGPORT ?? 5432), user: process.env.PGUSER ?? 'restorable', password: process.env.PGPASSWORD ?? 'restorable' };
const MY = { host: process.env.MYSQL_HOST ?? '127.0.0.1', port: Number(process.env.MYSQL_TCP_PORT ?? 3306), user: process.env.MYSQL_USER ?? 'restorable', password: process.env.MYSQL_PWD ?? 'restorable' };
const ROWS = 20_000;

class DrillError extends Error {}

interface Engine {
  readonly label: string;
  readonly engine: string;
  readonly server: typeof PG;
  readonly passwordVariable: string;
  create(db: string, withData: boolean): Promise<void>;
  drop(db: string): Promise<void>;
  readonly checks: object[];
}

async function pg(database: string, sql: string): Promise<void> {
  const client = new Client({ ...PG, database });
  try {
    await client.connect();
  } catch (err) {
    throw new DrillError(`cannot reach PostgreSQL at ${PG.host}:${PG.port} as ${PG.user}: ${(err as Error).message}. Start it with 'npm run services'.`);
  }
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

function mysql(sql: string): void {
  const result = spawnSync('mysql', ['-h', MY.host, '-P', String(MY.port), '-u', MY.user, '--batch'], { input: sql, encoding: 'utf8', env: { ...process.env, MYSQL_PWD: MY.password } });
  if (result.error) throw new DrillError(`the mysql client is missing (${result.error.message}): run 'sudo bash scripts/install-deps.sh'`);
  if (result.status !== 0) throw new DrillError(`MariaDB at ${MY.host}:${MY.port} said: ${result.stderr.trim()}. Start it with 'npm run services'.`);
}

const ENGINES: Engine[] = [
  {
    label: 'PostgreSQL', engine: 'postgres', server: PG, passwordVariable: 'PGPASSWORD',
    create: async (db, withData) => {
      await pg('postgres', `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
      await pg('postgres', `CREATE DATABASE ${db}`);
      if (!withData) return;
      await pg(db, `CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL);
        CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers, amount numeric(12,2), placed_at timestamptz NOT NULL);
        INSERT INTO customers (name) SELECT 'customer ' || g FROM generate_series(1, ${ROWS / 10}) g;
        INSERT INTO orders (customer_id, amount, placed_at) SELECT 1 + g % ${ROWS / 10}, g % 997, now() - g * interval '1 second' FROM generate_series(1, ${ROWS}) g;`);
    },
    drop: (db) => pg('postgres', `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`),
    checks: [
      { name: 'every order has its customer', sql: 'SELECT count(*) FROM orders o LEFT JOIN customers c ON c.id = o.customer_id WHERE c.id IS NULL', equals: 0 },
      { name: 'orders up to the backup', sql: 'SELECT max(placed_at) FROM orders', maxAgeSeconds: 3600 },
    ],
  },
  {
    label: 'MariaDB', engine: 'mariadb', server: MY, passwordVariable: 'MYSQL_PWD',
    create: async (db, withData) => {
      mysql(`DROP DATABASE IF EXISTS \`${db}\`; CREATE DATABASE \`${db}\`;`);
      if (!withData) return;
      mysql(`USE \`${db}\`;
        CREATE TABLE customers (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL);
        CREATE TABLE orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, customer_id INT NOT NULL, amount DECIMAL(12,2), placed_at TIMESTAMP NOT NULL,
          FOREIGN KEY (customer_id) REFERENCES customers (id));
        INSERT INTO customers (name) SELECT CONCAT('customer ', seq) FROM seq_1_to_${ROWS / 10};
        INSERT INTO orders (customer_id, amount, placed_at) SELECT 1 + MOD(seq, ${ROWS / 10}), MOD(seq, 997), NOW() - INTERVAL seq SECOND FROM seq_1_to_${ROWS};`);
    },
    drop: async (db) => mysql(`DROP DATABASE IF EXISTS \`${db}\`;`),
    checks: [
      { name: 'every order has its customer', sql: 'SELECT COUNT(*) FROM orders o LEFT JOIN customers c ON c.id = o.customer_id WHERE c.id IS NULL', equals: 0 },
      { name: 'orders up to the backup', sql: 'SELECT MAX(placed_at) FROM orders', maxAgeSeconds: 3600 },
    ],
  },
];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

async function startS3(dir: string): Promise<{ child: ChildProcess; env: Record<string, string> }> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--openssl-legacy-provider', join(ROOT, 'node_modules/s3rver/bin/s3rver.js'),
    '-d', dir, '-a', '127.0.0.1', '-p', String(port), '-s', '--configure-bucket', BUCKET], { stdio: 'ignore' });
  for (let i = 0; i < 150; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1').once('connect', () => { socket.destroy(); resolve(true); }).once('error', () => resolve(false));
    });
    if (up) {
      return { child, env: { AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${port}`, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER',
        AWS_REGION: 'us-east-1', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' } };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill();
  throw new DrillError('the S3 emulator (s3rver) did not start within 15 s: run npm ci');
}

/** Runs the agent; its JSON result (stdout) is returned even on a failed restore test, whose report is the point. */
function agent(args: string[], env: Record<string, string>): Promise<{ code: number | null; result?: Record<string, unknown>; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [AGENT, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    child.on('error', reject);
    child.on('close', (code) => {
      let result: Record<string, unknown> | undefined;
      try {
        result = stdout.trim() ? JSON.parse(stdout) : undefined;
      } catch {
        result = undefined;
      }
      resolve({ code, result, stderr: stderr.split('\n').filter((l) => l && !l.startsWith('{')).join('\n') });
    });
  });
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(2)} MB`;
const secs = (s: unknown) => (typeof s === 'number' ? `${s.toFixed(1)} s` : '-');

async function drillOne(e: Engine, work: string, s3env: Record<string, string>, identity: string, recipientFile: string): Promise<boolean> {
  const tag = `${process.pid}_${Date.now().toString(36)}`;
  const source = `drill-${e.engine}`;
  const database = `drill_${e.engine}_${tag}`;
  const scratch = `drill_${e.engine}_scratch_${tag}`;
  const env = { ...s3env, [e.passwordVariable]: e.server.password };
  const connection = ['--host', e.server.host, '--port', String(e.server.port), '--user', e.server.user];
  try {
    await e.create(database, true);
    await e.create(scratch, false);
    const backup = await agent(['backup', '--source', source, '--engine', e.engine, '--bucket', BUCKET, '--recipient-file', recipientFile,
      ...connection, '--database', database, '--json'], env);
    if (backup.code !== 0 || !backup.result) throw new DrillError(`the backup failed:\n${backup.stderr}`);
    const checks = join(work, `${e.engine}-checks.json`);
    writeFileSync(checks, JSON.stringify(e.checks));
    const test = await agent(['restore-test', '--source', source, '--bucket', BUCKET, '--identity-file', identity,
      ...connection, '--database', scratch, '--checks', checks, '--json'], env);
    const r = test.result;
    if (!r) throw new DrillError(`the restore test gave no report:\n${test.stderr}`);
    const b = backup.result;
    const passed = test.code === 0 && r.success === true;
    console.log(`${e.label}: ${passed ? 'PASS' : 'FAIL'}
  backup        ${mb(b.size as number)} stored (${mb(b.dumpSize as number)} dump, zstd + age) in ${secs(b.durationSeconds)}
  restore test  ${secs(r.durationSeconds)} from download to validated (the measured RTO)
  data age      ${secs(r.restoredBackupAgeSeconds)} when the test finished
  checked       ${r.tablesChecked} tables, ${r.rowsChecked} rows against the manifest, ${(r.checks as unknown[]).length} checks of your own
  report        s3://${BUCKET}/${r.reportKey}`);
    for (const failure of (r.failures as string[]) ?? []) console.log(`  FAILED        ${failure}`);
    return passed;
  } finally {
    await e.drop(database).catch(() => undefined);
    await e.drop(scratch).catch(() => undefined);
  }
}

async function main(): Promise<number> {
  for (const tool of ['age', 'age-keygen', 'zstd', 'pg_dump', 'pg_restore', 'mysqldump', 'mysql']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) throw new DrillError(`'${tool}' is not on PATH: run 'sudo bash scripts/install-deps.sh'`);
  }
  const work = mkdtempSync(join(tmpdir(), 'restorable-drill-'));
  const s3 = await startS3(join(work, 's3'));
  try {
    const identity = join(work, 'identity.txt');
    if (spawnSync('age-keygen', ['-o', identity], { stdio: 'ignore' }).status !== 0) throw new DrillError('age-keygen could not make a key');
    const recipientFile = join(work, 'recipient.txt');
    writeFileSync(recipientFile, spawnSync('age-keygen', ['-y', identity], { encoding: 'utf8' }).stdout);
    console.log(`Restorable drill: backup, then restore test, for PostgreSQL and MariaDB (${ROWS} orders each), into a local S3 emulator\n`);
    const results: boolean[] = [];
    for (const e of ENGINES) results.push(await drillOne(e, work, s3.env, identity, recipientFile));
    const passed = results.every(Boolean);
    console.log(`\n${passed ? 'Both backups restored and matched their manifests: the drill passed.' : 'The drill FAILED: see above.'}`);
    return passed ? 0 : 1;
  } finally {
    s3.child.kill();
    rmSync(work, { recursive: true, force: true });
  }
}

main().then((code) => { process.exitCode = code; }, (err) => {
  console.error(`drill: ${err instanceof DrillError ? err.message : (err as Error).stack}`);
  process.exitCode = 1;
});
