/**
 * The metric the vault's identity copier publishes and VaultIdentity's alarm watches, in the Restorable namespace
 * (METRIC_NAMESPACE). One module, free of CDK, so that the function's bundle and the construct share it.
 */

/** How many distinct age identities the vault's copy holds, published after each successful copy (absent after a failed one). */
export const VAULT_IDENTITY_KEYS = 'VaultIdentityKeys';

/** The dimension that names the vault's identity secret (by its name). */
export const VAULT_IDENTITY_DIMENSION = 'IdentitySecret';
