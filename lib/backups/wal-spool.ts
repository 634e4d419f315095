import { RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as efs from 'aws-cdk-lib/aws-efs';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';

/** The agent image's user (`node`), which owns each source's spool directory. */
export const AGENT_UID = '1000';

/** The client calls of NFS over IAM authorization. */
const CLIENT_ACTIONS = ['elasticfilesystem:ClientMount', 'elasticfilesystem:ClientWrite', 'elasticfilesystem:ClientRootAccess'];

export interface WalSpoolProps {
  readonly vpc: ec2.IVpc;
  /** Where the mount targets go: the subnets the spooled services run in. */
  readonly subnets: ec2.SubnetSelection;
}

/**
 * The durable spool of the spooled services (WAL receivers and binlog streamers): one encrypted EFS file system,
 * retained, with a directory (an access point) per source. pg_receivewal confirms WAL to the server's replication
 * slot once it is in the spool, before the receiver has uploaded it; a spool that outlived a killed task is what lets
 * the next one upload it, so that the slot never releases WAL that is in neither the spool nor the store. A binlog
 * streamer resumes from the newest file in its spool, so that a restarted task neither re-reads the server's whole
 * binlog history nor loses what the killed one had not uploaded. (The construct ids and descriptions still say WAL:
 * they name deployed resources, and a new description would replace the security groups.)
 *
 * Only the spooled services' security group reaches it (NFS), and only over TLS, through an access point (which fixes the
 * POSIX user and the directory), and as a principal granted by IAM: the file system policy refuses every other mount.
 */
export class WalSpool extends Construct {
  public readonly fileSystem: efs.FileSystem;
  /** The spooled services' own group (WAL receivers and binlog streamers): the only one the file system admits. */
  public readonly receiverSecurityGroup: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: WalSpoolProps) {
    super(scope, id);
    this.receiverSecurityGroup = new ec2.SecurityGroup(this, 'ReceiverSecurityGroup', {
      vpc: props.vpc,
      description: 'Restorable WAL receivers: NFS out to their spool',
      allowAllOutbound: false,
    });
    const fileSystemGroup = new ec2.SecurityGroup(this, 'FileSystemSecurityGroup', {
      vpc: props.vpc,
      description: 'Restorable WAL spool: NFS in from the WAL receivers only',
      allowAllOutbound: false,
    });
    const deny = (sid: string, conditions: Record<string, Record<string, string>>) => new iam.PolicyStatement({
      sid, effect: iam.Effect.DENY, principals: [new iam.AnyPrincipal()], actions: CLIENT_ACTIONS, conditions,
    });
    this.fileSystem = new efs.FileSystem(this, 'FileSystem', {
      vpc: props.vpc,
      vpcSubnets: props.subnets,
      securityGroup: fileSystemGroup,
      encrypted: true,
      removalPolicy: RemovalPolicy.RETAIN,
      // A file system policy of our own, which grants nobody: IAM-authorized principals of the account get what their
      // own policies grant (a spooled service's task role: its access point), and an anonymous mount nothing. CDK's default
      // for false would add an Allow for any principal that reaches a mount target.
      allowAnonymousAccess: true,
      fileSystemPolicy: new iam.PolicyDocument({
        statements: [
          deny('OnlyOverTls', { Bool: { 'aws:SecureTransport': 'false' } }),
          deny('OnlyThroughAccessPoints', { Null: { 'elasticfilesystem:AccessPointArn': 'true' } }),
        ],
      }),
    });
    this.fileSystem.connections.allowDefaultPortFrom(this.receiverSecurityGroup, 'Restorable WAL receivers to their spool');
  }

  /** A source's directory, `/{source}`, owned by the agent's user, which every client of the access point is. */
  public addSource(scope: Construct, source: string): efs.AccessPoint {
    return new efs.AccessPoint(scope, 'SpoolAccessPoint', {
      fileSystem: this.fileSystem,
      path: `/${source}`,
      createAcl: { ownerUid: AGENT_UID, ownerGid: AGENT_UID, permissions: '700' },
      posixUser: { uid: AGENT_UID, gid: AGENT_UID },
    });
  }

  /** Lets a spooled service's role mount its source's directory, read and write, through its access point only. */
  public grantMount(grantee: iam.IGrantable, accessPoint: efs.AccessPoint): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['elasticfilesystem:ClientMount', 'elasticfilesystem:ClientWrite'],
      resourceArns: [this.fileSystem.fileSystemArn],
      conditions: { StringEquals: { 'elasticfilesystem:AccessPointArn': accessPoint.accessPointArn } },
    });
  }
}
