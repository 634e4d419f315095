import { Engine } from '../../../lib/contract';
import { Connection } from '../shared/connection';
import { UsageError } from '../shared/errors';
import { EngineSession } from './engine';
import { MysqlSession } from './mysql';
import { PostgresSession } from './postgres';

export * from './engine';

/** `--engine` as typed by a person: postgres|postgresql, mysql|mariadb. */
export function parseEngine(text: string): Engine {
  const engine = { postgres: Engine.POSTGRES, postgresql: Engine.POSTGRES, mysql: Engine.MYSQL, mariadb: Engine.MYSQL }[text.toLowerCase()];
  if (!engine) throw new UsageError(`--engine must be postgres or mysql (mariadb is accepted for mysql); got '${text}'`);
  return engine;
}

export function openSession(engine: Engine, connection: Connection): EngineSession {
  return engine === Engine.POSTGRES ? new PostgresSession(connection) : new MysqlSession(connection);
}
