/**
 * age-encryption ships only as ESM and Jest runs CommonJS here: the real package, converted with esbuild exactly as
 * scripts/bundle.mjs does for the Lambda assets. For `jest.mock('age-encryption', () => require(…).ageAsCommonJs())`.
 */
import { buildSync } from 'esbuild';

export function ageAsCommonJs(): unknown {
  const built = buildSync({
    entryPoints: [require.resolve('age-encryption')], bundle: true, platform: 'node', format: 'cjs', write: false,
  });
  const module = { exports: {} };
  new Function('module', 'exports', 'require', built.outputFiles[0].text)(module, module.exports, require);
  return module.exports;
}
