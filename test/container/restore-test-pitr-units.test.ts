/**
 * The point-in-time restore test's own rules, without a server: which target --pitr-to means, when a recovery is not
 * close enough to its target, and the configuration the server gets in place of the base backup's own.
 */
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PITR_TEST_FILES, parseRestoreTestPointer, restoreTestPitrProblem } from '../../lib/contract';
import { RESTORE_TEST_COMMAND } from '../../container/src/commands/restore-test';
import { RECENT_SECONDS, pitrTestSettings, recoveryProblems, writeServerConfig } from '../../container/src/restore-test/pitr';
import { parseCommandArgs } from '../../container/src/shared/args';

const NOW = new Date('2026-12-02T13:00:00.000Z');
const settings = (...argv: string[]) => pitrTestSettings(parseCommandArgs(RESTORE_TEST_COMMAND, ['--source', 'ledger', '--bucket', 'b', ...argv]), NOW);

test('--pitr-to: recent (the default) is a minute before the test, latest and an ISO time as given; anything else is refused', () => {
  expect(settings()).toBeUndefined();
  expect(settings('--pitr-dir', '/restore/pitr')).toEqual({ dir: '/restore/pitr', to: new Date(NOW.getTime() - RECENT_SECONDS * 1000).toISOString(), maxGapSeconds: 3600, waitSeconds: 21600 });
  expect(settings('--pitr-dir', 'x', '--pitr-to', 'latest')?.to).toBe('latest');
  expect(settings('--pitr-dir', 'x', '--pitr-to', '2026-12-02T12:00:00.250+01:00', '--pitr-max-gap', '60')).toMatchObject({ to: '2026-12-02T12:00:00.250+01:00', maxGapSeconds: 60 });
  expect(() => settings('--pitr-dir', 'x', '--pitr-to', 'yesterday')).toThrow("--pitr-to must be recent, latest or an ISO 8601 time with its zone, such as 2026-12-02T13:45:00Z (got 'yesterday')");
  expect(() => settings('--pitr-dir', 'x', '--pitr-to', '2026-12-02 12:00:00')).toThrow(/--pitr-to must be recent, latest/);
  expect(() => settings('--pitr-dir', 'x', '--pitr-max-gap', '0')).toThrow("--pitr-max-gap must be a whole number of seconds above 0 (got '0')");
  expect(() => settings('--pitr-to', 'latest')).toThrow('--pitr-to is for a point-in-time restore test: give --pitr-dir too');
});

test('a recovery is judged against its target: none replayed, past the target, or further before it than allowed, each in words', () => {
  const pitr = { targetTime: '2026-12-02T12:59:00.000Z', recoveredTo: '2026-12-02T12:58:59.500000Z', baseBackupKey: 'k', walFilesReplayed: 3, restoreSeconds: 12 };
  const limits = { to: pitr.targetTime, maxGapSeconds: 60 };
  expect(recoveryProblems(pitr, limits)).toEqual([]);
  expect(recoveryProblems({ ...pitr, recoveredTo: '' }, limits)).toEqual([expect.stringContaining('does not say which transaction recovery replayed last')]);
  expect(recoveryProblems({ ...pitr, recoveredTo: '2026-12-02T12:59:00.001Z' }, limits))
    .toEqual(['recovered to 2026-12-02T12:59:00.001Z, after the target 2026-12-02T12:59:00.000Z: recovery went past the time it was asked to stop at']);
  expect(recoveryProblems({ ...pitr, recoveredTo: '2026-12-02T12:57:00Z' }, limits)).toEqual([
    'recovered to 2026-12-02T12:57:00Z, 120 s before the target 2026-12-02T12:59:00.000Z, more than the 60 s allowed (--pitr-max-gap): ' +
    'the archive holds no transaction nearer the target; is WAL still being archived?']);
  expect(recoveryProblems({ ...pitr, targetTime: 'latest', recoveredTo: '2026-12-01T00:00:00Z' }, { to: 'latest', maxGapSeconds: 60 })).toEqual([]);
});

test('the server\'s configuration is the test\'s alone: the base backup\'s settings set aside, loopback with trust, nothing archived or loaded', () => {
  const dir = mkdtempSync(join(tmpdir(), 'restorable-pitr-config-'));
  try {
    const data = join(dir, PITR_TEST_FILES.dataDir);
    mkdirSync(data);
    writeFileSync(join(data, 'postgresql.auto.conf'), "archive_library = 'evil'\nrecovery_end_command = 'curl attacker'\n");
    writeFileSync(join(data, 'pg_hba.conf'), 'host all all 0.0.0.0/0 trust\n');
    writeServerConfig({ dir, to: '2026-12-02T12:59:00.250Z', maxGapSeconds: 60, waitSeconds: 60 }, 5432);
    expect(readdirSync(data).sort()).toEqual(['pg_hba.conf.from-backup', 'postgresql.auto.conf.from-backup']);
    const config = readFileSync(join(dir, PITR_TEST_FILES.config), 'utf8');
    expect(config).toContain("listen_addresses = '127.0.0.1'");
    expect(config).toContain(`hba_file = '${join(dir, 'pg_hba.conf')}'`);
    expect(config).toContain("archive_mode = 'off'");
    expect(config).toContain("shared_preload_libraries = ''");
    expect(config).toContain(`restore_command = '/bin/sh "${join(dir, PITR_TEST_FILES.walDir)}/restore-command.sh" "%f" "%p"'`);
    expect(config).toContain("recovery_target_time = '2026-12-02 12:59:00.250+00'");
    expect(config).toContain("recovery_target_action = 'promote'");
    expect(config).not.toMatch(/evil|attacker/);
    expect(readFileSync(join(dir, 'pg_hba.conf'), 'utf8')).toBe('host all all 127.0.0.1/32 trust\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a report\'s pitr is checked when its pointer is read: what status shows must be well formed', () => {
  const pitr = { targetTime: '2026-12-02T12:59:00Z', recoveredTo: '2026-12-02T12:58:59Z', baseBackupKey: 'k', walFilesReplayed: 2, restoreSeconds: 41.5 };
  const pointer = (p: unknown) => JSON.stringify({ source: 'ledger', finishedAt: '2026-12-02T13:00:00Z', success: true, pitr: p });
  expect(parseRestoreTestPointer(pointer(pitr), 'latest.json').pitr).toEqual(pitr);
  expect(restoreTestPitrProblem({ ...pitr, restoreSeconds: -1 })).toBe('lacks a valid restoreSeconds');
  expect(() => parseRestoreTestPointer(pointer({ ...pitr, recoveredTo: 'soon' }), 'latest.json'))
    .toThrow('restore-test report latest.json: its pitr lacks a valid recoveredTo');
  expect(() => parseRestoreTestPointer(pointer('fast'), 'latest.json')).toThrow('its pitr is not an object');
});
