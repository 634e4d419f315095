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
/**
 * pax headers ('x', 'g') and GNU long names and link names ('L', 'K'): pg_basebackup writes plain ustar and never
 * these. tar reads them as overriding the next entry's name, size or link (the last of several winning), which a
 * reader of the ustar header alone would not see, so an archive holding one is refused whole.
 */
const EXTENSION_TYPES = new Set(['x', 'g', 'L', 'K']);
/** POSIX ustar's magic and version, as pg_basebackup writes them; GNU's older format reads the prefix field otherwise. */
const USTAR_MAGIC = Buffer.from('ustar\u000000', 'latin1');

/**
 * Why an entry may not be unpacked into a data directory, or undefined. Besides links, devices and names outside the
 * archive's root: a tablespace_map that names any tablespace, and anything under pg_tblspc, from which PostgreSQL
 * makes links to any directory.
 */
function unsafeEntry(name: string, type: string, size: number): string | undefined {
  if (EXTENSION_TYPES.has(type)) return `a pax or GNU extension header (tar type '${type}'), which pg_basebackup never writes`;
  const plain = name.replace(/\/+$/, '');
  if (!PLAIN_TYPES.has(type) || plain.startsWith('/') || plain.split('/').includes('..') || (plain === '' && type !== '5')) return `'${name}' (tar type '${type}')`;
  // pg_basebackup writes an empty tablespace_map for a server without tablespaces: it names no directory.
  if ((plain === 'tablespace_map' && size > 0) || plain.startsWith('pg_tblspc/')) return `'${name}' (a tablespace, which would link the data directory to another directory)`;
  return undefined;
}

export interface TarEntry {
  readonly name: string;
  readonly size: number;
}

function field(header: Buffer, offset: number, length: number): string {
  const raw = header.subarray(offset, offset + length);
  const end = raw.indexOf(0);
  return raw.subarray(0, end === -1 ? length : end).toString('utf8');
}

/** A size field: octal digits, or base-256 (the high bit set) for sizes of 8 GiB and more; undefined when it is neither. */
function sizeField(header: Buffer): number | undefined {
  if (header[124] & 0x80) return Number(header.subarray(125, 136).readBigUInt64BE(3));
  const text = field(header, 124, 12).trim();
  if (!/^[0-7]*$/.test(text)) return undefined;
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
  /** Set when a header does not read as POSIX ustar: everything after it is ignored. */
  problem?: string;
  /**
   * Set at the first entry that is not a plain file or directory under a relative name inside the archive's root (an
   * absolute name, a '..', a link, a device, a pax or GNU extension header, a tablespace): what a data directory's tar
   * from pg_basebackup never holds, and unpacking must not write. Nothing after it is read.
   */
  unsafe?: string;

  private pending: Buffer = Buffer.alloc(0);
  /** Bytes of the current entry's data (padded to whole blocks) still to pass. */
  private remaining = 0;
  private current?: { name: string; type: string; size: number; chunks: Buffer[]; keep: boolean; taken: number };
  private zeroBlocks = 0;

  feed(chunk: Buffer): void {
    this.bytes += chunk.length;
    if (this.problem || this.unsafe || this.ended) return;
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    let at = 0;
    while (!this.problem && !this.unsafe && !this.ended) {
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
    if (this.unsafe) return `pg_basebackup's tar holds ${this.unsafe}: a restore refuses it`;
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
    const size = sizeField(block);
    if (!block.subarray(257, 265).equals(USTAR_MAGIC) || size === undefined) {
      this.problem = `a header at byte ${this.bytes - this.pending.length} is not a POSIX ustar header`;
      return;
    }
    const prefix = field(block, 345, 155);
    const name = prefix ? `${prefix}/${field(block, 0, 100)}` : field(block, 0, 100);
    const entry = name.replace(/^\.\//, '');
    this.entries.push({ name: entry, size });
    const unsafe = unsafeEntry(entry, type, size);
    if (unsafe) {
      // Nothing after it is read: the archive is refused whole.
      this.unsafe ??= unsafe;
      return;
    }
    this.current = { name: entry, type, size, chunks: [], keep: KEPT.has(entry), taken: 0 };
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
    if (current.keep) this.kept.set(current.name, Buffer.concat(current.chunks));
    this.current = undefined;
  }
}
