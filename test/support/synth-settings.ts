/**
 * Runs before every test file (jest.config.js setupFiles). The tests synthesize stacks in-process; CDK's built-in
 * CloudFormation validation (not requested by this project, its findings downgraded to warnings that no test reads)
 * would initialise its rule engine again in every test file, some 10 s of CPU each. It is off here only: the example
 * app's `cdk synth` and the packaged app's run in child processes whose environment leaves it on, and cfn-lint and
 * checkov lint every example template (template-lint.test.ts).
 */
process.env.CDK_VALIDATION = 'false';
