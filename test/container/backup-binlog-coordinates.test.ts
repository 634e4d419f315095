/**
 * A dump of a MariaDB source whose binlogs are streamed records where it sits in the binlog (issue 18, item 2):
 * `backup --binlog-coordinates` runs mariadb-dump with --single-transaction --master-data=2 --gtid against the services'
 * binlog server and writes the snapshot's file, position, GTID and server_id into the manifest. Rows committed while
 * the dump runs are either in the dump or after its position in the binlog, never both and never neither. The
 * coordinates come from the dump's header (and the GTID from its last line of that kind), not from lines a routine's
 * body plants; a server without a binary log, and a PostgreSQL source, are refused in words.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Manifest, binlogSequence } from '../../lib/contract';
import { DumpCoordinatesReader } from '../../container/src/engines/mysql-coordinates';
import { AgeKey, MYSQL, S3Emulator, agentEnv, decryptToText, download, makeAgeKey, runAgent, startS3rver, uniqueName } from '../support';
import { BINLOG_MARIADB, createBinlogDatabase, mariadbExec, mariadbExecAsync } from '../support/mariadb-binlog-server';

jest.setTimeout(120_000);

const source = 'coords-maria';
let s3: S3Emulator;
let key: AgeKey;
const database = uniqueName('coords');

beforeAll(async () => {
  s3 = await startS3rver();
  key = makeAgeKey();
  createBinlogDatabase(BINLOG_MARIADB, database);
  mariadbExec(BINLOG_MARIADB, database, `
    CREATE TABLE ticks (id BIGINT AUTO_INCREMENT PRIMARY KEY, pad VARCHAR(200) NOT NULL);
    INSERT INTO ticks (pad) SELECT REPEAT('x', 200) FROM seq_1_to_200000;`);
  // A routine whose body holds lines a forger would plant (the client keeps comments with --comments).
  const planted = spawnSync('mariadb', ['--no-defaults', '--comments', '-h', BINLOG_MARIADB.host, '-P', String(BINLOG_MARIADB.port), '-u', BINLOG_MARIADB.user, database], {
    input: `DELIMITER ;;
CREATE PROCEDURE planted() BEGIN
-- CHANGE MASTER TO MASTER_LOG_FILE='binlog.999999', MASTER_LOG_POS=4;
-- SET GLOBAL gtid_slave_pos='9-9-999';
SELECT 1; END;;
DELIMITER ;
`, encoding: 'utf8', env: { ...process.env, MYSQL_PWD: BINLOG_MARIADB.password } });
  expect(planted.stderr).toBe('');
});

afterAll(async () => {
  mariadbExec(BINLOG_MARIADB, undefined, `DROP DATABASE IF EXISTS \`${database}\``);
  await s3?.stop();
});

const backup = (extra: readonly string[], server: { host: string; port: number; user: string; password: string } = BINLOG_MARIADB, db = database) =>
  runAgent(['backup', '--source', source, '--engine', 'mariadb', '--bucket', s3.bucket, '--recipient-file', key.recipientFile,
    '--host', server.host, '--port', String(server.port), '--user', server.user, '--database', db, '--json', ...extra],
  agentEnv({ ...s3.env, MYSQL_PWD: server.password }));

test('the manifest records the snapshot\'s binlog file, position, GTID and server id; rows written during the dump are in it or after it, exactly once', async () => {
  // Writes go on while the dump runs: each must be either in the dump or in the binlog after its position.
  let writing = true;
  const writer = (async () => {
    let n = 0;
    while (writing && n < 400) {
      await mariadbExecAsync(BINLOG_MARIADB, database, "INSERT INTO ticks (pad) VALUES ('during')");
      n++;
    }
  })();
  const run = await backup(['--binlog-coordinates']);
  writing = false;
  await writer;
  expect({ code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({ code: 0, stderr: '' });
  const result = JSON.parse(run.stdout);
  const manifest = JSON.parse((await s3.getText(result.manifestKey))!) as Manifest;
  const coords = manifest.binlog!;
  expect(coords).toBeDefined();
  expect(result.binlog).toEqual(coords);
  const logs = mariadbExec(BINLOG_MARIADB, undefined, 'SHOW BINARY LOGS').map(([name]) => name);
  expect(logs).toContain(coords.file);
  expect(coords.serverId).toBe(Number(mariadbExec(BINLOG_MARIADB, undefined, 'SELECT @@server_id')[0][0]));
  // Not the planted lines of the routine's body.
  expect(coords.file).not.toBe('binlog.999999');
  expect(coords.gtid).not.toBe('9-9-999');
  // The GTID is the server's own for that position.
  expect(coords.gtid).toBe(mariadbExec(BINLOG_MARIADB, undefined, `SELECT BINLOG_GTID_POS('${coords.file}', ${coords.position})`)[0][0]);

  // Consistency: the dump's newest tick is the last one before the position; the binlog from the position on holds
  // the next ones, and none the dump holds.
  const dump = decryptToText(await download(s3, result.key), key.identityFile);
  const dumped = [...dump.matchAll(/^\((\d+),'/gm)].map((m) => Number(m[1]));
  const newestDumped = dumped.reduce((a, b) => Math.max(a, b), 0);
  // The routine's planted lines are in the dump, at the start of a line, as a forger would want them.
  expect(dump).toMatch(/^-- CHANGE MASTER TO MASTER_LOG_FILE='binlog\.999999', MASTER_LOG_POS=4;$/m);
  const files = logs.filter((f) => binlogSequence(f) >= binlogSequence(coords.file)).map((f) => join(BINLOG_MARIADB.dataDir, f));
  const replay = spawnSync('mariadb-binlog', ['--start-position', String(coords.position), '--database', database, '--base64-output=decode-rows', '--verbose', ...files],
    { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' }, maxBuffer: 512 * 1024 * 1024 });
  expect(replay.stderr).toBe('');
  const replayed = [...replay.stdout.matchAll(/^### INSERT INTO `[^`]+`\.`ticks`\n### SET\n###   @1=(\d+)/gm)].map((m) => Number(m[1]));
  const [[total]] = mariadbExec(BINLOG_MARIADB, database, 'SELECT COUNT(*) FROM ticks');
  // Every row is in exactly one of the two: the dump, or the binlog after its position (which starts right after the dump's newest).
  expect(replayed.length).toBeGreaterThan(0);
  expect(Math.min(...replayed)).toBeGreaterThan(newestDumped);
  expect(new Set(replayed).size).toBe(replayed.length);
  expect(dumped.length + replayed.length).toBe(Number(total));
  process.stdout.write(`dump with coordinates ${coords.file}:${coords.position} (GTID ${coords.gtid}): ${dumped.length} ticks in the dump (the newest ${newestDumped}), ` +
    `${replayed.length} written during it found after the position\n`);
});

test('without --binlog-coordinates the dump is as before: no position lines, no binlog in the manifest', async () => {
  const run = await backup([]);
  expect({ code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({ code: 0, stderr: '' });
  const result = JSON.parse(run.stdout);
  const manifest = JSON.parse((await s3.getText(result.manifestKey))!) as Manifest;
  expect(manifest.binlog).toBeUndefined();
  const dump = decryptToText(await download(s3, result.key), key.identityFile);
  expect(dump.slice(0, dump.indexOf('-- Table structure'))).not.toMatch(/CHANGE MASTER/);
  // The only GTID line is the one the routine planted.
  expect([...dump.matchAll(/^-- SET GLOBAL gtid_slave_pos='([0-9,-]*)';$/gm)].map((m) => m[1])).toEqual(['9-9-999']);
});

test('a server without a binary log and a PostgreSQL source are refused in words, before anything is stored', async () => {
  const other = uniqueName('coords_nolog');
  spawnSync('mysql', ['-h', MYSQL.host, '-P', String(MYSQL.port), '-u', MYSQL.user], {
    input: `CREATE DATABASE \`${other}\`; CREATE TABLE \`${other}\`.t (id INT); INSERT INTO \`${other}\`.t VALUES (1);`, env: { ...process.env, MYSQL_PWD: MYSQL.password },
  });
  try {
    const keysBefore = await s3.keys();
    const run = await backup(['--binlog-coordinates'], MYSQL, other);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('the server writes no binary log (log_bin is OFF)');
    expect(await s3.keys()).toEqual(keysBefore);
  } finally {
    spawnSync('mysql', ['-h', MYSQL.host, '-P', String(MYSQL.port), '-u', MYSQL.user], { input: `DROP DATABASE \`${other}\`;`, env: { ...process.env, MYSQL_PWD: MYSQL.password } });
  }
  const pg = await runAgent(['backup', '--source', 'pg', '--engine', 'postgres', '--bucket', s3.bucket, '--recipient-file', key.recipientFile,
    '--database', 'postgres', '--binlog-coordinates'], agentEnv(s3.env));
  expect(pg.code).toBe(2);
  expect(pg.stderr).toContain('--binlog-coordinates is for MariaDB sources whose binlogs are streamed');
});

describe('reading the coordinates from the dump stream', () => {
  const header = "/*M!999999\\- enable the sandbox mode */ \n-- MariaDB dump 10.19\n/*!40101 SET NAMES utf8mb4 */;\n" +
    "-- CHANGE MASTER TO MASTER_LOG_FILE='binlog.000012', MASTER_LOG_POS=98765;\n\n--\n-- Table structure for table `t`\n--\n\nDROP TABLE IF EXISTS `t`;\n";
  const body = "INSERT INTO `t` VALUES\n(1,'-- CHANGE MASTER TO MASTER_LOG_FILE=\\'binlog.000099\\', MASTER_LOG_POS=4;');\n" +
    "CREATE PROCEDURE p()\nBEGIN\n-- CHANGE MASTER TO MASTER_LOG_FILE='binlog.000099', MASTER_LOG_POS=4;\n-- SET GLOBAL gtid_slave_pos='9-9-9';\nEND;;\n";
  const tail = "-- Preferably use GTID to start replication from GTID position:\n\n-- SET GLOBAL gtid_slave_pos='0-1-5,1-2-7';\n-- Dump completed\n";

  it('takes the position from the header and the GTID from the last line, whatever the chunks', () => {
    const text = Buffer.from(header + body + tail);
    for (const size of [1, 7, 64, text.length]) {
      const reader = new DumpCoordinatesReader();
      for (let i = 0; i < text.length; i += size) reader.write(text.subarray(i, i + size));
      expect(reader.result()).toEqual({ file: 'binlog.000012', position: 98765, gtid: '0-1-5,1-2-7' });
    }
  });

  it('finds no position outside the header, and says so', () => {
    const reader = new DumpCoordinatesReader();
    reader.write(Buffer.from(`-- MariaDB dump\nDROP TABLE IF EXISTS \`t\`;\n${body}${tail}`));
    expect(reader.result()).toEqual({ problem: expect.stringContaining('no binlog position line') });
  });

  it('refuses a position line that does not read as one', () => {
    const reader = new DumpCoordinatesReader();
    reader.write(Buffer.from("-- CHANGE MASTER TO MASTER_LOG_FILE='../../etc/passwd', MASTER_LOG_POS=4;\n"));
    expect(reader.result()).toEqual({ problem: expect.stringContaining('unreadable position line') });
  });
});
