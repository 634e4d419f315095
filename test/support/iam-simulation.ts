/**
 * Who may do what, by IAM policy simulation over synthesized templates.
 *
 * 1. `loadDeployment` resolves the CloudFormation intrinsics of one or more stacks into concrete ARNs for a fixed
 *    account, region and partition (every bucket, key, secret and role gets a deterministic name), and extracts each
 *    role's identity policies and ARN (with its path), the bucket policies, the KMS key policies and the secrets'
 *    resource policies.
 * 2. `authorisationsFor` is the one table of what each API call in the matrix asks IAM: the action, the resource
 *    ARN and the condition keys the service sends with it, written from the AWS Service Authorization Reference
 *    ("Actions, resources, and condition keys for Amazon S3 / AWS Key Management Service / AWS Secrets Manager")
 *    and the S3 user guide on conditional writes and SSE-KMS.
 * 3. `authorise` runs one authorisation through `@cloud-copilot/iam-simulate`, each service with its own resource
 *    policy (S3 with the bucket policy, KMS with the key policy, Secrets Manager with the secret's policy), and
 *    fails when the simulator reports a context key it ignored: it drops keys it does not know for the action
 *    without a word, and a dropped `s3:ObjectCreationOperation` once turned a deny into Allowed.
 *
 * Test-only: the simulator is AGPL and a dev dependency; nothing in lib/ may import this.
 */
import { createHash } from 'node:crypto';
import {
  getDenialReasons, runSimulation, type EvaluationResult, type RequestDenial, type SimulationIdentityPolicy,
} from '@cloud-copilot/iam-simulate';

export const PARTITION = 'aws';

/** An IAM policy document as CloudFormation carries it, once resolved. */
export interface PolicyDocument {
  readonly Version?: string;
  readonly Statement: Record<string, unknown>[];
}

/** One stack's synthesized template and where it deploys. */
export interface StackTemplate {
  /** What the models name the stack by: its construct path, unique in the app (a nested stack has no name at synth). */
  readonly id: string;
  /** The name it deploys with; a nested stack's is made up, as CloudFormation makes one up. */
  readonly stackName: string;
  /** For a nested stack: the parent's id and the logical id of its AWS::CloudFormation::Stack resource there. */
  readonly parent?: { readonly id: string; readonly logicalId: string };
  readonly account: string;
  readonly region: string;
  readonly template: CfnTemplate;
}

interface CfnResource {
  readonly Type: string;
  readonly Properties?: Record<string, unknown>;
}

export interface CfnTemplate {
  readonly Resources: Record<string, CfnResource>;
  readonly Parameters?: Record<string, { readonly Default?: unknown }>;
  readonly Outputs?: Record<string, { readonly Value: unknown; readonly Export?: { readonly Name: unknown } }>;
  readonly Conditions?: Record<string, unknown>;
}

export interface RoleModel {
  /** The StackTemplate id of the stack that holds it. */
  readonly stack: string;
  readonly logicalId: string;
  readonly name: string;
  /** The role's IAM path, `/` when none is given. */
  readonly path: string;
  /** `arn:aws:iam::ACCOUNT:role{path}{name}`: what `aws:PrincipalArn` is in each of the role's sessions. */
  readonly arn: string;
  readonly account: string;
  /** Inline policies on the role and AWS::IAM::Policy / ManagedPolicy / RolePolicy resources attached to it. */
  readonly identityPolicies: SimulationIdentityPolicy[];
}

export interface KeyModel {
  /** The StackTemplate id of the stack that holds it. */
  readonly stack: string;
  readonly logicalId: string;
  readonly arn: string;
  readonly region: string;
  readonly account: string;
  readonly policy: PolicyDocument;
  /** The aliases that point at it (`alias/…`), which KMS sends as kms:ResourceAliases. */
  readonly aliases: string[];
}

export interface BucketModel {
  /** The StackTemplate id of the stack that holds it. */
  readonly stack: string;
  readonly logicalId: string;
  readonly name: string;
  readonly arn: string;
  readonly region: string;
  readonly account: string;
  /** The SSE-KMS key objects are encrypted with by default, when it is in one of the loaded stacks. */
  readonly key?: KeyModel;
  readonly policy?: PolicyDocument;
}

export interface SecretModel {
  /** The StackTemplate id of the stack that holds it. */
  readonly stack: string;
  readonly logicalId: string;
  readonly arn: string;
  readonly region: string;
  readonly account: string;
  readonly key?: KeyModel;
  readonly policy?: PolicyDocument;
}

export interface Deployment {
  readonly roles: RoleModel[];
  readonly buckets: BucketModel[];
  readonly keys: KeyModel[];
  readonly secrets: SecretModel[];
  role(stack: string, logicalId: string): RoleModel;
  bucket(stack: string, logicalId: string): BucketModel;
  secret(stack: string, logicalId: string): SecretModel;
  /** The roles whose IAM path starts with `path` (a ROLE_PATHS value). */
  rolesUnderPath(path: string): RoleModel[];
}

const hash = (text: string, length: number) => createHash('sha256').update(text).digest('hex').slice(0, length);

