/**
 * What the freshness check and `restorable status` conclude from a source's streamed binlogs: its newest stream, the
 * newest object S3 stored in it (the continuous RPO), and whether that stream replays without a gap from the newest
 * dump's binlog coordinates to its newest event. One module, so the alarm and the status can never disagree.
 *
 * Its cost does not grow with the history: one delimited listing of `binlog/` (the streams), one bounded GET of the
 * newest stream's stream.json, a listing of that stream only, from the dump's coordinate file on (StartAfter), and
 * one HEAD of the object holding that file (its binlog-created metadata). Older streams are never listed.
 *
 * Everything read here was written by the binlog streamer, the least trusted writer of the store: stream.json is read
 * with a size limit and the contract's parser, and must name its own stream and source; keys that are no binlog object
 * of the stream's server are counted and ignored; a stream id (the streamer's clock) in the future is forged, reported
 * and passed over, so it cannot hide the streams after it. Ages are the LastModified S3 sets, never a time stated.
 */
import {
  BINLOG_INDEX_SUFFIX, BINLOG_METADATA, BINLOG_STREAM_FILE, BINLOG_STREAM_PATTERN, BinlogCoordinates, BinlogStream, BinlogStreamReason,
  binlogPrefix, binlogSequence, binlogStreamPrefix, parseBinlogObjectName, parseBinlogStream,
} from './binlog';
import { ContractError, POINTER_CLOCK_SKEW_SECONDS, isIsoTime } from './manifest';
import { STORED_SUFFIX } from './names';

/** One listed object: its key, and when S3 stored it. */
export interface ListedObject {
  readonly key: string;
  readonly lastModified: Date;
}

/** How the caller reads the store (the handler and the agent each have their S3 helpers); S3 failures throw in words. */
export interface BinlogStoreReader {
  /** The names of the folders right under `prefix`, without the slash (a delimited listing). */
  folders(prefix: string): Promise<string[]>;
  /** Every object under `prefix` whose key sorts after `startAfter` (every one without), in key order; throws, saying so, past `limit`. */
  objectsAfter(prefix: string, startAfter: string | undefined, limit: number): Promise<ListedObject[]>;
  /** A small object's text and LastModified, or undefined when absent; throws, unread, when it is larger than `maxBytes`. */
  small(key: string, maxBytes: number): Promise<{ readonly text: string; readonly lastModified: Date } | undefined>;
  /** An object's user metadata (one HEAD), or undefined when absent. */
  metadata(key: string): Promise<Record<string, string> | undefined>;
}

/** The newest dump, as its latest.json and manifest describe it. */
export interface BinlogDump {
  readonly key: string;
  readonly startedAt: string;
  readonly binlog?: BinlogCoordinates;
}

/** Why a replay from the newest dump cannot reach the newest streamed event, in words. */
export interface BinlogGap {
  readonly description: string;
  /** When S3 stored what revealed it (a new stream's stream.json, the first object past a hole); absent when the dump says it. */
  readonly seenSince?: Date;
}

export interface BinlogCoverage {
  /** The newest stream (by its id, the time it began), when there is one. */
  readonly streamId?: string;
  /** Its stream.json, when it could be read, and when S3 stored it. */
  readonly stream?: BinlogStream;
  readonly streamStoredAt?: Date;
  /** The binlog object S3 stored last in that stream: its name (file, or file.partial.bytes) and when. */
  readonly newest?: { readonly name: string; readonly storedAt: Date };
  /** Empty when the stream replays from the dump's coordinates to its newest event. */
  readonly gaps: readonly BinlogGap[];
  /** Keys under binlog/ that are no stream or no binlog object of the stream: ignored. */
  readonly strangeKeys: number;
  /** Stream ids that are times in the future: the streamer's clock, forged or far off. */
  readonly forged: readonly string[];
  /** What could not be read (an unreadable stream.json, a missing index), when so: the check is incomplete. */
  readonly problem?: string;
}

/** A stream.json is a few hundred bytes. */
export const MAX_BINLOG_STREAM_BYTES = 64 * 1024;
/**
 * Objects listed in a stream from the dump's file on before the check gives up: a day of partials every 5 s is about
 * 35,000 objects with their indexes. More means the dump is far too old, or something wrote objects that are no binlog.
 */
