/**
 * MariaDB / MySQL: `mysqldump --single-transaction`, without --databases so that a restore may
 * target another database name. mysqldump cannot share its snapshot, so row counts come from
 * counting the rows in the dump stream itself. The password reaches the client tools through a
 * 0600 option file in a private temporary directory, removed when the session closes.
 *
 * A backup is untrusted input: whoever holds a dump task's credentials can write one. Everything read from a backup
 * (the dump, the roles companion) goes through the client with --sandbox (no `\!`, `system`, `source` or `tee`)
 * and --local-infile=0 (no LOAD DATA LOCAL INFILE, which --sandbox leaves open), never --force (with it, refused
 * commands are skipped and the load exits 0): a refused command fails the load, naming the refusal. The roles
 * companion is applied through an allow-list (mysql-roles.ts); restore tests load as an account with rights on
 * the scratch database alone (planLoad).
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BinlogCoordinates, DumpFormat, Engine, TableCount, binlogCoordinatesProblem } from '../../../lib/contract';
import { Connection, describeConnection } from '../shared/connection';
import { onAbort } from '../shared/cleanup';
import { AgentError, UsageError, redactor } from '../shared/errors';
import { ProcessPipeline, StageSpec } from '../shared/pipeline';
import { capture, toolVersion } from '../shared/tools';
import { DumpJob, DumpOptions, DumpPeek, EngineSession, GlobalsPlan, GlobalsResult, LoadOptions, LoadPlan, RestoreStageOptions, SourceFacts } from './engine';
import { DefinerRewriter } from './mysql-definers';
import { DumpCoordinatesReader } from './mysql-coordinates';
import { planRoles } from './mysql-roles';
import { grantsBeyond } from './mysql-replay-grants';
import { SqlRowCounter } from './sql-row-counter';
import { log } from '../shared/log';

/** Escapes a value for a MySQL option file (double-quoted). */
function optionValue(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** Quotes a user or host for SHOW GRANTS FOR 'u'@'h'. */
function quoteString(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** Quotes a database name as SHOW GRANTS writes it: `name`. */
function quoteName(name: string): string {
  return `\`${name.replace(/`/g, '``')}\``;
}

/**
 * The client's flags for SQL read from a backup: no shell, no file of the client's host (`\!`, `system`, `source`,
 * `tee`: "Not allowed in the sandbox mode"), no LOAD DATA LOCAL INFILE. Never --force.
 */
export const UNTRUSTED_SQL_FLAGS = ['--sandbox', '--local-infile=0'] as const;

/**
 * Fails before any of a backup's SQL runs when the mysql on PATH is not MariaDB's: MySQL's client has no sandbox
 * mode (it runs `\!` and `system` lines) and rejects the sandbox line MariaDB dumps begin with.
 */
export function requireSandboxClient(version = toolVersion('mysql')): void {
  if (/MariaDB/i.test(version)) return;
  throw new AgentError(`the mysql client on PATH is not MariaDB's (${version}): a backup is untrusted input, and only MariaDB's client ` +
    'refuses the shell and file commands a dump could hold (--sandbox). Install the MariaDB client (Debian/Ubuntu: apt-get install mariadb-client) ' +
    'and put it first on PATH.');
}

function optionFile(file: string, connection: Connection, user: string, password: string | undefined): void {
  const lines = ['[client]', `host=${optionValue(connection.host)}`, `port=${connection.port}`, `user=${optionValue(user)}`,
    ...(password !== undefined ? [`password=${optionValue(password)}`] : []), 'protocol=TCP'];
  writeFileSync(file, `${lines.join('\n')}\n`, { mode: 0o600 });
}

/** Undoes the escaping of mysql's --batch output (\n, \t, \\, \0). */
function unescapeBatch(value: string): string {
  return value.replace(/\\([nt0\\])/g, (_, c: string) => (c === 'n' ? '\n' : c === 't' ? '\t' : c === '0' ? '\0' : '\\'));
}

/** Privileges beyond any database that a backup's SQL could turn against the server or its host. */
const RISKY_GLOBAL_RIGHTS = ['FILE', 'SUPER', 'SET USER', 'PROCESS', 'SHUTDOWN', 'RELOAD', 'CREATE USER', 'BINLOG ADMIN', 'CONNECTION ADMIN',
  'READ_ONLY ADMIN', 'REPLICATION MASTER ADMIN', 'FEDERATED ADMIN'];

/** Accounts the server itself owns: never worth restoring elsewhere. */
const SYSTEM_ACCOUNTS = new Set(['mariadb.sys', 'mysql.sys', 'mysql.session', 'mysql.infoschema', 'PUBLIC']);

