/**
 * AWS's template linters over every template of the example app (each environment in cdk.json, its primary and
 * its replica stack), as `cdk synth` writes them: cfn-lint with zero errors, and every cfn-lint warning and every
 * failed checkov check either fixed in the constructs or acknowledged, with its reason, in template-lint.json.
 * Both tools come pinned from scripts/python-tools.sh, in virtual environments under $RESTORABLE_TOOLS.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { App, NestedStack } from 'aws-cdk-lib';
import { resolveEnvironment } from '../../bin/environments';
import { addExampleStacks } from '../../bin/example-app';

const run = promisify(execFile);
const root = join(__dirname, '..', '..');
const cdkJson = JSON.parse(readFileSync(join(root, 'cdk.json'), 'utf8'));
const envNames = Object.keys(cdkJson.context.environments);

const TOOLS = process.env.RESTORABLE_TOOLS || '/opt/restorable-tools';
const TOOL_PATHS = { 'cfn-lint': join(TOOLS, 'aws/bin/cfn-lint'), 'checkov': join(TOOLS, 'checkov/bin/checkov') } as const;
type Tool = keyof typeof TOOL_PATHS;

/** One acknowledged check: the resources it does not apply to, and why. */
interface Acknowledgement {
  readonly tool: Tool;
  readonly check: string;
  /** Construct paths inside their stack, without the stack's name and the trailing /Resource. */
  readonly resources: string[];
  readonly reason: string;
}

const CONFIG_FILE = 'template-lint.json';
const config = JSON.parse(readFileSync(join(root, CONFIG_FILE), 'utf8')) as { acknowledged: Acknowledgement[] };

/** One finding of either tool, on one resource (or template section) of one template. */
interface Finding {
  readonly tool: Tool;
  readonly check: string;
  /** cfn-lint's level: Error, Warning or Informational; checkov has none. */
  readonly level?: string;
  /** The template's file name. */
  readonly template: string;
  /** The resource's logical id, or the template section (such as Parameters/BootstrapVersion) when not a resource. */
  readonly logicalId: string;
  /** The construct path inside its stack, as template-lint.json names it; the logical id when the resource has none. */
  readonly where: string;
  readonly message: string;
}

/** A template as read back for construct paths. */
type TemplateJson = { Resources?: Record<string, { Metadata?: Record<string, unknown> }> };
/** Every synthesized template, by file name (stack names are unique across environments). */
const templatesByName = new Map<string, TemplateJson>();
/** The environment each template belongs to, by file name: a nested stack's is its parent's. */
const environmentOf = new Map<string, string>();

const describeFinding = (f: Finding) =>
  `${f.tool} ${f.check}${f.level ? ` (${f.level})` : ''} in ${f.template}: ${f.logicalId}` +
  `${f.where === f.logicalId ? '' : ` (${f.where})`}: ${f.message}`;

/** Fails with every line, so that each finding can be fixed or acknowledged from the message alone. */
function expectNone(what: string, lines: string[]): void {
  if (lines.length) throw new Error(`${lines.length} ${what}:\n${lines.map((line) => `  ${line}`).join('\n')}`);
}

const PLACEHOLDER = /\b(todo|tbd|fixme|xxx|placeholder|lorem|n\/a|false positive|not applicable|see above)\b/i;
const CHECK_ID: Record<Tool, RegExp> = { 'cfn-lint': /^[WI]\d{4}$/, 'checkov': /^CKV2?_AWS_\d+$/ };

