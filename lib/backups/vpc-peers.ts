/**
 * Network peers of the backup tasks' security group: the VPC's CIDR, and S3's managed prefix list as a peer whose
 * rules go inline in the group.
 */
import { Annotations, Stack, Token } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct } from 'constructs';

/** The VPC's CIDR block, or undefined for a VPC imported without it. */
export function vpcCidr(vpc: ec2.IVpc): string | undefined {
  try {
    return vpc.vpcCidrBlock;
  } catch {
    return undefined;
  }
}

/**
 * S3's managed prefix list in the stack's region (`com.amazonaws.REGION.s3`), looked up from the account (the
 * CDK CLI caches the answer in cdk.context.json), as a peer whose rule is inline: CDK makes a resource of its own
 * of every rule naming a prefix list, while CloudFormation takes DestinationPrefixListId inline. Undefined for an
 * environment-agnostic stack, which cannot look anything up.
 */
export function s3PrefixList(scope: Construct): ec2.IPeer | undefined {
  const stack = Stack.of(scope);
  if (Token.isUnresolved(stack.account) || Token.isUnresolved(stack.region)) {
    Annotations.of(scope).addWarningV2('@restorable/database-backups:https-anywhere',
      'The stack has no account and region, so S3\'s prefix list cannot be looked up: the tasks may use HTTPS to any address, not only ' +
      'to the VPC endpoints and S3 (in subnets without NAT, only the endpoints and S3 are routed anyway). Give the stack an env, or ' +
      'acknowledge this warning.');
    return undefined;
  }
  const list = ec2.PrefixList.fromLookup(scope, 'S3PrefixList', { prefixListName: `com.amazonaws.${stack.region}.s3` });
  return new InlinePrefixListPeer(list.prefixListId);
}

/** A managed prefix list as a security-group peer whose rules go inline in the group. */
class InlinePrefixListPeer implements ec2.IPeer {
  public readonly canInlineRule = true;
  public readonly connections: ec2.Connections = new ec2.Connections({ peer: this });
  public readonly uniqueId: string;

  constructor(private readonly prefixListId: string) {
    this.uniqueId = prefixListId;
  }

  public toIngressRuleConfig(): ec2.IngressRuleConfig {
    return { sourcePrefixListId: this.prefixListId };
  }

  public toEgressRuleConfig(): ec2.EgressRuleConfig {
    return { destinationPrefixListId: this.prefixListId };
  }
}

/** What openDatabasePort reads of a source: where its database listens. */
export interface DatabasePortSource {
  readonly peer?: ec2.IConnectable;
  readonly endpoint?: { readonly port: number };
  readonly engine: { readonly defaultPort: number };
}

/**
 * Lets the tasks out to a database's port and, with a peer, the database let them in. The egress goes to the
 * VPC's CIDR, one inline rule per distinct port, rather than to each database's security group: a rule naming
 * another group cannot be inline and would be a resource of its own for every source, which a hundred sources
 * cannot afford under CloudFormation's 500 resources. The database's own ingress rule still names the tasks' group.
 * A VPC imported without its CIDR lets the tasks out to the port anywhere, and `owner` warns of it.
 */
export function openDatabasePort(owner: Construct, tasks: ec2.SecurityGroup, vpc: ec2.IVpc, source: DatabasePortSource): void {
  const port = source.peer?.connections.defaultPort ?? ec2.Port.tcp(source.endpoint?.port ?? source.engine.defaultPort);
  const cidr = vpcCidr(vpc);
  if (cidr) {
    tasks.addEgressRule(ec2.Peer.ipv4(cidr), port, `Restorable backup tasks to the databases on ${port}`);
  } else {
    tasks.addEgressRule(ec2.Peer.anyIpv4(), port, `Restorable backup tasks to the databases on ${port}, anywhere (the VPC's CIDR is unknown)`);
    Annotations.of(owner).addWarningV2('@restorable/database-backups:vpc-cidr-unknown',
      `The VPC was imported without its CIDR block, so the backup tasks may reach ${port} at any address rather than only inside the VPC: ` +
      'give vpcCidrBlock to Vpc.fromVpcAttributes (or use Vpc.fromLookup), or acknowledge this warning.');
  }
  // Only the database's side: Connections.allowFrom would also add an egress rule naming the database's group.
  for (const group of source.peer?.connections.securityGroups ?? []) group.addIngressRule(tasks, port, 'Restorable backup tasks', false);
}