/** A deterministic KMS key id (a UUID's shape) for one key resource. */
function keyId(stackName: string, logicalId: string): string {
  const h = hash(`${stackName}/${logicalId}`, 32);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Secrets Manager appends six random characters to a secret's name in its ARN: here, six from a hash. */
function secretSuffix(stackName: string, logicalId: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
  return [...hash(`${stackName}/${logicalId}/secret`, 12)].slice(0, 6).map((c) => alphabet[parseInt(c, 16) * 3 % 52]).join('');
}

const NO_VALUE = Symbol('AWS::NoValue');

/** How one stack's resolver reaches the others: exports, a nested stack's outputs, a parent's parameter values. */
interface Stacks {
  imports(name: string): unknown;
  nestedOutput(parent: StackTemplate, logicalId: string, output: string): unknown;
  parameterFromParent(nested: StackTemplate, parameter: string): unknown;
}

/** Resolves the intrinsics of one stack; what crosses stacks goes through `stacks`. */
class StackResolver {
  private readonly resources: Record<string, CfnResource>;
  private readonly names = new Map<string, string>();

  constructor(readonly stack: StackTemplate, private readonly stacks: Stacks) {
    this.resources = stack.template.Resources;
  }

  private resource(logicalId: string): CfnResource {
    const resource = this.resources[logicalId];
    if (!resource) throw new Error(`${this.stack.stackName}: no resource ${logicalId}`);
    return resource;
  }

  private get account() { return this.stack.account; }
  private get region() { return this.stack.region; }

  /** The physical name: the one the template gives, or a deterministic one in CloudFormation's style. */
  physicalName(logicalId: string): string {
    const cached = this.names.get(logicalId);
    if (cached) return cached;
    const resource = this.resource(logicalId);
    const nameProperty: Record<string, string> = {
      'AWS::S3::Bucket': 'BucketName', 'AWS::IAM::Role': 'RoleName', 'AWS::Lambda::Function': 'FunctionName',
      'AWS::SecretsManager::Secret': 'Name', 'AWS::SNS::Topic': 'TopicName', 'AWS::SQS::Queue': 'QueueName',
      'AWS::Logs::LogGroup': 'LogGroupName', 'AWS::KMS::Alias': 'AliasName', 'AWS::Events::Rule': 'Name',
      'AWS::StepFunctions::StateMachine': 'StateMachineName', 'AWS::ECS::Cluster': 'ClusterName',
      'AWS::IAM::ManagedPolicy': 'ManagedPolicyName', 'AWS::IAM::Policy': 'PolicyName',
    };
    const property = nameProperty[resource.Type];
    const given = property ? resource.Properties?.[property] : undefined;
    let name: string;
    if (given !== undefined) {
      name = this.resolveString(given, `${logicalId}.${property}`);
    } else {
      const generated = `${this.stack.stackName}-${logicalId}`;
      name = resource.Type === 'AWS::S3::Bucket' ? generated.toLowerCase().slice(0, 63)
        : resource.Type === 'AWS::IAM::Role' ? generated.slice(0, 64)
          : resource.Type === 'AWS::Logs::LogGroup' ? `/aws/generated/${generated}`
            : generated;
    }
    this.names.set(logicalId, name);
    return name;
  }

  /** The role's path as written, `/` when none is. */
  rolePath(logicalId: string): string {
    const path = this.resource(logicalId).Properties?.Path;
    return path === undefined ? '/' : this.resolveString(path, `${logicalId}.Path`);
  }

  private arn(service: string, region: string, resource: string): string {
    return `arn:${PARTITION}:${service}:${region}:${this.account}:${resource}`;
  }

  ref(logicalId: string): unknown {
    const pseudo: Record<string, unknown> = {
      'AWS::AccountId': this.account, 'AWS::Region': this.region, 'AWS::Partition': PARTITION,
      'AWS::URLSuffix': 'amazonaws.com', 'AWS::StackName': this.stack.stackName,
      'AWS::StackId': this.arn('cloudformation', this.region, `stack/${this.stack.stackName}/${keyId(this.stack.stackName, 'stack')}`),
      'AWS::NotificationARNs': [], 'AWS::NoValue': NO_VALUE,
    };
    if (logicalId in pseudo) return pseudo[logicalId];
    const parameter = this.stack.template.Parameters?.[logicalId];
    if (parameter) {
      if (this.stack.parent) return this.stacks.parameterFromParent(this.stack, logicalId);
      if (parameter.Default === undefined) throw new Error(`${this.stack.stackName}: parameter ${logicalId} has no default`);
      return parameter.Default;
    }
    const resource = this.resource(logicalId);
    switch (resource.Type) {
      case 'AWS::KMS::Key': return keyId(this.stack.stackName, logicalId);
      case 'AWS::SecretsManager::Secret': return this.getAtt(logicalId, 'Arn');
      case 'AWS::SNS::Topic': return this.getAtt(logicalId, 'TopicArn');
      case 'AWS::SQS::Queue': return `https://sqs.${this.region}.amazonaws.com/${this.account}/${this.physicalName(logicalId)}`;
      case 'AWS::StepFunctions::StateMachine': return this.getAtt(logicalId, 'Arn');
      case 'AWS::ECS::TaskDefinition': return this.getAtt(logicalId, 'Arn');
      case 'AWS::EC2::SecurityGroup': return `sg-${hash(`${this.stack.stackName}/${logicalId}`, 17)}`;
      case 'AWS::EFS::FileSystem': return `fs-${hash(`${this.stack.stackName}/${logicalId}`, 17)}`;
      case 'AWS::EFS::AccessPoint': return `fsap-${hash(`${this.stack.stackName}/${logicalId}`, 17)}`;
      default: return this.physicalName(logicalId);
    }
  }

  getAtt(logicalId: string, attribute: string): unknown {
    const resource = this.resource(logicalId);
    const name = () => this.physicalName(logicalId);
    if (resource.Type === 'AWS::CloudFormation::Stack' && attribute.startsWith('Outputs.')) {
      return this.stacks.nestedOutput(this.stack, logicalId, attribute.slice('Outputs.'.length));
    }
    const key = `${resource.Type}.${attribute}`;
    switch (key) {
      case 'AWS::S3::Bucket.Arn': return `arn:${PARTITION}:s3:::${name()}`;
      case 'AWS::S3::Bucket.DomainName': return `${name()}.s3.amazonaws.com`;
      case 'AWS::S3::Bucket.RegionalDomainName': return `${name()}.s3.${this.region}.amazonaws.com`;
      case 'AWS::IAM::Role.Arn': return `arn:${PARTITION}:iam::${this.account}:role${this.rolePath(logicalId)}${name()}`;
      case 'AWS::IAM::Role.RoleId': return `AROA${hash(`${this.stack.stackName}/${logicalId}`, 17).toUpperCase()}`;
      case 'AWS::KMS::Key.Arn': return this.arn('kms', this.region, `key/${this.ref(logicalId)}`);
      case 'AWS::KMS::Key.KeyId': return this.ref(logicalId);
      case 'AWS::SecretsManager::Secret.Arn':
      case 'AWS::SecretsManager::Secret.Id':
        return this.arn('secretsmanager', this.region, `secret:${name()}-${secretSuffix(this.stack.stackName, logicalId)}`);
      case 'AWS::Lambda::Function.Arn': return this.arn('lambda', this.region, `function:${name()}`);
      case 'AWS::Logs::LogGroup.Arn': return this.arn('logs', this.region, `log-group:${name()}:*`);
      case 'AWS::SQS::Queue.Arn': return this.arn('sqs', this.region, name());
      case 'AWS::SQS::Queue.QueueName': return name();
      case 'AWS::SQS::Queue.QueueUrl': return this.ref(logicalId);
      case 'AWS::SNS::Topic.TopicArn': return this.arn('sns', this.region, name());
      case 'AWS::SNS::Topic.TopicName': return name();
      case 'AWS::Events::Rule.Arn': return this.arn('events', this.region, `rule/${name()}`);
      case 'AWS::StepFunctions::StateMachine.Arn': return this.arn('states', this.region, `stateMachine:${name()}`);
      case 'AWS::StepFunctions::StateMachine.Name': return name();
      case 'AWS::ECS::Cluster.Arn': return this.arn('ecs', this.region, `cluster/${name()}`);
      case 'AWS::ECS::TaskDefinition.Arn':
      case 'AWS::ECS::TaskDefinition.TaskDefinitionArn':
        return this.arn('ecs', this.region, `task-definition/${this.stack.stackName}${logicalId}:1`);
      case 'AWS::EC2::SecurityGroup.GroupId': return this.ref(logicalId);
      case 'AWS::Scheduler::Schedule.Arn': return this.arn('scheduler', this.region, `schedule/default/${name()}`);
      case 'AWS::CloudWatch::Alarm.Arn': return this.arn('cloudwatch', this.region, `alarm:${name()}`);
      case 'AWS::EFS::FileSystem.Arn': return this.arn('elasticfilesystem', this.region, `file-system/${this.ref(logicalId)}`);
      case 'AWS::EFS::FileSystem.FileSystemId': return this.ref(logicalId);
      case 'AWS::EFS::AccessPoint.Arn': return this.arn('elasticfilesystem', this.region, `access-point/${this.ref(logicalId)}`);
      case 'AWS::EFS::AccessPoint.AccessPointId': return this.ref(logicalId);
      default:
        // Custom resources' outputs and anything else no policy should depend on: a marked value, which the
        // policy extraction refuses (see assertResolved), so an unknown attribute can never pass as an ARN.
        return `<unresolved ${logicalId}.${attribute}>`;
    }
  }

  private condition(name: string): boolean {
    const expression = this.stack.template.Conditions?.[name];
    if (expression === undefined) throw new Error(`${this.stack.stackName}: no condition ${name}`);
    return this.evaluateCondition(expression);
  }

  private evaluateCondition(expression: unknown): boolean {
    if (typeof expression !== 'object' || expression === null) throw new Error(`condition ${JSON.stringify(expression)}`);
    const [fn, args] = Object.entries(expression)[0] as [string, unknown];
    const list = args as unknown[];
    switch (fn) {
      case 'Fn::Equals': return JSON.stringify(this.resolve(list[0])) === JSON.stringify(this.resolve(list[1]));
      case 'Fn::Not': return !this.evaluateCondition(list[0]);
      case 'Fn::And': return list.every((c) => this.evaluateCondition(c));
      case 'Fn::Or': return list.some((c) => this.evaluateCondition(c));
      case 'Condition': return this.condition(args as string);
      default: throw new Error(`${this.stack.stackName}: condition function ${fn} is not supported`);
    }
  }

  private sub(template: string, variables: Record<string, unknown>): string {
    return template.replace(/\$\{([^}]+)\}/g, (whole, expression: string) => {
      if (expression.startsWith('!')) return `\${${expression.slice(1)}}`;
      if (expression in variables) return this.resolveString(variables[expression], expression);
      const [id, ...attribute] = expression.split('.');
      const value = attribute.length ? this.getAtt(id, attribute.join('.')) : this.ref(id);
      if (typeof value !== 'string') throw new Error(`Fn::Sub ${whole}: not a string`);
      return value;
    });
  }

  resolveString(value: unknown, what: string): string {
    const resolved = this.resolve(value);
    if (typeof resolved !== 'string') throw new Error(`${this.stack.stackName} ${what}: resolved to ${JSON.stringify(resolved)}, not a string`);
    return resolved;
  }

  /** Resolves every intrinsic in `value`; `AWS::NoValue` drops the property or list item. */
  resolve(value: unknown): unknown {
    if (Array.isArray(value)) return value.map((v) => this.resolve(v)).filter((v) => v !== NO_VALUE);
    if (typeof value !== 'object' || value === null) return value;
    const entries = Object.entries(value);
    if (entries.length === 1) {
      const [fn, args] = entries[0];
      const list = args as unknown[];
      switch (fn) {
        case 'Ref': return this.ref(args as string);
        case 'Fn::GetAtt': {
          const [id, attribute] = Array.isArray(args) ? args as string[] : (args as string).split(/\.(.+)/);
          return this.getAtt(id, this.resolveString(attribute, 'Fn::GetAtt attribute'));
        }
        case 'Fn::Join': {
          const parts = this.resolve(list[1]);
          if (!Array.isArray(parts)) throw new Error(`Fn::Join of ${JSON.stringify(parts)}`);
          return parts.map((p) => { if (typeof p !== 'string') throw new Error(`Fn::Join part ${JSON.stringify(p)}`); return p; })
            .join(list[0] as string);
        }
        case 'Fn::Sub':
          return typeof args === 'string' ? this.sub(args, {}) : this.sub(list[0] as string, list[1] as Record<string, unknown>);
        case 'Fn::Select': {
          const items = this.resolve(list[1]);
          const index = Number(this.resolve(list[0]));
          if (!Array.isArray(items) || !(index in items)) throw new Error(`Fn::Select ${index} of ${JSON.stringify(items)}`);
          return items[index];
        }
        case 'Fn::Split': return this.resolveString(list[1], 'Fn::Split').split(list[0] as string);
        case 'Fn::ImportValue': return this.stacks.imports(this.resolveString(args, 'Fn::ImportValue'));
        case 'Fn::GetAZs': return ['a', 'b', 'c'].map((z) => `${this.region}${z}`);
        case 'Fn::If': return this.condition(list[0] as string) ? this.resolve(list[1]) : this.resolve(list[2]);
        case 'Fn::Base64': return Buffer.from(this.resolveString(args, 'Fn::Base64')).toString('base64');
        default:
          if (fn.startsWith('Fn::')) throw new Error(`${this.stack.stackName}: ${fn} is not supported`);
      }
    }
    const out: Record<string, unknown> = {};
    for (const [k, v] of entries) {
      const resolved = this.resolve(v);
      if (resolved !== NO_VALUE) out[k] = resolved;
    }
    return out;
  }
}

