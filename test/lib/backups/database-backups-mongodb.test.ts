/**
 * MongoDB sources in the constructs: SourceEngine.mongodb's versions (the agent image's Database Tools' supported
 * range), the shared MongoDB task definition and each source's agent command with its login and TLS flags, the
 * refusals of options that do not fit, the synth warnings, the network rule on 27017, and cdk-nag.
 */
import { Annotations as CoreAnnotations, Duration } from 'aws-cdk-lib';
import * as docdb from 'aws-cdk-lib/aws-docdb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { MONGODB_TOOLS, SourceEngine } from '../../../lib/backups/backup-source';
import { BackupSourceProps } from '../../../lib/backups/backup-source';
import { DOCUMENTDB_CA_WARNING, MONGODB_UNTESTED_WARNING, MONGODB_VERSION_WARNING } from '../../../lib/backups/database-backups';
import { MongoAuthMechanism } from '../../../lib/backups/mongodb-connection';
import { RestorableError } from '../../../lib/shared/errors';
import { backupsStack, optionOf, postgresSource, samplePeer, sampleSecret } from '../database-backups-fixture';
import type { Stack } from 'aws-cdk-lib';

function mongoSource(stack: Stack, name = 'catalog-db', extra: Partial<BackupSourceProps> = {}): BackupSourceProps {
  return {
    name,
    engine: SourceEngine.mongodb('7.0'),
    secret: sampleSecret(stack, name),
    endpoint: { hostname: `${name}-2.example.internal`, port: 27017 },
    peer: samplePeer(stack, name, 27017),
    rpo: Duration.hours(4),
    ...extra,
  };
}

/** The agent command of a source's schedule (its overrides, with CloudFormation references as `<ref>`). */
function commandOf(stack: Stack, source: string): string[] {
  const commands = Object.values(Template.fromStack(stack).findResources('AWS::Scheduler::Schedule')).map((schedule) => {
    const input = schedule.Properties.Target.Input as { 'Fn::Join': [string, unknown[]] };
    const text = input['Fn::Join'][1].map((part) => (typeof part === 'string' ? part : '<ref>')).join('');
    return JSON.parse(text).containerOverrides[0].command as string[];
  }).filter((command) => optionOf(command, '--source') === source);
  expect(commands).toHaveLength(1);
  return commands[0];
}

function warningsWith(stack: Stack, id: string): string[] {
  return Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp(`\\[ack: ${id}\\]$`)).map((w) => `${w.id} ${String(w.entry.data)}`);
}

describe('SourceEngine.mongodb', () => {
  test('given a release series, then it is the mongodb agent engine on 27017 with the official mongo image of that series', () => {
    const engine = SourceEngine.mongodb('7.0');
    expect([engine.flavour, engine.version, engine.agentEngine, engine.defaultPort]).toEqual(['mongodb', '7.0', 'mongodb', 27017]);
    expect(engine.defaultScratchImage).toBe('public.ecr.aws/docker/library/mongo:7.0');
    expect(engine.toString()).toBe('mongodb 7.0');
  });

  test.each(['7', '7.0.12', 'latest', ' 7.0', ''])('given %p, which is not a release series, then it is refused with an example', (version) => {
    expect(() => SourceEngine.mongodb(version)).toThrow(RestorableError);
    expect(() => SourceEngine.mongodb(version)).toThrow(`SourceEngine.mongodb('${version}'): version must be a MongoDB release series as a string, for example '7.0'`);
  });

  test('given a number instead of a string, then it is refused', () => {
    expect(() => SourceEngine.mongodb(7 as unknown as string)).toThrow("SourceEngine.mongodb(7): version must be a MongoDB release series as a string");
  });

  test.each(['3.6', '4.0', '2.6'])(`given %p, older than the Database Tools ${MONGODB_TOOLS.version} support, then it is refused naming the oldest`, (version) => {
    expect(() => SourceEngine.mongodb(version)).toThrow(new RegExp(`MongoDB ${version.replace('.', '\\.')} is not supported: give a release series from '4\\.2' on, ` +
      `since the agent image's MongoDB Database Tools 100\\.10\\.0 do not support servers older than MongoDB 4\\.2`));
  });

  test('the documented range is 4.2 to 8.0, as MongoDB lists the servers Database Tools 100.10.0 support', () => {
    expect(MONGODB_TOOLS).toEqual({ version: '100.10.0', oldest: '4.2', newest: '8.0' });
    for (const version of ['4.2', '4.4', '5.0', '6.0', '7.0', '8.0', '10.0']) expect(SourceEngine.mongodb(version).version).toBe(version);
  });
});

