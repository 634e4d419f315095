/**
 * How the agent logs in to a MongoDB source and encrypts the connection: the options a MongoDB source may give beyond
 * the secret, their checks, the agent's flags for them, and the warnings synth gives for MongoDB sources.
 */
import { Annotations, Token } from 'aws-cdk-lib';
import * as docdb from 'aws-cdk-lib/aws-docdb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct } from 'constructs';
import { DatabaseFlavour, MONGODB_TOOLS, SourceEngine, newerThanMongoTools } from './backup-source';

/** How a MongoDB user proves its password. Mechanisms without a password (X.509, AWS IAM, Kerberos) are not offered. */
export enum MongoAuthMechanism {
  /** MongoDB's own users, from MongoDB 4.0 on. */
  SCRAM_SHA_256 = 'SCRAM-SHA-256',
  /** MongoDB's own users on older servers, and Amazon DocumentDB's. */
  SCRAM_SHA_1 = 'SCRAM-SHA-1',
  /**
   * LDAP users (authSource `$external`). The password crosses the connection as it is: synth refuses it with
   * `tls: false`, and the agent refuses it without TLS (from these options or the secret) to any host but loopback.
   */
  PLAIN = 'PLAIN',
}

/**
 * A MongoDB source's login and TLS, where the secret does not say them. The agent reads `authSource`,
 * `authMechanism`, `tls` (or `ssl`, as Amazon DocumentDB's secrets have it) and `tlsCAFile` from the secret too;
 * what is given here is passed as the agent's flags and wins over the secret.
 */
export interface MongoDbConnection {
  /**
   * The database the user is defined in: `admin` for MongoDB's own users and Amazon DocumentDB, `$external` for LDAP
   * users.
   * @default - the secret's `authSource`, else `admin`
   */
  readonly authSource?: string;
  /**
   * How the user proves its password.
   * @default - the secret's `authMechanism`, else negotiated with the server (SCRAM-SHA-256 or SCRAM-SHA-1)
   */
  readonly authMechanism?: MongoAuthMechanism;
  /**
   * Connect with TLS, checking the server's certificate against the agent image's CA certificates, or `tlsCaFile`.
   * Amazon DocumentDB requires it by default, and MongoDB Atlas always.
   * @default - TLS when the secret says `"tls": true` or `"ssl": true`, else a plain connection
   */
  readonly tls?: boolean;
  /**
   * A PEM file of the CAs the server's certificate chains to, as a path inside the agent's container; implies `tls`.
   * Amazon DocumentDB's certificates chain to the Amazon RDS CAs, which are not among the image's CA certificates:
   * give DatabaseBackups an `image` built on the agent image with the RDS global bundle (global-bundle.pem) added,
   * and its path here.
   * @default - the secret's `tlsCAFile`, else the image's CA certificates
   */
  readonly tlsCaFile?: string;
}

/** The warning id a user acknowledges for a MongoDB source newer than the agent image's Database Tools support. */
export const MONGODB_VERSION_WARNING = '@restorable/database-backups:mongodb-version';

