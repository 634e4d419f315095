/** Runs the bundled agent as a child process, the way a user or the container runs it. */
import { ChildProcess, spawn } from 'node:child_process';
import { requireAgentBundle } from './paths';

export interface AgentRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunningAgent {
  readonly child: ChildProcess;
  /** stderr so far: JSON log lines, then the error message on failure. */
  stderr(): string;
  readonly finished: Promise<AgentRun>;
}

/** The environment a test gives the agent: only what it passes, plus PATH and HOME. */
export function agentEnv(extra: Record<string, string | undefined>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: process.env.HOME, RESTORABLE_PROGRESS_MS: '250', ...extra };
}

export function startAgent(args: readonly string[], env: NodeJS.ProcessEnv): RunningAgent {
  const child = spawn(process.execPath, [requireAgentBundle(), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => { stdout += b.toString(); });
  child.stderr!.on('data', (b: Buffer) => { stderr += b.toString(); });
  const finished = new Promise<AgentRun>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  return { child, stderr: () => stderr, finished };
}

export function runAgent(args: readonly string[], env: NodeJS.ProcessEnv): Promise<AgentRun> {
  return startAgent(args, env).finished;
}

/** The agent's JSON log lines (stderr), parsed; the final plain-text error lines are skipped. */
export function logLines(stderr: string): Record<string, unknown>[] {
  return stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}