/** Refuses a policy that still holds a value the resolver could not make concrete. */
function assertResolved(policy: unknown, what: string): PolicyDocument {
  const text = JSON.stringify(policy);
  const unresolved = text.match(/<unresolved [^>]+>/);
  if (unresolved) throw new Error(`${what}: ${unresolved[0]} has no concrete value in the simulation; teach the resolver its ARN`);
  return policy as PolicyDocument;
}

/**
 * Resolves the stacks and extracts the principals and the resource policies. Stacks reference each other through
 * `Fn::ImportValue` (resolved from the others' exports), by names known at synth, or as a nested stack and its
 * parent (parameters one way, outputs the other): load a nested stack with its parent.
 */
export function loadDeployment(stacks: StackTemplate[]): Deployment {
  const resolvers = new Map<string, StackResolver>();
  const resolverOf = (id: string, why: string): StackResolver => {
    const resolver = resolvers.get(id);
    if (!resolver) throw new Error(`${why}: the stack ${id} is not loaded`);
    return resolver;
  };
  const links: Stacks = {
    imports: (name) => {
      for (const resolver of resolvers.values()) {
        for (const output of Object.values(resolver.stack.template.Outputs ?? {})) {
          if (output.Export && resolver.resolve(output.Export.Name) === name) return resolver.resolve(output.Value);
        }
      }
      throw new Error(`Fn::ImportValue ${name}: no loaded stack exports it`);
    },
    nestedOutput: (parent, logicalId, output) => {
      const nested = [...resolvers.values()].find((r) => r.stack.parent?.id === parent.id && r.stack.parent.logicalId === logicalId);
      if (!nested) throw new Error(`${parent.stackName}: the nested stack ${logicalId} is not loaded`);
      const value = nested.stack.template.Outputs?.[output];
      if (!value) throw new Error(`${nested.stack.stackName}: no output ${output}`);
      return nested.resolve(value.Value);
    },
    parameterFromParent: (nested, parameter) => {
      const parent = resolverOf(nested.parent!.id, `${nested.stackName} parameter ${parameter}`);
      const resource = parent.stack.template.Resources[nested.parent!.logicalId];
      const given = (resource?.Properties?.Parameters as Record<string, unknown> | undefined)?.[parameter];
      if (given === undefined) {
        const fallback = nested.template.Parameters?.[parameter]?.Default;
        if (fallback === undefined) throw new Error(`${nested.stackName}: its parent passes no parameter ${parameter}`);
        return fallback;
      }
      return parent.resolve(given);
    },
  };
  for (const stack of stacks) {
    if (!/^\d{12}$/.test(stack.account) || !/^[a-z]{2}(-[a-z]+)+-\d$/.test(stack.region)) {
      throw new Error(`${stack.stackName}: give the stack a concrete account and region (it has ${stack.account}, ${stack.region}): ARNs are compared as strings`);
    }
    if (resolvers.has(stack.id)) throw new Error(`two stacks with the id ${stack.id}`);
    resolvers.set(stack.id, new StackResolver(stack, links));
  }

  const roles: RoleModel[] = [];
  const keys: KeyModel[] = [];
  const buckets: BucketModel[] = [];
  const secrets: SecretModel[] = [];

  for (const [stack, r] of resolvers) {
    const resources = Object.entries(r.stack.template.Resources);
    const ofType = (type: string) => resources.filter(([, res]) => res.Type === type);
    const props = (res: CfnResource) => res.Properties ?? {};

    const aliasesOf = (keyId: string) => ofType('AWS::KMS::Alias')
      .filter(([, alias]) => String(r.resolve(props(alias).TargetKeyId)).endsWith(keyId))
      .map(([aliasId, alias]) => r.resolveString(props(alias).AliasName, `${aliasId}.AliasName`));
    for (const [logicalId, res] of ofType('AWS::KMS::Key')) {
      keys.push({
        stack, logicalId, region: r.stack.region, account: r.stack.account,
        arn: r.getAtt(logicalId, 'Arn') as string,
        policy: assertResolved(r.resolve(props(res).KeyPolicy), `${stack}/${logicalId} key policy`),
        aliases: aliasesOf(r.ref(logicalId) as string),
      });
    }
    const keyByReference = (reference: unknown): KeyModel | undefined => {
      if (reference === undefined) return undefined;
      const value = r.resolveString(reference, 'key reference');
      return keys.find((k) => k.arn === value || k.arn.endsWith(`/${value}`));
    };

    const attached = new Map<string, SimulationIdentityPolicy[]>();
    const attach = (roleNames: unknown, name: string, document: unknown, what: string) => {
      for (const roleName of (r.resolve(roleNames) as string[] | undefined) ?? []) {
        const list = attached.get(roleName) ?? [];
        list.push({ name, policy: assertResolved(r.resolve(document), what) });
        attached.set(roleName, list);
      }
    };
    for (const [logicalId, res] of [...ofType('AWS::IAM::Policy'), ...ofType('AWS::IAM::ManagedPolicy')]) {
      attach(props(res).Roles, logicalId, props(res).PolicyDocument, `${stack}/${logicalId}`);
    }
    for (const [logicalId, res] of ofType('AWS::IAM::RolePolicy')) {
      attach([props(res).RoleName], logicalId, props(res).PolicyDocument, `${stack}/${logicalId}`);
    }
    for (const [logicalId, res] of ofType('AWS::IAM::Role')) {
      const name = r.physicalName(logicalId);
      const managed = r.resolve(props(res).ManagedPolicyArns) as string[] | undefined;
      const foreign = (managed ?? []).filter((arn) => !arn.includes(':policy/service-role/AWSLambdaBasicExecutionRole'));
      // An AWS managed policy's content is not in the template: refuse rather than simulate without it. The one
      // allowed grants only CloudWatch Logs, which no column asks about.
      if (foreign.length) throw new Error(`${stack}/${logicalId}: managed policies ${foreign.join(', ')} are not in the template`);
      const inline = ((props(res).Policies as { PolicyName: unknown; PolicyDocument: unknown }[] | undefined) ?? [])
        .map((p) => ({
          name: `${logicalId}/${r.resolveString(p.PolicyName, 'PolicyName')}`,
          policy: assertResolved(r.resolve(p.PolicyDocument), `${stack}/${logicalId} inline policy`),
        }));
      roles.push({
        stack, logicalId, name, path: r.rolePath(logicalId), account: r.stack.account,
        arn: r.getAtt(logicalId, 'Arn') as string,
        identityPolicies: [...inline, ...(attached.get(name) ?? [])],
      });
    }

    const bucketPolicies = new Map<string, PolicyDocument>();
    for (const [logicalId, res] of ofType('AWS::S3::BucketPolicy')) {
      bucketPolicies.set(r.resolveString(props(res).Bucket, `${logicalId}.Bucket`),
        assertResolved(r.resolve(props(res).PolicyDocument), `${stack}/${logicalId}`));
    }
    for (const [logicalId, res] of ofType('AWS::S3::Bucket')) {
      const name = r.physicalName(logicalId);
      const encryption = props(res).BucketEncryption as
        { ServerSideEncryptionConfiguration: { ServerSideEncryptionByDefault: { KMSMasterKeyID?: unknown } }[] } | undefined;
      buckets.push({
        stack, logicalId, name, region: r.stack.region, account: r.stack.account,
        arn: r.getAtt(logicalId, 'Arn') as string,
        key: keyByReference(encryption?.ServerSideEncryptionConfiguration[0]?.ServerSideEncryptionByDefault.KMSMasterKeyID),
        policy: bucketPolicies.get(name),
      });
    }

    const secretPolicies = new Map<string, PolicyDocument>();
    for (const [logicalId, res] of ofType('AWS::SecretsManager::ResourcePolicy')) {
      secretPolicies.set(r.resolveString(props(res).SecretId, `${logicalId}.SecretId`),
        assertResolved(r.resolve(props(res).ResourcePolicy), `${stack}/${logicalId}`));
    }
    for (const [logicalId, res] of ofType('AWS::SecretsManager::Secret')) {
      const arn = r.getAtt(logicalId, 'Arn') as string;
      secrets.push({
        stack, logicalId, arn, region: r.stack.region, account: r.stack.account,
        key: keyByReference(props(res).KmsKeyId), policy: secretPolicies.get(arn),
      });
    }
  }

  const find = <T extends { stack: string; logicalId: string }>(list: T[], what: string, stack: string, logicalId: string): T => {
    const found = list.find((x) => x.stack === stack && x.logicalId === logicalId);
    if (!found) throw new Error(`no ${what} ${stack}/${logicalId} in the synthesized templates`);
    return found;
  };
  return {
    roles, buckets, keys, secrets,
    role: (stack, logicalId) => find(roles, 'role', stack, logicalId),
    bucket: (stack, logicalId) => find(buckets, 'bucket', stack, logicalId),
    secret: (stack, logicalId) => find(secrets, 'secret', stack, logicalId),
    rolesUnderPath: (path) => roles.filter((role) => role.path.startsWith(path)),
  };
}

