/**
 * Custom resource behind DisasterRecoveryRunbook: renders each source's runbook with the deployed names and
 * writes it into the primary bucket and into the replica bucket, in the replica's own region, so that it can
 * still be read when the primary region is gone. A vault in another account (VaultAccount) is not written: it
 * admits the primary only to replicate, and replication carries the runbooks there. Deleting the resource leaves the runbooks where they are:
 * they describe backups that outlive the stack.
 *
 * The store's bucket policy refuses a blind write of RUNBOOK.md, so each write is conditional: If-None-Match: *
 * when there is none yet, If-Match with the ETag just read when there is one. A 412 (or S3's 409 for a
 * concurrent conditional write, or a 404 for one deleted in between) means it changed between the read and the
 * write (in the replica, replication of the primary's copy does that): read it again and retry, a few times.
 *
 * Behind VaultRunbook (`Copy: vault`), in the vault's own account: `Bucket` and `Region` are the vault's, and each
 * source's runbook is the vault's own (the DR path alone, with the vault's facts), written to
 * `{prefix}{source}/vault/RUNBOOK.md`, where the vault's bucket policy lets no replication write.
 */
import { HeadObjectCommand, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { Engine, ReportsCopy, RunbookFacts, RunbookLocation, renderRunbook, runbookKey, sourceNameProblem } from '../../lib/contract';
import { CustomResourceEvent, CustomResourceResponse, sendResponse } from '../shared/cfn-response';

/** One source, as the construct passes it in the `Sources` property (a JSON string). */
interface SourceProperty {
  readonly name: string;
  readonly engine: Engine;
  /** The source's WAL is archived: its runbook gains the point-in-time recovery section. */
  readonly walArchived?: boolean;
  /** The source's binlogs are streamed: its runbook gains the binlog point-in-time recovery section. */
  readonly binlogStreamed?: boolean;
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
          await writeRunbook(s3, location.bucket, key, text);
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

/** How many times a runbook is read and written before a change between the two fails the request. */
export const WRITE_ATTEMPTS = 5;

const status = (err: unknown) => (err as S3ServiceException)?.$metadata?.httpStatusCode;

/**
 * The current runbook's ETag; undefined when there is none, 'unknown' when S3 will not say. The writer may not
 * list the bucket, so S3 answers 403 rather than 404 for a missing key: a 403 is settled by the create that follows,
 * which succeeds only if the key is absent.
 */
async function currentEtag(s3: S3Client, bucket: string, key: string): Promise<string | undefined | 'unknown'> {
  try {
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    if (!head.ETag) throw new Error(`S3 HeadObject s3://${bucket}/${key} answered without an ETag, which the conditional write needs`);
    return head.ETag;
  } catch (err) {
    if (status(err) === 404) return undefined;
    if (status(err) === 403) return 'unknown';
    throw err;
  }
}

/** Creates the runbook (If-None-Match: *) or replaces the one just read (If-Match), re-reading on a precondition failure. */
async function writeRunbook(s3: S3Client, bucket: string, key: string, text: string): Promise<void> {
  let refusedCreate = false;
  for (let attempt = 1; attempt <= WRITE_ATTEMPTS; attempt++) {
    const etag = await currentEtag(s3, bucket, key);
    const condition = etag === undefined || etag === 'unknown' ? { IfNoneMatch: '*' } : { IfMatch: etag };
    try {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: text, ContentType: 'text/markdown; charset=utf-8', ...condition }));
      return;
    } catch (err) {
      const code = status(err);
      // 404 only for an If-Match write whose object went away in between; a missing bucket is an error of its own.
      const goneSinceRead = 'IfMatch' in condition && (err as S3ServiceException).name === 'NoSuchKey';
      if (code !== 412 && code !== 409 && !goneSinceRead) throw err;
      refusedCreate = etag === 'unknown' && code === 412;
      console.log(JSON.stringify({ runbook: `s3://${bucket}/${key}`, changedSinceRead: true, attempt, status: code }));
    }
  }
  if (refusedCreate) {
    throw new Error(`s3://${bucket}/${key} exists but HeadObject on it is denied, so it cannot be updated by its ETag: ` +
      'check that the writer\'s role allows s3:GetObject on it');
  }
  throw new Error(`s3://${bucket}/${key} changed between reading and writing it ${WRITE_ATTEMPTS} times running; ` +
    'something else is writing it: find what, then deploy again');
}

