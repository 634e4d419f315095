/**
 * The package entry exports the constructs, their props, SourceEngine and the types they take or return, and
 * nothing internal: the contract shared with the handlers and the agent, the checks, and the parts the constructs
 * are built from stay importable by file path (as these tests do) but are no part of the API.
 */
import * as api from '../../lib';

/** Every runtime export of the entry (interfaces and type aliases have none). */
const PUBLIC = [
  'AlarmTopic', 'BackupBucket', 'BackupDashboard', 'BackupJobAlerts', 'BackupKeys', 'BackupMonitoring', 'BackupStore', 'BinlogStreamer',
  'DatabaseBackups', 'DatabaseFlavour', 'DatabaseHosting', 'HoldKeeper', 'MongoAuthMechanism', 'DisasterRecoveryRunbook', 'ReplicaStore', 'RestoreTesting', 'RowCountTolerance',
  'SourceEngine', 'SpooledService', 'Tier', 'VaultIdentity', 'VaultRestoreTesting', 'VaultRunbook', 'WalArchiveMode', 'WalReceiver', 'WalSpool',
];

test('given the package entry, then it exports exactly the allowed constructs, classes and enums', () => {
  expect(Object.keys(api).sort()).toEqual([...PUBLIC].sort());
});

test.each([
  'parseManifest', 'parseLatest', 'parseRestoreTestPointer', 'renderRunbook', 'runbookBlocks', 'ContractError', 'Metrics', 'METRIC_NAMESPACE',
  'backupKey', 'tierFor', 'cronProblem', 'cronForRpo', 'rpoProblem', 'taskSizeProblem', 'POSTGRES_MAJORS', 'RestoreTestTask',
  'RestoreTestOrchestration', 'RestoreTestAlarms', 'MonitoringRules', 'MonitorFunction', 'InlinePolicyRole', 'agentImage',
  'planRetention', 'retentionProblems', 'MINIMUM_STORAGE_DAYS', 'RestorableError', 'ObjectLockMode',
])('given the internal %s, then the package entry does not export it', (name) => {
  expect(Object.keys(api)).not.toContain(name);
});
