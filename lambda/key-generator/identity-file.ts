/**
 * The age identity file kept in the identity secret (design §3): one block per generation, newest first,
 * each block the comment lines `age-keygen` prints plus a generation marker, then the `AGE-SECRET-KEY-1…` line.
 * `age -d -i FILE` ignores the comments and tries every identity, so old backups keep opening after a rotation.
 */

const IDENTITY_LINE = /^AGE-SECRET-KEY-[0-9A-Z]+$/;
const GENERATION_COMMENT = /^# generation: (\d+)$/;

/** What we learn from the newest block of an identity file, without ever exposing the other keys. */
export interface NewestIdentity {
  readonly identity: string;
  /** The generation marker of the newest block; undefined for a file written by hand or by age-keygen. */
  readonly generation?: number;
}

/** The newest identity in an identity file, or undefined when the text holds no age identity at all. */
export function newestIdentity(text: string): NewestIdentity | undefined {
  let generation: number | undefined;
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    const marker = GENERATION_COMMENT.exec(line);
    if (marker) generation = Number(marker[1]);
    if (IDENTITY_LINE.test(line)) return { identity: line, generation };
  }
  return undefined;
}

/** One block in the format age-keygen prints, with the generation that created it. */
export function identityBlock(identity: string, recipient: string, generation: number, createdAt: Date): string {
  const created = createdAt.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return `# created: ${created}\n# generation: ${generation}\n# public key: ${recipient}\n${identity}\n`;
}

/**
 * Puts a new block in front of the existing file. Text that holds no identity is the placeholder that
 * CloudFormation generated with the secret, and is dropped; anything holding an identity is kept verbatim.
 */
export function prependIdentity(existing: string, block: string): string {
  if (!newestIdentity(existing)) return block;
  return `${block}${existing.endsWith('\n') ? existing : `${existing}\n`}`;
}

/** Removes anything that looks like an age identity, so that an error message can be logged and returned. */
export function redactIdentities(text: string): string {
  return text.replace(/AGE-SECRET-KEY-[0-9A-Za-z]+/g, 'AGE-SECRET-KEY-[redacted]');
}
