/**
 * A chain of child processes joined by OS pipes, like a shell pipeline, but one that never hides
 * a failure: every process's exit status is checked, each keeps the tail of its stderr, and the
 * first process to fail (in time) is named as the cause, since a failure upstream shows up
 * downstream as an early EOF and a failure downstream shows up upstream as a broken pipe.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { Readable, Transform, Writable } from 'node:stream';
import { onAbort } from './cleanup';
import { AgentError, redactor } from './errors';
import { installHint } from './tools';

export interface StageSpec {
  /** How errors and logs name this stage, for example 'pg_dump'. */
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  /** The complete environment of the child; the agent's own environment when absent. */
  readonly env?: NodeJS.ProcessEnv;
  /** The child's working directory; the agent's own when absent. */
  readonly cwd?: string;
  /**
   * Sees every chunk this stage writes. The link to the next stage then passes through node
   * instead of a direct OS pipe, at some CPU cost.
   */
  readonly inspect?: (chunk: Buffer) => void;
  /**
   * Rewrites what this stage reads: its stdin passes through the transform, in node. The transform must not fail
   * (a failure ends the stage's input early, and only the stage's own exit status tells).
   */
  readonly stdinFilter?: () => Transform;
}

export interface PipelineOptions {
  /** Fed to the first stage's stdin; the first stage reads nothing when absent. */
  readonly input?: Readable;
  /** Whether the last stage's stdout is kept for the caller (`output`) or discarded. */
  readonly captureOutput?: boolean;
}

/** How one stage ended. */
export interface StageExit {
  readonly name: string;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly spawnError?: NodeJS.ErrnoException;
  readonly stderrTail: string;
  readonly killedByAgent: boolean;
}

const STDERR_TAIL_BYTES = 2048;

/**
 * The whole environment of a child that reads untrusted input (a backup's binlogs, archives): nothing of the agent's
 * but PATH, so no AWS credentials or password variables, with `home` as its HOME.
 */
export function isolatedEnv(home: string): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', HOME: home, TZ: 'UTC', LANG: 'C' };
}

/** A stage that exited non-zero, was killed, or could not start. */
export class StageFailure extends AgentError {
  constructor(readonly exit: StageExit, readonly others: readonly StageExit[]) {
    super(describeFailure(exit, others));
    this.name = 'StageFailure';
  }
}

function describeExit(exit: StageExit): string {
  if (exit.spawnError?.code === 'ENOENT') return `could not start: not found on PATH (${installHint(exit.name)})`;
  if (exit.spawnError) return `could not start: ${exit.spawnError.message}`;
  return exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
}

/**
 * C0 and C1 control characters but newline and tab: a tool's stderr may quote what it read (a collection name of a
 * backup, which the least trusted principal wrote), and an error message reaches terminals and logs.
 */
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

function describeFailure(exit: StageExit, others: readonly StageExit[]): string {
  const tail = redactor.redact(exit.stderrTail.trim()).replace(CONTROL, '');
  const stopped = others.filter((o) => o.killedByAgent).map((o) => o.name);
  const alsoFailed = others.filter((o) => !o.killedByAgent).map((o) => `${o.name} ${describeExit(o)}`);
  const knock = [
    ...(alsoFailed.length ? [`then: ${alsoFailed.join('; ')}`] : []),
    ...(stopped.length ? [`the agent stopped ${stopped.join(', ')}`] : []),
  ].map((line) => `\n(${line})`).join('');
  return `stage '${exit.name}' ${describeExit(exit)}${tail ? `:\n${tail}` : ''}${knock}`;
}

class Stage {
  readonly child: ChildProcess;
  private stderr = '';
  private killed = false;
  readonly exited: Promise<StageExit>;

