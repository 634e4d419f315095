import { Duration } from 'aws-cdk-lib';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { AGENT_RUNTIME_PLATFORM } from '../backups/agent-image';
import { BackupSource, DatabaseFlavour } from '../backups/backup-source';
import { acknowledgeNag } from '../shared/nag';
import { RestorableError } from '../shared/errors';
import { PITR_TEST_FILES } from '../contract/manifest';

/** The container names in every restore-test task definition; the orchestrator's overrides address the agent. */
export const RESTORE_TEST_AGENT_CONTAINER = 'agent';
export const SCRATCH_CONTAINER = 'scratch';
/** The empty database the scratch server creates and the agent restores into. */
export const SCRATCH_DATABASE = 'restore_test';

/** How the agent reaches the scratch server inside the task (containers of a Fargate task share localhost). */
export interface ScratchConnection {
  readonly port: number;
  readonly user: string;
}

/**
 * The variables through which ECS hands every container of a task the task role's credentials (the relative URI
 * on Fargate; the full URI and its authorization token, or the token's file, where those are set).
 */
export const CREDENTIAL_VARIABLES = [
  'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI',
  'AWS_CONTAINER_CREDENTIALS_FULL_URI',
  'AWS_CONTAINER_AUTHORIZATION_TOKEN',
  'AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE',
] as const;

/**
 * The MariaDB and MySQL scratch servers' `secure_file_priv`: the only directory LOAD DATA INFILE, SELECT … INTO
 * OUTFILE and LOAD_FILE() may touch (and only for an account with FILE, which the load's account lacks). The
 * scratch entrypoint creates it where the image has none (the MariaDB image): empty and owned by root, so the
 * server, which runs as mysql, can neither read anything from it nor write to it. Where the image has it (MySQL's
 * packages make it, for the same default), it is left as the image made it: empty, and if mysql may write there, a
 * FILE holder reads back only what it wrote. Nothing of the agent's is in it either way: its files are in another
 * container.
 */
export const SCRATCH_SECURE_FILE_PRIV = '/var/lib/mysql-files';

/** The official images' entrypoint, on their PATH: it initializes the data directory, then execs the server. */
const IMAGE_ENTRYPOINT = 'docker-entrypoint.sh';

interface ScratchSettings extends ScratchConnection {
  readonly environment: Record<string, string>;
  /** What the agent container needs to log in to the scratch server (MongoDB: the root user's password). */
  readonly agentEnvironment?: Record<string, string>;
  readonly healthCommand: string[];
  /** The server and its flags: the image's CMD, which an entryPoint override would otherwise drop. */
  readonly serverCommand: (version: string) => string[];
  /** Shell run before the image's entrypoint, as root. */
  readonly prepare?: string;
}

/** Loopback only: the scratch server's passwordless administrator is for the agent in the same task alone. */
const LOOPBACK = '127.0.0.1';

const MYSQL_FAMILY_FLAGS = [`--bind-address=${LOOPBACK}`, '--local-infile=0', `--secure-file-priv=${SCRATCH_SECURE_FILE_PRIV}`];

/**
 * The MongoDB scratch server's root password. Not a secret: the image's entrypoint creates the root user from
 * MONGO_INITDB_ROOT_* and then starts mongod with --auth, and the agent logs in with these (MONGODB_PASSWORD); the
 * server listens on the task's loopback only, where nothing but the task's own containers reaches it.
 */
export const SCRATCH_MONGO_PASSWORD = 'restore-test-scratch';

/**
 * A MongoDB health check that passes only once the server that will stay is up: the image's entrypoint first runs a
 * temporary mongod without --auth on the same loopback port to create the root user, and that one answers listDatabases
 * to anyone. The final one, started with --auth, refuses it unauthenticated (code 13, Unauthorized). Run with mongosh
 * (the images of 6.0 on) or the legacy mongo shell (older ones), which throws or returns the failure.
 */
const MONGO_HEALTH_SCRIPT = 'let r; try { r = db.adminCommand({ listDatabases: 1 }) } catch (e) { r = e } quit(r.code === 13 ? 0 : 1)';

