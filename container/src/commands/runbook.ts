/** `restorable runbook`: prints a source's disaster-recovery runbook, as rendered into the bucket at deploy time. */
import { S3Client } from '@aws-sdk/client-s3';
import { runbookKey, sourceNameProblem } from '../../../lib/contract';
import { CommandSpec, ParsedArgs, SOURCE_OPTIONS } from '../shared/args';
import { AgentError, UsageError } from '../shared/errors';
import { getText } from '../shared/s3';

export const RUNBOOK_COMMAND: CommandSpec = {
  name: 'runbook',
  summary: 'Print a source\'s disaster-recovery runbook (Markdown), from the primary or the replica bucket.',
  options: {
    ...SOURCE_OPTIONS,
  },
};

export async function runRunbook(args: ParsedArgs, s3: S3Client): Promise<string> {
  const source = args.requiredString('source');
  const nameProblem = sourceNameProblem(source);
  if (nameProblem) throw new UsageError(nameProblem);
  const bucket = args.requiredString('bucket');
  const key = runbookKey(args.string('prefix'), source);
  const runbook = await getText(s3, bucket, key);
  if (!runbook) {
    throw new AgentError(`no runbook at s3://${bucket}/${key}: it is written at deploy time by the DisasterRecoveryRunbook ` +
      'construct; check the source name and --prefix, or deploy the stack that adds it');
  }
  return runbook.text.replace(/\n$/, '');
}
