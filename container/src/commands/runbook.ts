/** `restorable runbook`: prints a source's disaster-recovery runbook, as rendered into the bucket at deploy time. */
import { S3Client } from '@aws-sdk/client-s3';
import { ReportsCopy, runbookKey, sourceNameProblem } from '../../../lib/contract';
import { CommandSpec, OptionKind, ParsedArgs, SOURCE_OPTIONS } from '../shared/args';
import { AgentError, UsageError } from '../shared/errors';
import { getText } from '../shared/s3';

export const RUNBOOK_COMMAND: CommandSpec = {
  name: 'runbook',
  summary: 'Print a source\'s disaster-recovery runbook (Markdown), from the primary or the replica bucket; with --vault, a vault\'s own.',
  options: {
    ...SOURCE_OPTIONS,
    'vault': {
      kind: OptionKind.FLAG,
      description: 'the vault\'s own runbook, {source}/vault/RUNBOOK.md, written by the vault\'s account (VaultRunbook), which replication ' +
        'cannot overwrite; without it, {source}/RUNBOOK.md, which the primary\'s account writes (in a vault, carried there by replication)',
    },
  },
};

export async function runRunbook(args: ParsedArgs, s3: S3Client): Promise<string> {
  const source = args.requiredString('source');
  const nameProblem = sourceNameProblem(source);
  if (nameProblem) throw new UsageError(nameProblem);
  const bucket = args.requiredString('bucket');
  const vault = args.flag('vault');
  const key = runbookKey(args.string('prefix'), source, vault ? ReportsCopy.VAULT : undefined);
  const runbook = await getText(s3, bucket, key);
  if (!runbook) {
    throw new AgentError(vault
      ? `no runbook at s3://${bucket}/${key}: a vault's own runbook is written at deploy time by the VaultRunbook construct, in the ` +
        'vault\'s stack; check the bucket (the vault\'s), the source name and --prefix, or deploy VaultRunbook'
      : `no runbook at s3://${bucket}/${key}: it is written at deploy time by the DisasterRecoveryRunbook ` +
        'construct; check the source name and --prefix, or deploy the stack that adds it');
  }
  return runbook.text.replace(/\n$/, '');
}
