/**
 * A construct error is one line: the construct path (or the call), the property and the fix, with no stack trace,
 * so that an app run by the CDK CLI shows the user the message and not a trace through the library.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Duration } from 'aws-cdk-lib';
import { SourceEngine } from '../../lib';
import { RestorableError } from '../../lib/shared/errors';
import { standaloneStore } from './store-fixtures';

const run = promisify(execFile);
const root = join(__dirname, '..', '..');

test('given a bad prop, when the construct throws, then its error is one line with the path and the property, and its stack is that line', () => {
  const error = (() => {
    try {
      standaloneStore({ noncurrentVersionExpiration: Duration.hours(12) });
    } catch (e) {
      return e as Error;
    }
    throw new Error('expected the store to refuse half a day');
  })();
  expect(error).toBeInstanceOf(RestorableError);
  expect(error.message).toBe('Standalone/Store: noncurrentVersionExpiration must be a whole number of days, at least 1 (got 12 hours): ' +
    'S3 counts it in whole days; for example Duration.days(7)');
  expect(error.stack).toBe(`RestorableError: ${error.message}`);
});

test('given a bad version, when SourceEngine refuses it, then the error names the call, its argument and the property', () => {
  expect(() => SourceEngine.mysql('eight')).toThrow(new RestorableError("SourceEngine.mysql('eight')", "version must be a MySQL release series as a string, for example '8.4'"));
});

test('given an app with a bad prop, when it runs, then it exits 1 and prints the message without a stack trace', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'restorable-error-'));
  try {
    const app = join(dir, 'app.ts');
    writeFileSync(app, `import { App, Duration, Stack } from 'aws-cdk-lib';
import { BackupStore } from ${JSON.stringify(join(root, 'lib'))};
const stack = new Stack(new App(), 'Backups', { env: { account: '123456789012', region: 'eu-west-1' } });
new BackupStore(stack, 'Store', { accessLogsExpiration: Duration.hours(12) });
`);
    const failure = await run('npx', ['tsx', app], { cwd: root, env: { ...process.env, NODE_PATH: join(root, 'node_modules') } }).then(() => undefined, (error: { code: number; stderr: string }) => error);
    expect(failure?.code).toBe(1);
    expect(failure?.stderr).toContain('RestorableError: Backups/Store: accessLogsExpiration must be a whole number of days, at least 1 (got 12 hours)');
    expect(failure?.stderr).not.toMatch(/^\s+at /m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
