/**
 * `restorable status` and `restorable list` for sources that archive their WAL continuously, on moto's server: dumps
 * made by the agent (in this process) from a real PostgreSQL database, and beside them what WAL archiving stores, under
 * the names the agent gives it: base backups with base/latest.json, WAL objects, and a restore-test report with the
 * point-in-time restore it measured (pitr.restoreSeconds). Status shows the continuous RPO in seconds since S3 stored
 * the newest WAL, and the measured PITR restore time; it reads the WAL from the newest base backup on, and list reads
 * the dated folders only, never wal/ or base/ (the S3 requests are recorded). What a dumping role could write there
 * is read with limits and named.
 */
import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { Tier, baseBackupKey, baseLatestKey, manifestKeyFor, receivedPartialName, restoreTestLatestKey, walKey } from '../../lib/contract';
import { LIST_COMMAND, runList } from '../../container/src/commands/list';
import { Readiness, STATUS_COMMAND, StatusReport, formatStatus, runStatus, statusFailure } from '../../container/src/commands/status';
import { parseCommandArgs } from '../../container/src/shared/args';
import {
  Moto, MotoBucket, agentEnv, backupInProcess, createPgFixture, dropPgDatabase, makeAgeKey, motoBucket, pgQuery, readerRole, runAgent, sharedMoto, uniqueName,
} from '../support';
import { recordingClient } from './status-fixtures';

const PREFIX = 'prod/';
const database = uniqueName('status_wal');
let s3: MotoBucket;
let moto: Moto;

const put = (key: string, body: string) => s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: body }));

/** A base backup of `source` from `startWalFile` on, with base/latest.json naming it. */
async function baseBackup(source: string, startWalFile: string): Promise<string> {
  const startedAt = new Date(Date.now() - 120_000);
  const key = baseBackupKey(PREFIX, source, startedAt);
  await put(key, 'sealed tar');
  await put(baseLatestKey(PREFIX, source), JSON.stringify({
    formatVersion: 1, source, key, manifestKey: manifestKeyFor(key), startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(),
    tier: Tier.DAILY, size: 10, sha256: 'c'.repeat(64), timeline: 1, startWalFile,
  }));
  return key;
}

const wal = (source: string, file: string) => put(walKey(PREFIX, source, file), `sealed ${file}`);

let report: StatusReport;
let checked: { listed: string[] };
let newestWalStored: number;

beforeAll(async () => {
  moto = await sharedMoto();
  s3 = await motoBucket({}, moto);
  await createPgFixture(database, { customers: 20 });
  const key = makeAgeKey();
  const target = { s3: s3.client, bucket: s3.bucket, recipient: key.recipient, database };
  for (const source of ['pitr-db', 'dump-db']) await backupInProcess(target, source, ['--prefix', PREFIX]);

  // pitr-db: a WAL before its base backup (never read), the chain since, and a received partial last.
  await wal('pitr-db', '000000010000000000000002');
  await baseBackup('pitr-db', '000000010000000000000004');
  for (const file of ['000000010000000000000004', '000000010000000000000005', receivedPartialName('000000010000000000000006', 0x3000)]) {
    await wal('pitr-db', file);
  }
  newestWalStored = (await s3.client.send(new HeadObjectCommand({
    Bucket: s3.bucket, Key: walKey(PREFIX, 'pitr-db', receivedPartialName('000000010000000000000006', 0x3000)),
  }))).LastModified!.getTime();
  await put(restoreTestLatestKey(PREFIX, 'pitr-db'), JSON.stringify({
    source: 'pitr-db', finishedAt: new Date().toISOString(), success: true, durationSeconds: 140,
    pitr: { targetTime: new Date().toISOString(), recoveredTo: new Date().toISOString(), baseBackupKey: 'k', walFilesReplayed: 3, restoreSeconds: 95 },
  }));
  await put(restoreTestLatestKey(PREFIX, 'dump-db'), JSON.stringify({ source: 'dump-db', finishedAt: new Date().toISOString(), success: true, durationSeconds: 30 }));
  // wal-only-db: a base backup and its WAL, no dump yet, never restore-tested.
  await baseBackup('wal-only-db', '000000010000000000000001');
  await wal('wal-only-db', '000000010000000000000001');
  // huge-db: a base pointer no agent writes.
  await put(baseLatestKey(PREFIX, 'huge-db'), 'x'.repeat(64 * 1024 + 1));

  const recording = recordingClient(moto);
  report = await runStatus(parseCommandArgs(STATUS_COMMAND, ['--bucket', s3.bucket, '--prefix', PREFIX]), recording.client);
  checked = recording;
});

