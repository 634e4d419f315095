/**
 * The age identity that opens backups: a file, or a Secrets Manager secret whose SecretString is an
 * identity file (design §3). `age -d -i` needs a file, so a secret is written to a 0600 file in a
 * private temporary directory, removed when the command ends or is stopped.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { OptionKind, OptionSpecs } from '../shared/args';
import { onAbort } from '../shared/cleanup';
import { AgentError, UsageError, redactor } from '../shared/errors';

export const IDENTITY_OPTIONS: OptionSpecs = {
  'identity-file': { kind: OptionKind.STRING, placeholder: 'FILE', description: 'age identity file (AGE-SECRET-KEY-1… lines)' },
  'identity-secret-id': { kind: OptionKind.STRING, placeholder: 'ARN|NAME', description: 'Secrets Manager secret holding the age identity file' },
};

export interface Identity {
  /** A file for `age -d -i`. */
  readonly file: string;
  /** Removes the temporary copy of a secret; a no-op for a user's own file. */
  release(): void;
}

const SECRET_KEY_LINE = /^AGE-SECRET-KEY-1[0-9A-Z]+$/;

/** The identity lines of an identity file's text; each is registered with the redactor. */
function identityLines(text: string, where: string): string[] {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  if (lines.length === 0 || !lines.every((l) => SECRET_KEY_LINE.test(l))) {
    const looksPublic = lines.some((l) => l.startsWith('age1'));
    throw new UsageError(`${where} is not an age identity: expected AGE-SECRET-KEY-1… lines` +
      (looksPublic ? ' (it holds a public key, age1…; restores need the private identity)' : ''));
  }
  for (const line of lines) redactor.add(line);
  return lines;
}

async function secretText(secretId: string, client: SecretsManagerClient): Promise<string> {
  try {
    const text = (await client.send(new GetSecretValueCommand({ SecretId: secretId }))).SecretString;
    if (text) return text;
  } catch (err) {
    const e = err as Error;
    throw new AgentError(`could not read the identity secret '${secretId}': ${e.name}: ${e.message}; check the secret id and region, ` +
      'and that this role may call secretsmanager:GetSecretValue on it (only restore roles may)');
  }
  throw new AgentError(`the identity secret '${secretId}' has no SecretString: it should hold an age identity file`);
}

/**
 * Resolves `--identity-file` or `--identity-secret-id` (exactly one) to a file age can read. `secrets` makes the
 * client for the secret it is given (in the region its ARN names, a DR replica's say).
 */
export async function resolveIdentity(file: string | undefined, secretId: string | undefined,
  secrets: (secretId: string) => SecretsManagerClient): Promise<Identity> {
  if ((file === undefined) === (secretId === undefined)) {
    throw new UsageError('give exactly one of --identity-file FILE or --identity-secret-id ID (the age identity that opens the backups)');
  }
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read --identity-file ${file}: ${(err as Error).message}`);
    }
    identityLines(text, `--identity-file ${file}`);
    return { file, release: () => undefined };
  }
  const lines = identityLines(await secretText(secretId!, secrets(secretId!)), `the secret '${secretId}'`);
  const dir = mkdtempSync(join(tmpdir(), 'restorable-identity-'));
  const path = join(dir, 'identity.txt');
  writeFileSync(path, `${lines.join('\n')}\n`, { mode: 0o600 });
  const remove = () => rmSync(dir, { recursive: true, force: true });
  const forget = onAbort(remove);
  return { file: path, release: () => { remove(); forget(); } };
}