function createS3Client(region: string): S3Client {
  const endpoint = process.env.AWS_ENDPOINT_URL_S3 || process.env.AWS_ENDPOINT_URL || undefined;
  return new S3Client({ region, ...(endpoint ? { endpoint, forcePathStyle: true } : {}) });
}

function required(properties: Record<string, unknown>, name: string): string {
  const value = properties[name];
  if (typeof value !== 'string' || value === '') {
    throw new Error(`property ${name} is missing: the ${properties.Copy ? 'VaultRunbook' : 'DisasterRecoveryRunbook'} construct sets it`);
  }
  return value;
}

function readProperties(properties: Record<string, unknown>): { locations: RunbookLocation[]; runbooks: { key: string; text: string }[] } {
  if (properties.Copy !== undefined && properties.Copy !== ReportsCopy.VAULT) {
    throw new Error(`property Copy is '${String(properties.Copy)}': the only copy with runbooks of its own is '${ReportsCopy.VAULT}'`);
  }
  const own = properties.Copy === ReportsCopy.VAULT;
  if (own && (properties.ReplicaBucket || properties.IdentitySecretArn)) {
    throw new Error('properties ReplicaBucket and IdentitySecretArn are the primary\'s: a vault\'s own runbook (Copy vault) names the vault alone');
  }
  // The bucket written first: the primary's, or the vault's own with Copy vault.
  const primary = { bucket: required(properties, 'Bucket'), region: required(properties, 'Region') };
  const replica = properties.ReplicaBucket
    ? { bucket: required(properties, 'ReplicaBucket'), region: required(properties, 'ReplicaRegion') }
    : undefined;
  const prefix = typeof properties.Prefix === 'string' ? properties.Prefix : '';
  const identitySecretArn = typeof properties.IdentitySecretArn === 'string' && properties.IdentitySecretArn
    ? properties.IdentitySecretArn : undefined;
  const vault = properties.VaultAccount || own
    ? {
      account: required(properties, 'VaultAccount'),
      restoreRoleArn: required(properties, 'VaultRestoreRoleArn'),
      identitySecretArn: required(properties, 'VaultIdentitySecretArn'),
    }
    : undefined;
  if (vault && !replica && !own) throw new Error('property VaultAccount is given without ReplicaBucket: the DisasterRecoveryRunbook construct sets both');
  const sources = JSON.parse(required(properties, 'Sources')) as SourceProperty[];
  const engines = Object.values(Engine) as string[];
  const flag = (name: string, property: string, value: unknown) =>
    (value === undefined || value === true ? undefined : `source '${name}' has ${property} ${JSON.stringify(value)}: true or absent`);
  const runbooks = sources.map(({ name, engine, walArchived, binlogStreamed }) => {
    const problem = sourceNameProblem(name) ?? (engines.includes(engine) ? undefined : `source '${name}' has unknown engine '${engine}'`) ??
      flag(name, 'walArchived', walArchived) ?? flag(name, 'binlogStreamed', binlogStreamed);
    if (problem) throw new Error(problem);
    const pitr = { ...(walArchived ? { walArchived } : {}), ...(binlogStreamed ? { binlogStreamed } : {}) };
    // The vault's own: the DR path alone, the vault's bucket in the replica's place.
    const facts: RunbookFacts = own
      ? { source: name, engine, prefix, replica: primary, vault, ...pitr }
      : { source: name, engine, prefix, primary, replica, identitySecretArn, vault, ...pitr };
    return { key: runbookKey(prefix, name, own ? ReportsCopy.VAULT : undefined), text: renderRunbook(facts) };
  });
  return { locations: replica && !vault ? [primary, replica] : [primary], runbooks };
}
