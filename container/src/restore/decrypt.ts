/**
 * The way back from the stored format: age -d, then zstd -d; and what age's failures mean for a person.
 */
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { AgentError } from '../shared/errors';
import { StageFailure, StageSpec } from '../shared/pipeline';

export function decryptStage(identityFile: string): StageSpec {
  return { name: 'age', command: 'age', args: ['-d', '-i', identityFile] };
}

/**
 * zstd -d to stdout, or into `file` (a spooled dump). `sparse: false` writes every block of the file, zeros included, for
 * a file that is written into again in place (a WAL segment PostgreSQL keeps and recycles).
 */
export function decompressStage(file?: string, options: { readonly sparse?: boolean } = {}): StageSpec {
  return {
    name: 'zstd', command: 'zstd',
    args: ['-d', '-q', '--no-progress', ...(options.sparse === false ? ['--no-sparse'] : []), ...(file ? ['-f', '-o', file] : ['-c'])],
  };
}

/**
 * Whether the identity holds the key a backup was encrypted to, from the manifest's recipient fingerprint
 * (SHA-256 of the sorted recipient lines, backup/encrypt.ts). True when the fingerprint is one of the identity's
 * recipients, or all of them; otherwise undefined, never false: a fingerprint of several recipients (a
 * --recipient-file) cannot be taken apart, so an identity holding just one of them, which does open the
 * backup, looks the same as a wrong one. age itself says which it is when it decrypts.
 */
export function identityMatches(identityFile: string, fingerprint: string | undefined): boolean | undefined {
  if (!fingerprint) return undefined;
  const result = spawnSync('age-keygen', ['-y', identityFile], { encoding: 'utf8' });
  if (result.status !== 0) return undefined;
  const recipients = result.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  const digest = (lines: string[]) => createHash('sha256').update([...lines].sort().join('\n')).digest('hex');
  return recipients.some((r) => digest([r]) === fingerprint) || digest(recipients) === fingerprint ? true : undefined;
}

/**
 * Rewords a failure of `age -d`: "no identity matched" is a wrong identity or a damaged header, a failed
 * chunk is damaged or truncated bytes; any other error of age's names the object too. Failures that are not age's
 * pass through unchanged.
 */
export function explainDecryptFailure(err: unknown, where: string, identityRight: boolean | undefined): unknown {
  // age may be named second: zstd, reading its cut-short output, can exit first, and the agent, stopping the rest of
  // the pipeline then, may signal an age that had already failed on its own. age's own error line says which it was.
  const age = err instanceof StageFailure
    ? [err.exit, ...err.others].find((e) => e.name === 'age' && (!e.killedByAgent || /^age: error:/m.test(e.stderrTail)))
    : undefined;
  if (!age) return err;
  const said = age.stderrTail.split('\n').find((l) => l.startsWith('age: error:'))?.replace('age: error: ', '') ?? (err as Error).message;
  if (/no identity matched/.test(said)) {
    return new AgentError(identityRight
      ? `${where} could not be decrypted although the identity holds its recipient's key: the object's header is damaged (age: ${said})`
      : `the identity does not open ${where} (age: ${said}): it was encrypted to another key. ` +
        'Use the identity whose public key the backups are encrypted to (the source\'s identity secret, newest generation first).');
  }
  if (/payload chunk|unexpected EOF|truncated|header|trailing data|last chunk/.test(said)) {
    return new AgentError(`${where} is damaged or truncated: age could not authenticate its bytes (age: ${said})`);
  }
  // Whatever else age said, it was about this object: name it.
  return /^age: error:/m.test(age.stderrTail) ? new AgentError(`${where} could not be decrypted (age: ${said})`) : err;
}
