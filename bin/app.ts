#!/usr/bin/env node
// The example app: `npx cdk synth -c env=NAME`, with the environments listed in cdk.json.
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { EnvironmentError, resolveEnvironment } from './environments';
import { addExampleStacks } from './example-app';

const app = new App();
try {
  addExampleStacks(app, resolveEnvironment(app.node.tryGetContext('environments'), app.node.tryGetContext('env')));
} catch (error) {
  if (!(error instanceof EnvironmentError)) throw error;
  console.error(`Error: ${error.message}`);
  process.exit(1);
}
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
app.synth();
