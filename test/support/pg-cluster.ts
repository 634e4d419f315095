/**
 * Queries against any PostgreSQL cluster (the local one, or a fresh embedded one), for tests that
 * restore into a cluster other than the local server that postgres.ts serves.
 */
import { Client } from 'pg';
import { TableStats } from './postgres';

export interface ClusterAddress {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password?: string;
}

export async function clusterQuery<T extends object = Record<string, unknown>>(at: ClusterAddress, database: string, sql: string): Promise<T[]> {
  const client = new Client({ ...at, database });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

/** Row count and an order-independent content checksum of every user table, keyed `schema.table`, in one query per table. */
export async function clusterTableStats(at: ClusterAddress, database: string): Promise<Map<string, TableStats>> {
  const tables = await clusterQuery<{ name: string }>(at, database, `
    SELECT format('%I.%I', table_schema, table_name) AS name FROM information_schema.tables
    WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`);
  const stats = new Map<string, TableStats>();
  for (const { name } of tables) {
    const [row] = await clusterQuery<{ rows: string; checksum: string }>(at, database,
      `SELECT count(*) AS rows, md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) AS checksum FROM ${name} t`);
    stats.set(name, { rows: Number(row.rows), checksum: row.checksum });
  }
  return stats;
}
