/**
 * Reads mongodump's archive format as it streams past, counting the documents of each namespace without buffering
 * them, as SqlRowCounter counts the rows of a SQL dump (the format is mongo-tools' common/archive, spec.md):
 *
 *   magic number 0x8199e26d (little-endian) · header document · one metadata document per collection · 0xFFFFFFFF
 *   then blocks: a namespace header document {db, collection, EOF, CRC} · body documents · 0xFFFFFFFF
 *
 * A namespace's documents may be split over many blocks (collections are dumped in parallel); an EOF header (EOF true,
 * no body) ends a namespace. Only the header and metadata documents are parsed; a body document is counted from its
 * length and its last byte (a BSON document ends with a zero byte), so memory stays flat and the cost is a few
 * comparisons per document. An archive that ends inside a document, or before every namespace of its prelude has its
 * EOF header, is incomplete: a dump killed half way has exactly that shape.
 */
import { BSON, Document } from 'mongodb';
import { TableCount } from '../../../lib/contract';

const MAGIC = 0x8199e26d;
const TERMINATOR = 0xffffffff;
/** The tools' own bound (common/db MaxBSONSize): a larger length is not a document. */
const MAX_BSON_SIZE = 16 * 1024 * 1024;
const MIN_BSON_SIZE = 5;
/**
 * The most namespaces a prelude may list. Entries are ~80 bytes and alike, so zstd stores millions in a few hundred KB,
 * and each costs the counter memory: far beyond any real database's collections, well within the agent's memory.
 */
export const MAX_NAMESPACES = 100_000;

/** What the prelude says of one collection, and what the archive holds for it. */
export interface ArchiveNamespace {
  readonly db: string;
  readonly collection: string;
  /**
   * 'collection', 'view' (no documents) or 'timeseries' (whose documents are in system.buckets.<collection>): what
   * mongorestore makes of it, which the metadata's options decide (viewOn, timeseries); the prelude's type must agree.
   */
  readonly type: string;
  /** The namespace whose documents the blocks carry: the collection, or a timeseries collection's buckets. */
  readonly dataCollection: string;
  documents: number;
  ended: boolean;
}

/** A namespace's running CRC-64-ECMA of its body bytes, as two 32-bit halves (mongorestore checks it at the EOF header). */
interface Crc {
  hi: number;
  lo: number;
}

/** CRC-64-ECMA as Go's hash/crc64 computes it (reflected, polynomial 0xC96C5795D7870F42), by 32-bit halves. */
const CRC_HI = new Uint32Array(256);
const CRC_LO = new Uint32Array(256);
for (let i = 0; i < 256; i++) {
  let hi = 0;
  let lo = i;
  for (let k = 0; k < 8; k++) {
    const bit = lo & 1;
    lo = ((lo >>> 1) | (hi << 31)) >>> 0;
    hi = hi >>> 1;
    if (bit) {
      hi = (hi ^ 0xc96c5795) >>> 0;
      lo = (lo ^ 0xd7870f42) >>> 0;
    }
  }
  CRC_HI[i] = hi;
  CRC_LO[i] = lo;
}

/** Folds bytes into a namespace's running CRC (kept complemented, as Go keeps it). */
function crcUpdate(crc: Crc, bytes: Uint8Array): void {
  let hi = crc.hi;
  let lo = crc.lo;
  for (let i = 0; i < bytes.length; i++) {
    const idx = (lo ^ bytes[i]) & 0xff;
    lo = (((lo >>> 8) | (hi << 24)) ^ CRC_LO[idx]) >>> 0;
    hi = ((hi >>> 8) ^ CRC_HI[idx]) >>> 0;
  }
  crc.hi = hi;
  crc.lo = lo;
}

/** The CRC of what was folded in so far, as the int64 an EOF header carries. */
function crcValue(crc: Crc): bigint {
  return BigInt.asIntN(64, (BigInt((~crc.hi) >>> 0) << 32n) | BigInt((~crc.lo) >>> 0));
}

export interface ArchiveHeader {
  readonly formatVersion: string;
  readonly serverVersion: string;
  readonly toolVersion: string;
}

const enum State {
  MAGIC,
  HEADER,
  PRELUDE,
  BLOCK,
  BODY,
  AFTER_EOF,
  FAILED,
}

