/**
 * Structured logging: one JSON object per line on stderr, so that stdout carries only the result
 * and CloudWatch Logs (or jq) can read the progress.
 */
import { redactor } from './errors';

export type LogFields = Record<string, string | number | boolean | undefined>;

function write(level: string, msg: string, fields: LogFields): void {
  const line = JSON.stringify({ time: new Date().toISOString(), level, msg: redactor.redact(msg), ...fields });
  process.stderr.write(`${line}\n`);
}

export const log = {
  info: (msg: string, fields: LogFields = {}) => write('info', msg, fields),
  warn: (msg: string, fields: LogFields = {}) => write('warn', msg, fields),
  error: (msg: string, fields: LogFields = {}) => write('error', msg, fields),
};

/** Decimal megabytes, as in BENCHMARKS.md. */
const MB = 1e6;

/**
 * Logs progress every `intervalMs` while a long transfer runs: bytes so far, the rate over the last
 * interval, and the elapsed time.
 */
export class ProgressReporter {
  private readonly started = Date.now();
  private lastBytes = 0;
  private lastTime = this.started;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly stage: string, private readonly sample: () => LogFields & { bytes: number },
    intervalMs = progressIntervalMs()) {
    this.timer = setInterval(() => this.report(), intervalMs);
    this.timer.unref();
  }

  private report(): void {
    const now = Date.now();
    const fields = this.sample();
    const mbPerSec = ((fields.bytes - this.lastBytes) / MB) / Math.max(0.001, (now - this.lastTime) / 1000);
    this.lastBytes = fields.bytes;
    this.lastTime = now;
    write('info', 'progress', { stage: this.stage, ...fields, mbPerSec: Math.round(mbPerSec * 10) / 10,
      elapsedSeconds: Math.round((now - this.started) / 100) / 10 });
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/** Every few seconds by default; RESTORABLE_PROGRESS_MS changes it (tests use a short interval). */
function progressIntervalMs(): number {
  const fromEnv = Number(process.env.RESTORABLE_PROGRESS_MS);
  return Number.isFinite(fromEnv) && fromEnv > 0 ? fromEnv : 5000;
}
