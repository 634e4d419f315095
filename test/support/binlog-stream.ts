/**
 * Running `restorable binlog-stream` in tests and reading back what it stored: the streamer in a process group of its
 * own (so that a SIGKILL takes mariadb-binlog with it, as a stopped task does), the stored streams and objects by
 * name, and an object decrypted (age) and decompressed (zstd) with its metadata, tags and index.
 */
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { GetObjectTaggingCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { BinlogIndex, BinlogStream, binlogIndexKey, binlogPrefix, parseBinlogIndex, parseBinlogObjectName, parseBinlogStream } from '../../lib/contract';
import { AgeKey } from './age';
import { agentEnv } from './agent';
import { MariadbAddress } from './mariadb-binlog-server';
import { S3Emulator } from './s3rver';

export interface RunningStreamer {
  readonly child: ChildProcess;
  stderr(): string;
  readonly finished: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
  /** Signals the streamer's whole process group (mariadb-binlog too). */
  killGroup(signal: NodeJS.Signals): void;
}

export interface StreamerRun {
  readonly agent: string;
  readonly s3: S3Emulator;
  readonly key: AgeKey;
  readonly server: MariadbAddress;
  readonly source: string;
  readonly spool: string;
  readonly serverId?: number;
  readonly extra?: readonly string[];
  readonly env?: Record<string, string>;
}

/** Starts the streamer (a copy of the bundled agent at `agent`) with the server's password in MYSQL_PWD. */
export function startStreamer(o: StreamerRun): RunningStreamer {
  const args = ['binlog-stream', '--source', o.source, '--bucket', o.s3.bucket, '--recipient', o.key.recipient, '--spool', o.spool,
    '--server-id', String(o.serverId ?? 4_000_000_001), '--host', o.server.host, '--port', String(o.server.port), '--user', o.server.user, '--json', ...(o.extra ?? [])];
  const child = spawn(process.execPath, [o.agent, ...args], { env: agentEnv({ ...o.s3.env, MYSQL_PWD: o.server.password, ...o.env }), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => { stdout += b.toString(); });
  child.stderr!.on('data', (b: Buffer) => { stderr += b.toString(); });
  return {
    child, stderr: () => stderr,
    finished: new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }))),
    killGroup: (signal) => {
      try {
        process.kill(-child.pid!, signal);
      } catch {
        // already gone
      }
    },
  };
}

export async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export interface StoredBinlog {
  readonly stream: string;
  readonly key: string;
  readonly file: string;
  /** For a partial: the bytes it holds. */
  readonly partialBytes?: number;
}

/** Every binlog object stored for a source (indexes and stream.json aside), by stream, in key order. */
export async function storedBinlogs(s3: S3Emulator, source: string): Promise<StoredBinlog[]> {
  const prefix = binlogPrefix(undefined, source);
  return (await s3.keys(prefix)).filter((k) => k.endsWith('.zst.age')).map((key) => {
    const [stream, rest] = key.slice(prefix.length).split('/');
    const name = parseBinlogObjectName(rest.slice(0, -'.zst.age'.length));
    if (!name) throw new Error(`${key} is not a binlog object name`);
    return { stream, key, file: name.file, partialBytes: name.partialBytes };
  });
}

/** The streams stored for a source, oldest first. */
export async function storedStreams(s3: S3Emulator, source: string): Promise<BinlogStream[]> {
  const prefix = binlogPrefix(undefined, source);
  const keys = (await s3.keys(prefix)).filter((k) => k.endsWith('/stream.json')).sort();
  return Promise.all(keys.map(async (k) => parseBinlogStream((await s3.getText(k))!, k)));
}

export interface OpenedBinlog {
  readonly bytes: Buffer;
  readonly metadata: Record<string, string>;
  readonly tags: Record<string, string>;
  readonly index: BinlogIndex;
}

/** An object's plaintext (age -d, zstd -d), its metadata and tags, and its index. */
export async function openStoredBinlog(s3: S3Emulator, key: AgeKey, objectKey: string): Promise<OpenedBinlog> {
  const sealed = await s3.getBytes(objectKey);
  const compressed = execFileSync('age', ['-d', '-i', key.identityFile], { input: sealed, maxBuffer: 1024 * 1024 * 1024 });
  const bytes = execFileSync('zstd', ['-d', '-c', '-q'], { input: compressed, maxBuffer: 1024 * 1024 * 1024 });
  const head = await s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: objectKey }));
  const tagging = await s3.client.send(new GetObjectTaggingCommand({ Bucket: s3.bucket, Key: objectKey }));
  const index = parseBinlogIndex((await s3.getText(binlogIndexKey(objectKey)))!, objectKey);
  return { bytes, metadata: head.Metadata ?? {}, tags: Object.fromEntries((tagging.TagSet ?? []).map((t) => [t.Key!, t.Value!])), index };
}

/** A binlog's bytes with the format description's in-use flag cleared, which the server clears in place when it closes the file. */
export function withoutInUseFlag(bytes: Buffer): Buffer {
  const copy = Buffer.from(bytes);
  if (copy.length > 22) copy.writeUInt16LE(copy.readUInt16LE(21) & ~1, 21);
  return copy;
}