/** Who makes a call: a role, in one of its sessions. */
export interface Principal {
  readonly label: string;
  /** The role's ARN, with its path: `aws:PrincipalArn` in every session. */
  readonly roleArn: string;
  readonly account: string;
  readonly identityPolicies: SimulationIdentityPolicy[];
  /** Why this principal is not the template's own, when it is not. */
  readonly standIn?: string;
}

export function principalOf(role: RoleModel, label: string): Principal {
  return { label, roleArn: role.arn, account: role.account, identityPolicies: role.identityPolicies };
}

/** A role that is not in the templates, at `roleArn`, with the identity policies given. */
export function standInPrincipal(label: string, roleArn: string, statements: Record<string, unknown>[], why: string): Principal {
  const account = roleArn.split(':')[4];
  return { label, roleArn, account, identityPolicies: [{ name: `${label} (stand-in)`, policy: { Version: '2012-10-17', Statement: statements } }], standIn: why };
}

/** The session ARN the caller signs as: `arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION` (no path in it). */
function sessionArn(principal: Principal): string {
  const name = principal.roleArn.split('/').pop()!;
  return `arn:${PARTITION}:sts::${principal.account}:assumed-role/${name}/matrix`;
}

export type Service = 's3' | 'kms' | 'secretsmanager';

