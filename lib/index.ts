/*
 * The public API: the constructs, their props, SourceEngine and the types they take or return. Everything else
 * (the contract shared with the handlers and the agent, the checks, the parts the constructs are built from) is
 * internal and may change in any release.
 */
export { Tier, type KeepCounts } from './contract/tiers';
export type { TierRetention } from './retention-policy';
export { BackupBucket, type BackupBucketProps, type BackupWriteOptions, type TierTransition } from './backup-bucket';
export { BackupStore, type BackupStoreProps } from './backup-store';
export { ReplicaStore, type ReplicaStoreProps } from './replica-store';
export { BackupKeys, type BackupKeysProps } from './backup-keys';
export { type BackupSource, type BackupSourceProps, DatabaseFlavour, type SourceEndpoint, SourceEngine } from './backup-source';
export { DatabaseBackups, type DatabaseBackupsProps } from './database-backups';
export { BackupJobAlerts, type BackupJobAlertsProps } from './backup-job-alerts';
export { AlarmTopic, type AlarmTopicProps } from './alarm-topic';
export { BackupDashboard, type BackupDashboardProps, type SourceRowMetrics } from './backup-dashboard';
export { BackupMonitoring, type BackupMonitoringProps, type MonitoredSourceOptions } from './backup-monitoring';
export { type RestoreTestCheck, type RestoreTestSourceProps, RowCountTolerance } from './restore-test-source';
export { RestoreTesting, type RestoreTestingProps } from './restore-testing';
export { DisasterRecoveryRunbook, type DisasterRecoveryRunbookProps } from './disaster-recovery-runbook';
