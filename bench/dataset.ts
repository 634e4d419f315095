/**
 * A benchmark database of a given size with realistic entropy: timestamps, ids, enums, emails,
 * user agents, JSON documents, hashes and free text, so that zstd and gzip meet something like
 * production data (about 5:1 with zstd -1), neither all-random nor all-zeros.
 */
import { pgQuery } from '../test/support/postgres';

const BATCH_ROWS = 500_000;

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS customers (id int PRIMARY KEY, email text NOT NULL, name text NOT NULL, country char(2), created_at timestamptz);
  CREATE TABLE IF NOT EXISTS events (
    id bigserial PRIMARY KEY, occurred_at timestamptz NOT NULL, customer_id int NOT NULL, kind text NOT NULL, status text NOT NULL,
    amount numeric(12,2), user_agent text, session char(32), payload jsonb, note text);`;

const CUSTOMERS = `
  INSERT INTO customers
  SELECT g, 'user' || g || '@' || (ARRAY['example.com','mail.test','corp.example','shop.test'])[1 + g % 4],
         initcap(substr(md5(g::text), 1, 6)) || ' ' || initcap(substr(md5((g * 7)::text), 1, 9)),
         (ARRAY['DE','FR','US','GB','NL','SE','ES','IT'])[1 + g % 8], now() - g * interval '37 seconds'
  FROM generate_series(1, 200000) g ON CONFLICT DO NOTHING`;

const EVENTS = (rows: number) => `
  INSERT INTO events (occurred_at, customer_id, kind, status, amount, user_agent, session, payload, note)
  SELECT now() - g * interval '250 milliseconds', 1 + (random() * 199999)::int,
         (ARRAY['page_view','click','add_to_cart','purchase','login','logout','search'])[1 + (random() * 6)::int],
         (ARRAY['ok','ok','ok','ok','retry','failed'])[1 + (random() * 5)::int],
         CASE WHEN random() < 0.3 THEN round((random() * 500)::numeric, 2) END,
         (ARRAY['Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36',
                'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15',
                'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148',
                'okhttp/4.12.0'])[1 + (random() * 3)::int],
         md5(random()::text),
         jsonb_build_object('path', '/p/' || (random() * 5000)::int, 'ref', substr(md5(random()::text), 1, 10),
                            'items', (random() * 8)::int, 'ab', (ARRAY['a','b'])[1 + (random())::int]),
         CASE WHEN random() < 0.2 THEN 'customer wrote: ' || repeat(substr(md5(random()::text), 1, 8) || ' ', 1 + (random() * 12)::int) END
  FROM generate_series(1, ${rows}) g`;

export async function databaseSize(database: string): Promise<number> {
  const [row] = await pgQuery<{ size: string }>(database, 'SELECT pg_database_size(current_database()) AS size');
  return Number(row.size);
}

/** Creates the database if needed and grows it to at least `targetBytes`. Idempotent across runs. */
export async function ensureDataset(database: string, targetBytes: number, say: (line: string) => void): Promise<number> {
  const exists = await pgQuery('postgres', 'SELECT 1 FROM pg_database WHERE datname = $1', [database]);
  if (exists.length === 0) await pgQuery('postgres', `CREATE DATABASE ${database}`);
  await pgQuery(database, SCHEMA);
  await pgQuery(database, CUSTOMERS);
  let size = await databaseSize(database);
  while (size < targetBytes) {
    say(`  ${database}: ${(size / 1e9).toFixed(2)} GB of ${(targetBytes / 1e9).toFixed(2)} GB, adding ${BATCH_ROWS} events…`);
    await pgQuery(database, EVENTS(BATCH_ROWS));
    size = await databaseSize(database);
  }
  await pgQuery(database, 'VACUUM ANALYZE');
  return size;
}
