/**
 * The README's examples ("Add it to your CDK app", "A vault in another account") compile against the library as it is: each is taken from the
 * README itself, its `restorable` import pointed at lib/, and type-checked with the project's compiler settings. One compiler run checks both
 * (type-checking lib/ is most of its work); each example's test reads the diagnostics of its own file, and of lib/ or anything else it imports.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from '../support/paths';

const run = promisify(execFile);

const HEADINGS = ['## Add it to your CDK app', '### A vault in another account'];

/** The first ```ts block after the heading. */
function exampleAfter(heading: string): string {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.indexOf(`\n${heading}\n`);
  if (section < 0) throw new Error(`README.md has no '${heading}' section`);
  const block = /```ts\n([\s\S]*?)```/.exec(readme.slice(section));
  if (!block) throw new Error(`README.md has no ts example under '${heading}'`);
  return block[1];
}

/** The file an example is compiled as. */
const fileOf = (heading: string) => `example${heading.replace(/\W+/g, '-').toLowerCase()}.ts`;

const dir = join(REPO_ROOT, '.tmp', `readme-example-${process.pid}`);
/** Each heading's example, or why it could not be taken from the README. */
const examples = new Map<string, string | Error>();
/** The compiler's diagnostics, each with its indented continuation lines; none when both examples compile. */
const diagnostics: string[] = [];

beforeAll(async () => {
  mkdirSync(dir, { recursive: true });
  for (const heading of HEADINGS) {
    try {
      const example = exampleAfter(heading);
      examples.set(heading, example);
      writeFileSync(join(dir, fileOf(heading)), example.replace(/from 'restorable';/, `from '${join(REPO_ROOT, 'lib')}';`));
    } catch (error) {
      examples.set(heading, error as Error);
    }
  }
  const files = HEADINGS.filter((heading) => typeof examples.get(heading) === 'string').map(fileOf);
  if (!files.length) return;
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
    extends: join(REPO_ROOT, 'tsconfig.json'), compilerOptions: { noEmit: true, noUnusedLocals: false, types: ['node'] }, include: files,
  }));
  await run(join(REPO_ROOT, 'node_modules/.bin/tsc'), ['-p', dir, '--pretty', 'false'], { cwd: dir }).catch((err: { stdout?: string; message: string }) => {
    for (const line of (err.stdout || err.message).split('\n').filter((l) => l.trim())) {
      if (/^\s/.test(line) && diagnostics.length) diagnostics[diagnostics.length - 1] += `\n${line}`;
      else diagnostics.push(line);
    }
  });
}, 180_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

test.each(HEADINGS)('the example in "%s" type-checks against lib/, with no deprecated call', (heading) => {
  const example = examples.get(heading)!;
  if (example instanceof Error) throw example;
  expect(example).toMatch(/from 'restorable';/);
  expect(example).not.toMatch(/\.addDependency\(/); // deprecated, and BackupStore adds the dependency itself
  // Another example's own errors are that example's failure; every other line (lib/, the compiler itself) fails both.
  const others = HEADINGS.filter((h) => h !== heading).map(fileOf);
  const mine = diagnostics.filter((diagnostic) => !others.some((file) => diagnostic.startsWith(file)));
  if (mine.length) throw new Error(`the README example does not compile:\n${mine.join('\n')}`);
});
