/**
 * Work that must happen even when the agent is stopped by a signal (ECS sends SIGTERM before
 * SIGKILL): stop child processes, remove the file that holds a password.
 */
const actions = new Set<() => void>();

/** Registers a synchronous cleanup; returns a function that unregisters it once done normally. */
export function onAbort(action: () => void): () => void {
  actions.add(action);
  return () => actions.delete(action);
}

/** Runs every registered cleanup, once, ignoring failures: the process is going away. */
export function runAbortActions(): void {
  for (const action of [...actions]) {
    actions.delete(action);
    try {
      action();
    } catch {
      // best effort
    }
  }
}