describe(`the acknowledgements in ${CONFIG_FILE}`, () => {
  const named = (ack: Acknowledgement) => `${ack.tool} ${ack.check} ${(ack.resources ?? []).join(', ')}`;

  test('each names a known tool, a check id of that tool (no cfn-lint error: those must be fixed) and at least one resource', () => {
    expect(config.acknowledged.length).toBeGreaterThan(0);
    expectNone('acknowledgements that name no tool, check or resource', config.acknowledged.flatMap((ack) => [
      ...(ack.tool in CHECK_ID ? [] : [`${named(ack)}: the tool must be one of ${Object.keys(CHECK_ID).join(', ')}`]),
      ...(ack.tool in CHECK_ID && !CHECK_ID[ack.tool].test(ack.check) ? [`${named(ack)}: not a check id of ${ack.tool} that may be acknowledged`] : []),
      ...(Array.isArray(ack.resources) && ack.resources.length ? [] : [`${named(ack)}: names no resource`]),
      ...(ack.resources ?? []).filter((r) => !/^[A-Za-z0-9][A-Za-z0-9./_-]*$/.test(r)).map((r) => `${named(ack)}: '${r}' is not a construct path`),
    ]));
  });

  test('each has its own specific reason: no empty, short, placeholder or repeated one', () => {
    const reasons = config.acknowledged.map((ack) => (typeof ack.reason === 'string' ? ack.reason.trim() : ''));
    expectNone('acknowledgements without a specific reason of their own', config.acknowledged.flatMap((ack, i) => [
      ...(reasons[i].length >= 80 && reasons[i].split(/\s+/).length >= 15 ? [] : [`${named(ack)}: the reason is missing or under 15 words; say why the check does not apply here`]),
      ...(PLACEHOLDER.test(reasons[i]) ? [`${named(ack)}: the reason is a placeholder (${reasons[i].match(PLACEHOLDER)![0]})`] : []),
      ...(reasons.indexOf(reasons[i]) === i ? [] : [`${named(ack)}: the same reason as another entry; each says why for its own resources`]),
    ]));
  });

  test('each resource is acknowledged once per check', () => {
    const keys = config.acknowledged.flatMap((ack) => (ack.resources ?? []).map((resource) => `${ack.tool} ${ack.check} ${resource}`));
    expect(keys.filter((key, i) => keys.indexOf(key) !== i)).toEqual([]);
  });
});

