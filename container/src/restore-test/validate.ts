/**
 * Validation of a restored database against its manifest: the same set of tables (MongoDB: collections), each with
 * the row (document) count the manifest recorded at dump time (exact by default), then the user's checks. Every
 * failure is named with the table or check and by how much it missed.
 */
import { Client } from 'pg';
import { Engine, Manifest } from '../../../lib/contract';
import { CheckKind, CheckOutcome, QueryRows, UserCheck, isMongoCheck, judge, minRowsOutcome } from './checks';
import { MongoScratch } from './mongo-scratch';
import { Connection, describeConnection } from '../shared/connection';
import { MysqlSession } from '../engines/mysql';
import { restoredCollection } from '../engines/mongo-restore';
import { quoteIdent } from '../engines/postgres';
import { AgentError, UsageError, redactor } from '../shared/errors';

/** How far a restored row count may differ from the manifest's: rows, or a share of the recorded count. */
export interface Tolerance {
  readonly rows: number;
  readonly percent: number;
}

export const EXACT: Tolerance = { rows: 0, percent: 0 };

/** `--tolerance`: `0` (exact, the default), a number of rows such as `5`, or a share such as `0.5%`. */
export function parseTolerance(text: string | undefined): Tolerance {
  if (text === undefined) return EXACT;
  const m = /^(\d+(?:\.\d+)?)(%?)$/.exec(text.trim());
  if (!m) throw new UsageError(`--tolerance must be a number of rows (5) or a percentage (0.5%) of each table's recorded count; got '${text}'`);
  return m[2] ? { rows: 0, percent: Number(m[1]) } : { rows: Number(m[1]), percent: 0 };
}

function allowedDifference(expected: number, tolerance: Tolerance): number {
  return Math.max(tolerance.rows, Math.floor((expected * tolerance.percent) / 100));
}

export interface TableOutcome {
  /** `schema.table` for PostgreSQL; the table name for MySQL, whose schema is the restore's target database. */
  readonly table: string;
  /** The manifest's count; undefined for a table the restore holds but the manifest does not. */
  readonly expected?: number;
  /** The restored count; undefined for a table that is missing. */
  readonly actual?: number;
  readonly passed: boolean;
  readonly detail: string;
}

export interface Validation {
  readonly tables: readonly TableOutcome[];
  readonly checks: readonly CheckOutcome[];
  /** One line per failure, naming the table or check and by how much it missed. */
  readonly failures: readonly string[];
  readonly rowsChecked: number;
}

/** Read access to the restored (scratch) database. */
export interface ScratchDatabase {
  /** Base tables (MongoDB: collections) whose data a dump holds, as the manifest names them. */
  tables(): Promise<string[]>;
  countRows(table: string): Promise<number>;
  /** Runs one of the user's checks; throws when its query fails. `backupStartedAt` anchors maxAgeSeconds. */
  check(check: UserCheck, backupStartedAt: Date): Promise<CheckOutcome>;
  close(): Promise<void>;
}

/** PostgreSQL and MariaDB: checks are SQL. */
abstract class SqlScratch implements ScratchDatabase {
  abstract tables(): Promise<string[]>;
  abstract countRows(table: string): Promise<number>;
  abstract query(sql: string): Promise<QueryRows>;
  abstract close(): Promise<void>;

  async check(check: UserCheck, backupStartedAt: Date): Promise<CheckOutcome> {
    if (isMongoCheck(check)) throw new Error('a MongoDB check (it names a collection) cannot run in a SQL database: give it an "sql" query');
    if (check.kind !== CheckKind.MIN_ROWS) return judge(check, await this.query(check.sql), backupStartedAt);
    let rows: QueryRows;
    try {
      rows = await this.query(countingQuery(check.sql));
    } catch (err) {
      throw new Error(`${(err as Error).message} (a minRows query is counted as SELECT count(*) FROM (<sql>) AS restorable_check: ` +
        'it must be one SELECT whose columns have distinct names)');
    }
    return minRowsOutcome(check, Number(rows[0]?.[0]));
  }
}

/** Tables pg_dump writes data for: ordinary tables outside system schemas and extensions. */
const PG_TABLES_SQL = `
  SELECT n.nspname || '.' || c.relname AS name
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r' AND c.relpersistence <> 't'
    AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
  ORDER BY 1`;

function text(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return value.toISOString();
  if (Buffer.isBuffer(value)) return value.toString('hex');
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

class PostgresScratch extends SqlScratch {
  constructor(private readonly client: Client) {
    super();
  }

  static async open(c: Connection): Promise<PostgresScratch> {
    const client = new Client({ host: c.host, port: c.port, user: c.user, password: c.password, database: c.database,
      application_name: 'restorable restore-test', connectionTimeoutMillis: 15_000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
    } catch (err) {
      throw new AgentError(`could not connect to the restored database ${describeConnection(c)}: ${redactor.redact((err as Error).message)}`);
    }
    // Times come back in UTC, so that maxAgeSeconds reads them the same whatever the server's zone.
    await client.query("SET TIME ZONE 'UTC'");
    return new PostgresScratch(client);
  }

  async tables(): Promise<string[]> {
    return (await this.client.query<{ name: string }>(PG_TABLES_SQL)).rows.map((r) => r.name);
  }

  async countRows(table: string): Promise<number> {
    const [schema, ...rest] = table.split('.');
    const rows = await this.query(`SELECT count(*) FROM ${quoteIdent(schema)}.${quoteIdent(rest.join('.'))}`);
    return Number(rows[0][0]);
  }

  async query(sql: string): Promise<QueryRows> {
    const result = await this.client.query({ text: sql, rowMode: 'array' });
    return (result.rows as unknown[][]).map((row) => row.map(text));
  }

  async close(): Promise<void> {
    await this.client.end().catch(() => undefined);
  }
}

class MysqlScratch extends SqlScratch {
  constructor(private readonly session: MysqlSession) {
    super();
  }

  async tables(): Promise<string[]> {
    const rows = await this.session.query("SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY 1");
    return rows.map(([name]) => name);
  }

  async countRows(table: string): Promise<number> {
    return Number((await this.session.query(`SELECT COUNT(*) FROM \`${table.replace(/`/g, '``')}\``))[0][0]);
  }

  async query(sql: string): Promise<QueryRows> {
    // Each query is one client run: its session reads TIMESTAMPs in UTC. The client prints NULL as the text NULL.
    const rows = await this.session.query(`SET time_zone = '+00:00';\n${sql}`);
    return rows.map((row) => row.map((v) => (v === 'NULL' ? null : /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/.test(v) ? `${v.replace(' ', 'T')}Z` : v)));
  }

  async close(): Promise<void> {
    await this.session.close();
  }
}

