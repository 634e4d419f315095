/**
 * Streamed binlogs and dumps stored as the contract names them, for the tests of what the monitoring and `restorable
 * status` read: stream.json, binlog objects with their binlog-created metadata and index beside them, and a dump
 * whose manifest records (or not) its binlog coordinates. Their bytes are never opened by those readers: only names,
 * S3's LastModified, metadata and the small JSON objects matter.
 */
import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import {
  BINLOG_FORMAT_VERSION, BINLOG_METADATA, BinlogCoordinates, BinlogStreamReason, DumpFormat, Engine, Tier, WAL_METADATA,
  backupKey, binlogIndexKey, binlogObjectKey, binlogPartialName, binlogStreamId, binlogStreamKey, latestKey, manifestKeyFor,
} from '../../lib/contract';
import { S3Emulator } from '../support';

export const SERVER_ID = 1;

/** When S3 stored a key (ms). */
export async function storedAt(s3: S3Emulator, key: string): Promise<number> {
  return (await s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }))).LastModified!.getTime();
}

/** A stream's stream.json; returns the stream id. */
export async function putStream(s3: S3Emulator, prefix: string, source: string, options: {
  readonly at?: Date; readonly firstFile?: string; readonly reason?: BinlogStreamReason; readonly detail?: string; readonly serverId?: number;
} = {}): Promise<string> {
  const at = options.at ?? new Date();
  const stream = binlogStreamId(at);
  await s3.client.send(new PutObjectCommand({
    Bucket: s3.bucket, Key: binlogStreamKey(prefix, source, stream), Body: JSON.stringify({
      formatVersion: BINLOG_FORMAT_VERSION, source, stream, startedAt: at.toISOString(), serverId: options.serverId ?? SERVER_ID,
      serverVersion: '10.11.6-MariaDB', firstFile: options.firstFile ?? 'mariadb-bin.000001', reason: options.reason ?? BinlogStreamReason.FIRST_START,
      detail: options.detail ?? 'the spool was empty: streaming from the server\'s oldest binlog',
    }),
  }));
  return stream;
}

/** A binlog object (whole, or a partial of `partialBytes`) and its index; returns when S3 stored it (ms). */
export async function putBinlog(s3: S3Emulator, prefix: string, source: string, stream: string, file: string, options: {
  readonly partialBytes?: number; readonly created?: string; readonly serverId?: number;
} = {}): Promise<number> {
  const name = options.partialBytes === undefined ? file : binlogPartialName(file, options.partialBytes);
  const key = binlogObjectKey(prefix, source, stream, name);
  const created = options.created ?? '2026-01-01T00:00:00.000Z';
  const size = options.partialBytes ?? 4096;
  await s3.client.send(new PutObjectCommand({
    Bucket: s3.bucket, Key: key, Body: `sealed ${name}`, Metadata: {
      [WAL_METADATA.plaintextSize]: String(size), [BINLOG_METADATA.created]: created, [BINLOG_METADATA.serverId]: String(options.serverId ?? SERVER_ID),
    },
  }));
  await s3.client.send(new PutObjectCommand({
    Bucket: s3.bucket, Key: binlogIndexKey(key), Body: JSON.stringify({
      formatVersion: BINLOG_FORMAT_VERSION, source, stream, file, key, size, sha256: 'c'.repeat(64), serverId: options.serverId ?? SERVER_ID,
      created, closed: options.partialBytes === undefined, groupsEnd: size, marks: [],
    }),
  }));
  return storedAt(s3, key);
}

/** A dump of `source` with its manifest (coordinates when given) and latest.json naming it; returns its key and when S3 stored it (ms). */
export async function putDump(s3: S3Emulator, prefix: string, source: string, binlog: BinlogCoordinates | undefined, startedAt = new Date(Date.now() - 60_000)):
Promise<{ key: string; stored: number }> {
  const key = backupKey(prefix, source, startedAt, DumpFormat.SQL);
  const body = `sealed dump of ${source}`;
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: body }));
  const common = { formatVersion: 1, source, key, startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(), tier: Tier.DAILY, size: body.length, sha256: 'd'.repeat(64) };
  await s3.client.send(new PutObjectCommand({
    Bucket: s3.bucket, Key: manifestKeyFor(key), Body: JSON.stringify({
      ...common, engine: Engine.MYSQL, database: 'shop', serverVersion: '10.11.6-MariaDB', toolVersions: {}, format: DumpFormat.SQL,
      dumpSize: 100, recipientFingerprint: 'e'.repeat(64), tables: [], companions: [], globals: { captured: false, reason: 'test' }, warnings: [],
      ...binlog ? { binlog } : {},
    }),
  }));
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: latestKey(prefix, source), Body: JSON.stringify({ ...common, manifestKey: manifestKeyFor(key) }) }));
  return { key, stored: await storedAt(s3, key) };
}