/** One authorisation IAM makes for an API call: whose policy decides, on what, with which condition keys. */
export interface Authorisation {
  readonly service: Service;
  readonly action: string;
  readonly resource: string;
  readonly resourceAccount: string;
  /** The service-specific condition keys of the request; the global ones are added from the principal. */
  readonly context: Record<string, string | string[]>;
  /** The resource's own policy: the bucket policy, the key policy or the secret's resource policy. */
  readonly resourcePolicy?: PolicyDocument;
  /** True when a service makes the call on the caller's behalf (KMS through S3 or Secrets Manager). */
  readonly viaService?: boolean;
}

/** An object in a bucket, and what S3 knows about it before the call. */
export interface ObjectTarget {
  readonly bucket: BucketModel;
  readonly key: string;
  /** The tags the object carries already (S3 sends them as s3:ExistingObjectTag/KEY). */
  readonly existingTags?: Record<string, string>;
}

/** The API calls the matrix makes, with the request parameters that become condition keys. */
export type ApiCall =
  | { readonly api: 'PutObject'; readonly target: ObjectTarget; readonly ifNoneMatch?: boolean; readonly ifMatch?: string; readonly tags?: Record<string, string> }
  | { readonly api: 'UploadPart'; readonly target: ObjectTarget }
  | { readonly api: 'CompleteMultipartUpload'; readonly target: ObjectTarget; readonly ifNoneMatch?: boolean; readonly ifMatch?: string }
  | { readonly api: 'PutObjectLegalHold'; readonly target: ObjectTarget; readonly status: 'ON' | 'OFF' }
  | { readonly api: 'PutObjectTagging'; readonly target: ObjectTarget; readonly tags: Record<string, string> }
  | { readonly api: 'GetObject'; readonly target: ObjectTarget }
  | { readonly api: 'ListObjectsV2'; readonly bucket: BucketModel; readonly prefix: string }
  | { readonly api: 'DeleteObject'; readonly target: ObjectTarget; readonly versionId: string; readonly bypassGovernanceRetention?: boolean }
  | { readonly api: 'GetSecretValue'; readonly secret: SecretModel }
  | { readonly api: 'PutSecretValue'; readonly secret: SecretModel }
  | { readonly api: 'ScheduleKeyDeletion'; readonly key: KeyModel; readonly pendingWindowInDays?: number }
  | { readonly api: 'ReplicateObject'; readonly target: ObjectTarget }
  | { readonly api: 'PutObjectRetention'; readonly target: ObjectTarget; readonly mode: 'GOVERNANCE' | 'COMPLIANCE'; readonly retainUntil: Date;
    readonly bypassGovernanceRetention?: boolean }
  | { readonly api: 'PutBucketLifecycleConfiguration'; readonly bucket: BucketModel }
  | { readonly api: 'PutBucketPolicy'; readonly bucket: BucketModel };

