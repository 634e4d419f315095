/**
 * The restore-test orchestrator's configuration, shared by the construct that writes it and the handler that reads
 * it: the only sources the orchestrator starts tests of, and what runs for each. Plain types, no CDK.
 */

/** The file beside the handler (index.js) that holds the configuration. */
export const CONFIG_FILE = 'config.json';

/** The error the orchestrator throws for input it refuses; the state machine fails the source's run on it, never retries. */
export const REFUSED_ERROR = 'RestoreTestRefused';

/** One source the orchestrator may start a restore test of. */
export interface OrchestratorSource {
  /** Which of the task definitions (the TASK_DEFINITIONS environment variable, in order) runs it. */
  readonly taskDefinition: number;
  /** Its role's name, without the suffix every name ends with (ROLE_NAME_SUFFIX), under ROLE_ARN_PREFIX. */
  readonly role: string;
  /**
   * The agent's arguments per copy (`primary`, `dr`). A `{{NAME}}` argument stands for the value of the
   * `VALUE_NAME` environment variable, known only at deployment (bucket names, secret ARNs).
   */
  readonly commands: { readonly primary?: readonly string[]; readonly dr?: readonly string[] };
}

export interface OrchestratorConfig {
  readonly version: 1;
  readonly sources: Readonly<Record<string, OrchestratorSource>>;
}
