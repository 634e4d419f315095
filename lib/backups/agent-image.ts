import * as fs from 'node:fs';
import * as path from 'node:path';
import { IgnoreMode } from 'aws-cdk-lib';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import { IConstruct } from 'constructs';
import { RestorableError } from '../shared/errors';
// The package root is the image's build context, so that the Dockerfile can COPY the bundled agent.
import { PACKAGE_ROOT } from '../shared/package-root';

const DOCKERFILE = 'container/Dockerfile';
/** The context filter, in .dockerignore syntax; `docker build -f container/Dockerfile .` reads the same file. */
const DOCKERIGNORE = path.join(PACKAGE_ROOT, `${DOCKERFILE}.dockerignore`);
const AGENT_BUNDLE = path.join(PACKAGE_ROOT, 'assets/agent/restorable.cjs');

/**
 * What the agent's tasks run on. The image is built for the same platform whatever machine runs `cdk deploy`
 * (an arm64 laptop or CI runner would otherwise build an image these tasks cannot start).
 */
export const AGENT_RUNTIME_PLATFORM: ecs.RuntimePlatform = {
  cpuArchitecture: ecs.CpuArchitecture.X86_64,
  operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
};
const AGENT_IMAGE_PLATFORM = Platform.LINUX_AMD64;

/**
 * The agent's container image, built by `cdk deploy` from container/Dockerfile. Synthesis only stages the
 * context (the bundled agent and the Dockerfile, nothing else), so it needs no Docker engine. `scope` is the construct
 * whose `image` property was left out, named when the agent is not bundled.
 */
export function agentImage(scope: IConstruct): ecs.ContainerImage {
  if (!fs.existsSync(AGENT_BUNDLE)) {
    throw new RestorableError(scope, `image: the backup agent is not bundled (${AGENT_BUNDLE} is missing): run 'npm run bundle' first, or pass image`);
  }
  return ecs.ContainerImage.fromAsset(PACKAGE_ROOT, {
    file: DOCKERFILE,
    ignoreMode: IgnoreMode.DOCKER,
    exclude: agentImageContextFilter(),
    platform: AGENT_IMAGE_PLATFORM,
  });
}

/** The .dockerignore patterns that narrow the package root to the image's build context. */
export function agentImageContextFilter(): string[] {
  return fs.readFileSync(DOCKERIGNORE, 'utf8').split('\n').map((line) => line.trim()).filter((line) => line && !line.startsWith('#'));
}
