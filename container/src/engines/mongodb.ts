/**
 * MongoDB (self-managed, Atlas over the network, Amazon DocumentDB, and MongoDB-wire servers such as FerretDB):
 * `mongodump --db NAME --archive` to stdout, compressed by the pipeline's zstd (not --gzip). Document counts come from
 * the archive stream itself as it passes (mongo-archive.ts), so they are those of the documents dumped.
 *
 * Consistency: mongodump refuses --oplog for a dump of one database ("--oplog mode only supported on full dumps"),
 * and a whole-instance dump would need read rights on every database. So each collection is read by its own cursor,
 * with no snapshot shared between collections: a document written during the dump may or may not be in it, and
 * references between collections may not match. The manifest says so in its warnings, for every source (a
 * standalone server has no oplog either). The counts stay exact for what was stored: they are read from the archive.
 *
 * The password reaches mongodump and mongorestore through a 0600 YAML file given with --config (the tools read
 * `password:` from it), in a private temporary directory removed when the session closes or the agent is stopped;
 * never argv, and the children's environment holds no MONGODB_PASSWORD. The agent's own queries use the driver.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BSON, Db, Document, MongoClient, MongoClientOptions } from 'mongodb';
import { DumpFormat, Engine, TableCount } from '../../../lib/contract';
import { Connection, MongoConnectionOptions, describeConnection } from '../shared/connection';
import { onAbort } from '../shared/cleanup';
import { AgentError, UsageError, redactor } from '../shared/errors';
import { StageSpec, isolatedEnv } from '../shared/pipeline';
import { toolVersion } from '../shared/tools';
import { DumpJob, DumpOptions, DumpPeek, EngineSession, GlobalsPlan, GlobalsResult, LoadOptions, LoadPlan, RestoreStageOptions, SourceFacts } from './engine';
import { MongoArchiveCounter, documentCounts } from './mongo-archive';
import { loadProblems, loadRefusals, namespacePattern, restoredCollection, restoredNamespace, scanArchive } from './mongo-restore';
import { parseMongoGlobals, reportMongoGlobals } from './mongo-globals';

const DEFAULT_MONGO_OPTIONS: MongoConnectionOptions = { authSource: 'admin', tls: false };

/** Why a per-database dump is not one snapshot: said in every MongoDB manifest. */
export const MONGO_CONSISTENCY_WARNING = 'a MongoDB dump of one database reads each collection with its own cursor (mongodump refuses --oplog ' +
  'for a single database): documents written during the dump may or may not be in it, and collections are not consistent with each other. ' +
  'The document counts are those of the archive. For one consistent point, stop writes during the backup or back up a replica set member ' +
  'taken out of replication';

/**
 * Whether the connection logs in. Without a password it does not: the tools, given --username and no password, read
 * one from stdin, which for mongorestore is the archive itself; and a password-less login is no login at all.
 */
function authenticates(connection: Connection): boolean {
  return connection.password !== undefined && connection.password !== '';
}

/** The tools' connection flags, password excluded (it is in the --config file). */
export function mongoToolFlags(connection: Connection, configFile?: string): string[] {
  const options = connection.mongo ?? DEFAULT_MONGO_OPTIONS;
  const auth = authenticates(connection) ? [`--username=${connection.user}`, `--authenticationDatabase=${options.authSource}`,
    ...(options.authMechanism ? [`--authenticationMechanism=${options.authMechanism}`] : []), ...(configFile ? [`--config=${configFile}`] : [])] : [];
  return [`--host=${connection.host}`, `--port=${connection.port}`, ...auth,
    ...(options.tls ? ['--ssl'] : []), ...(options.tlsCaFile ? [`--sslCAFile=${options.tlsCaFile}`] : [])];
}

/** The driver's options for the same connection: one server, as the tools connect (they connect directly to --host). */
function driverOptions(connection: Connection): MongoClientOptions {
  const options = connection.mongo ?? DEFAULT_MONGO_OPTIONS;
  return {
    ...(authenticates(connection) ? {
      auth: { username: connection.user, password: connection.password },
      authSource: options.authSource,
      ...(options.authMechanism ? { authMechanism: options.authMechanism as MongoClientOptions['authMechanism'] } : {}),
    } : {}),
    tls: options.tls,
    ...(options.tlsCaFile ? { tlsCAFile: options.tlsCaFile } : {}),
    directConnection: true,
    serverSelectionTimeoutMS: 15_000,
    connectTimeoutMS: 15_000,
    appName: 'restorable',
  };
}

