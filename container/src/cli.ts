/**
 * The `restorable` agent: the container's entrypoint, also run with node on a workstation.
 * stdout carries only the result; logs and progress go to stderr as JSON lines, and a failure is said there once,
 * in plain words, on a line of its own: `restorable <command>: <what went wrong>`.
 * Exit codes: 0 success, 1 failure, 2 bad usage, 70 the command stopped before finishing (an internal error),
 * 75 an archived backup is being retrieved (try again later).
 */
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { CommandSpec, ParsedArgs, parseCommandArgs, usage } from './shared/args';
import { AwsClients, awsClients } from './shared/aws';
import { BACKUP_COMMAND, formatBackupResult, runBackup } from './commands/backup';
import { BASEBACKUP_COMMAND, formatBaseBackupResult, runBaseBackup } from './commands/basebackup';
import { LIST_COMMAND, formatListing, runList } from './commands/list';
import { RESTORE_TEST_COMMAND, formatRestoreTestReport, restoreTestFailure, restoreTestPassed, runRestoreTest } from './commands/restore-test';
import { RUNBOOK_COMMAND, runRunbook } from './commands/runbook';
import { STATUS_COMMAND, formatStatus, runStatus, statusFailure } from './commands/status';
import { RESTORE_COMMAND, formatRestoreResult, runRestore } from './commands/restore';
import { VERIFY_COMMAND, formatVerifyResult, runVerify } from './commands/verify';
import { WAL_FETCH_COMMAND, formatWalFetchResult, runWalFetch, walFetchExitCode } from './commands/wal-fetch';
import { WAL_PUSH_COMMAND, formatWalPushResult, runWalPush } from './commands/wal-push';
import { WAL_RECEIVE_COMMAND, formatWalReceiveSummary, runWalReceive, stopOnSignals } from './commands/wal-receive';
import { BINLOG_STREAM_COMMAND, formatBinlogStreamSummary, runBinlogStream } from './commands/binlog-stream';
import { ContractError } from '../../lib/contract';
import { AgentError, UsageError, redactor } from './shared/errors';
import { runAbortActions } from './shared/cleanup';
import { runToCompletion } from './shared/exit-guard';
import { AGENT_VERSION } from './shared/version';

interface Command {
  readonly spec: CommandSpec;
  /** Returns what to print on stdout. */
  run(args: ParsedArgs, aws: AwsClients): Promise<string>;
  /**
   * The exit status of a failure, where the command's caller reads more into it than "failed" (PostgreSQL's
   * restore_command); by default an AgentError's own code, and 1 for anything else.
   */
  exitCode?(err: unknown): number;
}

function print(json: boolean, value: unknown, text: string): string {
  return json ? JSON.stringify(value, null, 2) : text;
}

/**
 * Secrets Manager clients for a command that reads its identity and, with --secret-id, its database's secret:
 * each in the region its own ARN names. Called without an id, it is the database's secret.
 */
function secretsFor(args: ParsedArgs, aws: AwsClients): (secretId?: string) => SecretsManagerClient {
  return (secretId) => aws.secrets(secretId ?? args.string('secret-id'));
}

const COMMANDS: readonly Command[] = [
  {
    spec: BACKUP_COMMAND,
    run: async (args, aws) => {
      const result = await runBackup(args, { s3: aws.s3, secrets: aws.secrets(args.string('secret-id')) });
      return print(args.flag('json'), result, formatBackupResult(result));
    },
  },
  {
    spec: BASEBACKUP_COMMAND,
    run: async (args, aws) => {
      const result = await runBaseBackup(args, { s3: aws.s3, secrets: aws.secrets(args.string('secret-id')) });
      return print(args.flag('json'), result, formatBaseBackupResult(result));
    },
  },
  {
    spec: LIST_COMMAND,
    run: async (args, aws) => {
      const backups = await runList(args, aws.s3);
      return print(args.flag('json'), backups, formatListing(backups));
    },
  },
  {
    spec: RESTORE_TEST_COMMAND,
    run: async (args, aws) => {
      const report = await runRestoreTest(args, { s3: aws.s3, secrets: secretsFor(args, aws), cloudwatch: aws.cloudwatch });
      const output = print(args.flag('json'), report, formatRestoreTestReport(report));
      if (restoreTestPassed(report)) return output;
      // The report goes to stdout either way; the failures also make the exit code non-zero.
      process.stdout.write(`${output}\n`);
      throw restoreTestFailure(report);
    },
  },
  {
    spec: VERIFY_COMMAND,
    run: async (args, aws) => {
      const result = await runVerify(args, { s3: aws.s3, secrets: secretsFor(args, aws) });
      return print(args.flag('json'), result, formatVerifyResult(result));
    },
  },
  {
    spec: RESTORE_COMMAND,
    run: async (args, aws) => {
      const result = await runRestore(args, { s3: aws.s3, secrets: secretsFor(args, aws) });
      return print(args.flag('json'), result, formatRestoreResult(result));
    },
  },
  {
    spec: STATUS_COMMAND,
    run: async (args, aws) => {
      const report = await runStatus(args, aws.s3);
      const output = print(args.flag('json'), report, formatStatus(report));
      const failure = statusFailure(report);
      if (!failure) return output;
      // The report goes to stdout either way; a source whose state cannot be read makes the exit code non-zero.
      process.stdout.write(`${output}\n`);
      throw failure;
    },
  },
  {
    spec: RUNBOOK_COMMAND,
    run: async (args, aws) => runRunbook(args, aws.s3),
  },
  {
    spec: WAL_PUSH_COMMAND,
    run: async (args, aws) => {
      const result = await runWalPush(args, { s3: aws.s3 });
      return print(args.flag('json'), result, formatWalPushResult(result));
    },
  },
  {
    spec: WAL_RECEIVE_COMMAND,
    run: async (args, aws) => {
      const summary = await runWalReceive(args, { s3: aws.s3, secrets: aws.secrets(args.string('secret-id')), onStart: stopOnSignals });
      return print(args.flag('json'), summary, formatWalReceiveSummary(summary));
    },
  },
  {
    spec: BINLOG_STREAM_COMMAND,
    run: async (args, aws) => {
      const summary = await runBinlogStream(args, {
        s3: aws.s3, secrets: aws.secrets(args.string('secret-id')), onStart: (stop) => stopOnSignals(stop, 'binlog-stream'),
      });
      return print(args.flag('json'), summary, formatBinlogStreamSummary(summary));
    },
  },
  {
    spec: WAL_FETCH_COMMAND,
    run: async (args, aws) => formatWalFetchResult(await runWalFetch(args, { s3: aws.s3, secrets: (secretId) => aws.secrets(secretId) })),
    exitCode: walFetchExitCode,
  },
];

