/**
 * The hold keeper trusts proof, not pointers, on moto's server: a bucket with Object Lock as BackupStore makes it,
 * backups made by the real agent (in this process, with --legal-hold, so it places its holds as a dump task does)
 * from a real PostgreSQL database, restore-test reports written as the restore-test command writes them, and
 * what a compromised dump task could write (a pointer to an object that differs from its manifest) written with the
 * SDK. Holds are read back from the server; PointerMismatch from moto's CloudWatch.
 *
 * A passing report releases older holds only once S3 has stored it for the release grace (7 days by default). moto
 * cannot backdate a LastModified, so the scenarios that release run with no grace (RELEASE_AFTER_SECONDS=0, as
 * `releaseAfter: Duration.days(0)` sets it); one runs with the default, and nothing a fresh pass proves is released.
 *
 * The agent places holds and never releases one: releasing is the hold keeper's alone.
 * Not tested here: the bucket policy that keeps a dump task from releasing holds (no emulator enforces bucket-policy
 * conditions; the policy simulator's matrix test covers it).
 */
import { GetObjectLegalHoldCommand, HeadObjectCommand, ObjectLockRetentionMode, PutObjectCommand, PutObjectLegalHoldCommand } from '@aws-sdk/client-s3';
import {
  DumpFormat, LatestPointer, Manifest, Metrics, backupKey, globalsKeyFor, latestKey, manifestKeyFor, parseBackupKey, restoreTestLatestKey,
  restoreTestsPrefix, timestampLabel,
} from '../../lib/contract';
import { HoldKeeperOptions, HoldKeeperReport, HoldRule, handler, keepHolds } from '../../lambda/hold-keeper';
import { AgeKey, MotoBucket, backupInProcess, createPgFixture, makeAgeKey, motoBucket, uniqueName } from '../support';
import { handlerEnv, monitorClients, monitorTestHooks, publishedMetrics, withEnv } from './monitor-fixtures';

const PREFIX = 'backups/';
const database = uniqueName('hold_keeper');
let s3: MotoBucket;
let key: AgeKey;

beforeAll(async () => {
  s3 = await motoBucket({ objectLock: { mode: ObjectLockRetentionMode.GOVERNANCE, days: 1 } });
  key = makeAgeKey();
  await createPgFixture(database, { customers: 30 });
});

monitorTestHooks(database, () => s3);

/** One backup by the agent, as the source's dump task makes it: latest.json names it and it is held. */
async function backUp(source: string): Promise<LatestPointer> {
  const { result } = await backupInProcess({ s3: s3.client, bucket: s3.bucket, recipient: key.recipient, database }, source,
    ['--prefix', PREFIX, '--legal-hold']);
  if (!result.latestMoved) throw new Error(`the backup of ${source} did not move latest.json`);
  return JSON.parse((await s3.getText(latestKey(PREFIX, source)))!) as LatestPointer;
}

/** A run with no release grace: a pass releases the older holds at once. */
const keepAll = (...sources: string[]): Promise<HoldKeeperReport> => keepWith({ releaseAfterSeconds: 0 }, ...sources);
const keepWith = (options: HoldKeeperOptions, ...sources: string[]): Promise<HoldKeeperReport> =>
  keepHolds({ sources }, monitorClients(s3, PREFIX).clients, new Date(), options);

/** A restore test's report, as the restore-test command stores it: the dated report, then restore-tests/latest.json. */
async function reportRestoreTest(source: string, backup: LatestPointer, success: boolean): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 1100 - (Date.now() % 1000)));
  const finishedAt = new Date();
  const reportKey = `${restoreTestsPrefix(PREFIX, source)}${source}_${timestampLabel(finishedAt)}Z.json`;
  const report = {
    formatVersion: 1, source, bucket: s3.bucket, key: backup.key, backupStartedAt: backup.startedAt, startedAt: finishedAt.toISOString(),
    finishedAt: finishedAt.toISOString(), success, durationSeconds: 3, tablesChecked: 1, rowsChecked: 30, tables: [], checks: [],
    failures: success ? [] : ['customers: 0 rows, expected 30'], reportKey,
  };
  for (const k of [reportKey, restoreTestLatestKey(PREFIX, source)]) {
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: k, Body: JSON.stringify(report), ContentType: 'application/json' }));
  }
}

