/**
 * What the agent needs from a database engine. One module per engine implements it, with the dump
 * side (used by `backup`) and the restore side (used by `restore` and `restore-test`).
 */
import { DumpFormat, Engine, TableCount } from '../../../lib/contract';
import { Connection } from '../connection';
import { StageSpec } from '../pipeline';

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
}

export type GlobalsResult = { readonly sql: string } | { readonly notCapturedReason: string };

export interface EngineSession {
  readonly engine: Engine;
  readonly format: DumpFormat;
  /** Checks the connection and the client tools, and reads what the dump needs to know. */
  inspect(): Promise<SourceFacts>;
  /** Roles/users and their grants, as SQL; or why they could not be read. */
  captureGlobals(): Promise<GlobalsResult>;
  startDump(): Promise<DumpJob>;
  /** A process that reads a decompressed dump on stdin and loads it into the connected database. */
  restoreStage(options: { readonly clean: boolean }): StageSpec;
  close(): Promise<void>;
}

/** Programs a backup of this engine needs on PATH, besides zstd and age. */
export const DUMP_TOOLS: Record<Engine, readonly string[]> = {
  [Engine.POSTGRES]: ['pg_dump', 'pg_dumpall'],
  [Engine.MYSQL]: ['mysqldump', 'mysql'],
};

export type SessionFactory = (connection: Connection) => EngineSession;
