/**
 * The AWS clients of one command, all in one region: `--region`, else AWS_REGION, else AWS_DEFAULT_REGION, else
 * the region of the shared config profile (AWS_PROFILE, ~/.aws/config) as the SDK itself reads it. Never a guessed
 * region: a bucket looked for in the wrong one answers with a redirect or "does not exist", which sends a person
 * the wrong way at the worst time. Without a region, the command stops with a usage error that says how to give one.
 */
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { ParsedArgs } from './args';
import { UsageError } from './errors';
import { createS3Client } from './s3';

/** What a region looks like (eu-west-1, us-gov-west-1, cn-north-1): one DNS label, as it becomes part of the endpoint. */
const REGION_PATTERN = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;

/** The shared config profile's region, as the SDK's own loader finds it, or undefined. Reads files, never the network. */
async function profileRegion(): Promise<string | undefined> {
  const probe = new S3Client({});
  try {
    return await probe.config.region();
  } catch {
    return undefined;
  } finally {
    probe.destroy();
  }
}

/** The region a command's AWS clients use; a usage error when none is given anywhere. */
export async function resolveRegion(args: ParsedArgs, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const given = args.string('region');
  if (given !== undefined && given !== '') {
    if (!REGION_PATTERN.test(given)) throw new UsageError(`--region must be an AWS region such as eu-west-1 (got '${given}')`);
    return given;
  }
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION || await profileRegion();
  if (!region) {
    throw new UsageError('no AWS region: give --region REGION or set AWS_REGION, the region of the bucket and the secrets ' +
      '(AWS_DEFAULT_REGION and the AWS config profile\'s region are read too)');
  }
  return region;
}

/** The region a Secrets Manager ARN names, or undefined for a secret's name. */
export function secretArnRegion(secretId: string | undefined): string | undefined {
  return /^arn:[^:]+:secretsmanager:([^:]+):/.exec(secretId ?? '')?.[1];
}

export interface AwsClients {
  readonly region: string;
  readonly s3: S3Client;
  /** A client for a secret: in the region its ARN names (a DR replica's), else in the command's region. */
  secrets(secretId?: string): SecretsManagerClient;
  cloudwatch(): CloudWatchClient;
}

/** The clients a command uses, in the region it resolves to. The SDK's endpoint variables (AWS_ENDPOINT_URL_*) still apply. */
export async function awsClients(args: ParsedArgs, env: NodeJS.ProcessEnv = process.env): Promise<AwsClients> {
  const region = await resolveRegion(args, env);
  return {
    region,
    s3: createS3Client(region),
    secrets: (secretId) => new SecretsManagerClient({ region: secretArnRegion(secretId) ?? region }),
    cloudwatch: () => new CloudWatchClient({ region }),
  };
}
