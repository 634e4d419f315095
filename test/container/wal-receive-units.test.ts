/**
 * The receiver's reading of its spool, without a server: which files are finished, and how much of a zero-padded
 * `.partial` holds WAL (the length a received partial is stored with).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultSlotName } from '../../container/src/commands/wal-receive';
import { WAL_PAGE_BYTES, readSpool, segmentOfPartial, writtenLength } from '../../container/src/wal/spool';

jest.setTimeout(30_000);

const SEGMENT_BYTES = 16 * 1024 * 1024;
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'restorable-wal-spool-units-'));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A segment-sized file: `pages` pages of WAL (each with a non-zero header), then `tail` more bytes, then zeros. */
function partial(name: string, pages: number, tail: Buffer = Buffer.alloc(0), size = 2 * 1024 * 1024): string {
  const bytes = Buffer.alloc(size);
  for (let p = 0; p < pages; p++) {
    bytes.writeUInt16LE(0xd110, p * WAL_PAGE_BYTES); // a page's magic number
    bytes.fill(0x5a, p * WAL_PAGE_BYTES + 40, (p + 1) * WAL_PAGE_BYTES - 16); // records, ending with zeros of their own
  }
  tail.copy(bytes, pages * WAL_PAGE_BYTES);
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

describe('writtenLength', () => {
  it('is 0 for a freshly padded file', async () => {
    expect(await writtenLength(partial('empty.partial', 0, undefined, SEGMENT_BYTES))).toBe(0);
  });

  it('ends just past the last byte that is not zero, however many whole pages come before it', async () => {
    for (const pages of [1, 2, 3, 100, 129, 255]) {
      expect({ pages, length: await writtenLength(partial('p.partial', pages)) })
        .toEqual({ pages, length: pages * WAL_PAGE_BYTES - 16 });
    }
  });

  it('counts a page being written: its header and what follows, up to the last non-zero byte', async () => {
    const tail = Buffer.from([0x10, 0xd1, 0, 0, 7, 0, 0, 0, 0, 0, 0, 3]);
    expect(await writtenLength(partial('q.partial', 5, tail))).toBe(5 * WAL_PAGE_BYTES + tail.length);
  });

  it('reads a whole segment as whole', async () => {
    const full = partial('full.partial', SEGMENT_BYTES / WAL_PAGE_BYTES, undefined, SEGMENT_BYTES);
    expect(await writtenLength(full)).toBe(SEGMENT_BYTES - 16);
  });

  it('grows with every byte written, so that each stored partial is a new name', async () => {
    const lengths: number[] = [];
    for (let n = 1; n <= 4; n++) lengths.push(await writtenLength(partial('g.partial', 2, Buffer.alloc(n * 8, 0x11))));
    expect(lengths).toEqual([8, 16, 24, 32].map((n) => 2 * WAL_PAGE_BYTES + n));
  });
});

describe('readSpool', () => {
  it('sorts what pg_receivewal writes into finished files (history first) and partials, and ignores anything else', () => {
    const spool = mkdtempSync(join(dir, 'spool-'));
    for (const name of ['000000020000000000000004', '00000002.history', '000000020000000000000003', '000000020000000000000005.partial',
      '000000010000000000000009.partial', '00000003.history.tmp', '000000020000000000000006.partial.tmp', 'README', '.hidden']) {
      writeFileSync(join(spool, name), '');
    }
    expect(readSpool(spool)).toEqual({
      finished: ['00000002.history', '000000020000000000000003', '000000020000000000000004'],
      partials: ['000000010000000000000009.partial', '000000020000000000000005.partial'],
    });
    expect(segmentOfPartial('000000020000000000000005.partial')).toBe('000000020000000000000005');
  });
});

describe('the default slot', () => {
  it('is restorable_{source} with - as _, a name PostgreSQL accepts', () => {
    expect(defaultSlotName('orders-db')).toBe('restorable_orders_db');
    expect(defaultSlotName('a'.repeat(48))).toMatch(/^[a-z0-9_]{1,63}$/);
  });
});