export const MAX_BINLOG_OBJECTS_LISTED = 200_000;
/**
 * A file is uploaded whole once the next one exists in the streamer's spool, so for a moment the next file's partial
 * may be stored before it: a file before the newest that is stored only in part is a gap once a later file has been
 * stored this long.
 */
export const BINLOG_CLOSE_GRACE_SECONDS = 120;

const seconds = (ms: number) => Math.max(0, Math.round(ms / 1000));
const basename = (file: string) => file.slice(0, file.lastIndexOf('.'));
const fileName = (base: string, sequence: number) => `${base}.${String(sequence).padStart(6, '0')}`;
/** `2026-12-02_15-40-00Z` as a time. */
const streamTime = (id: string) => Date.parse(`${id.slice(0, 10)}T${id.slice(11, 19).replace(/-/g, ':')}Z`);

/** Why the stream began, in the words of its stream.json. */
export function streamReason(stream: BinlogStream | undefined): string {
  return stream ? `it began ${stream.startedAt} at ${stream.firstFile} (${stream.reason}: ${stream.detail})` : 'its stream.json could not be read';
}

/** The source's newest stream, its newest object, and what keeps a replay from the newest dump from reaching it; S3 failures throw. */
export async function readBinlogCoverage(reader: BinlogStoreReader, prefix: string, source: string, dump: BinlogDump | undefined, now: Date):
Promise<BinlogCoverage> {
  const root = binlogPrefix(prefix, source);
  const names = await reader.folders(root);
  const ids = names.filter((n) => BINLOG_STREAM_PATTERN.test(n)).sort();
  const skew = POINTER_CLOCK_SKEW_SECONDS * 1000;
  const future = ids.filter((id) => streamTime(id) > now.getTime() + skew);
  const forged = future.map((id) => `binlog stream ${root}${id}/ is named for a time in the future (now is ${now.toISOString()}): passed over`);
  const streamId = ids.filter((id) => !future.includes(id)).pop();
  let strangeKeys = names.length - ids.length;
  const noDump = dumpGap(dump);
  if (!streamId) {
    return { gaps: [...noDump, { description: `no binlog stream under ${root}: nothing was streamed (is the binlog streamer running?)` }], strangeKeys, forged };
  }
  const streamPrefix = binlogStreamPrefix(prefix, source, streamId);
  const read = await readStream(reader, streamPrefix, source, streamId);
  const coordinates = noDump.length ? undefined : dump!.binlog!;
  const listed = await listStream(reader, streamPrefix, coordinates?.file);
  const objects: StreamObject[] = [];
  for (const o of listed) {
    const name = o.key.slice(streamPrefix.length);
    if (name === BINLOG_STREAM_FILE) continue;
    const stored = name.endsWith(STORED_SUFFIX) ? parseBinlogObjectName(name.slice(0, -STORED_SUFFIX.length)) : undefined;
    const index = name.endsWith(BINLOG_INDEX_SUFFIX) ? parseBinlogObjectName(name.slice(0, -BINLOG_INDEX_SUFFIX.length)) : undefined;
    const base = read.stream ? basename(read.stream.firstFile) : undefined;
    if (stored && (base === undefined || basename(stored.file) === base)) {
      objects.push({ ...stored, key: o.key, name: name.slice(0, -STORED_SUFFIX.length), sequence: binlogSequence(stored.file), lastModified: o.lastModified });
    } else if (!index) {
      strangeKeys++;
    }
  }
  // Of objects S3 stored in the same second, the later in the binlog is the newer.
  const newest = objects.reduce<StreamObject | undefined>((a, b) => (!a || b.lastModified > a.lastModified ||
    (b.lastModified.getTime() === a.lastModified.getTime() && order(b, a) > 0) ? b : a), undefined);
  const replay: GapsRead = coordinates
    ? await replayGaps({ reader, coordinates, dump: dump!, objects, streamId, stream: read.stream, streamStoredAt: read.storedAt, now })
    : { gaps: noDump };
  const problem = [read.problem, replay.problem].filter(Boolean).join('; ');
  return {
    streamId,
    ...read.stream ? { stream: read.stream, streamStoredAt: read.storedAt } : {},
    ...newest ? { newest: { name: newest.name, storedAt: newest.lastModified } } : {},
    gaps: replay.gaps,
    strangeKeys,
    forged,
    ...problem ? { problem } : {},
  };
}