/** When S3 stored the source's restore-tests/latest.json, in ms. */
async function reportStoredAt(source: string): Promise<number> {
  const out = await s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: restoreTestLatestKey(PREFIX, source) }));
  return out.LastModified!.getTime();
}

/** Dump, globals companion and manifest of a backup, those that are stored. */
async function objectsOf(backup: { key: string }): Promise<string[]> {
  const stored = new Set(await s3.keys(PREFIX));
  return [backup.key, globalsKeyFor(backup.key), manifestKeyFor(backup.key)].filter((k) => stored.has(k)).sort();
}

async function isHeld(objectKey: string): Promise<boolean> {
  const out = await s3.client.send(new GetObjectLegalHoldCommand({ Bucket: s3.bucket, Key: objectKey }));
  return out.LegalHold?.Status === 'ON';
}

/** Each object with its hold, as the server has it. */
async function holds(keys: string[]): Promise<[string, boolean][]> {
  return Promise.all(keys.map(async (k): Promise<[string, boolean]> => [k, await isHeld(k)]));
}
const all = (keys: string[], held: boolean) => keys.map((k) => [k, held]);

/** Holds placed on every object of a backup, as a dump task may place them (it may place, never release). */
async function hold(keys: string[]): Promise<void> {
  for (const k of keys) await s3.client.send(new PutObjectLegalHoldCommand({ Bucket: s3.bucket, Key: k, LegalHold: { Status: 'ON' } }));
}

describe('given a source whose restore tests report', () => {
  const source = 'proven-pg';
  let first: LatestPointer;
  let second: LatestPointer;

  beforeAll(async () => {
    first = await backUp(source);
    await reportRestoreTest(source, first, true);
    second = await backUp(source);
  });

  test('when a newer backup arrives untested, then the last proven backup keeps its hold beside the newest, and nothing is released', async () => {
    const report = await keepAll(source);

    const [holds1] = report.sources;
    expect(holds1).toMatchObject({ source, rule: HoldRule.PROVEN, newest: second.key, proven: first.key, settled: first.key, released: [], problems: [] });
    expect(holds1.refused).toBeUndefined();
    expect(holds1.held).toEqual([...await objectsOf(first), ...await objectsOf(second)].sort());
    expect(await holds(await objectsOf(first))).toEqual(all(await objectsOf(first), true));
    expect(await holds(await objectsOf(second))).toEqual(all(await objectsOf(second), true));
    expect(report.failed).toEqual([]);
  });

  test('when its restore test then fails, then the proven backup still keeps its hold: only a pass moves the proof', async () => {
    await reportRestoreTest(source, second, false);
    const [holds2] = (await keepAll(source)).sources;

    expect(holds2).toMatchObject({ rule: HoldRule.PROVEN, newest: second.key, proven: first.key, released: [], problems: [] });
    expect(await holds(await objectsOf(first))).toEqual(all(await objectsOf(first), true));
  });

  test('when the newer backup passes its restore test, then the older holds are released and the newer keeps its own', async () => {
    await reportRestoreTest(source, second, true);
    const [holds3] = (await keepAll(source)).sources;

    expect(holds3).toMatchObject({ rule: HoldRule.PROVEN, newest: second.key, proven: second.key, settled: second.key, problems: [] });
    expect(holds3.released).toEqual(await objectsOf(first));
    expect(holds3.held).toEqual(await objectsOf(second));
    expect(await holds(await objectsOf(first))).toEqual(all(await objectsOf(first), false));
    expect(await holds(await objectsOf(second))).toEqual(all(await objectsOf(second), true));
  });
});

