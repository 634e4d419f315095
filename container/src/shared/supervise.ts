/**
 * Keeping a long-lived child program running, as the WAL receiver (pg_receivewal) and the binlog streamer
 * (mariadb-binlog) do: run it with each stderr line logged, start it again after it stops with a growing wait, and
 * give up once it has been failing for longer than a bound (the task then exits 1 and ECS starts a new one).
 */
import { ChildProcess, spawn } from 'node:child_process';
import { onAbort } from './cleanup';
import { log } from './log';

export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stderr: string;
  readonly spawnError?: Error;
}

const STDERR_TAIL = 2048;

/** How a child ended, in words, with the last lines it wrote. */
export function describeExit(exit: ChildExit): string {
  if (exit.spawnError) return `could not start: ${exit.spawnError.message}`;
  const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
  return `${how}${exit.stderr.trim() ? `: ${exit.stderr.trim().split('\n').slice(-3).join(' / ')}` : ''}`;
}

/** Runs a program to its end, logging each line of its stderr under its name; `started` gets the child while it runs. */
export function runLoggedChild(command: string, args: readonly string[], env: NodeJS.ProcessEnv, started: (child: ChildProcess | undefined) => void): Promise<ChildExit> {
  return new Promise((resolve) => {
    let stderr = '';
    let unfinishedLine = '';
    const child = spawn(command, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    started(child);
    const forget = onAbort(() => child.kill('SIGKILL'));
    const logLines = (text: string) => {
      for (const line of text.split('\n').filter((l) => l.trim())) log.info(command, { line: line.trim() });
    };
    child.stderr!.on('data', (chunk: Buffer) => {
      const text = chunk.toString();
      stderr = (stderr + text).slice(-STDERR_TAIL);
      const lines = (unfinishedLine + text).split('\n');
      unfinishedLine = lines.pop()!;
      logLines(lines.join('\n'));
    });
    child.stderr!.on('end', () => logLines(unfinishedLine));
    let spawnError: Error | undefined;
    child.on('error', (err) => { spawnError = err; });
    child.on('close', (code, signal) => {
      forget();
      started(undefined);
      resolve({ code, signal, stderr, spawnError });
    });
  });
}

/** Waits that a stop cuts short. */
export class Sleeper {
  private readonly wakers = new Set<() => void>();
  stopped = false;

  sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakers.add(done);
    });
  }

  stop(): void {
    this.stopped = true;
    for (const wake of [...this.wakers]) wake();
  }
}

/** A run this long was a working one: the failure clock starts again when it stops. */
export const HEALTHY_RUN_MS = 10_000;
const FIRST_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 30_000;

/** The failure clock: waits of 1 s, 2 s, 4 s … up to 30 s, and how long it has been failing. */
export class Backoff {
  private failingSince?: number;
  private next = FIRST_BACKOFF_MS;

  constructor(private readonly retryForMs: number) {}

  /** A success (or a run of at least HEALTHY_RUN_MS): the clock starts again. */
  ok(): void {
    this.failingSince = undefined;
    this.next = FIRST_BACKOFF_MS;
  }

  /** A failure of something that started at `startedAt`: the wait before trying again, or undefined past the bound. */
  failed(startedAt = Date.now()): number | undefined {
    if (Date.now() - startedAt >= HEALTHY_RUN_MS) {
      this.ok();
      this.failingSince = Date.now();
    } else {
      this.failingSince ??= startedAt;
    }
    if (Date.now() - this.failingSince > this.retryForMs) return undefined;
    const wait = this.next;
    this.next = Math.min(this.next * 2, MAX_BACKOFF_MS);
    return wait;
  }

  /** Whole seconds since the failures began. */
  failingSeconds(): number {
    return Math.round((Date.now() - (this.failingSince ?? Date.now())) / 1000);
  }
}
