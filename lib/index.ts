export * from './contract';
export * from './retention-policy';
export * from './backup-bucket';
export * from './backup-store';
export * from './replica-store';
export * from './backup-keys';
