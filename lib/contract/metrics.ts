/**
 * CloudWatch metric names, published by the agent and the handlers and watched by the alarms.
 * One module, so publisher and alarm can never disagree.
 */
export const METRIC_NAMESPACE = 'Restorable';

/** The dimension that names a source. */
export const SOURCE_DIMENSION = 'Source';

export const Metrics = {
  /** Seconds since the newest good backup started. */
  BACKUP_AGE_SECONDS: 'BackupAgeSeconds',
  /** The largest age over its source's threshold; above 1 means some source is stale. */
  FLEET_STALENESS_RATIO: 'FleetStalenessRatio',
  /** Number of sources with no backup at all (or a pointer to a missing object). */
  SOURCES_WITHOUT_BACKUP: 'SourcesWithoutBackup',
  /**
   * Number of sources whose latest.json or restore-test report states a time S3 contradicts: in the future, or
   * later than the LastModified (set by S3, not by the writer) of the object that bounds it by more than
   * POINTER_CLOCK_SKEW_SECONDS. A forged or skewed pointer: its ages come from S3's times, never from its own.
   */
  FORGED_POINTERS: 'ForgedOrSkewedPointers',
  /**
   * Sources whose latest.json the hold keeper refused to follow: it names no backup of the source under the
   * source's prefix, is unreadable, or disagrees with the backup's manifest (size, SHA-256) or with the size S3
   * stored. Published fleet-wide (a count) and per source (1) for each source refused; the newest proven backup
   * keeps its hold either way.
   */
  POINTER_MISMATCH: 'PointerMismatch',
  BACKUP_SIZE_BYTES: 'BackupSizeBytes',
  /** Newest size over the median of recent backups. */
  BACKUP_SIZE_RATIO: 'BackupSizeRatio',
  /**
   * A new backup's size against its limits, min(ratio / floor, size / minimum), published without a Source
   * dimension: its Minimum over a period is the fleet's worst backup, and below 1 means a size anomaly.
   */
  FLEET_SIZE_RATIO: 'FleetMinSizeRatio',
  /** Number of sources whose freshness check failed (an unreadable pointer, an S3 error). */
  SOURCES_NOT_CHECKED: 'SourcesNotChecked',
  BACKUP_JOB_FAILURES: 'BackupJobFailures',
  BACKUP_DURATION_SECONDS: 'BackupDurationSeconds',
  RESTORE_TEST_SUCCESS: 'RestoreTestSuccess',
  RESTORE_DURATION_SECONDS: 'RestoreDurationSeconds',
  RESTORED_BACKUP_AGE_SECONDS: 'RestoredBackupAgeSeconds',
  /**
   * Seconds a source has gone without a restore test: since its newest report finished or, for a restore-tested
   * source with no report yet, since its oldest stored backup started. Per source, and fleet-wide (the worst).
   */
  RESTORE_TEST_AGE_SECONDS: 'RestoreTestAgeSeconds',
  /**
   * A restore test's duration over its source's RTO target, when it has one: above 1 means the measured restore
   * took longer than the RTO. Published per source and fleet-wide, so one alarm watches every target.
   */
  RESTORE_RTO_RATIO: 'RestoreDurationOverRto',
  RESTORE_TEST_ORCHESTRATION_FAILURES: 'RestoreTestOrchestrationFailures',
  /**
   * Seconds since S3 stored (its LastModified, not a time the writer states) the newest WAL object of a source that
   * archives its WAL continuously, among those since its newest base backup: the continuous RPO. Per source.
   */
  WAL_ARCHIVE_AGE_SECONDS: 'WalArchiveAgeSeconds',
  /** The largest WAL archive age over its source's walArchive.maxAge; above 1 means some source's WAL is stale. */
  FLEET_WAL_STALENESS_RATIO: 'FleetWalArchiveStalenessRatio',
  /**
   * 1 for a source whose WAL chain since its newest base backup has a gap (a missing segment, a timeline without its
   * history file) or that has no usable base backup: point-in-time recovery cannot reach past it until a new base
   * backup is taken. Per source (0 or 1), and fleet-wide (how many sources).
   */
  WAL_GAPS: 'WalArchiveGaps',
  /** Seconds since S3 stored the base backup a source's base/latest.json names. Per source. */
  BASE_BACKUP_AGE_SECONDS: 'BaseBackupAgeSeconds',
  /** The largest base backup age over its source's walArchive.baseBackupMaxAge; above 1 means some base backup is stale. */
  FLEET_BASE_BACKUP_STALENESS_RATIO: 'FleetBaseBackupStalenessRatio',
  /**
   * Seconds since S3 stored (its LastModified) the newest binlog object of a source whose binlogs are streamed, in its
   * newest stream: the continuous RPO of a MariaDB source. Per source.
   */
  BINLOG_ARCHIVE_AGE_SECONDS: 'BinlogArchiveAgeSeconds',
  /** The largest binlog archive age over its source's maxArchiveAge; above 1 means some source's binlogs are stale. */
  FLEET_BINLOG_STALENESS_RATIO: 'FleetBinlogArchiveStalenessRatio',
  /**
   * 1 for a source whose binlogs cannot be replayed from its newest dump to the newest streamed event: the stream
   * began anew after the dump (a purged file, RESET MASTER, another server), a file is missing, or the dump has no
   * coordinates. Per source (0 or 1), and fleet-wide (how many sources). A new dump ends it.
   */
  BINLOG_GAPS: 'BinlogArchiveGaps',
} as const;
