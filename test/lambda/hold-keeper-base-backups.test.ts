/**
 * The hold keeper's base backup and WAL holds, on moto's server, for a source added with a WAL archive: base backups,
 * manifests, base/latest.json and WAL objects written and held as the base backup schedule and the WAL receiver
 * write and hold them (whole segments and history files held, received partials not), and point-in-time
 * restore-test reports as the restore-test command stores them. Holds are read back from the server.
 *
 * moto cannot backdate a LastModified, so the scenarios that release run with no grace (releaseAfterSeconds 0); one
 * runs with the default week, and a fresh pass releases nothing.
 */
import { GetObjectLegalHoldCommand, ListObjectsV2Command, ObjectLockRetentionMode, PutObjectCommand, PutObjectLegalHoldCommand } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import {
  BaseBackupManifest, Metrics, baseBackupKey, baseLatestKey, manifestKeyFor, receivedPartialName, restoreTestLatestKey, restoreTestsPrefix, timestampLabel,
  walKey,
} from '../../lib/contract';
import { HoldKeeperReport, SourceHolds, keepHolds } from '../../lambda/hold-keeper';
import { keepBaseBackups } from '../../lambda/hold-keeper/base-backups';
import { MotoBucket, motoBucket, uniqueName } from '../support';
import { monitorClients, monitorTestHooks, publishedMetrics } from './monitor-fixtures';

const PREFIX = 'backups/';
let s3: MotoBucket;

beforeAll(async () => {
  s3 = await motoBucket({ objectLock: { mode: ObjectLockRetentionMode.GOVERNANCE, days: 1 } });
});

monitorTestHooks(uniqueName('hold_keeper_base'), () => s3);

const put = (key: string, body: string | Buffer) => s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: body }));
const hold = (key: string) => s3.client.send(new PutObjectLegalHoldCommand({ Bucket: s3.bucket, Key: key, LegalHold: { Status: 'ON' } }));

/** A key's hold as the server has it: 'ON', 'OFF', or 'none' for an object that never had one. */
async function holdOf(key: string): Promise<string> {
  try {
    const out = await s3.client.send(new GetObjectLegalHoldCommand({ Bucket: s3.bucket, Key: key }));
    return out.LegalHold?.Status ?? 'none';
  } catch (err) {
    if ((err as Error).name === 'NoSuchObjectLockConfiguration') return 'none';
    throw err;
  }
}
const holdsOf = async (keys: string[]) => Object.fromEntries(await Promise.all(keys.map(async (k) => [k, await holdOf(k)])));
const each = (keys: string[], status: string) => Object.fromEntries(keys.map((k) => [k, status]));

interface StoredBase {
  readonly key: string;
  readonly manifestKey: string;
  readonly manifest: BaseBackupManifest;
}

/** A base backup as the schedule stores it with --legal-hold: the object, its manifest, both held, and base/latest.json. */
async function baseBackup(source: string, startedAt: Date, startWalFile: string): Promise<StoredBase> {
  const key = baseBackupKey(PREFIX, source, startedAt);
  const body = Buffer.from(`base backup of ${source} from ${startWalFile}`);
  const manifest: BaseBackupManifest = {
    formatVersion: 1, kind: 'basebackup', source, engine: 'postgres' as BaseBackupManifest['engine'], serverVersion: '15',
    systemIdentifier: '7312345678901234567', timeline: parseInt(startWalFile.slice(0, 8), 16), startLsn: '0/2000028', endLsn: '0/2000100',
    startWalFile, endWalFile: startWalFile, startedAt: startedAt.toISOString(), finishedAt: startedAt.toISOString(),
    tier: 'daily' as BaseBackupManifest['tier'], key, size: body.length, sha256: createHash('sha256').update(body).digest('hex'), tarSize: 4096,
    recipientFingerprint: 'f'.repeat(64), toolVersions: {}, warnings: [],
  };
  const manifestKey = manifestKeyFor(key);
  await put(key, body);
  await put(manifestKey, JSON.stringify(manifest));
  await hold(key);
  await hold(manifestKey);
  await pointAt(source, { key, manifestKey, manifest });
  return { key, manifestKey, manifest };
}

async function pointAt(source: string, base: StoredBase, changes: Record<string, unknown> = {}): Promise<void> {
  const m = base.manifest;
  await put(baseLatestKey(PREFIX, source), JSON.stringify({
    formatVersion: 1, source, key: base.key, manifestKey: base.manifestKey, startedAt: m.startedAt, finishedAt: m.finishedAt, tier: m.tier,
    size: m.size, sha256: m.sha256, timeline: m.timeline, startWalFile: m.startWalFile, ...changes,
  }));
}

/** WAL files as the receiver stores them with --legal-hold: whole segments and history files held, partials not. */
async function archive(source: string, files: string[]): Promise<string[]> {
  const keys = files.map((f) => walKey(PREFIX, source, f));
  for (const [i, f] of files.entries()) {
    await put(keys[i], `wal ${f}`);
    if (!f.includes('.partial.')) await hold(keys[i]);
  }
  return keys;
}