describe('given the default release grace of 7 days', () => {
  const source = 'graced-pg';
  let first: LatestPointer;
  let second: LatestPointer;

  beforeAll(async () => {
    first = await backUp(source);
    await reportRestoreTest(source, first, true);
    second = await backUp(source);
    await reportRestoreTest(source, second, true);
  });

  test('when a newer backup has just passed its restore test, then nothing is released and the older proven backup keeps its hold', async () => {
    // What a dump role's fake backup, decryptable and passing against its own manifest, would look like to the keeper.
    const [kept] = (await keepWith({}, source)).sources;

    expect(kept).toMatchObject({ source, rule: HoldRule.PROVEN, newest: second.key, proven: second.key, released: [], problems: [] });
    // No pass is a week old: nothing is settled, so nothing is released.
    expect(kept.settled).toBeUndefined();
    expect(kept.held).toEqual(await objectsOf(second));
    expect(await holds(await objectsOf(first))).toEqual(all(await objectsOf(first), true));
    expect(await holds(await objectsOf(second))).toEqual(all(await objectsOf(second), true));
  });

  test('when the function runs with the default (RELEASE_AFTER_SECONDS unset), then nothing is released either', async () => {
    const report = await withEnv(handlerEnv({ BUCKET_NAME: s3.bucket, KEY_PREFIX: PREFIX }), () => handler({ sources: [source] }));

    expect(report.sources[0]).toMatchObject({ proven: second.key, released: [] });
    expect(await holds(await objectsOf(first))).toEqual(all(await objectsOf(first), true));
  });

  test('when the function runs with RELEASE_AFTER_SECONDS=0, then the older holds are released at once', async () => {
    const report = await withEnv(handlerEnv({ BUCKET_NAME: s3.bucket, KEY_PREFIX: PREFIX, RELEASE_AFTER_SECONDS: '0' }),
      () => handler({ sources: [source] }));

    expect(report.sources[0]).toMatchObject({ proven: second.key, settled: second.key, released: await objectsOf(first) });
    expect(await holds(await objectsOf(first))).toEqual(all(await objectsOf(first), false));
    expect(await holds(await objectsOf(second))).toEqual(all(await objectsOf(second), true));
  });

  test('when RELEASE_AFTER_SECONDS is not a whole number of seconds, then the function fails before it reads anything', async () => {
    const run = withEnv(handlerEnv({ BUCKET_NAME: s3.bucket, KEY_PREFIX: PREFIX, RELEASE_AFTER_SECONDS: '7d' }), () => handler({ sources: [source] }));

    await expect(run).rejects.toThrow('environment variable RELEASE_AFTER_SECONDS is "7d", not a whole number of seconds');
  });
});

describe('given a newer pass that is not settled yet and an older one that is', () => {
  test('then the newest, the newest proven and the settled backup keep their holds, and only what is older than the settled one is released', async () => {
    const source = 'settling-pg';
    const first = await backUp(source);
    await reportRestoreTest(source, first, true);
    const second = await backUp(source);
    await reportRestoreTest(source, second, true);
    const secondPassStored = await reportStoredAt(source);
    const third = await backUp(source); // as a dump role's fake would be: decryptable, and passing its restore test
    await reportRestoreTest(source, third, true);
    // A week after the second pass was stored, and less after the third's: moto cannot backdate a LastModified, so the clock moves.
    const now = new Date(secondPassStored + 7 * 24 * 3600 * 1000);
    expect(await reportStoredAt(source)).toBeGreaterThan(secondPassStored);

    const [kept] = (await keepHolds({ sources: [source] }, monitorClients(s3, PREFIX).clients, now)).sources;

    expect(kept).toMatchObject({ rule: HoldRule.PROVEN, newest: third.key, proven: third.key, settled: second.key, problems: [] });
    expect(kept.held).toEqual([...await objectsOf(second), ...await objectsOf(third)].sort());
    expect(kept.released).toEqual(await objectsOf(first));
    expect(await holds(await objectsOf(first))).toEqual(all(await objectsOf(first), false));
    expect(await holds(await objectsOf(second))).toEqual(all(await objectsOf(second), true));
    expect(await holds(await objectsOf(third))).toEqual(all(await objectsOf(third), true));
  });
});