describe('given two MongoDB sources and a PostgreSQL one', () => {
  const { stack, backups } = backupsStack();
  backups.addSource(postgresSource(stack));
  backups.addSource(mongoSource(stack, 'catalog-db', { mongodb: { authSource: 'admin', authMechanism: MongoAuthMechanism.SCRAM_SHA_256 } }));
  backups.addSource(mongoSource(stack, 'reviews-db', {
    endpoint: { hostname: 'reviews.cluster-c9akciq32xyz.eu-west-1.docdb.amazonaws.com', port: 27017 }, database: 'reviews',
    mongodb: { tlsCaFile: '/etc/ssl/certs/rds-global-bundle.pem' },
  }));
  const template = Template.fromStack(stack);

  test('then the MongoDB sources share one task definition of their own, logging under the mongodb prefix', () => {
    const definitions = Object.entries(template.findResources('AWS::ECS::TaskDefinition'));
    expect(definitions.map(([id]) => id.replace(/[0-9A-F]{8}$/, '')).sort()).toEqual(['DatabaseBackupsMongoDbTask', 'DatabaseBackupsPostgresTask']);
    const [, mongo] = definitions.find(([id]) => id.startsWith('DatabaseBackupsMongoDbTask'))!;
    expect(mongo.Properties.ContainerDefinitions[0].LogConfiguration.Options['awslogs-stream-prefix']).toBe('mongodb');
    const families = Object.values(template.findResources('AWS::Scheduler::Schedule'))
      .map((s) => JSON.stringify(s.Properties.Target.EcsParameters.TaskDefinitionArn)).filter((arn) => arn.includes('MongoDbTask'));
    expect(families).toHaveLength(2);
  });

  test('then each command runs the mongodb engine at its endpoint, with only the login and TLS flags it gives, and no password', () => {
    const catalog = commandOf(stack, 'catalog-db');
    expect(catalog[0]).toBe('backup');
    expect([optionOf(catalog, '--engine'), optionOf(catalog, '--host'), optionOf(catalog, '--port')]).toEqual(['mongodb', 'catalog-db-2.example.internal', '27017']);
    expect([optionOf(catalog, '--auth-source'), optionOf(catalog, '--auth-mechanism')]).toEqual(['admin', 'SCRAM-SHA-256']);
    expect(catalog).not.toContain('--tls');
    expect(catalog).not.toContain('--tls-ca-file');
    const reviews = commandOf(stack, 'reviews-db');
    expect([optionOf(reviews, '--database'), optionOf(reviews, '--tls-ca-file')]).toEqual(['reviews', '/etc/ssl/certs/rds-global-bundle.pem']);
    expect(reviews).toContain('--tls');
    expect(reviews).not.toContain('--auth-source');
    expect(reviews).not.toContain('--auth-mechanism');
    for (const command of [catalog, reviews]) expect(command.join(' ')).not.toMatch(/password/i);
    expect(commandOf(stack, 'orders-db').filter((a) => /^--(auth|tls)/.test(a))).toEqual([]);
  });

  test('then the tasks may go out to 27017 inside the VPC, and each database admits them on it', () => {
    template.hasResourceProperties('AWS::EC2::SecurityGroup', {
      GroupDescription: Match.stringLikeRegexp('Restorable backup tasks'),
      SecurityGroupEgress: Match.arrayWith([Match.objectLike({ CidrIp: '10.20.0.0/16', FromPort: 27017, ToPort: 27017, IpProtocol: 'tcp' })]),
    });
    const ingress = Object.values(template.findResources('AWS::EC2::SecurityGroupIngress')).filter((r) => r.Properties.FromPort === 27017);
    expect(ingress).toHaveLength(2);
  });

  test('then each MongoDB source says at synth that no MongoDB server has run its backups, and the PostgreSQL one does not', () => {
    const warnings = warningsWith(stack, MONGODB_UNTESTED_WARNING);
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(/^\/Backups\/DatabaseBackups\/Sources\/catalog-db Source 'catalog-db' is MongoDB 7\.0, which is untested against a MongoDB server: .*FerretDB.*mongo:7\.0 scratch server/);
    expect(warningsWith(stack, MONGODB_VERSION_WARNING)).toEqual([]);
  });
});

