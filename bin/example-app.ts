import { App, Stack } from 'aws-cdk-lib';
import { BackupStore, ReplicaStore } from '../lib';
import { EnvironmentConfig } from './environments';

/** The stacks of one environment: the replica in the DR region, the primary store that replicates to it. */
export interface ExampleStacks {
  readonly primary: Stack;
  readonly replica: Stack;
  readonly store: BackupStore;
  readonly replicaStore: ReplicaStore;
}

export function addExampleStacks(app: App, env: EnvironmentConfig & { readonly name: string }): ExampleStacks {
  const replica = new Stack(app, `Restorable-${env.name}-Replica`, {
    env: { account: env.account, region: env.replicaRegion },
    description: `Restorable (${env.name}): offsite copy of the backups`,
  });
  const replicaStore = new ReplicaStore(replica, 'ReplicaStore');

  const primary = new Stack(app, `Restorable-${env.name}`, {
    env: { account: env.account, region: env.region },
    description: `Restorable (${env.name}): backup store`,
  });
  const store = new BackupStore(primary, 'BackupStore', { replica: replicaStore });
  return { primary, replica, store, replicaStore };
}