describe('given a latest.json a compromised dump task wrote', () => {
  const source = 'forged-pg';
  let proven: LatestPointer;
  let honest: LatestPointer;

  beforeAll(async () => {
    proven = await backUp(source);
    await reportRestoreTest(source, proven, true);
    honest = await backUp(source);
  });

  test('when it names an object whose size differs from its manifest, then the pointer is refused, PointerMismatch is published and the proven backup keeps its hold', async () => {
    // A 1-byte "backup" one second after the honest one, with a manifest copied from the honest backup (so it states
    // the honest size and SHA-256), and latest.json agreeing with that manifest; held, as a dump task may.
    const startedAt = new Date(parseBackupKey(honest.key)!.startedAt.getTime() + 1000);
    const forgedKey = backupKey(PREFIX, source, startedAt, DumpFormat.PG_CUSTOM);
    const manifest = JSON.parse((await s3.getText(honest.manifestKey))!) as Manifest;
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: forgedKey, Body: 'x' }));
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: manifestKeyFor(forgedKey),
      Body: JSON.stringify({ ...manifest, key: forgedKey, companions: [], startedAt: startedAt.toISOString() }) }));
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: latestKey(PREFIX, source),
      Body: JSON.stringify({ ...honest, key: forgedKey, manifestKey: manifestKeyFor(forgedKey), startedAt: startedAt.toISOString() }) }));
    await hold([forgedKey, manifestKeyFor(forgedKey)]);

    const report = await keepAll(source);

    const [refused] = report.sources;
    expect(refused).toMatchObject({ source, rule: HoldRule.PROVEN, proven: proven.key, released: [], problems: [] });
    expect(refused.newest).toBeUndefined();
    expect(refused.refused).toBe(`s3://${s3.bucket}/${latestKey(PREFIX, source)} names ${forgedKey}, but S3 stored 1 bytes and its manifest states ${manifest.size}`);
    expect(refused.held).toEqual(await objectsOf(proven));
    expect(await holds(await objectsOf(proven))).toEqual(all(await objectsOf(proven), true));
    // A refusal is an alarm of its own, not a failure of the run.
    expect(report.failed).toEqual([]);
    const metrics = (await publishedMetrics()).filter((m) => m.MetricName === Metrics.POINTER_MISMATCH);
    expect(metrics).toEqual([
      { Namespace: 'Restorable', MetricName: 'PointerMismatch', Value: 1, Unit: 'Count', Dimensions: [{ Name: 'Source', Value: source }] },
      { Namespace: 'Restorable', MetricName: 'PointerMismatch', Value: 1, Unit: 'Count', Dimensions: undefined },
    ]);
  });

  test.each([
    ['its SHA-256 differs from the manifest\'s', (p: LatestPointer) => ({ ...p, sha256: 'f'.repeat(64) }), /latest\.json states SHA-256 "f{64}" and its manifest [0-9a-f]{64}$/],
    ['its size differs from the manifest\'s', (p: LatestPointer) => ({ ...p, size: p.size + 1 }), /latest\.json states size \d+ and its manifest \d+$/],
    ['it names a backup of another source', () => ({ ...proven, key: proven.key.replace(`${source}/`, 'other-pg/') }), /outside the source's prefix|not a stored backup of forged-pg/],
    ['it names a key outside the store\'s prefix', (p: LatestPointer) => ({ ...p, key: '../etc/passwd' }), /outside the source's prefix backups\/forged-pg\/: not followed$/],
    ['it names another manifest', (p: LatestPointer) => ({ ...p, manifestKey: manifestKeyFor(proven.key) }), /names the manifest .*not its backup's/],
    ['it is not JSON', () => 'not json', /is not valid JSON$/],
    ['it is absurdly large', (p: LatestPointer) => ({ ...p, padding: 'x'.repeat(100_000) }), /is \d+ bytes, more than the 65536 a real one takes: not read$/],
  ])('when %s, then it is refused and the proven backup keeps its hold', async (_, forge, reason) => {
    const body = forge(honest);
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: latestKey(PREFIX, source), Body: typeof body === 'string' ? body : JSON.stringify(body) }));

    const [refused] = (await keepAll(source)).sources;

    expect(refused.refused).toMatch(reason);
    expect(refused).toMatchObject({ proven: proven.key, released: [], problems: [] });
    expect(refused.newest).toBeUndefined();
    expect(await holds(await objectsOf(proven))).toEqual(all(await objectsOf(proven), true));
  });
});

describe('given a source that has never had a restore-test report', () => {
  test('then the newest backup is held and nothing is released: a manifest alone never releases a hold', async () => {
    const source = 'untested-pg';
    const first = await backUp(source);
    const second = await backUp(source);
    await hold(await objectsOf(first)); // whether or not the agent released it

    const [kept] = (await keepAll(source)).sources;

    expect(kept).toMatchObject({ source, rule: HoldRule.NEWEST_VALID, newest: second.key, problems: [] });
    expect(kept.proven).toBeUndefined();
    expect(kept.released).toEqual([]);
    expect(await holds(await objectsOf(first))).toEqual(all(await objectsOf(first), true));
    expect(await holds(await objectsOf(second))).toEqual(all(await objectsOf(second), true));
  });

  test('when its latest.json is refused, then nothing is released', async () => {
    const source = 'untested-forged-pg';
    const first = await backUp(source);
    const second = await backUp(source);
    await hold(await objectsOf(first));
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: latestKey(PREFIX, source), Body: JSON.stringify({ ...second, size: 1 }) }));

    const [kept] = (await keepAll(source)).sources;

    expect(kept).toMatchObject({ rule: HoldRule.NEWEST_VALID, released: [], held: [], problems: [] });
    expect(kept.refused).toMatch(/latest\.json states size 1/);
    expect(await holds(await objectsOf(first))).toEqual(all(await objectsOf(first), true));
  });
});

