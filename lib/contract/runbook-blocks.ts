/**
 * The machine-readable blocks of a runbook: each command sits in a fenced block whose info string says its step, how
 * it runs (`via`) and, where the two differ, its path (see runbook.ts). The renderers write them with `block`; the
 * drills read them back with `runbookBlocks` and run them.
 */

export enum RunbookPath {
  PRIMARY = 'primary',
  DR = 'dr',
}

export enum RunbookVia {
  STANDARD = 'standard',
  RESTORABLE = 'restorable',
}

/** One fenced command block, as `runbookBlocks` reads it back out of the Markdown. */
export interface RunbookBlock {
  readonly step: string;
  readonly via: RunbookVia;
  readonly path?: RunbookPath;
  readonly code: string;
}

/** The standard tools' fetch of the age identity into a file of the scene's umask (0600): shared by every path that decrypts. */
export const FETCH_IDENTITY = 'aws secretsmanager get-secret-value --secret-id "$IDENTITY_SECRET" --output json | jq -r .SecretString > identity.txt';

/** A value as one single-quoted shell word. */
export const quote = (value: string) => `'${value.replace(/'/g, `'\\''`)}'`;

/** One fenced command block, its info string marking it for machines. */
export function block(step: string, via: RunbookVia, code: string, path?: RunbookPath): string {
  return `\`\`\`sh step=${step} via=${via}${path ? ` path=${path}` : ''}\n${code.trim()}\n\`\`\``;
}

/** Reads the command blocks back out of a rendered runbook, in order. */
export function runbookBlocks(markdown: string): RunbookBlock[] {
  const blocks: RunbookBlock[] = [];
  const fence = /^```sh step=(\S+) via=(\S+)(?: path=(\S+))?\n([\s\S]*?)^```$/gm;
  for (let m = fence.exec(markdown); m; m = fence.exec(markdown)) {
    blocks.push({ step: m[1], via: m[2] as RunbookVia, path: m[3] as RunbookPath | undefined, code: m[4] });
  }
  return blocks;
}

/** The standard-tool blocks of one path whose step matches, in order, the blocks of the other path left out. */
export function standardBlocks(markdown: string, path: RunbookPath, step: RegExp): string {
  return runbookBlocks(markdown)
    .filter((b) => b.via === RunbookVia.STANDARD && step.test(b.step) && (!b.path || b.path === path))
    .map((b) => b.code)
    .join('\n');
}
