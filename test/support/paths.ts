import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

export const REPO_ROOT = join(__dirname, '..', '..');
export const AGENT_BUNDLE = join(REPO_ROOT, 'assets', 'agent', 'restorable.cjs');
/** What the bundle is built from: a change to any of these makes it stale. */
const AGENT_SOURCES = [join(REPO_ROOT, 'container', 'src'), join(REPO_ROOT, 'lib', 'contract')];

/** The newest file under `dir`, or undefined when it holds none. */
function newestFile(dir: string): { path: string; mtimeMs: number } | undefined {
  let newest: { path: string; mtimeMs: number } | undefined;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    const candidate = entry.isDirectory() ? newestFile(path) : entry.isFile() ? { path, mtimeMs: statSync(path).mtimeMs } : undefined;
    if (candidate && (!newest || candidate.mtimeMs > newest.mtimeMs)) newest = candidate;
  }
  return newest;
}

/**
 * Fails loudly (never skips) when the bundled agent is missing, or older than a file it is built from, so
 * that tests never run a stale agent after the source changed.
 */
export function requireAgentBundle(bundle = AGENT_BUNDLE, sources: readonly string[] = AGENT_SOURCES): string {
  if (!existsSync(bundle)) throw new Error(`${bundle} is missing: run 'npm run bundle' before these tests`);
  const built = statSync(bundle).mtimeMs;
  for (const dir of sources) {
    const newest = existsSync(dir) ? newestFile(dir) : undefined;
    if (newest && newest.mtimeMs > built) {
      throw new Error(`${bundle} is older than ${relative(REPO_ROOT, newest.path)}: it is stale, run 'npm run bundle' before these tests`);
    }
  }
  return bundle;
}
