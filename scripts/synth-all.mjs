// Synthesizes the example app once for every environment in cdk.json: the README's main job.
// Offline and with no AWS credentials.
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

const envs = Object.keys(JSON.parse(readFileSync('cdk.json', 'utf8')).context.environments);
for (const env of envs) {
  console.log(`synth: ${env}`);
  execFileSync('npx', ['cdk', 'synth', '--quiet', '-c', `env=${env}`, '-o', `cdk.out/${env}`], { stdio: 'inherit' });
}