function text(doc: Document, field: string): string {
  const value = doc[field] as unknown;
  return typeof value === 'string' ? value : '';
}

/**
 * Why a namespace named by an archive is not one a MongoDB server can hold, or undefined. Its names reach errors,
 * refusals and reports: a control character could forge lines or drive a terminal, and an unbounded name fill them.
 * The database follows MongoDB's rule (at most 63 bytes, none of / \\ . " $ * < > : | ? or space); a collection has
 * at most 255 bytes. Neither is echoed, since that is what is wrong with it.
 */
export function namespaceNameProblem(db: string, collection: string): string | undefined {
  if (db === '' || Buffer.byteLength(db) > 63 || /[/\\. "$*<>:|?\u0000-\u001f\u007f-\u009f]/.test(db)) return 'a database name that MongoDB does not allow';
  if (collection === '' || Buffer.byteLength(collection) > 255 || /[\u0000-\u001f\u007f-\u009f]/.test(collection)) {
    return `a collection name of ${db} that MongoDB does not allow (empty, over 255 bytes, or holding a control character)`;
  }
  return undefined;
}

/**
 * What mongorestore creates from a prelude entry's metadata (Extended JSON): a view when its options have viewOn (the
 * server's create makes one), a timeseries collection when they have timeseries (restore.go), otherwise a collection.
 * Returns why the entry cannot be trusted to be what its prelude says, or undefined.
 */
export function metadataDisagreement(collection: string, preludeType: string, metadata: string): string | undefined {
  let parsed: unknown = {};
  if (metadata !== '') {
    try {
      parsed = JSON.parse(metadata);
    } catch {
      return 'its metadata is not Extended JSON';
    }
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return 'its metadata is not a JSON object';
  const meta = parsed as Record<string, unknown>;
  const options = typeof meta.options === 'object' && meta.options !== null ? meta.options as Record<string, unknown> : {};
  if ('viewOn' in options && 'timeseries' in options) return 'its metadata makes it both a view and a timeseries collection';
  const kind = 'viewOn' in options ? 'view' : 'timeseries' in options ? 'timeseries' : 'collection';
  if (kind !== preludeType) {
    return `the prelude calls it a ${preludeType} but its metadata makes it a ${kind} (mongorestore goes by the metadata)`;
  }
  if (meta.collectionName !== undefined && meta.collectionName !== collection) return 'its metadata names another collection';
  return undefined;
}

/** Counts documents per namespace in a mongodump archive stream; `problem` tells what is wrong with the bytes so far. */
export class MongoArchiveCounter {
  private state = State.MAGIC;
  /** The four bytes of a length or terminator being read across chunks. */
  private readonly word = Buffer.alloc(4);
  private wordFill = 0;
  /** A header or metadata document being gathered (parsed), or the length left of a body document (skipped). */
  private doc?: Buffer;
  private docFill = 0;
  private skipLeft = 0;
  private lastByte = 0;
  private current?: ArchiveNamespace;
  private readonly byName = new Map<string, ArchiveNamespace>();
  private readonly crcs = new Map<ArchiveNamespace, Crc>();
  private failure?: string;
  /** Bytes fed before this chunk, and where in the stream the step being taken started (for messages). */
  private offset = 0;
  private position = 0;
  header?: ArchiveHeader;

  /** Why the bytes so far are not a well-formed archive; undefined while they are. */
  get problem(): string | undefined {
    return this.failure;
  }

  /** The prelude's namespaces in its order, with their counts so far. */
  get namespaces(): readonly ArchiveNamespace[] {
    return [...this.byName.values()];
  }

  /** Feeds the next chunk. Never throws: a malformed archive sets `problem` and the rest is ignored. */
  write(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length && this.state !== State.FAILED) {
      this.position = this.offset + i;
      if (this.skipLeft > 0) {
        const n = Math.min(this.skipLeft, chunk.length - i);
        crcUpdate(this.crcs.get(this.current!)!, chunk.subarray(i, i + n));
        i += n;
        this.skipLeft -= n;
        if (this.skipLeft === 0) {
          this.lastByte = chunk[i - 1];
          this.bodyEnded();
        }
        continue;
      }
      if (this.doc) {
        const n = Math.min(this.doc.length - this.docFill, chunk.length - i);
        this.doc.set(chunk.subarray(i, i + n), this.docFill);
        this.docFill += n;
        i += n;
        if (this.docFill === this.doc.length) {
          const doc = this.doc;
          this.doc = undefined;
          this.documentRead(doc);
        }
        continue;
      }
      const n = Math.min(4 - this.wordFill, chunk.length - i);
      this.word.set(chunk.subarray(i, i + n), this.wordFill);
      this.wordFill += n;
      i += n;
      if (this.wordFill === 4) {
        this.wordFill = 0;
        this.wordRead(this.word.readUInt32LE(0));
      }
    }
    this.offset += chunk.length;
  }

  /**
   * Whether the archive ended where an archive may end: between blocks, every namespace of the prelude closed by its
   * EOF header. Returns why not, or undefined.
   */
  incompleteness(): string | undefined {
    if (this.failure) return this.failure;
    if (this.state === State.MAGIC && this.wordFill === 0) return 'the archive is empty';
    if (this.state !== State.BLOCK || this.wordFill !== 0) {
      return `the archive ends ${this.state === State.BODY || this.skipLeft > 0 ? 'inside a document' : 'inside its structure'} ` +
        `after ${this.offset} bytes: the dump is incomplete`;
    }
    const open = this.namespaces.filter((ns) => !ns.ended).map((ns) => `${ns.db}.${ns.collection}`);
    if (open.length) return `the archive ends before the end of ${open.join(', ')}: the dump is incomplete`;
    return undefined;
  }

  private fail(reason: string): void {
    this.failure = `not a well-formed mongodump archive: ${reason} (near byte ${this.position})`;
    this.state = State.FAILED;
  }

  private wordRead(value: number): void {
    switch (this.state) {
      case State.MAGIC:
        if (value !== MAGIC) return this.fail('it does not begin with the archive magic number (is it a mongodump --archive stream, uncompressed?)');
        this.state = State.HEADER;
        return;
      case State.HEADER:
        if (value === TERMINATOR) return this.fail('the header document is missing');
        return this.startDocument(value, true);
      case State.PRELUDE:
        if (value === TERMINATOR) {
          this.state = State.BLOCK;
          return;
        }
        return this.startDocument(value, true);
      case State.BLOCK:
        if (value === TERMINATOR) return this.fail('a block has no namespace header');
        return this.startDocument(value, true);
      case State.BODY:
        if (value === TERMINATOR) {
          this.current = undefined;
          this.state = State.BLOCK;
          return;
        }
        crcUpdate(this.crcs.get(this.current!)!, this.word);
        return this.startDocument(value, false);
      case State.AFTER_EOF:
        if (value !== TERMINATOR) return this.fail(`documents follow the end of ${this.current?.db}.${this.current?.collection}`);
        this.current = undefined;
        this.state = State.BLOCK;
        return;
      default:
        return undefined;
    }
  }

  private startDocument(length: number, parse: boolean): void {
    if (length < MIN_BSON_SIZE || length > MAX_BSON_SIZE) return this.fail(`${length | 0} is neither a document length nor a terminator`);
    if (parse) {
      this.doc = Buffer.alloc(length);
      this.word.copy(this.doc, 0);
      this.docFill = 4;
    } else {
      this.skipLeft = length - 4;
    }
  }

  private bodyEnded(): void {
    if (this.lastByte !== 0) return this.fail('a document does not end with a zero byte');
    // mongorestore would insert them into a collection of that name: documents no count would see.
    if (this.current!.type === 'view') return this.fail(`documents follow the header of ${this.current!.db}.${this.current!.collection}, a view, which holds none`);
    this.current!.documents++;
  }

  private documentRead(bytes: Buffer): void {
    if (bytes[bytes.length - 1] !== 0) return this.fail('a document does not end with a zero byte');
    let doc: Document;
    try {
      doc = BSON.deserialize(bytes, { promoteValues: true, useBigInt64: true });
    } catch (err) {
      return this.fail(`a header document is not BSON (${(err as Error).message})`);
    }
    if (this.state === State.HEADER) {
      this.header = { formatVersion: text(doc, 'version'), serverVersion: text(doc, 'server_version'), toolVersion: text(doc, 'tool_version') };
      if (this.header.formatVersion !== '0.1') return this.fail(`archive format version '${this.header.formatVersion}' is not 0.1, the only one known`);
      this.state = State.PRELUDE;
      return;
    }
    const db = text(doc, 'db');
    const collection = text(doc, 'collection');
    const badName = namespaceNameProblem(db, collection);
    if (badName) return this.fail(`${this.state === State.PRELUDE ? 'the prelude' : 'a block header'} names ${badName}`);
    if (this.state === State.PRELUDE) {
      // Older tools write no type for a collection.
      const type = text(doc, 'type') || 'collection';
      // mongodump never lists a buckets collection: a timeseries entry stands for it. mongorestore would strip the
      // prefix before its namespace filter, and restore the documents into the collection the rest of the name gives.
      if (collection.startsWith('system.buckets.')) return this.fail(`the prelude lists ${db}.${collection}, a buckets collection, which mongodump never does`);
      const disagreement = metadataDisagreement(collection, type, text(doc, 'metadata'));
      if (disagreement) return this.fail(`${db}.${collection}: ${disagreement}`);
      const dataCollection = type === 'timeseries' ? `system.buckets.${collection}` : collection;
      const key = `${db}\0${dataCollection}`;
      if (this.byName.has(key)) return this.fail(`the prelude names ${db}.${collection} twice`);
      if (this.byName.size >= MAX_NAMESPACES) return this.fail(`the prelude lists more than ${MAX_NAMESPACES} collections, which no backup the agent wrote holds`);
      const ns: ArchiveNamespace = { db, collection, type, dataCollection, documents: 0, ended: false };
      this.byName.set(key, ns);
      this.crcs.set(ns, { hi: 0xffffffff, lo: 0xffffffff });
      return;
    }
    // A namespace header.
    const ns = this.byName.get(`${db}\0${collection}`);
    if (!ns) return this.fail(`a block names ${db}.${collection}, which the prelude does not`);
    if (ns.ended) return this.fail(`a block names ${db}.${collection} after its end`);
    this.current = ns;
    if (doc.EOF === true) {
      // mongorestore checks it only after loading the namespace's documents: checked here before anything loads.
      const crc = typeof doc.CRC === 'bigint' ? doc.CRC : BigInt(typeof doc.CRC === 'number' ? doc.CRC : 0);
      if (crc !== crcValue(this.crcs.get(ns)!)) return this.fail(`the documents of ${db}.${collection} do not match the CRC of its end (damaged or altered)`);
      ns.ended = true;
      this.state = State.AFTER_EOF;
    } else {
      this.state = State.BODY;
    }
  }
}

/**
 * The manifest's counts from an archive's namespaces: one per collection of `database`, sorted. Views hold no documents
 * (mongorestore recreates them from the prelude) and are left out; a timeseries collection's documents are its buckets,
 * counted under system.buckets.<name> as the archive stores them.
 */
export function documentCounts(namespaces: readonly ArchiveNamespace[], database: string): TableCount[] {
  return namespaces.filter((ns) => ns.db === database && ns.type !== 'view')
    .map((ns) => ({ schema: database, table: ns.dataCollection, rows: ns.documents }))
    .sort((a, b) => a.table.localeCompare(b.table));
}

/** How an archive read to its end differs from the manifest's counts of `database`; empty when it holds exactly them. */
export function archiveCountProblems(counter: MongoArchiveCounter, expected: readonly TableCount[], database: string): string[] {
  const incomplete = counter.incompleteness();
  if (incomplete) return [incomplete];
  const found = new Map(documentCounts(counter.namespaces, database).map((t) => [t.table, t.rows]));
  const wanted = new Map(expected.map((t) => [t.table, t.rows]));
  return [
    ...expected.filter((t) => found.get(t.table) !== t.rows)
      .map((t) => `collection ${t.table}: the archive holds ${found.has(t.table) ? `${found.get(t.table)} documents` : 'no such collection'}, the manifest recorded ${t.rows}`),
    ...[...found.keys()].filter((name) => !wanted.has(name)).map((name) => `collection ${name}: in the archive, not in the manifest`),
  ];
}

/** Namespaces of an archive outside the database it is a backup of: never in an archive the agent wrote. */
export function foreignNamespaces(counter: MongoArchiveCounter, database: string): string[] {
  return counter.namespaces.filter((ns) => ns.db !== database).map((ns) => `${ns.db}.${ns.collection}: outside the backed-up database ${database}`);
}
