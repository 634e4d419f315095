/**
 * The agent image is built for the platform its task definitions declare, whatever machine runs `cdk deploy`:
 * no Docker engine runs here, so the synthesized asset manifest is what is checked.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';
import { backupsStack, mariadbSource, postgresSource } from '../database-backups-fixture';

test('given DatabaseBackups, when synthesized, then its image asset is built for linux/amd64, as its tasks run on X86_64 Linux', () => {
  const { app, stack, backups } = backupsStack();
  backups.addSource(postgresSource(stack));
  backups.addSource(mariadbSource(stack));
  const assembly = app.synth();
  const manifest = JSON.parse(readFileSync(join(assembly.directory, `${stack.artifactId}.assets.json`), 'utf8')) as {
    dockerImages: Record<string, { source: { platform?: string } }>;
  };
  const images = Object.values(manifest.dockerImages);
  expect(images.length).toBeGreaterThan(0);
  for (const image of images) expect(image.source.platform).toBe('linux/amd64');

  const taskDefinitions = Object.values(Template.fromStack(stack).findResources('AWS::ECS::TaskDefinition'));
  expect(taskDefinitions.length).toBeGreaterThan(0);
  for (const definition of taskDefinitions) {
    expect(definition.Properties.RuntimePlatform).toEqual({ CpuArchitecture: 'X86_64', OperatingSystemFamily: 'LINUX' });
  }
});
