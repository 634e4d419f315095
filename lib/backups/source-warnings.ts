/**
 * What synth says of a source whose engine Restorable's tests have not proven end to end: warnings that the standard
 * CDK acknowledgement silences once the user has tried that source's backups and restore tests.
 */
import { Annotations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct } from 'constructs';
import { DatabaseFlavour, MONGODB_TOOLS, SourceEngine } from './backup-source';
import { MongoDbConnection, warnDocumentDbCa, warnMongoVersion } from './mongodb-connection';

/** The warning id a user acknowledges once a MySQL source's backups and restores have been tried. */
export const MYSQL_UNTESTED_WARNING = '@restorable/database-backups:mysql-untested';
/** The warning id a user acknowledges once a MongoDB source's backups and restore tests have been tried against its server. */
export const MONGODB_UNTESTED_WARNING = '@restorable/database-backups:mongodb-untested';

/** What the engine warnings read of a source. */
export interface WarnedSource {
  readonly name: string;
  readonly engine: SourceEngine;
  readonly endpoint?: { readonly hostname: string };
  readonly mongodb?: MongoDbConnection;
  readonly peer?: ec2.IConnectable;
}

/** The engine's warnings for one source, if any. */
export function warnEngine(scope: Construct, source: WarnedSource): void {
  const { name, engine } = source;
  if (engine.flavour === DatabaseFlavour.MYSQL) warnMysqlUntested(scope, name, engine.version);
  if (engine.flavour === DatabaseFlavour.MONGODB) {
    warnMongoUntested(scope, name, engine.version);
    warnMongoVersion(scope, name, engine);
    warnDocumentDbCa(scope, name, { hostname: source.endpoint?.hostname, peer: source.peer, options: source.mongodb });
  }
}

/** MySQL is dumped by the MariaDB client, and neither its backups nor its restore tests have run against a MySQL server. */
function warnMysqlUntested(scope: Construct, name: string, version: string): void {
  Annotations.of(scope).addWarningV2(MYSQL_UNTESTED_WARNING,
    `Source '${name}' is MySQL ${version}, which is untested: the agent image holds only MariaDB's client (mysqldump from ` +
    `MariaDB 10.11), and only MariaDB servers run in Restorable's tests, so neither a MySQL ${version} backup nor its ` +
    `restore test into a mysql:${version} scratch server has been proven. Run a backup and a restore test of this source ` +
    'before relying on it; once they pass, acknowledge this warning.');
}

/**
 * MongoDB's backups and restores run in Restorable's tests with the real mongodump and mongorestore, against FerretDB
 * (a MongoDB-wire server on PostgreSQL), not a MongoDB server: what FerretDB lacks (Decimal128, TTL and 2dsphere
 * indexes, users' and roles' listing) and the restore test's mongo scratch server have not run.
 */
function warnMongoUntested(scope: Construct, name: string, version: string): void {
  Annotations.of(scope).addWarningV2(MONGODB_UNTESTED_WARNING,
    `Source '${name}' is MongoDB ${version}, which is untested against a MongoDB server: Restorable's tests run the agent image's ` +
    `mongodump and mongorestore ${MONGODB_TOOLS.version} against FerretDB (a MongoDB-wire server), which lacks Decimal128, TTL and ` +
    `2dsphere indexes and the listing of users and roles, and no restore test has loaded a backup into a mongo:${version} scratch ` +
    'server. Run a backup and a restore test of this source (for Amazon DocumentDB or Atlas, against that service) before ' +
    'relying on it; once they pass, acknowledge this warning.');
}
