/**
 * Custom resource behind DisasterRecoveryRunbook: renders each source's runbook with the deployed names and
 * writes it into the primary bucket and into the replica bucket, in the replica's own region, so that it can
 * still be read when the primary region is gone. Deleting the resource leaves the runbooks where they are:
 * they describe backups that outlive the stack.
 */
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Engine, RunbookFacts, RunbookLocation, renderRunbook, runbookKey, sourceNameProblem } from '../../lib/contract';
import { CustomResourceEvent, CustomResourceResponse, sendResponse } from '../shared/cfn-response';

/** One source, as the construct passes it in the `Sources` property (a JSON string). */
interface SourceProperty {
  readonly name: string;
  readonly engine: Engine;
}

export async function handler(event: CustomResourceEvent): Promise<void> {
  await sendResponse(event.ResponseURL, await respondTo(event));
}

/** Never throws: a thrown error would leave CloudFormation waiting for an hour. */
export async function respondTo(event: CustomResourceEvent): Promise<CustomResourceResponse> {
  const common = { StackId: event.StackId, RequestId: event.RequestId, LogicalResourceId: event.LogicalResourceId };
  const physicalId = event.PhysicalResourceId ?? `runbooks-${event.RequestId}`;
  try {
    if (event.RequestType === 'Delete') return { ...common, Status: 'SUCCESS', PhysicalResourceId: physicalId };
    const { locations, runbooks } = readProperties(event.ResourceProperties);
    const written: string[] = [];
    for (const location of locations) {
      const s3 = createS3Client(location.region);
      try {
        for (const { key, text } of runbooks) {
          await s3.send(new PutObjectCommand({
            Bucket: location.bucket, Key: key, Body: text, ContentType: 'text/markdown; charset=utf-8',
          }));
          written.push(`s3://${location.bucket}/${key}`);
        }
      } finally {
        s3.destroy();
      }
    }
    console.log(JSON.stringify({ requestType: event.RequestType, written }));
    return { ...common, Status: 'SUCCESS', PhysicalResourceId: physicalId, Data: { Runbooks: String(written.length) } };
  } catch (error) {
    const reason = `${error instanceof Error ? error.name : 'Error'}: ${error instanceof Error ? error.message : String(error)}`.slice(0, 500);
    console.error(JSON.stringify({ requestType: event.RequestType, reason }));
    return { ...common, Status: 'FAILED', Reason: reason, PhysicalResourceId: physicalId };
  }
}

function createS3Client(region: string): S3Client {
  const endpoint = process.env.AWS_ENDPOINT_URL_S3 || process.env.AWS_ENDPOINT_URL || undefined;
  return new S3Client({ region, ...(endpoint ? { endpoint, forcePathStyle: true } : {}) });
}

function required(properties: Record<string, unknown>, name: string): string {
  const value = properties[name];
  if (typeof value !== 'string' || value === '') throw new Error(`property ${name} is missing: the DisasterRecoveryRunbook construct sets it`);
  return value;
}

function readProperties(properties: Record<string, unknown>): { locations: RunbookLocation[]; runbooks: { key: string; text: string }[] } {
  const primary = { bucket: required(properties, 'Bucket'), region: required(properties, 'Region') };
  const replica = properties.ReplicaBucket
    ? { bucket: required(properties, 'ReplicaBucket'), region: required(properties, 'ReplicaRegion') }
    : undefined;
  const prefix = typeof properties.Prefix === 'string' ? properties.Prefix : '';
  const identitySecretArn = typeof properties.IdentitySecretArn === 'string' && properties.IdentitySecretArn
    ? properties.IdentitySecretArn : undefined;
  const sources = JSON.parse(required(properties, 'Sources')) as SourceProperty[];
  const engines = Object.values(Engine) as string[];
  const runbooks = sources.map(({ name, engine }) => {
    const problem = sourceNameProblem(name) ?? (engines.includes(engine) ? undefined : `source '${name}' has unknown engine '${engine}'`);
    if (problem) throw new Error(problem);
    const facts: RunbookFacts = { source: name, engine, prefix, primary, replica, identitySecretArn };
    return { key: runbookKey(prefix, name), text: renderRunbook(facts) };
  });
  return { locations: replica ? [primary, replica] : [primary], runbooks };
}