describe('MongoDB versions newer than the Database Tools support', () => {
  test('given MongoDB 8.2, then synth warns that the tools do not claim it until the warning is acknowledged', () => {
    const { stack, backups } = backupsStack();
    backups.addSource(mongoSource(stack, 'catalog-db', { engine: SourceEngine.mongodb('8.2') }));
    expect(warningsWith(stack, MONGODB_VERSION_WARNING)).toEqual([expect.stringContaining(
      "Source 'catalog-db' is MongoDB 8.2, newer than the agent image's MongoDB Database Tools 100.10.0 support (MongoDB 4.2 to 8.0)")]);
  });

  test('given the warnings acknowledged on the source\'s scope, then they are gone', () => {
    const { stack, backups } = backupsStack();
    backups.addSource(mongoSource(stack, 'catalog-db', { engine: SourceEngine.mongodb('8.2') }));
    const scope = backups.node.findChild('Sources').node.findChild('catalog-db');
    CoreAnnotations.of(scope).acknowledgeWarning(MONGODB_VERSION_WARNING, 'a backup and a restore test of 8.2 passed');
    CoreAnnotations.of(scope).acknowledgeWarning(MONGODB_UNTESTED_WARNING, 'a backup and a restore test passed');
    expect(warningsWith(stack, MONGODB_VERSION_WARNING)).toEqual([]);
    expect(warningsWith(stack, MONGODB_UNTESTED_WARNING)).toEqual([]);
  });
});

describe('Amazon DocumentDB sources, whose certificates chain to the RDS CAs the agent image lacks', () => {
  const docdbHost = 'reviews.cluster-c9akciq32xyz.eu-west-1.docdb.amazonaws.com';

  test('given a DocumentDB endpoint without a CA file, then synth warns how to give the bundle', () => {
    const { stack, backups } = backupsStack();
    backups.addSource(mongoSource(stack, 'reviews-db', { engine: SourceEngine.mongodb('5.0'), endpoint: { hostname: docdbHost, port: 27017 } }));
    expect(warningsWith(stack, DOCUMENTDB_CA_WARNING)).toEqual([expect.stringContaining(
      `Source 'reviews-db' is on Amazon DocumentDB (${docdbHost}), which requires TLS with certificates from the Amazon RDS CAs, and the agent image holds no RDS CA bundle`)]);
  });

  test('given a DocumentDB cluster construct as the peer, its endpoint a token, then synth warns too', () => {
    const { stack, backups, vpc } = backupsStack();
    const cluster = new docdb.DatabaseCluster(stack, 'Reviews', {
      masterUser: { username: 'admin_user' }, instanceType: ec2.InstanceType.of(ec2.InstanceClass.R6G, ec2.InstanceSize.LARGE), vpc,
    });
    backups.addSource(mongoSource(stack, 'reviews-db', { engine: SourceEngine.mongodb('5.0'), peer: cluster, endpoint: cluster.clusterEndpoint }));
    expect(warningsWith(stack, DOCUMENTDB_CA_WARNING)).toEqual([expect.stringContaining("Source 'reviews-db' is on Amazon DocumentDB, which requires TLS")]);
  });

  test('given the CA file, or TLS turned off, or a MongoDB server elsewhere, then there is no such warning', () => {
    const { stack, backups } = backupsStack();
    backups.addSource(mongoSource(stack, 'a', { endpoint: { hostname: docdbHost, port: 27017 }, mongodb: { tlsCaFile: '/etc/ssl/certs/rds-global-bundle.pem' } }));
    backups.addSource(mongoSource(stack, 'b', { endpoint: { hostname: docdbHost, port: 27017 }, mongodb: { tls: false } }));
    backups.addSource(mongoSource(stack, 'c'));
    expect(warningsWith(stack, DOCUMENTDB_CA_WARNING)).toEqual([]);
  });
});

