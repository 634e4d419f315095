/**
 * Reads a tar stream as it passes, without holding it: the names and sizes of its entries, the contents of the few small
 * files a base backup is judged by (PG_VERSION, backup_label, global/pg_control), and whether the archive ended with
 * its end-of-archive blocks. A tar cut short (a server that went away, a killed pg_basebackup) has no end marker.
 */

const BLOCK = 512;
/** Small files whose contents are kept: a base backup is read from these. */
const KEPT = new Set(['PG_VERSION', 'backup_label', 'global/pg_control']);
const KEPT_MAX = 64 * 1024;
/** Entry types of plain files ('0', or NUL in old archives, read as '0') and directories. */
const PLAIN_TYPES = new Set(['0', '5']);

export interface TarEntry {
  readonly name: string;
  readonly size: number;
}

function field(header: Buffer, offset: number, length: number): string {
  const raw = header.subarray(offset, offset + length);
  const end = raw.indexOf(0);
  return raw.subarray(0, end === -1 ? length : end).toString('utf8');
}

/** A size field: octal digits, or base-256 (the high bit set) for sizes of 8 GiB and more. */
function sizeField(header: Buffer): number {
  if (header[124] & 0x80) return Number(header.subarray(125, 136).readBigUInt64BE(3));
  const text = field(header, 124, 12).trim();
  return text === '' ? 0 : parseInt(text, 8);
}

function checksumOk(header: Buffer): boolean {
  const stated = parseInt(field(header, 148, 8).trim(), 8);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : header[i];
  return stated === sum;
}

export class TarScanner {
  readonly entries: TarEntry[] = [];
  readonly kept = new Map<string, Buffer>();
  /** Bytes seen. */
  bytes = 0;
  /** Set once two zero blocks (the end of the archive) were read. */
  ended = false;
  /** Set when a header does not read as tar: everything after it is ignored. */
  problem?: string;
  /**
   * Set at the first entry that is not a plain file or directory under a relative name inside the archive's root (an
   * absolute name, a '..', a link, a device): what a data directory's tar never holds, and unpacking must not write.
   */
  unsafe?: string;

  private pending: Buffer = Buffer.alloc(0);
  /** Bytes of the current entry's data (padded to whole blocks) still to pass. */
  private remaining = 0;
  private current?: { name: string; type: string; size: number; chunks: Buffer[]; keep: boolean; taken: number };
  private zeroBlocks = 0;
  /** A pax or GNU long name for the next entry. */
  private longName?: string;

  feed(chunk: Buffer): void {
    this.bytes += chunk.length;
    if (this.problem || this.ended) return;
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    let at = 0;
    while (!this.problem && !this.ended) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, this.pending.length - at);
        if (take === 0) break;
        this.data(this.pending.subarray(at, at + take));
        at += take;
        this.remaining -= take;
        if (this.remaining === 0) this.finishEntry();
        continue;
      }
      if (this.pending.length - at < BLOCK) break;
      this.header(this.pending.subarray(at, at + BLOCK));
      at += BLOCK;
    }
    this.pending = Buffer.from(this.pending.subarray(at));
  }

  /** What makes this tar unfit as a base backup, or undefined when it is whole and holds a data directory's label. */
  baseBackupProblem(minBytes: number): string | undefined {
    if (this.problem) return `pg_basebackup's output is not a tar archive (${this.problem})`;
    if (!this.ended) return `pg_basebackup's tar ended after ${this.bytes} bytes without its end-of-archive marker: it was cut short`;
    if (this.bytes < minBytes) return `pg_basebackup's tar is ${this.bytes} bytes, under the minimum of ${minBytes}`;
    const missing = ['PG_VERSION', 'backup_label', 'global/pg_control'].filter((name) => !this.kept.has(name));
    if (missing.length) return `pg_basebackup's tar holds no ${missing.join(', ')}: it is not a base backup of a data directory`;
    return undefined;
  }

  private header(block: Buffer): void {
    if (block.every((b) => b === 0)) {
      if (++this.zeroBlocks === 2) this.ended = true;
      return;
    }
    this.zeroBlocks = 0;
    if (!checksumOk(block)) {
      this.problem = `a header at byte ${this.bytes - this.pending.length} has a bad checksum`;
      return;
    }
    const type = String.fromCharCode(block[156] || 0x30);
    const prefix = field(block, 345, 155);
    const name = this.longName ?? (prefix ? `${prefix}/${field(block, 0, 100)}` : field(block, 0, 100));
    const size = sizeField(block);
    if (type !== 'x' && type !== 'L' && type !== 'g') this.longName = undefined;
    // Metadata entries (pax headers, GNU long names) are read whole to learn the next entry's name.
    const meta = type === 'x' || type === 'L';
    const entry = name.replace(/^\.\//, '');
    this.current = { name: entry, type, size, chunks: [], keep: meta || KEPT.has(entry), taken: 0 };
    if (!meta && type !== 'g') {
      this.entries.push({ name: entry, size });
      if (!this.unsafe && (!PLAIN_TYPES.has(type) || entry.startsWith('/') || entry.split('/').includes('..'))) {
        this.unsafe = `'${entry}' (tar type '${type}')`;
      }
    }
    this.remaining = Math.ceil(size / BLOCK) * BLOCK;
    if (this.remaining === 0) this.finishEntry();
  }

  private data(chunk: Buffer): void {
    const current = this.current!;
    if (!current.keep || current.taken >= Math.min(current.size, KEPT_MAX)) return;
    const wanted = Math.min(current.size, KEPT_MAX) - current.taken;
    const part = chunk.subarray(0, wanted);
    current.chunks.push(Buffer.from(part));
    current.taken += part.length;
  }

  private finishEntry(): void {
    const current = this.current!;
    const { type } = current;
    const content = Buffer.concat(current.chunks);
    if (type === 'L') {
      this.longName = content.toString('utf8').replace(/\0.*$/s, '');
    } else if (type === 'x') {
      const path = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(content.toString('utf8'));
      if (path) this.longName = path[1];
    } else if (current.keep) {
      this.kept.set(current.name, content);
    }
    this.current = undefined;
  }
}
