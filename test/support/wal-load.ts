/**
 * Writes and runs for measuring WAL archiving against a real server (the WAL benchmark, point-in-time tests): a ticker
 * whose acknowledged commits tell how much a restore lost, and the agent run as the server's user (pg_ctl, which a
 * point-in-time restore with --port runs, refuses root).
 */
import { spawn } from 'node:child_process';
import { userInfo } from 'node:os';
import { Client } from 'pg';
import { AgentRun } from './agent';

/**
 * Seconds of acknowledged ticks (id → when acknowledged, ms) a restore that holds ticks up to `newest` lost: from the
 * acknowledgement of the first tick it does not hold to that of the last one acknowledged (0 when it holds them all).
 */
export function secondsLost(acked: ReadonlyMap<number, number>, newest: number): number {
  const lost = [...acked.keys()].filter((id) => id > newest);
  if (lost.length === 0) return 0;
  return (acked.get(Math.max(...acked.keys()))! - acked.get(Math.min(...lost))!) / 1000;
}

/** Commits one row into `ticks` (an identity column `id`) every `everyMs`, and remembers when each was acknowledged. */
export class Ticker {
  /** Tick id → when its commit was acknowledged (ms since the epoch). */
  readonly acked = new Map<number, number>();
  private stopped = false;
  readonly done: Promise<void>;

  constructor(private readonly client: Client, private readonly everyMs = 100) {
    this.done = this.run();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        const { rows } = await this.client.query<{ id: string }>('INSERT INTO ticks DEFAULT VALUES RETURNING id');
        this.acked.set(Number(rows[0].id), Date.now());
      } catch {
        return; // the server is gone
      }
      await new Promise((r) => setTimeout(r, this.everyMs));
    }
  }

  stop(): Promise<void> {
    this.stopped = true;
    return this.done;
  }

  get lastAcked(): number {
    return Math.max(...this.acked.keys());
  }

  /**
   * Seconds of acknowledged ticks a restore that holds ticks up to `newest` lost: from the acknowledgement of the first
   * tick it does not hold to that of the last one acknowledged (0 when it holds them all).
   */
  secondsLost(newest: number): number {
    return secondsLost(this.acked, newest);
  }
}

/** Runs the bundled agent (a copy at `agent`) to the end with exactly `env` and HOME, as the postgres user when root. */
export function runAgentAsServerUser(agent: string, args: readonly string[], env: Record<string, string>, home: string): Promise<AgentRun> {
  const vars = Object.entries({ ...env, HOME: home }).map(([k, v]) => `${k}=${v}`);
  const argv = ['env', ...vars, process.execPath, agent, ...args];
  const child = userInfo().uid === 0 ? spawn('runuser', ['-u', 'postgres', '--', ...argv]) : spawn(argv[0], argv.slice(1));
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
  child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
