/**
 * No silent success: node exits 0 when its event loop drains, even while a command's promise is still
 * pending (a stream event awaited after it had fired, say). The guard runs a command to completion and,
 * should the process be about to exit before the command settled, exits 70 with one line saying so (the same
 * `restorable <command>: …` line as every other failure, and only that).
 */
import { redactor } from './errors';

/** The exit code of a command that stopped before finishing: an internal error (EX_SOFTWARE). */
export const UNSETTLED_EXIT_CODE = 70;

export function runToCompletion(command: string, run: () => Promise<number>): void {
  let settled = false;
  process.once('beforeExit', () => {
    if (settled) return;
    const message = `the command stopped before finishing (an internal error): nothing it was doing can be trusted as done`;
    process.stderr.write(`restorable ${command}: ${message}\n`);
    process.exit(UNSETTLED_EXIT_CODE);
  });
  run().then(
    (code) => { settled = true; process.exitCode = code; },
    (err: unknown) => {
      settled = true;
      process.stderr.write(`restorable ${command}: unexpected error: ${redactor.redact(String((err as Error)?.stack ?? err))}\n`);
      process.exitCode = 1;
    },
  );
}
