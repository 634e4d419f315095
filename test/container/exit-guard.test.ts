/**
 * No silent success: a command whose last promise never settles, while nothing else keeps the process
 * alive, would let node exit 0 with nothing said. Run through the CLI's guard, it exits 70 with one line.
 * Each case is a real node process running the guard from the agent's source.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../support';

const dir = mkdtempSync(join(tmpdir(), 'exit-guard-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `body` (the command's promise) through the guard in a fresh process. */
function runGuarded(body: string): { status: number | null; stderr: string; stdout: string } {
  const script = join(dir, `case-${Math.random().toString(36).slice(2)}.ts`);
  writeFileSync(script, `import { runToCompletion } from ${JSON.stringify(join(REPO_ROOT, 'container/src/shared/exit-guard'))};\n` +
    `runToCompletion('verify', () => ${body});\n`);
  const result = spawnSync(join(REPO_ROOT, 'node_modules/.bin/tsx'), [script], { encoding: 'utf8', timeout: 60_000 });
  return { status: result.status, stderr: result.stderr, stdout: result.stdout };
}

test('a command whose promise never settles exits 70 with one line saying it stopped before finishing', () => {
  // What the verify bug looked like: a wait for an event that has already fired, and an empty event loop.
  const result = runGuarded(`new Promise<number>(() => undefined)`);
  expect(result.status).toBe(70);
  // Said once, on the failure line alone: no JSON record repeats it.
  expect(result.stderr).toBe('restorable verify: the command stopped before finishing (an internal error): nothing it was doing can be trusted as done\n');
  expect(result.stdout).toBe('');
});

test('the same wait, unguarded, exits 0: the failure the guard exists for', () => {
  const script = join(dir, 'unguarded.ts');
  writeFileSync(script, `new Promise<number>(() => undefined).then((code) => { process.exitCode = code; });\n`);
  expect(spawnSync(join(REPO_ROOT, 'node_modules/.bin/tsx'), [script], { encoding: 'utf8' }).status).toBe(0);
});

test('a command that settles after waiting on a timer keeps its own exit code, and the guard says nothing', () => {
  const ok = runGuarded(`new Promise<number>((resolve) => setTimeout(() => resolve(0), 200))`);
  expect(ok).toEqual({ status: 0, stderr: '', stdout: '' });
  expect(runGuarded(`new Promise<number>((resolve) => setTimeout(() => resolve(3), 50))`).status).toBe(3);
});

test('a command that rejects exits 1 naming the error', () => {
  const result = runGuarded(`Promise.reject(new Error('the disk is full'))`);
  expect(result.status).toBe(1);
  expect(result.stderr).toContain('restorable verify: unexpected error: Error: the disk is full');
});