function overview(): string {
  return `restorable ${AGENT_VERSION}: backups you can prove you can restore\n\nusage: restorable <command> [options]\n\ncommands:\n` +
    `${COMMANDS.map((c) => `  ${c.spec.name.padEnd(14)} ${c.spec.summary}`).join('\n')}\n\n` +
    'Run `restorable <command> --help` for its options.';
}

export async function main(argv: readonly string[]): Promise<number> {
  // stderr is for JSON log lines and the failure line; the SDK's advice about node versions is neither.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${overview()}\n`);
    return name ? 0 : 2;
  }
  if (name === '--version') {
    process.stdout.write(`${AGENT_VERSION}\n`);
    return 0;
  }
  const command = COMMANDS.find((c) => c.spec.name === name);
  // Every failure is said once, on one line that starts with what failed: `restorable <command>: …`. That line is
  // what a person reads in a terminal or in CloudWatch Logs (the task's stderr), and what to search them for.
  const said = command ? `restorable ${name}` : 'restorable';
  try {
    if (!command) throw new UsageError(`unknown command '${name}'\n\n${overview()}`);
    if (rest.includes('--help') || rest.includes('-h')) {
      process.stdout.write(`${usage(command.spec)}\n`);
      return 0;
    }
    const args = parseCommandArgs(command.spec, rest);
    const output = await command.run(args, await awsClients(args));
    process.stdout.write(`${output}\n`);
    return 0;
  } catch (err) {
    // A person's error: no stack. A manifest or pointer that cannot be read says how to repair it.
    if (err instanceof AgentError || err instanceof ContractError) {
      const message = redactor.redact(err instanceof ContractError ? `${err.message}: ${err.fix}` : err.message);
      process.stderr.write(`${said}: ${message}\n`);
      return command?.exitCode?.(err) ?? (err instanceof AgentError ? err.exitCode : 1);
    }
    // Not an AgentError: a bug or an unexpected failure; keep the stack, but never a secret.
    process.stderr.write(`${said}: unexpected error: ${redactor.redact((err as Error)?.stack ?? String(err))}\n`);
    return command?.exitCode?.(err) ?? 1;
  }
}

/** What a stop by signal means, per command: a restore cut short must not pass for a good one. */
const STOPPED: Record<string, string> = {
  restore: 'the restore did not complete, and the target database must not be trusted',
  verify: 'the backup was not verified',
  'wal-push': 'the WAL file was not archived (PostgreSQL keeps it and tries again)',
  'wal-fetch': 'the WAL file was not fetched, and nothing was put in its place',
};

/** Commands that stop cleanly on a signal by themselves (stopOnSignals). */
const OWN_SIGNALS = new Set(['wal-receive', 'binlog-stream']);

if (require.main === module) {
  for (const signal of OWN_SIGNALS.has(process.argv[2]) ? [] : ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      const stopped = STOPPED[process.argv[2]] ?? 'nothing was recorded as a good backup';
      process.stderr.write(`restorable${process.argv[2] ? ` ${process.argv[2]}` : ''}: stopped by ${signal}: ${stopped}\n`);
      runAbortActions();
      // An unfinished multipart upload is removed by the bucket's AbortIncompleteMultipartUpload rule.
      process.exit(signal === 'SIGTERM' ? 143 : 130);
    });
  }
  runToCompletion(process.argv[2] ?? '', () => main(process.argv.slice(2)));
}
