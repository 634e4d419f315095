/**
 * The proof of point-in-time recovery of a MariaDB 10.11 source from its streamed binlogs (issue 18, item 7's restore
 * half), with the bundled agent and moto's S3: a throwaway binlog server (it is killed here) with 1 MiB binlog files,
 * a ticker committing ten times a second and sysbench writing beside it, `restorable binlog-stream` storing the
 * binlogs (partials every second), and a dump with binlog coordinates taken mid-way. A restore to a time T in the
 * middle, into another database on the services' MariaDB, as an account with rights on that database and BINLOG REPLAY
 * alone, holds every tick whose binlog time (whole seconds) is at or before T's second and none after. Then the server
 * is SIGKILLed during writes and `--to latest` restores what the store held: the seconds of acknowledged ticks lost
 * are printed. Refusals: a user without BINLOG REPLAY (with the GRANT to run), a time in the future, a time before any
 * dump, an index that disagrees with its object's bytes, and a binlog carrying a BINLOG statement inside a query.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { binlogIndexKey } from '../../lib/contract';
import { AgeKey, AgentRun, MYSQL, MotoBucket, agentEnv, makeAgeKey, motoBucket, mysqlExec, requireAgentBundle, uniqueName } from '../support';
import { BinlogTicker, SysbenchRun, sysbenchPrepare, sysbenchRun } from '../support/binlog-load';
import { RunningStreamer, startStreamer, storedBinlogs, until } from '../support/binlog-stream';
import { MariadbAddress, ThrowawayMariadb, startThrowawayMariadb } from '../support/mariadb-binlog-server';

jest.setTimeout(120_000);

const SOURCE = 'ledger-maria';
let s3: MotoBucket;
let key: AgeKey;
let server: ThrowawayMariadb;
let ticker: BinlogTicker;
let load: SysbenchRun;
let streamer: RunningStreamer;
let dir: string;
let agent: string;
const restorer = { user: `pitr_${process.pid}`, password: 'restorer-pw-5b1c' };
const targets: string[] = [];
let dumpStartedAt: string;
let manifestKey: string;

const env = (password: string) => agentEnv({ ...s3.env, MYSQL_PWD: password });

/** Runs the copy of the bundled agent this file started with (the bundle may be rebuilt meanwhile). */
function runAgent(args: readonly string[], childEnv: NodeJS.ProcessEnv): Promise<AgentRun> {
  const child = spawn(process.execPath, [agent, ...args], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
  child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A new empty database on the services' MariaDB, which the restoring account may fill. */
function targetDatabase(name: string): string {
  const db = uniqueName(name);
  const previous = targets[targets.length - 1];
  targets.push(db);
  // The replaying account may hold rights on the target database alone: the previous one's are taken back.
  mysqlExec(undefined, `${previous ? `REVOKE ALL PRIVILEGES ON \`${previous}\`.* FROM '${restorer.user}'@'127.0.0.1'; ` : ''}CREATE DATABASE \`${db}\`;
    GRANT ALL PRIVILEGES ON \`${db}\`.* TO '${restorer.user}'@'127.0.0.1';`);
  return db;
}

function restore(to: string, database: string, user = restorer) {
  return runAgent(['restore', '--source', SOURCE, '--bucket', s3.bucket, '--to', to, '--database', database, '--identity-file', key.identityFile,
    '--host', MYSQL.host, '--port', String(MYSQL.port), '--user', user.user, '--json'], env(user.password));
}

/** Ticks (id and binlog second) on the source, or in a restored database. */
function ticks(at: MariadbAddress | undefined, database: string): { id: number; second: number }[] {
  const sql = 'SELECT id, FLOOR(UNIX_TIMESTAMP(at)) FROM ticks ORDER BY id';
  const rows = at ? (at as ThrowawayMariadb).exec(sql, database) : mysqlExec(database, sql);
  return rows.map(([id, second]) => ({ id: Number(id), second: Number(second) }));
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'restorable-binlog-pitr-'));
  agent = join(dir, 'restorable.cjs');
  copyFileSync(requireAgentBundle(), agent);
  s3 = await motoBucket({ versioned: true });
  key = makeAgeKey();
  server = await startThrowawayMariadb({ serverId: 41, maxBinlogSize: 1024 * 1024 });
  server.exec(`CREATE DATABASE ledger; CREATE USER 'streamer'@'127.0.0.1' IDENTIFIED BY 'streamer-pw';
    GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'streamer'@'127.0.0.1';`);
  mysqlExec(undefined, `DROP USER IF EXISTS '${restorer.user}'@'127.0.0.1'; CREATE USER '${restorer.user}'@'127.0.0.1' IDENTIFIED BY '${restorer.password}';
    GRANT BINLOG REPLAY ON *.* TO '${restorer.user}'@'127.0.0.1';`);
  ticker = new BinlogTicker(server, 'ledger', 100);
  await sysbenchPrepare(server, 'ledger', 2, 2000);
  load = sysbenchRun(server, 'ledger', { seconds: 0, threads: 1, rate: 30 });
  load.finished.catch(() => undefined); // it is stopped before the server is killed
  streamer = startStreamer({ agent, s3, key, server: { host: server.host, port: server.port, user: 'streamer', password: 'streamer-pw' }, source: SOURCE,
    spool: join(dir, 'spool'), extra: ['--partial-interval', '1'] });
  await until('a first stored binlog', async () => ((await storedBinlogs(s3, SOURCE)).length ? true : undefined));
  await new Promise((r) => setTimeout(r, 3000));
  const dump = await runAgent(['backup', '--source', SOURCE, '--engine', 'mariadb', '--bucket', s3.bucket, '--recipient', key.recipient,
    '--host', server.host, '--port', String(server.port), '--user', server.user, '--database', 'ledger', '--binlog-coordinates', '--json'], env(server.password));
  expect({ code: dump.code, stderr: dump.code === 0 ? '' : dump.stderr }).toEqual({ code: 0, stderr: '' });
  manifestKey = JSON.parse(dump.stdout).manifestKey;
  dumpStartedAt = JSON.parse((await s3.getText(manifestKey))!).startedAt;
});

