/**
 * `npm run bench`: the agent's backup against the limit (raw pg_dump) and against the article's
 * pipeline (pg_dump | gzip | openssl enc | aws s3 cp -), side by side against the same S3 emulator,
 * with the agent's peak memory.
 *
 *   npm run bench -- [--size GB] [--repeat N] [--levels 1,3] [--big] [--no-restore]
 *
 * Rounds interleave the pipelines (raw, agent at each level, article), so that each round's ratios
 * compare runs that met the same background load; the report gives the median ratio over rounds.
 * `--big` adds one backup of a ~3 GB database, to show the agent's memory does not grow with size.
 * Then the restore side (bench/restore.ts), unless `--no-restore`.
 * Not part of CI: it takes minutes and a few GB of disk.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { AGENT_BUNDLE, PG, makeAgeKey, requireAgentBundle, sh, startS3rver } from '../test/support';
import { ensureDataset } from './dataset';
import { Measured, Pipeline, PipelineResults, measure, pipelineTable } from './measure';
import { runRestoreBench } from './restore';

const GB = 1e9;
const MB = 1e6;
const argv = process.argv.slice(2);
const option = (name: string, fallback: string) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? argv[i + 1] : fallback; };
const say = (line: string) => process.stderr.write(`${line}\n`);
const pause = () => new Promise((r) => setTimeout(r, 1100)); // agent keys have one-second resolution

function pickAws(): string {
  for (const candidate of ['/usr/bin/aws', 'aws']) {
    try {
      if (/aws-cli\/2\./.test(sh(`${candidate} --version 2>&1`))) return candidate;
    } catch {
      // not this one
    }
  }
  throw new Error('AWS CLI v2 not found: install it (Debian: apt-get install awscli) for the article pipeline');
}


async function main(): Promise<void> {
  requireAgentBundle();
  const sizeGb = Number(option('size', '1'));
  const levels = option('levels', '1,3').split(',').map(Number);
  const rounds = Math.max(1, Number(option('repeat', '3')));
  const database = `restorable_bench_${String(sizeGb).replace('.', '_')}g`;
  say(`preparing ${database} (~${sizeGb} GB)…`);
  const dbBytes = await ensureDataset(database, sizeGb * GB, say);
  const s3 = await startS3rver('bench');
  const key = makeAgeKey();
  const pgEnv = { ...process.env, PGHOST: PG.host, PGPORT: String(PG.port), PGUSER: PG.user, PGPASSWORD: PG.password, PGDATABASE: database };
  const agentEnv = { ...pgEnv, ...s3.env };
  const aws = pickAws();
  const passFile = join(key.dir, 'openssl.pass');
  writeFileSync(passFile, 'bench-passphrase-not-a-secret\n', { mode: 0o600 });
  const agentRun = (db: string, source: string, level?: number) => measure(process.execPath, [AGENT_BUNDLE, 'backup', '--source', source,
    '--engine', 'postgres', '--bucket', s3.bucket, '--recipient', key.recipient, '--database', db, '--json',
    ...(level ? ['--compression-level', String(level)] : [])], { ...agentEnv, PGDATABASE: db });
  const agentResult = (m: Measured) => JSON.parse(m.stdout) as { size: number; dumpSize: number };

  const pipelines: Pipeline[] = [
    { name: 'raw `pg_dump -Fc -Z0 > /dev/null` (the limit)', isAgent: false, stored: async () => undefined,
      run: () => measure('bash', ['-c', 'pg_dump -Fc -Z0 > /dev/null'], pgEnv) },
    ...levels.map((level): Pipeline => ({
      name: `agent: \`pg_dump -Fc -Z0 \\| zstd -${level} -T0 \\| age\` → S3 multipart`, isAgent: true,
      stored: async (m) => agentResult(m).size, run: () => agentRun(database, 'bench', level),
    })),
    { name: 'article: `pg_dump \\| gzip \\| openssl enc -aes-256-cbc -pbkdf2 \\| aws s3 cp -`', isAgent: false,
      stored: async () => (await s3.getBytes('article/db.sql.gz.enc')).length,
      run: () => measure('bash', ['-o', 'pipefail', '-c', `pg_dump | gzip | openssl enc -aes-256-cbc -pbkdf2 -pass file:${passFile} | ` +
        `${aws} s3 cp - s3://${s3.bucket}/article/db.sql.gz.enc --endpoint-url ${s3.endpoint} --only-show-errors`],
      { ...pgEnv, ...s3.env, AWS_DEFAULT_REGION: 'us-east-1' }) },
  ];

  const loadBefore = loadavg()[0];
  const results: PipelineResults = new Map(pipelines.map((p) => [p.name, { runs: [] }]));
  let dumpSize = 0;
  try {
    for (let round = 1; round <= rounds; round++) {
      for (const p of pipelines) {
        const m = await p.run();
        if (m.code !== 0) throw new Error(`${p.name} failed: ${m.stderr}`);
        if (p.isAgent) dumpSize = agentResult(m).dumpSize;
        const entry = results.get(p.name)!;
        entry.runs.push(m);
        entry.stored = await p.stored(m);
        say(`  round ${round}: ${p.name}: ${m.seconds.toFixed(1)} s, ${m.cpuSeconds.toFixed(1)} CPU s (load ${loadavg()[0].toFixed(1)})`);
        await pause();
      }
    }

    const lines = [
      `Database ${database}: ${(dbBytes / GB).toFixed(2)} GB on disk, custom-format dump ${(dumpSize / GB).toFixed(2)} GB; ${new Date().toISOString()}; ` +
      `${rounds} interleaved round(s); 1-minute load average ${loadBefore.toFixed(1)} before, ${loadavg()[0].toFixed(1)} after (2 cores).`,
      '',
      ...pipelineTable(pipelines, results, pipelines[pipelines.length - 1], { bytes: dumpSize, what: 'dump', decimals: 0 }),
    ];

    if (argv.includes('--big')) {
      const bigDb = 'restorable_bench_3g';
      say(`preparing ${bigDb} (~3 GB)…`);
      const bigBytes = await ensureDataset(bigDb, 3 * GB, say);
      say('agent backup of ~3 GB …');
      const m = await agentRun(bigDb, 'bench-3g');
      if (m.code !== 0) throw new Error(`agent failed: ${m.stderr}`);
      const result = agentResult(m);
      lines.push('', `At ~3 GB (${bigDb}: ${(bigBytes / GB).toFixed(2)} GB on disk, dump ${(result.dumpSize / GB).toFixed(2)} GB), default level: ` +
        `${m.seconds.toFixed(1)} s, ${(result.dumpSize / MB / m.seconds).toFixed(0)} MB/s, ${m.cpuSeconds.toFixed(1)} client CPU s, stored ` +
        `${(result.size / MB).toFixed(0)} MB, agent peak RSS ${m.peakRssMb.toFixed(0)} MB, process tree ${m.peakTreeRssMb.toFixed(0)} MB.`);
    }

    if (!argv.includes('--no-restore')) {
      say('restore side…');
      lines.push('', '### Restore', '', await runRestoreBench(database, s3, key, rounds));
    }

    const report = lines.join('\n');
    process.stdout.write(`${report}\n`);
    const dir = join(__dirname, '.data');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `results-${new Date().toISOString().replace(/[:.]/g, '-')}.md`), `${report}\n`);
  } finally {
    await s3.stop();
  }
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${(err as Error).message}\n`);
  process.exitCode = 1;
});
