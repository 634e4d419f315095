/**
 * Where the database connection comes from: command-line options, then a Secrets Manager secret in
 * the RDS JSON shape, then the engine's standard environment. The password never comes from argv.
 */
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { Engine } from '../../../lib/contract';
import { ParsedArgs, OptionKind, OptionSpecs } from './args';
import { AgentError, UsageError, redactor } from './errors';

export interface Connection {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password?: string;
  readonly database: string;
  /** MongoDB sources: how the user authenticates, and TLS. */
  readonly mongo?: MongoConnectionOptions;
}

/**
 * How a MongoDB client authenticates and encrypts. MongoDB's own users live in `admin` and log in with SCRAM (the
 * default: the driver and the tools negotiate it); LDAP users and FerretDB log in with PLAIN against `$external`;
 * Amazon DocumentDB requires TLS with its CA bundle.
 */
export interface MongoConnectionOptions {
  readonly authSource: string;
  /** undefined: negotiated (SCRAM-SHA-256 or SCRAM-SHA-1). */
  readonly authMechanism?: string;
  readonly tls: boolean;
  readonly tlsCaFile?: string;
}

/** The mechanisms a password login may name (MONGODB-X509 and AWS carry no password: not offered). */
const MONGO_AUTH_MECHANISMS = ['SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN'];

/** MongoDB sources' options beyond the common ones; every command that connects to a MongoDB source takes them. */
export const MONGODB_CONNECTION_OPTIONS: OptionSpecs = {
  'auth-source': { kind: OptionKind.STRING, placeholder: 'DB', description: 'MongoDB: the database the user is defined in (default: secret authSource, MONGODB_AUTH_SOURCE, admin; LDAP and FerretDB: $external)' },
  'auth-mechanism': { kind: OptionKind.STRING, placeholder: 'NAME', description: `MongoDB: ${MONGO_AUTH_MECHANISMS.join(', ')} (default: secret authMechanism, MONGODB_AUTH_MECHANISM, negotiated SCRAM)` },
  'tls': { kind: OptionKind.FLAG, description: 'MongoDB: connect with TLS (default: secret "tls"/"ssl", MONGODB_TLS=true; Amazon DocumentDB requires it)' },
  'tls-ca-file': { kind: OptionKind.STRING, placeholder: 'FILE', description: 'MongoDB: PEM bundle of the CAs the server certificate chains to (Amazon DocumentDB: global-bundle.pem); implies --tls' },
};

export const CONNECTION_OPTIONS: OptionSpecs = {
  'host': { kind: OptionKind.STRING, placeholder: 'HOST', description: 'database host (default: secret, PGHOST / MYSQL_HOST, localhost)' },
  'port': { kind: OptionKind.STRING, placeholder: 'PORT', description: 'database port (default: secret, PGPORT / MYSQL_TCP_PORT, engine default)' },
  'user': { kind: OptionKind.STRING, placeholder: 'USER', description: 'database user (default: secret, PGUSER / MYSQL_USER)' },
  'database': { kind: OptionKind.STRING, placeholder: 'NAME', description: 'database to dump (default: secret dbname, PGDATABASE / MYSQL_DATABASE)' },
  'secret-id': { kind: OptionKind.STRING, placeholder: 'ARN|NAME', description: 'Secrets Manager secret in the RDS JSON shape {host,port,username,password,dbname}' },
};

/** The RDS secret shape; every field optional because users hand-write these too. */
interface RdsSecret {
  readonly host?: string;
  readonly port?: number | string;
  readonly username?: string;
  readonly password?: string;
  readonly dbname?: string;
  /** MongoDB sources (DocumentDB's secrets carry "ssl"). */
  readonly authSource?: string;
  readonly authMechanism?: string;
  readonly tls?: boolean | string;
  readonly ssl?: boolean | string;
  readonly tlsCAFile?: string;
}

export async function readRdsSecret(secretId: string, client = new SecretsManagerClient({})): Promise<RdsSecret> {
  let text: string | undefined;
  try {
    text = (await client.send(new GetSecretValueCommand({ SecretId: secretId }))).SecretString;
  } catch (err) {
    const e = err as Error;
    throw new AgentError(`could not read secret '${secretId}': ${e.name}: ${e.message}; check the secret id and that the task role may call secretsmanager:GetSecretValue on it`);
  }
  let secret: RdsSecret;
  try {
    secret = JSON.parse(text ?? '') as RdsSecret;
  } catch {
    throw new AgentError(`secret '${secretId}' is not JSON: store it in the RDS shape {"host","port","username","password","dbname"}`);
  }
  redactor.add(secret.password);
  return secret;
}

const DEFAULT_PORTS: Record<Engine, number> = { [Engine.POSTGRES]: 5432, [Engine.MYSQL]: 3306, [Engine.MONGODB]: 27017 };

