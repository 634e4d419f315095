/**
 * The README's examples ("Add it to your CDK app", "A vault in another account") compile against the library as it is: each is taken from the
 * README itself, its `restorable` import pointed at lib/, and type-checked with the project's compiler settings.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from '../support/paths';

const run = promisify(execFile);

/** The first ```ts block after the heading. */
function exampleAfter(heading: string): string {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.indexOf(`\n${heading}\n`);
  if (section < 0) throw new Error(`README.md has no '${heading}' section`);
  const block = /```ts\n([\s\S]*?)```/.exec(readme.slice(section));
  if (!block) throw new Error(`README.md has no ts example under '${heading}'`);
  return block[1];
}

test.each(['## Add it to your CDK app', '### A vault in another account'])('the example in "%s" type-checks against lib/, with no deprecated call', async (heading) => {
  const example = exampleAfter(heading);
  expect(example).toMatch(/from 'restorable';/);
  expect(example).not.toMatch(/\.addDependency\(/); // deprecated, and BackupStore adds the dependency itself
  const dir = join(REPO_ROOT, '.tmp', `readme-example-${process.pid}-${heading.replace(/\W+/g, '-')}`);
  mkdirSync(dir, { recursive: true });
  try {
    writeFileSync(join(dir, 'example.ts'), example.replace(/from 'restorable';/, `from '${join(REPO_ROOT, 'lib')}';`));
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
      extends: join(REPO_ROOT, 'tsconfig.json'), compilerOptions: { noEmit: true, noUnusedLocals: false, types: ['node'] }, include: ['example.ts'],
    }));
    await expect(run(join(REPO_ROOT, 'node_modules/.bin/tsc'), ['-p', dir], { cwd: dir }).catch((err: { stdout?: string }) => {
      throw new Error(`the README example does not compile:\n${err.stdout}`);
    })).resolves.toBeDefined();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 180_000);
