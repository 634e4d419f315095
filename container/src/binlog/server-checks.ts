/**
 * What the binlog streamer asks of a server before it streams, each refusal saying exactly what to change: MariaDB
 * (not MySQL), binary logging on, ROW format, a server_id that is neither 0 nor the streamer's own, the user's
 * REPLICATION SLAVE and BINLOG MONITOR, and on RDS for MariaDB binlogs kept for at least a day. binlog_row_image other
 * than FULL is a warning: replay still works, but a restore of an UPDATE needs the whole row image to be exact.
 */
import { BINLOG_FILE_PATTERN } from '../../../lib/contract';
import { AgentError } from '../shared/errors';
import { log } from '../shared/log';

/** Runs SQL on the server as the streamer's user; rows of columns. */
export type ServerQuery = (sql: string) => Promise<string[][]>;

/** A refusal to stream from this server: nothing will change until someone changes its settings. */
export class BinlogServerRefused extends AgentError {
  constructor(message: string) {
    super(message);
    this.name = 'BinlogServerRefused';
  }
}

export interface BinlogServerFacts {
  readonly version: string;
  readonly serverId: number;
  /** The server's binlog files, oldest first, with their sizes (SHOW BINARY LOGS). */
  readonly files: ReadonlyArray<{ readonly name: string; readonly size: number }>;
}

/** The least a stream's server should keep its binlogs on RDS: a streamer down for longer than this loses files. */
export const RDS_MIN_RETENTION_HOURS = 24;
/** Above this, the growing file's stores (each from its first byte) grow large: a warning. RDS's default is 128 MiB. */
export const MAX_BINLOG_SIZE_ADVISED = 128 * 1024 * 1024;
export const RDS_RETENTION_CALL = "CALL mysql.rds_set_configuration('binlog retention hours', 168);";

const MYSQL8_REASON = 'the agent image carries MariaDB\'s client tools, whose binlog coordinates and GTIDs differ from MySQL 8\'s; MySQL 8 sources stay dump-only';

/** The user's global privileges, from SHOW GRANTS: REPLICATION SLAVE (or REPLICA) and BINLOG MONITOR (or REPLICATION CLIENT). */
function missingPrivileges(grants: readonly string[]): string[] {
  const global = grants.filter((g) => / ON \*\.\* TO /i.test(g)).map((g) => g.toUpperCase());
  if (global.some((g) => g.startsWith('GRANT ALL PRIVILEGES ON *.*'))) return [];
  const has = (...names: string[]) => global.some((g) => names.some((n) => g.includes(n)));
  return [
    ...(has('REPLICATION SLAVE', 'REPLICATION REPLICA') ? [] : ['REPLICATION SLAVE']),
    ...(has('BINLOG MONITOR', 'REPLICATION CLIENT') ? [] : ['BINLOG MONITOR']),
  ];
}

/** RDS for MariaDB keeps binlogs only as long as `binlog retention hours` says (NULL: almost not at all). */
async function checkRdsRetention(query: ServerQuery): Promise<void> {
  let rows: string[][];
  try {
    rows = await query('CALL mysql.rds_show_configuration');
  } catch (err) {
    const message = (err as Error).message;
    if (/does not exist|ERROR 1305/i.test(message)) return; // not RDS
    // Without EXECUTE on it the server answers "denied" whether or not the procedure exists: RDS installs under /rdsdbbin.
    const [[basedir]] = await query('SELECT @@basedir');
    if (!basedir.startsWith('/rdsdbbin')) return;
    log.warn('could not read RDS\'s binlog retention (mysql.rds_show_configuration); if this is RDS for MariaDB, make sure binlogs are kept ' +
      `long enough: ${RDS_RETENTION_CALL}`, { error: message });
    return;
  }
  const row = rows.find(([name]) => name === 'binlog retention hours');
  const value = row?.[1];
  const hours = value === undefined || value === 'NULL' || value === '' ? undefined : Number(value);
  if (hours === undefined || !Number.isFinite(hours) || hours < RDS_MIN_RETENTION_HOURS) {
    throw new BinlogServerRefused(`RDS for MariaDB keeps binlogs for ${hours === undefined ? 'no set time (binlog retention hours is NULL: they are purged almost at once)' : `${hours} hours`}, ` +
      `fewer than the ${RDS_MIN_RETENTION_HOURS} hours a streamer needs to catch up after a stop without a gap. Run, as the master user: ${RDS_RETENTION_CALL}`);
  }
}

