/**
 * The local side of WAL archiving: the digest of a WAL file as PostgreSQL wrote it, and a verified file put in place
 * the way PostgreSQL expects of restore_command, whole or not at all.
 */
import { createHash } from 'node:crypto';
import { createReadStream, closeSync, fsyncSync, openSync, renameSync } from 'node:fs';
import { dirname } from 'node:path';
import { Transform, TransformCallback } from 'node:stream';

export interface FileDigest {
  readonly size: number;
  /** SHA-256, hex. */
  readonly sha256: string;
}

/** Hashes and counts what passes through it. */
export class DigestTap extends Transform {
  private readonly hash = createHash('sha256');
  private size = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    callback(null, chunk);
  }

  /** Once the stream ended: what passed. */
  digest(): FileDigest {
    return { size: this.size, sha256: this.hash.digest('hex') };
  }
}

/** The size and SHA-256 of a file, read once. */
export async function digestFile(path: string): Promise<FileDigest> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { size, sha256: hash.digest('hex') };
}

function fsyncPath(path: string, flags: string): void {
  const fd = openSync(path, flags);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Moves a complete, verified file to `dest` (replacing what is there) so that it survives a crash: the file's data
 * is flushed before the rename, and the directory's entry after it. A reader of `dest` sees the old file or the new
 * one, never a part.
 */
export function publishFile(tmp: string, dest: string): void {
  fsyncPath(tmp, 'r');
  renameSync(tmp, dest);
  fsyncPath(dirname(dest), 'r');
}
