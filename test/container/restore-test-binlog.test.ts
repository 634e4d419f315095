/**
 * The weekly restore test of a binlog-streamed MariaDB source (`restore-test --binlog-pitr`), against the services'
 * binlog server: the dump with coordinates and the binlogs stored as the streamer stores them (the drill's source),
 * restored into an empty scratch database on the services' other MariaDB and replayed to a second among the ticks.
 * The report's binlogPitr names the last transaction applied and the measured restore time, the restored database
 * holds every tick of that second or before and none after; a target the stored binlogs end well before fails the
 * test, saying why.
 */
import { parseRestoreTestPointer, restoreTestLatestKey } from '../../lib/contract';
import { AgeKey, MYSQL, MotoBucket, agentEnv, createMysqlDatabase, dropMysqlDatabase, makeAgeKey, motoBucket, mysqlExec, runAgent, uniqueName } from '../support';
import { BINLOG_MARIADB, mariadbExec } from '../support/mariadb-binlog-server';
import { BinlogTick, commitTicks, createTickDatabase, dumpWithCoordinates, storeServerBinlogs, targetAmongTicks } from './runbook-drill-binlog-source';

jest.setTimeout(120_000);

const SOURCE = 'shop-binlog-rt';
const PREFIX = 'prod/';
const DUMPED = 4;
const database = uniqueName('binlog_rt');
const scratches: string[] = [];
let s3: MotoBucket;
let key: AgeKey;
let ticks: BinlogTick[] = [];

/** Runs the restore test into a new empty scratch database; returns the exit code, the report and the scratch database. */
async function restoreTest(...extra: string[]) {
  const scratch = uniqueName(`binlog_rt_scratch_${scratches.length}`);
  scratches.push(scratch);
  createMysqlDatabase(scratch);
  const run = await runAgent(['restore-test', '--source', SOURCE, '--bucket', s3.bucket, '--prefix', PREFIX, '--identity-file', key.identityFile,
    '--host', MYSQL.host, '--port', String(MYSQL.port), '--user', MYSQL.user, '--database', scratch, '--binlog-pitr', '--json', ...extra],
  agentEnv({ ...s3.env, MYSQL_PWD: MYSQL.password }));
  expect(run.stdout).not.toBe('');
  return { ...run, report: JSON.parse(run.stdout), scratch };
}

beforeAll(async () => {
  s3 = await motoBucket();
  key = makeAgeKey();
  createTickDatabase(database, 200);
  await commitTicks(database, DUMPED, 150);
  const manifest = await dumpWithCoordinates(s3, key, SOURCE, PREFIX, database);
  await commitTicks(database, 8, 200);
  mariadbExec(BINLOG_MARIADB, undefined, 'FLUSH BINARY LOGS');
  ticks = await commitTicks(database, 8, 200);
  await storeServerBinlogs(s3, key, SOURCE, PREFIX, manifest.binlog!.file);
});

afterAll(async () => {
  for (const scratch of scratches) dropMysqlDatabase(scratch);
  mariadbExec(BINLOG_MARIADB, undefined, `DROP DATABASE IF EXISTS \`${database}\``);
  await s3?.stop();
});

test('a restore to a second among the ticks passes: every tick of it or before is there, none after, and the report names the last transaction', async () => {
  const { target, kept } = targetAmongTicks(ticks, DUMPED);
  const lastKept = ticks.find((t) => t.id === kept[kept.length - 1])!;

  const { code, report, scratch } = await restoreTest('--pitr-to', target.toISOString(), '--pitr-max-gap', '60');

  expect({ code, failures: report.failures }).toEqual({ code: 0, failures: [] });
  expect(mysqlExec(scratch, 'SELECT id FROM ticks WHERE note = \'tick\' ORDER BY id').map(([id]) => Number(id))).toEqual(kept);
  expect(report.binlogPitr).toEqual({
    targetTime: target.toISOString(), recoveredTo: new Date(lastKept.at * 1000).toISOString().replace('.000Z', 'Z'), dumpKey: report.key,
    binlogFilesReplayed: expect.any(Number), lastEvent: { file: expect.stringMatching(/^binlog\.\d{6}$/), position: expect.any(Number), gtid: expect.stringMatching(/^0-1-\d+$/) },
    restoreSeconds: expect.any(Number),
  });
  expect(report.tables).toEqual([{ table: 'ticks', passed: true, detail: 'table ticks is there' }]);
  // The pointer that status and the freshness check read holds it, well formed.
  const pointer = parseRestoreTestPointer((await s3.getText(restoreTestLatestKey(PREFIX, SOURCE)))!, 'latest.json');
  expect(pointer.binlogPitr).toEqual(report.binlogPitr);
});

test('a target the stored binlogs end well before fails the test, saying how far and what to look at', async () => {
  // Three seconds after the last tick's second, already past: the stored binlogs end at least two before it.
  const target = (ticks[ticks.length - 1].at + 3) * 1000;
  await new Promise((r) => setTimeout(r, Math.max(0, target + 100 - Date.now())));
  const { code, report } = await restoreTest('--pitr-to', new Date(target).toISOString(), '--pitr-max-gap', '1');
  expect(code).not.toBe(0);
  expect(report.success).toBe(false);
  expect(report.failures).toEqual([expect.stringMatching(/^recovered to \S+Z, \d+ s before the target \S+, more than the 1 s allowed \(--pitr-max-gap\): .*the stored binlogs end before the target: is the binlog streamer running\?$/)]);
  expect(report.binlogPitr.binlogFilesReplayed).toBeGreaterThanOrEqual(2);
});