afterAll(async () => {
  await dropPgDatabase(database);
  await pgQuery('postgres', `DROP ROLE IF EXISTS ${readerRole(database)}`);
});

const of = (source: string) => report.sources.find((s) => s.source === source)!;

test('a WAL-archived source: the continuous RPO in seconds since S3 stored its newest WAL, and the PITR restore time its test measured', () => {
  const pitr = of('pitr-db');
  expect(pitr.readiness).toBe(Readiness.READY);
  expect(pitr.continuous).toMatchObject({ newestWalFile: '000000010000000000000006.partial.00003000', forged: [] });
  expect(pitr.continuous!.rpoSeconds).toBe(Math.max(0, Math.round((Date.parse(report.checkedAt) - newestWalStored) / 1000)));
  expect(pitr.lastRestoreTest).toMatchObject({ success: true, durationSeconds: 140, pitrRestoreSeconds: 95 });
  expect(pitr.summary).toMatch(new RegExp(`^pitr-db: back online in about 2 minutes \\(a point-in-time restore, measured at 95 s\\), with data from ` +
    `${pitr.continuous!.rpoSeconds} seconds ago \\(continuous WAL archive\\) \\(restore test passed`));

  const text = formatStatus(report).split('\n');
  expect(text.find((l) => l.startsWith('pitr-db ')))
    .toMatch(new RegExp(`^pitr-db\\s+${pitr.continuous!.rpoSeconds} s ago \\(WAL\\)\\s+passed \\d+ seconds? ago\\s+95 s \\(PITR\\)\\s+ready$`));
});

test('a source that only dumps is as before; one with a base backup and no dump yet is restorable, not "no backup"', () => {
  const dump = of('dump-db');
  expect(dump.continuous).toBeUndefined();
  expect(dump.lastRestoreTest?.pitrRestoreSeconds).toBeUndefined();
  expect(dump.summary).toMatch(/^dump-db: back online in about 30 seconds, with data from \d+ seconds? ago \(restore test passed/);
  const walOnly = of('wal-only-db');
  expect(walOnly.readiness).toBe(Readiness.NEVER_TESTED);
  expect(walOnly.summary).toMatch(/^wal-only-db: NEVER RESTORE-TESTED: .*the newest backup holds data from \d+ seconds ago \(continuous WAL archive\)\.$/);
});

test('a base pointer no agent writes makes the source unknown, in words, and the run fail', () => {
  expect(of('huge-db')).toMatchObject({ readiness: Readiness.UNKNOWN });
  expect(of('huge-db').problem).toBe(`base backup pointer s3://${s3.bucket}/${baseLatestKey(PREFIX, 'huge-db')} is 65537 bytes, more than the 65536 a real one takes: not read`);
  expect(statusFailure(report)!.message).toContain('the status of 1 of 4 sources could not be read');
});

test('status lists the sources once and each archive from its base backup\'s first WAL file on, never the whole wal/', () => {
  expect(checked.listed.filter((l) => l.includes('/wal/')).sort()).toEqual([
    `${PREFIX}pitr-db/wal/ after 000000010000000000000004`, `${PREFIX}wal-only-db/wal/ after 000000010000000000000001`,
  ]);
  expect(checked.listed).toContain(`${PREFIX} (delimited)`);
});

test('list shows a source\'s dumps from its dated folders only, never listing wal/ or base/', async () => {
  const { client, listed } = recordingClient(moto);
  const rows = await runList(parseCommandArgs(LIST_COMMAND, ['--source', 'pitr-db', '--bucket', s3.bucket, '--prefix', PREFIX]), client);
  expect(rows).toHaveLength(1);
  expect(rows[0]).toMatchObject({ latest: true, storageClass: 'STANDARD' });
  expect(rows[0].key).toMatch(/^prod\/pitr-db\/\d{4}\/\d{2}\/\d{2}\/pitr-db_.*\.pgdump\.zst\.age$/);
  const year = rows[0].key.split('/')[2];
  expect(listed).toEqual([`${PREFIX}pitr-db/ (delimited)`, `${PREFIX}pitr-db/${year}/`]);
});

test('the CLI prints the same, and exits 1 for the unreadable source', async () => {
  const run = await runAgent(['status', '--bucket', s3.bucket, '--prefix', PREFIX, '--json'], agentEnv(s3.env));
  expect(run.code).toBe(1);
  const printed = JSON.parse(run.stdout) as StatusReport;
  expect(printed.sources.find((s) => s.source === 'pitr-db')!.lastRestoreTest!.pitrRestoreSeconds).toBe(95);
});
