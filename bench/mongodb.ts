/**
 * `npm run bench:mongodb`: the agent's MongoDB backup (`mongodump --archive | zstd | age` → S3 multipart) against the
 * article's pipeline (`mongodump --archive --gzip | aws s3 cp -`) and against the limit (`mongodump --archive >
 * /dev/null`), side by side on the same database of the services' FerretDB and the same moto S3, with the agent's peak
 * memory.
 *
 *   npm run bench:mongodb -- [--docs N] [--repeat N]
 *
 * FerretDB writes slowly, so the database (a customers collection and `--docs` events of realistic entropy: ids,
 * timestamps, enums, e-mails, user agents, hashes, nested documents and free text) is built once per run and dropped at
 * its end. Rounds interleave the pipelines, so that each round's ratios compare runs that met the same background load.
 * Both pipelines run the same mongodump 100.10.0 with the password in a 0600 --config file. Not part of CI.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { Binary, Document, Double, Int32, Long, ObjectId } from 'mongodb';
import {
  AGENT_BUNDLE, MONGO, dropMongoDatabase, makeAgeKey, mongoToolArgs, mongoToolsPath, motoBucket, requireAgentBundle, withMongo,
} from '../test/support';
import { Measured, Pipeline, PipelineResults, measure, pipelineTable } from './measure';

const MB = 1e6;
const argv = process.argv.slice(2);
const option = (name: string, fallback: string) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? argv[i + 1] : fallback; };
const say = (line: string) => process.stderr.write(`${line}\n`);
const pause = () => new Promise((r) => setTimeout(r, 1100)); // agent keys have one-second resolution

/** A seeded generator (mulberry32): the same data every run. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const KINDS = ['page_view', 'click', 'add_to_cart', 'purchase', 'login', 'logout', 'search'];
const STATUSES = ['ok', 'ok', 'ok', 'ok', 'retry', 'failed'];
const AGENTS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148',
  'okhttp/4.12.0',
];
const COUNTRIES = ['DE', 'FR', 'US', 'GB', 'NL', 'SE', 'ES', 'IT'];
const CUSTOMERS = 50_000;

/** The benchmark database: `events` events and their customers, in batches of 2,000. */
async function buildDataset(database: string, events: number): Promise<void> {
  const rnd = random(19);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)];
  const hex = (chars: number) => Array.from({ length: chars }, () => Math.floor(rnd() * 16).toString(16)).join('');
  const now = Date.UTC(2026, 11, 1);
  await withMongo(async (client) => {
    const db = client.db(database);
    await db.dropDatabase();
    const batch = async (collection: string, count: number, make: (i: number) => Document) => {
      for (let start = 0; start < count; start += 2000) {
        await db.collection(collection).insertMany(Array.from({ length: Math.min(2000, count - start) }, (_, k) => make(start + k)), { ordered: false });
        if ((start / 2000) % 50 === 49) say(`  ${collection}: ${start + 2000} of ${count}`);
      }
    };
    await batch('customers', CUSTOMERS, (i) => ({
      _id: i + 1, email: `user${i}@${pick(['example.com', 'mail.test', 'corp.example', 'shop.test'])}`,
      name: `${hex(6)} ${hex(9)}`, country: pick(COUNTRIES), createdAt: new Date(now - i * 37_000),
      address: { street: `${Math.floor(rnd() * 300)} ${hex(5)} St`, city: pick(['Lisboa', 'Zürich', 'Berlin', 'Austin']) },
      ...(i % 10 === 0 ? { avatar: new Binary(Buffer.from(hex(128), 'hex')) } : {}),
    }));
    await batch('events', events, (i) => ({
      _id: new ObjectId(), occurredAt: new Date(now - i * 250), customerId: new Int32(1 + Math.floor(rnd() * CUSTOMERS)),
      seq: Long.fromNumber(i), kind: pick(KINDS), status: pick(STATUSES),
      ...(rnd() < 0.3 ? { amount: new Double(Math.round(rnd() * 50_000) / 100) } : {}),
      userAgent: pick(AGENTS), session: hex(32),
      payload: { path: `/p/${Math.floor(rnd() * 5000)}`, ref: hex(10), items: new Int32(Math.floor(rnd() * 8)), ab: pick(['a', 'b']) },
      ...(rnd() < 0.2 ? { note: `customer wrote: ${Array.from({ length: 1 + Math.floor(rnd() * 12) }, () => hex(8)).join(' ')}` } : {}),
    }));
    await db.collection('customers').createIndex({ email: 1 }, { unique: true, name: 'email_unique' });
    await db.collection('events').createIndex({ customerId: 1, occurredAt: -1 }, { name: 'customer_time' });
  });
}


