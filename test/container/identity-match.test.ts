/**
 * identityMatches reads the manifest's recipient fingerprint, made at backup time by resolveRecipient. A backup
 * encrypted to several recipients (--recipient-file) has one fingerprint for all of them, so an identity holding
 * just one of them cannot be told from a wrong one: the answer is "unknown", never "no", or restore-test would
 * refuse an identity that opens the backup.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { identityMatches } from '../../container/src/restore/decrypt';
import { resolveRecipient } from '../../container/src/backup/encrypt';
import { AgeKey, makeAgeKey } from '../support';

let ops: AgeKey;
let breakGlass: AgeKey;
let both: string;

beforeAll(() => {
  ops = makeAgeKey();
  breakGlass = makeAgeKey();
  both = join(ops.dir, 'both-recipients.txt');
  writeFileSync(both, `# ops\n${ops.recipient}\n# break glass\n${breakGlass.recipient}\n`);
});

test('a single-recipient backup: its identity matches, another one is unknown (age will say)', () => {
  const { fingerprint } = resolveRecipient(ops.recipient, undefined);
  expect(identityMatches(ops.identityFile, fingerprint)).toBe(true);
  expect(identityMatches(breakGlass.identityFile, fingerprint)).toBeUndefined();
});

test('a multi-recipient backup: an identity holding one of the recipients is not refused', () => {
  const { fingerprint } = resolveRecipient(undefined, both);
  expect(identityMatches(ops.identityFile, fingerprint)).not.toBe(false);
  expect(identityMatches(breakGlass.identityFile, fingerprint)).not.toBe(false);
  // And it really does open such a backup: age encrypts to every recipient in the file.
  const sealed = spawnSync('age', ['-R', both], { input: 'rows' });
  expect(sealed.status).toBe(0);
  const opened = spawnSync('age', ['-d', '-i', breakGlass.identityFile], { input: sealed.stdout, encoding: 'utf8' });
  expect(opened.stdout).toBe('rows');
});

test('an identity file holding every recipient of a multi-recipient backup matches', () => {
  const combined = join(ops.dir, 'both-identities.txt');
  writeFileSync(combined, `${readFileSync(ops.identityFile, 'utf8')}\n${readFileSync(breakGlass.identityFile, 'utf8')}`);
  expect(identityMatches(combined, resolveRecipient(undefined, both).fingerprint)).toBe(true);
});

test('no fingerprint, or an identity age-keygen cannot read: unknown', () => {
  expect(identityMatches(ops.identityFile, undefined)).toBeUndefined();
  expect(identityMatches(join(ops.dir, 'missing.txt'), resolveRecipient(ops.recipient, undefined).fingerprint)).toBeUndefined();
});