/**
 * Checks the server (see the file's comment) and lists its binlogs. A failing connection throws an AgentError to try
 * again; a server that must change first throws BinlogServerRefused.
 */
export async function checkBinlogServer(query: ServerQuery, streamerServerId: number): Promise<BinlogServerFacts> {
  const [[version, serverId, logBin, format, rowImage, maxSize]] = await query('SELECT VERSION(), @@server_id, @@log_bin, @@binlog_format, @@binlog_row_image, @@max_binlog_size');
  if (!/mariadb/i.test(version)) throw new BinlogServerRefused(`the server is not MariaDB (version ${version}): binlog streaming is for MariaDB only, since ${MYSQL8_REASON}`);
  if (logBin !== '1') {
    throw new BinlogServerRefused('the server does not write a binary log (log_bin is OFF): add log_bin (for instance log-bin=mariadb-bin) and binlog_format=ROW to its ' +
      'configuration and restart it (on RDS for MariaDB, binary logging is on once automated backups are)');
  }
  if (format !== 'ROW') {
    throw new BinlogServerRefused(`the server's binlog_format is ${format}: point-in-time recovery needs ROW. Run SET GLOBAL binlog_format = 'ROW' and put ` +
      'binlog_format=ROW in its configuration (on RDS, in the DB parameter group), then restart the streamer');
  }
  const id = Number(serverId);
  if (id === 0) throw new BinlogServerRefused('the server\'s server_id is 0, which takes no replicas: set server_id to a number unique among the server and its replicas, and restart it');
  if (id === streamerServerId) {
    throw new BinlogServerRefused(`the server's server_id is ${id}, the same as the streamer's --server-id: give the streamer a number no server or replica uses`);
  }
  if (rowImage !== 'FULL') {
    log.warn(`the server's binlog_row_image is ${rowImage}: replay works, but only FULL records whole rows; set binlog_row_image=FULL`, { binlogRowImage: rowImage });
  }
  if (Number(maxSize) > MAX_BINLOG_SIZE_ADVISED) {
    log.warn(`the server's max_binlog_size is ${Math.round(Number(maxSize) / 1048576)} MiB: every store of the growing binlog holds it from its first byte, ` +
      `so a large file makes each store (every partial interval) larger and slower; set max_binlog_size to ${MAX_BINLOG_SIZE_ADVISED / 1048576}M or less`, { maxBinlogSize: Number(maxSize) });
  }
  const missing = missingPrivileges((await query('SHOW GRANTS FOR CURRENT_USER')).map(([g]) => g));
  if (missing.length) {
    throw new BinlogServerRefused(`the streamer's user lacks ${missing.join(' and ')}: run GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO the user (as an ` +
      'administrator), and restart the streamer');
  }
  await checkRdsRetention(query);
  const files = (await query('SHOW BINARY LOGS')).map(([name, size]) => ({ name, size: Number(size) }));
  if (files.length === 0) throw new AgentError('the server lists no binary logs (SHOW BINARY LOGS is empty)');
  // mariadb-binlog names the files it writes after what the server sends: a name with a '/' would reach outside the spool.
  const odd = files.find((f) => !BINLOG_FILE_PATTERN.test(f.name));
  if (odd) {
    throw new BinlogServerRefused(`the server lists a binary log named ${JSON.stringify(odd.name)}, which is not a binlog file name (a basename, a dot and ` +
      'a sequence number of 6 to 10 digits): set log_bin to a plain basename such as binlog, or check that this is the server you meant');
  }
  return { version, serverId: id, files };
}
