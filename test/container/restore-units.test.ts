/**
 * The small decisions of the restore path, one by one: whether a spool fits, which pg_dumpall lines
 * become statements, how an identity secret becomes a private file and goes away, and how an
 * identity is matched against a manifest's recipient fingerprint. The identity secrets are read from Secrets
 * Manager on moto's server (names of this run's own); aws-sdk-client-mock remains for AccessDeniedException
 * only, since moto's shared server enforces no permissions.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { CreateSecretCommand, GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { identityMatches } from '../../container/src/restore/decrypt';
import { globalsStatements } from '../../container/src/engines/postgres';
import { redactor } from '../../container/src/shared/errors';
import { resolveIdentity } from '../../container/src/restore/identity';
import { spoolSpaceProblem } from '../../container/src/restore/restore';
import { makeAgeKey } from '../support';
import { motoName, sharedMoto } from '../support/moto';

describe('spool space', () => {
  test('a dump that fits, with headroom, is fine', () => {
    expect(spoolSpaceProblem('/spool', 1e9, 2e9)).toBeUndefined();
  });

  test('a dump that does not fit: says how much is needed, how much is free, and the ways out', () => {
    expect(spoolSpaceProblem('/spool', 1.5e9, 1e9)).toBe('--jobs spools the decrypted dump to disk: it needs 1.57 GB free in /spool ' +
      '(a 1.50 GB dump plus headroom), only 1.00 GB is free. Point --spool-dir at a larger volume, or restore without --jobs (streaming needs no disk).');
    expect(spoolSpaceProblem('/spool', 1e9, 1e9)).toBeDefined(); // no headroom left
  });
});

test('pg_dumpall --globals-only output: statements without comments or psql meta-commands', () => {
  const sql = ['--', '-- PostgreSQL database cluster dump', '--', '', '\\restrict abc', '', 'SET default_transaction_read_only = off;', '',
    'CREATE ROLE "odd ""name""";', 'ALTER ROLE "odd ""name""" WITH NOLOGIN;', 'GRANT app TO "odd ""name""" GRANTED BY postgres;',
    '\\unrestrict abc', '-- done'].join('\n');
  expect(globalsStatements(sql)).toEqual(['SET default_transaction_read_only = off;', 'CREATE ROLE "odd ""name""";',
    'ALTER ROLE "odd ""name""" WITH NOLOGIN;', 'GRANT app TO "odd ""name""" GRANTED BY postgres;']);
});

describe('identity', () => {
  const key = makeAgeKey();
  const text = readFileSync(key.identityFile, 'utf8');
  const secretLine = text.split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-1'))!;

  test('from a secret: a 0600 file in a private directory, removed on release; the key is redacted from logs', async () => {
    const client = new SecretsManagerClient((await sharedMoto()).config('us-east-1'));
    try {
      const { ARN } = await client.send(new CreateSecretCommand({ Name: motoName('identity'), SecretString: `# created: 2026-11-01\n${text}` }));
      const identity = await resolveIdentity(undefined, ARN!, () => client);
      expect(statSync(identity.file).mode & 0o777).toBe(0o600);
      expect(readFileSync(identity.file, 'utf8')).toBe(`${secretLine}\n`);
      expect(redactor.redact(`oops ${secretLine}`)).toBe('oops ***');
      identity.release();
      expect(existsSync(identity.file)).toBe(false);
    } finally {
      client.destroy();
    }
  });

  test('a secret that does not exist is named, with the service\'s own error', async () => {
    const client = new SecretsManagerClient((await sharedMoto()).config('us-east-1'));
    const missing = motoName('never-created');
    try {
      await expect(resolveIdentity(undefined, missing, () => client))
        .rejects.toThrow(new RegExp(`^could not read the identity secret '${missing}': ResourceNotFoundException: .*; check the secret id and region`));
    } finally {
      client.destroy();
    }
  });

  test('exactly one source, and never a public key', async () => {
    await expect(resolveIdentity(undefined, undefined, () => new SecretsManagerClient({}))).rejects.toThrow(/exactly one of --identity-file/);
    await expect(resolveIdentity(key.recipientFile, undefined, () => new SecretsManagerClient({}))).rejects.toThrow(/holds a public key, age1/);
  });

  test('a secret that cannot be read names the secret and the permission', async () => {
    // Simulated: moto's shared server refuses nothing for want of a permission.
    const client = new SecretsManagerClient({ region: 'us-east-1' });
    mockClient(client).on(GetSecretValueCommand).rejects(Object.assign(new Error('User is not authorized'), { name: 'AccessDeniedException' }));
    await expect(resolveIdentity(undefined, 'identity', () => client))
      .rejects.toThrow("could not read the identity secret 'identity': AccessDeniedException: User is not authorized; check the secret id and region, " +
        'and that this role may call secretsmanager:GetSecretValue on it (only restore roles may)');
  });

  test('matched against the manifest\'s recipient fingerprint', () => {
    const fingerprint = createHash('sha256').update(key.recipient).digest('hex');
    expect(identityMatches(key.identityFile, fingerprint)).toBe(true);
    // Never a certain no: a fingerprint of several recipients looks the same (age itself tells, when it decrypts).
    expect(identityMatches(makeAgeKey().identityFile, fingerprint)).toBeUndefined();
    expect(identityMatches(key.identityFile, undefined)).toBeUndefined();
  });
});
