/**
 * The agent image, checked statically (nothing here can run `docker build`): the Dockerfile against a small
 * rule set of our own, every program the agent spawns against the packages the image installs (which Debian
 * package owns each one is asked of this machine's dpkg), and the build context that synth stages.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Stack } from 'aws-cdk-lib';
import { MONGODB_TOOLS, POSTGRES_MAJORS } from '../../lib/backups/backup-source';
import { findOnPath } from '../../container/src/shared/tools';
import { backupsStack, postgresSource } from '../lib/database-backups-fixture';
import { REPO_ROOT, requireAgentBundle } from '../support';

const DOCKERFILE = readFileSync(join(REPO_ROOT, 'container/Dockerfile'), 'utf8');

interface Instruction {
  readonly keyword: string;
  readonly args: string;
}

/** The Dockerfile's instructions, with continuation lines joined and comments dropped. */
function instructions(text: string): Instruction[] {
  return text.replace(/\\\n/g, ' ').split('\n').map((line) => line.trim()).filter((line) => line && !line.startsWith('#'))
    .map((line) => {
      const [keyword, ...rest] = line.split(/\s+/);
      return { keyword: keyword.toUpperCase(), args: rest.join(' ') };
    });
}

/** Every `apt-get install` package argument, with its pin, with ARG defaults substituted. */
function aptPackages(steps: readonly Instruction[]): string[] {
  const args = Object.fromEntries(steps.filter((s) => s.keyword === 'ARG').map((s) => s.args.split('=') as [string, string]));
  const substitute = (text: string) => text.replace(/\$\{(\w+)\}/g, (_, name: string) => args[name] ?? `\${${name}}`);
  return steps.filter((s) => s.keyword === 'RUN').flatMap((s) => s.args.split('&&'))
    .filter((command) => /apt-get\s+install/.test(command))
    .flatMap((command) => command.replace(/.*apt-get\s+install/, '').trim().split(/\s+/))
    .filter((word) => !word.startsWith('-'))
    .map((word) => substitute(word.replace(/^"|"$/g, '')));
}

const steps = instructions(DOCKERFILE);
const packages = aptPackages(steps);
const packageNames = packages.map((p) => p.split('=')[0]);

