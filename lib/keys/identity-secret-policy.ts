import { Lazy, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';

/** Who gets through the denies of a secret that holds the age identity: read lazily, so principals added later count. */
export interface IdentitySecretDenies {
  /** The roles that may read the identity (the read deny names them by ARN). */
  readonly readers: () => iam.IRole[];
  /** The Sid of the write deny, which says who the one writer is. */
  readonly writeSid: string;
  /** The calls that change, un-replicate or delete the value. */
  readonly writeActions: string[];
  /** The ARNs (patterns allowed) that may make them: the writer, CloudFormation, break-glass. */
  readonly writers: () => string[];
}

/**
 * The resource policy of a secret holding the age identity, the primary's or a vault's copy: nobody reads it but its
 * readers, nobody writes it but its writers (by `aws:PrincipalArn`, which holds for the roles' sessions too). The
 * policy is retained with the secret: a retained secret without its deny would be readable by any broad IAM policy.
 * Returns the read deny, to which callers add roles by path.
 */
export function denyAllButIdentityRoles(secret: secretsmanager.Secret, denies: IdentitySecretDenies): iam.PolicyStatement {
  const readDeny = new iam.PolicyStatement({
    sid: 'OnlyRestoreRolesReadTheIdentity',
    effect: iam.Effect.DENY,
    principals: [new iam.AnyPrincipal()],
    actions: ['secretsmanager:GetSecretValue'],
    resources: ['*'],
    conditions: {
      ArnNotEquals: { 'aws:PrincipalArn': Lazy.list({ produce: () => denies.readers().map((role) => role.roleArn) }) },
    },
  });
  const { policyDependable } = secret.addToResourcePolicy(readDeny);
  secret.addToResourcePolicy(new iam.PolicyStatement({
    sid: denies.writeSid,
    effect: iam.Effect.DENY,
    principals: [new iam.AnyPrincipal()],
    actions: denies.writeActions,
    resources: ['*'],
    conditions: { ArnNotLike: { 'aws:PrincipalArn': Lazy.list({ produce: denies.writers }) } },
  }));
  if (policyDependable instanceof secretsmanager.ResourcePolicy) policyDependable.applyRemovalPolicy(RemovalPolicy.RETAIN);
  return readDeny;
}