/** Who replays a binlog, and how (MysqlSession.planBinlogReplay). */
export interface BinlogReplayPlan {
  readonly loadedAs: string;
  /** The client that reads mariadb-binlog's output, into the connected database. */
  stage(): StageSpec;
  release(): Promise<void>;
}

export class MysqlSession implements EngineSession {
  readonly engine = Engine.MYSQL;
  readonly parallelRestore = false;
  readonly format = DumpFormat.SQL;
  private readonly dir: string;
  private readonly defaultsFile: string;
  private tables: readonly string[] = [];
  private readonly forgetCleanup: () => void;

  constructor(private readonly connection: Connection) {
    this.dir = mkdtempSync(join(tmpdir(), 'restorable-mysql-'));
    this.defaultsFile = join(this.dir, 'client.cnf');
    optionFile(this.defaultsFile, connection, connection.user, connection.password);
    this.forgetCleanup = onAbort(() => rmSync(this.dir, { recursive: true, force: true }));
  }

  /** The environment of a client child: no password variable, since the option file carries it. */
  private env(): NodeJS.ProcessEnv {
    const env = { ...process.env };
    delete env.MYSQL_PWD;
    return env;
  }

  /** Runs statements with the mysql client; returns rows of columns, or throws with the client's words. */
  async query(sql: string): Promise<string[][]> {
    const result = await capture('mysql', [`--defaults-extra-file=${this.defaultsFile}`, '--batch', '--skip-column-names',
      `--database=${this.connection.database}`, '--execute', sql], this.env());
    if (result.code !== 0) {
      // In batch mode the client echoes the failing statement between dashes; the ERROR line is what matters.
      const lines = result.stderr.split('\n').map((l) => l.trim()).filter(Boolean);
      const message = lines.filter((l) => l.startsWith('ERROR')).join('; ') || lines.slice(-2).join('; ') || `mysql exited with code ${result.code}`;
      throw new AgentError(redactor.redact(message));
    }
    return result.stdout.split('\n').filter((line) => line !== '').map((line) => line.split('\t').map(unescapeBatch));
  }

  async inspect(): Promise<SourceFacts> {
    const dumpVersion = toolVersion('mysqldump');
    let rows: string[][];
    try {
      rows = await this.query('SELECT VERSION(), (SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables WHERE table_schema = DATABASE())');
    } catch (err) {
      throw new AgentError(`could not connect to MySQL/MariaDB as ${describeConnection(this.connection)}: ${(err as Error).message}`);
    }
    const tables = await this.query("SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY 1");
    this.tables = tables.map(([table]) => table);
    return {
      serverVersion: rows[0][0].includes('MariaDB') ? `MariaDB ${rows[0][0]}` : `MySQL ${rows[0][0]}`,
      toolVersions: { mysqldump: dumpVersion },
      estimatedBytes: Number(rows[0][1]),
      tables: tables.map(([table]) => ({ schema: this.connection.database, table })),
    };
  }

  async captureGlobals(): Promise<GlobalsResult> {
    let accounts: string[][];
    try {
      accounts = await this.query('SELECT user, host FROM mysql.user ORDER BY 1, 2');
    } catch (err) {
      return { notCapturedReason: `cannot read mysql.user: ${(err as Error).message}` };
    }
    const statements: string[] = [];
    for (const [user, host] of accounts.filter(([user]) => !SYSTEM_ACCOUNTS.has(user))) {
      const account = `${quoteString(user)}@${quoteString(host)}`;
      try {
        // MariaDB roles have an empty host and no CREATE USER form.
        const create = host === '' ? [[`CREATE ROLE IF NOT EXISTS ${quoteString(user)}`]] : await this.query(`SHOW CREATE USER ${account}`);
        const grants = await this.query(host === '' ? `SHOW GRANTS FOR ${quoteString(user)}` : `SHOW GRANTS FOR ${account}`);
        statements.push(`-- ${user}@${host}`, ...create.map(([sql]) => `${sql.replace(/^CREATE USER /, 'CREATE USER IF NOT EXISTS ')};`),
          ...grants.map(([sql]) => `${sql};`));
      } catch (err) {
        // An account dropped after the listing is no longer one to restore; any other failure loses the companion.
        if (!(await this.accountExists(user, host))) continue;
        return { notCapturedReason: `cannot read the grants of ${user}@${host}: ${(err as Error).message}` };
      }
    }
    return { sql: `-- Users and grants, from SHOW CREATE USER and SHOW GRANTS.\n${statements.join('\n')}\n` };
  }

