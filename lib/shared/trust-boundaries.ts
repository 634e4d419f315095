import { DefaultStackSynthesizer, Fn, Stack } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as eventsTargets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';

/** The name of the role that gets through the keys' and the identity secret's denies when no other is given. */
export const DEFAULT_BREAK_GLASS_ROLE_NAME = 'restorable-break-glass';

/** What a key's policy denies to everyone but break-glass: the calls that make a key, and every backup under it, unusable. */
export const KEY_DESTRUCTIVE_ACTIONS = ['kms:ScheduleKeyDeletion', 'kms:DisableKey', 'kms:UpdateAlias', 'kms:DeleteAlias'];

/** The ARN of the break-glass role: the one given, or `restorable-break-glass` in the scope's account. */
export function breakGlassRoleArn(scope: Construct, role?: iam.IRole): string {
  if (role) return role.roleArn;
  return Stack.of(scope).formatArn({ service: 'iam', region: '', resource: 'role', resourceName: DEFAULT_BREAK_GLASS_ROLE_NAME });
}

/**
 * The ARN of the role CloudFormation deploys the stack with: the one given, the stack synthesizer's
 * CloudFormation execution role, or the default bootstrap's (`cdk-hnb659fds-cfn-exec-role-…`).
 */
export function deploymentRoleArn(scope: Construct, given?: string): string {
  if (given) return given;
  const stack = Stack.of(scope);
  const synthesizer = stack.synthesizer;
  const template = synthesizer instanceof DefaultStackSynthesizer
    ? synthesizer.cloudFormationExecutionRoleArn
    : `arn:\${AWS::Partition}:iam::\${AWS::AccountId}:role/cdk-${DefaultStackSynthesizer.DEFAULT_QUALIFIER}-cfn-exec-role-\${AWS::AccountId}-\${AWS::Region}`;
  return template.includes('${') ? Fn.sub(template) : template;
}

/**
 * Denies scheduling the key's deletion, disabling it and moving or deleting its alias to every principal but
 * those named (by `aws:PrincipalArn`, which is the role's ARN for its assumed-role sessions too; NotPrincipal
 * cannot say that). Whoever may change the key policy can still remove this statement: it stops a role that
 * merely holds `kms:*`, not an administrator, and the key-policy change is what the trust-boundary alarm reports.
 */
export function denyDestroyingKey(key: kms.Key, exemptRoleArns: string[]): void {
  key.addToResourcePolicy(new iam.PolicyStatement({
    sid: 'OnlyBreakGlassDestroysTheKey',
    effect: iam.Effect.DENY,
    principals: [new iam.AnyPrincipal()],
    actions: KEY_DESTRUCTIVE_ACTIONS,
    resources: ['*'],
    conditions: { ArnNotLike: { 'aws:PrincipalArn': exemptRoleArns } },
  }));
}

/** The management calls that loosen or destroy a key or a secret, reported whoever makes them. */
export const TAMPERING_EVENT_NAMES = [
  'PutKeyPolicy', 'ScheduleKeyDeletion', 'DisableKey', 'PutResourcePolicy', 'DeleteResourcePolicy', 'DeleteSecret',
];

/** What the tampering rule watches. */
export interface TamperingTargets {
  /** The KMS keys, by ARN (CloudTrail names a key in the record's `resources`). */
  readonly keyArns: string[];
  /** The secret, by ARN (callers name it in `secretId`, by ARN or by name; the response names it by ARN). */
  readonly secretArn: string;
  /** The secret's name, as a caller may give it instead of the ARN. */
  readonly secretName?: string;
}

/**
 * An EventBridge rule on CloudTrail management events that publishes to the alarm topic when someone changes
 * the policy of, disables or deletes the keys or the secret, naming the call, the principal and whether it was
 * refused. It publishes directly rather than through an alarm: each call is a finding of its own.
 */
export function alarmOnTampering(scope: Construct, id: string, topic: sns.ITopic, targets: TamperingTargets): events.Rule {
  const secretIds = targets.secretName ? [targets.secretArn, targets.secretName] : [targets.secretArn];
  const rule = new events.Rule(scope, id, {
    description: 'Reports policy changes, disabling and deletion of the Restorable keys and identity secret',
    eventPattern: {
      source: ['aws.kms', 'aws.secretsmanager'],
      detailType: ['AWS API Call via CloudTrail'],
      detail: {
        eventSource: ['kms.amazonaws.com', 'secretsmanager.amazonaws.com'],
        eventName: TAMPERING_EVENT_NAMES,
        $or: [
          { resources: { ARN: targets.keyArns } },
          { requestParameters: { secretId: secretIds } },
          { responseElements: { arn: [targets.secretArn] } },
        ],
      },
    },
  });
  const field = (path: string) => events.EventField.fromPath(path);
  rule.addTarget(new eventsTargets.SnsTopic(topic, {
    message: events.RuleTargetInput.fromText(
      `Restorable trust boundary: ${field('$.detail.eventName')} (${field('$.detail.eventSource')}) by ` +
      `${field('$.detail.userIdentity.arn')} in ${field('$.account')} ${field('$.region')} at ${field('$.time')}; ` +
      `error: ${field('$.detail.errorCode')}. Check that this change was intended.`),
  }));
  return rule;
}

/**
 * The IAM paths Restorable's roles live under, one per kind of principal. The bucket policy tells the kinds apart by
 * `aws:PrincipalArn` against these paths, so that one statement covers a hundred sources' roles and the policy stays
 * within S3's 20 KB. Whoever may create a role under a path is trusted as that kind: keep `iam:CreateRole` on
 * `/restorable/*` for the deploying role and administrators.
 */
export const ROLE_PATHS = {
  /** Dump tasks, one role per source: add backups, nothing else. */
  dump: '/restorable/dump/',
  /** Restore tests: read backups and the identity, write restore-test reports. */
  restoreTest: '/restorable/restore-test/',
  /** The hold keeper: the only principal that releases legal holds. */
  holdKeeper: '/restorable/hold-keeper/',
  /** The runbook writer: the only principal that writes RUNBOOK.md. */
  runbookWriter: '/restorable/runbook-writer/',
  /** The primary store's replication role: a vault in another account admits it, by this path, to replicate only. */
  replication: '/restorable/replication/',
  /** The vault's retention keeper: turns each new replica's lock into COMPLIANCE, the only bypass of governance there. */
  retentionKeeper: '/restorable/retention-keeper/',
  /** The vault's identity copier: the one principal of the vault account the primary's identity secret admits. */
  identityCopier: '/restorable/identity-copier/',
  /** People restoring by hand from a vault: read every source's backups and the vault's identity. */
  restore: '/restorable/restore/',
} as const;

/** `arn:…:iam::ACCOUNT:role/restorable/dump/*`: every role under a path, for `aws:PrincipalArn` conditions. */
export function rolesUnderPath(scope: Construct, path: string): string {
  return Stack.of(scope).formatArn({ service: 'iam', region: '', resource: 'role', resourceName: `${path.slice(1)}*` });
}
