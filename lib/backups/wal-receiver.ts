import { Construct } from 'constructs';
import { DOWN_MINUTES, SpooledService, SpooledServiceProps } from './spooled-service';
import { WalArchivingSettings } from './wal-archive';

export interface WalReceiverProps extends SpooledServiceProps {
  readonly settings: WalArchivingSettings;
}

/**
 * One source's WAL receiver: `restorable wal-receive` as an ECS Fargate service of one task, streaming the source's
 * WAL over its replication slot into a spool directory on EFS and uploading each file, and the segment being written
 * every partialUploadInterval, into the store.
 *
 * Never two receivers on one slot: a deployment stops the running task before it starts the new one (minimum
 * healthy 0 %, maximum 100 %); a task that keeps failing to start is rolled back by the deployment circuit breaker,
 * and a task that stops is replaced by ECS. Its role may add WAL under the source's `wal/` prefix (tagged with the
 * daily tier, write-once, legal holds placed only) and read the replication secret, and nothing else: not read a WAL
 * file's bytes, not delete, not touch the source's dumps or another source.
 */
export class WalReceiver extends SpooledService {
  constructor(scope: Construct, id: string, props: WalReceiverProps) {
    const { connection: source, settings, store } = props;
    super(scope, id, props, {
      command: 'wal-receive',
      options: [
        '--slot', settings.slotName!,
        '--partial-interval', String(settings.partialUploadInterval!.toSeconds()),
        // Whole segments and history files only; the hold keeper releases them below the settled base backup.
        ...(store.objectLockEnabled ? ['--legal-hold'] : []),
      ],
      roleDescription: `Restorable WAL receiver of source ${source.name}: adds WAL under its wal/ prefix, reads its replication secret`,
      grantStore: (role) => store.grantWalPush(role, source.name),
      logStreamPrefix: `wal-receiver-${source.name}`,
      downAlarmDescription: `The WAL receiver of ${source.name} has had no running task for ${DOWN_MINUTES} minutes: its WAL is not being ` +
        'archived (the replication slot keeps it on the server, whose disk fills). See the receiver\'s logs and the service\'s events.',
    });
  }
}
