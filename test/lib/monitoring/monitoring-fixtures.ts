/** What the monitoring construct tests share: their functions' bundled code must be there, and template JSON is untyped. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';

/** Fails the test file, in words, when the monitoring functions were not bundled: synthesis would package nothing. */
export function requireMonitorAssets(): void {
  beforeAll(() => {
    for (const name of ['freshness-check', 'size-anomaly']) {
      if (!existsSync(join(__dirname, `../../../assets/lambda/${name}/index.js`))) {
        throw new Error(`the ${name} asset is missing: run 'npm run bundle' before these tests`);
      }
    }
  });
}

/** Template JSON is untyped. */
export type Json = ReturnType<Template['toJSON']>[string];
export type Resource = { Type: string; Properties: Json };
