import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Duration } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { lambdaAsset } from '../shared/package-root';
import { NODE22_RUNTIME_REASON, acknowledgeNag, acknowledgeWildcard } from '../shared/nag';
import { ROLE_PATHS } from '../shared/trust-boundaries';
import { BackupSource } from '../backups/backup-source';

/** One source as the writer's `Sources` property carries it: its name, engine and whether its WAL is archived or its binlogs streamed. */
export interface RunbookSourceProperty {
  readonly name: string;
  readonly engine: string;
  /** Present (true) only for a source with WAL archiving: its runbook gains the point-in-time recovery section. */
  readonly walArchived?: true;
  /** Present (true) only for a source with binlog streaming: its runbook gains the binlog point-in-time recovery section. */
  readonly binlogStreamed?: true;
}

/** A source's entry in the writer's `Sources` property, read at synth. */
export function runbookSource(source: BackupSource): RunbookSourceProperty {
  return {
    name: source.name, engine: source.engine.agentEngine, ...(source.walArchiving ? { walArchived: true as const } : {}),
    ...(source.binlogStreaming ? { binlogStreamed: true as const } : {}),
  };
}

/** The runbook-writer function, its role and log group, as DisasterRecoveryRunbook and VaultRunbook make them. */
export interface RunbookWriter {
  /** Under ROLE_PATHS.runbookWriter: the write-once bucket policy lets only roles under it write RUNBOOK.md. */
  readonly role: iam.Role;
  readonly writer: lambda.Function;
  /** A hash of the bundled writer, renderer included: a custom-resource property, so that a new renderer rewrites the runbooks. */
  readonly renderer: string;
}

/** Makes the writer (Logs, Role, Writer) in `scope`; the caller grants it its buckets with grantRunbookWrite. */
export function runbookWriter(scope: Construct, roleDescription: string, logRetention?: logs.RetentionDays): RunbookWriter {
  const logGroup = new logs.LogGroup(scope, 'Logs', { retention: logRetention ?? logs.RetentionDays.ONE_YEAR });
  const role = new iam.Role(scope, 'Role', {
    assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
    // The store's bucket policy lets only roles under this path write RUNBOOK.md.
    path: ROLE_PATHS.runbookWriter,
    description: roleDescription,
  });
  logGroup.grantWrite(role);
  const asset = lambdaAsset(scope, 'runbook-writer');
  const code = fs.readFileSync(path.join(asset, 'index.js'));
  const writer = new lambda.Function(scope, 'Writer', {
    description: 'Renders and writes the Restorable disaster-recovery runbooks (custom resource)',
    runtime: lambda.Runtime.NODEJS_22_X,
    handler: 'index.handler',
    code: lambda.Code.fromAsset(asset),
    role,
    logGroup,
    timeout: Duration.minutes(5),
    memorySize: 256,
  });
  acknowledgeNag(writer, 'L1', NODE22_RUNTIME_REASON);
  return { role, writer, renderer: createHash('sha256').update(code).digest('hex').slice(0, 16) };
}

/**
 * PutObject and GetObject of runbooks only (no other key), with the bucket's key used through S3 in its region.
 * GetObject authorises the HEAD that reads the current runbook's ETag, which the conditional write names.
 */
export function grantRunbookWrite(role: iam.Role, objects: string, keyArn: string, region: string, keyAlias?: string): void {
  role.addToPolicy(new iam.PolicyStatement({ actions: ['s3:PutObject', 's3:GetObject'], resources: [objects] }));
  role.addToPolicy(new iam.PolicyStatement({
    actions: ['kms:GenerateDataKey'],
    resources: [keyArn],
    conditions: {
      'StringEquals': { 'kms:ViaService': `s3.${region}.amazonaws.com` },
      ...(keyAlias ? { 'ForAnyValue:StringEquals': { 'kms:ResourceAliases': [keyAlias] } } : {}),
    },
  }));
  acknowledgeWildcard(role, objects, 'Runbooks are written to {prefix}{source}/RUNBOOK.md for every source. IAM\'s * also matches \'/\', so ' +
      'the grant covers every key under the prefix that ends in /RUNBOOK.md (a source\'s or a deeper one), and no key of another name; ' +
      'the bucket policy lets only roles under the runbook-writer path (and break-glass) write such keys, and only with If-Match or If-None-Match');
  if (keyAlias) {
    acknowledgeWildcard(role, keyArn, 'The replica key lives in another stack and an IAM resource cannot be an alias ARN; kms:ResourceAliases ' +
        'limits key/* to that one key, used only through S3 in the DR region');
  }
}