describe('Dockerfile rules', () => {
  test('the base image is pinned to an exact version (or a digest), never latest', () => {
    const froms = steps.filter((s) => s.keyword === 'FROM');
    expect(froms.length).toBeGreaterThan(0);
    for (const from of froms) {
      expect(from.args).not.toMatch(/latest/);
      expect(from.args).toMatch(/^[\w./-]+(:\d+\.\d+\.\d+[\w.-]*|@sha256:[0-9a-f]{64})/);
    }
  });

  test('every apt package is pinned to a version or release series, installs without recommends, and the lists are removed', () => {
    expect(packages.length).toBeGreaterThanOrEqual(5);
    for (const pkg of packages) expect(pkg).toMatch(/^[a-z0-9.+-]+=\S*\d\S*$/);
    const installs = steps.filter((s) => s.keyword === 'RUN' && /apt-get\s+install/.test(s.args));
    for (const run of installs) {
      expect(run.args).toMatch(/apt-get update/);
      expect(run.args).toMatch(/apt-get install -y --no-install-recommends/g);
      expect(run.args).toMatch(/rm -rf \/var\/lib\/apt\/lists\/\*/);
    }
  });

  test('it runs as a non-root user, with an exec-form ENTRYPOINT into the bundled agent', () => {
    const users = steps.filter((s) => s.keyword === 'USER');
    expect(users.length).toBeGreaterThan(0);
    expect(users.at(-1)!.args).not.toMatch(/^(root|0)(:|$)/);
    const entrypoints = steps.filter((s) => s.keyword === 'ENTRYPOINT');
    expect(entrypoints).toHaveLength(1);
    const entrypoint = JSON.parse(entrypoints[0].args) as string[];
    const copy = steps.find((s) => s.keyword === 'COPY' && s.args.startsWith('assets/agent/restorable.cjs '));
    expect(copy).toBeDefined();
    expect(entrypoint).toEqual(['node', copy!.args.split(/\s+/)[1]]);
  });

  test('nothing is fetched unverified or secret: no ADD, no curl | sh, no credentials in ENV or ARG', () => {
    expect(steps.filter((s) => s.keyword === 'ADD')).toEqual([]);
    expect(DOCKERFILE).not.toMatch(/curl[^\n]*\|\s*(ba)?sh|wget[^\n]*\|\s*(ba)?sh/);
    for (const step of steps.filter((s) => s.keyword === 'ENV' || s.keyword === 'ARG')) expect(step.args).not.toMatch(/PASSWORD|SECRET|TOKEN|KEY/i);
    // A third-party apt repository must name the key it is signed with.
    for (const line of DOCKERFILE.split('\n').filter((l) => /\bdeb\s+(\[|http)/.test(l))) expect(line).toMatch(/signed-by=/);
  });

  test(`the PostgreSQL client is at least as new as the newest supported server (${POSTGRES_MAJORS.newest})`, () => {
    const client = packageNames.find((name) => /^postgresql-client-\d+$/.test(name));
    expect(client).toBeDefined();
    expect(Number(client!.split('-').at(-1))).toBeGreaterThanOrEqual(POSTGRES_MAJORS.newest);
  });
});

/** The programs the agent starts, read from its source: stage commands, spawn calls, version probes, required tools. */
function spawnedPrograms(): string[] {
  const sourceDir = join(REPO_ROOT, 'container/src');
  const files = readdirSync(sourceDir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => join(sourceDir, f));
  const found = new Set<string>();
  const literal = /'([a-z][\w-]*)'/g;
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    for (const pattern of [/command: '([\w-]+)'/g, /spawn(?:Sync)?\('([\w-]+)'/g, /toolVersion\('([\w-]+)'/g]) {
      for (const m of text.matchAll(pattern)) found.add(m[1]);
    }
    for (const call of text.matchAll(/requireTools\((.*)\)/g)) for (const m of call[1].matchAll(literal)) found.add(m[1]);
    const dumpTools = /export const DUMP_TOOLS[^=]*=\s*\{([^}]*)\}/.exec(text);
    if (dumpTools) for (const m of dumpTools[1].matchAll(literal)) found.add(m[1]);
  }
  return [...found].sort();
}

/** The Debian package that owns a program on this machine, found with dpkg; PostgreSQL's versioned client as `postgresql-client-NN`. */
function owningPackage(program: string): string {
  const onPath = findOnPath(program);
  if (!onPath) throw new Error(`${program} is not installed on this machine, so its Debian package cannot be checked: run scripts/install-deps.sh`);
  let path = realpathSync(onPath);
  if (path.endsWith('/pg_wrapper')) {
    const versioned = readdirSync('/usr/lib/postgresql').map((v) => `/usr/lib/postgresql/${v}/bin/${program}`).find((p) => statSync(p, { throwIfNoEntry: false }));
    if (!versioned) throw new Error(`${program} is only PostgreSQL's wrapper here; install postgresql-client-NN`);
    path = versioned;
  }
  // Merged /usr: dpkg knows programs such as tar by the /bin path their package ships, which /usr/bin now holds.
  const candidates = [path, path.replace(/^\/usr\/bin\//, '/bin/')];
  const owner = candidates.map((p) => spawnSync('dpkg', ['-S', p], { encoding: 'utf8' })).find((r) => r.status === 0);
  if (!owner) throw new Error(`dpkg knows no package that owns ${candidates.join(' or ')}`);
  return owner.stdout.split(':')[0].trim().replace(/^postgresql-client-\d+$/, 'postgresql-client-NN');
}

/** Whether Debian marks a package essential: every Debian image, the agent's base among them, has it. */
function essential(pkg: string): boolean {
  return spawnSync('dpkg-query', ['-W', '-f=${Essential}', pkg], { encoding: 'utf8' }).stdout.trim() === 'yes';
}

/** The packages one package pulls in directly (Depends), from apt's cache. */
function dependencies(pkg: string): string[] {
  const out = execFileSync('apt-cache', ['depends', '--no-recommends', '--no-suggests', pkg], { encoding: 'utf8' });
  return [...out.matchAll(/^\s+\|?Depends: <?([\w.+-]+)>?/gm)].map((m) => m[1]);
}

/** The programs a build stage makes and the final image copies onto its PATH: `COPY --from=STAGE /out/a /out/b /usr/local/bin/`. */
function builtPrograms(all: readonly Instruction[]): string[] {
  const stages = all.filter((s) => s.keyword === 'FROM' && /\sAS\s/i.test(s.args)).map((s) => s.args.split(/\s+AS\s+/i)[1]);
  return all.filter((s) => s.keyword === 'COPY' && stages.some((stage) => s.args.startsWith(`--from=${stage} `)))
    .flatMap((s) => {
      const paths = s.args.split(/\s+/).slice(1);
      return paths.at(-1) === '/usr/local/bin/' ? paths.slice(0, -1).map((p) => p.split('/').at(-1)!) : [];
    });
}

/** The Dockerfile's ARG defaults. */
function argDefaults(all: readonly Instruction[]): Record<string, string> {
  return Object.fromEntries(all.filter((s) => s.keyword === 'ARG').map((s) => [s.args.slice(0, s.args.indexOf('=')), s.args.slice(s.args.indexOf('=') + 1)]));
}

describe('the MongoDB Database Tools the image builds', () => {
  const args = argDefaults(steps);
  const harness = (file: string) => readFileSync(join(REPO_ROOT, 'test/support/mongo-tools', file), 'utf8');

  test(`are version ${MONGODB_TOOLS.version}, the version synth documents, from the module and checksum the tests' tools are built from`, () => {
    expect(args.MONGO_TOOLS_VERSION).toBe(MONGODB_TOOLS.version);
    const [module, version] = args.MONGO_TOOLS_MODULE.split('@');
    expect(harness('go.mod')).toMatch(new RegExp(`^require ${module.replace(/\./g, '\\.')} ${version}$`, 'm'));
    expect(harness('go.sum').split('\n')).toContain(`${module} ${version} ${args.MONGO_TOOLS_SUM}`);
    expect(args.MONGO_TOOLS_SUM).toMatch(/^h1:[A-Za-z0-9+/]{43}=$/);
  });

  /** The build stage's RUN, run here with Go as the tests' tools are built (its /out in a directory of the test's). */
  function runBuild(sum: string): { status: number | null; stderr: string; out: string } {
    const build = steps.find((s) => s.keyword === 'RUN' && s.args.includes('go mod download'));
    if (!build) throw new Error('the Dockerfile has no RUN that downloads the mongo-tools module');
    if (!findOnPath('go')) throw new Error('go is not installed on this machine, so the image\'s tools build cannot be run: run scripts/install-deps.sh');
    const out = mkdtempSync(join(tmpdir(), 'dockerfile-mongo-tools-'));
    const result = spawnSync('sh', ['-c', build.args.replaceAll('/out/', `${out}/`)], {
      encoding: 'utf8', env: { ...process.env, MONGO_TOOLS_VERSION: args.MONGO_TOOLS_VERSION, MONGO_TOOLS_MODULE: args.MONGO_TOOLS_MODULE, MONGO_TOOLS_SUM: sum },
    });
    return { status: result.status, stderr: result.stderr, out };
  }

  test('build, run as the image runs it, into mongodump and mongorestore reporting that version', () => {
    const { status, stderr, out } = runBuild(args.MONGO_TOOLS_SUM);
    try {
      expect({ status, stderr: stderr.trim() }).toEqual({ status: 0, stderr: '' });
      for (const tool of ['mongodump', 'mongorestore']) {
        expect(execFileSync(join(out, tool), ['--version'], { encoding: 'utf8' }).split('\n')[0]).toBe(`${tool} version: ${MONGODB_TOOLS.version}`);
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 240_000);

  test('are refused at build time when the downloaded module has another checksum, and copied onto the PATH', () => {
    const { status, stderr, out } = runBuild('h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=');
    try {
      expect(status).not.toBe(0);
      expect(stderr).toContain(`has checksum '${args.MONGO_TOOLS_SUM}', not h1:AAAA`);
      expect(readdirSync(out)).toEqual([]);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
    expect(builtPrograms(steps).sort()).toEqual(['mongodump', 'mongorestore']);
  });
});

describe('the tools the agent calls', () => {
  const programs = spawnedPrograms();
  const built = builtPrograms(steps);

  test('are found in its source: the dump, compress and encrypt stages of every engine', () => {
    expect(programs).toEqual(expect.arrayContaining(['age', 'mongodump', 'mongorestore', 'mysql', 'mysqldump', 'pg_dump', 'pg_dumpall', 'zstd']));
  });

  test('are each installed by the Dockerfile, built in one of its stages, or a dependency of what it installs', () => {
    const installed = packageNames.map((name) => name.replace(/^postgresql-client-\d+$/, 'postgresql-client-NN'));
    const missing = programs.filter((program) => !built.includes(program)).map((program) => ({ program, pkg: owningPackage(program) }))
      .filter(({ pkg }) => !essential(pkg) && !installed.includes(pkg) && !installed.some((i) => i !== 'postgresql-client-NN' && dependencies(i).includes(pkg)))
      .map(({ program, pkg }) => `${program} (Debian package ${pkg})`);
    expect(missing).toEqual([]);
  });
});

describe('the build context synth stages', () => {
  test('holds exactly the bundled agent and the Dockerfile, the agent byte for byte', () => {
    const bundle = requireAgentBundle();
    const { app, stack, backups } = backupsStack();
    backups.addSource(postgresSource(stack));
    const assembly = app.synth();
    const manifest = JSON.parse(readFileSync(join(assembly.directory, `${Stack.of(stack).artifactId}.assets.json`), 'utf8')) as
      { dockerImages: Record<string, { source: { directory: string; dockerFile?: string } }> };
    const images = Object.values(manifest.dockerImages);
    expect(images).toHaveLength(1);
    expect(images[0].source.dockerFile).toBe('container/Dockerfile');
    const contextDir = join(assembly.directory, images[0].source.directory);
    const files = (readdirSync(contextDir, { recursive: true, encoding: 'utf8' }) as string[])
      .filter((f) => statSync(join(contextDir, f)).isFile()).map((f) => relative(contextDir, join(contextDir, f))).sort();
    expect(files).toEqual(['assets/agent/restorable.cjs', 'container/Dockerfile']);
    expect(readFileSync(join(contextDir, 'assets/agent/restorable.cjs')).equals(readFileSync(bundle))).toBe(true);
  });
});
