/**
 * The restore side of `npm run bench`: the agent's restore of the ~1 GB bench dataset (S3 emulator →
 * SHA-256 → age → zstd → pg_restore) against the limit, pg_restore from a local file that is already
 * decrypted and decompressed; single job and `--jobs 2`. Target: the agent within 1.3× of the limit.
 * Runs on its own with `npx tsx bench/restore.ts [--size GB] [--repeat N]`; `runRestoreBench` is the
 * same for a caller that already has the dataset, an emulator and a key.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_BUNDLE, AgeKey, PG, S3Emulator, createPgDatabase, dropPgDatabase, makeAgeKey, requireAgentBundle, sh, startS3rver } from '../test/support';
import { ensureDataset } from './dataset';
import { Measured, measure } from './measure';

const GB = 1e9;
const MB = 1e6;
const say = (line: string) => process.stderr.write(`${line}\n`);

interface Row { readonly name: string; readonly m: Measured; readonly limit?: Measured }

/** The fastest of `rounds` runs, each into a fresh database; any failed run fails the benchmark. */
async function fastest(rounds: number, what: string, run: (target: string) => Promise<Measured>): Promise<Measured> {
  let best: Measured | undefined;
  for (let i = 0; i < rounds; i++) {
    const target = `restorable_bench_restore_${i}`;
    await createPgDatabase(target);
    try {
      const m = await run(target);
      if (m.code !== 0) throw new Error(`${what} failed: ${m.stderr}`);
      say(`  ${what}: ${m.seconds.toFixed(1)} s`);
      if (!best || m.seconds < best.seconds) best = m;
    } finally {
      await dropPgDatabase(target);
    }
  }
  return best!;
}

export async function runRestoreBench(database: string, s3: S3Emulator, key: AgeKey, repeat: number): Promise<string> {
  const pgEnv = { ...process.env, PGHOST: PG.host, PGPORT: String(PG.port), PGUSER: PG.user, PGPASSWORD: PG.password };
  const loadBefore = loadavg()[0];
  say('agent backup of the dataset, to restore from…');
  const backup = await measure(process.execPath, [AGENT_BUNDLE, 'backup', '--source', 'bench-restore', '--engine', 'postgres',
    '--bucket', s3.bucket, '--recipient', key.recipient, '--database', database, '--json'], { ...pgEnv, ...s3.env });
  if (backup.code !== 0) throw new Error(`backup failed: ${backup.stderr}`);
  const stored = JSON.parse(backup.stdout) as { key: string; size: number; dumpSize: number };

  const dir = mkdtempSync(join(tmpdir(), 'restorable-bench-restore-'));
  const dumpFile = join(dir, 'dump.pgdump');
  try {
    say('preparing the limit\'s input: the same dump, decrypted and decompressed on local disk…');
    const encrypted = join(dir, 'dump.pgdump.zst.age');
    writeFileSync(encrypted, await s3.getBytes(stored.key));
    sh(`age -d -i '${key.identityFile}' '${encrypted}' | zstd -d -q -o '${dumpFile}'`);
    rmSync(encrypted);

    const agent = (target: string, ...extra: string[]) => measure(process.execPath, [AGENT_BUNDLE, 'restore', '--source', 'bench-restore',
      '--bucket', s3.bucket, '--key', stored.key, '--identity-file', key.identityFile, '--database', target, '--json', '--load-as-connected-user', ...extra],
    { ...pgEnv, ...s3.env });
    const rows: Row[] = [];
    for (const jobs of [1, 2]) {
      const jobArgs = jobs > 1 ? [`--jobs=${jobs}`] : [];
      say(`limit: pg_restore ${jobArgs.join(' ')} from the local file…`);
      const limit = await fastest(repeat, `pg_restore -j ${jobs}`, (target) =>
        measure('pg_restore', ['--no-password', '--exit-on-error', `--dbname=${target}`, ...jobArgs, dumpFile], pgEnv));
      rows.push({ name: `limit: \`${['pg_restore', ...jobArgs].join(' ')}\` from a local decrypted file`, m: limit });
      say(`agent restore ${jobs > 1 ? `--jobs ${jobs}` : '(streamed)'}…`);
      const m = await fastest(repeat, `agent jobs ${jobs}`, (target) => agent(target, ...(jobs > 1 ? ['--jobs', String(jobs)] : [])));
      rows.push({ name: jobs > 1 ? `agent: S3 → SHA-256 → age → zstd → spool, then \`pg_restore -j ${jobs}\``
        : 'agent: S3 → SHA-256 → age → zstd → `pg_restore --single-transaction` (streamed)', m, limit });
    }
    const lines = [
      `Database ${database}: custom-format dump ${(stored.dumpSize / GB).toFixed(2)} GB, stored ${(stored.size / MB).toFixed(0)} MB; ` +
      `${new Date().toISOString()}; fastest of ${repeat} round(s); 1-minute load average ${loadBefore.toFixed(1)} before, ` +
      `${loadavg()[0].toFixed(1)} after (2 cores).`,
      '',
      '| restore | seconds | dump MB/s | × limit | peak RSS, agent (MB) | peak RSS, process tree (MB) |',
      '|---|---:|---:|---:|---:|---:|',
      ...rows.map((r) => `| ${r.name} | ${r.m.seconds.toFixed(1)} | ${(stored.dumpSize / MB / r.m.seconds).toFixed(0)} | ` +
        `${r.limit ? (r.m.seconds / r.limit.seconds).toFixed(2) : '1.00'} | ${r.limit ? r.m.peakRssMb.toFixed(0) : '–'} | ${r.m.peakTreeRssMb.toFixed(0)} |`),
      '',
      `Agent against the limit (target ≤ 1.3×): ${rows.filter((r) => r.limit).map((r) => `${(r.m.seconds / r.limit!.seconds).toFixed(2)}×`)
        .join(' single job, ')} with --jobs 2.`,
    ];
    return lines.join('\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  requireAgentBundle();
  const argv = process.argv.slice(2);
  const option = (name: string, fallback: string) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? argv[i + 1] : fallback; };
  const sizeGb = Number(option('size', '1'));
  const database = `restorable_bench_${String(sizeGb).replace('.', '_')}g`;
  say(`preparing ${database} (~${sizeGb} GB)…`);
  await ensureDataset(database, sizeGb * GB, say);
  const s3 = await startS3rver('bench');
  try {
    process.stdout.write(`${await runRestoreBench(database, s3, makeAgeKey(), Math.max(1, Number(option('repeat', '1'))))}\n`);
  } finally {
    await s3.stop();
  }
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`bench failed: ${(err as Error).message}\n`);
    process.exitCode = 1;
  });
}
