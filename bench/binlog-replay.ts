/**
 * Binlog replay speed (issue 18, item 8): `restorable restore --to latest` of a MariaDB source whose binlogs are
 * streamed (the agent lists, fetches, decrypts and verifies every binlog object, restores the dump, then replays) against
 * replaying the same binlogs with the client alone from the server's own files on local disk (`mariadb-binlog
 * --start-position … --database … files | mariadb`) into a copy of the same dump.
 *
 * A throwaway MariaDB 10.11 (16 MiB binlog files), sysbench's tables, a dump with binlog coordinates, then sysbench's
 * write-only load as fast as it goes for `--load` seconds while `restorable binlog-stream` stores the binlogs; the
 * streamer is stopped (SIGTERM: its final partial), and both replays run into databases of the services' MariaDB.
 *
 *   npx tsx bench/binlog-replay.ts [--load SECONDS] [--threads N]
 *
 * Not part of CI.
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { binlogSequence } from '../lib/contract';
import { AgentRun, MYSQL, agentEnv, makeAgeKey, motoBucket, mysqlExec, requireAgentBundle, uniqueName } from '../test/support';
import { sysbenchPrepare, sysbenchRun } from '../test/support/binlog-load';
import { startStreamer, storedBinlogs, until } from '../test/support/binlog-stream';
import { startThrowawayMariadb } from '../test/support/mariadb-binlog-server';

const argv = process.argv.slice(2);
const option = (name: string, fallback: string) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? argv[i + 1] : fallback; };
const say = (line: string) => process.stderr.write(`${line}\n`);
const SOURCE = 'bench-binlog-replay';

/** Runs a copy of the bundled agent, taken at the start (the bundle may be rebuilt meanwhile). */
function runCopy(agent: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<AgentRun> {
  const child = spawn(process.execPath, [agent, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
  child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function main(): Promise<void> {
  const loadSeconds = Number(option('load', '30'));
  const threads = Number(option('threads', '2'));
  const dir = mkdtempSync(join(tmpdir(), 'restorable-bench-binlog-'));
  const agent = join(dir, 'restorable.cjs');
  copyFileSync(requireAgentBundle(), agent);
  const s3 = await motoBucket({ versioned: true });
  const key = makeAgeKey();
  const server = await startThrowawayMariadb({ serverId: 51, maxBinlogSize: 16 * 1024 * 1024 });
  const targets = [uniqueName('bench_agent'), uniqueName('bench_client')];
  try {
    server.exec(`CREATE DATABASE ledger; CREATE USER 'streamer'@'127.0.0.1' IDENTIFIED BY 'streamer-pw';
      GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'streamer'@'127.0.0.1';`);
    await sysbenchPrepare(server, 'ledger', 4, 20_000);
    const streamer = startStreamer({ agent, s3, key, server: { host: server.host, port: server.port, user: 'streamer', password: 'streamer-pw' },
      source: SOURCE, spool: join(dir, 'spool'), extra: ['--partial-interval', '5'] });
    const pwd = (password: string) => agentEnv({ ...s3.env, MYSQL_PWD: password });
    const dump = await runCopy(agent, ['backup', '--source', SOURCE, '--engine', 'mariadb', '--bucket', s3.bucket, '--recipient', key.recipient, '--host', server.host,
      '--port', String(server.port), '--user', server.user, '--database', 'ledger', '--binlog-coordinates', '--json'], pwd(server.password));
    if (dump.code !== 0) throw new Error(dump.stderr);
    const coords = JSON.parse(dump.stdout).binlog as { file: string; position: number };
    say(`dump stored, binlog coordinates ${coords.file}:${coords.position}; sysbench write-only, ${threads} threads, ${loadSeconds} s`);
    const load = sysbenchRun(server, 'ledger', { seconds: loadSeconds, threads, tables: 4, tableSize: 20_000 });
    await load.finished;
    const [[lastFile, lastPosition]] = server.exec('SHOW MASTER STATUS');
    await until('the binlogs stored', async () => ((await storedBinlogs(s3, SOURCE)).some((o) => o.file === lastFile && (o.partialBytes ?? Infinity) >= Number(lastPosition)) ? true : undefined), 120_000);
    streamer.killGroup('SIGTERM');
    await streamer.finished;

    for (const db of targets) mysqlExec(undefined, `DROP DATABASE IF EXISTS \`${db}\`; CREATE DATABASE \`${db}\`;`);
    // The agent: list, fetch and verify every object, restore the dump, replay (as the services' all-privileges login: trusted here).
    const restore = await runCopy(agent, ['restore', '--source', SOURCE, '--bucket', s3.bucket, '--to', 'latest', '--database', targets[0], '--identity-file', key.identityFile,
      '--host', MYSQL.host, '--port', String(MYSQL.port), '--user', MYSQL.user, '--load-as-connected-user', '--json'], pwd(MYSQL.password));
    if (restore.code !== 0) throw new Error(restore.stderr);
    const result = JSON.parse(restore.stdout) as { binlogBytes: number; binlogFilesReplayed: number; replaySeconds: number; restoreSeconds: number; dump: { durationSeconds: number } };

    // The client alone: the same dump loaded, then the server's own binlog files replayed from local disk.
    const plain = await runCopy(agent, ['restore', '--source', SOURCE, '--bucket', s3.bucket, '--database', targets[1], '--identity-file', key.identityFile,
      '--host', MYSQL.host, '--port', String(MYSQL.port), '--user', MYSQL.user, '--load-as-connected-user', '--json'], pwd(MYSQL.password));
    if (plain.code !== 0) throw new Error(plain.stderr);
    const files = readdirSync(server.dataDir).filter((f) => /^binlog\.\d{6}$/.test(f) && binlogSequence(f) >= binlogSequence(coords.file))
      .sort((a, b) => binlogSequence(a) - binlogSequence(b)).map((f) => join(server.dataDir, f));
    const started = Date.now();
    const client = spawnSync('bash', ['-c', 'mariadb-binlog --no-defaults --start-position="$1" --database=ledger --rewrite-db="ledger->$2" "${@:3}" | ' +
      'mariadb --no-defaults -h "$H" -P "$P" -u "$U" --binary-mode "$2"', 'bash', String(coords.position), targets[1], ...files],
    { env: { ...process.env, TZ: 'UTC', H: MYSQL.host, P: String(MYSQL.port), U: MYSQL.user, MYSQL_PWD: MYSQL.password }, encoding: 'utf8', shell: false });
    const clientSeconds = (Date.now() - started) / 1000;
    if (client.status !== 0) throw new Error(`the client replay failed: ${client.stderr}`);
    const same = targets.map((db) => mysqlExec(db, 'CHECKSUM TABLE sbtest1, sbtest2, sbtest3, sbtest4').map(([, sum]) => sum).join(','));
    if (same[0] !== same[1]) throw new Error(`the two replays differ: ${same.join(' vs ')}`);
    const mb = result.binlogBytes / 1e6;
    say(`binlogs: ${result.binlogFilesReplayed} objects, ${mb.toFixed(1)} MB from ${coords.file}:${coords.position}`);
    say(`agent restore --to latest: ${result.restoreSeconds.toFixed(1)} s in all (dump ${result.dump.durationSeconds.toFixed(1)} s), replay ${result.replaySeconds.toFixed(1)} s ` +
      `(${(mb / result.replaySeconds).toFixed(1)} MB/s)`);
    say(`client from local files: replay ${clientSeconds.toFixed(1)} s (${(mb / clientSeconds).toFixed(1)} MB/s); agent replay / client: ` +
      `${(result.replaySeconds / clientSeconds).toFixed(2)}x, agent whole restore minus dump / client: ` +
      `${((result.restoreSeconds - result.dump.durationSeconds) / clientSeconds).toFixed(2)}x; tables identical; load average ${loadavg()[0].toFixed(2)}`);
  } finally {
    for (const db of targets) mysqlExec(undefined, `DROP DATABASE IF EXISTS \`${db}\``);
    await server.destroy();
    await s3.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  say((err as Error).stack ?? String(err));
  process.exit(1);
});
