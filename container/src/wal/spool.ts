/**
 * The receiver's spool: the directory pg_receivewal writes into (-D). pg_receivewal writes the segment it is
 * receiving as `{segment}.partial`, zero-padded to the segment size when it creates it, renames it to `{segment}`
 * once it is whole and flushed, and writes timeline history files whole under a temporary name first. So a segment
 * or history file under its own name is finished and may be stored and removed; the newest `.partial` is the one
 * still growing.
 */
import { readdirSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { WalFileKind, walFileKind } from '../../../lib/contract';

/** What the spool holds, by what the receiver does with it. */
export interface SpoolContents {
  /** History files, then segments, oldest first: to store and remove. */
  readonly finished: readonly string[];
  /** Unfinished segments (`{segment}.partial`), oldest first; the last is the one pg_receivewal is writing. */
  readonly partials: readonly string[];
}

export function readSpool(dir: string): SpoolContents {
  const names = readdirSync(dir).sort();
  const kind = (k: WalFileKind) => names.filter((n) => walFileKind(n) === k);
  return { finished: [...kind(WalFileKind.HISTORY), ...kind(WalFileKind.SEGMENT)], partials: kind(WalFileKind.PARTIAL) };
}

/** The segment a `.partial` file is the unfinished part of. */
export function segmentOfPartial(partial: string): string {
  return partial.slice(0, -'.partial'.length);
}

/** WAL's page size: every page pg_receivewal has written starts with a header that is not all zeros. */
export const WAL_PAGE_BYTES = 8192;

function lastNonZero(buffer: Buffer, length: number): number {
  for (let i = length - 1; i >= 0; i--) if (buffer[i] !== 0) return i;
  return -1;
}

/**
 * How much of a zero-padded `.partial` holds WAL: the offset just past its last byte that is not zero. Written pages
 * come first and each starts with a non-zero header, so the first page of zeros is found by bisection (a dozen
 * reads of one page for a 16 MiB segment), and the end within the page before it by a scan. The zeros cut off are
 * the padding (or zeros PostgreSQL wrote, which the padding puts back): the bytes up to this offset, padded with zeros
 * to the segment size, are the file as it is. 0 for a file that holds nothing yet.
 */
export async function writtenLength(path: string): Promise<number> {
  const file = await open(path, 'r');
  try {
    const size = (await file.stat()).size;
    const page = Buffer.alloc(WAL_PAGE_BYTES);
    const read = async (index: number): Promise<number> => (await file.read(page, 0, WAL_PAGE_BYTES, index * WAL_PAGE_BYTES)).bytesRead;
    const isZero = async (index: number): Promise<boolean> => lastNonZero(page, await read(index)) < 0;
    // Invariant: pages before `lo` hold WAL, pages from `hi` on are zeros.
    let lo = 0;
    let hi = Math.ceil(size / WAL_PAGE_BYTES);
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      if (await isZero(mid)) hi = mid;
      else lo = mid + 1;
    }
    if (lo === 0) return 0;
    const last = lastNonZero(page, await read(lo - 1));
    return (lo - 1) * WAL_PAGE_BYTES + last + 1;
  } finally {
    await file.close();
  }
}
