/**
 * The restore-test task's scratch sidecar, template assertions: the default images come from ECR Public by tag; a
 * user's image is used as given; the scratch container's entrypoint removes the task role's credential variables
 * and execs the image's own entrypoint with the server and its loopback-only, no-file-access settings; the
 * containers do not share a PID namespace. That an ECR Public image makes RestoreTesting allow HTTPS out (through
 * NAT) is restore-testing-network.test.ts's case of an image outside this region's ECR; what the wrapper does to a
 * real server process is test/container/scratch-entrypoint.test.ts.
 */
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import { BackupStore, DatabaseBackups, SourceEngine, BackupKeys } from '../../../lib';
import { CREDENTIAL_VARIABLES, RestoreTestTask, SCRATCH_SECURE_FILE_PRIV, scratchEntrypoint } from '../../../lib/restore-testing/restore-test-task';
import { DatabaseFlavour } from '../../../lib/backups/backup-source';
import { ENV, SAMPLE_RECIPIENT, mariadbSource, postgresSource, sampleSecret, sampleVpc } from '../database-backups-fixture';

type Container = Record<string, unknown>;

const PINNED = `registry.example.com/postgis/postgis@sha256:${'0'.repeat(64)}`;

/** One restore-test task per source, as RestoreTesting makes them, around sources whose defaults DatabaseBackups fills in. */
function restoreTestTasksStack() {
  const app = new App();
  const stack = new Stack(app, 'Backups', { env: ENV });
  const store = new BackupStore(stack, 'Store', { prefix: 'backups' });
  const keys = new BackupKeys(stack, 'Keys', { recipient: SAMPLE_RECIPIENT });
  const backups = new DatabaseBackups(stack, 'DatabaseBackups', { store, keys, vpc: sampleVpc(stack) });
  const sources = [
    backups.addSource(postgresSource(stack, 'orders-db')),
    backups.addSource(postgresSource(stack, 'maps-db', { engine: SourceEngine.postgres('15'), scratchImage: ecs.ContainerImage.fromRegistry(PINNED) })),
    backups.addSource(mariadbSource(stack, 'shop-db')),
    backups.addSource(mariadbSource(stack, 'legacy-db', { engine: SourceEngine.mariadb('10.4') })),
    backups.addSource({ name: 'crm-db', engine: SourceEngine.mysql('8.4'), secret: sampleSecret(stack, 'crm-db'), endpoint: { hostname: 'crm.example.internal', port: 3306 } }),
  ];
  const executionRole = new iam.Role(stack, 'ExecutionRole', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
  const defaultTaskRole = new iam.Role(stack, 'DefaultTaskRole', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
  const logGroup = new logs.LogGroup(stack, 'Logs');
  sources.forEach((source, i) => new RestoreTestTask(stack, `Task${i + 1}`, {
    source, agentImage: ecs.ContainerImage.fromRegistry('registry.example.com/restorable-agent:1'), executionRole, defaultTaskRole, logGroup,
    cpu: 1024, memoryLimitMiB: 2048, scratchStartTimeout: Duration.minutes(10),
  }));
  return { template: Template.fromStack(stack) };
}

const { template } = restoreTestTasksStack();
const taskDefinitions = Object.values(template.findResources('AWS::ECS::TaskDefinition'))
  .map((r) => r.Properties as Record<string, unknown>)
  .filter((p) => (p.ContainerDefinitions as Container[]).some((c) => c.Name === 'scratch'));
const scratchBy = (image: string): Container => {
  const found = taskDefinitions.flatMap((p) => p.ContainerDefinitions as Container[]).find((c) => c.Name === 'scratch' && c.Image === image);
  if (!found) throw new Error(`no scratch container with image ${image}`);
  return found;
};

describe('given PostgreSQL 16, MariaDB 10.11 and 10.4 and MySQL 8.4 sources with their default scratch images, and a PostGIS image pinned by digest', () => {
  test('then the default images are the official images from ECR Public, by tag, and the user\'s image is used as given', () => {
    const images = taskDefinitions.map((p) => (p.ContainerDefinitions as Container[]).find((c) => c.Name === 'scratch')!.Image).sort();
    expect(images).toEqual([
      'public.ecr.aws/docker/library/mariadb:10.11',
      'public.ecr.aws/docker/library/mariadb:10.4',
      'public.ecr.aws/docker/library/mysql:8.4',
      'public.ecr.aws/docker/library/postgres:16',
      PINNED,
    ]);
    expect(JSON.stringify(template.toJSON())).not.toMatch(/"(postgres|mariadb|mysql):\d/); // no Docker Hub short name left
  });

  test('then every scratch container starts through a shell that unsets the credential variables and execs the image\'s entrypoint', () => {
    for (const p of taskDefinitions) {
      const scratch = (p.ContainerDefinitions as Container[]).find((c) => c.Name === 'scratch')!;
      const [shell, dashC, script, name, ...rest] = scratch.EntryPoint as string[];
      expect([shell, dashC, name, rest]).toEqual(['/bin/sh', '-c', 'scratch-entrypoint', []]);
      expect(script).toMatch(new RegExp(`^unset ${CREDENTIAL_VARIABLES.join(' ')}; `));
      expect(script).toMatch(/; exec docker-entrypoint\.sh "\$@"$/);
      expect(CREDENTIAL_VARIABLES).toEqual(expect.arrayContaining(['AWS_CONTAINER_CREDENTIALS_RELATIVE_URI', 'AWS_CONTAINER_CREDENTIALS_FULL_URI', 'AWS_CONTAINER_AUTHORIZATION_TOKEN']));
    }
  });

  test('then the containers share no PID namespace, and the agent keeps its own entrypoint', () => {
    for (const p of taskDefinitions) {
      expect(p.PidMode).toBeUndefined();
      expect(p.IpcMode).toBeUndefined();
      const agent = (p.ContainerDefinitions as Container[]).find((c) => c.Name === 'agent')!;
      expect(agent.EntryPoint).toBeUndefined();
    }
  });

  test('then the PostgreSQL server listens on loopback only, so trust authentication admits only the task\'s own containers', () => {
    for (const image of ['public.ecr.aws/docker/library/postgres:16', PINNED]) {
      const scratch = scratchBy(image);
      expect(scratch.Command).toEqual(['postgres', '-c', 'listen_addresses=127.0.0.1']);
      expect(scratch.Environment).toEqual([{ Name: 'POSTGRES_HOST_AUTH_METHOD', Value: 'trust' }, { Name: 'POSTGRES_DB', Value: 'restore_test' }]);
      expect((scratch.EntryPoint as string[])[2]).not.toContain('mkdir');
    }
  });

  test('then MariaDB and MySQL listen on loopback only, with local_infile off and secure_file_priv in an empty directory the entrypoint makes', () => {
    const flags = ['--bind-address=127.0.0.1', '--local-infile=0', '--secure-file-priv=/var/lib/mysql-files'];
    expect(SCRATCH_SECURE_FILE_PRIV).toBe('/var/lib/mysql-files');
    expect(scratchBy('public.ecr.aws/docker/library/mariadb:10.11').Command).toEqual(['mariadbd', ...flags]);
    expect(scratchBy('public.ecr.aws/docker/library/mariadb:10.4').Command).toEqual(['mysqld', ...flags]); // before 10.5 the server is mysqld
    expect(scratchBy('public.ecr.aws/docker/library/mysql:8.4').Command).toEqual(['mysqld', ...flags, '--mysqlx=0']);
    for (const image of ['public.ecr.aws/docker/library/mariadb:10.11', 'public.ecr.aws/docker/library/mysql:8.4']) {
      expect((scratchBy(image).EntryPoint as string[])[2]).toContain('; mkdir -p /var/lib/mysql-files; exec docker-entrypoint.sh "$@"');
    }
  });

  test('then the health checks still reach the servers where they now listen', () => {
    expect(scratchBy('public.ecr.aws/docker/library/postgres:16').HealthCheck).toMatchObject({ Command: ['CMD-SHELL', 'pg_isready -h 127.0.0.1 -p 5432 -U postgres -d restore_test'] });
    expect(scratchBy('public.ecr.aws/docker/library/mysql:8.4').HealthCheck).toMatchObject({ Command: ['CMD-SHELL', 'mysqladmin ping -h 127.0.0.1 --silent'] });
    // healthcheck.sh --connect asks over the socket first.
    expect(scratchBy('public.ecr.aws/docker/library/mariadb:10.11').HealthCheck).toMatchObject({ Command: ['CMD-SHELL', 'healthcheck.sh --connect --innodb_initialized'] });
  });
});

test('given each flavour, then scratchEntrypoint gives the shell, its name as $0 and the server command the template carries', () => {
  expect(scratchEntrypoint(DatabaseFlavour.POSTGRES, '16')).toEqual({
    entryPoint: ['/bin/sh', '-c', `unset ${CREDENTIAL_VARIABLES.join(' ')}; exec docker-entrypoint.sh "$@"`, 'scratch-entrypoint'],
    command: ['postgres', '-c', 'listen_addresses=127.0.0.1'],
  });
  expect(scratchEntrypoint(DatabaseFlavour.MARIADB, '11.4').command[0]).toBe('mariadbd');
  expect(scratchEntrypoint(DatabaseFlavour.MARIADB, '10.5').command[0]).toBe('mariadbd');
  expect(scratchEntrypoint(DatabaseFlavour.MARIADB, '10.3').command[0]).toBe('mysqld');
});
