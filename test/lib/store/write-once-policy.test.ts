/**
 * The store's write-once bucket policy, as synthesized: every statement a Deny to `Principal: "*"` whose exemptions are
 * `ArnNotLike aws:PrincipalArn` (never NotPrincipal), on the primary and on the replica, and a policy whose size does
 * not depend on how many sources write to the store. What the statements do to each principal is proven by the
 * simulator matrix; here, that each is there with its actions, resources and conditions.
 */
import { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { ACCOUNT, breakGlassProps, onlyResource, primaryWithReplica, resourcesOf, standaloneStore } from '../store-fixtures';

type Statement = Record<string, unknown> & { Condition?: Record<string, Record<string, unknown>> };

const role = (path: string) => `arn:<AWS::Partition>:iam::${ACCOUNT}:role/${path}*`;
const BREAK_GLASS = `arn:<AWS::Partition>:iam::${ACCOUNT}:role/restorable-break-glass`;

/** The bucket policy of the bucket whose logical id starts with `bucketId`, statement by Sid. */
function policyOf(stack: Stack, bucketId: string): Map<string, Statement> {
  const policies = Object.values(Template.fromStack(stack).findResources('AWS::S3::BucketPolicy'))
    .filter((p) => JSON.stringify(p.Properties.Bucket).includes(bucketId));
  expect(policies).toHaveLength(1);
  const statements = policies[0].Properties.PolicyDocument.Statement as Statement[];
  return new Map(statements.map((s) => [String(s.Sid), s]));
}

/** A condition's values with tokens spelled as readable strings. */
const exemptions = (s: Statement) => resourcesOf({ Resource: s.Condition!.ArnNotLike['aws:PrincipalArn'] });

describe.each([
  ['the primary', () => { const f = primaryWithReplica(); return { stack: f.primary, bucketId: 'StoreBucket' }; }],
  ['the replica', () => { const f = primaryWithReplica(); return { stack: f.replicaStack, bucketId: 'ReplicaStoreBucket' }; }],
])('the write-once bucket policy of %s', (_, build) => {
  const { stack, bucketId } = build();
  const statements = policyOf(stack, bucketId);
  const bucket = new RegExp(`^<${bucketId}\\w+\\.Arn>`);
  const objects = (rest: string) => expect.stringMatching(new RegExp(`${bucket.source}/${rest.replace(/[.*]/g, (c) => `\\${c}`)}$`));

  test('every statement denies to "*", exempts by aws:PrincipalArn, and none uses NotPrincipal', () => {
    for (const sid of ['WriteOnce', 'PointersNeedIfMatch', 'OnlyHoldKeeperReleases', 'ReportsByRestoreTestsOnly', 'RunbooksByWriterOnly',
      'NoTaggingPointers', 'OnlyBreakGlassDestroys']) {
      const s = statements.get(sid)!;
      expect(s).toBeDefined();
      expect(s.Effect).toBe('Deny');
      expect(s.Principal).toBe('*');
      expect(s.NotPrincipal).toBeUndefined();
      expect(exemptions(s)).toContain(BREAK_GLASS);
    }
    // The existing deny on retagging a backup stays.
    expect(statements.get('DenyRetaggingBackups')!.Condition).toEqual({ Null: { 's3:ExistingObjectTag/backup-tier': 'false' } });
  });

  test('WriteOnce: no PutObject without If-None-Match but on the pointers and runbooks, the multipart steps that create nothing exempt', () => {
    const s = statements.get('WriteOnce')!;
    expect(s.Action).toBe('s3:PutObject');
    expect(s.Resource).toBeUndefined();
    expect(resourcesOf({ Resource: s.NotResource })).toEqual([objects('*/latest.json'), objects('*/RUNBOOK.md')]);
    expect(s.Condition).toEqual({
      'Null': { 's3:if-none-match': 'true' },
      'StringNotEquals': { 's3:ObjectCreationOperation': ['CreateMultipartUpload', 'UploadPart', 'UploadPartCopy'] },
      'ArnNotLike': expect.anything(),
    });
    expect(exemptions(s)).toEqual([BREAK_GLASS]);
  });

  test('PointersNeedIfMatch: latest.json and RUNBOOK.md only with If-Match or If-None-Match', () => {
    const s = statements.get('PointersNeedIfMatch')!;
    expect(s.Action).toBe('s3:PutObject');
    expect(resourcesOf(s)).toEqual([objects('*/latest.json'), objects('*/RUNBOOK.md')]);
    expect(s.Condition!.Null).toEqual({ 's3:if-match': 'true', 's3:if-none-match': 'true' });
    expect(exemptions(s)).toEqual([BREAK_GLASS]);
  });

  test('OnlyHoldKeeperReleases: a legal hold goes OFF only by the hold keeper\'s path', () => {
    const s = statements.get('OnlyHoldKeeperReleases')!;
    expect(s.Action).toBe('s3:PutObjectLegalHold');
    expect(resourcesOf(s)).toEqual([objects('*')]);
    expect(s.Condition!.StringEquals).toEqual({ 's3:object-lock-legal-hold': 'OFF' });
    expect(exemptions(s)).toEqual([role('restorable/hold-keeper/'), BREAK_GLASS]);
  });

  test('ReportsByRestoreTestsOnly and RunbooksByWriterOnly: each key kind written by its own path only', () => {
    const reports = statements.get('ReportsByRestoreTestsOnly')!;
    expect(reports.Action).toBe('s3:PutObject');
    expect(resourcesOf(reports)).toEqual([objects('*/restore-tests/*')]);
    expect(Object.keys(reports.Condition!)).toEqual(['ArnNotLike']);
    expect(exemptions(reports)).toEqual([role('restorable/restore-test/'), BREAK_GLASS]);

    const runbooks = statements.get('RunbooksByWriterOnly')!;
    expect(runbooks.Action).toBe('s3:PutObject');
    expect(resourcesOf(runbooks)).toEqual([objects('*/RUNBOOK.md')]);
    expect(Object.keys(runbooks.Condition!)).toEqual(['ArnNotLike']);
    expect(exemptions(runbooks)).toEqual([role('restorable/runbook-writer/'), BREAK_GLASS]);
  });

  test('NoTaggingPointers: no tagging call on the pointers, runbooks and reports, at creation or after', () => {
    const s = statements.get('NoTaggingPointers')!;
    expect(s.Action).toEqual(['s3:PutObjectTagging', 's3:PutObjectVersionTagging', 's3:DeleteObjectTagging', 's3:DeleteObjectVersionTagging']);
    expect(resourcesOf(s)).toEqual([objects('*/latest.json'), objects('*/RUNBOOK.md'), objects('*/restore-tests/*')]);
    expect(Object.keys(s.Condition!)).toEqual(['ArnNotLike']);
    expect(exemptions(s)).toEqual([BREAK_GLASS]);
  });

  test('OnlyBreakGlassDestroys: deleting a version and bypassing governance are break-glass\'s alone', () => {
    const s = statements.get('OnlyBreakGlassDestroys')!;
    expect(s.Action).toEqual(['s3:DeleteObject', 's3:DeleteObjectVersion', 's3:BypassGovernanceRetention']);
    expect(resourcesOf(s)).toEqual([objects('*')]);
    expect(Object.keys(s.Condition!)).toEqual(['ArnNotLike']);
    expect(exemptions(s)).toEqual([BREAK_GLASS]);
  });
});

test('given a key prefix, the statements name {prefix}*/… keys', () => {
  const { stack } = standaloneStore({ prefix: 'backups' });
  const statements = policyOf(stack, 'StoreBucket');
  expect(resourcesOf({ Resource: statements.get('WriteOnce')!.NotResource })).toEqual([
    expect.stringMatching(/\.Arn>\/backups\/\*\/latest\.json$/), expect.stringMatching(/\.Arn>\/backups\/\*\/RUNBOOK\.md$/),
  ]);
  expect(resourcesOf(statements.get('ReportsByRestoreTestsOnly')!)).toEqual([expect.stringMatching(/\.Arn>\/backups\/\*\/restore-tests\/\*$/)]);
});

test('given a break-glass role, every statement exempts that role instead of the default', () => {
  const arn = `arn:aws:iam::${ACCOUNT}:role/ops/break-glass`;
  const { primary, replicaStack } = primaryWithReplica(breakGlassProps(arn), breakGlassProps(arn));
  for (const [stack, id] of [[primary, 'StoreBucket'], [replicaStack, 'ReplicaStoreBucket']] as const) {
    for (const statement of policyOf(stack, id).values()) {
      if (statement.Effect !== 'Deny' || !statement.Condition?.ArnNotLike) continue;
      expect(exemptions(statement)).toContain(arn);
      expect(exemptions(statement)).not.toContain(BREAK_GLASS);
    }
  }
});

/**
 * The policy as S3 would store it: compact JSON with the bucket's ARN at its longest (a 63-character name) and the
 * partition and account filled in. S3 refuses a bucket policy over 20 KB.
 */
function resolvedPolicyLength(stack: Stack, bucketId: string): number {
  const policy = onlyResource(Template.fromStack(stack), 'AWS::S3::BucketPolicy', bucketId.replace('Bucket', 'BucketPolicy'));
  const resolve = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(resolve);
    if (typeof value !== 'object' || value === null) return value;
    const fn = value as Record<string, unknown>;
    if (fn['Fn::Join']) {
      const [delimiter, parts] = fn['Fn::Join'] as [string, unknown[]];
      return parts.map(resolve).join(delimiter);
    }
    if (fn['Fn::GetAtt']) return `arn:aws:s3:::${'b'.repeat(63)}`;
    if (fn.Ref === 'AWS::Partition') return 'aws';
    if (typeof fn.Ref === 'string') return 'b'.repeat(63);
    return Object.fromEntries(Object.entries(fn).map(([k, v]) => [k, resolve(v)]));
  };
  const resolved = JSON.stringify(resolve(policy.Properties.PolicyDocument));
  expect(resolved).not.toMatch(/Fn::|"Ref"/);
  return Buffer.byteLength(resolved);
}

test('the policy is small, and the same size whether one source or a hundred write to the store', () => {
  const sized = (sources: number) => {
    const { primary, store } = primaryWithReplica();
    for (let n = 0; n < sources; n++) {
      const grantee = (kind: string) => new iam.Role(primary, `${kind}${n}`, {
        assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'), path: `/restorable/${kind}/s${n}/`,
      });
      store.grantBackupWrite(grantee('dump'), `source-${n}`);
      store.grantRestoreRead(grantee('restore-test'), `source-${n}`);
    }
    return resolvedPolicyLength(primary, 'StoreBucket');
  };
  const one = sized(1);
  expect(sized(100)).toBe(one);
  // Seven statements, the TLS and retagging denies and the access-log grant, far within 20 KB.
  expect(one).toBeLessThan(6 * 1024);
});
