/** Throwaway age keys for tests, made with age-keygen in a temporary directory (never committed). */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sh } from './shell';

export interface AgeKey {
  readonly dir: string;
  readonly identityFile: string;
  readonly recipient: string;
  readonly recipientFile: string;
}

export function makeAgeKey(): AgeKey {
  const dir = mkdtempSync(join(tmpdir(), 'restorable-age-'));
  const identityFile = join(dir, 'identity.txt');
  sh(`age-keygen -o '${identityFile}' 2>/dev/null`);
  const recipient = sh(`age-keygen -y '${identityFile}'`).trim();
  const recipientFile = join(dir, 'recipient.txt');
  writeFileSync(recipientFile, `# test recipient\n${recipient}\n`);
  return { dir, identityFile, recipient, recipientFile };
}