/** A point-in-time restore test's report, as the restore-test command stores it (its key is the base backup's). */
async function reportPitrTest(source: string, base: StoredBase, success: boolean): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 1100 - (Date.now() % 1000)));
  const finishedAt = new Date();
  const reportKey = `${restoreTestsPrefix(PREFIX, source)}${source}_${timestampLabel(finishedAt)}Z.json`;
  const report = {
    formatVersion: 1, source, bucket: s3.bucket, key: base.key, backupStartedAt: base.manifest.startedAt, startedAt: finishedAt.toISOString(),
    finishedAt: finishedAt.toISOString(), success, durationSeconds: 9, tablesChecked: 1, rowsChecked: 0, tables: [], checks: [],
    failures: success ? [] : ['recovered to a time too far before the target'], reportKey,
    pitr: { targetTime: finishedAt.toISOString(), recoveredTo: finishedAt.toISOString(), baseBackupKey: base.key, walFilesReplayed: 3, restoreSeconds: 4 },
  };
  for (const k of [reportKey, restoreTestLatestKey(PREFIX, source)]) await put(k, JSON.stringify(report));
}

async function keep(source: string, releaseAfterSeconds?: number): Promise<{ report: HoldKeeperReport; kept: SourceHolds }> {
  const report = await keepHolds({ sources: [source], walArchived: [source] }, monitorClients(s3, PREFIX).clients, new Date(), { releaseAfterSeconds });
  return { report, kept: report.sources[0] };
}

const day = (d: number) => new Date(Date.UTC(2026, 10, d, 2, 0, 0));
const TL1 = (n: number) => `00000001000000000000000${n}`;
const TL2 = (n: number) => `00000002000000000000000${n}`;

describe('given a WAL-archived source with three base backups, a timeline switch and received partials', () => {
  const source = 'pitr-pg';
  let first: StoredBase;
  let second: StoredBase;
  let third: StoredBase;
  let before: string[];
  let history: string[];
  let after: string[];
  let partials: string[];

  beforeAll(async () => {
    first = await baseBackup(source, day(1), TL1(2));
    before = await archive(source, [TL1(1), TL1(2), TL1(3), TL1(4), TL1(5)]);
    history = await archive(source, ['00000002.history']);
    before.push(...await archive(source, [TL2(5)]));
    second = await baseBackup(source, day(2), TL2(6));
    after = await archive(source, [TL2(6), TL2(7)]);
    third = await baseBackup(source, day(3), TL2(8));
    after.push(...await archive(source, [TL2(8)]));
    partials = await archive(source, [receivedPartialName(TL1(3), 0x2000), receivedPartialName(TL2(9), 0x4000)]);
  });

  test('when no restore test has reported, then the newest base backup keeps its hold and nothing is released', async () => {
    const { report, kept } = await keep(source, 0);
    expect(kept.base).toMatchObject({ newest: third.key, held: [third.key, third.manifestKey], released: [], problems: [] });
    expect(kept.base?.settled).toBeUndefined();
    expect(report.failed).toEqual([]);
    expect(await holdsOf([...before, ...history, ...after, first.key, second.key, third.key])).toEqual(
      each([...before, ...history, ...after, first.key, second.key, third.key], 'ON'));
  });

  test('when a point-in-time restore test of the second has failed, then nothing is released', async () => {
    await reportPitrTest(source, second, false);
    const { kept } = await keep(source, 0);
    expect(kept.base).toMatchObject({ newest: third.key, released: [], problems: [] });
    expect(kept.base?.settled).toBeUndefined();
    expect(await holdsOf(before)).toEqual(each(before, 'ON'));
  });

  test('when it has just passed, with the default grace of a week, then nothing is released', async () => {
    await reportPitrTest(source, second, true);
    const { kept } = await keep(source);
    expect(kept.base).toMatchObject({ newest: third.key, released: [], problems: [] });
    expect(kept.base?.settled).toBeUndefined();
    expect(await holdsOf([...before, first.key, first.manifestKey])).toEqual(each([...before, first.key, first.manifestKey], 'ON'));
  });

  test('when its pass is settled, then only the WAL before its first segment and the older base backup lose their holds', async () => {
    const { report, kept } = await keep(source, 0);
    expect(report.failed).toEqual([]);
    // The dumps' keeper reads the same report and takes it for none of its own: no problem, no dump proof.
    expect(kept).toMatchObject({ problems: [], released: [] });
    expect(kept.base).toMatchObject({
      newest: third.key, settled: second.key, held: [second.key, second.manifestKey, third.key, third.manifestKey].sort(), problems: [],
    });
    expect(kept.base?.released).toEqual([...before, first.key, first.manifestKey].sort());
    expect(await holdsOf([...before, first.key, first.manifestKey])).toEqual(each([...before, first.key, first.manifestKey], 'OFF'));
    // At and after the settled base backup's start, and the history of its own timeline, nothing goes.
    expect(await holdsOf([...history, ...after, second.key, second.manifestKey, third.key, third.manifestKey]))
      .toEqual(each([...history, ...after, second.key, second.manifestKey, third.key, third.manifestKey], 'ON'));
    expect(await holdsOf(partials)).toEqual(each(partials, 'none'));

    const again = await keep(source, 0);
    expect(again.kept.base).toMatchObject({ settled: second.key, placed: [], released: [], problems: [] });
  });

  test('when the event does not say the source is WAL-archived, then its base backups and WAL are not looked at', async () => {
    const report = await keepHolds({ sources: [source] }, monitorClients(s3, PREFIX).clients, new Date(), { releaseAfterSeconds: 0 });
    expect(report.sources[0].base).toBeUndefined();
  });
});

