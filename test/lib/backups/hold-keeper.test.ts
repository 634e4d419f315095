/**
 * HoldKeeper: a role under the hold keeper's path with least privilege in one inline policy, the function logging to
 * the log group it is given, the schedule carrying every source (also those added later), the two alarms and their
 * action, six resources whatever the number of sources, the interval's range, the release grace passed to the function,
 * and cdk-nag.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { App, Duration, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as logs from 'aws-cdk-lib/aws-logs';
import { AwsSolutionsChecks } from 'cdk-nag';
import { HoldKeeper, HoldKeeperProps } from '../../../lib/backups/hold-keeper';
import { AlarmTopic } from '../../../lib/monitoring/alarm-topic';
import { BackupStore } from '../../../lib/store/backup-store';
import { ENV } from '../database-backups-fixture';

beforeAll(() => {
  if (!existsSync(join(__dirname, '../../../assets/lambda/hold-keeper/index.js'))) {
    throw new Error("the hold-keeper asset is missing: run 'npm run bundle' before these tests");
  }
});

interface Options extends Partial<Omit<HoldKeeperProps, 'store' | 'logGroup' | 'alarmTopic'>> {
  readonly nag?: boolean;
  readonly topic?: boolean;
}

function holdKeeperStack(options: Options = {}) {
  const app = new App();
  if (options.nag) Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  const stack = new Stack(app, 'Primary', { env: ENV });
  const store = new BackupStore(stack, 'Store', { prefix: 'backups' });
  const logGroup = new logs.LogGroup(stack, 'Logs', { retention: logs.RetentionDays.ONE_YEAR });
  const alarmTopic = options.topic === false ? undefined : new AlarmTopic(stack, 'Alarms').topic;
  const keeper = new HoldKeeper(stack, 'HoldKeeper', {
    store, logGroup, alarmTopic, interval: options.interval, releaseAfter: options.releaseAfter, sources: options.sources,
  });
  return { app, stack, store, keeper };
}

const resourcesOf = (template: Template, type: string) =>
  Object.entries(template.findResources(type)).filter(([id]) => id.startsWith('HoldKeeper'));

describe('given a hold keeper of two sources, one added after construction', () => {
  const { stack, keeper } = holdKeeperStack({ sources: ['orders-db'] });
  keeper.addSource('shop-db');
  const template = Template.fromStack(stack);
  const [[, role]] = resourcesOf(template, 'AWS::IAM::Role');
  const statements = role.Properties.Policies[0].PolicyDocument.Statement as Array<Record<string, unknown>>;
  /** The logical id of the one resource of a type whose id starts with `prefix`. */
  const idOf = (type: string, prefix: string) => {
    const ids = Object.keys(template.findResources(type)).filter((id) => id.startsWith(prefix));
    if (ids.length !== 1) throw new Error(`expected one ${type} starting with ${prefix}, found ${ids.join(', ')}`);
    return ids[0];
  };
  const bucketId = idOf('AWS::S3::Bucket', 'StoreBucket');
  const storeBucket = { 'Fn::GetAtt': [bucketId, 'Arn'] };

  test('the role lives under the hold keeper\'s path, assumed by Lambda, its grants in one inline policy and no AWS::IAM::Policy', () => {
    expect(role.Properties.Path).toBe('/restorable/hold-keeper/');
    expect(role.Properties.AssumeRolePolicyDocument.Statement).toEqual([
      { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' } },
    ]);
    expect(role.Properties.ManagedPolicyArns).toBeUndefined();
    expect(role.Properties.Policies).toHaveLength(1);
    expect(resourcesOf(template, 'AWS::IAM::Policy')).toEqual([]);
  });

  test('least privilege: list each source\'s own prefix; read objects and read and set legal holds; decrypt through S3; metrics in Restorable; its logs', () => {
    expect(statements).toHaveLength(5);
    expect(statements).toEqual(expect.arrayContaining([
      expect.objectContaining({
        Effect: 'Allow', Action: 's3:ListBucket', Resource: storeBucket,
        Condition: { StringLike: { 's3:prefix': ['backups/orders-db/*', 'backups/shop-db/*'] } },
      }),
      expect.objectContaining({
        Effect: 'Allow', Action: ['s3:GetObject', 's3:GetObjectLegalHold', 's3:PutObjectLegalHold'],
        Resource: { 'Fn::Join': ['', [storeBucket, '/backups/*']] },
      }),
      expect.objectContaining({
        Effect: 'Allow', Action: 'kms:Decrypt', Resource: { 'Fn::GetAtt': [idOf('AWS::KMS::Key', 'StoreKey'), 'Arn'] },
        Condition: { StringEquals: { 'kms:ViaService': 's3.eu-west-1.amazonaws.com' } },
      }),
      expect.objectContaining({
        Effect: 'Allow', Action: 'cloudwatch:PutMetricData', Resource: '*', Condition: { StringEquals: { 'cloudwatch:namespace': 'Restorable' } },
      }),
      expect.objectContaining({
        Effect: 'Allow', Action: ['logs:CreateLogStream', 'logs:PutLogEvents'], Resource: { 'Fn::GetAtt': [idOf('AWS::Logs::LogGroup', 'Logs'), 'Arn'] },
      }),
    ]));
    const actions = statements.flatMap((s) => ([] as string[]).concat(s.Action as string));
    // Never written, tagged or deleted by it: releasing a hold is all it may do that a reader may not.
    expect(actions.filter((a) => /Put(Object|Bucket)(?!LegalHold)|Delete|Tagging|Bypass|Encrypt|GenerateDataKey/.test(a))).toEqual([]);
    expect(statements.every((s) => s.Effect === 'Allow')).toBe(true);
  });

  test('the function is a prebundled Node.js 22 handler that logs to the log group it was given (no log group of its own)', () => {
    const [[, fn]] = resourcesOf(template, 'AWS::Lambda::Function');
    expect(fn.Properties).toEqual(expect.objectContaining({
      Runtime: 'nodejs22.x',
      Handler: 'index.handler',
      Timeout: 600,
      LoggingConfig: { LogGroup: { Ref: idOf('AWS::Logs::LogGroup', 'Logs') } },
      // A pass releases older holds only once its report is a week old, by default.
      Environment: { Variables: { BUCKET_NAME: { Ref: bucketId }, KEY_PREFIX: 'backups/', RELEASE_AFTER_SECONDS: '604800' } },
      Role: { 'Fn::GetAtt': [idOf('AWS::IAM::Role', 'HoldKeeperRole'), 'Arn'] },
    }));
    expect(resourcesOf(template, 'AWS::Logs::LogGroup')).toEqual([]);
  });

  test('a schedule every 6 hours passes every source, those added later too', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(6 hours)',
      Targets: [Match.objectLike({ Input: JSON.stringify({ sources: ['orders-db', 'shop-db'] }), RetryPolicy: { MaximumRetryAttempts: 2 } })],
    });
  });

  test('an alarm on PointerMismatch (fleet-wide) and one on the function\'s errors, each notifying the alarm topic', () => {
    const topic = { Ref: Match.stringLikeRegexp('^AlarmsTopic') };
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'Restorable', MetricName: 'PointerMismatch', Statistic: 'Maximum', Period: 21600,
      Threshold: 0, ComparisonOperator: 'GreaterThanThreshold', EvaluationPeriods: 1, TreatMissingData: 'notBreaching',
      Dimensions: Match.absent(), AlarmActions: [topic],
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/Lambda', MetricName: 'Errors', Statistic: 'Sum', Period: 21600,
      Threshold: 0, ComparisonOperator: 'GreaterThanThreshold', EvaluationPeriods: 1, TreatMissingData: 'notBreaching',
      Dimensions: [{ Name: 'FunctionName', Value: { Ref: Match.stringLikeRegexp('^HoldKeeperFunction') } }], AlarmActions: [topic],
    });
  });

  test('metricSourcePointerMismatch names the source', () => {
    const metric = keeper.metricSourcePointerMismatch('orders-db');
    expect(metric.dimensions).toEqual({ Source: 'orders-db' });
    expect(metric.metricName).toBe('PointerMismatch');
    expect(metric.period.toSeconds()).toBe(21600);
  });
});

