/**
 * How the backup tasks (and the spooled services) reach the AWS APIs: through VPC endpoints that DatabaseBackups creates
 * with `vpcEndpoints`, each with a policy that lets through only what Restorable uses, or through NAT. The endpoints are
 * created in the DatabaseBackups' own scope, so that their construct ids are its children's.
 */
import { Aws, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { s3PrefixList } from './vpc-peers';
import type { BackupBucket } from '../store/backup-bucket';

export interface AwsApiAccessProps {
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.SubnetSelection;
  readonly store: BackupBucket;
  /** The backup tasks' group, which the endpoints admit. */
  readonly tasks: ec2.ISecurityGroup;
  /** Create the endpoints (DatabaseBackupsProps.vpcEndpoints). */
  readonly endpoints: boolean;
}

export class AwsApiAccess {
  /** The security group of the interface endpoints; undefined without them. */
  public readonly endpointSecurityGroup?: ec2.SecurityGroup;
  /** What the Secrets Manager endpoint's policy allows: the identity and each source's secret, added as sources come. */
  private readonly secretsAccess = new iam.PolicyStatement({
    sid: 'OnlyRestorableSecrets',
    principals: [new iam.AnyPrincipal()],
    actions: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
  });
  private secretsEndpoint?: ec2.InterfaceVpcEndpoint;
  /** S3 in this region, as an egress peer: its prefix list, or undefined when it cannot be looked up. */
  private s3Peer?: ec2.IPeer;

  constructor(scope: Construct, props: AwsApiAccessProps) {
    if (props.endpoints) this.endpointSecurityGroup = this.createEndpoints(scope, props);
  }

  /**
   * HTTPS out to the AWS APIs: with endpoints, to their security group and to S3's prefix list (the gateway
   * endpoint's routes), both inline rules; without, to any address, since the APIs are then reached through NAT.
   */
  public allowHttps(group: ec2.ISecurityGroup, who: string): void {
    const https = ec2.Port.tcp(443);
    // remoteRule: a group that already allows all outbound ignores these without a warning.
    if (!this.endpointSecurityGroup) {
      group.addEgressRule(ec2.Peer.anyIpv4(), https, `${who} to AWS APIs over HTTPS, through NAT`, true);
      return;
    }
    group.addEgressRule(ec2.Peer.securityGroupId(this.endpointSecurityGroup.securityGroupId), https, `${who} to the VPC endpoints`, true);
    if (this.s3Peer) {
      group.addEgressRule(this.s3Peer, https, `${who} to S3 through the gateway endpoint`, true);
    } else {
      group.addEgressRule(ec2.Peer.anyIpv4(), https, `${who} to S3 over HTTPS (its prefix list needs the stack's account and region)`, true);
    }
  }

  /** Adds a secret to what the Secrets Manager endpoint created here lets through. */
  public allowSecret(secret: secretsmanager.ISecret): void {
    // A secret known by a partial ARN (no random suffix) is matched by any suffix, as its own grants do.
    this.secretsAccess.addResources(secret.secretFullArn ?? `${secret.secretArn}-??????`);
    // Added to the policy with its first resource: a statement without one would be refused.
    if (this.secretsEndpoint && this.secretsAccess.resources.length === 1) this.secretsEndpoint.addToPolicy(this.secretsAccess);
  }

  /**
   * The endpoints of `vpcEndpoints`, each with a policy (see the prop). The gateway endpoint serves only
   * this region's S3: a request to another region's (a DR restore test reading the replica) does not match its
   * routes and goes out through NAT to that region's public endpoint, so this policy neither limits nor breaks it.
   */
  private createEndpoints(scope: Construct, props: AwsApiAccessProps): ec2.SecurityGroup {
    const { vpc, subnets } = props;
    const stack = Stack.of(scope);
    const s3Endpoint = new ec2.GatewayVpcEndpoint(scope, 'S3Endpoint', { vpc, service: ec2.GatewayVpcEndpointAwsService.S3, subnets: [subnets] });
    const { bucket } = props.store;
    // What the agent does to the store: read, write and list objects (the identity and bucket policies say who may
    // do which); no bucket configuration and no deletion.
    s3Endpoint.addToPolicy(new iam.PolicyStatement({
      sid: 'OnlyTheBackupStore',
      principals: [new iam.AnyPrincipal()],
      actions: ['s3:GetObject*', 's3:PutObject*', 's3:ListBucket*', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts', 's3:RestoreObject'],
      resources: [bucket.bucketArn, bucket.arnForObjects('*')],
    }));
    // Fargate pulls image layers (the agent's, and scratch images mirrored in ECR) from ECR's bucket in this region.
    s3Endpoint.addToPolicy(new iam.PolicyStatement({
      sid: 'EcrImageLayers',
      principals: [new iam.AnyPrincipal()],
      actions: ['s3:GetObject'],
      resources: [`arn:${Aws.PARTITION}:s3:::prod-${stack.region}-starport-layer-bucket/*`],
    }));
    this.s3Peer = s3PrefixList(scope);
    const endpointSecurityGroup = new ec2.SecurityGroup(scope, 'EndpointSecurityGroup', {
      vpc,
      allowAllOutbound: false,
      description: 'Restorable VPC endpoints: HTTPS in from the backup tasks',
    });
    endpointSecurityGroup.addIngressRule(props.tasks, ec2.Port.tcp(443), 'Restorable backup tasks');
    const services = {
      SecretsManager: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
      EcrApi: ec2.InterfaceVpcEndpointAwsService.ECR,
      EcrDocker: ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
      Logs: ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
      Monitoring: ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_MONITORING,
    };
    for (const [id, service] of Object.entries(services)) {
      const endpoint = new ec2.InterfaceVpcEndpoint(scope, `${id}Endpoint`, {
        vpc, service, subnets, securityGroups: [endpointSecurityGroup], open: false, privateDnsEnabled: true,
      });
      if (service === ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER) {
        this.secretsEndpoint = endpoint;
        continue;
      }
      // No resource of ECR, Logs or Monitoring is Restorable's alone to name, but a task holding credentials of
      // another account could ship data to that account's log group or repository through them: only this
      // account's principals (the execution role pulling and logging, the agent publishing metrics) get through.
      endpoint.addToPolicy(new iam.PolicyStatement({
        sid: 'OnlyThisAccountsPrincipals',
        principals: [new iam.AnyPrincipal()],
        actions: ['*'],
        resources: ['*'],
        conditions: { StringEquals: { 'aws:PrincipalAccount': stack.account } },
      }));
    }
    return endpointSecurityGroup;
  }}
