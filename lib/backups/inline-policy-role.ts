import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';

/**
 * A role whose grants land in an inline policy instead of a separate AWS::IAM::Policy: one CloudFormation
 * resource per role, not two. Used where roles come one per source, so that a stack holds a hundred sources
 * under CloudFormation's 500-resource limit. Inline policies share the role's 10,240-character quota, ample
 * for one source's grants.
 */
export class InlinePolicyRole extends iam.Role {
  private readonly document: iam.PolicyDocument;

  constructor(scope: Construct, id: string, props: iam.RoleProps) {
    const document = new iam.PolicyDocument();
    super(scope, id, { ...props, inlinePolicies: { ...props.inlinePolicies, Grants: document } });
    this.document = document;
  }

  public override addToPrincipalPolicy(statement: iam.PolicyStatement): iam.AddToPrincipalPolicyResult {
    this.document.addStatements(statement);
    return { statementAdded: true, policyDependable: this };
  }
}