describe('given one broken source among healthy ones', () => {
  test('then the others are kept, the broken one is reported, and the invocation fails at the end', async () => {
    const broken = 'broken-pg';
    const healthy = 'healthy-pg';
    const brokenBackup = await backUp(broken);
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: restoreTestLatestKey(PREFIX, broken), Body: '{"success": tru' }));
    const first = await backUp(healthy);
    const second = await backUp(healthy);
    await hold(await objectsOf(first));

    const env = handlerEnv({ BUCKET_NAME: s3.bucket, KEY_PREFIX: PREFIX });
    const run = withEnv(env, () => handler({ sources: [broken, healthy] }));

    await expect(run).rejects.toThrow(`the hold keeper could not keep the holds of 1 source(s): ${broken}: restore-test report ` +
      `s3://${s3.bucket}/${restoreTestLatestKey(PREFIX, broken)} is unreadable (not JSON): skipped`);
    expect(await holds(await objectsOf(first))).toEqual(all(await objectsOf(first), true)); // never restore-tested: kept, not released
    expect(await holds(await objectsOf(second))).toEqual(all(await objectsOf(second), true));
    // The broken source's newest backup keeps its hold: nothing of it is released without proof.
    expect(await holds(await objectsOf(brokenBackup))).toEqual(all(await objectsOf(brokenBackup), true));
  });

  test('when a source name is not one a source may have, then it is reported and the others are kept', async () => {
    const healthy = 'named-pg';
    await backUp(healthy);
    const report = await keepAll('../other', healthy);

    expect(report.failed).toEqual(['../other']);
    expect(report.sources[0].problems[0]).toMatch(/source name '\.\.\/other' is invalid/);
    expect(report.sources[1]).toMatchObject({ source: healthy, rule: HoldRule.NEWEST_VALID, problems: [] });
  });
});

describe('given a source that also archives WAL and base backups', () => {
  test('then the keeper lists its dated folders and reports only, never wal/ or base/, and keeps its holds as before', async () => {
    const source = 'archived-pg';
    const backup = await backUp(source);
    await reportRestoreTest(source, backup, true);
    // What a WAL archive adds beside the dumps: thousands of objects in AWS, a few here, none of them the keeper's.
    for (const k of ['wal/000000010000000000000001.zst.age', 'wal/000000010000000000000002.zst.age', 'base/latest.json',
      'base/2026/01/01/archived-pg_2026-01-01_00-00-00Z.tar.zst.age']) {
      await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `${PREFIX}${source}/${k}`, Body: 'x' }));
    }
    const { clients } = monitorClients(s3, PREFIX);
    const listed: string[] = [];
    clients.s3.middlewareStack.add((next, context) => (args) => {
      if (context.commandName === 'ListObjectsV2Command') {
        const input = args.input as { Prefix?: string; Delimiter?: string };
        listed.push(`${input.Prefix}${input.Delimiter ? ` (delimited)` : ''}`);
      }
      return next(args);
    }, { step: 'initialize', name: 'recordListings' });

    const [kept] = (await keepHolds({ sources: [source] }, clients, new Date(), { releaseAfterSeconds: 0 })).sources;
    expect(kept).toMatchObject({ rule: HoldRule.PROVEN, newest: backup.key, proven: backup.key, problems: [] });
    expect(kept.held).toEqual(await objectsOf(backup));
    const year = backup.key.slice(`${PREFIX}${source}/`.length, `${PREFIX}${source}/`.length + 5);
    expect(listed).toEqual([`${PREFIX}${source}/ (delimited)`, `${PREFIX}${source}/${year}`, `${PREFIX}${source}/restore-tests/`]);
  });
});
