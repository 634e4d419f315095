/**
 * The point-in-time restore's guards against a hostile archive, without a server: a base backup's tar is refused when
 * it holds what tar and the restore would read differently (pax and GNU extension headers) or what would reach out of
 * the data directory (links, tablespaces); the files the restore writes never follow a link; and what is decompressed
 * (a base backup, a WAL file, a received partial) and listed (the WAL plan) stops at its bound.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { BaseBackupManifest, PITR_TEST_FILES, WAL_METADATA } from '../../lib/contract';
import { fetchWalFile } from '../../container/src/commands/wal-fetch';
import { writeServerConfig } from '../../container/src/pitr/restore';
import { notPlain, unpackBaseBackup } from '../../container/src/pitr/select';
import { TarScanner } from '../../container/src/pitr/tar';
import { MAX_PLANNED_OBJECTS, planWal } from '../../container/src/pitr/wal-feed';
import { writeServerConfig as writeTestServerConfig } from '../../container/src/restore-test/pitr';
import { makeAgeKey } from '../support';

const BLOCK = 512;
const dirs: string[] = [];
const scratch = (): string => {
  const dir = mkdtempSync(join(tmpdir(), 'restorable-pitr-tar-'));
  dirs.push(dir);
  return dir;
};
afterAll(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

/** One tar header block, as ustar (or with another magic) writes it. */
function header(name: string, type: string, size: number, options: { link?: string; magic?: string } = {}): Buffer {
  const block = Buffer.alloc(BLOCK);
  block.write(name, 0, 100, 'utf8');
  block.write('0000644\0', 100, 'latin1');
  block.write('0001750\0', 108, 'latin1');
  block.write('0001750\0', 116, 'latin1');
  block.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
  block.write('14712345670\0', 136, 'latin1');
  block.write(type, 156, 'latin1');
  if (options.link) block.write(options.link, 157, 100, 'utf8');
  block.write(options.magic ?? 'ustar\u000000', 257, 'latin1');
  block.fill(32, 148, 156);
  let sum = 0;
  for (const b of block) sum += b;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return block;
}
const pad = (data: Buffer) => Buffer.concat([data, Buffer.alloc((BLOCK - (data.length % BLOCK)) % BLOCK)]);
const file = (name: string, data: Buffer | string) => Buffer.concat([header(name, '0', Buffer.byteLength(data)), pad(Buffer.from(data))]);
const END = Buffer.alloc(2 * BLOCK);

/**
 * The archive of the review: a pax header says the next entry is empty, while that entry's ustar header says 1024
 * bytes. GNU tar takes the pax size and so reads the symbolic link hidden in those bytes; a scanner of ustar sizes
 * alone skips over it.
 */
function paxSmuggledLink(victim: string): Buffer {
  const pax = Buffer.from('9 size=0\n');
  const hidden = pad(Buffer.concat([header('recovery.signal', '2', 0, { link: victim }), Buffer.alloc(BLOCK)]));
  return Buffer.concat([
    file('PG_VERSION', '15\n'),
    header('PaxHeaders/cover', 'x', pax.length), pad(pax),
    header('cover', '0', hidden.length), hidden,
    END,
  ]);
}

function scan(tar: Buffer): TarScanner {
  const scanner = new TarScanner();
  scanner.feed(tar);
  return scanner;
}