/**
 * A throwaway server: the agent connects as its administrator without a password (it creates the account that
 * loads the backup, without superuser, FILE or SUPER rights), so the server listens on loopback only, where only
 * the task's own containers reach it; it holds nothing but the backup under test, and is gone when the task stops.
 *
 * - PostgreSQL: trust authentication stays, because the agent connects as `postgres` with no password to create
 *   the load's role; `listen_addresses=127.0.0.1` confines it to the task (the image's first-start server listens
 *   on its socket only).
 * - MariaDB and MySQL: `--bind-address=127.0.0.1`, `--local-infile=0` (no LOAD DATA LOCAL, whatever a client
 *   asks), and `--secure-file-priv=/var/lib/mysql-files` (server-side file reads and writes confined to an empty
 *   directory); MySQL's X protocol listener is off.
 * - MongoDB: the official image's root user from MONGO_INITDB_ROOT_USERNAME and _PASSWORD (so mongod runs with
 *   --auth), `--bind_ip 127.0.0.1` (the image's entrypoint would otherwise add --bind_ip_all), and `--noscripting`:
 *   the backup is untrusted, and the views and collection validators mongorestore recreates may hold server-side
 *   JavaScript (`$where`, `$function`, `$accumulator`) that the server would run on every insert or read; without a
 *   scripting engine it refuses them, and the restore fails naming the server's error. The entrypoint passes these
 *   flags on unchanged to both servers it starts (the temporary one that creates the root user from its shell, and
 *   the one that stays). The agent logs in as root with {@link SCRATCH_MONGO_PASSWORD} and restores into a database
 *   it names, which MongoDB creates on write.
 */
const SCRATCH: Record<DatabaseFlavour, ScratchSettings> = {
  [DatabaseFlavour.POSTGRES]: {
    port: 5432, user: 'postgres',
    environment: { POSTGRES_HOST_AUTH_METHOD: 'trust', POSTGRES_DB: SCRATCH_DATABASE },
    // Over TCP: the image's first-start server listens on the socket only, so this waits for the real one.
    healthCommand: ['CMD-SHELL', `pg_isready -h ${LOOPBACK} -p 5432 -U postgres -d ${SCRATCH_DATABASE}`],
    serverCommand: () => ['postgres', '-c', `listen_addresses=${LOOPBACK}`],
  },
  [DatabaseFlavour.MARIADB]: {
    port: 3306, user: 'root',
    environment: { MARIADB_ALLOW_EMPTY_ROOT_PASSWORD: '1', MARIADB_DATABASE: SCRATCH_DATABASE },
    healthCommand: ['CMD-SHELL', 'healthcheck.sh --connect --innodb_initialized'],
    // The server is mariadbd from 10.5 on; older images know it as mysqld.
    serverCommand: (version) => [olderThan(version, [10, 5]) ? 'mysqld' : 'mariadbd', ...MYSQL_FAMILY_FLAGS],
    prepare: `mkdir -p ${SCRATCH_SECURE_FILE_PRIV}`,
  },
  [DatabaseFlavour.MYSQL]: {
    port: 3306, user: 'root',
    environment: { MYSQL_ALLOW_EMPTY_PASSWORD: 'yes', MYSQL_DATABASE: SCRATCH_DATABASE },
    healthCommand: ['CMD-SHELL', `mysqladmin ping -h ${LOOPBACK} --silent`],
    serverCommand: () => ['mysqld', ...MYSQL_FAMILY_FLAGS, '--mysqlx=0'],
    prepare: `mkdir -p ${SCRATCH_SECURE_FILE_PRIV}`,
  },
  [DatabaseFlavour.MONGODB]: {
    port: 27017, user: 'root',
    environment: { MONGO_INITDB_ROOT_USERNAME: 'root', MONGO_INITDB_ROOT_PASSWORD: SCRATCH_MONGO_PASSWORD },
    agentEnvironment: { MONGODB_PASSWORD: SCRATCH_MONGO_PASSWORD, MONGODB_AUTH_SOURCE: 'admin' },
    healthCommand: ['CMD-SHELL', `$(command -v mongosh || command -v mongo) --quiet --host ${LOOPBACK} --port 27017 --eval '${MONGO_HEALTH_SCRIPT}'`],
    serverCommand: () => ['mongod', '--bind_ip', LOOPBACK, '--noscripting'],
  },
};

function olderThan(version: string, [major, minor]: [number, number]): boolean {
  const [m, n] = version.split('.').map(Number);
  return m < major || (m === major && n < minor);
}

export function scratchConnection(flavour: DatabaseFlavour): ScratchConnection {
  const { port, user } = SCRATCH[flavour];
  return { port, user };
}

/**
 * The scratch container's entryPoint and command: a shell that removes the task role's credential variables, then
 * execs the image's own entrypoint with the server command, so that neither the server nor anything it starts
 * (`COPY … TO PROGRAM`, an init script) inherits them. `exec` replaces the shell, so no process of the container
 * keeps the original environment either.
 */
