/**
 * The corruption matrix (corruption-matrix.ts) for PostgreSQL: a streamed restore runs pg_restore in one
 * transaction, so a restore that fails leaves its target without a single table.
 */
import { createPgDatabase, createPgFixture, dropPgDatabase, PG, pgQuery, readerRole } from '../support';
import { corruptionMatrix } from './corruption-matrix';

corruptionMatrix({
  label: 'PostgreSQL', engine: 'postgres', server: PG, passwordVariable: 'PGPASSWORD',
  // ~3 MB of incompressible rows: some fifty age chunks.
  createSource: (db) => createPgFixture(db, { customers: 300, blobRows: 48, blobKiB: 64 }),
  changeSource: async (db) => { await pgQuery(db, "UPDATE sales.customers SET note = 'changed' WHERE id % 10 = 0; DELETE FROM public.blobs WHERE id = 1"); },
  dropSource: async (db) => {
    await dropPgDatabase(db);
    await pgQuery('postgres', `DROP ROLE IF EXISTS ${readerRole(db)}`);
  },
  createEmpty: createPgDatabase,
  drop: dropPgDatabase,
  tableCount: async (db) => {
    const [row] = await pgQuery<{ n: string }>(db, "SELECT count(*) AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'v', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'");
    return Number(row.n);
  },
  streamedRollsBack: true,
});
