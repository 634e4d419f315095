import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { BackupStore, BackupStoreProps } from '../../lib/store/backup-store';
import { ReplicaStore, ReplicaStoreProps } from '../../lib/store/replica-store';

export const ACCOUNT = '123456789012';
export const PRIMARY_REGION = 'eu-west-1';
export const REPLICA_REGION = 'eu-central-1';

export interface Fixture {
  readonly app: App;
  readonly primary: Stack;
  readonly replicaStack: Stack;
  readonly store: BackupStore;
  readonly replica: ReplicaStore;
}

/** A primary store in one region replicating to a replica store in another, as the example app builds them. */
export function primaryWithReplica(
  props: Omit<BackupStoreProps, 'replica'> | ((primary: Stack) => Omit<BackupStoreProps, 'replica'>) = {},
  replicaProps: ReplicaStoreProps | ((replicaStack: Stack) => ReplicaStoreProps) = {},
): Fixture {
  const app = new App();
  const replicaStack = new Stack(app, 'Replica', { env: { account: ACCOUNT, region: REPLICA_REGION } });
  const replica = new ReplicaStore(replicaStack, 'ReplicaStore', typeof replicaProps === 'function' ? replicaProps(replicaStack) : replicaProps);
  const primary = new Stack(app, 'Primary', { env: { account: ACCOUNT, region: PRIMARY_REGION } });
  const store = new BackupStore(primary, 'Store', { ...(typeof props === 'function' ? props(primary) : props), replica });
  return { app, primary, replicaStack, store, replica };
}

/** Props naming a break-glass role by ARN, for a store in `stack`. */
export function breakGlassProps(arn: string): (stack: Stack) => { breakGlassRole: iam.IRole } {
  return (stack) => ({ breakGlassRole: iam.Role.fromRoleArn(stack, 'BreakGlass', arn) });
}

/** A store alone in a stack with an explicit environment. */
export function standaloneStore(props: BackupStoreProps = {}): { stack: Stack; store: BackupStore } {
  const stack = new Stack(new App(), 'Standalone', { env: { account: ACCOUNT, region: PRIMARY_REGION } });
  return { stack, store: new BackupStore(stack, 'Store', props) };
}

export type TemplateResource = ReturnType<Template['findResources']>[string];

/** The one resource of a type whose logical id starts with a prefix. */
export function onlyResource(template: Template, type: string, idPrefix = ''): TemplateResource {
  const matches = Object.entries(template.findResources(type)).filter(([id]) => id.startsWith(idPrefix));
  if (matches.length !== 1) throw new Error(`expected one ${type} starting with '${idPrefix}', found ${matches.length}`);
  return matches[0][1];
}

/** Every IAM policy statement in a template, flattened. */
export function policyStatements(template: Template): Array<Record<string, unknown>> {
  return Object.values(template.findResources('AWS::IAM::Policy'))
    .flatMap((policy) => (policy.Properties.PolicyDocument.Statement as Array<Record<string, unknown>>));
}

/** The statements that allow a given action. */
export function statementsAllowing(template: Template, action: string): Array<Record<string, unknown>> {
  return policyStatements(template).filter((s) => s.Effect === 'Allow' && ([] as unknown[]).concat(s.Action).includes(action));
}

/** Resolves a statement's Resource to readable strings (GetAtt → <Logical.Arn>). */
export function resourcesOf(statement: Record<string, unknown>): string[] {
  return ([] as unknown[]).concat(statement.Resource).map(flatten);
}

function flatten(value: unknown): string {
  if (typeof value === 'string') return value;
  const fn = value as Record<string, unknown>;
  if (fn['Fn::Join']) {
    const [delimiter, parts] = fn['Fn::Join'] as [string, unknown[]];
    return parts.map(flatten).join(delimiter);
  }
  if (fn['Fn::GetAtt']) return `<${(fn['Fn::GetAtt'] as string[]).join('.')}>`;
  if (fn.Ref) return `<${fn.Ref}>`;
  return JSON.stringify(value);
}
