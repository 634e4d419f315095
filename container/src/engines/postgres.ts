/**
 * PostgreSQL: `pg_dump -Fc -Z0` on a snapshot exported by the agent's own REPEATABLE READ
 * transaction, so that the row counts it takes in that transaction match the dump exactly.
 */
import { Client, ClientConfig } from 'pg';
import { DumpFormat, Engine, TableCount } from '../../../lib/contract';
import { Connection, describeConnection } from '../shared/connection';
import { AgentError, redactor } from '../shared/errors';
import { StageSpec } from '../shared/pipeline';
import { log } from '../shared/log';
import { capture, toolVersion } from '../shared/tools';
import { DumpJob, DumpPeek, EngineSession, GlobalsPlan, GlobalsResult, LoadOptions, LoadPlan, Refusal, RestoreStageOptions, SourceFacts } from './engine';
import { planPostgresLoad, privilegeProblem, roleRights } from './postgres-load';
import { readCompanion, roleSql } from './postgres-roles';

/** libpq's environment for a child: the password travels here, never in argv. */
export function libpqEnv(c: Connection, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return {
    ...base, PGHOST: c.host, PGPORT: String(c.port), PGUSER: c.user, PGDATABASE: c.database,
    ...(c.password !== undefined ? { PGPASSWORD: c.password } : {}),
  };
}

