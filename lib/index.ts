/*
 * The public API: the constructs, their props, SourceEngine and the types they take or return. Everything else
 * (the contract shared with the handlers and the agent, the checks, the parts the constructs are built from) is
 * internal and may change in any release.
 */
export { Tier, type KeepCounts } from './contract/tiers';
export type { TierRetention } from './store/retention-policy';
export { BackupBucket, type BackupBucketProps, type BackupWriteOptions, type BinlogPushOptions, type TierTransition, type WalPushOptions } from './store/backup-bucket';
export { BackupStore, type BackupStoreProps } from './store/backup-store';
export { ReplicaStore, type ReplicaStoreProps } from './store/replica-store';
export { BackupKeys, type BackupKeysProps, type IdentityReadOptions } from './keys/backup-keys';
export { VaultIdentity, type VaultIdentityProps } from './keys/vault-identity';
export { type BackupSource, type BackupSourceProps, DatabaseFlavour, type SourceEndpoint, SourceEngine } from './backups/backup-source';
export { MongoAuthMechanism, type MongoDbConnection } from './backups/mongodb-connection';
export { DatabaseBackups, type DatabaseBackupsProps } from './backups/database-backups';
export { DatabaseHosting, WalArchiveMode, type WalArchiving, type WalArchivingSettings } from './backups/wal-archive';
export { WalReceiver, type WalReceiverProps } from './backups/wal-receiver';
export { BinlogStreamer, type BinlogStreamerProps } from './backups/binlog-streamer';
export { type BinlogStreaming, type BinlogStreamingSettings } from './backups/binlog-streaming';
export { SpooledService, type SpooledServiceProps, type SpooledServiceKind } from './backups/spooled-service';
export { WalSpool, type WalSpoolProps } from './backups/wal-spool';
export { BackupJobAlerts, type BackupJobAlertsProps } from './backups/backup-job-alerts';
export { HoldKeeper, type HoldKeeperProps, type HoldKeeperSourceOptions } from './backups/hold-keeper';
export { AlarmTopic, type AlarmTopicProps } from './monitoring/alarm-topic';
export { BackupDashboard, type BackupDashboardProps, type SourceRowMetrics } from './monitoring/backup-dashboard';
export { BackupMonitoring, type BackupMonitoringProps, type MonitoredSourceOptions, type MonitoredWalArchive } from './monitoring/backup-monitoring';
export { type MonitoredBinlog } from './monitoring/binlog-monitoring';
export { type RestoreTestCheck, type RestoreTestSourceProps, RowCountTolerance } from './restore-testing/restore-test-source';
export { RestoreTesting, type RestoreTestingProps } from './restore-testing/restore-testing';
export { type IVaultIdentity, VaultRestoreTesting, type VaultRestoreTestingProps } from './restore-testing/vault-restore-testing';
export { DisasterRecoveryRunbook, type DisasterRecoveryRunbookProps, type RunbookVaultProps } from './runbook/disaster-recovery-runbook';
export { VaultRunbook, type VaultRunbookProps } from './runbook/vault-runbook';
