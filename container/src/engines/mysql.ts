/**
 * MariaDB / MySQL: `mysqldump --single-transaction`, without --databases so that a restore may
 * target another database name. mysqldump cannot share its snapshot, so row counts come from
 * counting the rows in the dump stream itself. The password reaches the client tools through a
 * 0600 option file in a private temporary directory, removed when the session closes.
 */
import { Readable } from 'node:stream';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DumpFormat, Engine, TableCount } from '../../../lib/contract';
import { Connection, describeConnection } from '../shared/connection';
import { onAbort } from '../shared/cleanup';
import { AgentError, redactor } from '../shared/errors';
import { ProcessPipeline, StageSpec } from '../shared/pipeline';
import { capture, toolVersion } from '../shared/tools';
import { DumpJob, EngineSession, GlobalsPlan, GlobalsResult, SourceFacts } from './engine';
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

/** Undoes the escaping of mysql's --batch output (\n, \t, \\, \0). */
function unescapeBatch(value: string): string {
  return value.replace(/\\([nt0\\])/g, (_, c: string) => (c === 'n' ? '\n' : c === 't' ? '\t' : c === '0' ? '\0' : '\\'));
}

/** Accounts the server itself owns: never worth restoring elsewhere. */
const SYSTEM_ACCOUNTS = new Set(['mariadb.sys', 'mysql.sys', 'mysql.session', 'mysql.infoschema', 'PUBLIC']);

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
    const lines = ['[client]', `host=${optionValue(connection.host)}`, `port=${connection.port}`, `user=${optionValue(connection.user)}`,
      ...(connection.password !== undefined ? [`password=${optionValue(connection.password)}`] : []), 'protocol=TCP'];
    writeFileSync(this.defaultsFile, `${lines.join('\n')}\n`, { mode: 0o600 });
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
        return { notCapturedReason: `cannot read the grants of ${user}@${host}: ${(err as Error).message}` };
      }
    }
    return { sql: `-- Users and grants, from SHOW CREATE USER and SHOW GRANTS.\n${statements.join('\n')}\n` };
  }

  async startDump(): Promise<DumpJob> {
    const counter = new SqlRowCounter();
    const stage: StageSpec = {
      name: 'mysqldump',
      command: 'mysqldump',
      args: [`--defaults-extra-file=${this.defaultsFile}`, '--single-transaction', '--routines', '--triggers', '--events',
        '--hex-blob', '--no-tablespaces', '--default-character-set=utf8mb4', '--skip-dump-date', this.connection.database],
      env: this.env(),
      inspect: (chunk) => counter.write(chunk),
    };
    return {
      stage,
      rowCounts: async (): Promise<TableCount[]> => {
        if (counter.midStatement) throw new AgentError('the mysqldump output ended inside an INSERT statement: the dump is incomplete');
        // Empty tables have no INSERT at all: they count 0.
        const counts = new Map([...this.tables.map((table): [string, number] => [table, 0]), ...counter.result()]);
        return [...counts].sort(([a], [b]) => a.localeCompare(b)).map(([table, rows]) => ({ schema: this.connection.database, table, rows }));
      },
      release: async () => undefined,
    };
  }

  restoreStage(): StageSpec {
    // A SQL dump drops and recreates each table itself, so there is nothing extra to do for --clean; the mysql
    // client loads in one session, so a spooled dump is fed on stdin like a streamed one.
    return { name: 'mysql', command: 'mysql', args: [`--defaults-extra-file=${this.defaultsFile}`, this.connection.database], env: this.env() };
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

  async applyGlobals(sql: string, sourceDatabase: string): Promise<GlobalsPlan> {
    const existing = new Set((await this.query('SELECT user, host FROM mysql.user')).map(([user, host]) => `${user}@${host}`));
    const created: string[] = [];
    const skipped: string[] = [];
    const accounts: string[] = [];
    const grants: string[] = [];
    // The companion holds one block per account, headed `-- user@host`.
    for (const block of sql.split(/^(?=-- )/m).filter((b) => b.startsWith('-- ') && /;\s*$/m.test(b))) {
      const account = block.slice(3, block.indexOf('\n')).trim();
      if (existing.has(account)) {
        skipped.push(account);
        continue;
      }
      created.push(account);
      for (const line of block.split('\n').filter((l) => l.trim() && !l.startsWith('--'))) {
        // Grants on the backed-up database follow it to the target's name, once its tables exist.
        if (line.startsWith('CREATE ')) accounts.push(line);
        else grants.push(line.split(` ON ${quoteName(sourceDatabase)}.`).join(` ON ${quoteName(this.connection.database)}.`));
      }
    }
    await this.execute(accounts, 'creating the backup\'s users');
    // A grant on a table or routine of another database needs that object, which this restore does not bring:
    // those wait until their own database is restored. Grants on *.* or on a whole database always apply.
    const target = quoteName(this.connection.database);
    const elsewhere = grants.filter((g) => {
      const object = / ON (?:PROCEDURE |FUNCTION )?(`(?:[^`]|``)+`)\.`/.exec(g);
      return object !== null && object[1] !== target;
    });
    if (elsewhere.length) {
      log.warn('grants on objects of other databases were not applied: restore those databases, then apply them from the companion', {
        count: elsewhere.length,
      });
    }
    const applicable = grants.filter((g) => !elsewhere.includes(g));
    return { created, skipped, refused: [], afterLoad: () => this.execute(applicable, 'applying the backup\'s grants') };
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
