import { existsSync } from 'node:fs';
import { join } from 'node:path';

export const REPO_ROOT = join(__dirname, '..', '..');
export const AGENT_BUNDLE = join(REPO_ROOT, 'assets', 'agent', 'restorable.cjs');

/** Fails loudly (never skips) when the bundled agent is missing. */
export function requireAgentBundle(): string {
  if (!existsSync(AGENT_BUNDLE)) throw new Error(`${AGENT_BUNDLE} is missing: run 'npm run bundle' before these tests`);
  return AGENT_BUNDLE;
}