/** A stored binlog object of the stream. */
interface StreamObject {
  readonly key: string;
  readonly name: string;
  readonly file: string;
  readonly sequence: number;
  readonly partialBytes?: number;
  readonly lastModified: Date;
}

/** Binlog order: by file, then a partial by its bytes, then the whole file. */
const order = (a: StreamObject, b: StreamObject) => a.sequence - b.sequence || (a.partialBytes ?? Infinity) - (b.partialBytes ?? Infinity);

/** A missing dump, or one without coordinates: replay has nowhere to start. */
function dumpGap(dump: BinlogDump | undefined): BinlogGap[] {
  if (!dump) return [{ description: 'there is no dump to start a replay from (no latest.json)' }];
  if (!dump.binlog) {
    return [{ description: `the newest dump, ${dump.key}, records no binlog coordinates (it was taken without --binlog-coordinates): a replay has nowhere to start` }];
  }
  return [];
}

async function readStream(reader: BinlogStoreReader, streamPrefix: string, source: string, streamId: string):
Promise<{ stream?: BinlogStream; storedAt?: Date; problem?: string }> {
  const key = `${streamPrefix}${BINLOG_STREAM_FILE}`;
  try {
    const stored = await reader.small(key, MAX_BINLOG_STREAM_BYTES);
    if (!stored) return { problem: `the newest binlog stream has no ${key}: why it began is unknown` };
    const stream = parseBinlogStream(stored.text, key);
    if (stream.stream !== streamId || stream.source !== source) {
      return { problem: `${key} describes stream ${JSON.stringify(stream.stream)} of source ${JSON.stringify(stream.source)}: not followed` };
    }
    return { stream, storedAt: stored.lastModified };
  } catch (err) {
    return { problem: err instanceof ContractError ? `${err.message}: ${err.fix}` : (err as Error).message };
  }
}

/**
 * The stream's objects from the dump's file on (StartAfter its bare name: its own keys sort after it). Names order by
 * their sequence number only while it keeps its width: past 999999 the server writes 1000000, which sorts before, so a
 * stream that reached the last number of the dump file's width is listed whole.
 */
async function listStream(reader: BinlogStoreReader, streamPrefix: string, dumpFile: string | undefined): Promise<ListedObject[]> {
  if (!dumpFile) return reader.objectsAfter(streamPrefix, undefined, MAX_BINLOG_OBJECTS_LISTED);
  const listed = await reader.objectsAfter(streamPrefix, `${streamPrefix}${dumpFile}`, MAX_BINLOG_OBJECTS_LISTED);
  const width = dumpFile.length - dumpFile.lastIndexOf('.') - 1;
  const last = `${streamPrefix}${basename(dumpFile)}.${'9'.repeat(width)}.`;
  return listed.some((o) => o.key.startsWith(last)) ? reader.objectsAfter(streamPrefix, undefined, MAX_BINLOG_OBJECTS_LISTED) : listed;
}

interface GapsRead {
  readonly gaps: BinlogGap[];
  readonly problem?: string;
}

interface ReplayInput {
  readonly reader: BinlogStoreReader;
  readonly coordinates: BinlogCoordinates;
  readonly dump: BinlogDump;
  readonly objects: readonly StreamObject[];
  readonly streamId: string;
  readonly stream?: BinlogStream;
  readonly streamStoredAt?: Date;
  readonly now: Date;
}

/**
 * What keeps the newest stream from replaying the dump's coordinates on: another server, a stream begun by a reset (or
 * another server) after the dump, the dump's file not in the stream (it began after the dump, or has not reached it),
 * the file recreated after the dump began (the binlogs were reset), a file missing after it, or one stored only in part
 * while later ones were stored whole.
 */