describe('cfn-lint and checkov over every template of the example app', () => {
  let dir: string;
  let templates: string[];
  let findings: Finding[];

  beforeAll(async () => {
    for (const [tool, path] of Object.entries(TOOL_PATHS)) {
      if (!existsSync(path)) {
        throw new Error(`${tool} is missing: ${path} does not exist (RESTORABLE_TOOLS=${TOOLS}); run bash scripts/install-deps.sh, as root, to install it`);
      }
    }
    dir = mkdtempSync(join(tmpdir(), 'restorable-lint-'));
    let started = Date.now();
    templates = envNames.flatMap((name) => synthesize(name, join(dir, name)));
    for (const file of templates) templatesByName.set(basename(file), JSON.parse(readFileSync(file, 'utf8')));
    const synthSeconds = (Date.now() - started) / 1000;
    started = Date.now();
    const timed = async <T>(work: Promise<T>) => {
      const result = await work;
      return { result, seconds: (Date.now() - started) / 1000 };
    };
    // Both at once: each is one mostly single-threaded process, and checkov alone takes seconds to start.
    const [cfnLint, checkov] = await Promise.all([timed(runCfnLint(dir, templates)), timed(runCheckov(dir, templates))]);
    findings = [...cfnLint.result, ...checkov.result];
    console.log(`template lint: ${templates.length} templates synthesized in ${synthSeconds.toFixed(1)} s; ` +
      `cfn-lint ${cfnLint.seconds.toFixed(1)} s, checkov ${checkov.seconds.toFixed(1)} s (side by side); ` +
      `${findings.length} findings, ${findings.filter((f) => acknowledgementOf(f)).length} of them acknowledged`);
  }, 300_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('every environment gives a primary and a replica template, and the primary\'s nested stacks are linted too', () => {
    expect(templates.map((t) => basename(t)).filter((t) => !t.endsWith('.nested.template.json')).sort())
      .toEqual(envNames.flatMap((name) => [`Restorable-${name}-Replica.template.json`, `Restorable-${name}.template.json`]).sort());
    // RestoreTesting's roles live in nested stacks: every environment has at least one.
    const nestedCount = (name: string) => templates.filter((t) => t.endsWith('.nested.template.json') && environmentOf.get(basename(t)) === name).length;
    expect(envNames.filter((name) => nestedCount(name) === 0)).toEqual([]);
  });

  test('cfn-lint finds no error', () => {
    expectNone('cfn-lint errors (fix them in lib/; errors cannot be acknowledged)',
      findings.filter((f) => f.tool === 'cfn-lint' && (f.level === 'Error' || f.check.startsWith('E'))).map(describeFinding));
  });

  test(`every cfn-lint warning is fixed or acknowledged in ${CONFIG_FILE}`, () => {
    expectNone(`cfn-lint warnings neither fixed nor acknowledged in ${CONFIG_FILE} (fix them in lib/, or acknowledge them there with a reason)`,
      findings.filter((f) => f.tool === 'cfn-lint' && !f.check.startsWith('E') && !acknowledgementOf(f)).map(describeFinding));
  });

  test(`every failed checkov check is fixed or acknowledged in ${CONFIG_FILE}`, () => {
    expectNone(`checkov findings neither fixed nor acknowledged in ${CONFIG_FILE} (fix them in lib/, or acknowledge them there with a reason)`,
      findings.filter((f) => f.tool === 'checkov' && !acknowledgementOf(f)).map(describeFinding));
  });

  test(`every acknowledgement in ${CONFIG_FILE} still matches a finding, in every environment that has its resource`, () => {
    // An environment's findings are those of its primary (Restorable-NAME) and its replica (Restorable-NAME-Replica) template.
    // A resource only some environments have (a vault's, in an environment whose replica is in another account) is
    // checked there; one that no environment has is stale everywhere.
    const has = (name: string, resource: string) => [...templatesByName].some(([file, template]) => environmentOf.get(file) === name &&
      Object.values(template.Resources ?? {}).some((r) => resourcePath(r.Metadata?.['aws:cdk:path']) === resource));
    const stale = config.acknowledged.flatMap((ack) => ack.resources.flatMap((resource) => envNames
      .filter((name) => has(name, resource) || !envNames.some((other) => has(other, resource)))
      .filter((name) => !findings.some((f) => f.tool === ack.tool && f.check === ack.check && f.where === resource && environmentOf.get(f.template) === name))
      .map((name) => `${ack.tool} ${ack.check} ${resource}: no such finding in environment ${name}; remove it from ${CONFIG_FILE}`)));
    expectNone('acknowledgements that match nothing', stale);
  });
});

/**
 * The example app for one environment, synthesized into `outdir` with the metadata the CDK CLI asks for (construct
 * paths, asset metadata, version reporting), so that the templates are those `cdk synth` writes. Each template also
 * tells cfn-lint its stack's region, which it checks resource types and values against (us-east-1 otherwise).
 */
function synthesize(name: string, outdir: string): string[] {
  const app = new App({
    outdir,
    context: {
      ...cdkJson.context, 'env': name,
      'aws:cdk:enable-path-metadata': true, 'aws:cdk:enable-asset-metadata': true, 'aws:cdk:version-reporting': true,
    },
  });
  const { primary, replica } = addExampleStacks(app, resolveEnvironment(cdkJson.context.environments, name));
  const nestedStacks = app.node.findAll().filter((c): c is NestedStack => NestedStack.isNestedStack(c));
  for (const stack of [primary, replica, ...nestedStacks]) {
    stack.templateOptions.metadata = { ...stack.templateOptions.metadata, 'cfn-lint': { config: { regions: [stack.region] } } };
  }
  const assembly = app.synth();
  // Nested stacks' templates are assets of their parent's, written beside it.
  const nested = nestedStacks.map((n) => join(assembly.directory, n.templateFile));
  const files = [...assembly.stacks.map((stack) => stack.templateFullPath), ...nested];
  for (const file of files) environmentOf.set(basename(file), name);
  return files;
}

/** The tools see no user or project configuration but the command line: HOME and the working directory are the scratch folder. */
function toolEnv(home: string): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: home, LANG: 'C.UTF-8' };
}

