/** The names WAL archiving accepts and where it stores them, and the operands wal-push and wal-fetch take. */
import { WalFileKind, walFileKind, walFileProblem, walKey } from '../../lib/contract';
import { parseCommandArgs, usage } from '../../container/src/shared/args';
import { WAL_FETCH_COMMAND, WalNotArchived, WAL_FETCH_FAILED_EXIT, walFetchExitCode } from '../../container/src/commands/wal-fetch';
import { WAL_PUSH_COMMAND } from '../../container/src/commands/wal-push';
import { AgentError, UsageError } from '../../container/src/shared/errors';

it('knows the four kinds of file PostgreSQL archives, and nothing else', () => {
  expect(walFileKind('000000010000000A000000FF')).toBe(WalFileKind.SEGMENT);
  expect(walFileKind('000000010000000A000000FF.partial')).toBe(WalFileKind.PARTIAL);
  expect(walFileKind('0000000A.history')).toBe(WalFileKind.HISTORY);
  expect(walFileKind('000000010000000000000002.00000028.backup')).toBe(WalFileKind.BACKUP_LABEL);
  for (const bad of ['', 'postmaster.pid', '00000001000000000000001', '000000010000000000000001a', '0000000100000000000000010',
    '000000010000000000000001.history', '0000000a.history', '../000000010000000000000001', 'pg_wal/000000010000000000000001',
    '000000010000000000000001.partial.zst.age', 'RECOVERYXLOG']) {
    expect({ bad, kind: walFileKind(bad) }).toEqual({ bad, kind: undefined });
    expect(walFileProblem(bad)).toContain('is not a WAL file name PostgreSQL archives');
  }
});

it('stores WAL under {prefix}{source}/wal/ with the stored suffix', () => {
  expect(walKey(undefined, 'orders-db', '000000010000000000000001')).toBe('orders-db/wal/000000010000000000000001.zst.age');
  expect(walKey('team/', 'orders-db', '00000002.history')).toBe('team/orders-db/wal/00000002.history.zst.age');
  expect(walKey('/team', 'orders-db', '00000002.history')).toBe('team/orders-db/wal/00000002.history.zst.age');
});

it('takes its operands by position, anywhere among the options, exactly as many as it names', () => {
  const args = parseCommandArgs(WAL_FETCH_COMMAND, ['--source', 's', '000000010000000000000001', '--bucket', 'b', 'pg_wal/RECOVERYXLOG']);
  expect(args.positional('file')).toBe('000000010000000000000001');
  expect(args.positional('dest')).toBe('pg_wal/RECOVERYXLOG');
  expect(() => parseCommandArgs(WAL_FETCH_COMMAND, ['--source', 's', '--bucket', 'b', '000000010000000000000001'])).toThrow(/expected <file> <dest>, got '000000010000000000000001'/);
  expect(() => parseCommandArgs(WAL_PUSH_COMMAND, ['--source', 's', '--bucket', 'b'])).toThrow(UsageError);
  expect(() => parseCommandArgs(WAL_PUSH_COMMAND, ['a', 'b', '--source', 's', '--bucket', 'b'])).toThrow(/expected <path>, got 'a' 'b'/);
  expect(usage(WAL_PUSH_COMMAND)).toMatch(/^usage: restorable wal-push <path> \[options\]/);
  expect(usage(WAL_PUSH_COMMAND)).toContain('RESTORABLE_RECIPIENT');
});

it('commands without operands still refuse them', () => {
  expect(() => parseCommandArgs({ name: 'x', summary: '', options: {} }, ['stray'])).toThrow(UsageError);
});

it('wal-fetch exits 1 only for a file not in the archive; anything else stops PostgreSQL\'s recovery', () => {
  expect(walFetchExitCode(new WalNotArchived('not there'))).toBe(1);
  expect(WAL_FETCH_FAILED_EXIT).toBeGreaterThan(125);
  for (const err of [new UsageError('bad'), new AgentError('damaged'), new Error('bug')]) expect(walFetchExitCode(err)).toBe(WAL_FETCH_FAILED_EXIT);
});