test('the tar scanner refuses pax and GNU extension headers, links, tablespaces and headers that are not POSIX ustar', () => {
  expect(scan(paxSmuggledLink('/victim')).unsafe).toBe("a pax or GNU extension header (tar type 'x'), which pg_basebackup never writes");
  for (const type of ['g', 'L', 'K']) expect(scan(Buffer.concat([header('././@LongLink', type, 0), END])).unsafe).toMatch(`tar type '${type}'`);
  expect(scan(Buffer.concat([file('tablespace_map', '16384 /etc\n'), END])).unsafe).toMatch(/'tablespace_map' \(a tablespace/);
  expect(scan(Buffer.concat([header('pg_tblspc/', '5', 0), header('pg_tblspc/16384', '2', 0, { link: '/etc' }), END])).unsafe).toMatch(/'pg_tblspc\/16384'/);
  expect(scan(Buffer.concat([header('pg_tblspc/', '5', 0), header('pg_tblspc/16384/', '5', 0), END])).unsafe).toMatch(/'pg_tblspc\/16384\/' \(a tablespace/);
  expect(scan(Buffer.concat([header('escape', '2', 0, { link: '/etc' }), END])).unsafe).toBe("'escape' (tar type '2')");
  // GNU's older format keeps times where ustar keeps a name's prefix: tar and this scanner would read names apart.
  const gnu = scan(Buffer.concat([header('PG_VERSION', '0', 0, { magic: 'ustar  \0' }), END]));
  expect(gnu.problem).toMatch(/is not a POSIX ustar header/);
  const plain = scan(Buffer.concat([header('pg_tblspc/', '5', 0), header('global/', '5', 0), file('PG_VERSION', '15\n'), file('tablespace_map', ''), END]));
  expect(plain.unsafe).toBeUndefined();
  expect(plain.problem).toBeUndefined();
  expect(plain.ended).toBe(true);
  expect(plain.baseBackupProblem(0)).toMatch(/holds no backup_label, global\/pg_control/);
  expect(scan(Buffer.concat([file('tablespace_map', '16384 /etc\n'), END])).baseBackupProblem(0)).toMatch(/pg_basebackup's tar holds 'tablespace_map'/);
});

/** A base backup stored as the agent stores one (zstd, then age), served by a mocked S3, and its manifest. */
function stored(tar: Buffer, recipient: string, tarSize = tar.length): { s3: S3Client; manifest: BaseBackupManifest } {
  const bytes = execFileSync('sh', ['-c', `zstd -q -c | age -r ${recipient}`], { input: tar });
  const s3 = new S3Client({ region: 'us-east-1' });
  mockClient(s3).on(GetObjectCommand).callsFake(async () => ({ Body: Readable.from([bytes]), ContentLength: bytes.length }));
  const manifest = { key: 'src/base/b.tar.zst.age', size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex'), tarSize } as unknown as BaseBackupManifest;
  return { s3, manifest };
}

test('a base backup with a link hidden behind a pax header is refused: nothing lands outside the data directory, and no link inside it', async () => {
  const key = makeAgeKey();
  const dir = scratch();
  const victim = join(dir, 'victim');
  writeFileSync(victim, 'precious\n');
  const data = join(dir, 'data');
  mkdirSync(data, { mode: 0o700 });
  const { s3, manifest } = stored(paxSmuggledLink(victim), key.recipient);
  await expect(unpackBaseBackup(s3, 'b', { key: manifest.key, manifest }, key.identityFile, data))
    .rejects.toThrow("s3://b/src/base/b.tar.zst.age holds a pax or GNU extension header (tar type 'x'), which pg_basebackup never writes, " +
      'which is no part of a data directory: refusing to unpack it');
  expect(() => lstatSync(join(data, 'recovery.signal'))).toThrow(/ENOENT/);
  expect(readFileSync(victim, 'utf8')).toBe('precious\n');
  expect(readdirSync(dir).sort()).toEqual(['data', 'victim']);
});

test('a base backup whose tar runs past the size its manifest records is stopped there', async () => {
  const key = makeAgeKey();
  const data = join(scratch(), 'data');
  mkdirSync(data, { mode: 0o700 });
  const tar = Buffer.concat([file('PG_VERSION', '15\n'), file('base/big', Buffer.alloc(4 * 1024 * 1024, 7)), END]);
  const { s3, manifest } = stored(tar, key.recipient, 64 * 1024);
  await expect(unpackBaseBackup(s3, 'b', { key: manifest.key, manifest }, key.identityFile, data))
    .rejects.toThrow(`s3://b/src/base/b.tar.zst.age unpacks to more than the ${64 * 1024} bytes of tar its manifest records: refusing the rest`);
});

test('an unpacked data directory holding anything but files and directories is found, without following links', () => {
  const data = scratch();
  mkdirSync(join(data, 'global'));
  writeFileSync(join(data, 'global', 'pg_control'), 'x');
  expect(notPlain(data)).toBeUndefined();
  symlinkSync('/etc', join(data, 'global', 'escape'));
  expect(notPlain(data)).toBe(`${join(data, 'global', 'escape')} (a symbolic link)`);
});

test('the restore\'s own files in the data directory replace a link there instead of writing through it; no logical replication runs', () => {
  const dir = scratch();
  const data = join(dir, 'data');
  const wal = join(dir, 'wal');
  mkdirSync(data);
  mkdirSync(wal);
  for (const name of ['victim-signal', 'victim-conf', 'victim-hba']) writeFileSync(join(dir, name), 'precious\n');
  symlinkSync(join(dir, 'victim-signal'), join(data, 'recovery.signal'));
  symlinkSync(join(dir, 'victim-conf'), join(data, 'postgresql.conf.from-base-backup'));
  // A dangling link reads as absent: it is replaced too.
  symlinkSync(join(dir, 'nowhere'), join(data, 'pg_ident.conf'));
  writeServerConfig(data, wal, 'latest', undefined);
  for (const name of ['victim-signal', 'victim-conf', 'victim-hba']) expect(readFileSync(join(dir, name), 'utf8')).toBe('precious\n');
  expect(existsSync(join(dir, 'nowhere'))).toBe(false);
  for (const name of ['recovery.signal', 'postgresql.conf', 'pg_ident.conf', 'pg_hba.conf']) expect(lstatSync(join(data, name)).isFile()).toBe(true);
  expect(readFileSync(join(data, 'postgresql.conf'), 'utf8')).toContain("max_logical_replication_workers = '0'");

  const test = scratch();
  mkdirSync(join(test, PITR_TEST_FILES.dataDir));
  writeTestServerConfig({ dir: test, to: 'latest', maxGapSeconds: 60, waitSeconds: 60 }, 5432);
  expect(readFileSync(join(test, PITR_TEST_FILES.config), 'utf8')).toContain("max_logical_replication_workers = '0'");
});

/** A WAL object as wal-push stores one, recording `plaintextSize` whatever it holds. */
function walObject(plaintext: Buffer, recipient: string, plaintextSize: number): S3Client {
  const bytes = execFileSync('sh', ['-c', `zstd -q -c | age -r ${recipient}`], { input: plaintext });
  const s3 = new S3Client({ region: 'us-east-1' });
  mockClient(s3).on(GetObjectCommand).callsFake(async () => ({
    Body: Readable.from([bytes]), ContentLength: bytes.length,
    Metadata: {
      [WAL_METADATA.plaintextSha256]: createHash('sha256').update(plaintext).digest('hex'),
      [WAL_METADATA.sha256]: createHash('sha256').update(bytes).digest('hex'),
      [WAL_METADATA.plaintextSize]: String(plaintextSize),
    },
  }));
  return s3;
}

describe('fetching a WAL file stops at its recorded size', () => {
  const key = makeAgeKey();
  const identity = async () => ({ file: key.identityFile, release: () => undefined });
  const name = '000000010000000000000003';

  test('one that decompresses past it is stopped as it goes, and leaves nothing', async () => {
    const dir = scratch();
    const s3 = walObject(Buffer.alloc(8 * 1024 * 1024), key.recipient, 4096);
    await expect(fetchWalFile(s3, 'b', `src/wal/${name}.zst.age`, name, join(dir, name), identity))
      .rejects.toThrow(`${name} from s3://b/src/wal/${name}.zst.age decompresses to more than the 4096 bytes recorded when it was archived: stopped there`);
    expect(readdirSync(dir)).toEqual([]);
  });

  test('a recorded size over 1 GiB, or over the segment for a received partial, is refused before anything is read', async () => {
    const dir = scratch();
    await expect(fetchWalFile(walObject(Buffer.from('x'), key.recipient, 2 * 1024 ** 3), 'b', 'k', name, join(dir, name), identity))
      .rejects.toThrow(`s3://b/k records a size of ${2 * 1024 ** 3} bytes (x-amz-meta-plaintext-size), more than the ${1024 ** 3} bytes`);
    await expect(fetchWalFile(walObject(Buffer.alloc(2048), key.recipient, 2048), 'b', 'k', name, join(dir, name), identity, 1024))
      .rejects.toThrow('s3://b/k records a size of 2048 bytes (x-amz-meta-plaintext-size), more than the 1024 bytes');
    expect(readdirSync(dir)).toEqual([]);
  });

  test('one within its size is fetched as before', async () => {
    const dir = scratch();
    const plaintext = Buffer.alloc(64 * 1024, 3);
    const result = await fetchWalFile(walObject(plaintext, key.recipient, plaintext.length), 'b', 'k', name, join(dir, name), identity);
    expect(result.size).toBe(plaintext.length);
    expect(readFileSync(join(dir, name)).equals(plaintext)).toBe(true);
  });
});

test('the WAL plan stops listing at its cap, in words', async () => {
  const s3 = new S3Client({ region: 'us-east-1' });
  let page = 0;
  mockClient(s3).on(ListObjectsV2Command).callsFake(async () => ({
    Contents: Array.from({ length: 1000 }, (_, i) => ({ Key: `src/wal/junk-${page}-${i}` })),
    IsTruncated: true, NextContinuationToken: `t${++page}`,
  }));
  await expect(planWal(s3, 'b', undefined, 'src', '000000010000000000000001', undefined))
    .rejects.toThrow(`s3://b/src/wal/ holds more than ${MAX_PLANNED_OBJECTS} objects from 000000010000000000000001 on: more than a restore lists`);
  expect(page).toBe(MAX_PLANNED_OBJECTS / 1000 + 1);
});
