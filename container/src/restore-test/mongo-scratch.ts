/**
 * The restored MongoDB database of a restore test: in AWS a database of the scratch server (a MongoDB sidecar of the
 * restore-test task, empty at each start), anywhere else the database --database names on the server given. The
 * restore refuses a database that already holds collections, so what is found here is what the backup put there.
 *
 * Validation reads it through the driver as the user that loaded it: the collections (views hold no documents and
 * the manifest lists none; a timeseries collection's documents are its buckets, as the manifest names them), each
 * one's exact document count (countDocuments, never the metadata estimate), and the user's checks as queries
 * (mongo-checks.ts), on collections only.
 */
import { Collection, Document, ObjectId, Timestamp } from 'mongodb';
import { BSON } from 'mongodb';
import { CheckKind, CheckOutcome, QueryRows, UserCheck, isMongoCheck, judge, minRowsOutcome } from './checks';
import type { ScratchDatabase } from './validate';
import { Connection } from '../shared/connection';
import { MongoSession } from '../engines/mongodb';
import { restoredCollection } from '../engines/mongo-restore';

/** A value read by a check, as text the way the SQL checks compare it (null stays null). */
export function valueText(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (value instanceof Date) return value.toISOString();
  switch ((value as { _bsontype?: string })._bsontype) {
    case 'ObjectId': return (value as ObjectId).toHexString();
    case 'Long': case 'Int32': case 'Double': case 'Decimal128': return String(value);
    case 'Binary': return Buffer.from((value as BSON.Binary).buffer).toString('hex');
    default: return BSON.EJSON.stringify(value as Document, { relaxed: true });
  }
}

/** A value read by a maxAgeSeconds check, as a time where it is one: a date, an ObjectId's creation, a timestamp's second. */
export function timeText(value: unknown): string | null {
  const bsonType = (value as { _bsontype?: string } | null)?._bsontype;
  if (bsonType === 'ObjectId') return (value as ObjectId).getTimestamp().toISOString();
  if (bsonType === 'Timestamp') return new Date((value as Timestamp).t * 1000).toISOString();
  return valueText(value);
}

/** The value at a dotted path of a document; through an array, the values of its elements. */
export function pathValue(doc: unknown, path: string): unknown {
  let value: unknown = doc;
  for (const segment of path.split('.')) {
    if (Array.isArray(value)) {
      value = /^\d+$/.test(segment) ? value[Number(segment)] : value.map((item) => pathValue(item, segment)).filter((v) => v !== undefined);
    } else if (value !== null && typeof value === 'object' && !(value instanceof Date) && (value as { _bsontype?: string })._bsontype === undefined) {
      value = (value as Record<string, unknown>)[segment];
    } else {
      return undefined;
    }
  }
  return value;
}

export class MongoScratch implements ScratchDatabase {
  private readonly session: MongoSession;
  private listed?: Map<string, string>;

  constructor(connection: Connection) {
    this.session = new MongoSession(connection);
  }

  /** The restored database's collections and views, by name and type, read once. */
  private async types(): Promise<Map<string, string>> {
    this.listed ??= new Map((await this.session.collections()).map((c) => [c.name, c.type]));
    return this.listed;
  }

  async tables(): Promise<string[]> {
    const names = new Set<string>();
    for (const [name, type] of await this.types()) {
      if (type === 'timeseries') names.add(`system.buckets.${name}`);
      else if (type === 'collection' && restoredCollection(name)) names.add(name);
    }
    return [...names].sort();
  }

  async countRows(table: string): Promise<number> {
    return (await this.session.db()).collection(table).countDocuments({});
  }

  /** The collection a check reads: one that exists in the restored database, and not a view. */
  private async collection(name: string): Promise<Collection> {
    const types = await this.types();
    const type = types.get(name);
    if (type === undefined) {
      const held = [...types.keys()].filter(restoredCollection).sort();
      throw new Error(`collection ${name} does not exist in the restored database (it holds ${held.length ? held.slice(0, 10).join(', ') + (held.length > 10 ? ', …' : '') : 'no collections'})`);
    }
    if (type !== 'collection' && type !== 'timeseries') {
      throw new Error(`${name} is a ${type} in the restored database: a check reads collections only (a view's pipeline comes from the backup)`);
    }
    return (await this.session.db()).collection(name);
  }

  async check(check: UserCheck, backupStartedAt: Date): Promise<CheckOutcome> {
    if (!isMongoCheck(check)) throw new Error('an SQL check cannot run in a MongoDB database: give it a "collection", a "filter" and an expectation');
    const { filter, field, sort } = check.mongo;
    const collection = await this.collection(check.mongo.collection);
    // 64-bit integers as bigint, so that a value past 2^53 compares exactly.
    const read = async (order: Document): Promise<QueryRows> => {
      const doc = await collection.find(filter, { sort: order, limit: 1, projection: { [field!]: 1 }, useBigInt64: true }).next();
      if (!doc) return [];
      const value = pathValue(doc, field!);
      return [[check.kind === CheckKind.MAX_AGE_SECONDS ? timeText(value) : valueText(value)]];
    };
    switch (check.kind) {
      case CheckKind.MIN_ROWS:
        return minRowsOutcome(check, await collection.countDocuments(filter), 'documents');
      case CheckKind.EQUALS:
        return judge(check, field === undefined ? [[String(await collection.countDocuments(filter))]] : await read(sort ?? { _id: 1 }), backupStartedAt);
      case CheckKind.MAX_AGE_SECONDS:
        return judge(check, await read({ [field!]: -1 }), backupStartedAt);
    }
  }

  async close(): Promise<void> {
    await this.session.close();
  }
}
