/**
 * Scratch PostgreSQL databases on the local server (scripts/services.sh), with a realistic fixture:
 * two schemas, a foreign key, a view, a function, a trigger, a role with a grant, awkward strings
 * and optional incompressible blobs; plus per-table row counts and content checksums.
 */
import { Client } from 'pg';

export const PG = { host: '127.0.0.1', port: Number(process.env.PGPORT ?? 5432), user: 'restorable', password: 'restorable' };

export async function pgQuery<T extends object = Record<string, unknown>>(database: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new Client({ ...PG, database });
  try {
    await client.connect();
  } catch (err) {
    throw new Error(`cannot reach PostgreSQL at ${PG.host}:${PG.port} as ${PG.user} (run 'npm run services'): ${(err as Error).message}`);
  }
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

export function uniqueName(base: string): string {
  return `${base}_${process.pid}_${Date.now().toString(36)}`.toLowerCase();
}

export async function createPgDatabase(name: string): Promise<void> {
  await pgQuery('postgres', `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await pgQuery('postgres', `CREATE DATABASE ${name}`);
}

export async function dropPgDatabase(name: string): Promise<void> {
  await pgQuery('postgres', `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}

export interface PgFixtureOptions {
  readonly customers: number;
  /** Rows of random bytes (incompressible), each `blobKiB` KiB: makes the stored object large. */
  readonly blobRows?: number;
  readonly blobKiB?: number;
}

/** The role the fixture grants to: roles are cluster-wide, so it is named after the database. */
export const readerRole = (database: string) => `${database}_reader`;

export async function createPgFixture(database: string, options: PgFixtureOptions): Promise<void> {
  await createPgDatabase(database);
  const role = readerRole(database);
  await pgQuery('postgres', `DROP ROLE IF EXISTS ${role}`);
  await pgQuery('postgres', `CREATE ROLE ${role} NOLOGIN`);
  const blobs = options.blobRows ?? 0;
  const kib = options.blobKiB ?? 64;
  await pgQuery(database, `
    CREATE SCHEMA sales;
    CREATE TABLE sales.customers (id serial PRIMARY KEY, name text NOT NULL, note text, created_at timestamptz NOT NULL DEFAULT now());
    CREATE TABLE sales.orders (id bigserial PRIMARY KEY, customer_id int NOT NULL REFERENCES sales.customers,
      amount numeric(12,2) NOT NULL, placed_at timestamptz NOT NULL, payload jsonb);
    CREATE TABLE public.audit_log (id bigserial PRIMARY KEY, table_name text NOT NULL, action text NOT NULL);
    CREATE TABLE public.empty_table (id int);
    CREATE TABLE public.blobs (id int PRIMARY KEY, data bytea NOT NULL);
    CREATE FUNCTION sales.order_total(cid int) RETURNS numeric LANGUAGE sql STABLE
      AS $$ SELECT coalesce(sum(amount), 0) FROM sales.orders WHERE customer_id = cid $$;
    CREATE FUNCTION public.audit() RETURNS trigger LANGUAGE plpgsql
      AS $$ BEGIN INSERT INTO public.audit_log (table_name, action) VALUES (TG_TABLE_NAME, TG_OP); RETURN NEW; END $$;
    CREATE TRIGGER orders_audit AFTER INSERT ON sales.orders FOR EACH ROW EXECUTE FUNCTION public.audit();
    CREATE VIEW sales.customer_totals AS SELECT c.id, c.name, sales.order_total(c.id) AS total FROM sales.customers c;
    GRANT USAGE ON SCHEMA sales TO ${role};
    GRANT SELECT ON sales.customer_totals TO ${role};
    INSERT INTO sales.customers (name, note)
      SELECT CASE g % 4 WHEN 0 THEN 'O''Brien ' || g WHEN 1 THEN E'tab\\there ' || g WHEN 2 THEN 'Zoë),(' || g ELSE E'new\\nline;' || g END,
             CASE WHEN g % 3 = 0 THEN NULL ELSE md5(g::text) END
      FROM generate_series(1, ${options.customers}) g;
    INSERT INTO sales.orders (customer_id, amount, placed_at, payload)
      SELECT 1 + (g % ${options.customers}), round((random() * 1000)::numeric, 2), now() - g * interval '1 minute',
             jsonb_build_object('sku', 'SKU-' || (g % 97), 'qty', g % 5 + 1)
      FROM generate_series(1, ${options.customers * 3}) g;
    INSERT INTO public.blobs (id, data)
      SELECT g, (SELECT string_agg(uuid_send(gen_random_uuid()), ''::bytea) FROM generate_series(1, ${kib * 64}) WHERE g > 0)
      FROM generate_series(1, ${blobs}) g;
    ANALYZE;`);
}

export interface TableStats {
  readonly rows: number;
  readonly checksum: string;
}

/** Row count and an order-independent content checksum of every user table, keyed `schema.table`. */
export async function pgTableStats(database: string): Promise<Map<string, TableStats>> {
  const tables = await pgQuery<{ schema: string; table: string }>(database, `
    SELECT table_schema AS schema, table_name AS table FROM information_schema.tables
    WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2`);
  const stats = new Map<string, TableStats>();
  for (const { schema, table } of tables) {
    const [row] = await pgQuery<{ rows: string; checksum: string }>(database,
      `SELECT count(*) AS rows, md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) AS checksum FROM "${schema}"."${table}" t`);
    stats.set(`${schema}.${table}`, { rows: Number(row.rows), checksum: row.checksum });
  }
  return stats;
}