/** The server's words, without the driver's class name or any secret. */
function serverWords(err: unknown): string {
  const e = err as Error & { codeName?: string };
  return redactor.redact(`${e.message}${e.codeName && !e.message.includes(e.codeName) ? ` (${e.codeName})` : ''}`);
}

export interface MongoSessionOptions {
  /** Restores: the database the backup was taken from, whose namespaces the archive holds (the manifest's). */
  readonly sourceDatabase?: string;
  /** Restores: the manifest's document counts, which the archive must hold before anything loads. */
  readonly tables?: readonly TableCount[];
}

export class MongoSession implements EngineSession {
  readonly engine = Engine.MONGODB;
  readonly format = DumpFormat.MONGO_ARCHIVE;
  readonly parallelRestore = false;
  private readonly dir: string;
  private readonly configFile: string;
  private readonly forgetCleanup: () => void;
  private client?: MongoClient;
  /** Set by planLoad: the archive's views that the load creates, and the target's collections before it. */
  private archiveViews: string[] = [];
  private before: string[] = [];

  constructor(private readonly connection: Connection, private readonly options: MongoSessionOptions = {}) {
    this.dir = mkdtempSync(join(tmpdir(), 'restorable-mongo-'));
    this.configFile = join(this.dir, 'tools.yaml');
    mkdirSync(join(this.dir, 'home'), { mode: 0o700 });
    // A JSON string is a YAML double-quoted scalar: any character of the password survives.
    if (authenticates(connection)) writeFileSync(this.configFile, `password: ${JSON.stringify(connection.password)}\n`, { mode: 0o600 });
    this.forgetCleanup = onAbort(() => rmSync(this.dir, { recursive: true, force: true }));
  }

  /**
   * The whole environment of a tool child, made for it as for binlog replay: PATH, an empty 0700 HOME, TZ and LANG,
   * and the CA bundle's location if one is set. mongorestore parses the least trusted principal's bytes: it gets no
   * AWS credentials, no password variable (the --config file carries it), nothing else of the agent's.
   */
  private env(): NodeJS.ProcessEnv {
    const ca = Object.fromEntries(['SSL_CERT_FILE', 'SSL_CERT_DIR'].filter((name) => process.env[name]).map((name) => [name, process.env[name]]));
    return { ...isolatedEnv(join(this.dir, 'home')), ...ca };
  }

  toolFlags(): string[] {
    return mongoToolFlags(this.connection, this.configFile);
  }

  /** The connected database, through the driver; a failure says where and as whom, in the server's words. */
  async db(): Promise<Db> {
    if (!this.client) {
      const client = new MongoClient(`mongodb://${this.connection.host.includes(':') ? `[${this.connection.host}]` : this.connection.host}:${this.connection.port}/`,
        driverOptions(this.connection));
      try {
        await client.connect();
        await client.db(this.connection.database).command({ ping: 1 });
      } catch (err) {
        await client.close().catch(() => undefined);
        throw new AgentError(`could not connect to MongoDB as ${describeConnection(this.connection)} (auth source ` +
          `${(this.connection.mongo ?? DEFAULT_MONGO_OPTIONS).authSource}): ${serverWords(err)}`);
      }
      this.client = client;
    }
    return this.client.db(this.connection.database);
  }

  /** The database's collections by type: documents live in 'collection' (and timeseries buckets), never in views. */
  async collections(): Promise<{ name: string; type: string }[]> {
    const db = await this.db();
    const listed = await db.listCollections({}, { nameOnly: false, authorizedCollections: true }).toArray() as Document[];
    return listed.map((c) => ({ name: String(c.name), type: String(c.type ?? 'collection') })).sort((a, b) => a.name.localeCompare(b.name));
  }