  private async accountExists(user: string, host: string): Promise<boolean> {
    const rows = await this.query(`SELECT COUNT(*) FROM mysql.user WHERE user = ${quoteString(user)} AND host = ${quoteString(host)}`);
    return Number(rows[0][0]) > 0;
  }

  async startDump(options: DumpOptions = {}): Promise<DumpJob> {
    const counter = new SqlRowCounter();
    const serverId = options.binlogCoordinates ? await this.binlogServerId() : undefined;
    const coordinates = serverId !== undefined ? new DumpCoordinatesReader() : undefined;
    const stage: StageSpec = {
      name: 'mysqldump',
      command: 'mysqldump',
      args: [`--defaults-extra-file=${this.defaultsFile}`, '--single-transaction', '--routines', '--triggers', '--events',
        '--hex-blob', '--no-tablespaces', '--default-character-set=utf8mb4', '--skip-dump-date',
        // The snapshot's own binlog position and GTID, as comment lines (mysql-coordinates.ts): no global read lock.
        ...(coordinates ? ['--master-data=2', '--gtid'] : []), this.connection.database],
      env: this.env(),
      inspect: (chunk) => {
        counter.write(chunk);
        coordinates?.write(chunk);
      },
    };
    return {
      stage,
      // Before the object completes: a dump that ends mid-INSERT is never stored, let alone named by latest.json.
      checkComplete: () => {
        if (counter.midStatement) throw new AgentError('the mysqldump output ended inside an INSERT statement: the dump is incomplete');
      },
      rowCounts: async (): Promise<TableCount[]> => {
        // Empty tables have no INSERT at all: they count 0.
        const counts = new Map([...this.tables.map((table): [string, number] => [table, 0]), ...counter.result()]);
        return [...counts].sort(([a], [b]) => a.localeCompare(b)).map(([table, rows]) => ({ schema: this.connection.database, table, rows }));
      },
      release: async () => undefined,
      ...(coordinates ? {
        binlogCoordinates: (): BinlogCoordinates => {
          const read = coordinates.result();
          if ('problem' in read) {
            throw new AgentError(`the dump records no usable binlog coordinates (${read.problem}): a point-in-time restore could not tell where ` +
              'its binlog replay starts, so it is not stored as a backup with coordinates. Check that mysqldump on PATH is MariaDB\'s mariadb-dump');
          }
          const found: BinlogCoordinates = { ...read, serverId: serverId! };
          const problem = binlogCoordinatesProblem(found);
          if (problem) throw new AgentError(`the dump's binlog coordinates ${problem}`);
          return found;
        },
      } : {}),
    };
  }

  /**
   * Before a dump with binlog coordinates: the server must be MariaDB (MySQL 8's coordinates and GTIDs are not the ones
   * the agent's MariaDB tools read) and write a binary log; its server_id names whose binlog the coordinates are in.
   */
  private async binlogServerId(): Promise<number> {
    const [[version, logBin, serverId]] = await this.query('SELECT VERSION(), @@log_bin, @@server_id');
    if (!/MariaDB/i.test(version)) {
      throw new UsageError(`--binlog-coordinates: the server is not MariaDB (version ${version}). The agent carries MariaDB's client tools, whose ` +
        'binlog coordinates and GTIDs differ from MySQL 8\'s: MySQL 8 sources stay dump-only; back up without --binlog-coordinates');
    }
    if (logBin !== '1') {
      throw new UsageError('--binlog-coordinates: the server writes no binary log (log_bin is OFF), so a dump has no place in one. Start the server ' +
        'with log_bin (and binlog_format=ROW) and stream its binlogs, or back up without --binlog-coordinates');
    }
    return Number(serverId);
  }

  restoreStage(_options?: RestoreStageOptions, defaultsFile = this.defaultsFile): StageSpec {
    // A SQL dump drops and recreates each table itself, so there is nothing extra to do for --clean; the mysql
    // client loads in one session, so a spooled dump is fed on stdin like a streamed one.
    return { name: 'mysql', command: 'mysql', args: [`--defaults-extra-file=${defaultsFile}`, ...UNTRUSTED_SQL_FLAGS, this.connection.database], env: this.env() };
  }