/** Each engine's environment variables: its clients' own where they have them (MongoDB's tools have none: ours). */
const ENVIRONMENT: Record<Engine, { host: string; port: string; user: string; password: string; database: string }> = {
  [Engine.POSTGRES]: { host: 'PGHOST', port: 'PGPORT', user: 'PGUSER', password: 'PGPASSWORD', database: 'PGDATABASE' },
  [Engine.MYSQL]: { host: 'MYSQL_HOST', port: 'MYSQL_TCP_PORT', user: 'MYSQL_USER', password: 'MYSQL_PWD', database: 'MYSQL_DATABASE' },
  [Engine.MONGODB]: { host: 'MONGODB_HOST', port: 'MONGODB_PORT', user: 'MONGODB_USER', password: 'MONGODB_PASSWORD', database: 'MONGODB_DATABASE' },
};

function environmentFor(engine: Engine, env: NodeJS.ProcessEnv) {
  const names = ENVIRONMENT[engine];
  return { host: env[names.host], port: env[names.port], user: env[names.user], password: env[names.password], database: env[names.database] };
}

/** Resolves the connection: options first, then the secret, then the environment. */
export async function resolveConnection(engine: Engine, args: ParsedArgs, env: NodeJS.ProcessEnv = process.env,
  secretsClient?: SecretsManagerClient): Promise<Connection> {
  const secretId = args.string('secret-id');
  const secret: RdsSecret = secretId ? await readRdsSecret(secretId, secretsClient) : {};
  const fromEnv = environmentFor(engine, env);
  const password = secret.password ?? fromEnv.password;
  redactor.add(password);
  const portText = args.string('port') ?? (secret.port !== undefined ? String(secret.port) : undefined) ?? fromEnv.port;
  const port = portText === undefined ? DEFAULT_PORTS[engine] : Number(portText);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new UsageError(`--port must be a TCP port number (got '${portText}')`);
  const user = args.string('user') ?? secret.username ?? fromEnv.user;
  const database = args.string('database') ?? secret.dbname ?? fromEnv.database;
  const variables = `${ENVIRONMENT[engine].user} / ${ENVIRONMENT[engine].database}`;
  if (!user) throw new UsageError(`no database user: give --user, a --secret-id with "username", or ${variables}`);
  if (!database) throw new UsageError(`no database: give --database, a --secret-id with "dbname", or ${variables}`);
  const host = args.string('host') ?? secret.host ?? fromEnv.host ?? 'localhost';
  if (engine !== Engine.MONGODB) return { host, port, user, password, database };
  const mongo = mongoOptions(args, secret, env);
  mongoHostProblem(host);
  if (mongo.authMechanism === 'PLAIN' && !mongo.tls && !LOOPBACK.test(host)) {
    throw new UsageError(`--auth-mechanism PLAIN sends the password as it is: add --tls (or "tls": true in the secret, MONGODB_TLS=true) to reach ${host}`);
  }
  return { host, port, user, password, database, mongo };
}

/** Hosts whose connections never leave the machine. */
const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|::1|\[::1\])$/;

/**
 * A MongoDB host must be a host name: a connection string there (Atlas's `mongodb+srv://user:pw@…`) would put its
 * password in the tools' argv and their error text. Only what follows its last '@' is shown.
 */
function mongoHostProblem(host: string): void {
  if (!/^mongodb(\+srv)?:|[/?@,\s]/i.test(host)) return;
  throw new UsageError(`the MongoDB host '${host.slice(host.lastIndexOf('@') + 1)}' is a connection string, not a host name: give the host alone ` +
    '(--host, the secret\'s "host" or MONGODB_HOST) and keep the user and password in the secret\'s "username" and "password"');
}

function truthy(value: boolean | string | undefined): boolean {
  return value === true || (typeof value === 'string' && /^(1|true|yes|on)$/i.test(value.trim()));
}

function mongoOptions(args: ParsedArgs, secret: RdsSecret, env: NodeJS.ProcessEnv): MongoConnectionOptions {
  const authSource = args.string('auth-source') ?? secret.authSource ?? env.MONGODB_AUTH_SOURCE ?? 'admin';
  if (authSource === '') throw new UsageError('--auth-source must name a database (admin for MongoDB\'s own users, $external for LDAP or FerretDB)');
  const mechanismText = args.string('auth-mechanism') ?? secret.authMechanism ?? env.MONGODB_AUTH_MECHANISM;
  const authMechanism = mechanismText === undefined || mechanismText === '' ? undefined : mechanismText.toUpperCase();
  if (authMechanism !== undefined && !MONGO_AUTH_MECHANISMS.includes(authMechanism)) {
    throw new UsageError(`--auth-mechanism must be one of ${MONGO_AUTH_MECHANISMS.join(', ')} (got '${mechanismText}'); leave it out to negotiate SCRAM`);
  }
  const tlsCaFile = args.string('tls-ca-file') ?? secret.tlsCAFile ?? env.MONGODB_TLS_CA_FILE;
  const tls = args.flag('tls') || truthy(secret.tls) || truthy(secret.ssl) || truthy(env.MONGODB_TLS) || (tlsCaFile !== undefined && tlsCaFile !== '');
  return { authSource, ...(authMechanism ? { authMechanism } : {}), tls, ...(tlsCaFile ? { tlsCaFile } : {}) };
}

export function describeConnection(c: Connection): string {
  return `${c.user}@${c.host}:${c.port}/${c.database}`;
}
