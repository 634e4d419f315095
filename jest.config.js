/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.tsx?$': 'ts-jest' },
  // CDK's built-in template validation off in-process: see the file.
  setupFiles: ['<rootDir>/test/support/synth-settings.ts'],
  // Integration tests start servers and stream real dumps; keep them from fighting over 2 cores.
  maxWorkers: 2,
  testTimeout: 120000,
};