describe('resources', () => {
  test('six, whatever the number of sources: role, function, schedule, its permission, two alarms', () => {
    const count = (sources: number) => {
      const { stack, keeper } = holdKeeperStack();
      for (let i = 0; i < sources; i++) keeper.addSource(`db-${i}`);
      return Object.keys(Template.fromStack(stack).toJSON().Resources).filter((id) => id.startsWith('HoldKeeper')).length;
    };
    expect(count(1)).toBe(6);
    expect(count(100)).toBe(6);
  });

  test('100 sources of the longest name fit the role\'s 10,240-character policy quota and EventBridge\'s input', () => {
    const { stack, keeper } = holdKeeperStack();
    for (let i = 0; i < 100; i++) keeper.addSource(`${String(i).padStart(3, '0')}-${'x'.repeat(44)}`);
    const template = Template.fromStack(stack);
    const [[, role]] = resourcesOf(template, 'AWS::IAM::Role');
    // Measured on the template, whose references are longer than the ARNs they resolve to.
    expect(JSON.stringify(role.Properties.Policies).length).toBeLessThan(10_240);
    const [[, rule]] = resourcesOf(template, 'AWS::Events::Rule');
    expect(rule.Properties.Targets[0].Input.length).toBeLessThan(8192);
  });
});

describe('options and mistakes', () => {
  test('without an alarm topic the alarms have no action', () => {
    const { stack } = holdKeeperStack({ topic: false, sources: ['orders-db'] });
    const alarms = resourcesOf(Template.fromStack(stack), 'AWS::CloudWatch::Alarm');
    expect(alarms).toHaveLength(2);
    expect(alarms.map(([, a]) => a.Properties.AlarmActions)).toEqual([undefined, undefined]);
  });

  test('interval sets the schedule and the alarms\' period', () => {
    const { stack } = holdKeeperStack({ interval: Duration.hours(1), sources: ['orders-db'] });
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(1 hour)' });
    expect(resourcesOf(template, 'AWS::CloudWatch::Alarm').map(([, a]) => a.Properties.Period)).toEqual([3600, 3600]);
  });

  test.each([
    [Duration.minutes(5), 'from 15 to 1440 (got 5 minutes)'],
    [Duration.seconds(1000), 'whole number of minutes'],
    [Duration.days(2), 'from 15 to 1440 (got 2 days)'],
  ])('an interval of %s is refused', (interval, message) => {
    expect(() => holdKeeperStack({ interval })).toThrow(message);
  });

  test.each([
    [Duration.days(1), '86400'],
    [Duration.minutes(90), '5400'],
    [Duration.days(0), '0'],
  ])('releaseAfter %s is passed to the function as RELEASE_AFTER_SECONDS=%s', (releaseAfter, seconds) => {
    const { stack, keeper } = holdKeeperStack({ releaseAfter, sources: ['orders-db'] });
    expect(keeper.releaseAfter).toBe(releaseAfter);
    const [[, fn]] = resourcesOf(Template.fromStack(stack), 'AWS::Lambda::Function');
    expect(fn.Properties.Environment.Variables.RELEASE_AFTER_SECONDS).toBe(seconds);
  });

  test('releaseAfter defaults to 7 days', () => {
    expect(holdKeeperStack().keeper.releaseAfter.toDays()).toBe(7);
  });

  test.each([
    [Duration.seconds(30), 'releaseAfter must be a whole number of minutes, from 0 to 525600 (got 30 seconds)'],
    [Duration.days(366), 'from 0 to 525600 (got 366 days)'],
  ])('a releaseAfter of %s is refused', (releaseAfter, message) => {
    expect(() => holdKeeperStack({ releaseAfter })).toThrow(message);
  });

  test('a store without Object Lock is refused: it has no holds to keep', () => {
    const stack = new Stack(new App(), 'Unlocked', { env: ENV });
    const store = new BackupStore(stack, 'Store', { objectLockEnabled: false });
    const logGroup = new logs.LogGroup(stack, 'Logs');
    expect(() => new HoldKeeper(stack, 'HoldKeeper', { store, logGroup })).toThrow(
      'Unlocked/HoldKeeper: store Unlocked/Store has no Object Lock, so it has no legal holds to keep');
  });

  test('a bad or repeated source name is refused, naming the construct', () => {
    const { keeper } = holdKeeperStack({ sources: ['orders-db'] });
    expect(() => keeper.addSource('Orders_DB')).toThrow("Primary/HoldKeeper: source name 'Orders_DB' is invalid");
    expect(() => keeper.addSource('orders-db')).toThrow("Primary/HoldKeeper: source 'orders-db' is already kept; add each source once");
  });

  test('more sources than EventBridge\'s input can carry fail synth with the fix', () => {
    const { app, keeper } = holdKeeperStack();
    for (let i = 0; i < 170; i++) keeper.addSource(`${String(i).padStart(3, '0')}-${'x'.repeat(44)}`);
    expect(() => app.synth()).toThrow(/170 sources make a schedule input of \d+ characters, over EventBridge's 8192: split the sources/);
  });
});

describe('cdk-nag AwsSolutions', () => {
  test.each([
    ['with an alarm topic', {}],
    ['without an alarm topic', { topic: false }],
  ])('a hold keeper has no unacknowledged findings: %s', (_name, options: Options) => {
    const { app } = holdKeeperStack({ ...options, nag: true, sources: ['orders-db', 'shop-db'] });
    expect(() => app.synth()).not.toThrow();
  });
});