describe('MongoDB options that do not fit are refused in words', () => {
  const refused = (source: (stack: Stack) => BackupSourceProps) => {
    const { stack, backups } = backupsStack();
    return () => backups.addSource(source(stack));
  };

  test('given mongodb options on a PostgreSQL source, then they are refused', () => {
    expect(refused((stack) => postgresSource(stack, 'orders-db', { mongodb: { tls: true } })))
      .toThrow("source 'orders-db' is postgres 16 but has mongodb connection options: they are for MongoDB sources (SourceEngine.mongodb) only; remove them");
  });

  test.each(['', 'ad/min', 'a.b', 'my db', '$internal'])('given authSource %p, then it is refused with the names to use', (authSource) => {
    expect(refused((stack) => mongoSource(stack, 'catalog-db', { mongodb: { authSource } })))
      .toThrow(`source 'catalog-db': mongodb.authSource '${authSource}' is not a database name: give 'admin' for MongoDB's own users and Amazon DocumentDB, or '$external' for LDAP users`);
  });

  test('given $external, the LDAP users\' database, with PLAIN, then it is passed as given', () => {
    const { stack, backups } = backupsStack();
    backups.addSource(mongoSource(stack, 'catalog-db', { mongodb: { authSource: '$external', authMechanism: MongoAuthMechanism.PLAIN, tls: true } }));
    const command = commandOf(stack, 'catalog-db');
    expect([optionOf(command, '--auth-source'), optionOf(command, '--auth-mechanism')]).toEqual(['$external', 'PLAIN']);
    expect(command).toContain('--tls');
  });

  test('given an auth mechanism that carries no password, then it is refused, naming those offered', () => {
    expect(refused((stack) => mongoSource(stack, 'catalog-db', { mongodb: { authMechanism: 'MONGODB-X509' as MongoAuthMechanism } })))
      .toThrow("source 'catalog-db': mongodb.authMechanism 'MONGODB-X509' is not one of SCRAM-SHA-256, SCRAM-SHA-1, PLAIN");
  });

  test('given PLAIN with tls: false, then it is refused: the password would cross the network as it is', () => {
    expect(refused((stack) => mongoSource(stack, 'catalog-db', { mongodb: { authSource: '$external', authMechanism: MongoAuthMechanism.PLAIN, tls: false } })))
      .toThrow("source 'catalog-db': mongodb.authMechanism PLAIN sends the password as it is, and tls is false: set tls: true");
  });

  test('given a CA file with tls: false, or a relative CA file, then it is refused', () => {
    expect(refused((stack) => mongoSource(stack, 'catalog-db', { mongodb: { tls: false, tlsCaFile: '/ca.pem' } })))
      .toThrow("source 'catalog-db': mongodb.tlsCaFile is given with tls: false");
    expect(refused((stack) => mongoSource(stack, 'catalog-db', { mongodb: { tlsCaFile: 'global-bundle.pem' } })))
      .toThrow("source 'catalog-db': mongodb.tlsCaFile 'global-bundle.pem' must be an absolute path inside the agent's container");
  });

  test.each(['mongodb+srv://cluster0.ab1cd.mongodb.net', 'mongodb://backup:s3cret@db.example.internal:27017', 'backup:s3cret@db.example.internal', 'mongodb://backup:s3/cret@db.example.internal', 'db.example.internal/?tls=true'])(
    'given the connection string %p as the endpoint\'s host, then it is refused without echoing a password', (hostname) => {
      const error = refused((stack) => mongoSource(stack, 'catalog-db', { endpoint: { hostname, port: 27017 } }));
      expect(error).toThrow(/source 'catalog-db': endpoint\.hostname '.*' is a connection string, not a host name: give one member's host name and port/);
      expect(error).not.toThrow(/s3\/?cret/);
    });

  test('given WAL archiving or binlog streaming on a MongoDB source, then each is refused', () => {
    expect(refused((stack) => mongoSource(stack, 'catalog-db', { walArchiving: {} })))
      .toThrow("source 'catalog-db' is mongodb 7.0: WAL archiving is for PostgreSQL sources");
    expect(refused((stack) => mongoSource(stack, 'catalog-db', { binlogStreaming: { replicationSecret: sampleSecret(stack, 'repl') } })))
      .toThrow("source 'catalog-db' is mongodb 7.0: binlog streaming is for MariaDB sources; a MongoDB source is dump-only");
  });
});

describe('cdk-nag AwsSolutions', () => {
  test('given MongoDB sources beside PostgreSQL, with endpoints, then synth has no unacknowledged finding', () => {
    const { app, stack, backups } = backupsStack({ nag: true, isolated: true, alarmTopic: true, generatedKeys: true });
    backups.addSource(postgresSource(stack));
    backups.addSource(mongoSource(stack, 'catalog-db', { mongodb: { tls: true } }));
    expect(() => app.synth()).not.toThrow();
  });
});