export function scratchEntrypoint(flavour: DatabaseFlavour, version: string): { entryPoint: string[]; command: string[] } {
  const settings = SCRATCH[flavour];
  const steps = [`unset ${CREDENTIAL_VARIABLES.join(' ')}`, ...(settings.prepare ? [settings.prepare] : []), `exec ${IMAGE_ENTRYPOINT} "$@"`];
  return { entryPoint: ['/bin/sh', '-c', steps.join('; '), 'scratch-entrypoint'], command: settings.serverCommand(version) };
}

/** The task volume a point-in-time restore test shares between the agent and the scratch server, and where both mount it. */
export const PITR_VOLUME = 'restore';
export const PITR_MOUNT = '/restore';
/** The agent's `--pitr-dir`: what it restores there, the server reads (see PITR_TEST_FILES). */
export const PITR_TEST_DIR = `${PITR_MOUNT}/pitr`;

/**
 * The scratch container of a point-in-time restore test: a PostgreSQL server of the source's version that boots from
 * the data directory the agent restores onto the shared volume. Its shell removes the credential variables first, as
 * every scratch container's does; opens the volume to the agent, which runs as another user (sticky, as /tmp is: the
 * health check waits for it, and the agent for the health check); waits for the agent's ready marker, written once the
 * identity is gone; gives the server's user the data and the fetched WAL; and execs the image's entrypoint, which
 * finds a data directory and starts the server with the test's whole configuration, its output in the test's log.
 */
export function pitrScratchEntrypoint(): { entryPoint: string[]; command: string[]; environment: Record<string, string> } {
  const at = (file: string) => `${PITR_TEST_DIR}/${file}`;
  const steps = [
    `unset ${CREDENTIAL_VARIABLES.join(' ')}`,
    `chmod 1777 ${PITR_MOUNT}`,
    `until [ -f ${at(PITR_TEST_FILES.ready)} ]; do sleep 2; done`,
    `chown -R postgres:postgres ${at(PITR_TEST_FILES.dataDir)} ${at(PITR_TEST_FILES.walDir)}`,
    `exec ${IMAGE_ENTRYPOINT} "$@" >> ${at(PITR_TEST_FILES.serverLog)} 2>&1`,
  ];
  return {
    entryPoint: ['/bin/sh', '-c', steps.join('; '), 'scratch-entrypoint'],
    command: ['postgres', '-D', at(PITR_TEST_FILES.dataDir), '-c', `config_file=${at(PITR_TEST_FILES.config)}`],
    // The image's entrypoint reads PGDATA: it sees the restored cluster there and starts it rather than making one.
    environment: { PGDATA: at(PITR_TEST_FILES.dataDir) },
  };
}

export interface RestoreTestTaskProps {
  /** A source that this task definition serves: its flavour picks the scratch server's settings. */
  readonly source: BackupSource;
  readonly agentImage: ecs.ContainerImage;
  readonly executionRole: iam.IRole;
  /** A role without permissions: every run overrides it with the source's restore-test role. */
  readonly defaultTaskRole: iam.IRole;
  readonly logGroup: logs.ILogGroup;
  readonly cpu: number;
  readonly memoryLimitMiB: number;
  readonly ephemeralStorageGiB?: number;
  /** How long the scratch server may take to become healthy before the task gives up. */
  readonly scratchStartTimeout: Duration;
  /**
   * A point-in-time restore test (a WAL-archived PostgreSQL source): the scratch server boots from the data the agent
   * restores onto a volume they share, instead of an empty database the agent loads a dump into.
   * @default false
   */
  readonly pointInTime?: boolean;
}

/**
 * One restore-test task definition: the scratch-database sidecar of the source's engine and version (or its own
 * scratch image), started first and health-checked, then the agent, which starts only once the sidecar is
 * HEALTHY. The agent is essential, so the task ends with it; the sidecar is not, so a task stops for the agent's
 * reason. No volume outlives the task: the restored data goes with it.
 *
 * The scratch server runs SQL from the backup, which is untrusted input, and ECS has no per-container
 * credentials: every container of the task is given the task role's (the restore-test role, which reads the
 * identity and backups). So the scratch container's entrypoint removes the credential variables
 * ({@link CREDENTIAL_VARIABLES}) before it execs the image's own entrypoint (see {@link scratchEntrypoint}), and
 * `pidMode` stays unset, so the containers do not share a PID namespace and the server cannot read the agent's
 * `/proc/<pid>/environ`. What remains:
 * - the credentials endpoint, 169.254.170.2, is reachable from the scratch container (the task's containers share
 *   one network namespace), but it serves credentials only at the relative URI, a secret path the server's
 *   environment no longer holds;
 * - ECS starts the health check with the container's own environment, variables included; it runs as root, and
 *   the server runs as its own user (postgres, mysql), which cannot read a root process's environment;
 * - the agent container still holds the credentials, and the identity until the agent drops it before the load;
 *   what guards it is that the backup's SQL runs in the server, never in the agent (see the engines' loaders);
 * - the task metadata endpoint (`ECS_CONTAINER_METADATA_URI_V4`) stays: it describes the task, with no credentials.
 *
 * A `scratchImage` must therefore be the official image of its engine or built on it: this relies on its
 * `docker-entrypoint.sh`, its environment variables and its health-check tools.
 */