const MAX_BUFFER = 64 * 1024 * 1024;

async function runCfnLint(dir: string, files: string[]): Promise<Finding[]> {
  // Exit code 0 with findings too, so that any other exit is the tool failing.
  const { stdout } = await run(TOOL_PATHS['cfn-lint'], ['--format', 'json', '--non-zero-exit-code', 'none', '--', ...files],
    { cwd: dir, env: toolEnv(dir), maxBuffer: MAX_BUFFER });
  const results = JSON.parse(stdout) as Array<{ Filename: string; Level: string; Message: string; Rule: { Id: string }; Location: { Path?: (string | number)[] } }>;
  return results.map((r) => {
    const path = r.Location.Path ?? [];
    const section = path[0] === 'Resources' ? String(path[1]) : path.slice(0, 2).join('/') || '(template)';
    return finding('cfn-lint', r.Rule.Id, r.Filename, section, r.Message, r.Level);
  });
}

async function runCheckov(dir: string, files: string[]): Promise<Finding[]> {
  // --skip-download: offline, with no call to the vendor's platform; --soft-fail: findings exit 0 too.
  const { stdout } = await run(TOOL_PATHS.checkov, [
    '--framework', 'cloudformation', '--skip-download', '--soft-fail', '--output', 'json', '--quiet', '--compact',
    ...files.flatMap((file) => ['-f', file]),
  ], { cwd: dir, env: toolEnv(dir), maxBuffer: MAX_BUFFER });
  const parsed = JSON.parse(stdout) as CheckovReport | CheckovReport[];
  const reports = Array.isArray(parsed) ? parsed : [parsed];
  // checkov reads what it can parse and reports the rest as parsing errors: every resource of every template must be scanned.
  const resources = files.reduce((sum, file) => sum + Object.keys(templatesByName.get(basename(file))?.Resources ?? {}).length, 0);
  expect(reports.map((r) => [r.check_type, r.summary.parsing_errors, r.summary.resource_count])).toEqual([['cloudformation', 0, resources]]);
  return reports.flatMap((r) => r.results.failed_checks).map((c) =>
    finding('checkov', c.check_id, c.file_path, c.resource.slice(c.resource.indexOf('.') + 1), c.check_name));
}

interface CheckovReport {
  readonly check_type: string;
  readonly results: { failed_checks: Array<{ check_id: string; check_name: string; file_path: string; resource: string }> };
  readonly summary: { parsing_errors: number; resource_count: number };
}

/** A finding with the construct path of its resource, read from the template's aws:cdk:path metadata. */
function finding(tool: Tool, check: string, file: string, logicalId: string, message: string, level?: string): Finding {
  const template = basename(file);
  const where = resourcePath(templatesByName.get(template)?.Resources?.[logicalId]?.Metadata?.['aws:cdk:path']) ?? logicalId;
  return { tool, check, level, template, logicalId, where, message };
}

/** A resource's construct path inside its stack, as template-lint.json names it, from its aws:cdk:path metadata. */
function resourcePath(cdkPath: unknown): string | undefined {
  return typeof cdkPath === 'string' ? cdkPath.split('/').slice(1).join('/').replace(/\/Resource$/, '') : undefined;
}

function acknowledgementOf(f: Finding): Acknowledgement | undefined {
  if (f.tool === 'cfn-lint' && (f.level === 'Error' || f.check.startsWith('E'))) return undefined;
  return config.acknowledged.find((ack) => ack.tool === f.tool && ack.check === f.check && ack.resources.includes(f.where));
}
