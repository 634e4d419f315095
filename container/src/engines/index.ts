import { Engine, TableCount } from '../../../lib/contract';
import { Connection } from '../shared/connection';
import { UsageError } from '../shared/errors';
import { EngineSession } from './engine';
import { MongoSession } from './mongodb';
import { MysqlSession } from './mysql';
import { PostgresSession } from './postgres';

export * from './engine';

/** `--engine` as typed by a person: postgres|postgresql, mysql|mariadb, mongodb|mongo. */
export function parseEngine(text: string): Engine {
  const engine = ({
    postgres: Engine.POSTGRES, postgresql: Engine.POSTGRES, mysql: Engine.MYSQL, mariadb: Engine.MYSQL, mongodb: Engine.MONGODB, mongo: Engine.MONGODB,
  } as Record<string, Engine | undefined>)[text.toLowerCase()];
  if (!engine) throw new UsageError(`--engine must be postgres, mysql or mongodb (mariadb is accepted for mysql, mongo for mongodb); got '${text}'`);
  return engine;
}

export interface SessionOptions {
  /** Restores: the database the backup was taken from (the manifest's), where the engine's dump names it. */
  readonly sourceDatabase?: string;
  /** Restores: the manifest's counts, for engines that check the dump against them before loading it. */
  readonly tables?: readonly TableCount[];
}

export function openSession(engine: Engine, connection: Connection, options: SessionOptions = {}): EngineSession {
  switch (engine) {
    case Engine.POSTGRES: return new PostgresSession(connection);
    case Engine.MYSQL: return new MysqlSession(connection);
    case Engine.MONGODB: return new MongoSession(connection, options);
  }
}