export async function openScratch(engine: Engine, connection: Connection): Promise<ScratchDatabase> {
  switch (engine) {
    case Engine.POSTGRES: return PostgresScratch.open(connection);
    case Engine.MYSQL: return new MysqlScratch(new MysqlSession(connection));
    case Engine.MONGODB: return new MongoScratch(connection);
  }
}

/** What validation needs from a manifest. */
export type RecordedBackup = Pick<Manifest, 'engine' | 'startedAt' | 'tables'>;

/** How the manifest names a table in the restored database. */
function manifestTables(manifest: RecordedBackup): Map<string, number> {
  // A MongoDB restore loads no system collection but a timeseries collection's buckets (system.js is left out, named).
  const tables = manifest.engine === Engine.MONGODB ? manifest.tables.filter((t) => restoredCollection(t.table)) : manifest.tables;
  return new Map(tables.map((t) => [manifest.engine === Engine.POSTGRES ? `${t.schema}.${t.table}` : t.table, t.rows]));
}

/** How a report names an engine's tables and rows: MongoDB has collections of documents. */
function words(engine: Engine): { table: string; rows: string } {
  return engine === Engine.MONGODB ? { table: 'collection', rows: 'documents' } : { table: 'table', rows: 'rows' };
}

export function compareTables(manifest: RecordedBackup, restored: ReadonlyMap<string, number>, tolerance: Tolerance): TableOutcome[] {
  const expected = manifestTables(manifest);
  const { table: noun, rows: unit } = words(manifest.engine);
  const outcomes: TableOutcome[] = [];
  for (const [table, rows] of expected) {
    const actual = restored.get(table);
    if (actual === undefined) {
      outcomes.push({ table, expected: rows, passed: false, detail: `${noun} ${table} is missing from the restored database (the manifest recorded ${rows} ${unit})` });
      continue;
    }
    const difference = actual - rows;
    const allowed = allowedDifference(rows, tolerance);
    const passed = Math.abs(difference) <= allowed;
    outcomes.push({ table, expected: rows, actual, passed, detail: difference === 0
      ? `${noun} ${table}: ${actual} ${unit}, as recorded`
      : `${noun} ${table}: ${actual} ${unit} restored, the manifest recorded ${rows} (${difference > 0 ? '+' : ''}${difference}; ${allowed} allowed)` });
  }
  for (const [table, actual] of restored) {
    if (!expected.has(table)) {
      outcomes.push({ table, actual, passed: false, detail: `${noun} ${table} (${actual} ${unit}) is in the restored database but not in the manifest` });
    }
  }
  return outcomes;
}

/**
 * A `minRows` check's query, counted by the server: the rows never reach the agent, so a check over a table of
 * any size costs the agent one number. Trailing semicolons are dropped and the query kept on its own lines (a
 * trailing `--` comment stays a comment); the alias makes it valid for MySQL/MariaDB too.
 */
export function countingQuery(sql: string): string {
  return `SELECT count(*) FROM (\n${sql.replace(/[\s;]+$/, '')}\n) AS restorable_check`;
}

/** Runs the user's checks, maxAge counted back from `anchor` (a query that fails is a failed check). */
export async function validateChecks(db: ScratchDatabase, checks: readonly UserCheck[], anchor: Date): Promise<{ checks: CheckOutcome[]; failures: string[] }> {
  const outcomes: CheckOutcome[] = [];
  for (const check of checks) {
    try {
      outcomes.push(await db.check(check, anchor));
    } catch (err) {
      outcomes.push({ name: check.name, kind: check.kind, expected: check.expected, passed: false,
        detail: `the query failed: ${redactor.redact((err as Error).message)}` });
    }
  }
  return { checks: outcomes, failures: outcomes.filter((c) => !c.passed).map((c) => `check '${c.name}': ${c.detail}`) };
}

/** Compares tables and counts, then runs the user's checks (a query that fails is a failed check). */
export async function validateRestore(db: ScratchDatabase, manifest: RecordedBackup, checks: readonly UserCheck[], tolerance: Tolerance): Promise<Validation> {
  const restored = new Map<string, number>();
  for (const table of await db.tables()) restored.set(table, await db.countRows(table));
  const tables = compareTables(manifest, restored, tolerance);
  const checked = await validateChecks(db, checks, new Date(manifest.startedAt));
  const failures = [...tables.filter((t) => !t.passed).map((t) => t.detail), ...checked.failures];
  return { tables, checks: checked.checks, failures, rowsChecked: [...restored.values()].reduce((a, b) => a + b, 0) };
}