  async inspect(): Promise<SourceFacts> {
    const dumpVersion = toolVersion('mongodump');
    const db = await this.db();
    const build = await db.admin().command({ buildInfo: 1 }).catch((err: unknown) => {
      throw new AgentError(`MongoDB at ${this.connection.host}:${this.connection.port} refused buildInfo: ${serverWords(err)}`);
    });
    const stats = await db.command({ dbStats: 1 }).catch(() => ({} as Document));
    // What holds documents: collections and timeseries collections; views hold none.
    const collections = (await this.collections()).filter((c) => (c.type === 'collection' || c.type === 'timeseries') && !c.name.startsWith('system.'));
    return {
      serverVersion: `MongoDB ${String(build.version)}`,
      toolVersions: { mongodump: dumpVersion },
      // Uncompressed data plus indexes, as the server counts them: the basis of the part size.
      estimatedBytes: Number(stats.dataSize ?? 0) + Number(stats.indexSize ?? 0),
      tables: collections.map((c) => ({ schema: this.connection.database, table: c.name })),
    };
  }

  /**
   * The database's users (usersInfo, credentials never shown) and user-defined roles with their privileges
   * (rolesInfo), as JSON. A restore reports them for a person to recreate: they carry no password.
   */
  async captureGlobals(): Promise<GlobalsResult> {
    const db = await this.db();
    let users: Document;
    let roles: Document;
    try {
      users = await db.command({ usersInfo: 1, showCredentials: false });
      roles = await db.command({ rolesInfo: 1, showPrivileges: true, showBuiltinRoles: false });
    } catch (err) {
      return { notCapturedReason: `cannot read the users and roles of ${this.connection.database} (usersInfo, rolesInfo): ${serverWords(err)}` };
    }
    const companion = {
      format: 'restorable-mongodb-users-roles/1',
      database: this.connection.database,
      note: 'usersInfo (without credentials) and rolesInfo (with privileges) of the database: restores list them, a person recreates them',
      users: (users.users as Document[] | undefined) ?? [],
      roles: (roles.roles as Document[] | undefined) ?? [],
    };
    return { sql: `${BSON.EJSON.stringify(companion, undefined, 2, { relaxed: false })}\n` };
  }

  async startDump(options: DumpOptions = {}): Promise<DumpJob> {
    if (options.binlogCoordinates) throw new UsageError('--binlog-coordinates is for MariaDB sources; a MongoDB source has no binlog');
    const counter = new MongoArchiveCounter();
    const database = this.connection.database;
    const check = (): void => {
      const incomplete = counter.incompleteness();
      if (incomplete) throw new AgentError(`mongodump exited 0 but ${incomplete}: not storing it as a backup`);
      const foreign = counter.namespaces.filter((ns) => ns.db !== database);
      if (foreign.length) {
        throw new AgentError(`the archive holds namespaces outside ${database} (${foreign.map((ns) => `${ns.db}.${ns.collection}`).join(', ')}): not storing it`);
      }
    };
    return {
      stage: {
        name: 'mongodump',
        command: 'mongodump',
        args: [...this.toolFlags(), `--db=${database}`, '--archive'],
        env: this.env(),
        inspect: (chunk) => counter.write(chunk),
      },
      checkComplete: check,
      rowCounts: async (): Promise<TableCount[]> => {
        check();
        return documentCounts(counter.namespaces, database);
      },
      release: async () => undefined,
    };
  }

  /** The database the archive's namespaces are in: the manifest's, or (without one) the connected database's name. */
  private get sourceDatabase(): string {
    return this.options.sourceDatabase ?? this.connection.database;
  }

  /**
   * mongorestore reading the archive from stdin: only the source database's namespaces, renamed to the target's,
   * never its system collections (system.js holds server-side JavaScript; system.users and system.roles are the
   * server's), never users and roles, never the source's collection UUIDs. --drop only with --clean.
   */
  restoreStage(options: RestoreStageOptions): StageSpec {
    const source = namespacePattern(this.sourceDatabase);
    const target = namespacePattern(this.connection.database);
    return {
      name: 'mongorestore',
      command: 'mongorestore',
      args: [...this.toolFlags(), '--archive', `--nsInclude=${source}.*`, `--nsExclude=${source}.system.*`, `--nsFrom=${source}.*`,
        `--nsTo=${target}.*`, '--stopOnError', ...(options.clean ? ['--drop'] : [])],
      env: this.env(),
      // An empty private directory: mongorestore opens a file under its working directory for a long collection
      // name the archive gives (<db>/<name>.metadata.json), which must find nothing there.
      cwd: join(this.dir, 'home'),
    };
  }

