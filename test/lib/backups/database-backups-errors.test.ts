/**
 * DatabaseBackups, bad input: each mistake fails synth with one clear message that says how to fix it;
 * and the schedule that follows from an RPO.
 */
import { Duration, Stack } from 'aws-cdk-lib';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { BackupKeys, BackupStore } from '../../../lib';
import { BackupSourceProps, SourceEngine, cronForRpo, cronProblem } from '../../../lib/backups/backup-source';
import { DatabaseBackups, DatabaseBackupsProps } from '../../../lib/backups/database-backups';
import { SAMPLE_RECIPIENT, backupsStack, postgresSource } from '../database-backups-fixture';

function addTo(extra: Partial<BackupSourceProps>) {
  const { stack, backups } = backupsStack();
  return () => backups.addSource(postgresSource(stack, 'orders-db', extra));
}

describe('given a bad source', () => {
  test('a duplicate name', () => {
    const { stack, backups } = backupsStack();
    const orders = postgresSource(stack, 'orders-db');
    backups.addSource(orders);
    expect(() => backups.addSource({ ...orders, engine: SourceEngine.postgres('17') }))
      .toThrow("Backups/DatabaseBackups: source 'orders-db' is defined twice: source names are S3 prefixes and must be unique");
  });

  test.each(['Orders', 'orders_db', '', 'a'.repeat(49)])('an invalid name %p', (name) => {
    const { stack, backups } = backupsStack();
    expect(() => backups.addSource({ ...postgresSource(stack), name }))
      .toThrow(`Backups/DatabaseBackups: source name '${name}' is invalid: use 1 to 48 characters of a-z, 0-9 and '-' (for example 'orders-db')`);
  });

  test('an RPO under 15 minutes: dumps are not continuous backup, and WAL/binlog archiving is named', () => {
    expect(addTo({ rpo: Duration.minutes(5) })).toThrow(
      "Backups/DatabaseBackups: source 'orders-db': rpo: an RPO of 5 minutes is under the 15-minute minimum: full dumps are not continuous backup. " +
      "Use 15 minutes or more; a shorter RPO needs WAL archiving (walArchiving, for a PostgreSQL server of your own), or your database service's own point-in-time restore");
  });

  test.each([
    ['0 3 * * *', "cron '0 3 * * *' has 5 fields; give 6: minutes hours day-of-month month day-of-week year, for example '30 2 * * ? *' (02:30 UTC every day)"],
    ['0 3 * * * *', "cron '0 3 * * * *' must have '?' in exactly one of day-of-month and day-of-week, for example '30 2 * * ? *' (02:30 UTC every day)"],
    ['0 25h * * ? *', "cron '0 25h * * ? *' has an invalid hours field '25h'; for example '30 2 * * ? *' (02:30 UTC every day)"],
    ['*/5 * * * ? *', "cron '*/5 * * * ? *' runs more than 4 times an hour: full dumps are not continuous backup; run at most every 15 minutes and look to WAL/binlog archiving for a shorter RPO"],
  ])('an invalid cron %p', (cron, message) => {
    expect(addTo({ cron })).toThrow(`Backups/DatabaseBackups: source 'orders-db': ${message}`);
  });

  test('no secret', () => {
    const { stack, backups } = backupsStack();
    expect(() => backups.addSource({ ...postgresSource(stack), secret: undefined as unknown as secretsmanager.ISecret })).toThrow(
      "Backups/DatabaseBackups: source 'orders-db' has no secret: pass the database user's Secrets Manager secret " +
      '(RDS shape {host,port,username,password,dbname}); the agent reads it at run time, so no password is in the template');
  });

  test('a CPU and memory pair Fargate does not offer', () => {
    expect(addTo({ cpu: 1024, memoryLimitMiB: 512 }))
      .toThrow("source 'orders-db': memoryLimitMiB 512 does not suit cpu 1024: Fargate allows 2048 to 8192 in steps of 1024");
    expect(addTo({ cpu: 3000 })).toThrow("source 'orders-db': cpu 3000 is not a Fargate size: use one of 256, 512, 1024, 2048, 4096, 8192, 16384");
    expect(addTo({ ephemeralStorageGiB: 500 })).toThrow("source 'orders-db': ephemeralStorageGiB 500 is out of range: Fargate allows 21 to 200");
  });

  test('an engine version the image cannot dump: the error names the call and its argument', () => {
    expect(() => SourceEngine.postgres('19')).toThrow(
      "SourceEngine.postgres('19'): majorVersion: PostgreSQL 19 is not supported: give a major version from '13' to '18', " +
      "since the agent image's pg_dump 18 can dump servers up to its own version");
    expect(() => SourceEngine.mariadb('10')).toThrow("SourceEngine.mariadb('10'): version must be a MariaDB release series as a string, for example '10.11'");
    expect(() => SourceEngine.mysql('8')).toThrow("SourceEngine.mysql('8'): version must be a MySQL release series as a string, for example '8.4'");
  });

  test('a version given as a number, as 0.1 took it: the error asks for a string', () => {
    expect(() => SourceEngine.postgres(16 as unknown as string))
      .toThrow("SourceEngine.postgres(16): majorVersion must be a PostgreSQL major version as a string, '13' to '18', for example '16'");
    expect(() => SourceEngine.postgres('16.4'))
      .toThrow("SourceEngine.postgres('16.4'): majorVersion must be a PostgreSQL major version as a string, '13' to '18', for example '16'");
  });
});

describe('given a bad construct', () => {
  function parts() {
    const { stack } = backupsStack();
    const store = new BackupStore(stack, 'OtherStore');
    const keys = new BackupKeys(stack, 'OtherKeys', { recipient: SAMPLE_RECIPIENT });
    return { stack, store, keys };
  }

  test('a missing VPC', () => {
    const { stack, store, keys } = parts();
    expect(() => new DatabaseBackups(stack, 'NoVpc', { store, keys } as unknown as DatabaseBackupsProps)).toThrow(
      "Backups/NoVpc: vpc is required: the backup tasks run in a VPC that reaches the databases (for example ec2.Vpc.fromLookup(this, 'Vpc', { vpcId }))");
  });

  test('isolated subnets without endpoints', () => {
    const { stack } = backupsStack({ isolated: true, props: { vpcEndpoints: true } });
    const isolated = Stack.of(stack).node.findChild('Vpc') as DatabaseBackupsProps['vpc'];
    const { store, keys } = parts();
    expect(() => new DatabaseBackups(stack, 'Isolated', { store, keys, vpc: isolated })).toThrow(
      'Backups/Isolated: the backup tasks would run in isolated subnets, which reach neither ECR, S3, Secrets Manager nor CloudWatch: ' +
      'set vpcEndpoints: true, or choose subnets with a NAT route');
  });
});

describe('the schedule that follows from an RPO', () => {
  test.each([
    [Duration.minutes(15), '0/15 * * * ? *'],
    [Duration.minutes(45), '0/30 * * * ? *'],
    [Duration.hours(1), '0 * * * ? *'],
    [Duration.hours(5), '0 0/4 * * ? *'],
    [Duration.hours(12), '0 0/12 * * ? *'],
    [Duration.days(1), '0 0 * * ? *'],
    [Duration.days(7), '0 0 * * ? *'],
  ])('an RPO of %s gives %p, the longest round interval within it', (rpo, cron) => {
    expect(cronForRpo(rpo)).toBe(cron);
    expect(cronProblem(cron)).toBeUndefined();
  });
});