afterAll(async () => {
  streamer?.killGroup('SIGKILL');
  load?.child.kill('SIGTERM');
  await ticker?.stop();
  await server?.destroy();
  for (const db of targets) mysqlExec(undefined, `DROP DATABASE IF EXISTS \`${db}\``);
  mysqlExec(undefined, `DROP USER IF EXISTS '${restorer.user}'@'127.0.0.1'`);
  await s3?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('point-in-time restore of a MariaDB source from its streamed binlogs', () => {
  it('to a time T after the dump: every tick of T\'s second or before is there, none after', async () => {
    await new Promise((r) => setTimeout(r, 6000));
    const after = ticks(server, 'ledger').filter((t) => t.second > Math.ceil(Date.parse(dumpStartedAt) / 1000) + 1);
    expect(after.length).toBeGreaterThan(20);
    const middle = after[Math.floor(after.length / 2)];
    const [[at]] = server.exec(`SELECT DATE_FORMAT(CONVERT_TZ(at, @@session.time_zone, '+00:00'), '%Y-%m-%dT%H:%i:%s.%fZ') FROM ticks WHERE id = ${middle.id}`, 'ledger');
    const target = at;
    // What comes after T must be stored before the restore can stop before it: the partial interval is 1 s.
    await new Promise((r) => setTimeout(r, 4000));

    const database = targetDatabase('pitr_t');
    const run = await restore(target, database);
    expect({ code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({ code: 0, stderr: '' });
    const result = JSON.parse(run.stdout);
    const floorT = Math.floor(Date.parse(target) / 1000);
    const expected = ticks(server, 'ledger').filter((t) => t.second <= floorT).map((t) => t.id);
    const restored = ticks(undefined, database).map((t) => t.id);
    expect(restored).toEqual(expected);
    expect(ticks(server, 'ledger').filter((t) => t.second > floorT).length).toBeGreaterThan(10);
    // sysbench's tables came back too, and nothing of the source's other databases.
    expect(mysqlExec(database, 'SELECT COUNT(*) FROM sbtest1')[0][0]).not.toBe('0');
    expect(result).toMatchObject({ targetTime: target, coveredTarget: true, replayedAs: restorer.user });
    expect(Date.parse(result.recoveredTo)).toBeLessThanOrEqual(floorT * 1000);
    expect(result.lastEvent.file).toMatch(/^binlog\.\d{6}$/);
    expect(result.lastEvent.gtid).toMatch(/^0-41-\d+$/);
    expect(result.binlogFilesReplayed).toBeGreaterThanOrEqual(1);
    process.stdout.write(`binlog PITR to ${target}: ${restored.length} ticks restored (${expected.length} at or before ${new Date(floorT * 1000).toISOString()}), ` +
      `${result.binlogFilesReplayed} binlog objects (${result.binlogBytes} bytes) replayed in ${result.replaySeconds.toFixed(1)} s, last event ` +
      `${result.lastEvent.file}:${result.lastEvent.position} ${result.lastEvent.gtid} at ${result.recoveredTo}; restore ${result.restoreSeconds.toFixed(1)} s\n`);
  });

  it('refuses in words: a user without BINLOG REPLAY, a time in the future, a time before any dump', async () => {
    const database = targetDatabase('pitr_refused');
    const plain = { user: `${restorer.user}_plain`, password: 'plain-pw-9' };
    mysqlExec(undefined, `DROP USER IF EXISTS '${plain.user}'@'127.0.0.1'; CREATE USER '${plain.user}'@'127.0.0.1' IDENTIFIED BY '${plain.password}';
      GRANT ALL PRIVILEGES ON \`${database}\`.* TO '${plain.user}'@'127.0.0.1';`);
    try {
      const noReplay = await restore(new Date(Date.now() - 2000).toISOString(), database, plain);
      expect({ code: noReplay.code, stderr: noReplay.code === 2 ? '' : noReplay.stderr }).toEqual({ code: 2, stderr: '' });
      expect(noReplay.stderr).toContain(`may not replay a binlog`);
      expect(noReplay.stderr).toContain(`GRANT BINLOG REPLAY ON *.* TO '${plain.user}'@'127.0.0.1';`);
      expect(noReplay.stderr).not.toContain(plain.password);
      expect(mysqlExec(database, 'SHOW TABLES')).toEqual([]);
    } finally {
      mysqlExec(undefined, `DROP USER IF EXISTS '${plain.user}'@'127.0.0.1'`);
    }
    // Rights on another database: qualified statements in the binlog would reach it.
    const wide = { user: `${restorer.user}_wide`, password: 'wide-pw-3' };
    mysqlExec(undefined, `DROP USER IF EXISTS '${wide.user}'@'127.0.0.1'; CREATE USER '${wide.user}'@'127.0.0.1' IDENTIFIED BY '${wide.password}';
      GRANT ALL PRIVILEGES ON \`${database}\`.* TO '${wide.user}'@'127.0.0.1'; GRANT BINLOG REPLAY ON *.* TO '${wide.user}'@'127.0.0.1';
      GRANT SELECT, INSERT, DROP ON \`ledger\`.* TO '${wide.user}'@'127.0.0.1';`);
    try {
      const beyond = await restore(new Date(Date.now() - 2000).toISOString(), database, wide);
      expect({ code: beyond.code, stderr: beyond.code === 2 ? '' : beyond.stderr }).toEqual({ code: 2, stderr: '' });
      expect(beyond.stderr).toContain('holds rights beyond the target database');
      expect(beyond.stderr).toContain('neither filtered nor renamed');
      expect(beyond.stderr).toContain("GRANT BINLOG REPLAY ON *.* TO 'restorer'@'127.0.0.1';");
      expect(mysqlExec(database, 'SHOW TABLES')).toEqual([]);
    } finally {
      mysqlExec(undefined, `DROP USER IF EXISTS '${wide.user}'@'127.0.0.1'`);
    }
    const future = await restore(new Date(Date.now() + 3_600_000).toISOString(), database);
    expect({ code: future.code, stderr: future.code === 2 ? '' : future.stderr }).toEqual({ code: 2, stderr: '' });
    expect(future.stderr).toContain('is in the future');
    const early = await restore(new Date(Date.parse(dumpStartedAt) - 60_000).toISOString(), database);
    expect(early.code).toBe(1);
    expect(early.stderr).toContain(`no dump of '${SOURCE}' started at or before`);
    expect(mysqlExec(database, 'SHOW TABLES')).toEqual([]);
  });

  it('after the server is killed during writes, --to latest restores everything stored; the seconds lost are measured', async () => {
    load.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 2000));
    await server.kill();
    await ticker.stop();
    const lastAcked = ticker.lastAcked;
    // The streamer cannot reach the server: what it stored is what a restore gets. Give its last upload a moment.
    await new Promise((r) => setTimeout(r, 2000));
    const database = targetDatabase('pitr_latest');
    const run = await restore('latest', database);
    expect({ code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({ code: 0, stderr: '' });
    const result = JSON.parse(run.stdout);
    const ids = ticks(undefined, database).map((t) => t.id);
    const newest = ids[ids.length - 1];
    // A prefix of what was acknowledged: nothing in between is missing.
    expect(ids).toEqual(Array.from({ length: newest }, (_, i) => i + 1));
    expect(newest).toBeLessThanOrEqual(lastAcked);
    const seconds = ticker.secondsLost(newest);
    if (seconds > 5) process.stdout.write(`the streamer's log:\n${streamer.stderr().slice(-6000)}\n`);
    process.stdout.write(`SIGKILL of the binlog server (partial interval 1 s): ${lastAcked - newest} of ${lastAcked} acknowledged ticks lost, ` +
      `${seconds.toFixed(1)} s of commits; recovered to ${result.recoveredTo} (${result.lastEvent.file}:${result.lastEvent.position}), ` +
      `${result.binlogFilesReplayed} binlog objects, restore ${result.restoreSeconds.toFixed(1)} s\n`);
    expect(seconds).toBeLessThanOrEqual(5);
  });

  it('refuses a binlog object whose index disagrees with its bytes, before the target is touched', async () => {
    // The server is down by now: nothing newer is stored meanwhile, and the newest object is the one replay ends with.
    const objects = await storedBinlogs(s3, SOURCE);
    const victim = objects[objects.length - 1];
    const indexKey = binlogIndexKey(victim.key);
    const original = await (await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: indexKey }))).Body!.transformToString();
    const index = JSON.parse(original);
    // A forged stop: the marks say the first group after any target comes later than it does.
    index.marks = index.marks.map(([time, position]: [number, number]) => [time + 3600, position]);
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: indexKey, Body: JSON.stringify(index) }));
    try {
      const database = targetDatabase('pitr_forged');
      const run = await restore('latest', database);
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`the binlog object s3://${s3.bucket}/${victim.key} does not agree with its index`);
      expect(run.stderr).toContain('nothing was replayed');
      expect(mysqlExec(database, 'SHOW TABLES')).toEqual([]);
    } finally {
      await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: indexKey, Body: original }));
    }
  });

  it('after the server restarts from the crash, --to latest goes on past the file it crashed in', async () => {
    await server.start();
    const crashed = server.exec('SHOW BINARY LOGS').map(([file]) => file).slice(-2)[0];
    server.exec('INSERT INTO ticks (at) VALUES (NOW(6)), (NOW(6)), (NOW(6))', 'ledger');
    const [[file, position]] = server.exec('SHOW MASTER STATUS');
    expect(file).not.toBe(crashed);
    const [[newest]] = server.exec('SELECT MAX(id) FROM ticks', 'ledger');
    await until('the rows after the restart stored', async () => ((await storedBinlogs(s3, SOURCE))
      .some((o) => o.file === file && (o.partialBytes ?? Infinity) >= Number(position)) ? true : undefined), 60_000);
    const database = targetDatabase('pitr_restarted');
    const run = await restore('latest', database);
    expect({ code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({ code: 0, stderr: '' });
    const result = JSON.parse(run.stdout);
    const ids = ticks(undefined, database).map((t) => t.id);
    // Everything committed before the crash that the store held, then the three rows after the restart.
    expect(ids.slice(-3)).toEqual([Number(newest) - 2, Number(newest) - 1, Number(newest)]);
    expect(result).toMatchObject({ coveredTarget: true, lastEvent: { file } });
    process.stdout.write(`after the crash in ${crashed} and a restart: --to latest replayed on to ${result.lastEvent.file}:${result.lastEvent.position}\n`);
  });

  it('refuses a dump whose database the binlogs never name (compared byte for byte, as mariadb-binlog does), before the target is touched', async () => {
    const original = (await s3.getText(manifestKey))!;
    const put = (body: string) => s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: manifestKey, Body: body }));
    try {
      await put(JSON.stringify({ ...JSON.parse(original), database: 'LEDGER' }));
      const database = targetDatabase('pitr_case');
      const run = await restore('latest', database);
      expect(run.code).toBe(1);
      expect(run.stderr).toContain("touches the dumped database 'LEDGER'");
      expect(mysqlExec(database, 'SHOW TABLES')).toEqual([]);
      // An older manifest without one: the dump restores alone, but no binlog is replayed onto it.
      const without = JSON.parse(original);
      delete without.database;
      await put(JSON.stringify(without));
      const none = await restore('latest', database);
      expect(none.code).toBe(1);
      expect(none.stderr).toContain('names no usable database');
      expect(mysqlExec(database, 'SHOW TABLES')).toEqual([]);
    } finally {
      await put(original);
    }
  });

  it('refuses a binlog whose table name holds a line break and SQL, before the target is touched', async () => {
    const table = "t\nSELECT 'INJECTED' AS pwned;\n#";
    server.exec(`CREATE TABLE \`${table}\` (id INT PRIMARY KEY); INSERT INTO \`${table}\` VALUES (1)`, 'ledger');
    const [[file, position]] = server.exec('SHOW MASTER STATUS');
    await until('the table stored', async () => ((await storedBinlogs(s3, SOURCE))
      .some((o) => o.file === file && (o.partialBytes ?? Infinity) >= Number(position)) ? true : undefined), 60_000);
    const database = targetDatabase('pitr_injected');
    const run = await restore('latest', database);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("the table map's table name");
    expect(run.stderr).toContain('holds the byte 0x0a');
    expect(run.stdout).not.toContain('INJECTED');
    expect(mysqlExec(database, 'SHOW TABLES')).toEqual([]);
  });
});