/** An ETag, as a writer that read an object sends it back in If-Match. */
export const AN_ETAG = '"0f343b0931126a20f133d67c2b018a3b"';

/** What S3 sends with every object and bucket request (SigV4 in the Authorization header, over TLS 1.3). */
function s3Request(bucket: BucketModel): Record<string, string> {
  return { 's3:authType': 'REST-HEADER', 's3:signatureversion': 'AWS4-HMAC-SHA256', 's3:TlsVersion': '1.3', 's3:ResourceAccount': bucket.account };
}

function objectArn(target: ObjectTarget): string {
  return `${target.bucket.arn}/${target.key}`;
}

function existingTags(target: ObjectTarget): Record<string, string> {
  return Object.fromEntries(Object.entries(target.existingTags ?? {}).map(([k, v]) => [`s3:ExistingObjectTag/${k}`, v]));
}

function requestTags(tags: Record<string, string> | undefined): Record<string, string | string[]> {
  if (!tags || !Object.keys(tags).length) return {};
  return {
    ...Object.fromEntries(Object.entries(tags).map(([k, v]) => [`s3:RequestObjectTag/${k}`, v])),
    's3:RequestObjectTagKeys': Object.keys(tags),
  };
}

/** The KMS call S3 or Secrets Manager makes with the caller's permissions (forward access), by `kms:ViaService`. */
function kmsVia(key: KeyModel | undefined, what: string, action: string, service: 's3' | 'secretsmanager', region: string): Authorisation {
  if (!key) throw new Error(`${what} is not encrypted with a KMS key of the loaded stacks: its KMS authorisation cannot be simulated`);
  return {
    service: 'kms', action, resource: key.arn, resourceAccount: key.account, resourcePolicy: key.policy, viaService: true,
    // kms:EncryptionContext:<key> is left out: the simulator does not accept the key (see UNSENDABLE_CONTEXT).
    context: { 'kms:ViaService': `${service}.${region}.amazonaws.com`, ...(key.aliases.length ? { 'kms:ResourceAliases': key.aliases } : {}) },
  };
}

function s3Object(target: ObjectTarget, action: string, context: Record<string, string | string[]>): Authorisation {
  return {
    service: 's3', action, resource: objectArn(target), resourceAccount: target.bucket.account,
    resourcePolicy: target.bucket.policy, context: { ...s3Request(target.bucket), ...context },
  };
}

/**
 * THE TABLE: each API call → the authorisations IAM makes for it, in order. Sources (Service Authorization
 * Reference, "API operations defined by Amazon S3" and the actions tables of S3, KMS and Secrets Manager; S3 user
 * guide, "Enforce conditional writes" and "Using SSE-KMS"):
 *
 * | API call | IAM action(s) | resource | condition keys the service sends |
 * |---|---|---|---|
 * | PutObject | s3:PutObject; s3:PutObjectTagging too when it carries tags (x-amz-tagging) | object | s3:ObjectCreationOperation=PutObject, s3:if-none-match / s3:if-match when the header is sent, s3:RequestObjectTag/KEY and s3:RequestObjectTagKeys for tags |
 * |  | kms:GenerateDataKey (SSE-KMS) | the bucket's key | kms:ViaService=s3.REGION.amazonaws.com, kms:CallerAccount |
 * | UploadPart | s3:PutObject | object | s3:ObjectCreationOperation=UploadPart (UploadPart takes no conditional header) |
 * |  | kms:Decrypt (the upload's data key), kms:GenerateDataKey | the bucket's key | as above |
 * | CompleteMultipartUpload | s3:PutObject | object | s3:ObjectCreationOperation=CompleteMultipartUpload, s3:if-none-match / s3:if-match when sent |
 * |  | kms:Decrypt, kms:GenerateDataKey (S3 reads the encrypted parts back to assemble the object) | the bucket's key | as above |
 * | PutObjectLegalHold | s3:PutObjectLegalHold | object | s3:object-lock-legal-hold=ON/OFF |
 * | PutObjectTagging | s3:PutObjectTagging | object | s3:RequestObjectTag/KEY, s3:RequestObjectTagKeys, s3:ExistingObjectTag/KEY |
 * | GetObject (HeadObject alike) | s3:GetObject | object | s3:ExistingObjectTag/KEY |
 * |  | kms:Decrypt | the bucket's key | kms:ViaService=s3.REGION.amazonaws.com, kms:CallerAccount |
 * | ListObjectsV2 | s3:ListBucket | bucket | s3:prefix |
 * | DeleteObject with VersionId | s3:DeleteObjectVersion | object | s3:versionid |
 * | … with x-amz-bypass-governance-retention | s3:BypassGovernanceRetention as well | object | – |
 * | GetSecretValue | secretsmanager:GetSecretValue | secret | secretsmanager:SecretId |
 * |  | kms:Decrypt | the secret's key | kms:ViaService=secretsmanager.REGION.amazonaws.com, kms:CallerAccount |
 * | PutSecretValue | secretsmanager:PutSecretValue | secret | secretsmanager:SecretId |
 * |  | kms:GenerateDataKey | the secret's key | as above |
 * | ScheduleKeyDeletion | kms:ScheduleKeyDeletion | key | kms:ScheduleKeyDeletionPendingWindowInDays, kms:CallerAccount |
 * | (replication of one version, by the source's replication role) | s3:ReplicateObject | destination object | – |
 * |  | kms:GenerateDataKey, kms:Encrypt (the replica is encrypted with the destination's key) | the destination's key | kms:ViaService=s3.DESTINATION-REGION.amazonaws.com, kms:CallerAccount |
 *
 * Every KMS authorisation also carries kms:ResourceAliases, the aliases of the key, when it has any.
 * | PutObjectRetention | s3:PutObjectRetention | object | s3:object-lock-mode, s3:object-lock-retain-until-date, s3:object-lock-remaining-retention-days |
 * | … with x-amz-bypass-governance-retention | s3:BypassGovernanceRetention as well | object | – |
 * | PutBucketLifecycleConfiguration | s3:PutLifecycleConfiguration | bucket | – |
 * | PutBucketPolicy | s3:PutBucketPolicy | bucket | – |
 *
 * Every request also carries the global keys `globalContext` adds: aws:PrincipalArn (the role's ARN with its
 * path, in every session), aws:PrincipalAccount, aws:PrincipalType, aws:userid, aws:SecureTransport=true,
 * aws:RequestedRegion, aws:ViaAWSService (true for the KMS calls a service makes for the caller), aws:CurrentTime
 * and aws:EpochTime.
 */
