import { Duration } from 'aws-cdk-lib';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { AGENT_RUNTIME_PLATFORM } from '../backups/agent-image';
import { BackupSource, DatabaseFlavour } from '../backups/backup-source';
import { acknowledgeNag } from '../shared/nag';

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

interface ScratchSettings extends ScratchConnection {
  readonly environment: Record<string, string>;
  readonly healthCommand: string[];
}

/**
 * A throwaway server: it accepts the agent without a password, because it listens only inside the task (the
 * security group admits nothing), holds nothing but the backup under test, and is gone when the task stops.
 */
const SCRATCH: Record<DatabaseFlavour, ScratchSettings> = {
  [DatabaseFlavour.POSTGRES]: {
    port: 5432, user: 'postgres',
    environment: { POSTGRES_HOST_AUTH_METHOD: 'trust', POSTGRES_DB: SCRATCH_DATABASE },
    // Over TCP: the image's first-start server listens on the socket only, so this waits for the real one.
    healthCommand: ['CMD-SHELL', `pg_isready -h 127.0.0.1 -p 5432 -U postgres -d ${SCRATCH_DATABASE}`],
  },
  [DatabaseFlavour.MARIADB]: {
    port: 3306, user: 'root',
    environment: { MARIADB_ALLOW_EMPTY_ROOT_PASSWORD: '1', MARIADB_DATABASE: SCRATCH_DATABASE },
    healthCommand: ['CMD-SHELL', 'healthcheck.sh --connect --innodb_initialized'],
  },
  [DatabaseFlavour.MYSQL]: {
    port: 3306, user: 'root',
    environment: { MYSQL_ALLOW_EMPTY_PASSWORD: 'yes', MYSQL_DATABASE: SCRATCH_DATABASE },
    healthCommand: ['CMD-SHELL', 'mysqladmin ping -h 127.0.0.1 --silent'],
  },
};

export function scratchConnection(flavour: DatabaseFlavour): ScratchConnection {
  const { port, user } = SCRATCH[flavour];
  return { port, user };
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
}

/**
 * One restore-test task definition: the scratch-database sidecar of the source's engine and version (or its own
 * scratch image), started first and health-checked, then the agent, which starts only once the sidecar is
 * HEALTHY. The agent is essential, so the task ends with it; the sidecar is not, so a task stops for the agent's
 * reason. No volume outlives the task: the restored data goes with it.
 */
export class RestoreTestTask extends Construct {
  public readonly taskDefinition: ecs.FargateTaskDefinition;
  public readonly scratch: ScratchConnection;
  /** The engine family its scratch server runs. */
  public readonly scratchFlavour: DatabaseFlavour;

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
    const scratch = this.taskDefinition.addContainer(SCRATCH_CONTAINER, {
      image: props.source.scratchImage,
      essential: false,
      environment: settings.environment,
      portMappings: [{ containerPort: settings.port }],
      healthCheck: {
        command: settings.healthCommand,
        interval: Duration.seconds(10),
        timeout: Duration.seconds(5),
        retries: 6,
        startPeriod: Duration.seconds(60),
      },
      logging: ecs.LogDrivers.awsLogs({ logGroup: props.logGroup, streamPrefix: `restore-test-scratch-${props.source.engine.flavour}` }),
    });
    const agent = this.taskDefinition.addContainer(RESTORE_TEST_AGENT_CONTAINER, {
      image: props.agentImage,
      essential: true,
      command: ['--help'],
      startTimeout: props.scratchStartTimeout,
      logging: ecs.LogDrivers.awsLogs({ logGroup: props.logGroup, streamPrefix: 'restore-test' }),
    });
    agent.addContainerDependencies({ container: scratch, condition: ecs.ContainerDependencyCondition.HEALTHY });
    acknowledgeNag(this.taskDefinition, 'ECS2', 'The environment holds only the scratch server\'s settings (an empty database name, passwordless access inside ' +
        'the task); no secret: the agent reads the age identity from Secrets Manager itself');
  }
}
