/**
 * A failure is said once: one plain line on stderr, `restorable <command>: <what went wrong>`, which is what a person
 * reads in a terminal and in CloudWatch Logs (the task's stderr), and what to search them for. It is not repeated as
 * a JSON log record, and the command is named once. The JSON records stay, as logs. The bundled agent is run against
 * a stand-in for AWS that records every request and answers as each test says.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentRun, AgeKey, agentEnv, logLines, makeAgeKey, requireAgentBundle, runAgent } from '../support';
import { AwsRecorder, EMPTY_LISTING, RecordedAnswer, s3Error } from '../support/aws-recorder';

const dir = mkdtempSync(join(tmpdir(), 'cli-errors-'));
/** The answer to the next requests; a test sets it. */
let answer: (method: string, url: string) => RecordedAnswer;
const recorder = new AwsRecorder((r) => answer(r.method, r.url));
let endpoint: string;
let key: AgeKey;

const env = () => agentEnv({
  AWS_ENDPOINT_URL: endpoint, AWS_ENDPOINT_URL_S3: endpoint, AWS_REGION: 'eu-west-1', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test',
  AWS_CONFIG_FILE: join(dir, 'no-config'), AWS_SHARED_CREDENTIALS_FILE: join(dir, 'no-credentials'), AWS_EC2_METADATA_DISABLED: 'true',
});

/** stderr's failure lines: `restorable: …` or `restorable <command>: …`. */
const failureLines = (run: AgentRun) => run.stderr.split('\n').filter((l) => /^restorable(?: [a-z-]+)?: /.test(l));

/** The failure is said once, on its own line, starting with the command named once; no JSON record repeats it. */
function expectSaidOnce(run: AgentRun, code: number, line: RegExp): void {
  expect(run.code).toBe(code);
  const lines = failureLines(run);
  expect(lines).toEqual([expect.stringMatching(line)]);
  expect(lines[0]).not.toMatch(/^restorable ([a-z-]+): \1: /);
  expect(logLines(run.stderr).filter((l) => l.level === 'error')).toEqual([]);
  expect(run.stderr).not.toContain('unexpected error');
  expect(run.stderr).not.toMatch(/\n\s+at /);
}

/** How many times `text` occurs in `within`. */
const occurrences = (within: string, text: string) => within.split(text).length - 1;

beforeAll(async () => {
  requireAgentBundle();
  endpoint = await recorder.start();
  key = makeAgeKey();
});

afterAll(async () => {
  await recorder.stop();
  rmSync(dir, { recursive: true, force: true });
  rmSync(key?.dir ?? join(dir, 'none'), { recursive: true, force: true });
});

beforeEach(() => {
  recorder.requests.length = 0;
  answer = () => s3Error(500, 'InternalError', 'no answer was set for this test');
});

describe('a usage error: exit 2, one line naming the command once, then the usage', () => {
  test('an unknown option', async () => {
    const run = await runAgent(['status', '--bucket', 'backups', '--bogus'], env());
    expectSaidOnce(run, 2, /^restorable status: Unknown option '--bogus'/);
    expect(run.stderr).toContain('usage: restorable status [options]');
    expect(run.stdout).toBe('');
    expect(recorder.requests).toEqual([]);
  });

  test('a missing required option', async () => {
    const run = await runAgent(['list', '--source', 'orders-db'], env());
    expectSaidOnce(run, 2, /^restorable list: --bucket is required$/);
    expect(run.stderr).toContain('usage: restorable list [options]');
  });

  test('a bad value the command finds', async () => {
    const run = await runAgent(['restore', '--source', 'orders-db', '--bucket', 'backups', '--jobs', '0'], env());
    expectSaidOnce(run, 2, /^restorable restore: --jobs must be a whole number from 1 to 64 \(got '0'\)$/);
    expect(recorder.requests).toEqual([]);
  });

  test('an unknown command names no command, and lists them', async () => {
    const run = await runAgent(['frobnicate', '--bucket', 'backups'], env());
    expectSaidOnce(run, 2, /^restorable: unknown command 'frobnicate'$/);
    expect(run.stderr).toContain('Run `restorable <command> --help` for its options.');
  });
});

describe('a failure while running: exit 1, one line', () => {
  test('an S3 error', async () => {
    answer = () => s3Error(403, 'AccessDenied', 'Access Denied');
    const run = await runAgent(['list', '--source', 'orders-db', '--bucket', 'backups'], env());
    expectSaidOnce(run, 1, /^restorable list: S3 ListObjectsV2 s3:\/\/backups\/orders-db\/ failed: access denied: check the task role/);
    expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(run.stdout).toBe('');
  });

  test('a failed restore test: its records stay JSON logs, its failures are said once, on the failure line', async () => {
    // No backup to restore, and the report cannot be stored: two failures, one line that names them both.
    answer = (method, url) => (method === 'PUT' ? s3Error(403, 'AccessDenied', 'Access Denied')
      : /[?&]list-type=2/.test(url) ? EMPTY_LISTING : s3Error(404, 'NoSuchKey', 'The specified key does not exist.'));
    const run = await runAgent(['restore-test', '--source', 'orders-db', '--bucket', 'backups', '--identity-file', key.identityFile,
      '--host', '127.0.0.1', '--user', 'nobody', '--database', 'scratch', '--json'], env());
    expectSaidOnce(run, 1, /^restorable restore-test: the restore test of orders-db failed:$/);
    // The failure's own words follow it, indented, as part of it.
    const after = run.stderr.split('\n').slice(run.stderr.split('\n').indexOf(failureLines(run)[0]) + 1).filter((l) => l !== '');
    expect(after).toEqual([expect.stringMatching(/^ {2}- the restore failed: /), expect.stringMatching(/^ {2}- the report could not be stored: /)]);
    expect(occurrences(run.stderr, 'the report could not be stored')).toBe(1);
    expect(logLines(run.stderr)).toContainEqual(expect.objectContaining({ level: 'info', msg: 'restore test finished', success: false }));
    // The report still goes to stdout.
    expect(JSON.parse(run.stdout)).toMatchObject({ source: 'orders-db', success: false });
  });
});