export function authorisationsFor(call: ApiCall): Authorisation[] {
  switch (call.api) {
    case 'PutObject': {
      const { target } = call;
      const conditional = {
        ...(call.ifNoneMatch ? { 's3:if-none-match': '*' } : {}),
        ...(call.ifMatch ? { 's3:if-match': call.ifMatch } : {}),
      };
      const tags = requestTags(call.tags);
      return [
        s3Object(target, 's3:PutObject', { 's3:ObjectCreationOperation': 'PutObject', ...conditional, ...tags }),
        ...(call.tags ? [s3Object(target, 's3:PutObjectTagging', { ...tags, ...existingTags(target) })] : []),
        kmsVia(target.bucket.key, target.bucket.name, 'kms:GenerateDataKey', 's3', target.bucket.region),
      ];
    }
    case 'UploadPart':
    case 'CompleteMultipartUpload': {
      const { target } = call;
      const conditional = call.api === 'CompleteMultipartUpload' ? {
        ...(call.ifNoneMatch ? { 's3:if-none-match': '*' } : {}),
        ...(call.ifMatch ? { 's3:if-match': call.ifMatch } : {}),
      } : {};
      return [
        s3Object(target, 's3:PutObject', { 's3:ObjectCreationOperation': call.api, ...conditional }),
        kmsVia(target.bucket.key, target.bucket.name, 'kms:Decrypt', 's3', target.bucket.region),
        kmsVia(target.bucket.key, target.bucket.name, 'kms:GenerateDataKey', 's3', target.bucket.region),
      ];
    }
    case 'PutObjectLegalHold':
      return [s3Object(call.target, 's3:PutObjectLegalHold', { 's3:object-lock-legal-hold': call.status })];
    case 'PutObjectTagging':
      return [s3Object(call.target, 's3:PutObjectTagging', { ...requestTags(call.tags), ...existingTags(call.target) })];
    case 'GetObject':
      return [
        s3Object(call.target, 's3:GetObject', existingTags(call.target)),
        kmsVia(call.target.bucket.key, call.target.bucket.name, 'kms:Decrypt', 's3', call.target.bucket.region),
      ];
    case 'ListObjectsV2':
      return [{
        service: 's3', action: 's3:ListBucket', resource: call.bucket.arn, resourceAccount: call.bucket.account,
        resourcePolicy: call.bucket.policy, context: { ...s3Request(call.bucket), 's3:prefix': call.prefix },
      }];
    case 'DeleteObject':
      return [
        s3Object(call.target, 's3:DeleteObjectVersion', { 's3:versionid': call.versionId }),
        ...(call.bypassGovernanceRetention ? [s3Object(call.target, 's3:BypassGovernanceRetention', {})] : []),
      ];
    case 'GetSecretValue':
    case 'PutSecretValue': {
      const { secret } = call;
      return [
        {
          service: 'secretsmanager', action: `secretsmanager:${call.api}`, resource: secret.arn, resourceAccount: secret.account,
          resourcePolicy: secret.policy, context: { 'secretsmanager:SecretId': secret.arn },
        },
        kmsVia(secret.key, secret.arn, call.api === 'GetSecretValue' ? 'kms:Decrypt' : 'kms:GenerateDataKey', 'secretsmanager', secret.region),
      ];
    }
    case 'ReplicateObject': {
      const { target } = call;
      return [
        s3Object(target, 's3:ReplicateObject', {}),
        kmsVia(target.bucket.key, target.bucket.name, 'kms:GenerateDataKey', 's3', target.bucket.region),
        kmsVia(target.bucket.key, target.bucket.name, 'kms:Encrypt', 's3', target.bucket.region),
      ];
    }
    case 'PutObjectRetention': {
      const days = Math.max(0, Math.ceil((call.retainUntil.getTime() - NOW.getTime()) / 86_400_000));
      return [
        s3Object(call.target, 's3:PutObjectRetention', {
          's3:object-lock-mode': call.mode,
          's3:object-lock-retain-until-date': call.retainUntil.toISOString(),
          's3:object-lock-remaining-retention-days': String(days),
        }),
        ...(call.bypassGovernanceRetention ? [s3Object(call.target, 's3:BypassGovernanceRetention', {})] : []),
      ];
    }
    case 'PutBucketLifecycleConfiguration':
    case 'PutBucketPolicy':
      return [{
        service: 's3', action: call.api === 'PutBucketPolicy' ? 's3:PutBucketPolicy' : 's3:PutLifecycleConfiguration',
        resource: call.bucket.arn, resourceAccount: call.bucket.account, resourcePolicy: call.bucket.policy, context: s3Request(call.bucket),
      }];
    case 'ScheduleKeyDeletion':
      return [{
        service: 'kms', action: 'kms:ScheduleKeyDeletion', resource: call.key.arn, resourceAccount: call.key.account,
        resourcePolicy: call.key.policy,
        context: { 'kms:ScheduleKeyDeletionPendingWindowInDays': String(call.pendingWindowInDays ?? 30) },
      }];
  }
}

/** A fixed instant, so that the simulation is the same on every run. */
const NOW = new Date('2026-06-01T12:00:00Z');

