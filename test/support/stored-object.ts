/**
 * Damage done to the S3 emulator's own copy of an object, the way disk rot or a bad copy would:
 * s3rver's filesystem store keeps each object as `{dataDir}/{bucket}/{key dirs}/{name}._S3rver_object`
 * beside `{name}._S3rver_metadata.json`. The data directory is read from the emulator's command line.
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { S3Emulator } from './s3rver';

function emulatorDataDir(s3: S3Emulator): string {
  for (const pid of readdirSync('/proc').filter((entry) => /^\d+$/.test(entry))) {
    let args: string[];
    try {
      args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (args.some((a) => a.endsWith('s3rver.js') || a.endsWith('s3rver-main.cjs')) && args[args.indexOf('-p') + 1] === String(s3.port)) return args[args.indexOf('-d') + 1];
  }
  throw new Error(`no s3rver process listening on port ${s3.port} was found in /proc`);
}

function storedPath(s3: S3Emulator, key: string, resource: 'object' | 'metadata.json'): string {
  const parts = key.split('/');
  const name = parts.pop()!;
  return join(emulatorDataDir(s3), s3.bucket, ...parts, `${name}._S3rver_${resource}`);
}

/** Flips one bit of the byte at `offset` (from the end when negative) in the stored copy. */
export function flipStoredByte(s3: S3Emulator, key: string, offset: number): void {
  const file = storedPath(s3, key, 'object');
  const bytes = readFileSync(file);
  const at = offset < 0 ? bytes.length + offset : offset;
  bytes[at] ^= 0x01;
  writeFileSync(file, bytes);
}

/** Cuts the stored copy to its first `length` bytes, keeping the emulator's recorded length consistent. */
export function truncateStored(s3: S3Emulator, key: string, length: number): void {
  replaceStored(s3, key, readFileSync(storedPath(s3, key, 'object')).subarray(0, length));
}

/** Replaces the stored copy's bytes wholesale (for example with another backup's). */
export function replaceStored(s3: S3Emulator, key: string, bytes: Buffer): void {
  writeFileSync(storedPath(s3, key, 'object'), bytes);
  const metadataFile = storedPath(s3, key, 'metadata.json');
  const metadata = JSON.parse(readFileSync(metadataFile, 'utf8')) as Record<string, string>;
  metadata['content-length'] = String(bytes.length);
  writeFileSync(metadataFile, JSON.stringify(metadata));
}

/** Adds `bytes` after the end of the stored copy, as a bad copy or a concatenation would. */
export function appendStored(s3: S3Emulator, key: string, bytes: Buffer): void {
  replaceStored(s3, key, Buffer.concat([readFileSync(storedPath(s3, key, 'object')), bytes]));
}
