/**
 * What a point-in-time restore of a MariaDB source replays: the newest dump with binlog coordinates that started before
 * the target, and, from the stream that holds the dump's coordinate file, the binlog objects from there to the target,
 * each with its index (which says where replay to a time stops). Everything read here was written by the dump task or
 * the binlog streamer, so it is parsed by the contract's functions, size-limited, and checked against what the dump's
 * manifest says: one stream, one server, no file missing between the dump and the target.
 */
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import {
  BINLOG_STREAM_FILE, BINLOG_STREAM_PATTERN, BinlogCoordinates, binlogStreamId, BinlogIndex, BinlogStream, ContractError, Manifest, STORED_SUFFIX, binlogIndexKey,
  binlogPrefix, binlogSequence, binlogStreamKey, binlogStreamPrefix, parseBinlogIndex, parseBinlogObjectName, parseBinlogStream,
} from '../../../lib/contract';
import { AgentError } from '../shared/errors';
import { log } from '../shared/log';
import { s3Problem } from '../shared/s3';
import { BackupLocation, SelectedBackup, selectBackup } from '../restore/download';
import { folderNames } from '../commands/status-reads';

/** The most bytes of a stream.json or an index read: an index lists at most one mark per second of a file's life. */
const MAX_JSON_BYTES = 16 * 1024 * 1024;
/** The most keys listed in one stream: past it, a restore would list for minutes; take a newer dump. */
export const MAX_STREAM_KEYS = 200_000;
/** The most dumps passed over (newest first) for lacking binlog coordinates. */
const MAX_DUMPS_TRIED = 30;

export interface DumpChoice {
  readonly backup: SelectedBackup;
  readonly coordinates: BinlogCoordinates;
}

/** One stored binlog object to replay, with its index. */
export interface PlannedBinlog {
  readonly file: string;
  readonly key: string;
  readonly index: BinlogIndex;
  /** Replay starts here (the dump's position in its file, 4 = the first event after the magic bytes otherwise). */
  readonly from: number;
  /** ...and stops before this position: a mark after the target, or the end of the object's last whole group. */
  readonly to: number;
  readonly partial: boolean;
}

export interface BinlogPlan {
  readonly stream: BinlogStream;
  readonly objects: readonly PlannedBinlog[];
  /** True when a group after the target is stored (replay stops before it); false when the store ends before the target. */
  readonly coveredTarget: boolean;
}

/** The dump's snapshot came after the target's second: an older dump must be taken (the restore tries the one before). */
export class DumpAfterTarget extends AgentError {}

/** Reads a small object as text, refusing one over `max` bytes unread; undefined when absent. */
export async function getSmallText(s3: S3Client, bucket: string, key: string, max = MAX_JSON_BYTES): Promise<string | undefined> {
  let out;
  try {
    out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  } catch (err) {
    if ((err as { name?: string }).name === 'NoSuchKey') return undefined;
    throw s3Problem('GetObject', bucket, key, err);
  }
  if ((out.ContentLength ?? 0) > max) {
    (out.Body as { destroy?: () => void } | undefined)?.destroy?.();
    throw new AgentError(`s3://${bucket}/${key} holds ${out.ContentLength} bytes, more than the ${max} such a file may: refusing to read it`);
  }
  const text = await out.Body!.transformToString('utf8');
  if (text.length > max) throw new AgentError(`s3://${bucket}/${key} holds more than ${max} bytes: refusing to read it`);
  return text;
}

/**
 * The newest dump that started at or before `at` and records binlog coordinates; dumps without them (taken before the
 * source's binlogs were streamed, or without --binlog-coordinates) are passed over, newest first.
 */
