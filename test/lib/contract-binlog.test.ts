/** The binlog contract's names and parsers: what the streamer writes is untrusted input to every reader. */
import {
  BinlogStreamReason, ContractError, binlogIndexKey, binlogObjectKey, binlogPartialName, parseBinlogIndex, parseBinlogObjectName, parseBinlogStream,
} from '../../lib/contract';

const stream = {
  formatVersion: 1, source: 'shop-db', stream: '2026-12-02_15-40-00Z', startedAt: '2026-12-02T15:40:00.000Z', serverId: 1,
  serverVersion: '10.11.19-MariaDB', firstFile: 'binlog.000001', reason: BinlogStreamReason.FIRST_START, detail: 'the spool held no stream',
};

test('object names and their index keys', () => {
  const key = binlogObjectKey('p/', 'shop-db', stream.stream, binlogPartialName('binlog.000007', 0x1234));
  expect(key).toBe('p/shop-db/binlog/2026-12-02_15-40-00Z/binlog.000007.partial.000000001234.zst.age');
  expect(binlogIndexKey(key)).toBe('p/shop-db/binlog/2026-12-02_15-40-00Z/binlog.000007.partial.000000001234.index.json');
  expect(parseBinlogObjectName('binlog.000007.partial.000000001234')).toEqual({ file: 'binlog.000007', partialBytes: 0x1234 });
  expect(parseBinlogObjectName('binlog.000007')).toEqual({ file: 'binlog.000007' });
  expect(parseBinlogObjectName('../binlog.000007')).toBeUndefined();
});

test('a stream.json is read back as written', () => {
  expect(parseBinlogStream(JSON.stringify(stream), 's')).toEqual(stream);
});

test.each([
  ['detail', 'purged\u001b[2J'], ['detail', 'a\nforged: status line'], ['serverVersion', '10.11\r'], ['detail', 'x'.repeat(2001)], ['reason', 'whatever'],
  ['stream', '../x'], ['firstFile', 'binlog'],
])('a stream.json with a bad %s is refused in words', (field, value) => {
  expect(() => parseBinlogStream(JSON.stringify({ ...stream, [field]: value }), 's3://b/k')).toThrow(ContractError);
  expect(() => parseBinlogStream(JSON.stringify({ ...stream, [field]: value }), 's3://b/k')).toThrow(`binlog stream s3://b/k has an invalid ${field}`);
});

test('an index whose marks go back in time or past its groups is refused', () => {
  const index = {
    formatVersion: 1, source: 'shop-db', stream: stream.stream, file: 'binlog.000001', key: 'k', size: 1000, sha256: 'a'.repeat(64), serverId: 1,
    created: '2026-12-02T15:40:00Z', closed: true, groupsEnd: 900, marks: [[100, 256], [101, 500]],
  };
  expect(parseBinlogIndex(JSON.stringify(index), 'i').marks).toEqual([[100, 256], [101, 500]]);
  expect(() => parseBinlogIndex(JSON.stringify({ ...index, marks: [[101, 256], [100, 500]] }), 'i')).toThrow('out of order');
  expect(() => parseBinlogIndex(JSON.stringify({ ...index, marks: [[100, 950]] }), 'i')).toThrow('out of order');
  expect(() => parseBinlogIndex(JSON.stringify({ ...index, groupsEnd: 1001 }), 'i')).toThrow('size or groupsEnd');
});
