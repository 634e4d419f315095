import { createHash } from 'node:crypto';
import { Aws, Names, NestedStack, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { IdentityReadOptions } from '../keys/backup-keys';
import { BackupBucket } from '../store/backup-bucket';
import { ReplicaStore } from '../store/replica-store';
import { METRIC_NAMESPACE } from '../contract/metrics';
import { restoreTestsPrefix, sourcePrefix } from '../contract/names';
import { acknowledgeNag } from '../shared/nag';
import { ROLE_PATHS } from '../shared/trust-boundaries';

/**
 * Sources per nested stack: 25 sources' roles and policies are 50 resources, and a hundred sources take four nested
 * stacks, four resources of the parent's.
 */
export const SOURCES_PER_STACK = 25;

/** What every role name ends with: its region, since IAM names are unique across an account's regions. */
export const ROLE_NAME_SUFFIX = `-${Aws.REGION}`;

/**
 * What holds the age identity the restore tests read: BackupKeys in the primary's account, or a vault's own copy
 * (VaultIdentity) in the vault's.
 */
export interface IIdentityReader {
  /** Lets the role read the identity; with `rolePath`, the secret's policy names the path instead of the role. */
  grantIdentityRead(role: iam.IRole, options?: IdentityReadOptions): iam.Grant;
}

export interface RestoreTestRolesProps {
  /** The bucket the tests read: the primary store, or a vault tested from its own account. */
  readonly store: BackupBucket;
  readonly identity: IIdentityReader;
  /**
   * Also grant reads of this DR replica (in another region of the same account) and the identity secret's replica.
   * @default - the roles read `store` alone
   */
  readonly drReplica?: ReplicaStore;
}

/**
 * One restore-test role per source, so that a test of one source can read and decrypt no other source's backups.
 * The roles live in nested stacks of 25 sources each, under one IAM path per RestoreTesting
 * (`/restorable/restore-test/{id}/`), with names known at synth: every policy that must name them all (the identity
 * secret's, the orchestrator's PassRole) names the path, and the orchestrator knows each role by its name. Nothing
 * in the parent refers to a nested stack's resources, so the nested stacks have no outputs; what they read from the
 * parent (the bucket, keys and secret) are parameters, the same few for each.
 */
export class RestoreTestRoles {
  /** The IAM path of every role, ending with '/'. */
  public readonly path: string;
  /** The nested stacks, in order: stack n holds sources 25n+1 to 25(n+1). */
  public readonly stacks: NestedStack[] = [];
  private readonly scope: Construct;
  private readonly props: RestoreTestRolesProps;
  private readonly roles = new Map<string, RestoreTestRole>();
  private readonly onStack: ((stack: NestedStack) => void)[] = [];

  constructor(scope: Construct, props: RestoreTestRolesProps) {
    this.scope = scope;
    this.props = props;
    this.path = `${ROLE_PATHS.restoreTest}${Names.uniqueId(scope)}/`;
  }

  /** Calls `callback` with every nested stack, those there now and those made later. */
  public forEachStack(callback: (stack: NestedStack) => void): void {
    this.stacks.forEach(callback);
    this.onStack.push(callback);
  }

  /** The role of one more source, in the last nested stack or a new one. */
  public add(source: string): RestoreTestRole {
    const index = this.roles.size;
    const n = Math.floor(index / SOURCES_PER_STACK);
    if (!this.stacks[n]) {
      const stack = new NestedStack(this.scope, `Roles${n + 1}`, {
        description: `Restorable restore-test roles, sources ${n * SOURCES_PER_STACK + 1}-${(n + 1) * SOURCES_PER_STACK}: one per source`,
      });
      this.stacks[n] = stack;
      this.onStack.forEach((callback) => callback(stack));
    }
    const role = new RestoreTestRole(this.stacks[n], source, { ...this.props, source, path: this.path, scope: this.scope });
    this.roles.set(source, role);
    return role;
  }

  /** The ARN every role's ARN starts with: `arn:…:iam::ACCOUNT:role/restorable/restore-test/{id}/`. */
  public arnPrefix(): string {
    return Stack.of(this.scope).formatArn({ service: 'iam', region: '', resource: 'role', resourceName: this.path.slice(1) });
  }
}

interface RestoreTestRoleProps extends RestoreTestRolesProps {
  readonly source: string;
  readonly path: string;
  /** The RestoreTesting: with the source, its unique id makes the role's name. */
  readonly scope: Construct;
}

/** One source's restore-test role: its backups, the identity, its reports, Restorable metrics; nothing else. */
export class RestoreTestRole extends Construct {
  /**
   * The role's name without the region it ends with: `{source}-{hash}`, the hash of the RestoreTesting's unique id
   * and the source. Role names are unique in an account, across regions, so the deployed name ends with `-{region}`.
   */
  public readonly baseName: string;
  public readonly role: iam.Role;

  constructor(scope: Construct, id: string, props: RestoreTestRoleProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const hash = createHash('sha256').update(`${Names.uniqueId(props.scope)}/${props.source}`).digest('hex').slice(0, 8);
    // At most 32 + 1 + 8 characters, then '-' and a region: within IAM's 64.
    this.baseName = `${props.source.slice(0, 32)}-${hash}`;
    this.role = new iam.Role(this, 'Role', {
      roleName: `${this.baseName}${ROLE_NAME_SUFFIX}`,
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com', { conditions: { StringEquals: { 'aws:SourceAccount': stack.account } } }),
      path: props.path,
      description: `Restorable restore tests of '${props.source}': reads its backups and the age identity, writes its restore-test reports`,
    });
    // Through a grantee that is no construct, so that grantRestoreRead adds the statements to the role's policy but
    // makes no cdk-nag acknowledgements: it would spell the bucket as the parent's template does, and they would
    // suppress nothing here. acknowledgeStoreWildcards spells them as this nested stack's template does.
    props.store.grantRestoreRead(new PolicyOf(this.role), props.source);
    this.acknowledgeStoreWildcards(props.store, props.source);
    props.identity.grantIdentityRead(this.role, { rolePath: props.path });
    if (props.drReplica) this.grantReplicaRestoreRead(props.drReplica, props.source);
    this.role.addToPolicy(new iam.PolicyStatement({
      actions: ['cloudwatch:PutMetricData'], resources: ['*'], conditions: { StringEquals: { 'cloudwatch:namespace': METRIC_NAMESPACE } },
    }));
    acknowledgeNag(this.role, 'IAM5[Resource::*]', `cloudwatch:PutMetricData has no resource-level permissions; the cloudwatch:namespace condition limits it to ${METRIC_NAMESPACE}`);
  }

  /**
   * grantRestoreRead's object wildcards, as cdk-nag reads them in this nested stack: the bucket's ARN arrives as a
   * parameter, `referenceto{the bucket's unique id}Arn`, so the findings name it instead of the parent's bucket.
   */
  private acknowledgeStoreWildcards(store: BackupBucket, source: string): void {
    const bucketArn = `<referenceto${Names.nodeUniqueId((store.bucket.node.defaultChild ?? store.bucket).node)}Arn>`;
    acknowledgeNag(this.role, `IAM5[Resource::${bucketArn}/${sourcePrefix(store.prefix, source)}*]`,
      `A restore test of '${source}' reads any object of that source (its age-encrypted backups, their pointers and manifests, its reports and ` +
      'runbook): the wildcard matches any key under that source\'s prefix, \'/\' included, and no other source\'s key');
    acknowledgeNag(this.role, `IAM5[Resource::${bucketArn}/${restoreTestsPrefix(store.prefix, source)}*]`,
      `A restore test of '${source}' writes its reports under that source's restore-tests/ prefix (any key below it, '/' included); the bucket ` +
      'policy makes each report write-once, and restore-tests/latest.json written only with If-Match or If-None-Match');
  }

  /**
   * What grantRestoreRead gives on the store, on its DR replica, by names known at synth: the replica lives in
   * another region's stack, and a reference to its key would make a cross-region export.
   */
  private grantReplicaRestoreRead(replica: ReplicaStore, source: string): void {
    const stack = Stack.of(this);
    const bucketArn = `arn:${Aws.PARTITION}:s3:::${replica.bucket.bucketName}`;
    const sourceKeys = sourcePrefix(replica.prefix, source);
    const role = this.role;
    role.addToPolicy(new iam.PolicyStatement({
      actions: ['s3:ListBucket', 's3:ListBucketVersions'], resources: [bucketArn], conditions: { StringLike: { 's3:prefix': [`${sourceKeys}*`] } },
    }));
    role.addToPolicy(new iam.PolicyStatement({
      actions: ['s3:GetObject', 's3:GetObjectVersion', 's3:GetObjectTagging', 's3:RestoreObject'], resources: [`${bucketArn}/${sourceKeys}*`],
    }));
    role.addToPolicy(new iam.PolicyStatement({
      actions: ['s3:PutObject', 's3:AbortMultipartUpload'], resources: [`${bucketArn}/${restoreTestsPrefix(replica.prefix, source)}*`],
    }));
    role.addToPolicy(new iam.PolicyStatement({
      actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
      resources: [`arn:${Aws.PARTITION}:kms:${replica.region}:${replica.account}:key/*`],
      conditions: { 'ForAnyValue:StringEquals': { 'kms:ResourceAliases': replica.keyAliasName }, 'StringEquals': { 'kms:ViaService': `s3.${replica.region}.amazonaws.com` } },
    }));
    // cdk-nag names resources with the partition as <AWS::Partition> and the generated bucket name resolved.
    const nagBucket = `arn:<AWS::Partition>:s3:::${stack.resolve(replica.bucket.bucketName)}`;
    for (const [resource, reason] of [
      [`${nagBucket}/${sourceKeys}*`, `The DR restore test reads any backup of '${source}' in the replica; nothing outside that source's prefix`],
      [`${nagBucket}/${restoreTestsPrefix(replica.prefix, source)}*`, `The DR restore test writes its report under '${source}'s restore-tests/ prefix in the replica`],
      [`arn:<AWS::Partition>:kms:${replica.region}:${replica.account}:key/*`, 'The replica key lives in another region\'s stack and is known here by its alias; the kms:ResourceAliases condition names it'],
    ]) acknowledgeNag(role, `IAM5[Resource::${resource}]`, reason);
  }
}


/** A role's policy as a grantee that is not a construct: what it is granted goes to the role's own policy. */
class PolicyOf extends iam.PrincipalBase {
  public readonly principalAccount: string | undefined;

  constructor(private readonly role: iam.Role) {
    super();
    this.principalAccount = role.principalAccount;
  }

  public get policyFragment(): iam.PrincipalPolicyFragment {
    return this.role.policyFragment;
  }

  public addToPrincipalPolicy(statement: iam.PolicyStatement): iam.AddToPrincipalPolicyResult {
    return this.role.addToPrincipalPolicy(statement);
  }

  public dedupeString(): string | undefined {
    return `PolicyOf:${this.role.node.path}`;
  }
}