  /**
   * Who loads the dump. Restore tests: an account made for the load, with every privilege on the scratch database
   * and none beyond it (no FILE, SUPER, SET USER, PROCESS…), the dump's DEFINER clauses rewritten to CURRENT_USER on
   * the way in (mysql-definers.ts says why). It is made on the host this session connects from, with a random
   * password kept in a 0600 option file; validation reads through it too (views and routines then run with its
   * rights), and `release` drops it. The roles companion is still applied by the session's own user.
   *
   * Operator restores load as the connecting user, with the client's sandbox flags. A user holding rights beyond its
   * databases (FILE, SUPER, SET USER…) is refused unless the operator says --load-as-connected-user: the backup's SQL
   * (its triggers, and its objects' DEFINERs) would run with those rights.
   */
  async planLoad(_dump: DumpPeek, options: LoadOptions): Promise<LoadPlan> {
    requireSandboxClient();
    if (options.owner !== undefined) {
      throw new UsageError('--owner names a PostgreSQL role: a MariaDB/MySQL restore loads as the connecting user; connect as an account with rights on the target database alone');
    }
    if (options.scratch) return this.loadingAccount();
    if (!options.asConnectedUser) {
      const rights = await this.globalRights();
      if (rights.length) {
        throw new UsageError(`${this.connection.user} holds ${rights.join(', ')} beyond its databases, and the backup's SQL (its triggers, its objects' ` +
          'DEFINERs) would run with them. Restore as an account with rights on the target database alone (objects whose DEFINER names another ' +
          'account then fail), or pass --load-as-connected-user for a backup you trust.');
      }
    }
    return { refused: [], installed: [], loadedAs: this.connection.user, connection: this.connection,
      stage: (o) => this.restoreStage(o), release: async () => undefined };
  }

  /** The connected user's privileges that reach beyond databases: those a backup could turn against the server. */
  private async globalRights(): Promise<string[]> {
    const rows = await this.query('SELECT privilege_type FROM information_schema.user_privileges ' +
      "WHERE grantee = CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')");
    return rows.map(([p]) => p).filter((p) => RISKY_GLOBAL_RIGHTS.includes(p));
  }

  /**
   * Who replays a binlog after the dump was loaded (binlog-pitr). Row events reach the server as BINLOG statements,
   * which need BINLOG REPLAY (or SUPER) and apply rows without table privileges, so what is replayed is looked at first
   * (binlog-pitr/guard.ts). Restore tests: an account made for it, with every privilege on the scratch database and
   * BINLOG REPLAY, dropped by `release`. Operator restores: the connecting user, refused when it lacks BINLOG REPLAY,
   * with the statement that grants it, and, even with --load-as-connected-user, when it holds any right beyond the
   * target database but BINLOG REPLAY (mysql-replay-grants.ts: qualified statements are neither filtered nor renamed).
   */
  async planBinlogReplay(options: { readonly scratch: boolean; readonly asConnectedUser: boolean }): Promise<BinlogReplayPlan> {
    requireSandboxClient();
    const replayStage = (plan: LoadPlan): StageSpec => {
      const stage = plan.stage({ clean: false });
      // Binary mode: a statement's bytes reach the server as the binlog holds them (no \0 or \r\n rewriting).
      return { name: 'mysql', command: stage.command, args: [...stage.args.slice(0, -1), '--binary-mode', ...stage.args.slice(-1)], env: stage.env };
    };
    if (options.scratch) {
      const plan = await this.loadingAccount(['BINLOG REPLAY']);
      return { loadedAs: plan.loadedAs, stage: () => replayStage(plan), release: () => plan.release() };
    }
    const rights = await this.query('SELECT privilege_type FROM information_schema.user_privileges ' +
      "WHERE grantee = CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')");
    const held = rights.map(([p]) => p);
    if (!held.includes('BINLOG REPLAY') && !held.includes('SUPER')) {
      const [[current]] = await this.query('SELECT CURRENT_USER()');
      const [user, host] = [current.slice(0, current.lastIndexOf('@')), current.slice(current.lastIndexOf('@') + 1)];
      throw new UsageError(`${this.connection.user} may not replay a binlog: its row events run as BINLOG statements, which need the BINLOG REPLAY ` +
        `privilege. Grant it (GRANT BINLOG REPLAY ON *.* TO ${quoteString(user)}@${quoteString(host)};) and restore again; nothing was restored`);
    }
    const beyond = grantsBeyond((await this.query('SHOW GRANTS')).map(([line]) => line), this.connection.database);
    if (beyond.length) {
      const [[current]] = await this.query('SELECT CURRENT_USER()');
      const account = `'restorer'@${quoteString(current.slice(current.lastIndexOf('@') + 1))}`;
      const db = quoteName(this.connection.database.replace(/[_%\\]/g, (c) => `\\${c}`));
      throw new UsageError(`${this.connection.user} holds rights beyond the target database ${this.connection.database} (${beyond.join('; ')}), and a ` +
        'binlog replay runs as it: statements in the binlog that name their database (ALTER TABLE other.t, DROP TABLE shop.t) are neither filtered nor ' +
        'renamed by mariadb-binlog, so they would run against those databases (the source\'s own name included). Replay as an account with rights on ' +
        `the target database alone: CREATE USER ${account} IDENTIFIED BY '…'; GRANT ALL PRIVILEGES ON ${db}.* TO ${account}; GRANT BINLOG REPLAY ON *.* ` +
        `TO ${account}; Nothing was restored`);
    }
    const plan = await this.planLoad({ file: '' }, { scratch: false, createdRoles: [], asConnectedUser: options.asConnectedUser });
    return { loadedAs: plan.loadedAs, stage: () => replayStage(plan), release: () => plan.release() };
  }

