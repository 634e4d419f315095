/**
 * `restorable runbook --vault` against the S3 emulator: it prints the vault's own runbook, `{source}/vault/RUNBOOK.md`,
 * which the vault's account writes (VaultRunbook), not the `{source}/RUNBOOK.md` replication carries from the primary;
 * without --vault it prints the latter as before. Its absence is said in words, and --help describes the flag.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { ReportsCopy, runbookKey } from '../../lib/contract';
import { S3Emulator, agentEnv, requireAgentBundle, runAgent, startS3rver } from '../support';

const PREFIX = 'prod/';
let s3: S3Emulator;

const put = (key: string, body: string) => s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: body }));
const runbook = (...extra: string[]) => runAgent(['runbook', '--source', 'orders-db', '--bucket', s3.bucket, '--prefix', PREFIX, ...extra], agentEnv(s3.env));

beforeAll(async () => {
  requireAgentBundle();
  s3 = await startS3rver('runbook-vault');
  await put(runbookKey(PREFIX, 'orders-db'), '# the primary account\'s runbook, replicated\n');
  await put(runbookKey(PREFIX, 'orders-db', ReportsCopy.VAULT), '# the vault\'s own runbook\n');
});

afterAll(async () => { await s3?.stop(); });

test('with --vault it prints {source}/vault/RUNBOOK.md, the vault\'s own; without, {source}/RUNBOOK.md as before', async () => {
  expect(runbookKey(PREFIX, 'orders-db', ReportsCopy.VAULT)).toBe('prod/orders-db/vault/RUNBOOK.md');
  const own = await runbook('--vault');
  expect({ code: own.code, stdout: own.stdout, stderr: own.stderr }).toEqual({ code: 0, stdout: '# the vault\'s own runbook\n', stderr: '' });
  const replicated = await runbook();
  expect({ code: replicated.code, stdout: replicated.stdout }).toEqual({ code: 0, stdout: '# the primary account\'s runbook, replicated\n' });
});

test('with --vault and no vault runbook, it says where it looked and what writes it, and never falls back to the replicated one', async () => {
  await put(runbookKey(PREFIX, 'shop-db'), '# the primary account\'s runbook, replicated\n');
  const run = await runAgent(['runbook', '--source', 'shop-db', '--bucket', s3.bucket, '--prefix', PREFIX, '--vault'], agentEnv(s3.env));
  expect({ code: run.code, stdout: run.stdout }).toEqual({ code: 1, stdout: '' });
  expect(run.stderr).toContain(`no runbook at s3://${s3.bucket}/prod/shop-db/vault/RUNBOOK.md: a vault's own runbook is written at deploy time ` +
    'by the VaultRunbook construct');
});

test('--help describes --vault', async () => {
  const run = await runAgent(['runbook', '--help'], agentEnv(s3.env));
  expect(run.code).toBe(0);
  expect(`${run.stdout}${run.stderr}`).toMatch(/--vault\s+the vault's own runbook, \{source\}\/vault\/RUNBOOK\.md, written by the vault's account/);
});