/** What is wrong with a source's `mongodb` options or, for a MongoDB source, its endpoint; or undefined. */
export function mongoConnectionProblem(name: string, engine: SourceEngine, options: MongoDbConnection | undefined,
  endpoint?: { readonly hostname: string }): string | undefined {
  const host = endpoint?.hostname;
  if (engine.flavour === DatabaseFlavour.MONGODB && host !== undefined && !Token.isUnresolved(host) && /^mongodb(\+srv)?:\/\/|[/?@]/.test(host)) {
    return `source '${name}': endpoint.hostname '${host.replace(/^((?:mongodb(?:\+srv)?:\/\/)?).*@/, '$1…@')}' is a connection string, not a host name: give one member's ` +
      'host name and port (for MongoDB Atlas, a host of the cluster, with mongodb.tls: true; mongodb+srv:// names are not resolved), ' +
      'and keep the user and password in the secret';
  }
  if (options === undefined) return undefined;
  if (engine.flavour !== DatabaseFlavour.MONGODB) {
    return `source '${name}' is ${engine} but has mongodb connection options: they are for MongoDB sources (SourceEngine.mongodb) only; remove them`;
  }
  if (options.authSource !== undefined && !/^[^/\\. "$\0]+$|^\$external$/.test(options.authSource)) {
    return `source '${name}': mongodb.authSource '${options.authSource}' is not a database name: give 'admin' for MongoDB's own users and ` +
      "Amazon DocumentDB, or '$external' for LDAP users";
  }
  if (options.authMechanism !== undefined && !Object.values(MongoAuthMechanism).includes(options.authMechanism)) {
    return `source '${name}': mongodb.authMechanism '${String(options.authMechanism)}' is not one of ${Object.values(MongoAuthMechanism).join(', ')}`;
  }
  if (options.authMechanism === MongoAuthMechanism.PLAIN && options.tls === false) {
    return `source '${name}': mongodb.authMechanism PLAIN sends the password as it is, and tls is false: set tls: true (the agent refuses PLAIN ` +
      'without TLS to any host but loopback)';
  }
  if (options.tls === false && options.tlsCaFile !== undefined) {
    return `source '${name}': mongodb.tlsCaFile is given with tls: false; a CA file is for TLS connections: drop one of them`;
  }
  if (options.tlsCaFile !== undefined && !options.tlsCaFile.startsWith('/')) {
    return `source '${name}': mongodb.tlsCaFile '${options.tlsCaFile}' must be an absolute path inside the agent's container, ` +
      "for example '/etc/ssl/certs/rds-global-bundle.pem'";
  }
  return undefined;
}

/** The agent's flags for a MongoDB source's login and TLS: only what the source gives, the rest comes from its secret. */
export function mongoArguments(options: MongoDbConnection | undefined): string[] {
  if (!options) return [];
  return [
    ...(options.authSource !== undefined ? ['--auth-source', options.authSource] : []),
    ...(options.authMechanism !== undefined ? ['--auth-mechanism', options.authMechanism] : []),
    ...(options.tls || options.tlsCaFile !== undefined ? ['--tls'] : []),
    ...(options.tlsCaFile !== undefined ? ['--tls-ca-file', options.tlsCaFile] : []),
  ];
}

/** The warning id a user acknowledges once an Amazon DocumentDB source's TLS CA bundle is in the agent's image. */
export const DOCUMENTDB_CA_WARNING = '@restorable/database-backups:documentdb-ca';

/** An Amazon DocumentDB cluster or instance endpoint. */
const DOCUMENTDB_HOST = /\.docdb(-elastic)?\.amazonaws\.com(\.cn)?$/;

/**
 * An Amazon DocumentDB endpoint without `tlsCaFile` (nor `tls: false`) warns: DocumentDB requires TLS by default, its
 * certificates chain to the Amazon RDS CAs, and the agent image holds no RDS CA bundle, so the backups would fail to
 * connect unless the secret names a CA file that the image given to DatabaseBackups holds.
 */
export function warnDocumentDbCa(scope: Construct, name: string, source: { hostname?: string; peer?: ec2.IConnectable; options?: MongoDbConnection }): void {
  const { hostname, peer, options } = source;
  const byHost = hostname !== undefined && !Token.isUnresolved(hostname) && DOCUMENTDB_HOST.test(hostname);
  const byPeer = peer instanceof docdb.DatabaseCluster || peer instanceof docdb.DatabaseInstance;
  if (!(byHost || byPeer) || options?.tlsCaFile !== undefined || options?.tls === false) return;
  Annotations.of(scope).addWarningV2(DOCUMENTDB_CA_WARNING,
    `Source '${name}' is on Amazon DocumentDB${byHost ? ` (${hostname})` : ''}, which requires TLS with certificates from the Amazon RDS CAs, and the ` +
    "agent image holds no RDS CA bundle: give DatabaseBackups an image built on the agent's with the RDS global bundle " +
    "(global-bundle.pem) added, and its path as mongodb.tlsCaFile; or, if the secret's tlsCAFile names that file in your image, " +
    'acknowledge this warning.');
}

/** A MongoDB source newer than the agent image's Database Tools claim to support warns until acknowledged. */
export function warnMongoVersion(scope: Construct, name: string, engine: SourceEngine): void {
  if (engine.flavour !== DatabaseFlavour.MONGODB || !newerThanMongoTools(engine.version)) return;
  Annotations.of(scope).addWarningV2(MONGODB_VERSION_WARNING,
    `Source '${name}' is MongoDB ${engine.version}, newer than the agent image's MongoDB Database Tools ${MONGODB_TOOLS.version} support ` +
    `(MongoDB ${MONGODB_TOOLS.oldest} to ${MONGODB_TOOLS.newest}): mongodump and mongorestore may refuse or misread what that server has ` +
    'that older servers had not. Run a backup and a restore test of this source before relying on it; once they pass, acknowledge this warning.');
}
