/**
 * The WAL-archived source the point-in-time drills share (the runbook's standard tools, and the restore test): a real
 * PostgreSQL 15 cluster archiving through `restorable wal-push` into a bucket, with track_commit_timestamp on, so
 * that a tick's commit time says whether a recovery to a time must hold it; ticks committed one transaction each.
 */
import { AgeKey, MotoBucket, agentEnv, clusterQuery } from '../support';
import { Pg15Cluster, startPg15Cluster } from '../support/pg-wal-cluster';

/** A tick's id and its commit time, ms since the epoch. */
export interface Tick {
  readonly id: number;
  readonly committedAt: number;
}

const quote = (s: string) => `'${s.replace(/'/g, "''")}'`;

/** Starts a cluster whose archive_command is the agent's wal-push for `source` in `s3`'s bucket. */
export function startArchivingCluster(agent: string, s3: MotoBucket, key: AgeKey, source: string, prefix?: string): Promise<Pg15Cluster> {
  return startPg15Cluster({
    settings: {
      archive_mode: 'on',
      archive_command: quote(`${process.execPath} ${agent} wal-push %p --source ${source} --bucket ${s3.bucket}${prefix ? ` --prefix ${prefix}` : ''} ` +
        `--recipient ${key.recipient}`),
      track_commit_timestamp: 'on',
      wal_keep_size: "'256MB'",
    },
    env: agentEnv(s3.env) as Record<string, string>,
  });
}

/** Switches to a new segment and waits until the archiver has stored the one it finished; fails at once on an archive failure. */
export async function archiveCurrentWal(cluster: Pg15Cluster): Promise<void> {
  const sql = <T extends object>(text: string) => clusterQuery<T>(cluster, 'postgres', text);
  const [{ file }] = await sql<{ file: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS file');
  const deadline = Date.now() + 60_000;
  for (;;) {
    const [stat] = await sql<{ last: string | null; failed: string }>('SELECT last_archived_wal AS last, failed_count AS failed FROM pg_stat_archiver');
    if (Number(stat.failed) > 0) throw new Error(`archive_command failed; the server's log:\n${cluster.log().slice(-3000)}`);
    if (stat.last && stat.last >= file) return;
    if (Date.now() > deadline) throw new Error(`${file} was not archived within a minute (last: ${stat.last}); log:\n${cluster.log().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Commits `count` rows into `table` (id serial, note text), one transaction each, `gapMs` apart; returns every 'tick' row's commit time. */
export async function commitTicks(cluster: Pg15Cluster, database: string, table: string, count: number, gapMs: number): Promise<Tick[]> {
  for (let i = 0; i < count; i++) {
    await clusterQuery(cluster, database, `INSERT INTO ${table} (note) VALUES ('tick')`);
    await new Promise((r) => setTimeout(r, gapMs));
  }
  const rows = await clusterQuery<{ id: number; at: string }>(cluster, database,
    `SELECT id, (extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1000)::bigint::text AS at FROM ${table} WHERE note = 'tick' ORDER BY id`);
  return rows.map((r) => ({ id: r.id, committedAt: Number(r.at) }));
}

/** A target halfway between the middle tick and the next one, and the ids a recovery to it must hold. */
export function targetBetweenTicks(ticks: readonly Tick[]): { last: Tick; target: Date; kept: number[] } {
  const last = ticks[Math.floor(ticks.length / 2)];
  const next = ticks.find((t) => t.committedAt > last.committedAt)!;
  const target = new Date(Math.floor((last.committedAt + next.committedAt) / 2));
  return { last, target, kept: ticks.filter((t) => t.committedAt <= target.getTime()).map((t) => t.id) };
}
