/**
 * The freshness check and `restorable status` over what the real streamer and the real dump store: a throwaway MariaDB
 * 10.11 (it is reset here), `restorable binlog-stream` streaming it into moto's S3, and a dump taken with
 * `--binlog-coordinates`. While the stream holds the dump's file and every file after it, neither sees a gap and both
 * give the newest object's age; after RESET MASTER the streamer begins a new stream (reason reset), and both say the
 * binlogs cannot be replayed from the dump, why, and what to run.
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BinlogStreamReason, Metrics } from '../../lib/contract';
import { FreshnessSource, checkFreshness } from '../../lambda/freshness-check';
import { STATUS_COMMAND, runStatus } from '../../container/src/commands/status';
import { parseCommandArgs } from '../../container/src/shared/args';
import { AgeKey, S3Emulator, agentEnv, makeAgeKey, requireAgentBundle, runAgent, uniqueName } from '../support';
import { RunningStreamer, startStreamer, storedBinlogs, storedStreams, until } from '../support/binlog-stream';
import { ThrowawayMariadb, startThrowawayMariadb } from '../support/mariadb-binlog-server';
import { monitorBucket, monitorClients, monitorTestHooks, publishedMessages, publishedMetrics } from './monitor-fixtures';

jest.setTimeout(60_000);

const SOURCE = 'shop-db';
const BINLOG = { maxAgeSeconds: 300 };
let s3: S3Emulator;
let key: AgeKey;
let server: ThrowawayMariadb;
let agent: string;
let dir: string;
let streamer: RunningStreamer | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'restorable-fresh-binlog-'));
  agent = join(dir, 'restorable.cjs');
  copyFileSync(requireAgentBundle(), agent);
  s3 = await monitorBucket();
  key = makeAgeKey();
  server = await startThrowawayMariadb({ serverId: 61 });
  server.exec('CREATE DATABASE shop; CREATE TABLE shop.orders (id INT AUTO_INCREMENT PRIMARY KEY, at DATETIME);');
}, 60_000);

monitorTestHooks(uniqueName('fresh_binlog_streamer'), () => s3);

afterAll(async () => {
  streamer?.killGroup('SIGKILL');
  await server?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

const stream = () => {
  streamer = startStreamer({ agent, s3, key, server, source: SOURCE, spool: join(dir, 'spool'), extra: ['--partial-interval', '1', '--retry-for', '5'] });
};
const stop = async () => {
  streamer!.child.kill('SIGTERM');
  expect((await streamer!.finished).code).toBe(0);
};
const check = async () => {
  const sources: FreshnessSource[] = [{ source: SOURCE, maxAgeSeconds: 86_400, binlog: BINLOG }];
  const report = await checkFreshness({ sources }, monitorClients(s3, '').clients, { now: new Date(), intervalSeconds: 900 });
  const status = await runStatus(parseCommandArgs(STATUS_COMMAND, ['--bucket', s3.bucket]), s3.client);
  return { fresh: report.statuses[0], status: status.sources.find((s) => s.source === SOURCE)! };
};
const metric = (metrics: { MetricName: string; Dimensions?: { Value: string }[]; Value: number }[], name: string) =>
  metrics.find((m) => m.MetricName === name && m.Dimensions?.[0].Value === SOURCE)?.Value;

test('a stream that holds the dump\'s file and all after it: no gap, and the newest object\'s age, in the check and in status alike', async () => {
  stream();
  server.exec('INSERT INTO shop.orders (at) VALUES (NOW()); FLUSH BINARY LOGS; INSERT INTO shop.orders (at) VALUES (NOW());');
  await until('a stored binlog', async () => ((await storedBinlogs(s3, SOURCE)).length ? true : undefined));
  const dump = await runAgent(['backup', '--source', SOURCE, '--engine', 'mariadb', '--bucket', s3.bucket, '--recipient', key.recipient,
    '--host', server.host, '--port', String(server.port), '--user', server.user, '--database', 'shop', '--binlog-coordinates', '--json'],
  agentEnv({ ...s3.env, MYSQL_PWD: server.password }));
  expect({ code: dump.code, stderr: dump.code === 0 ? '' : dump.stderr }).toEqual({ code: 0, stderr: '' });
  const coordinates = JSON.parse((await s3.getText(JSON.parse(dump.stdout).manifestKey))!).binlog;
  server.exec('INSERT INTO shop.orders (at) VALUES (NOW()); FLUSH BINARY LOGS; INSERT INTO shop.orders (at) VALUES (NOW());');
  const newestFile = server.exec('SHOW MASTER STATUS')[0][0];
  await until(`${newestFile} stored`, async () => ((await storedBinlogs(s3, SOURCE)).some((o) => o.file === newestFile) ? true : undefined));

  const { fresh, status } = await check();
  expect(fresh.problem).toBeUndefined();
  expect(fresh.binlog).toMatchObject({ gaps: [], strangeKeys: 0, forged: [] });
  expect(fresh.binlog!.stream!.reason).toBe(BinlogStreamReason.FIRST_START);
  expect(fresh.binlog!.newest!.name.startsWith(newestFile)).toBe(true);
  expect(fresh.binlog!.ageSeconds).toBeLessThan(30);
  expect(coordinates.serverId).toBe(61);
  expect(status.binlog).toMatchObject({ stream: fresh.binlog!.streamId, reason: BinlogStreamReason.FIRST_START, gaps: [] });
  expect(status.binlog!.rpoSeconds).toBeLessThan(30);
  expect(metric(await publishedMetrics(), Metrics.BINLOG_GAPS)).toBe(0);
});

test('after RESET MASTER: a new stream (reset), and both say the binlogs cannot be replayed from the dump, why, and what to run', async () => {
  await stop();
  server.exec('RESET MASTER; INSERT INTO shop.orders (at) VALUES (NOW());');
  stream();
  const second = await until('a second stream', async () => (await storedStreams(s3, SOURCE))[1]);
  await until('a binlog of the second stream', async () => ((await storedBinlogs(s3, SOURCE)).some((o) => o.stream === second.stream) ? true : undefined));

  const { fresh, status } = await check();
  expect(fresh.binlog!.streamId).toBe(second.stream);
  expect(fresh.binlog!.gaps).toHaveLength(1);
  expect(fresh.binlog!.gaps[0].description).toContain(`(reset: ${second.detail})`);
  expect(metric(await publishedMetrics(), Metrics.BINLOG_GAPS)).toBe(1);
  const [message] = await publishedMessages();
  expect(message.Message).toContain(`run a dump now: start ${SOURCE}'s scheduled dump task, or \`restorable backup --source ${SOURCE}`);
  expect(status.binlog!.gaps).toEqual(fresh.binlog!.gaps.map((g) => g.description));
  expect(status.summary).toContain('run a dump now)');
});
