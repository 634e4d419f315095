/**
 * The restore test's pieces that need no database: the checks file's errors, how a check is judged, the
 * tolerance, the comparison of tables with the manifest, and the metrics it publishes, to CloudWatch on moto's
 * server (each test in an account of its own) and read back from it. aws-sdk-client-mock remains for a refused
 * PutMetricData only: moto's shared server enforces no IAM, so it never answers AccessDenied.
 */
import { CloudWatchClient, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { mockClient } from 'aws-sdk-client-mock';
import { Engine, METRIC_NAMESPACE, Metrics } from '../../lib/contract';
import { CheckKind, judge, parseChecks } from '../../container/src/restore-test/checks';
import { publishRestoreTest, shouldPublish } from '../../container/src/restore-test/metrics';
import { compareTables, parseTolerance } from '../../container/src/restore-test/validate';
import { MotoAccount, motoAccount, storedMetrics } from '../support/moto-messaging';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

describe('checks file', () => {
  test.each([
    ['not json', /is not valid JSON/],
    ['{"x": 1}', /must hold a JSON array of checks/],
    ['[{"sql": "SELECT 1", "minRows": 1}]', /check 1 has no "name"/],
    ['[{"name": "a", "minRows": 1}]', /check 1 \('a'\) has no "sql" query/],
    ['[{"name": "a", "sql": "SELECT 1"}]', /must have exactly one expectation.*found 0/],
    ['[{"name": "a", "sql": "SELECT 1", "minRows": -1}]', /"minRows" must be a number of at least 0 \(got -1\)/],
    ['[{"name": "a", "sql": "SELECT 1", "equals": 1}, {"name": "a", "sql": "SELECT 2", "equals": 2}]', /check 2: the name 'a' is used twice/],
  ])('%s is refused with a message that says what is wrong', (text, message) => {
    expect(() => parseChecks(text, 'checks.json')).toThrow(message);
  });

  test('a valid file, as an array or under "checks"', () => {
    const checks = [{ name: 'n', sql: 'SELECT 1', equals: 1 }];
    expect(parseChecks(JSON.stringify(checks), 'f')).toEqual([{ name: 'n', sql: 'SELECT 1', kind: CheckKind.EQUALS, expected: '1' }]);
    expect(parseChecks(JSON.stringify({ checks }), 'f')).toHaveLength(1);
  });
});

describe('judging a check', () => {
  const backup = new Date('2026-11-26T03:00:00Z');
  test('minRows says how many rows were short', () => {
    expect(judge({ name: 'n', kind: CheckKind.MIN_ROWS, expected: 10 }, [['1'], ['2']], backup))
      .toMatchObject({ passed: false, actual: 2, detail: 'expected at least 10 rows, got 2 (8 short)' });
  });
  test('maxAgeSeconds counts from the backup\'s start, and says by how much the newest row is too old', () => {
    const check = { name: 'n', kind: CheckKind.MAX_AGE_SECONDS, expected: 3600 };
    expect(judge(check, [['2026-11-26T02:30:00.000Z']], backup)).toMatchObject({ passed: true, actual: 1800 });
    expect(judge(check, [['2026-11-26T01:00:00.000Z']], backup)).toMatchObject({ passed: false, actual: 7200, detail: expect.stringContaining('(3600 s too old)') });
    expect(judge(check, [], backup)).toMatchObject({ passed: false, detail: expect.stringContaining('no rows, or not a timestamp') });
  });
});

describe('tables against the manifest', () => {
  const manifest = { engine: Engine.POSTGRES, startedAt: '2026-11-26T03:00:00Z',
    tables: [{ schema: 'public', table: 'a', rows: 1000 }, { schema: 'public', table: 'b', rows: 5 }] };

  test('a missing table, an extra table and a count off by one are each named', () => {
    const outcomes = compareTables(manifest, new Map([['public.a', 999], ['public.c', 3]]), parseTolerance(undefined));
    expect(outcomes.filter((o) => !o.passed).map((o) => o.detail)).toEqual([
      'table public.a: 999 rows restored, the manifest recorded 1000 (-1; 0 allowed)',
      'table public.b is missing from the restored database (the manifest recorded 5 rows)',
      'table public.c (3 rows) is in the restored database but not in the manifest',
    ]);
  });

  test('a tolerance in rows or in percent', () => {
    expect(parseTolerance('2')).toEqual({ rows: 2, percent: 0 });
    expect(parseTolerance('0.5%')).toEqual({ rows: 0, percent: 0.5 });
    expect(() => parseTolerance('lots')).toThrow("--tolerance must be a number of rows (5) or a percentage (0.5%) of each table's recorded count; got 'lots'");
    const restored = new Map([['public.a', 995], ['public.b', 5]]);
    expect(compareTables(manifest, restored, parseTolerance('0.5%')).every((o) => o.passed)).toBe(true);
    expect(compareTables(manifest, restored, parseTolerance('0.4%')).find((o) => !o.passed)?.detail).toBe('table public.a: 995 rows restored, the manifest recorded 1000 (-5; 4 allowed)');
  });
});

describe('metrics', () => {
  const REGION = 'eu-west-1';
  let account: MotoAccount;
  beforeEach(async () => { account = await motoAccount(); });

  /** What the server stored in this test's account, by name (per-source series first): name, value, source or 'fleet', namespace, unit. */
  const stored = async () => (await storedMetrics(account.config(REGION)))
    .map((m) => [m.MetricName, m.Value, m.Dimensions?.[0]?.Value ?? 'fleet', m.Namespace, m.Unit]);

  test('published on ECS (its metadata variable) or when asked', () => {
    expect(shouldPublish(false, {})).toBe(false);
    expect(shouldPublish(true, {})).toBe(true);
    expect(shouldPublish(false, { ECS_CONTAINER_METADATA_URI_V4: 'http://169.254.170.2/v4/x' })).toBe(true);
  });

  test('success, duration, data age and the share of the RTO, per source and fleet-wide', async () => {
    const at = new Date('2026-11-26T04:00:00Z');
    const problem = await publishRestoreTest(new CloudWatchClient(account.config(REGION)),
      { source: 'orders-db', success: true, restoreDurationSeconds: 90, restoredBackupAgeSeconds: 3600, rtoSeconds: 60, at });
    expect(problem).toBeUndefined();
    expect(await stored()).toEqual([
      [Metrics.RESTORE_RTO_RATIO, 1.5, 'orders-db', METRIC_NAMESPACE, 'None'], [Metrics.RESTORE_RTO_RATIO, 1.5, 'fleet', METRIC_NAMESPACE, 'None'],
      [Metrics.RESTORE_DURATION_SECONDS, 90, 'orders-db', METRIC_NAMESPACE, 'Seconds'], [Metrics.RESTORE_DURATION_SECONDS, 90, 'fleet', METRIC_NAMESPACE, 'Seconds'],
      [Metrics.RESTORE_TEST_SUCCESS, 1, 'orders-db', METRIC_NAMESPACE, 'None'], [Metrics.RESTORE_TEST_SUCCESS, 1, 'fleet', METRIC_NAMESPACE, 'None'],
      [Metrics.RESTORED_BACKUP_AGE_SECONDS, 3600, 'orders-db', METRIC_NAMESPACE, 'Seconds'], [Metrics.RESTORED_BACKUP_AGE_SECONDS, 3600, 'fleet', METRIC_NAMESPACE, 'Seconds'],
    ]);
  });

  test('a failed test without a duration publishes its 0, and nothing for what it did not measure', async () => {
    const problem = await publishRestoreTest(new CloudWatchClient(account.config(REGION)), { source: 'x', success: false, at: new Date() });
    expect(problem).toBeUndefined();
    expect(await stored()).toEqual([
      [Metrics.RESTORE_TEST_SUCCESS, 0, 'x', METRIC_NAMESPACE, 'None'], [Metrics.RESTORE_TEST_SUCCESS, 0, 'fleet', METRIC_NAMESPACE, 'None'],
    ]);
  });

  test('a CloudWatch failure is returned in words, not thrown', async () => {
    // Simulated: moto's shared server refuses nothing for want of a permission.
    const cloudwatch = mockClient(CloudWatchClient);
    try {
      cloudwatch.on(PutMetricDataCommand).rejects(Object.assign(new Error('not authorized'), { name: 'AccessDenied' }));
      const problem = await publishRestoreTest(new CloudWatchClient({ region: REGION }), { source: 'x', success: false, at: new Date() });
      expect(problem).toMatch(/^the metrics could not be published: AccessDenied: not authorized \(the task role needs cloudwatch:PutMetricData/);
      expect(cloudwatch.commandCalls(PutMetricDataCommand)[0].args[0].input.MetricData!.map((d) => [d.MetricName, d.Value]))
        .toEqual([[Metrics.RESTORE_TEST_SUCCESS, 0], [Metrics.RESTORE_TEST_SUCCESS, 0]]);
    } finally {
      cloudwatch.restore();
    }
  });
});

