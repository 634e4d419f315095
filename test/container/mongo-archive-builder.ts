/**
 * mongodump archives written by hand (the format of mongo-tools' common/archive), for the counter's units and for
 * planted backups: what an attacker holding a dump task's credentials could store. The EOF headers carry the
 * CRC-64-ECMA that mongorestore checks.
 */
import { BSON, Document } from 'mongodb';

export interface PlantedNamespace {
  readonly db: string;
  readonly collection: string;
  /** 'collection' unless said; a view's namespace has no documents. */
  readonly type?: string;
  /** The metadata's options, which decide what mongorestore creates; by default those of `type` as mongodump writes them. */
  readonly options?: Document;
  /** The prelude's type, when a forged archive makes it differ from what the metadata says. */
  readonly preludeType?: string;
  readonly docs: readonly Document[];
}

/** CRC-64-ECMA as Go's hash/crc64 computes it (reflected). */
const CRC_TABLE = Array.from({ length: 256 }, (_, i) => {
  let crc = BigInt(i);
  for (let k = 0; k < 8; k++) crc = crc & 1n ? (crc >> 1n) ^ 0xc96c5795d7870f42n : crc >> 1n;
  return crc;
});

function crc64(bytes: Buffer): bigint {
  const mask = 0xffffffffffffffffn;
  let crc = mask;
  for (const b of bytes) crc = CRC_TABLE[Number((crc ^ BigInt(b)) & 0xffn)] ^ (crc >> 8n);
  return crc ^ mask;
}

export const TERMINATOR = Buffer.from([0xff, 0xff, 0xff, 0xff]);

const doc = (d: Document) => Buffer.from(BSON.serialize(d));

/** An archive as mongodump writes one: each namespace's documents in one block, then its EOF header. */
export function plantedArchive(namespaces: readonly PlantedNamespace[]): Buffer {
  const magic = Buffer.alloc(4);
  magic.writeUInt32LE(0x8199e26d);
  const defaultOptions = (type: string): Document => (type === 'view' ? { viewOn: 'source', pipeline: [] }
    : type === 'timeseries' ? { timeseries: { timeField: 't' } } : {});
  const metadata = (ns: PlantedNamespace, type: string) => JSON.stringify({
    options: ns.options ?? defaultOptions(type),
    indexes: type === 'view' ? [] : [{ v: { $numberInt: '2' }, key: { _id: { $numberInt: '1' } }, name: '_id_' }], collectionName: ns.collection, type,
  });
  const data = (ns: PlantedNamespace) => (ns.type === 'timeseries' ? `system.buckets.${ns.collection}` : ns.collection);
  return Buffer.concat([
    magic, doc({ concurrent_collections: 1, version: '0.1', server_version: '7.0.0', tool_version: '100.10.0' }),
    ...namespaces.map((ns) => doc({ db: ns.db, collection: ns.collection, metadata: metadata(ns, ns.type ?? 'collection'), size: 0, type: ns.preludeType ?? ns.type ?? 'collection' })),
    TERMINATOR,
    ...namespaces.flatMap((ns) => [
      ...(ns.docs.length ? [doc({ db: ns.db, collection: data(ns), EOF: false, CRC: BSON.Long.fromNumber(0) }), ...ns.docs.map(doc), TERMINATOR] : []),
      doc({ db: ns.db, collection: data(ns), EOF: true, CRC: BSON.Long.fromBigInt(BigInt.asIntN(64, crc64(Buffer.concat(ns.docs.map(doc))))) }), TERMINATOR,
    ]),
  ]);
}
