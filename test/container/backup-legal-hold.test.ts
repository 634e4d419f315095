/**
 * "The last good backup is never lost" (design §3): with --legal-hold, once latest.json names the new backup, the
 * agent places an Object Lock legal hold on its dump, companions and manifest, then releases the hold on the
 * previous latest's objects. The emulator has no Object Lock, so SDK middleware answers PutObjectLegalHold (and
 * records it, in order with the latest.json writes) while every other call reaches the emulator.
 */
import { PutObjectCommand, PutObjectLegalHoldCommand, S3ServiceException } from '@aws-sdk/client-s3';
import { Manifest } from '../../lib/contract';
import { BackupResult } from '../../container/src/commands/backup';
import { AgeKey, S3Emulator, backupInProcess, createPgFixture, dropPgDatabase, makeAgeKey, pgQuery, readerRole, startS3rver, uniqueName } from '../support';

let s3: S3Emulator;
let key: AgeKey;
const database = uniqueName('hold_src');

type Call = { kind: 'hold'; key: string; status: string } | { kind: 'latest'; key: string };
const calls: Call[] = [];
/** What the next PutObjectLegalHold calls answer: ok, or an error for a given status (ON / OFF). */
let failHold: { status: string; error: S3ServiceException } | undefined;

beforeAll(async () => {
  s3 = await startS3rver();
  key = makeAgeKey();
  await createPgFixture(database, { customers: 30 });
  s3.client.middlewareStack.add((next, context) => async (args) => {
    const input = args.input as { Key: string; LegalHold?: { Status: string } };
    if (context.commandName === PutObjectLegalHoldCommand.name) {
      const status = input.LegalHold!.Status;
      calls.push({ kind: 'hold', key: input.Key, status });
      if (failHold?.status === status) throw failHold.error;
      return { output: { $metadata: { httpStatusCode: 200 } }, response: {} } as never;
    }
    if (context.commandName === PutObjectCommand.name && input.Key.endsWith('/latest.json')) calls.push({ kind: 'latest', key: input.Key });
    return next(args);
  }, { step: 'initialize', name: 'answerLegalHold' });
});

afterAll(async () => {
  await dropPgDatabase(database);
  await pgQuery('postgres', `DROP ROLE IF EXISTS ${readerRole(database)}`);
  await s3?.stop();
});

beforeEach(() => {
  calls.length = 0;
  failHold = undefined;
});

/** A backup of the fixture database, in this process, through the intercepted client. */
const backup = (source: string, extra: string[] = []) =>
  backupInProcess({ s3: s3.client, bucket: s3.bucket, recipient: key.recipient, database }, source, extra);

/** Dump, companions, manifest: every object of a backup. */
async function objectsOf(result: BackupResult): Promise<string[]> {
  const manifest = JSON.parse((await s3.getText(result.manifestKey))!) as Manifest;
  expect(manifest.companions.length).toBeGreaterThan(0); // the roles companion: held like the rest
  return [result.key, ...manifest.companions.map((c) => c.key), result.manifestKey];
}

test('two backups with --legal-hold: the second is held once latest.json names it, then the first is released', async () => {
  const first = (await backup('held', ['--legal-hold'])).result;
  const firstObjects = await objectsOf(first);
  expect(calls).toEqual([
    { kind: 'latest', key: 'held/latest.json' },
    ...firstObjects.map((k) => ({ kind: 'hold', key: k, status: 'ON' })), // nothing before it to release
  ]);

  calls.length = 0;
  const second = (await backup('held', ['--legal-hold'])).result;
  expect(second.latestMoved).toBe(true);
  expect(second.key).not.toBe(first.key);
  const secondObjects = await objectsOf(second);
  expect(calls).toEqual([
    { kind: 'latest', key: 'held/latest.json' },
    ...secondObjects.map((k) => ({ kind: 'hold', key: k, status: 'ON' })),
    ...firstObjects.map((k) => ({ kind: 'hold', key: k, status: 'OFF' })),
  ]);
  expect(second.warnings).toEqual([]);
});

test('without --legal-hold no legal hold is placed or released', async () => {
  await backup('unheld');
  await backup('unheld');
  expect(calls.filter((c) => c.kind === 'hold')).toEqual([]);
  expect(calls.filter((c) => c.kind === 'latest')).toHaveLength(2);
});

test('a hold that cannot be placed fails the run and says the backup is stored and latest.json names it', async () => {
  const first = (await backup('hold-denied', ['--legal-hold'])).result;
  failHold = {
    status: 'ON',
    error: new S3ServiceException({ name: 'AccessDenied', $fault: 'client', $metadata: { httpStatusCode: 403 }, message: 'Access Denied' }),
  };
  calls.length = 0;
  const run = backup('hold-denied', ['--legal-hold']);
  await expect(run).rejects.toThrow(/the backup s3:\/\/backups\/hold-denied\/\S+ is stored and latest\.json names it, but its legal hold could not be placed/);
  await expect(run).rejects.toThrow(/s3:PutObjectLegalHold/);
  await expect(run).rejects.not.toThrow(/\n\s+at /); // no stack trace in the message
  // latest.json moved before the hold was tried, and the previous backup keeps its hold.
  expect(calls[0]).toEqual({ kind: 'latest', key: 'hold-denied/latest.json' });
  expect(calls.filter((c) => c.kind === 'hold')).toHaveLength(1);
  expect(calls.some((c) => c.kind === 'hold' && c.status === 'OFF')).toBe(false);
  const latest = JSON.parse((await s3.getText('hold-denied/latest.json'))!) as { key: string };
  expect(latest.key).not.toBe(first.key);
});

test('a hold that cannot be released is a warning: the run succeeds and says which object keeps its hold', async () => {
  const first = (await backup('release-denied', ['--legal-hold'])).result;
  failHold = {
    status: 'OFF',
    error: new S3ServiceException({ name: 'AccessDenied', $fault: 'client', $metadata: { httpStatusCode: 403 }, message: 'Access Denied' }),
  };
  const { result, logged } = await backup('release-denied', ['--legal-hold']);
  expect(result.latestMoved).toBe(true);
  const firstObjects = await objectsOf(first);
  expect(result.warnings).toHaveLength(firstObjects.length);
  expect(result.warnings[0]).toContain(`the legal hold on the previous backup's s3://backups/${first.key} could not be released`);
  expect(logged).toContain('could not be released');
  expect(logged).toContain('backup finished');
});
