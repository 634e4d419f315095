/**
 * The example app's stacks as the policy simulation reads them: synthesized as the CLI would for `-c env=NAME`,
 * every stack with its nested stacks, and the helpers that find a construct's resource in the loaded deployment.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App, CfnElement, NestedStack, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { IConstruct } from 'constructs';
import { resolveEnvironment } from '../../bin/environments';
import { addExampleStacks, ExampleStacks } from '../../bin/example-app';
import { Deployment, Principal, RoleModel, StackTemplate, standInPrincipal } from './iam-simulation';

const ROOT = join(__dirname, '..', '..');

/** The example app's stacks for one environment of cdk.json, with their templates and their nested stacks'. */
export function synthesizeExample(environment: string): { stacks: ExampleStacks; templates: StackTemplate[] } {
  const cdkJson = JSON.parse(readFileSync(join(ROOT, 'cdk.json'), 'utf8'));
  const app = new App({ context: { ...cdkJson.context, env: environment } });
  const stacks = addExampleStacks(app, resolveEnvironment(app.node.tryGetContext('environments'), environment));
  const assembly = app.synth();
  const templates: StackTemplate[] = [stacks.primary, stacks.replica].map((stack) => ({
    id: stack.node.path, stackName: stack.stackName, account: stack.account, region: stack.region,
    template: assembly.getStackByName(stack.stackName).template,
  }));
  for (const nested of app.node.findAll().filter((c): c is NestedStack => NestedStack.isNestedStack(c))) {
    const parent = nested.nestedStackParent!;
    const logicalId = parent.resolve(nested.nestedStackResource!.logicalId) as string;
    templates.push({
      id: nested.node.path, stackName: `${parent.stackName}-${logicalId}`, account: parent.account, region: parent.region,
      parent: { id: parent.node.path, logicalId },
      template: JSON.parse(readFileSync(join(assembly.directory, nested.templateFile), 'utf8')),
    });
  }
  return { stacks, templates };
}

/** The template resource of a construct: its stack's id (construct path) and its logical id. */
export function logicalIdOf(construct: IConstruct): { stack: string; logicalId: string } {
  const element = construct.node.defaultChild as CfnElement | undefined;
  if (!element) throw new Error(`${construct.node.path} has no CloudFormation resource of its own`);
  const stack = Stack.of(construct);
  return { stack: stack.node.path, logicalId: stack.resolve(element.logicalId) as string };
}

/** The loaded role of a construct. */
export function roleOf(deployment: Deployment, role: iam.IRole | undefined, what: string): RoleModel {
  if (!role) throw new Error(`${what} has no role`);
  const { stack, logicalId } = logicalIdOf(role);
  return deployment.role(stack, logicalId);
}

/** A role with `*` on `*` at `roleArn`: break-glass, or an administrator who is not break-glass. */
export function allPowerful(label: string, roleArn: string, why: string): Principal {
  return standInPrincipal(label, roleArn, [{ Effect: 'Allow', Action: '*', Resource: '*' }], why);
}
