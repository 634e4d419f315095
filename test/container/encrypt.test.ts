import { compressedInputBytes, resolveRecipient } from '../../container/src/backup/encrypt';
import { UsageError } from '../../container/src/shared/errors';
import { makeAgeKey, sh } from '../support';

describe('compressedInputBytes', () => {
  test.each([0, 6, 123_456, 50_000_000])('reads the exact input size zstd -vv reports for %i bytes', (size) => {
    const stderr = sh(`head -c ${size} /dev/urandom | zstd -1 -T0 -vv --no-progress -c 2>&1 >/dev/null`);
    expect(compressedInputBytes(stderr)).toBe(size);
  });

  test('fails with words, not NaN, when zstd says nothing usable', () => {
    expect(() => compressedInputBytes('zstd: error')).toThrow(/zstd did not report how many bytes it read/);
  });
});

describe('resolveRecipient', () => {
  test('takes a public key or a file of them, and fingerprints them', () => {
    const key = makeAgeKey();
    const direct = resolveRecipient(key.recipient, undefined);
    expect(direct.ageArgs).toEqual(['-r', key.recipient]);
    expect(resolveRecipient(undefined, key.recipientFile).fingerprint).toBe(direct.fingerprint);
  });

  test('refuses an identity given as a recipient, without echoing it', () => {
    const secret = 'AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ';
    expect(() => resolveRecipient(secret, undefined)).toThrow(UsageError);
    try {
      resolveRecipient(secret, undefined);
    } catch (err) {
      expect((err as Error).message).toContain('an age identity (a private key!)');
      expect((err as Error).message).not.toContain('QQQQ');
    }
  });
});