/** `pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)` → 15. */
export function majorOf(version: string): number {
  const m = /(\d+)(?:\.(\d+))?/.exec(version);
  return m ? Number(m[1]) : NaN;
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Tables whose data pg_dump writes: ordinary tables and partitions outside system schemas and extensions. */
const TABLES_SQL = `
  SELECT n.nspname AS schema, c.relname AS table
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r' AND c.relpersistence <> 't'
    AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
  ORDER BY 1, 2`;

/** Anything a restore could collide with: relations and functions outside system schemas and extensions. */
const TARGET_OBJECTS_SQL = `
  SELECT n.nspname || '.' || c.relname AS name
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
    AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
  UNION ALL
  SELECT n.nspname || '.' || p.proname || '()'
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
  ORDER BY 1`;

/** pg_dumpall --globals-only output as statements, without comments and psql meta-commands (\restrict). */
export function globalsStatements(sql: string): string[] {
  const statements: string[] = [];
  let current = '';
  for (const line of sql.split('\n')) {
    if (current === '' && (line.trim() === '' || line.startsWith('--') || line.startsWith('\\'))) continue;
    current += `${line}\n`;
    if (line.trimEnd().endsWith(';')) {
      statements.push(current.trim());
      current = '';
    }
  }
  if (current.trim()) statements.push(current.trim());
  return statements;
}

export class PostgresSession implements EngineSession {
  readonly engine = Engine.POSTGRES;
  readonly parallelRestore = true;
  readonly format = DumpFormat.PG_CUSTOM;
  private client?: Client;
  private facts?: SourceFacts;

  constructor(private readonly connection: Connection) {}

  private config(): ClientConfig {
    const c = this.connection;
    return { host: c.host, port: c.port, user: c.user, password: c.password, database: c.database,
      application_name: 'restorable', connectionTimeoutMillis: 15_000 };
  }

  private async connect(): Promise<Client> {
    const client = new Client(this.config());
    client.on('error', () => undefined); // a dropped idle connection surfaces on the next query
    try {
      await client.connect();
    } catch (err) {
      throw new AgentError(`could not connect to PostgreSQL as ${describeConnection(this.connection)}: ${redactor.redact((err as Error).message)}`);
    }
    return client;
  }

  async inspect(): Promise<SourceFacts> {
    const dumpVersion = toolVersion('pg_dump');
    this.client = await this.connect();
    const server = (await this.client.query<{ server_version: string }>('SHOW server_version')).rows[0].server_version;
    if (majorOf(dumpVersion) < majorOf(server)) {
      throw new AgentError(`pg_dump is older than the server: ${dumpVersion} cannot dump PostgreSQL ${server}. ` +
        `Install the PostgreSQL ${majorOf(server)} client tools (Debian/Ubuntu: apt-get install postgresql-client-${majorOf(server)}; ` +
        'in the container image, use the agent image built for this major version) and put its bin directory first on PATH.');
    }
    const size = await this.client.query<{ size: string }>('SELECT pg_database_size(current_database()) AS size');
    const tables = (await this.client.query<{ schema: string; table: string }>(TABLES_SQL)).rows;
    this.facts = {
      serverVersion: `PostgreSQL ${server}`,
      toolVersions: { pg_dump: dumpVersion },
      estimatedBytes: Number(size.rows[0].size),
      tables,
    };
    return this.facts;
  }

  async captureGlobals(): Promise<GlobalsResult> {
    const result = await capture('pg_dumpall', ['--globals-only', '--no-role-passwords', '--no-password', `--database=${this.connection.database}`],
      libpqEnv(this.connection));
    if (result.code !== 0) return { notCapturedReason: redactor.redact(result.stderr.trim().split('\n').slice(-3).join(' ')) };
    return { sql: result.stdout };
  }

  async startDump(): Promise<DumpJob> {
    // The exporting transaction must stay open until pg_dump has imported the snapshot; it is held until the
    // dump ends, which costs the database what pg_dump's own transaction costs: vacuum waits for both.
    const snapshotSession = await this.connect();
    await snapshotSession.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const snapshot = (await snapshotSession.query<{ id: string }>('SELECT pg_export_snapshot() AS id')).rows[0].id;
    const tables = (await snapshotSession.query<{ schema: string; table: string }>(TABLES_SQL)).rows;
    // Count while pg_dump runs, in the same snapshot: one extra scan of each table, in parallel with the dump.
    const counting = (async () => {
      const counts: TableCount[] = [];
      for (const t of tables) {
        const r = await snapshotSession.query<{ n: string }>(`SELECT count(*) AS n FROM ONLY ${quoteIdent(t.schema)}.${quoteIdent(t.table)}`);
        counts.push({ schema: t.schema, table: t.table, rows: Number(r.rows[0].n) });
      }
      return counts;
    })();
    counting.catch(() => undefined);
    let released = false;
    const stage: StageSpec = {
      name: 'pg_dump',
      command: 'pg_dump',
      args: ['--format=custom', '--compress=0', `--snapshot=${snapshot}`, '--no-password'],
      env: libpqEnv(this.connection),
    };
    return {
      stage,
      rowCounts: async () => {
        try {
          return await counting;
        } catch (err) {
          throw new AgentError(`counting rows in the dump's snapshot failed: ${redactor.redact((err as Error).message)}`);
        }
      },
      release: async () => {
        if (released) return;
        released = true;
        // Read-only: closing the connection ends the transaction without waiting for counts still running.
        await snapshotSession.end().catch(() => undefined);
      },
    };
  }

  restoreStage(options: RestoreStageOptions): StageSpec {
    // Streaming runs in one transaction, so a failure (or a checksum mismatch found at the end) leaves the
    // target as it was; -j cannot be combined with it, nor read stdin.
    const input = options.file ? [`--jobs=${options.jobs ?? 1}`, options.file] : ['--single-transaction'];
    return {
      name: 'pg_restore',
      command: 'pg_restore',
      args: ['--no-password', '--exit-on-error', `--dbname=${this.connection.database}`,
        ...(options.clean ? ['--clean', '--if-exists'] : []), ...input],
      env: libpqEnv(this.connection),
    };
  }

  async targetObjects(): Promise<string[]> {
    this.client ??= await this.connect();
    const rows = await this.client.query<{ name: string }>(TARGET_OBJECTS_SQL);
    return rows.rows.map((r) => r.name);
  }

  /**
   * Applies the roles companion through an allow-list (postgres-roles.ts): the agent runs statements it wrote from the
   * names and attributes it read, never the companion's text. Roles that exist are left alone (no ALTER, no GRANT to
   * them); a GRANT of a role with superuser-like rights is refused as a GRANT of a predefined role is.
   */
  async applyGlobals(sql: string): Promise<GlobalsPlan> {
    this.client ??= await this.connect();
    const client = this.client;
    const existing = new Set((await client.query<{ rolname: string }>('SELECT rolname FROM pg_roles')).rows.map((r) => r.rolname));
    const created = new Set<string>();
    const skipped = new Set<string>();
    const read = readCompanion(sql);
    const refused: Refusal[] = [];
    for (const r of read.refused) {
      if (r.role !== undefined && existing.has(r.role)) skipped.add(r.role);
      else refused.push({ what: r.what, why: r.why });
    }
    // One transaction: roles come back all together, or not at all.
    try {
      await client.query('BEGIN');
      for (const statement of read.statements) {
        const text = roleSql(statement);
        if (statement.kind === 'create' || statement.kind === 'alter' || statement.kind === 'comment') {
          if (existing.has(statement.role)) { skipped.add(statement.role); continue; }
          if (statement.kind !== 'create' && !created.has(statement.role)) {
            refused.push({ what: statement.what, why: `the companion does not create ${statement.role} first` });
            continue;
          }
          if (statement.kind === 'create') created.add(statement.role);
          await client.query(text);
          continue;
        }
        const oldMember = statement.members.find((m) => !created.has(m));
        if (oldMember !== undefined) {
          refused.push({ what: statement.what, why: `${oldMember} ${existing.has(oldMember) ? 'existed before the restore, and existing roles are left alone' : 'is not a role the companion creates'}` });
          continue;
        }
        // Only roles this companion created are handed out: granting a role the server already had (an application
        // owner, rds_iam) to a role the backup names would mint a login with that role's rights on a shared server.
        const foreign = statement.roles.find((r) => !created.has(r));
        if (foreign !== undefined) {
          refused.push({ what: statement.what, why: `${foreign} ${existing.has(foreign) ? 'existed before the restore: a backup never hands out a role the server already had' : 'is not a role the companion creates'}` });
          continue;
        }
        let problem: string | undefined;
        for (const role of statement.roles) {
          const rights = await roleRights(client, role);
          // Granted from a backup, a role passes on no predefined role at all (pg_read_all_data, pg_monitor…), not only the server ones.
          problem ??= !rights ? `${role} does not exist` : privilegeProblem(rights)
            ?? (rights.predefined.length ? `${role} is a member of ${rights.predefined.join(', ')}` : undefined);
        }
        if (problem) { refused.push({ what: statement.what, why: `${problem}: a restore never grants such a role` }); continue; }
        await client.query(text);
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw new AgentError(`applying the backup's roles failed, none were created: ${redactor.redact((err as Error).message)}`);
    }
    for (const r of refused) log.warn(`left out of the roles: ${r.what}: ${r.why}`);
    // Object grants travel in the dump itself.
    return { created: [...created], skipped: [...skipped], refused, afterLoad: async () => undefined };
  }

  async planLoad(dump: DumpPeek, options: LoadOptions): Promise<LoadPlan> {
    this.client ??= await this.connect();
    return planPostgresLoad(this.client, this.connection, dump, options);
  }

  async close(): Promise<void> {
    await this.client?.end().catch(() => undefined);
    this.client = undefined;
  }
}