  constructor(readonly spec: StageSpec, stdin: 'ignore' | 'pipe' | Readable, stdout: 'ignore' | 'pipe') {
    this.child = spawn(spec.command, [...spec.args], { env: spec.env ?? process.env, cwd: spec.cwd, stdio: [stdin, stdout, 'pipe'] });
    this.child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString('utf8')).slice(-STDERR_TAIL_BYTES);
    });
    this.exited = new Promise((resolve) => {
      let spawnError: NodeJS.ErrnoException | undefined;
      this.child.on('error', (err) => {
        spawnError = err;
        // A process that never started emits no 'close' on some node versions.
        if (this.child.pid === undefined) resolve(this.result(null, null, spawnError));
      });
      this.child.on('close', (code, signal) => resolve(this.result(code, signal, spawnError)));
    });
  }

  private result(code: number | null, signal: NodeJS.Signals | null, spawnError?: NodeJS.ErrnoException): StageExit {
    return { name: this.spec.name, code, signal, spawnError, stderrTail: this.stderr, killedByAgent: this.killed };
  }

  get stderrText(): string {
    return this.stderr;
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null && this.child.pid !== undefined) {
      this.killed = true;
      this.child.kill('SIGTERM');
    }
  }
}

function failed(exit: StageExit): boolean {
  return exit.spawnError !== undefined || exit.code !== 0;
}

/** Copies `from` into `to` with backpressure; a reader that dies closes the writer's end too. */
function link(from: Readable, to: Writable, inspect?: (chunk: Buffer) => void, filter?: Transform): void {
  if (inspect) from.on('data', inspect);
  if (filter) {
    link(from, filter);
    link(filter, to);
    return;
  }
  to.on('error', () => from.destroy()); // EPIPE: the reader's exit status tells the story
  from.on('error', () => to.destroy());
  from.pipe(to);
}

export class ProcessPipeline {
  private readonly stages: Stage[] = [];
  /** The last stage's stdout, when `captureOutput` was set. */
  readonly output?: Readable;
  /** Resolves when every stage exited 0; rejects with the StageFailure of the first to fail. */
  readonly done: Promise<void>;

  constructor(specs: readonly StageSpec[], options: PipelineOptions = {}) {
    if (specs.length === 0) throw new Error('a pipeline needs at least one stage');
    const failureOrder: StageExit[] = [];
    let previous: Stage | undefined;
    specs.forEach((spec, i) => {
      const last = i === specs.length - 1;
      const stdout = last && !options.captureOutput ? 'ignore' : 'pipe';
      let stdin: 'ignore' | 'pipe' | Readable;
      if (!previous) stdin = options.input ? 'pipe' : 'ignore';
      else stdin = previous.spec.inspect || spec.stdinFilter ? 'pipe' : (previous.child.stdout as Readable);
      const stage = new Stage(spec, stdin, stdout);
      if (!previous && options.input && stage.child.stdin) link(options.input, stage.child.stdin, undefined, spec.stdinFilter?.());
      if ((previous?.spec.inspect || (previous && spec.stdinFilter)) && stage.child.stdin) {
        link(previous!.child.stdout as Readable, stage.child.stdin, previous!.spec.inspect, spec.stdinFilter?.());
      } else if (previous) {
        // The child now holds the read end; closing ours lets the writer see a broken pipe if it dies.
        previous.child.stdout?.destroy();
      }
      this.stages.push(stage);
      previous = stage;
    });
    this.output = options.captureOutput ? (previous?.child.stdout ?? undefined) : undefined;
    const forget = onAbort(() => this.kill());

    this.done = Promise.all(this.stages.map((stage) => stage.exited.then((exit) => {
      if (failed(exit)) {
        failureOrder.push(exit);
        // One failure dooms the run: stop the rest instead of letting them block on a pipe.
        if (failureOrder.length === 1 && !exit.killedByAgent) this.kill();
      }
      return exit;
    }))).then(() => {
      forget();
      if (failureOrder.length === 0) return;
      const cause = failureOrder.find((exit) => !exit.killedByAgent) ?? failureOrder[0];
      throw new StageFailure(cause, failureOrder.filter((exit) => exit !== cause));
    });
    // Callers always await `done`; this only keeps an early rejection from being reported as unhandled.
    this.done.catch(() => undefined);
  }

  /** The stderr a stage wrote so far (the last few KB). */
  stderrOf(name: string): string {
    return this.stages.find((stage) => stage.spec.name === name)?.stderrText ?? '';
  }

  /** Stops every stage that is still running. */
  kill(): void {
    for (const stage of this.stages) stage.kill();
  }
}
