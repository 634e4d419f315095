/** The contracts shared by constructs, handlers and the agent. Free of aws-cdk-lib by design. */
export * from './names';
export * from './tiers';
export * from './manifest';
export * from './metrics';
export * from './runbook';
export * from './wal';
export * from './base-backup';
export * from './binlog';
