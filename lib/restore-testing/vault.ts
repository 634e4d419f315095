import { ReplicaStore } from '../store/replica-store';

/**
 * Whether a replica store is a vault: in another account than the primary store that replicates to it. Read from
 * the store's own `isVault` when it has one.
 */
export function isVault(replica: ReplicaStore, primaryAccount?: string): boolean {
  const said = (replica as { readonly isVault?: boolean }).isVault;
  if (typeof said === 'boolean') return said;
  return primaryAccount !== undefined && replica.account !== primaryAccount;
}
