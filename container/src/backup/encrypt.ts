/**
 * The stored format (design §3): age (X25519 recipient) over zstd over the engine's dump.
 * Here: the stages that turn a dump stream into stored bytes, and the recipient they encrypt to.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { OptionKind, OptionSpecs, ParsedArgs } from '../shared/args';
import { AgentError, UsageError } from '../shared/errors';
import { StageSpec } from '../shared/pipeline';

/**
 * zstd -1 on all cores: on realistic data it was both smaller and half the CPU of -3
 * (BENCHMARKS.md has the measurement).
 */
export const DEFAULT_ZSTD_LEVEL = 1;

export interface Recipient {
  /** age arguments: `-r AGE1…` or `-R FILE`. Recipients are public keys, so argv is fine. */
  readonly ageArgs: readonly string[];
  /** SHA-256 of the recipient lines, so a restorer can tell which identity opens a backup. */
  readonly fingerprint: string;
}

/** Whom a command encrypts to: every command that writes stored objects takes these. */
export const RECIPIENT_OPTIONS: OptionSpecs = {
  'recipient': { kind: OptionKind.STRING, placeholder: 'AGE1…', description: 'age public key to encrypt to' },
  'recipient-file': { kind: OptionKind.STRING, placeholder: 'FILE', description: 'file of age public keys, one a line' },
};

/**
 * The environment variable a command reads its recipient from when neither option is given, where the command line
 * is written once for many runs (PostgreSQL's archive_command): a public key, so neither secret nor dangerous in argv.
 */
export const RECIPIENT_ENV = 'RESTORABLE_RECIPIENT';

/** The recipient of RECIPIENT_OPTIONS; with `env`, RESTORABLE_RECIPIENT stands in when neither option is given. */
export function recipientFromArgs(args: ParsedArgs, env?: NodeJS.ProcessEnv): Recipient {
  const file = args.string('recipient-file');
  const fromEnv = file === undefined && env?.[RECIPIENT_ENV] ? env[RECIPIENT_ENV] : undefined;
  return resolveRecipient(args.string('recipient') ?? fromEnv, file);
}

const RECIPIENT = /^(age1[0-9a-z]{20,}|ssh-(ed25519|rsa) \S+)/;

export function resolveRecipient(recipient: string | undefined, recipientFile: string | undefined): Recipient {
  if ((recipient === undefined) === (recipientFile === undefined)) {
    throw new UsageError('give exactly one of --recipient AGE1… or --recipient-file FILE (the public key made by age-keygen)');
  }
  let lines: string[];
  if (recipient !== undefined) {
    lines = [recipient.trim()];
  } else {
    let text: string;
    try {
      text = readFileSync(recipientFile!, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read --recipient-file ${recipientFile}: ${(err as Error).message}`);
    }
    lines = text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  }
  const bad = lines.find((line) => !RECIPIENT.test(line));
  if (lines.length === 0 || bad !== undefined) {
    const shown = bad !== undefined && bad.startsWith('AGE-SECRET-KEY') ? 'an age identity (a private key!)' : `'${(bad ?? '').slice(0, 20)}'`;
    throw new UsageError(`the recipient must be an age public key (age1…), got ${shown}: use the public key printed by age-keygen, never the identity`);
  }
  return {
    ageArgs: recipient !== undefined ? ['-r', lines[0]] : ['-R', recipientFile!],
    fingerprint: createHash('sha256').update([...lines].sort().join('\n')).digest('hex'),
  };
}

/**
 * zstd reading stdin. `-vv` makes it report the exact bytes it read when it ends, which gives the
 * dump's size without passing the dump through node (about 1 s of CPU per GB saved).
 */
export function compressStage(level = DEFAULT_ZSTD_LEVEL): StageSpec {
  return { name: 'zstd', command: 'zstd', args: [`-${level}`, '-T0', '-vv', '--no-progress', '-c'] };
}

/** The input size from zstd -vv's last words: `/*stdin*\ : 19.13%   (50000000 B => 9563177 B, /*stdout*\)`. */
export function compressedInputBytes(zstdStderr: string): number {
  const reports = [...zstdStderr.matchAll(/\(\s*(\d+) B =>\s*\d+ B,/g)];
  const m = reports[reports.length - 1];
  if (!m) {
    throw new AgentError('zstd did not report how many bytes it read (expected "(N B => M B, …)" from zstd -vv); ' +
      'this agent is tested with zstd 1.5: install it, or report the zstd version');
  }
  return Number(m[1]);
}

export function encryptStage(recipient: Recipient): StageSpec {
  return { name: 'age', command: 'age', args: [...recipient.ageArgs] };
}
