/**
 * What the agent needs from a database engine. One module per engine implements it, with the dump
 * side (used by `backup`) and the restore side (used by `restore` and `restore-test`).
 */
import { BinlogCoordinates, DumpFormat, Engine, TableCount } from '../../../lib/contract';
import { Readable } from 'node:stream';
import { Connection } from '../shared/connection';
import { StageSpec } from '../shared/pipeline';

/** What the database holds, learned before the dump starts. */
export interface SourceFacts {
  readonly serverVersion: string;
  /** Programs and their versions, for the manifest. */
  readonly toolVersions: Record<string, string>;
  /** Bytes the database occupies: the basis for the upload's part size. */
  readonly estimatedBytes: number;
  readonly tables: readonly { readonly schema: string; readonly table: string }[];
}

/** One running dump: the process to run and the row counts that match exactly what it wrote. */
export interface DumpJob {
  readonly stage: StageSpec;
  /** Called once the dump process exited 0. */
  rowCounts(): Promise<TableCount[]>;
  /** Releases what the dump held (a snapshot transaction, a defaults file); safe to call twice. */
  release(): Promise<void>;
  /**
   * Once the dump process exited 0 and before its object completes: throws when what it wrote is not a whole dump (an
   * archive cut short), so that the object is never stored, let alone named by latest.json.
   */
  checkComplete?(): void;
  /** With DumpOptions.binlogCoordinates, once the dump process exited 0: where the dump sits in the server's binlog. */
  binlogCoordinates?(): BinlogCoordinates;
}

export interface DumpOptions {
  /**
   * MariaDB sources whose binlogs are streamed: record where the dump's consistent snapshot sits in the binlog, so that
   * a point-in-time restore knows where replay starts. Engines without binlogs refuse it.
   */
  readonly binlogCoordinates?: boolean;
}

export interface RestoreStageOptions {
  /** Replace what the backup holds in a non-empty target. */
  readonly clean: boolean;
  /** A spooled, decrypted dump to read instead of stdin (engines that can use it run `jobs` in parallel). */
  readonly file?: string;
  /** Parallel jobs for a spooled dump; 1 when streaming. */
  readonly jobs?: number;
}

/**
 * Something in a backup that a restore would not run, and why. A backup is untrusted input (whoever holds a dump
 * task's credentials can write one), so what would need more rights than a load has is left out and reported by
 * name, never silently dropped.
 */
export interface Refusal {
  /** What was left out, as the backup names it: a statement's first words, or an archive entry. */
  readonly what: string;
  readonly why: string;
}

/** Which roles/users the globals companion created, which it left alone because they existed, and what it refused. */
export interface GlobalsApplied {
  readonly created: readonly string[];
  readonly skipped: readonly string[];
  readonly refused: readonly Refusal[];
}

/** Globals applied before the data, and what must wait until the data is there (grants on its tables). */
export interface GlobalsPlan extends GlobalsApplied {
  afterLoad(): Promise<void>;
}

/**
 * The decompressed dump, for a look at what it holds before any of it runs: a spooled file, or a fresh read of the
 * stream from its start (the engine destroys the stream once it has read enough).
 */
export type DumpPeek = { readonly file: string } | { readonly open: () => Readable };

/** Who a load runs as; a backup is untrusted input, so never a superuser unless the operator says so. */
export interface LoadOptions {
  /**
   * A scratch database (restore tests): the load runs as a temporary role that owns the database and may act as the
   * roles the backup's companion created (`createdRoles`), nothing more.
   */
  readonly scratch: boolean;
  /** Roles the globals companion created in this run. */
  readonly createdRoles: readonly string[];
  /** Operator restores: the role that will own what the load creates (loaded by a temporary member of it). */
  readonly owner?: string;
  /** Operator restores: load as the connecting user even when it has superuser-like rights (the backup is trusted). */
  readonly asConnectedUser: boolean;
}

/** How an engine loads an untrusted dump: what it leaves out (reported, never silently), and as whom. */
export interface LoadPlan {
  /** What the load leaves out of the backup, by name, and why. */
  readonly refused: readonly Refusal[];
  /** What a privileged session installed for the load, outside the backup's own SQL (allow-listed extensions). */
  readonly installed: readonly string[];
  /** Who runs the backup's SQL. */
  readonly loadedAs: string;
  /** The connection the load used: validation reads the restored database through it too. */
  readonly connection: Connection;
  stage(options: RestoreStageOptions): StageSpec;
  /** Removes what the plan made for the load (a temporary role, a list file); safe to call twice. */
  release(): Promise<void>;
}

export type GlobalsResult = { readonly sql: string } | { readonly notCapturedReason: string };

export interface EngineSession {
  readonly engine: Engine;
  readonly format: DumpFormat;
  /** Whether the restore tool loads a spooled dump with parallel jobs (pg_restore -j); otherwise it reads stdin. */
  readonly parallelRestore: boolean;
  /** Checks the connection and the client tools, and reads what the dump needs to know. */
  inspect(): Promise<SourceFacts>;
  /** Roles/users and their grants, as SQL; or why they could not be read. */
  captureGlobals(): Promise<GlobalsResult>;
  startDump(options?: DumpOptions): Promise<DumpJob>;
  /** A process that loads a decompressed dump into the connected database: from stdin, or from a spooled file. */
  restoreStage(options: RestoreStageOptions): StageSpec;
  /** What the target database already holds (tables, views, functions…): empty means safe to restore into. Also proves it is reachable. */
  targetObjects(): Promise<string[]>;
  /**
   * Applies a backup's roles/users and grants, skipping every role or user that already exists; grants that
   * need the restored objects are left to `afterLoad`. `sourceDatabase` is the database the backup was taken
   * from, for grants that name it.
   */
  applyGlobals(sql: string, sourceDatabase: string): Promise<GlobalsPlan>;
  /**
   * Engines that can look at a dump before loading it: what the load leaves out, who loads it, and how. Without it,
   * the load runs `restoreStage` on the session's own connection.
   */
  planLoad?(dump: DumpPeek, options: LoadOptions): Promise<LoadPlan>;
  /**
   * Engines whose restore tool has no transaction to roll back (mongorestore): after an operator's load, the restored
   * counts against the manifest's; throws naming every difference.
   */
  checkLoaded?(tables: readonly TableCount[]): Promise<void>;
  close(): Promise<void>;
}

/** Programs a restore of this engine needs on PATH, besides zstd and age. */
export const RESTORE_TOOLS: Record<Engine, readonly string[]> = {
  [Engine.POSTGRES]: ['pg_restore'],
  [Engine.MYSQL]: ['mysql'],
  [Engine.MONGODB]: ['mongorestore'],
};

/** Programs a backup of this engine needs on PATH, besides zstd and age. */
export const DUMP_TOOLS: Record<Engine, readonly string[]> = {
  [Engine.POSTGRES]: ['pg_dump', 'pg_dumpall'],
  [Engine.MYSQL]: ['mysqldump', 'mysql'],
  [Engine.MONGODB]: ['mongodump'],
};

export type SessionFactory = (connection: Connection) => EngineSession;
