/**
 * MongoDB databases on the services' FerretDB (scripts/services.sh: a MongoDB-wire server on PostgreSQL), with a
 * realistic fixture within what FerretDB v1.24 supports, and MongoDB's own tools (mongodump, mongorestore 100.10.0)
 * built by scripts/mongo-tools.sh. What FerretDB lacks (Decimal128, TTL and 2dsphere indexes, nested arrays, users,
 * --preserveUUID) is not exercised here: the README lists it as not verified.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BSON, Binary, Document, Double, Int32, Long, MongoClient, ObjectId } from 'mongodb';
import { MOTO_TOOLS } from './moto';
import { prependPath } from './wrappers';

/** The services' FerretDB. Its clients log in with PLAIN: FerretDB connects to PostgreSQL as that login. */
export const MONGO = {
  host: '127.0.0.1', port: Number(process.env.RESTORABLE_MONGO_PORT ?? 27017), user: 'restorable', password: 'restorable',
  authMechanism: 'PLAIN', authSource: '$external',
} as const;

/** Where scripts/mongo-tools.sh puts FerretDB, mongodump and mongorestore. */
export const MONGO_TOOLS_DIR = join(MOTO_TOOLS, 'mongo');

/** PATH with mongodump and mongorestore first; throws, saying how to build them, when they are missing. */
export function mongoToolsPath(path = process.env.PATH ?? ''): string {
  for (const tool of ['mongodump', 'mongorestore']) {
    if (!existsSync(join(MONGO_TOOLS_DIR, tool))) {
      throw new Error(`${join(MONGO_TOOLS_DIR, tool)} is missing: run 'bash scripts/mongo-tools.sh' (or 'bash scripts/install-deps.sh')`);
    }
  }
  return prependPath(MONGO_TOOLS_DIR, path);
}

/** The tools' and the agent's connection options for the services' FerretDB (the password goes elsewhere). */
export function mongoToolArgs(database?: string): string[] {
  return ['--host', MONGO.host, '--port', String(MONGO.port), '--username', MONGO.user, `--authenticationMechanism=${MONGO.authMechanism}`,
    `--authenticationDatabase=${MONGO.authSource}`, ...(database ? ['--db', database] : [])];
}

/** A connected client; close it when done. */
export async function mongoClient(): Promise<MongoClient> {
  const client = new MongoClient(`mongodb://${MONGO.host}:${MONGO.port}/?authMechanism=${MONGO.authMechanism}&authSource=${encodeURIComponent(MONGO.authSource)}`,
    { auth: { username: MONGO.user, password: MONGO.password }, serverSelectionTimeoutMS: 5000 });
  try {
    await client.connect();
  } catch (err) {
    throw new Error(`cannot reach FerretDB at ${MONGO.host}:${MONGO.port} (run 'npm run services'): ${(err as Error).message}`);
  }
  return client;
}

/** Runs `fn` with a connected client, closed afterwards. */
export async function withMongo<T>(fn: (client: MongoClient) => Promise<T>): Promise<T> {
  const client = await mongoClient();
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

export async function dropMongoDatabase(database: string): Promise<void> {
  await withMongo((c) => c.db(database).dropDatabase());
}

/** Collections of the fixture and their document counts for `customers` customers. */
export function mongoFixtureCounts(customers: number): Record<string, number> {
  return { customers, orders: customers * 3, events: customers * 2, empty_things: 0 };
}

/**
 * A realistic fixture: nested documents, binary data, dates, doubles, 32- and 64-bit integers (past 2^53), strings of
 * quotes, backslashes, newlines and non-ASCII, arrays of scalars and of documents, ObjectIds and a unique and a
 * compound index; an empty collection.
 */
export async function createMongoFixture(database: string, customers: number): Promise<void> {
  await withMongo(async (client) => {
    const db = client.db(database);
    await db.dropDatabase();
    const names = ['O\'Brien', 'back\\slash "dq"', 'Zoë\nnewline', 'tricky),(', '$dollar.dot'];
    const batch = async (collection: string, count: number, make: (i: number) => Document) => {
      for (let start = 0; start < count; start += 1000) {
        const docs = Array.from({ length: Math.min(1000, count - start) }, (_, k) => make(start + k));
        await db.collection(collection).insertMany(docs, { ordered: true });
      }
    };
    await batch('customers', customers, (i) => ({
      _id: i + 1,
      name: `${names[i % names.length]} ${i}`,
      email: `customer${i}@example.com`,
      address: { street: `${i} Main St`, city: i % 2 ? 'Lisboa' : 'Zürich', geo: { lat: new Double(38.7 + i / 1e4), lon: new Double(-9.1) } },
      tags: i % 3 ? ['vip', `t${i % 7}`] : [],
      since: new Date(Date.UTC(2020, 0, 1) + i * 86_400_000),
      balance: new Double(i * 1.25),
      visits: new Int32(i % 1000),
      lifetimeCents: Long.fromString(`${9_007_199_254_740_993n + BigInt(i)}`),
      ...(i % 5 === 0 ? { photo: new Binary(Buffer.from(Array.from({ length: 64 }, (_, b) => (b * 31 + i) % 256))) } : {}),
      ...(i % 7 === 0 ? { note: null } : {}),
    }));
    await batch('orders', customers * 3, (i) => ({
      _id: new ObjectId(i.toString(16).padStart(24, '0')),
      customerId: 1 + (i % customers),
      placedAt: new Date(Date.UTC(2024, 5, 1) + i * 60_000),
      lines: [{ sku: `SKU-${i % 50}`, qty: new Int32(1 + (i % 4)), price: new Double(9.99 + (i % 10)) }],
      total: new Double(Math.round(i * 7.3) / 100),
    }));
    await batch('events', customers * 2, (i) => ({ _id: new ObjectId((0x1000000 + i).toString(16).padStart(24, 'f')), kind: i % 2 ? 'view' : 'click', seq: Long.fromNumber(i), payload: { page: `/p/${i % 20}`, ms: new Int32(i % 500) } }));
    await db.createCollection('empty_things');
    await db.collection('customers').createIndex({ email: 1 }, { unique: true, name: 'email_unique' });
    await db.collection('orders').createIndex({ customerId: 1, placedAt: -1 }, { name: 'customer_placed' });
  });
}

/** Every collection's documents as canonical Extended JSON (types kept), in _id order: compared document by document. */
export async function mongoDocuments(database: string): Promise<Record<string, string[]>> {
  return withMongo(async (client) => {
    const db = client.db(database);
    const out: Record<string, string[]> = {};
    for (const { name } of await db.listCollections({}, { nameOnly: true }).toArray()) {
      const docs = await db.collection(name).find({}, { sort: { _id: 1 } }).toArray();
      out[name] = docs.map((d) => BSON.EJSON.stringify(d, { relaxed: false }));
    }
    return out;
  });
}

/** Every collection's indexes: name, key and uniqueness, sorted. */
export async function mongoIndexes(database: string): Promise<Record<string, string[]>> {
  return withMongo(async (client) => {
    const db = client.db(database);
    const out: Record<string, string[]> = {};
    for (const { name } of await db.listCollections({}, { nameOnly: true }).toArray()) {
      const indexes = await db.collection(name).indexes();
      out[name] = indexes.map((i) => `${i.name} ${JSON.stringify(i.key)}${i.unique ? ' unique' : ''}`).sort();
    }
    return out;
  });
}
