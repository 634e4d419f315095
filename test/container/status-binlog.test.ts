/**
 * `restorable status` for MariaDB sources whose binlogs are streamed, on moto's server: dumps, binlog streams and
 * objects stored as the contract names them (test/lambda/binlog-store-fixtures), and a restore-test report with the
 * point-in-time restore it measured (binlogPitr.restoreSeconds). Status shows the continuous RPO in seconds since S3
 * stored the newest binlog object of the newest stream, the stream and why it began, and the measured PITR restore
 * time; a stream that cannot replay from the newest dump says so and asks for a dump; it lists that stream only, from
 * the dump's file on (the S3 requests are recorded); what the streamer could write is read with limits and named.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { BinlogStreamReason, binlogStreamId, binlogStreamKey, restoreTestLatestKey } from '../../lib/contract';
import { Readiness, STATUS_COMMAND, StatusReport, formatStatus, runStatus, statusFailure } from '../../container/src/commands/status';
import { parseCommandArgs } from '../../container/src/shared/args';
import { Moto, MotoBucket, agentEnv, motoBucket, runAgent, sharedMoto } from '../support';
import { recordingClient } from './status-fixtures';
import { SERVER_ID, putBinlog, putDump, putStream } from '../lambda/binlog-store-fixtures';

const PREFIX = 'maria/';
const FILE = (n: number) => `mariadb-bin.${String(n).padStart(6, '0')}`;
let s3: MotoBucket;
let moto: Moto;
let report: StatusReport;
let listed: string[];
let newestStored: number;
let purgedStream: string;
const coordinates = (file: string) => ({ file, position: 4000, gtid: '0-1-9', serverId: SERVER_ID });
const put = (key: string, body: string) => s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: body }));
const DETAIL = 'mariadb-bin.000003 is no longer on the server (its first is mariadb-bin.000005)';

beforeAll(async () => {
  moto = await sharedMoto();
  s3 = await motoBucket({}, moto);
  const hourAgo = new Date(Date.now() - 3_600_000);
  // streamed-db: its dump at file 2 of a whole stream, a growing file last, and a restore test that measured its PITR.
  const stream = await putStream(s3, PREFIX, 'streamed-db', { at: hourAgo });
  await putBinlog(s3, PREFIX, 'streamed-db', stream, FILE(1));
  await putDump(s3, PREFIX, 'streamed-db', coordinates(FILE(2)));
  await putBinlog(s3, PREFIX, 'streamed-db', stream, FILE(2));
  newestStored = await putBinlog(s3, PREFIX, 'streamed-db', stream, FILE(3), { partialBytes: 0x800 });
  await put(restoreTestLatestKey(PREFIX, 'streamed-db'), JSON.stringify({
    source: 'streamed-db', finishedAt: new Date().toISOString(), success: true, durationSeconds: 140,
    binlogPitr: { targetTime: new Date().toISOString(), recoveredTo: new Date().toISOString(), dumpKey: 'k', binlogFilesReplayed: 2,
      lastEvent: { file: FILE(3), position: 2000 }, restoreSeconds: 75 },
  }));
  // purged-db: the server purged a file before it was streamed, after the dump: a new stream that lacks the dump's file.
  const old = await putStream(s3, PREFIX, 'purged-db', { at: new Date(Date.now() - 7_200_000) });
  await putDump(s3, PREFIX, 'purged-db', coordinates(FILE(2)), new Date(Date.now() - 7_000_000));
  await putBinlog(s3, PREFIX, 'purged-db', old, FILE(2));
  purgedStream = await putStream(s3, PREFIX, 'purged-db', { firstFile: FILE(5), reason: BinlogStreamReason.PURGED, detail: DETAIL });
  await putBinlog(s3, PREFIX, 'purged-db', purgedStream, FILE(5), { partialBytes: 100 });
  // broken-db: a stream.json no streamer writes.
  await putDump(s3, PREFIX, 'broken-db', coordinates(FILE(1)));
  await put(binlogStreamKey(PREFIX, 'broken-db', binlogStreamId(hourAgo)), '{"stream": trunc');
  // dump-db: dumps only.
  await putDump(s3, PREFIX, 'dump-db', undefined);

  const recording = recordingClient(moto);
  report = await runStatus(parseCommandArgs(STATUS_COMMAND, ['--bucket', s3.bucket, '--prefix', PREFIX]), recording.client);
  listed = recording.listed;
});

const of = (source: string) => report.sources.find((s) => s.source === source)!;

test('a streamed source: the continuous RPO in seconds since S3 stored its newest binlog object, its stream and why it began, and the PITR restore time its test measured', () => {
  const streamed = of('streamed-db');
  expect(streamed.readiness).toBe(Readiness.READY);
  expect(streamed.binlog).toMatchObject({ reason: BinlogStreamReason.FIRST_START, newestObject: `${FILE(3)}.partial.000000000800`, gaps: [], forged: [] });
  expect(streamed.binlog!.rpoSeconds).toBe(Math.max(0, Math.round((Date.parse(report.checkedAt) - newestStored) / 1000)));
  expect(streamed.lastRestoreTest).toMatchObject({ success: true, durationSeconds: 140, pitrRestoreSeconds: 75 });
  expect(streamed.summary).toMatch(new RegExp(`^streamed-db: back online in about 75 seconds \\(a point-in-time restore, measured at 75 s\\), with data ` +
    `from ${streamed.binlog!.rpoSeconds} seconds ago \\(streamed binlogs, stream ${streamed.binlog!.stream} began: first-start\\) \\(restore test passed`));
  expect(formatStatus(report).split('\n').find((l) => l.startsWith('streamed-db ')))
    .toMatch(new RegExp(`^streamed-db\\s+${streamed.binlog!.rpoSeconds} s ago \\(binlog\\)\\s+passed \\d+ seconds? ago\\s+75 s \\(PITR\\)\\s+ready$`));
});

test('a new stream that lacks the dump\'s file: the data at risk is since the dump, and the status says why and that a dump is due', () => {
  const purged = of('purged-db');
  expect(purged.binlog!.stream).toBe(purgedStream);
  expect(purged.binlog!.gaps).toEqual([expect.stringContaining(`does not hold the dump's ${FILE(2)}: it began`)]);
  expect(purged.summary).toContain(`NEVER RESTORE-TESTED: how long a restore takes, and whether it works, is unknown; the newest backup holds data from its newest dump, `);
  expect(purged.summary).toContain(`(purged: ${DETAIL})`);
  expect(purged.summary).toContain('run a dump now)');
  expect(formatStatus(report).split('\n').find((l) => l.startsWith('purged-db '))).toMatch(/^purged-db\s+\d+ seconds? ago\s+never\s+-\s+never-tested$/);
});

test('a stream.json no streamer writes makes the source unknown, in words; a source that only dumps has no binlog status', () => {
  expect(of('broken-db').readiness).toBe(Readiness.UNKNOWN);
  expect(of('broken-db').problem).toContain('binlogs: binlog stream');
  expect(of('broken-db').problem).toContain('is not valid JSON');
  expect(statusFailure(report)!.message).toContain('the status of 1 of 4 sources could not be read');
  expect(of('dump-db').binlog).toBeUndefined();
});

test('status lists each source\'s binlog/ once, delimited, and the newest stream only from the dump\'s file on', () => {
  expect(listed.filter((l) => l.includes('/binlog/')).sort()).toEqual([
    `${PREFIX}broken-db/binlog/ (delimited)`,
    `${PREFIX}broken-db/binlog/${of('broken-db').problem!.match(/binlog\/([^/]+)\//)![1]}/ after ${FILE(1)}`,
    `${PREFIX}dump-db/binlog/ (delimited)`,
    `${PREFIX}purged-db/binlog/ (delimited)`,
    `${PREFIX}purged-db/binlog/${purgedStream}/ after ${FILE(2)}`,
    `${PREFIX}streamed-db/binlog/ (delimited)`,
    `${PREFIX}streamed-db/binlog/${of('streamed-db').binlog!.stream}/ after ${FILE(2)}`,
  ]);
});

test('the CLI prints the same as JSON', async () => {
  const run = await runAgent(['status', '--bucket', s3.bucket, '--prefix', PREFIX, '--json'], agentEnv(s3.env));
  expect(run.code).toBe(1);
  const printed = JSON.parse(run.stdout) as StatusReport;
  expect(printed.sources.find((s) => s.source === 'streamed-db')!.binlog!.reason).toBe(BinlogStreamReason.FIRST_START);
});
