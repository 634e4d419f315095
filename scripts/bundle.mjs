// Prebundles the agent and every Lambda handler with esbuild into assets/, so that the constructs
// load them with Code.fromAsset and the container copies one file. Output is deterministic:
// the same sources give the same asset hashes.
import { build } from 'esbuild';
import { existsSync, readdirSync, chmodSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const common = { bundle: true, platform: 'node', format: 'cjs', legalComments: 'none', logLevel: 'warning' };

const jobs = [];
const agentEntry = join(root, 'container/src/cli.ts');
if (existsSync(agentEntry)) {
  const outfile = join(root, 'assets/agent/restorable.cjs');
  jobs.push(build({ ...common, entryPoints: [agentEntry], outfile, target: 'node20',
    banner: { js: '#!/usr/bin/env node' } }).then(() => chmodSync(outfile, 0o755)));
}
const lambdaDir = join(root, 'lambda');
if (existsSync(lambdaDir)) {
  for (const name of readdirSync(lambdaDir)) {
    const entry = join(lambdaDir, name, 'index.ts');
    if (!existsSync(entry)) continue;
    // The Lambda runtime ships its own AWS SDK v3, but bundling ours pins the version we test against.
    jobs.push(build({ ...common, entryPoints: [entry], outfile: join(root, 'assets/lambda', name, 'index.js'),
      target: 'node22', minify: true }));
  }
}
await Promise.all(jobs);