  async targetObjects(): Promise<string[]> {
    return (await this.collections()).map((c) => c.type === 'collection' ? c.name : `${c.name} (${c.type})`);
  }

  /** Never creates a user or role from a backup: it lists them, refused, for a person to recreate. */
  async applyGlobals(text: string, sourceDatabase: string): Promise<GlobalsPlan> {
    const refused = reportMongoGlobals(parseMongoGlobals(text), sourceDatabase, this.connection.database);
    return { created: [], skipped: [], refused, afterLoad: async () => undefined };
  }

  /**
   * Reads the whole archive before anything is loaded (mongorestore has no transaction to roll back): it must be
   * complete and hold the manifest's counts, and what lies outside the backed-up database (another database's
   * namespaces, the server's users, system collections) is left out by the namespace filter and reported by name.
   * The load runs as the connecting user: mongorestore inserts documents and creates collections, indexes and views,
   * and (without --restoreDbUsersAndRoles) nothing else.
   */
  async planLoad(dump: DumpPeek, options: LoadOptions): Promise<LoadPlan> {
    if (options.owner !== undefined) {
      throw new UsageError('--owner names a PostgreSQL role: a MongoDB restore loads as the connecting user; connect as a user with readWrite on the target database');
    }
    const archive = await scanArchive(dump);
    const problems = loadProblems(archive, this.sourceDatabase, this.options.tables);
    if (problems.length) throw new AgentError(`the backup's archive is not what its manifest recorded, so none of it is loaded:\n${problems.join('\n')}`);
    this.archiveViews = archive.namespaces.filter((ns) => ns.type === 'view' && restoredNamespace(ns, this.sourceDatabase)).map((ns) => ns.collection);
    this.before = (await this.collections()).map((c) => c.name);
    return {
      refused: loadRefusals(archive.namespaces, this.sourceDatabase),
      installed: [],
      loadedAs: this.connection.user,
      connection: this.connection,
      stage: (o) => this.restoreStage(o),
      release: async () => undefined,
    };
  }

  /**
   * After a load: what the target holds against the manifest. Each restored collection's documents are counted, but
   * only once the server says it is a collection (counting a view would run the backup's pipeline); and any collection
   * or view neither in the manifest, nor a view of the archive, nor there before the load is named. Throws naming
   * every difference.
   */
  async checkLoaded(expected: readonly TableCount[]): Promise<void> {
    const db = await this.db();
    const listed = new Map((await this.collections()).map((c) => [c.name, c.type]));
    const wanted = expected.filter((e) => restoredCollection(e.table));
    const differences: string[] = [];
    for (const t of wanted) {
      const type = listed.get(t.table);
      if (type !== undefined && type !== 'collection' && type !== 'timeseries') {
        differences.push(`${t.table}: a ${type}, the manifest says a collection of ${t.rows} documents`);
        continue;
      }
      const found = await db.collection(t.table).countDocuments({});
      if (found !== t.rows) differences.push(`${t.table}: ${found} documents, the manifest says ${t.rows}`);
    }
    const known = new Set([...wanted.map((t) => t.table), ...wanted.map((t) => t.table.replace(/^system\.buckets\./, '')), ...this.archiveViews, ...this.before]);
    for (const [name, type] of listed) {
      // The server's own (system.views, a timeseries collection's buckets): never a target of the filter.
      if (!known.has(name) && !name.startsWith('system.')) differences.push(`${name}: a ${type} the backup's manifest does not hold`);
    }
    if (differences.length) throw new AgentError(`the restored database differs from the backup's manifest: ${differences.join('; ')}`);
  }

  async close(): Promise<void> {
    await this.client?.close().catch(() => undefined);
    this.client = undefined;
    rmSync(this.dir, { recursive: true, force: true });
    this.forgetCleanup();
  }
}