export async function selectDumpWithCoordinates(s3: S3Client, location: Omit<BackupLocation, 'at' | 'key'>, at: Date): Promise<DumpChoice> {
  let before = at;
  const passedOver: string[] = [];
  for (let tried = 0; tried < MAX_DUMPS_TRIED; tried++) {
    let backup: SelectedBackup;
    try {
      backup = await selectBackup(s3, { ...location, at: before });
    } catch (err) {
      if (!(err instanceof AgentError) || passedOver.length === 0) {
        throw new AgentError(`no dump of '${location.source}' started at or before ${at.toISOString()}: a point-in-time restore starts from one. ` +
          `Give a later --to, or take a dump now (\`restorable backup … --binlog-coordinates\`). ${(err as Error).message}`);
      }
      break;
    }
    if (backup.manifest.binlog) {
      log.info('dump selected', { key: backup.key, startedAt: backup.manifest.startedAt, binlogFile: backup.manifest.binlog.file, binlogPosition: backup.manifest.binlog.position, passedOver: passedOver.length });
      return { backup, coordinates: backup.manifest.binlog };
    }
    passedOver.push(backup.key);
    before = new Date(Date.parse(backup.manifest.startedAt) - 1);
  }
  throw new AgentError(`no dump of '${location.source}' started at or before ${at.toISOString()} records binlog coordinates (the newest passed over: ` +
    `${passedOver.slice(0, 3).join(', ')}): they were taken without --binlog-coordinates, so nothing says where binlog replay would start. ` +
    'Dumps of a binlog-streamed source record them; take one now and restore to a time after it');
}

/** How far after now a stream id may be named (clocks differ a little); later ids are passed over, as the freshness check does. */
const FUTURE_STREAM_MS = 5 * 60_000;

/** The stream ids under the source's binlog/, newest first, without those named after now + 5 minutes. */
export async function listStreams(s3: S3Client, bucket: string, prefix: string | undefined, source: string, now = new Date()): Promise<string[]> {
  const names = (await folderNames(s3, bucket, binlogPrefix(prefix, source))).filter((id) => BINLOG_STREAM_PATTERN.test(id));
  const latest = binlogStreamId(new Date(now.getTime() + FUTURE_STREAM_MS));
  const future = names.filter((id) => id > latest);
  if (future.length) {
    log.warn('binlog streams named after now are passed over: the streamer names a stream when it begins, so a later name was not written by an honest one ' +
      '(or its clock is wrong)', { streams: future.slice(0, 5).join(', '), count: future.length });
  }
  return names.filter((id) => id <= latest).sort().reverse();
}

interface StoredFile {
  closed?: string;
  /** The partial with the most bytes. */
  partial?: { key: string; bytes: number };
}

/** The objects of one stream, by file, from the first file on (names order by sequence number). */
async function listStream(s3: S3Client, bucket: string, prefix: string | undefined, source: string, stream: string): Promise<Map<string, StoredFile>> {
  const base = binlogStreamPrefix(prefix, source, stream);
  const files = new Map<string, StoredFile>();
  let token: string | undefined;
  let listed = 0;
  do {
    let page;
    try {
      page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: base, ContinuationToken: token }));
    } catch (err) {
      throw s3Problem('ListObjectsV2', bucket, base, err);
    }
    for (const object of page.Contents ?? []) {
      if (++listed > MAX_STREAM_KEYS) {
        throw new AgentError(`s3://${bucket}/${base} holds more than ${MAX_STREAM_KEYS} objects: more than a restore lists. Take a newer dump ` +
          '(a stream is read from its start), or restore from the objects by hand (the runbook says how)');
      }
      const key = object.Key ?? '';
      if (!key.endsWith(STORED_SUFFIX)) continue;
      const name = parseBinlogObjectName(key.slice(base.length, -STORED_SUFFIX.length));
      if (!name) continue;
      const entry = files.get(name.file) ?? {};
      if (name.partialBytes === undefined) entry.closed = key;
      else if (!entry.partial || name.partialBytes > entry.partial.bytes) entry.partial = { key, bytes: name.partialBytes };
      files.set(name.file, entry);
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return files;
}

