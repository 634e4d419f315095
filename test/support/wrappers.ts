/**
 * Fake programs put first on PATH, to make a real tool misbehave on cue (fail after its last byte,
 * stall), or a PATH from which a tool is missing.
 */
import { chmodSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { findOnPath } from '../../container/src/shared/tools';

function realPath(command: string): string {
  const path = findOnPath(command);
  if (!path) throw new Error(`${command} is not installed: run 'sudo bash scripts/install-deps.sh'`);
  return path;
}

/** A directory holding a wrapper for `command`; prepend it to PATH. `--version` always passes through. */
export function wrapperDir(command: string, body: (real: string) => string): string {
  const dir = mkdtempSync(join(tmpdir(), `restorable-wrap-${command}-`));
  const real = realPath(command);
  const file = join(dir, command);
  writeFileSync(file, `#!/bin/bash\ncase "$1" in --version|-V) exec '${real}' "$@";; esac\n${body(real)}\n`);
  chmodSync(file, 0o755);
  return dir;
}

/** The wrapped program writes all its output, then exits 1. */
export const failsAfterLastByte = (command: string) =>
  wrapperDir(command, (real) => `'${real}' "$@" || exit $?\necho "${command}: simulated failure after the last byte" >&2\nexit 1`);

/** The wrapped program starts only after a pause, so that the stage before it blocks on a full pipe. */
export const startsLate = (command: string, seconds: number) => wrapperDir(command, (real) => `sleep ${seconds}\nexec '${real}' "$@"`);

export function prependPath(dir: string, path = process.env.PATH ?? ''): string {
  return `${dir}${delimiter}${path}`;
}

/** A PATH holding only the given programs (as symlinks): everything else is missing. */
export function pathWithOnly(commands: readonly string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'restorable-path-'));
  for (const command of commands) symlinkSync(realPath(command), join(dir, command));
  return dir;
}