/** The global condition keys of a request by `principal`'s session. */
function globalContext(principal: Principal, authorisation: Authorisation): Record<string, string> {
  const region = authorisation.resource.split(':')[3] || 'us-east-1';
  return {
    // The caller's account, which is not the key's when the key's policy admits another account.
    ...(authorisation.service === 'kms' ? { 'kms:CallerAccount': principal.account } : {}),
    'aws:PrincipalArn': principal.roleArn,
    'aws:PrincipalAccount': principal.account,
    'aws:PrincipalType': 'AssumedRole',
    'aws:userid': `AROA${hash(principal.roleArn, 17).toUpperCase()}:matrix`,
    'aws:SecureTransport': 'true',
    'aws:RequestedRegion': region,
    'aws:ViaAWSService': authorisation.viaService ? 'true' : 'false',
    'aws:CurrentTime': NOW.toISOString(),
    'aws:EpochTime': String(Math.floor(NOW.getTime() / 1000)),
  };
}

/**
 * Condition keys the services send but the simulator cannot take: 0.1.173 drops `kms:EncryptionContext:KEY`
 * (it matches variable keys only after a `/`). A KMS verdict that a statement on such a key could change is
 * refused by `decide`, never guessed.
 */
export const UNSENDABLE_CONTEXT = [/kms:EncryptionContext:/i];

export interface AuthorisationResult {
  readonly authorisation: Authorisation;
  readonly result: EvaluationResult;
  readonly denials: RequestDenial[];
}

/** Runs one authorisation; throws when the simulator refuses the input or ignored any context key. */
export async function authorise(principal: Principal, authorisation: Authorisation): Promise<AuthorisationResult> {
  const contextVariables = { ...globalContext(principal, authorisation), ...authorisation.context };
  const response = await runSimulation({
    request: {
      principal: sessionArn(principal),
      action: authorisation.action,
      resource: { resource: authorisation.resource, accountId: authorisation.resourceAccount },
      contextVariables,
    },
    identityPolicies: principal.identityPolicies,
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: authorisation.resourcePolicy,
  }, { simulationMode: 'Strict' });
  const what = `${principal.label}: ${authorisation.action} on ${authorisation.resource}`;
  if (response.resultType === 'error') throw new Error(`${what}: the simulator refused the input: ${JSON.stringify(response.errors)}`);
  if (response.resultType !== 'single') throw new Error(`${what}: a wildcard resource was simulated; every matrix call names one resource`);
  const ignored = response.result.ignoredContextKeys ?? [];
  if (ignored.length) {
    throw new Error(`${what}: the simulator ignored the context keys ${ignored.join(', ')}; a condition on them would have been ` +
      'evaluated as if the key were absent. Fix the key in the call table or the simulator input.');
  }
  return { authorisation, result: response.overallResult, denials: getDenialReasons(response.result.analysis) };
}

/** The verdict of one API call: allowed only when every authorisation it needs is. */
export interface CallVerdict {
  readonly allowed: boolean;
  /** The authorisations, each with its result, in the order the table lists them. */
  readonly steps: AuthorisationResult[];
  /** The first authorisation that was not allowed. */
  readonly refusedBy?: AuthorisationResult;
}

/** IAM's wildcard match (`*`, `?`), case-insensitive as actions are. */
function wildcardMatches(pattern: string, value: string, caseInsensitive: boolean): boolean {
  const regex = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${regex}$`, caseInsensitive ? 'i' : '').test(value);
}

/** Does the statement apply to this action and resource (NotAction and NotResource count as applying)? */
function concerns(statement: Record<string, unknown>, action: string, resource: string): boolean {
  const list = (value: unknown) => (value === undefined ? undefined : ([] as unknown[]).concat(value) as string[]);
  const actions = list(statement.Action);
  const resources = list(statement.Resource);
  const actionMatches = actions ? actions.some((a) => wildcardMatches(a, action, true)) : true;
  const resourceMatches = resources ? resources.some((r) => wildcardMatches(r, resource, false)) : true;
  return actionMatches && resourceMatches;
}

/** Whether a statement that applies to the authorisation conditions on a key the simulator cannot take. */
function dependsOnUnsendable(policies: (PolicyDocument | undefined)[], authorisation: Authorisation): boolean {
  return policies.some((policy) => (policy?.Statement ?? []).some((statement) => concerns(statement, authorisation.action, authorisation.resource) &&
    UNSENDABLE_CONTEXT.some((pattern) => pattern.test(JSON.stringify(statement.Condition ?? {})))));
}

/** Simulates every authorisation of `call` for `principal`. */
export async function decide(principal: Principal, call: ApiCall): Promise<CallVerdict> {
  const steps: AuthorisationResult[] = [];
  for (const authorisation of authorisationsFor(call)) steps.push(await authorise(principal, authorisation));
  const refused = steps.filter((s) => s.result !== 'Allowed');
  // A step whose policies condition on a key the simulator cannot take decides nothing when it alone refuses the
  // call (its Allow may need the key) or when it alone lets it through (a Deny may need it).
  for (const step of steps.filter((s) => s.authorisation.service === 'kms')) {
    const others = steps.filter((s) => s !== step);
    const decisive = others.every((s) => s.result === 'Allowed');
    const policies = [...principal.identityPolicies.map((p) => p.policy as PolicyDocument), step.authorisation.resourcePolicy];
    if (decisive && dependsOnUnsendable(policies, step.authorisation)) {
      throw new Error(`${principal.label}: ${step.authorisation.action} on ${step.authorisation.resource} decides this call, and its policies ` +
        'condition on a context key the simulator cannot take (kms:EncryptionContext:…): the verdict cannot be simulated');
    }
  }
  return { allowed: refused.length === 0, steps, refusedBy: refused[0] };
}

const SERVICE_NAMES: Record<Service, string> = { s3: 'S3', kms: 'KMS', secretsmanager: 'Secrets Manager' };

/**
 * A verdict as the README prints it: ✅; ⛔ and the Sids of the resource-policy statements that deny (plus "own
 * policy" when the principal's identity policy denies too); or · when nothing grants it.
 */
export function describeVerdict(verdict: CallVerdict): string {
  const refused = verdict.refusedBy;
  if (!refused) return '✅';
  if (refused.result === 'ExplicitlyDenied') {
    const names: string[] = [];
    for (const denial of refused.denials) {
      if (denial.denialType !== 'Explicit') continue;
      const name = denial.policyType === 'resource' ? denial.statementId ?? `statement ${denial.statementIndex}`
        : denial.policyType === 'identity' ? 'own policy' : denial.policyType;
      if (!names.includes(name)) names.push(name);
    }
    return `⛔ ${names.join(' + ')}`;
  }
  return refused.authorisation.service === 's3' ? '· no grant' : `· no ${SERVICE_NAMES[refused.authorisation.service]} grant`;
}
