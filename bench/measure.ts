/** Wall time and peak memory of a process tree, from /proc. */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Measured {
  readonly seconds: number;
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Peak resident memory of the top process (VmHWM), in MB. */
  readonly peakRssMb: number;
  /** Largest sum of the resident memory of the whole process tree seen while polling, in MB. */
  readonly peakTreeRssMb: number;
  /**
   * CPU seconds (user + system) of the process and every descendant it waited for: what the pipeline
   * costs on the client side, whatever else the machine is doing. The database server's own work is not in it.
   */
  readonly cpuSeconds: number;
}

function status(pid: number, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

function children(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // gone
    }
  }
  return out;
}

/** Resident memory of a process and all its descendants, in MB. */
export function treeRss(pid: number): number {
  return status(pid, 'VmRSS') + children(pid).reduce((sum, child) => sum + treeRss(child), 0);
}

/** Runs a command under /usr/bin/time (for its CPU seconds), polling its memory every 100 ms. */
export function measure(command: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<Measured> {
  const dir = mkdtempSync(join(tmpdir(), 'restorable-bench-'));
  const timeFile = join(dir, 'time');
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn('/usr/bin/time', ['-f', '%U %S', '-o', timeFile, command, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let peakRssMb = 0;
    let peakTreeRssMb = 0;
    child.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { stderr = (stderr + b.toString()).slice(-20_000); });
    const poll = setInterval(() => {
      if (!child.pid) return;
      const [command] = children(child.pid); // the measured command, under time
      if (command) peakRssMb = Math.max(peakRssMb, status(command, 'VmHWM'));
      peakTreeRssMb = Math.max(peakTreeRssMb, treeRss(child.pid));
    }, 100);
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(poll);
      const [user, system] = readFileSync(timeFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
      rmSync(dir, { recursive: true, force: true });
      resolve({ seconds: Number(process.hrtime.bigint() - started) / 1e9, code, stdout, stderr, peakRssMb, peakTreeRssMb, cpuSeconds: user + system });
    });
  });
}

export const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };

/** One backup pipeline of a side-by-side benchmark. */
export interface Pipeline {
  readonly name: string;
  readonly isAgent: boolean;
  readonly run: () => Promise<Measured>;
  /** Bytes stored, read after the run. */
  readonly stored: (m: Measured) => Promise<number | undefined>;
}

/** Each pipeline's runs over the interleaved rounds, and the bytes it stored. */
export type PipelineResults = Map<string, { runs: Measured[]; stored?: number }>;

/**
 * The benchmark table: per pipeline the best and median time, throughput of `bytes` (what the dump tool wrote, named
 * `what`), client CPU, stored size, the median ratio to the first pipeline (raw) and to `article`, and peak RSS.
 */
export function pipelineTable(pipelines: readonly Pipeline[], results: PipelineResults, article: Pipeline,
  { bytes, what, decimals }: { bytes: number; what: string; decimals: number }): string[] {
  const MB = 1e6;
  const raw = results.get(pipelines[0].name)!.runs;
  const articleRuns = results.get(article.name)!.runs;
  return [
    `| pipeline | best s | median s | ${what} MB/s (best) | client CPU s (median) | stored MB | × raw (median of rounds) | × article (median of rounds) | peak RSS agent / tree (MB) |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...pipelines.map((p) => {
      const { runs, stored } = results.get(p.name)!;
      const secs = runs.map((m) => m.seconds);
      const best = Math.min(...secs);
      const vsRaw = median(runs.map((m, i) => raw[i].seconds / m.seconds));
      const vsArticle = median(runs.map((m, i) => articleRuns[i].seconds / m.seconds));
      const rss = `${p.isAgent ? Math.max(...runs.map((m) => m.peakRssMb)).toFixed(0) : '–'} / ${Math.max(...runs.map((m) => m.peakTreeRssMb)).toFixed(0)}`;
      return `| ${p.name} | ${best.toFixed(1)} | ${median(secs).toFixed(1)} | ${(bytes / MB / best).toFixed(decimals)} | ` +
        `${median(runs.map((m) => m.cpuSeconds)).toFixed(1)} | ${stored ? (stored / MB).toFixed(decimals) : '–'} | ${vsRaw.toFixed(2)} | ${vsArticle.toFixed(2)} | ${rss} |`;
    }),
  ];
}