  private async loadingAccount(globalGrants: readonly string[] = []): Promise<LoadPlan> {
    const [[host]] = await this.query("SELECT SUBSTRING_INDEX(USER(), '@', -1)");
    const user = `restorable_load_${randomBytes(6).toString('hex')}`;
    const password = randomBytes(24).toString('base64url');
    redactor.add(password);
    const account = `${quoteString(user)}@${quoteString(host)}`;
    await this.execute([`CREATE USER ${account} IDENTIFIED BY ${quoteString(password)};`,
      // In a database-level GRANT, _ and % are wildcards: escaped, the grant names this database alone.
      `GRANT ALL PRIVILEGES ON ${quoteName(this.connection.database.replace(/[_%\\]/g, (c) => `\\${c}`))}.* TO ${account};`,
      ...globalGrants.map((grant) => `GRANT ${grant} ON *.* TO ${account};`)], 'creating the restore test\'s loading account');
    const file = join(this.dir, 'loader.cnf');
    optionFile(file, this.connection, user, password);
    log.info('the backup loads as an account with rights on the target database alone', { account: `${user}@${host}` });
    const admin = this.connection;
    let dropped = false;
    return {
      refused: [], installed: [], loadedAs: `${user}@${host}`, connection: { ...this.connection, user, password },
      stage: (o) => ({ ...this.restoreStage(o, file), stdinFilter: () => new DefinerRewriter() }),
      release: async () => {
        if (dropped) return;
        dropped = true;
        // This session may be closed by now: a short one of the admin's drops the account.
        const session = new MysqlSession(admin);
        try {
          await session.execute([`DROP USER IF EXISTS ${account};`], 'dropping the restore test\'s loading account');
        } finally {
          await session.close();
        }
      },
    };
  }

  async targetObjects(): Promise<string[]> {
    let rows: string[][];
    try {
      rows = await this.query(`SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()
        UNION ALL SELECT CONCAT(routine_name, '()') FROM information_schema.routines WHERE routine_schema = DATABASE() ORDER BY 1`);
    } catch (err) {
      throw new AgentError(`could not reach the target database as ${describeConnection(this.connection)}: ${(err as Error).message}`);
    }
    return rows.map(([name]) => name);
  }

  /**
   * Applies the roles companion through its allow-list (mysql-roles.ts): accounts and roles it creates, then, once
   * the data is there, their grants on the restored database's objects. What it refuses is returned by name.
   */
  async applyGlobals(sql: string, sourceDatabase: string): Promise<GlobalsPlan> {
    requireSandboxClient();
    const existing = new Set((await this.query('SELECT user, host FROM mysql.user')).map(([user, host]) => `${user}@${host}`));
    const plan = planRoles(sql, existing, sourceDatabase, this.connection.database);
    plan.secrets.forEach((secret) => redactor.add(secret));
    if (plan.refused.length) {
      log.warn('the roles companion holds statements this restore does not apply', {
        refused: plan.refused.map((r) => `${r.what} (${r.why})`).join('; '),
      });
    }
    if (plan.elsewhere) {
      log.warn('grants on objects of other databases were not applied: restore those databases, then apply them from the companion', {
        count: plan.elsewhere,
      });
    }
    await this.execute(plan.creates.map((s) => `${s};`), 'creating the backup\'s users');
    return {
      created: plan.created, skipped: plan.skipped, refused: plan.refused,
      afterLoad: () => this.execute(plan.grants.map((s) => `${s};`), 'applying the backup\'s grants'),
    };
  }

  /** Runs statements through the mysql client's stdin (they may hold password hashes: never argv). */
  private async execute(statements: readonly string[], what: string): Promise<void> {
    if (statements.length === 0) return;
    try {
      await new ProcessPipeline([this.restoreStage()], { input: Readable.from([Buffer.from(statements.join('\n'))]) }).done;
    } catch (err) {
      throw new AgentError(`${what} failed: ${(err as Error).message}`);
    }
  }

  async close(): Promise<void> {
    rmSync(this.dir, { recursive: true, force: true });
    this.forgetCleanup();
  }
}
