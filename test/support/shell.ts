/** Runs standard tools the way a person would, in bash with pipefail, and fails with their stderr. */
import { spawnSync } from 'node:child_process';

export function sh(script: string, env: NodeJS.ProcessEnv = process.env, input?: string): string {
  const result = spawnSync('bash', ['-o', 'pipefail', '-euc', script], { env, input, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`command failed (${result.status}): ${script}\n${result.stderr}`);
  return result.stdout;
}