async function readIndex(s3: S3Client, bucket: string, key: string, stream: string, file: string, serverId: number): Promise<BinlogIndex> {
  const indexKey = binlogIndexKey(key);
  const where = `s3://${bucket}/${indexKey}`;
  const text = await getSmallText(s3, bucket, indexKey);
  if (text === undefined) throw new AgentError(`${where} does not exist: the binlog object s3://${bucket}/${key} has no index, so nothing says where its events stop`);
  const index = parseBinlogIndex(text, where);
  const problem = index.key !== key ? `names the object ${index.key}` : index.file !== file ? `names the file ${index.file}`
    : index.stream !== stream ? `names the stream ${index.stream}` : index.serverId !== serverId ? `says server id ${index.serverId}, the dump's server is ${serverId}` : undefined;
  if (problem) throw new ContractError(`binlog index ${where} ${problem}`, 'it does not describe the object beside it: restore from another dump, or to a time before this file');
  return index;
}

/** Where in `index` replay to `target` (whole seconds) stops: before the first group whose time is after it. */
function stopIn(index: BinlogIndex, targetSeconds: number | undefined): number | undefined {
  if (targetSeconds === undefined) return undefined;
  return index.marks.find(([time]) => time > targetSeconds)?.[1];
}

/**
 * The binlog objects to replay from the dump's coordinates to `target` (all stored, when undefined), from the newest
 * stream that holds the dump's coordinate file as it was when the dump ran (same server, created no later than the
 * dump started). Refuses, in words, a stream with a file missing between the dump and the target.
 */
