/**
 * What a MongoDB restore takes from an archive, decided before anything loads. A backup is untrusted input: its
 * prelude may name any database (admin's users, another application's data) and system collections (system.js runs
 * as server-side JavaScript). mongorestore's namespace filter keeps only the backed-up database's own collections;
 * this module names what the filter leaves out, so that nothing is dropped silently.
 */
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { AgentError, UsageError } from '../shared/errors';
import { DumpPeek, Refusal } from './engine';
import { TableCount } from '../../../lib/contract';
import { ArchiveNamespace, MongoArchiveCounter, archiveCountProblems } from './mongo-archive';

/** A database name as a mongorestore namespace pattern: `\` and `*` escaped (mongorestore/ns Escape). */
export function namespacePattern(database: string): string {
  // MongoDB's own rule for database names; `$` would also start a mongorestore pattern variable.
  if (database === '' || /[/\\. "$*<>:|?\0]/.test(database) || Buffer.byteLength(database) > 63) {
    throw new UsageError(`'${database}' is not a MongoDB database name (no / \\ . " $ * < > : | ? or space, at most 63 bytes)`);
  }
  return database.replace(/\\/g, '\\\\').replace(/\*/g, '\\*');
}

/**
 * Whether a namespace of the archive is one the load restores, as mongorestore's filter decides it (filepath.go): the
 * name tested is the collection's without a `system.buckets.` prefix, and `$`-prefixed special collections (another
 * database's users and roles in a --db dump) are skipped in a restore without --db.
 */
export function restoredNamespace(ns: Pick<ArchiveNamespace, 'db' | 'collection'>, sourceDatabase: string): boolean {
  const tested = ns.collection.startsWith('system.buckets.') ? ns.collection.slice('system.buckets.'.length) : ns.collection;
  return ns.db === sourceDatabase && !tested.startsWith('system.') && !tested.startsWith('$');
}

/**
 * Whether a manifest's collection is one a load restores: not a system collection, except a timeseries collection's
 * buckets (mongorestore matches those by the timeseries collection's name, so the filter keeps them).
 */
export function restoredCollection(table: string): boolean {
  return restoredNamespace({ db: '', collection: table }, '');
}

/** What the namespace filter leaves out of an archive, by name, and why. */
export function loadRefusals(namespaces: readonly ArchiveNamespace[], sourceDatabase: string): Refusal[] {
  return namespaces.filter((ns) => !restoredNamespace(ns, sourceDatabase)).map((ns) => ({
    what: `${ns.db}.${ns.collection}`,
    why: ns.db !== sourceDatabase
      ? `outside the backed-up database ${sourceDatabase}: a backup restores its own database only`
      : ns.collection === 'system.js'
        ? 'stored server-side JavaScript, which the server runs: recreate the functions by hand from a trusted copy'
        : ns.collection.startsWith('$')
          ? 'a special collection of mongodump (another database\'s users or roles), which mongorestore skips'
          : 'a system collection, the server\'s own',
  }));
}

/**
 * Reads a whole archive (a spooled file, or a fresh stream that fails unless the stored bytes matched the manifest)
 * through the counter, before anything loads: mongorestore writes as it reads, with no transaction to roll back, so
 * a damaged, truncated or forged archive must be found before the target is touched. Memory stays flat.
 */
export async function scanArchive(dump: DumpPeek): Promise<MongoArchiveCounter> {
  const stream: Readable = 'file' in dump ? createReadStream(dump.file) : dump.open();
  const counter = new MongoArchiveCounter();
  try {
    for await (const chunk of stream) {
      counter.write(chunk as Buffer);
      if (counter.problem) throw new AgentError(`the backup's dump is ${counter.problem}`);
    }
  } finally {
    stream.destroy();
  }
  return counter;
}

/** Why an archive read to its end must not be loaded: incomplete, or not holding the manifest's counts of its database. */
export function loadProblems(counter: MongoArchiveCounter, sourceDatabase: string, expected?: readonly TableCount[]): string[] {
  const incomplete = counter.incompleteness();
  if (incomplete) return [incomplete];
  return expected ? archiveCountProblems(counter, expected, sourceDatabase) : [];
}
