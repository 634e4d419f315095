import * as fs from 'node:fs';
import * as path from 'node:path';
import { IConstruct } from 'constructs';
import { RestorableError } from './errors';

/**
 * The package's root folder (the one with package.json): the prebundled assets and the container's Dockerfile
 * live there, whether this code runs from lib/shared/ (in a checkout) or from dist/lib/shared/ (as a built package).
 */
function findPackageRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) throw new RestorableError('restorable', `no package.json above ${from}: the package's assets cannot be found`);
  }
}

export const PACKAGE_ROOT = findPackageRoot(__dirname);

/**
 * The folder of a prebundled Lambda handler (scripts/bundle.mjs writes assets/lambda/<name>/index.js), or an error
 * on the construct that needs it saying how to make it: synth must not package an empty folder.
 */
export function lambdaAsset(scope: IConstruct, name: string): string {
  const folder = path.join(PACKAGE_ROOT, 'assets/lambda', name);
  if (!fs.existsSync(path.join(folder, 'index.js'))) {
    throw new RestorableError(scope, `the ${name} handler is not bundled (${folder}/index.js is missing): run 'npm run bundle' first`);
  }
  return folder;
}
