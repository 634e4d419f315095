/**
 * How the vault's copy of the identity file follows the primary's: the primary's file as it is, then every
 * identity the vault held that the primary no longer has, each with the comment lines it came with. A key once
 * copied is never dropped, so a primary emptied, shortened or replaced by mistake (or by an attacker) cannot take
 * from the vault the keys of backups made earlier.
 *
 * Nothing here returns or throws an identity: problems name line numbers and counts, never line contents.
 */
import { identityToRecipient } from 'age-encryption';
import { newestIdentity } from '../key-generator/identity-file';

/** One identity and the comment lines above it (age-keygen's `# created:`, `# public key:`), each line ending in `\n`. */
export interface IdentityBlock {
  readonly identity: string;
  readonly text: string;
}

/** The primary's value is not an identity file with at least one usable key: copying it is refused. */
export class IdentityFileRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IdentityFileRefused';
  }
}

/** The identity on a line, if the line is one (age's `AGE-SECRET-KEY-…`, as the key generator recognises it). */
function identityOn(line: string): string | undefined {
  return newestIdentity(line)?.identity;
}

/** The identities of a file and the comment lines above each; other lines (a placeholder) are skipped. */
export function identityBlocks(text: string): IdentityBlock[] {
  const blocks: IdentityBlock[] = [];
  let comments = '';
  for (const rawLine of text.replace(/\r\n/g, '\n').split('\n')) {
    const line = rawLine.trim();
    const identity = identityOn(line);
    if (identity) {
      blocks.push({ identity, text: `${comments}${identity}\n` });
      comments = '';
    } else if (line.startsWith('#')) {
      comments += `${line}\n`;
    } else {
      comments = '';
    }
  }
  return blocks;
}

/**
 * Checks that the primary's value is an age identity file: only blank lines, `#` comments and X25519 identities
 * that decode (bech32 checksum and length), at least one of them. Returns its identities, in order.
 * @param what how to name the value in a problem, such as the secret's ARN
 */
export async function checkedIdentityFile(text: string, what: string): Promise<IdentityBlock[]> {
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  const strange: number[] = [];
  const undecodable: number[] = [];
  for (const [index, rawLine] of lines.entries()) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    const identity = identityOn(line);
    if (!identity) {
      strange.push(index + 1);
      continue;
    }
    try {
      await identityToRecipient(identity);
    } catch {
      undecodable.push(index + 1);
    }
  }
  if (strange.length) {
    throw new IdentityFileRefused(`${what} is not an age identity file: ${describeLines(strange)} neither a comment nor an age identity ` +
      '(AGE-SECRET-KEY-…); nothing was copied');
  }
  if (undecodable.length) {
    throw new IdentityFileRefused(`${what} holds a damaged age identity: ${describeLines(undecodable)} not a valid X25519 identity ` +
      '(its encoding or checksum is wrong); nothing was copied');
  }
  const blocks = identityBlocks(text);
  if (!blocks.length) {
    throw new IdentityFileRefused(`${what} holds no age identity (no AGE-SECRET-KEY-… line${text.trim() === '' ? '; it is empty' : ''}); nothing was copied`);
  }
  return blocks;
}

function describeLines(lines: number[]): string {
  const shown = lines.slice(0, 5).join(', ') + (lines.length > 5 ? ` and ${lines.length - 5} more` : '');
  return lines.length === 1 ? `line ${shown} is` : `lines ${shown} are`;
}

/** What merging gives: the vault's new file, and how many keys it holds from where. */
export interface MergedIdentityFile {
  readonly text: string;
  /** Distinct identities in the merged file. */
  readonly keys: number;
  /** Identities the primary has. */
  readonly fromPrimary: number;
  /** Identities the vault keeps that the primary no longer has. */
  readonly keptFromVault: number;
}

/**
 * The primary's identities (checked by `checkedIdentityFile`), each with its comments, followed by the blocks of the
 * vault's file whose identity the primary does not have, in the vault's order, as the key generator writes them. The file
 * is rebuilt from the parsed blocks, never copied as the primary wrote it: `age -i` refuses a whole file for one line
 * it cannot read (an indented identity, a line of spaces), and the runbook's standard-tool steps hand it the file as
 * it is. Merging the result again with the same primary gives the same text, so an unchanged primary writes nothing.
 */
export function mergeIdentityFiles(primaryBlocks: readonly IdentityBlock[], vaultText: string): MergedIdentityFile {
  const primaryKeys = new Set(primaryBlocks.map((block) => block.identity));
  const kept: IdentityBlock[] = [];
  const seen = new Set(primaryKeys);
  for (const block of identityBlocks(vaultText)) {
    if (seen.has(block.identity)) continue;
    seen.add(block.identity);
    kept.push(block);
  }
  return {
    // Each block ends with its identity line, which ends the comments above it: they stay its own when read again.
    text: [...primaryBlocks, ...kept].map((block) => block.text).join(''),
    keys: seen.size,
    fromPrimary: primaryKeys.size,
    keptFromVault: kept.length,
  };
}