export class RestoreTestTask extends Construct {
  public readonly taskDefinition: ecs.FargateTaskDefinition;
  public readonly scratch: ScratchConnection;
  /** The engine family its scratch server runs. */
  public readonly scratchFlavour: DatabaseFlavour;
  /** Whether its tests are point-in-time restores, the agent's restore in PITR_TEST_DIR booted by the scratch server. */
  public readonly pointInTime: boolean;

  constructor(scope: Construct, id: string, props: RestoreTestTaskProps) {
    super(scope, id);
    const settings = SCRATCH[props.source.engine.flavour];
    this.scratch = { port: settings.port, user: settings.user };
    this.scratchFlavour = props.source.engine.flavour;
    this.taskDefinition = new ecs.FargateTaskDefinition(this, 'TaskDefinition', {
      cpu: props.cpu,
      memoryLimitMiB: props.memoryLimitMiB,
      ephemeralStorageGiB: props.ephemeralStorageGiB,
      executionRole: props.executionRole,
      taskRole: props.defaultTaskRole,
      runtimePlatform: AGENT_RUNTIME_PLATFORM,
    });
    this.pointInTime = props.pointInTime ?? false;
    if (this.pointInTime && this.scratchFlavour !== DatabaseFlavour.POSTGRES) {
      throw new RestorableError(this, `a point-in-time restore test is for PostgreSQL sources, and '${props.source.name}' is ${props.source.engine}`);
    }
    const pitr = this.pointInTime ? pitrScratchEntrypoint() : undefined;
    if (pitr) this.taskDefinition.addVolume({ name: PITR_VOLUME });
    const scratch = this.taskDefinition.addContainer(SCRATCH_CONTAINER, {
      image: props.source.scratchImage,
      ...(pitr ? { entryPoint: pitr.entryPoint, command: pitr.command } : scratchEntrypoint(props.source.engine.flavour, props.source.engine.version)),
      essential: false,
      environment: pitr?.environment ?? settings.environment,
      portMappings: [{ containerPort: settings.port }],
      healthCheck: {
        // A point-in-time server starts only once the agent has restored its data: healthy is the volume open to the agent.
        command: pitr ? ['CMD-SHELL', `test -k ${PITR_MOUNT}`] : settings.healthCommand,
        interval: Duration.seconds(pitr ? 5 : 10),
        timeout: Duration.seconds(5),
        retries: 6,
        startPeriod: Duration.seconds(pitr ? 10 : 60),
      },
      logging: ecs.LogDrivers.awsLogs({ logGroup: props.logGroup, streamPrefix: `restore-test-scratch-${props.source.engine.flavour}` }),
    });
    const agent = this.taskDefinition.addContainer(RESTORE_TEST_AGENT_CONTAINER, {
      image: props.agentImage,
      essential: true,
      command: ['--help'],
      ...(pitr || !settings.agentEnvironment ? {} : { environment: settings.agentEnvironment }),
      startTimeout: props.scratchStartTimeout,
      logging: ecs.LogDrivers.awsLogs({ logGroup: props.logGroup, streamPrefix: 'restore-test' }),
    });
    if (pitr) {
      for (const container of [scratch, agent]) container.addMountPoints({ sourceVolume: PITR_VOLUME, containerPath: PITR_MOUNT, readOnly: false });
    }
    agent.addContainerDependencies({ container: scratch, condition: ecs.ContainerDependencyCondition.HEALTHY });
    acknowledgeNag(this.taskDefinition, 'ECS2', 'The environment holds only the scratch server\'s settings (an empty database name, passwordless access inside ' +
        'the task, or a MongoDB scratch server\'s fixed root password, which guards a server on the task\'s loopback only); no secret: the agent ' +
        'reads the age identity from Secrets Manager itself');
  }
}
