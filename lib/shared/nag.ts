import { Stack, Token, Validations } from 'aws-cdk-lib';
import { IConstruct } from 'constructs';

/**
 * The cdk-nag pack Restorable is checked with. An acknowledgement names its plugin (`AwsSolutions::…`): CDK's
 * validation then suppresses the finding itself and lists it, with its reason, in the report. A bare rule id is
 * taken for a construct annotation, which cdk-nag honours silently and the report never shows.
 */
const NAG_PACK = 'AwsSolutions';

/** The reason every bundled Lambda handler gives for AwsSolutions-L1. */
export const NODE22_RUNTIME_REASON = 'The handler is bundled and tested for Node.js 22 (scripts/bundle.mjs targets node22), a supported ' +
  'Lambda runtime; moving to a newer one is a deliberate change with its own bundle target.';

/**
 * Acknowledges one cdk-nag finding on a construct and its children.
 * @param finding the rule and, for rules that report findings, the finding: `L1`, `IAM5[Resource::arn:…]`
 */
export function acknowledgeNag(scope: IConstruct, finding: string, reason: string): void {
  Validations.of(scope).acknowledge({ id: `${NAG_PACK}::${NAG_PACK}-${finding}`, reason });
}

/** Acknowledges an IAM5 wildcard on a resource ARN, spelled the way cdk-nag prints it once resolved. */
export function acknowledgeWildcard(scope: IConstruct, resourceArn: string, reason: string): void {
  acknowledgeNag(scope, `IAM5[Resource::${nagSpelling(Stack.of(scope).resolve(resourceArn))}]`, reason);
}

/** Acknowledges an IAM5 wildcard on an action, such as `kms:GenerateDataKey*`. */
export function acknowledgeWildcardAction(scope: IConstruct, action: string, reason: string): void {
  acknowledgeNag(scope, `IAM5[Action::${action}]`, reason);
}

/** A resolved CloudFormation value as cdk-nag names it in a finding: `${Token}`, `{ Ref }` and `Fn::GetAtt` become `<…>`. */
export function nagSpelling(value: unknown): string {
  if (typeof value === 'string') return value.replace(/\$\{/g, '<').replace(/\}/g, '>');
  if (typeof value === 'object' && value !== null) {
    const fn = value as Record<string, unknown>;
    if (Array.isArray(fn['Fn::Join'])) {
      const [delimiter, parts] = fn['Fn::Join'] as [string, unknown[]];
      return parts.map(nagSpelling).join(delimiter);
    }
    if (Array.isArray(fn['Fn::GetAtt'])) return `<${(fn['Fn::GetAtt'] as string[]).join('.')}>`;
    if (typeof fn.Ref === 'string') return `<${fn.Ref}>`;
    if ('Fn::ImportValue' in fn) return nagSpelling(fn['Fn::ImportValue']);
  }
  return Token.isUnresolved(value) ? String(value) : JSON.stringify(value);
}
