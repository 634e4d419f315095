/**
 * The process pipeline's stages, run for real: a failed stage's stderr tail reaches the error without the control
 * characters a tool may have echoed from what it read (a backup's names), and a stage runs in the directory it names.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessPipeline } from '../../container/src/shared/pipeline';

const dir = mkdtempSync(join(tmpdir(), 'restorable-pipeline-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('a failed stage\'s stderr reaches the error without control characters, newlines and tabs kept', async () => {
  // An OSC 52 clipboard write, a bell, a C1 CSI and a carriage return, as a collection name might carry them.
  const echoed = 'failed: namespace db.\\033]52;c;ZWNobyBoaQ==\\007evil\\r\\tnext\\n\\302\\233line';
  const run = new ProcessPipeline([{ name: 'tool', command: 'bash', args: ['-c', `printf '${echoed}' >&2; exit 3`] }]).done;
  const error = await run.then(() => undefined, (err: Error) => err);
  expect(error?.message).toBe("stage 'tool' exited with code 3:\nfailed: namespace db.]52;c;ZWNobyBoaQ==evil\tnext\nline");
});

test('a stage runs in its working directory when it names one', async () => {
  await new ProcessPipeline([{ name: 'pwd', command: 'bash', args: ['-c', `pwd > '${join(dir, 'seen')}'`], cwd: dir }]).done;
  expect(readFileSync(join(dir, 'seen'), 'utf8').trim()).toBe(dir);
});
