import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { LATEST_FILE, RESTORE_TESTS_DIR, RUNBOOK_FILE } from '../contract/names';
import { ROLE_PATHS, breakGlassRoleArn, rolesUnderPath } from '../shared/trust-boundaries';

/** The S3 operations that make part of an object without creating it: they cannot carry If-None-Match. */
export const PARTIAL_CREATION_OPERATIONS = ['CreateMultipartUpload', 'UploadPart', 'UploadPartCopy'];

/** Every tagging call, on the current version or a given one. */
export const TAGGING_ACTIONS = ['s3:PutObjectTagging', 's3:PutObjectVersionTagging', 's3:DeleteObjectTagging', 's3:DeleteObjectVersionTagging'];

/**
 * The bucket policy statements that make the store write-once, each a Deny to `Principal: "*"` with the principals it
 * does not bind named by `aws:PrincipalArn` (which is the role's ARN, path included, for its assumed-role sessions
 * too; NotPrincipal cannot say that). Roles are told apart by their IAM path, never one by one, so the policy does not
 * grow with the number of sources. Keys are `{prefix}{source}/...`; IAM's `*` also matches `/`, so the one pattern
 * `{prefix}*` + `/latest.json` covers every source's latest.json and its restore-tests/latest.json.
 *
 * 1. WriteOnce: no object is created or replaced without If-None-Match, but for the pointers and runbooks, and the
 *    multipart steps that create nothing (CompleteMultipartUpload, which creates the object, must carry it).
 * 2. PointersNeedIfMatch: latest.json, restore-tests/latest.json and RUNBOOK.md are written with If-Match (the ETag
 *    read) or If-None-Match (when absent), never blindly.
 * 3. OnlyHoldKeeperReleases: a legal hold is released (OFF) by the hold keeper only.
 * 4. ReportsByRestoreTestsOnly: restore-tests/ is written by restore-test roles only.
 * 5. RunbooksByWriterOnly: RUNBOOK.md is written by the runbook writer only.
 * 6. NoTaggingPointers: the pointers, runbooks and reports are never tagged (a tier tag would expire them), not even
 *    at creation: PutObject with a Tagging header is authorised as s3:PutObjectTagging too.
 * 7. OnlyBreakGlassDestroys: no object version is deleted and no governance lock bypassed. Lifecycle expiry is
 *    S3's own and is not subject to bucket policies. In a vault the governance bypass is a statement of its own,
 *    OnlyRetentionKeeperBypasses, which exempts the retention keeper's path too: it must bypass a replica's GOVERNANCE
 *    lock to make it COMPLIANCE. It is never exempt from deletes. A vault also has OnlyComplianceLocks: no lock set
 *    there is anything but COMPLIANCE.
 * Break-glass is exempt from every one.
 */
export function writeOnceStatements(scope: Construct, bucket: s3.IBucket, prefix: string, breakGlassRole?: iam.IRole,
  options: WriteOnceOptions = {}): iam.PolicyStatement[] {
  const breakGlass = breakGlassRoleArn(scope, breakGlassRole);
  const objects = (pattern: string) => bucket.arnForObjects(`${prefix}${pattern}`);
  const pointers = objects(`*/${LATEST_FILE}`);
  const runbooks = objects(`*/${RUNBOOK_FILE}`);
  const reports = objects(`*/${RESTORE_TESTS_DIR}/*`);
  const allObjects = bucket.arnForObjects('*');
  const deny = (sid: string, props: { actions: string[]; resources?: string[]; notResources?: string[];
    exempt?: string[]; conditions?: Record<string, Record<string, unknown>> }) => new iam.PolicyStatement({
    sid,
    effect: iam.Effect.DENY,
    principals: [new iam.StarPrincipal()],
    actions: props.actions,
    resources: props.resources,
    notResources: props.notResources,
    conditions: { ...props.conditions, ArnNotLike: { 'aws:PrincipalArn': [...(props.exempt ?? []), breakGlass] } },
  });
  return [
    deny('WriteOnce', {
      actions: ['s3:PutObject'],
      notResources: [pointers, runbooks],
      conditions: {
        Null: { 's3:if-none-match': 'true' },
        StringNotEquals: { 's3:ObjectCreationOperation': PARTIAL_CREATION_OPERATIONS },
      },
    }),
    deny('PointersNeedIfMatch', {
      actions: ['s3:PutObject'],
      resources: [pointers, runbooks],
      conditions: { Null: { 's3:if-match': 'true', 's3:if-none-match': 'true' } },
    }),
    deny('OnlyHoldKeeperReleases', {
      actions: ['s3:PutObjectLegalHold'],
      resources: [allObjects],
      exempt: [rolesUnderPath(scope, ROLE_PATHS.holdKeeper)],
      conditions: { StringEquals: { 's3:object-lock-legal-hold': 'OFF' } },
    }),
    deny('ReportsByRestoreTestsOnly', {
      actions: ['s3:PutObject'],
      resources: [reports],
      exempt: [rolesUnderPath(scope, ROLE_PATHS.restoreTest)],
    }),
    deny('RunbooksByWriterOnly', {
      actions: ['s3:PutObject'],
      resources: [runbooks],
      exempt: [rolesUnderPath(scope, ROLE_PATHS.runbookWriter)],
    }),
    deny('NoTaggingPointers', {
      actions: TAGGING_ACTIONS,
      resources: [pointers, runbooks, reports],
    }),
    ...(options.retentionKeeper
      ? [
        deny('OnlyBreakGlassDestroys', { actions: ['s3:DeleteObject', 's3:DeleteObjectVersion'], resources: [allObjects] }),
        deny('OnlyRetentionKeeperBypasses', {
          actions: ['s3:BypassGovernanceRetention'],
          resources: [allObjects],
          exempt: [rolesUnderPath(scope, ROLE_PATHS.retentionKeeper)],
        }),
        // A GOVERNANCE lock set in the vault could be bypassed or shortened later: every lock set there is COMPLIANCE.
        deny('OnlyComplianceLocks', {
          actions: ['s3:PutObjectRetention'],
          resources: [allObjects],
          conditions: { StringNotEquals: { 's3:object-lock-mode': 'COMPLIANCE' } },
        }),
      ]
      : [deny('OnlyBreakGlassDestroys', {
        actions: ['s3:DeleteObject', 's3:DeleteObjectVersion', 's3:BypassGovernanceRetention'],
        resources: [allObjects],
      })]),
  ];
}

/** What differs in a vault's write-once policy. */
export interface WriteOnceOptions {
  /** Let the retention keeper's path (ROLE_PATHS.retentionKeeper) bypass governance locks, and nothing else. */
  readonly retentionKeeper?: boolean;
}

/** Adds the write-once statements to a bucket's policy. */
export function addWriteOncePolicy(scope: Construct, bucket: s3.IBucket, prefix: string, breakGlassRole?: iam.IRole,
  options: WriteOnceOptions = {}): void {
  for (const statement of writeOnceStatements(scope, bucket, prefix, breakGlassRole, options)) bucket.addToResourcePolicy(statement);
}