async function main(): Promise<void> {
  requireAgentBundle();
  const events = Number(option('docs', '200000'));
  const rounds = Math.max(1, Number(option('repeat', '2')));
  const database = `restorable_bench_mongo_${process.pid}`;
  const s3 = await motoBucket();
  const key = makeAgeKey();
  const config = join(key.dir, 'mongodump.yaml');
  writeFileSync(config, `password: ${JSON.stringify(MONGO.password)}\n`, { mode: 0o600 });
  const toolsPath = mongoToolsPath();
  // The article's aws CLI: Debian's v2 (2.9, older than AWS_ENDPOINT_URL), pointed at moto with --endpoint-url.
  const awsEnv = { ...process.env, ...s3.env, PATH: toolsPath, AWS_PAGER: '' };
  const dump = [...mongoToolArgs(database), `--config=${config}`, '--archive'].map((a) => `'${a}'`).join(' ');
  const agentResult = (m: Measured) => JSON.parse(m.stdout) as { size: number; dumpSize: number; rows: number };

  const pipelines: Pipeline[] = [
    { name: 'raw `mongodump --archive > /dev/null` (the limit)', isAgent: false, stored: async () => undefined,
      run: () => measure('bash', ['-o', 'pipefail', '-c', `mongodump ${dump} > /dev/null`], { ...process.env, PATH: toolsPath }) },
    { name: 'agent: `mongodump --archive \\| zstd -1 \\| age` → S3 multipart', isAgent: true, stored: async (m) => agentResult(m).size,
      run: () => measure(process.execPath, [AGENT_BUNDLE, 'backup', '--source', 'bench-mongo', '--engine', 'mongodb', '--bucket', s3.bucket,
        '--recipient', key.recipient, '--host', MONGO.host, '--port', String(MONGO.port), '--user', MONGO.user, '--auth-source', MONGO.authSource,
        '--auth-mechanism', MONGO.authMechanism, '--database', database, '--json'], { ...process.env, ...s3.env, PATH: toolsPath, MONGODB_PASSWORD: MONGO.password }) },
    { name: 'article: `mongodump --archive --gzip \\| aws s3 cp -`', isAgent: false,
      stored: async () => (await s3.getBytes('article/db.archive.gz')).length,
      run: () => measure('bash', ['-o', 'pipefail', '-c', `mongodump ${dump} --gzip | /usr/bin/aws s3 cp - s3://${s3.bucket}/article/db.archive.gz --endpoint-url ${s3.endpoint} --only-show-errors`], awsEnv) },
  ];

  try {
    say(`building ${database}: ${CUSTOMERS} customers and ${events} events on FerretDB…`);
    const built = Date.now();
    await buildDataset(database, events);
    say(`  built in ${((Date.now() - built) / 1000).toFixed(0)} s`);
    const loadBefore = loadavg()[0];
    const results: PipelineResults = new Map(pipelines.map((p) => [p.name, { runs: [] }]));
    let archive = { dumpSize: 0, rows: 0 };
    for (let round = 1; round <= rounds; round++) {
      for (const p of pipelines) {
        const m = await p.run();
        if (m.code !== 0) throw new Error(`${p.name} failed: ${m.stderr}`);
        if (p.isAgent) archive = agentResult(m);
        const entry = results.get(p.name)!;
        entry.runs.push(m);
        entry.stored = await p.stored(m);
        say(`  round ${round}: ${p.name}: ${m.seconds.toFixed(1)} s, ${m.cpuSeconds.toFixed(1)} CPU s (load ${loadavg()[0].toFixed(1)})`);
        await pause();
      }
    }

    const lines = [
      `FerretDB v1.24.2 on PostgreSQL, database of ${CUSTOMERS} customers and ${events} events (${archive.rows} documents), ` +
      `mongodump archive ${(archive.dumpSize / MB).toFixed(0)} MB; ${new Date().toISOString()}; ${rounds} interleaved round(s); ` +
      `1-minute load average ${loadBefore.toFixed(1)} before, ${loadavg()[0].toFixed(1)} after (2 cores).`,
      '',
      ...pipelineTable(pipelines, results, pipelines[2], { bytes: archive.dumpSize, what: 'archive', decimals: 1 }),
    ];
    const report = lines.join('\n');
    process.stdout.write(`${report}\n`);
    const dir = join(__dirname, '.data');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `mongodb-${new Date().toISOString().replace(/[:.]/g, '-')}.md`), `${report}\n`);
  } finally {
    await dropMongoDatabase(database).catch(() => undefined);
    await s3.stop();
    rmSync(config, { force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`bench:mongodb failed: ${(err as Error).message}\n`);
  process.exitCode = 1;
});
