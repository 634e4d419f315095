import { Construct } from 'constructs';
import { BinlogStreamingSettings } from './binlog-streaming';
import { DOWN_MINUTES, SpooledService, SpooledServiceProps } from './spooled-service';

export interface BinlogStreamerProps extends SpooledServiceProps {
  readonly settings: BinlogStreamingSettings;
}

/**
 * One MariaDB source's binlog streamer: `restorable binlog-stream` as an ECS Fargate service of one task, reading the
 * server's binlogs as a replica does (`mariadb-binlog --read-from-remote-server --raw --stop-never` with the
 * settings' server id) into a spool directory on EFS, and uploading each closed file, and the file being written every
 * partialUploadInterval, with an index of where a restore to a time stops.
 *
 * Never two streamers at once, since a second connection with the same server id makes the server drop the first: a
 * deployment stops the running task before it starts the new one (minimum healthy 0 %, maximum 100 %); a task that
 * keeps failing to start is rolled back by the deployment circuit breaker, and a task that stops is replaced by ECS.
 * Its role may add objects under the source's `binlog/` prefix (tagged with the daily tier, write-once) and read the
 * replication secret, and nothing else: not read an object's bytes, not list, not delete, not place a legal hold, not
 * touch the source's dumps, its reports or another source. Nothing releases a binlog file's hold, so it places none:
 * the files expire with the daily tier, and the dumps they replay onto keep their own holds.
 */
export class BinlogStreamer extends SpooledService {
  constructor(scope: Construct, id: string, props: BinlogStreamerProps) {
    const { connection: source, settings, store } = props;
    super(scope, id, props, {
      command: 'binlog-stream',
      options: [
        '--server-id', String(settings.serverId),
        '--partial-interval', String(settings.partialUploadInterval.toSeconds()),
        ...(settings.startFile ? ['--start-file', settings.startFile] : []),
      ],
      roleDescription: `Restorable binlog streamer of source ${source.name}: adds binlogs under its binlog/ prefix, reads its replication secret`,
      grantStore: (role) => store.grantBinlogPush(role, source.name),
      logStreamPrefix: `binlog-streamer-${source.name}`,
      downAlarmDescription: `The binlog streamer of ${source.name} has had no running task for ${DOWN_MINUTES} minutes: its binlogs are not ` +
        'being streamed, and the server purges them on its own schedule (binlog_expire_logs_seconds, or binlog retention hours on RDS): ' +
        'whatever it purges before the streamer is back is a gap that only a new dump closes. See the streamer\'s logs and the service\'s events.',
    });
  }
}