export async function planBinlogReplay(s3: S3Client, bucket: string, prefix: string | undefined, manifest: Manifest, target: Date | undefined): Promise<BinlogPlan> {
  const coordinates = manifest.binlog!;
  const { source } = manifest;
  const streams = await listStreams(s3, bucket, prefix, source);
  if (streams.length === 0) {
    throw new AgentError(`no binlog stream of '${source}' in s3://${bucket}/${binlogPrefix(prefix, source)}: its binlogs were never streamed here, so ` +
      'the dump can be restored but nothing replayed after it. Restore the dump alone (restore without --to), and check the binlog streamer');
  }
  const targetSeconds = target ? Math.floor(target.getTime() / 1000) : undefined;
  const dumpStarted = Date.parse(manifest.startedAt);
  const reasons: string[] = [];
  for (const id of streams) {
    const where = `s3://${bucket}/${binlogStreamKey(prefix, source, id)}`;
    const text = await getSmallText(s3, bucket, binlogStreamKey(prefix, source, id));
    if (text === undefined) {
      reasons.push(`stream ${id} has no ${BINLOG_STREAM_FILE}`);
      continue;
    }
    const stream = parseBinlogStream(text, where);
    if (stream.serverId !== coordinates.serverId) {
      reasons.push(`stream ${id} is of server id ${stream.serverId}, the dump's server is ${coordinates.serverId}`);
      continue;
    }
    const files = await listStream(s3, bucket, prefix, source, id);
    const first = files.get(coordinates.file);
    if (!first) {
      reasons.push(`stream ${id} (${stream.reason}: ${stream.detail}) does not hold ${coordinates.file}`);
      continue;
    }
    const objects: PlannedBinlog[] = [];
    let file = coordinates.file;
    let coveredTarget = false;
    for (;;) {
      const stored = files.get(file);
      const later = [...files.keys()].some((f) => binlogSequence(f) > binlogSequence(file));
      const key = stored?.closed ?? stored?.partial?.key;
      if (!key) {
        // The file before it was closed and named this one, but the stream does not hold it.
        throw new AgentError(`a gap at ${file} in binlog stream ${id} of '${source}': ${objects[objects.length - 1]?.file ?? coordinates.file} ` +
          `went on to ${file}, which is not stored${later ? ', though later files are' : ''}. The binlogs after it cannot be replayed onto this dump: ` +
          `restore the dump taken after the gap, or --to a time before ${objects[objects.length - 1]?.index.lastGroupTime ?? 'the end of the file before it'}`);
      }
      const partial = stored?.closed === undefined;
      if (partial && later) {
        throw new AgentError(`a gap at ${file} in binlog stream ${id} of '${source}': only its first ${stored!.partial!.bytes} bytes are stored (a partial), ` +
          'yet later files are: the rest of it was never stored. Restore the dump taken after the gap, or --to a time within what is stored of it');
      }
      const index = await readIndex(s3, bucket, key, id, file, coordinates.serverId);
      if (file === coordinates.file && Date.parse(index.created) > dumpStarted) {
        reasons.push(`stream ${id} holds a ${file} created ${index.created}, after the dump started (${manifest.startedAt}): another file of that name`);
        break;
      }
      const from = file === coordinates.file ? coordinates.position : 4;
      if (from > index.groupsEnd && !(from === index.size && index.closed)) {
        throw new AgentError(`the dump's position ${coordinates.file}:${from} is past what the stored ${file} holds (${index.groupsEnd} bytes of whole ` +
          `groups${partial ? ', a partial' : ''}): the binlog streamer has not stored it yet, or the stream is another server's. Restore later, or without --to`);
      }
      const stop = stopIn(index, targetSeconds);
      if (stop !== undefined && stop < from) {
        // A group after the target lies before the dump's position: the dump itself holds it.
        throw new DumpAfterTarget(`the dump ${manifest.key} already holds a transaction committed after ${target!.toISOString()} (its snapshot came at ` +
          `${coordinates.file}:${from}, after ${file}:${stop}), and so does every older dump tried: give a --to after the dump's snapshot`);
      }
      const to = stop ?? index.groupsEnd;
      objects.push({ file, key, index, from, to, partial });
      if (stop !== undefined) {
        coveredTarget = true;
        break;
      }
      if (!index.closed) {
        // No ROTATE or STOP: the newest file, or one the server crashed in (it started the next file on restart). The
        // copy replayed ends at its last whole group (fetch.ts cuts it there), so a torn transaction never replays.
        const next = `${file.slice(0, file.lastIndexOf('.') + 1)}${String(binlogSequence(file) + 1).padStart(file.length - file.lastIndexOf('.') - 1, '0')}`;
        if (partial || !files.has(next)) break;
        log.info('a binlog ends without ROTATE or STOP (the server crashed); replay goes on with the next file after its last whole group', { file, next, groupsEnd: index.groupsEnd });
        file = next;
        continue;
      }
      if (!index.nextFile) {
        // A STOP event: the server shut down; its next file (after a restart) is the next in sequence.
        const next = [...files.keys()].filter((f) => binlogSequence(f) > binlogSequence(file)).sort((a, b) => binlogSequence(a) - binlogSequence(b))[0];
        if (!next) break;
        if (binlogSequence(next) !== binlogSequence(file) + 1) {
          throw new AgentError(`a gap after ${file} in binlog stream ${id} of '${source}': the server stopped, and the next file stored is ${next}. ` +
            `Restore the dump taken after the gap, or --to a time before ${index.lastGroupTime ?? index.created}`);
        }
        file = next;
      } else {
        file = index.nextFile;
        if (!files.has(file)) break; // not stored yet: the server has just rotated
      }
    }
    if (objects.length) {
      log.info('binlogs planned', { stream: id, objects: objects.length, first: objects[0].file, last: objects[objects.length - 1].file, coveredTarget });
      return { stream, objects, coveredTarget };
    }
  }
  throw new AgentError(`no binlog stream of '${source}' continues from the dump ${manifest.key} (${coordinates.file}:${coordinates.position}, server id ` +
    `${coordinates.serverId}): ${reasons.join('; ')}. Restore the dump alone (without --to), or a newer dump that a stream continues from`);
}
