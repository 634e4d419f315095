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

/**
 * The standard tools' decryption of one fetched object (`$key`, in the file `object`) into `dir/$NAME`, loop-body lines:
 * decompressed to at most `$size` bytes (one more is cut off and refused), then checked against the SHA-256 in `$expected`.
 * `recorded` says where the size is recorded, `what` how the file was stored; the `.sha256` file is left for the caller.
 */
export function decryptVerified(o: { object: string; dir: string; nameVariable: string; recorded: string; what: string }): string {
  const name = `$${o.nameVariable}`;
  return `  if ! age -d -i identity.txt ${o.object} | zstd -d -q | head -c "$((size + 1))" > "${o.dir}/${name}" ||
    [ "$(stat -c %s "${o.dir}/${name}")" != "$size" ]; then
    echo "$key does not decrypt and decompress to the $size bytes its ${o.recorded} records: stopped" >&2; exit 1
  fi
  echo "$expected  ${name}" > "${o.dir}/${name}.sha256"
  if ! (cd ${o.dir} && sha256sum -c --quiet "${name}.sha256" >&2); then
    echo "$key: its contents are not the ones its SHA-256 records (damaged, or not the file ${o.what}): stopped" >&2; exit 1
  fi`;
}

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