describe('given a base/latest.json a compromised task wrote', () => {
  test('when it states a size other than its manifest\'s, then it is refused and PointerMismatch is published, and only the settled base backup bounds what is released', async () => {
    const source = 'forged-base-pg';
    const first = await baseBackup(source, day(1), TL1(2));
    const wal = await archive(source, [TL1(1), TL1(2), TL1(3)]);
    const second = await baseBackup(source, day(2), TL1(3));
    await reportPitrTest(source, second, true);
    const third = await baseBackup(source, day(3), TL1(4));
    await pointAt(source, third, { size: 1 });

    const { report, kept } = await keep(source, 0);

    expect(kept.refused).toBe(`s3://${s3.bucket}/${baseLatestKey(PREFIX, source)} states size 1 and the manifest of ${third.key} ${third.manifest.size}`);
    expect(kept.base?.newest).toBeUndefined();
    // The settled base backup is proof of its own: the WAL before it and the older base backup still go.
    expect(kept.base?.settled).toBe(second.key);
    expect(kept.base?.released).toEqual([wal[0], wal[1], first.key, first.manifestKey].sort());
    expect(report.failed).toEqual([]);
    const metrics = (await publishedMetrics()).filter((m) => m.MetricName === Metrics.POINTER_MISMATCH);
    expect(metrics).toEqual([
      { Namespace: 'Restorable', MetricName: 'PointerMismatch', Value: 1, Unit: 'Count', Dimensions: [{ Name: 'Source', Value: source }] },
      { Namespace: 'Restorable', MetricName: 'PointerMismatch', Value: 1, Unit: 'Count', Dimensions: undefined },
    ]);
  });

  test('when a passing report names a base backup whose manifest is not JSON, then it is reported and nothing is released', async () => {
    const source = 'broken-base-pg';
    const first = await baseBackup(source, day(1), TL1(2));
    const wal = await archive(source, [TL1(1), TL1(2)]);
    const second = await baseBackup(source, day(2), TL1(3));
    await reportPitrTest(source, second, true);
    await put(second.manifestKey, '{ not json');

    const { report, kept } = await keep(source, 0);

    expect(kept.base?.released).toEqual([]);
    expect(kept.base?.problems).toEqual([expect.stringContaining(`the settled base backup manifest s3://${s3.bucket}/${second.manifestKey} is not valid JSON`)]);
    expect(report.failed).toEqual([source]);
    expect(await holdsOf([...wal, first.key])).toEqual(each([...wal, first.key], 'ON'));
  });
});

describe('given more WAL below the settled base backup than one run may examine', () => {
  test('then each run releases what it may, each older base backup once the WAL before it is released, and the next run goes on from there', async () => {
    const source = 'capped-pg';
    const first = await baseBackup(source, day(1), TL1(2));
    const wal = await archive(source, [1, 2, 3, 4, 5, 6, 7].map(TL1));
    const second = await baseBackup(source, day(2), TL1(4));
    const third = await baseBackup(source, day(3), TL1(6));
    await reportPitrTest(source, third, true);
    const out = await s3.client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: restoreTestsPrefix(PREFIX, source) }));
    const reports = (out.Contents ?? []).map((o) => ({ key: o.Key!, size: o.Size!, lastModified: o.LastModified! }));
    const run = () => keepBaseBackups(monitorClients(s3, PREFIX).clients, source, reports, Date.now(), { listed: 1000, examined: 2 });

    const one = await run();
    expect(one).toMatchObject({ settled: third.key, problems: [] });
    expect(one.released).toEqual([wal[0], wal[1], first.key, first.manifestKey].sort());
    expect(jest.mocked(console.log).mock.calls.flat().join('\n')).toContain('WAL hold release cut short after 5 objects listed and 2 holds read below 000000010000000000000006');
    // The second resumes at the first base backup's start: its segment is read again, then one more and the second base backup.
    expect((await run()).released).toEqual([wal[2], second.key, second.manifestKey].sort());
    expect((await run()).released).toEqual([wal[3], wal[4]]);
    expect((await run()).released).toEqual([]);
    expect(await holdsOf([...wal, first.key, second.key, third.key])).toEqual({
      ...each(wal.slice(0, 5), 'OFF'), ...each(wal.slice(5), 'ON'), ...each([first.key, second.key], 'OFF'), [third.key]: 'ON',
    });
  });
});