async function replayGaps(input: ReplayInput): Promise<GapsRead> {
  const { coordinates: c, stream, streamId, objects, now } = input;
  const why = streamReason(stream);
  const began = input.streamStoredAt && { seenSince: input.streamStoredAt };
  if (stream && stream.serverId !== c.serverId) {
    return { gaps: [{ description: `the newest binlog stream, ${streamId}, is of server_id ${stream.serverId}, but the dump was taken on server_id ${c.serverId}: ${why}`, ...began }] };
  }
  // After a reset or on another server, the names start again: a dump from before the stream names a file of the binlogs before it.
  const renamed = stream && (stream.reason === BinlogStreamReason.RESET || stream.reason === BinlogStreamReason.SERVER_CHANGED);
  if (renamed && input.streamStoredAt && input.streamStoredAt.getTime() > Date.parse(input.dump.startedAt)) {
    return { gaps: [{ description: `the newest binlog stream, ${streamId}, began after the dump (${input.dump.startedAt}): ${why}; the dump's ${c.file} ` +
      'names a file of the binlogs before it', ...began }] };
  }
  const dumpSequence = binlogSequence(c.file);
  const files = new Map<number, StreamObject[]>();
  for (const o of objects) if (o.sequence >= dumpSequence) files.set(o.sequence, [...files.get(o.sequence) ?? [], o]);
  const mine = files.get(dumpSequence);
  if (!mine) {
    const after = stream ? binlogSequence(stream.firstFile) > dumpSequence : files.size > 0;
    if (after) {
      return { gaps: [{ description: `the newest binlog stream, ${streamId}, does not hold the dump's ${c.file}: ${why}; ` +
        'the events from the dump\'s position to where the stream begins are not stored', ...began }] };
    }
    if (!files.size) return { gaps: [{ description: `the newest binlog stream, ${streamId}, has not reached the dump's ${c.file}: is the binlog streamer running?` }] };
  }
  const gaps: BinlogGap[] = [];
  const problem = mine && await recreatedAfterDump(input, mine, gaps);
  const sequences = [...files.keys()].sort((a, b) => a - b);
  const base = basename(c.file);
  const firstStoredAfter = (sequence: number) => objects.filter((o) => o.sequence > sequence)
    .reduce((a, o) => (o.lastModified < a ? o.lastModified : a), new Date(8.64e15));
  let previous = dumpSequence - 1;
  for (const sequence of sequences) {
    if (sequence > previous + 1) {
      const count = sequence - previous - 1;
      gaps.push({
        description: `missing ${fileName(base, previous + 1)}${count > 1 ? ` to ${fileName(base, sequence - 1)}` : ''} (${count} file${count > 1 ? 's' : ''}) ` +
          `from the dump's ${c.file} on`,
        seenSince: firstStoredAfter(previous),
      });
    }
    const whole = files.get(sequence)!.some((o) => o.partialBytes === undefined);
    const later = firstStoredAfter(sequence);
    if (sequence !== sequences[sequences.length - 1] && !whole && seconds(now.getTime() - later.getTime()) > BINLOG_CLOSE_GRACE_SECONDS) {
      const bytes = Math.max(...files.get(sequence)!.map((o) => o.partialBytes!));
      gaps.push({
        description: `${fileName(base, sequence)} is stored only up to byte ${bytes}, never whole, though later files were stored`,
        seenSince: new Date(later.getTime() + BINLOG_CLOSE_GRACE_SECONDS * 1000),
      });
    }
    previous = sequence;
  }
  return { gaps, ...problem ? { problem } : {} };
}

/**
 * After RESET MASTER the same names hold other events: the object holding the dump's file must state a creation time
 * (binlog-created, the file's format description event) no later than the dump began. Pushes the gap; returns a problem.
 */
async function recreatedAfterDump(input: ReplayInput, mine: readonly StreamObject[], gaps: BinlogGap[]): Promise<string | undefined> {
  const { coordinates: c } = input;
  const holder = mine.reduce((a, b) => (order(b, a) > 0 ? b : a));
  const metadata = await input.reader.metadata(holder.key);
  const created = metadata?.[BINLOG_METADATA.created];
  if (!isIsoTime(created)) {
    return `${holder.key} states ${BINLOG_METADATA.created} ${JSON.stringify(created)}, not a time: whether the dump's file was recreated after the dump is unknown`;
  }
  if (Date.parse(created) > Date.parse(input.dump.startedAt) + POINTER_CLOCK_SKEW_SECONDS * 1000) {
    gaps.push({
      description: `the newest binlog stream's ${c.file} was created ${created}, after the dump began (${input.dump.startedAt}): the server's binlogs were ` +
        `reset, or it is another server, since the dump; ${streamReason(input.stream)}`,
      ...input.streamStoredAt ? { seenSince: input.streamStoredAt } : {},
    });
  }
  return undefined;
}
