/**
 * The Dockerfile and .dockerignore, checked without a Docker engine:
 *
 * - dockerfile-utils (the validator behind editors' Dockerfile diagnostics, from the Docker
 *   language server) reports no problem, every check at error level, and its formatter no edit;
 * - the rules a reviewer would check: one Node base image, pinned to package.json's Node major;
 *   `npm ci` only, the runtime's node_modules from an `npm ci --omit=dev` (and src/ imports no dev
 *   dependency, so it needs none); a numeric non-root USER that owns the state directory and
 *   nothing else; the ENTRYPOINT is the `modelgate` bin; the labels match package.json;
 * - every COPY source exists, and all of its tracked files reach the build context, which holds
 *   nothing else worth naming (tests, the chart, node_modules, local state...).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { test } from 'node:test';
import { format, ValidationSeverity, type ValidatorSettings, validate } from 'dockerfile-utils';
import { parse } from 'yaml';

const ROOT = join(import.meta.dirname, '..', '..');
const DOCKERFILE = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const DOCKERIGNORE = readFileSync(join(ROOT, '.dockerignore'), 'utf8');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  description: string;
  license: string;
  bin: Record<string, string>;
  engines: { node: string };
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

// --- a small Dockerfile reader (the linter has checked the syntax) ----------------------------------

interface Instruction {
  keyword: string;
  args: string;
}
interface Stage {
  image: string;
  name: string | undefined;
  instructions: Instruction[];
}

/** Instructions by stage: continuation lines joined, comments and blank lines left out. */
function stages(text: string): Stage[] {
  const out: Stage[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = pending + line;
    pending = '';
    const [, keyword, args] = /^(\S+)\s+(.*)$/.exec(full)!;
    if (keyword!.toUpperCase() === 'FROM') {
      const [image, as, name] = args!.split(/\s+/);
      out.push({ image: image!, name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] });
    } else {
      out.at(-1)!.instructions.push({ keyword: keyword!.toUpperCase(), args: args! });
    }
  }
  return out;
}

const all = (stage: Stage, keyword: string) =>
  stage.instructions.filter((i) => i.keyword === keyword).map((i) => i.args);

/** A COPY's flags (`--from=build`), sources and destination. */
function copyOf(args: string) {
  const words = args.split(/\s+/);
  const flags = Object.fromEntries(
    words.filter((w) => w.startsWith('--')).map((w) => w.slice(2).split('=') as [string, string]),
  );
  const paths = words.filter((w) => !w.startsWith('--'));
  return { flags, sources: paths.slice(0, -1), dest: paths.at(-1)! };
}

/** `KEY=value` pairs of ENV or LABEL (values quoted or not, no spaces in unquoted ones). */
function pairs(args: string): Record<string, string> {
  return Object.fromEntries(
    [...args.matchAll(/([\w.-]+)=("([^"]*)"|\S+)/g)].map((m) => [m[1]!, m[3] ?? m[2]!]),
  );
}

const STAGES = stages(DOCKERFILE);
const FINAL = STAGES.at(-1)!;
const stageNamed = (name: string) => STAGES.find((s) => s.name === name);

// --- .dockerignore, with Docker's rules ------------------------------------------------------------

/**
 * Docker's matching (moby/patternmatcher): patterns are relative to the context root (`*.tgz` is a
 * top-level file only), `*` and `?` stay within a path segment, `**` spans any number; a pattern
 * matches a path or any of its parent folders, and the last pattern that matches decides, a `!`
 * one letting the path back in.
 */
function ignoredBy(text: string): (path: string) => boolean {
  const patterns = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negated = l.startsWith('!');
      const body = posix.normalize((negated ? l.slice(1) : l).trim()).replace(/^\/+|\/+$/g, '');
      const source = body
        .split('/')
        .map((seg) =>
          seg === '**'
            ? '\0'
            : seg
                .replace(/[.+^${}()|[\]\\]/g, '\\$&')
                .replace(/\*/g, '[^/]*')
                .replace(/\?/g, '[^/]'),
        )
        .join('/')
        .replace(/\0\//g, '(?:.*/)?')
        .replace(/\/\0/g, '(?:/.*)?')
        .replace(/\0/g, '.*');
      return { negated, re: new RegExp(`^${source}$`) };
    });
  return (path) => {
    const segments = path.split('/');
    const candidates = segments.map((_, i) => segments.slice(0, i + 1).join('/'));
    let ignored = false;
    for (const p of patterns) if (candidates.some((c) => p.re.test(c))) ignored = !p.negated;
    return ignored;
  };
}

const ignored = ignoredBy(DOCKERIGNORE);

/** The files git tracks at or under a path of the repository. */
const tracked = (path: string) =>
  execFileSync('git', ['ls-files', '-z', '--', path], { cwd: ROOT, encoding: 'utf8' })
    .split('\0')
    .filter((f) => f !== '');

// --- the tests ---------------------------------------------------------------------------------------

test('dockerfile-utils: no problem with every check at error level, and no formatting edit', () => {
  const everything: ValidatorSettings = {
    deprecatedMaintainer: ValidationSeverity.ERROR,
    directiveCasing: ValidationSeverity.ERROR,
    emptyContinuationLine: ValidationSeverity.ERROR,
    instructionCasing: ValidationSeverity.ERROR,
    instructionCmdMultiple: ValidationSeverity.ERROR,
    instructionEntrypointMultiple: ValidationSeverity.ERROR,
    instructionHealthcheckMultiple: ValidationSeverity.ERROR,
    instructionJSONInSingleQuotes: ValidationSeverity.ERROR,
    instructionWorkdirRelative: ValidationSeverity.ERROR,
  };
  const problems = validate(DOCKERFILE, everything).map(
    (d) => `line ${d.range.start.line + 1}: ${d.message}`,
  );
  assert.deepEqual(problems, []);
  const edits = format(DOCKERFILE, { tabSize: 4, insertSpaces: true }).map(
    (e) => `line ${e.range.start.line + 1}: ${JSON.stringify(e.newText)}`,
  );
  assert.deepEqual(edits, [], 'the formatter would change these lines');

  // The linter really lints: a broken copy is refused.
  const broken = validate(DOCKERFILE.replace('WORKDIR /app', 'workdir app'), everything);
  assert.deepEqual(broken.map((d) => d.message).sort(), [
    'Instructions should be written in uppercase letters',
    'WORKDIR paths should be absolute',
  ]);
});

test('every stage is FROM the same Node image, pinned to the Node major of package.json', () => {
  const major = /\d+/.exec(pkg.engines.node)![0];
  assert.equal(/\d+/.exec(pkg.devDependencies.node!)![0], major, 'engines.node and the node devDependency');
  const bases = STAGES.map((s) => s.image);
  // One base: the runtime's node_modules come from another stage, built for the same Node and libc.
  assert.equal(new Set(bases).size, 1, `several base images: ${bases.join(', ')}`);
  // A major and a named Debian release, never `latest`: a rebuild picks up patches, not a new major.
  assert.match(bases[0]!, new RegExp(`^node:${major}-[a-z]+-slim(@sha256:[a-f0-9]{64})?$`));
  assert.deepEqual(
    STAGES.map((s) => s.name),
    ['build', 'deps', undefined],
    'a build stage, a production-dependency stage, the runtime',
  );
});

test('installs are `npm ci` (the lockfile, exactly), and the runtime has no dev dependency', () => {
  const runs = STAGES.flatMap((s) => all(s, 'RUN').map((run) => ({ stage: s, run })));
  const installs = runs.filter(({ run }) => /\bnpm\s+(ci|install|i|add)\b|\byarn\b|\bpnpm\b/.test(run));
  assert.ok(installs.length > 0);
  for (const { run } of installs) assert.match(run, /^npm ci\b/, run);

  // The runtime's node_modules are copied from a stage whose npm ci leaves the dev dependencies out.
  const copies = all(FINAL, 'COPY').map(copyOf);
  const modules = copies.filter((c) => c.sources.some((s) => s.endsWith('node_modules')));
  assert.equal(modules.length, 1, 'one COPY of node_modules into the runtime');
  const from = stageNamed(modules[0]!.flags.from!);
  assert.ok(from, `COPY --from=${modules[0]!.flags.from} names a stage`);
  assert.deepEqual(
    all(from, 'RUN').filter((r) => r.startsWith('npm ci')),
    ['npm ci --omit=dev --ignore-scripts --no-audit --no-fund'],
  );
  assert.deepEqual(
    all(FINAL, 'RUN').filter((r) => r.includes('npm')),
    [],
    'no npm in the runtime stage',
  );

  // ...and needs none: every package src/ imports (types aside, which compile away) is a dependency.
  const imported = new Set<string>();
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
    );
  for (const file of walk(join(ROOT, 'src'))) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^(?:import|export)(?!\s+type\b)[^;]*?from\s+'([^'.][^']*)'/gm))
      imported.add(m[1]!);
    for (const m of text.matchAll(/\bimport\(\s*'([^'.][^']*)'\s*\)/g)) imported.add(m[1]!);
  }
  const packages = [...imported]
    .filter((s) => !s.startsWith('node:'))
    .map((s) =>
      s
        .split('/')
        .slice(0, s.startsWith('@') ? 2 : 1)
        .join('/'),
    );
  assert.ok(packages.includes('fastify'), 'the import scan finds packages');
  for (const p of new Set(packages)) assert.ok(pkg.dependencies[p], `src/ imports ${p}, not a dependency`);
});

test('the runtime runs as a numeric non-root user, which owns the state directory only', () => {
  const users = all(FINAL, 'USER');
  assert.equal(users.length, 1);
  // Numeric: Kubernetes' runAsNonRoot cannot check a user name.
  const [, uid, gid] = /^(\d+):(\d+)$/.exec(users[0]!) ?? [];
  assert.ok(uid && gid, `USER ${users[0]} is uid:gid`);
  assert.notEqual(Number(uid), 0);
  assert.notEqual(Number(gid), 0);
  // The chart's pods say the same.
  const values = parse(readFileSync(join(ROOT, 'charts', 'modelgate', 'values.yaml'), 'utf8')) as {
    podSecurityContext: { runAsUser: number; runAsGroup: number };
  };
  assert.deepEqual(
    [values.podSecurityContext.runAsUser, values.podSecurityContext.runAsGroup],
    [Number(uid), Number(gid)],
  );

  // Nothing is copied as that user: the process cannot change its own code.
  for (const c of all(FINAL, 'COPY').map(copyOf)) assert.equal(c.flags.chown, undefined, c.sources.join(' '));
  // The state directory (standalone's default would be ./.modelgate in the root-owned /app) is its own.
  const env = pairs(all(FINAL, 'ENV').join(' '));
  const stateDir = env.MODELGATE_STATE_DIR;
  assert.ok(stateDir?.startsWith('/'), 'ENV MODELGATE_STATE_DIR');
  assert.deepEqual(all(FINAL, 'RUN'), [`install -d -o ${uid} -g ${gid} ${stateDir}`]);
  assert.equal(env.NODE_ENV, 'production');
});

test('the ENTRYPOINT is the `modelgate` CLI, and labels match package.json', () => {
  const entrypoints = all(FINAL, 'ENTRYPOINT');
  assert.equal(entrypoints.length, 1);
  const argv = JSON.parse(entrypoints[0]!) as string[]; // exec form: node is PID 1 and gets SIGTERM
  const workdir = all(FINAL, 'WORKDIR').at(-1)!;
  assert.equal(argv[0], 'node');
  assert.equal(argv.at(-1), posix.join(workdir, pkg.bin.modelgate!));
  // dist/cli/main.js is what tsconfig.build.json makes of src/cli/main.ts, copied to the workdir.
  assert.ok(existsSync(join(ROOT, pkg.bin.modelgate!.replace(/^dist\//, 'src/').replace(/\.js$/, '.ts'))));
  assert.ok(
    all(FINAL, 'COPY')
      .map(copyOf)
      .some((c) => c.sources.includes('/src/dist') && c.dest === './dist'),
  );
  assert.deepEqual(JSON.parse(all(FINAL, 'CMD').at(-1)!), ['--help']);

  const labels = pairs(all(FINAL, 'LABEL').join(' '));
  assert.deepEqual(labels, {
    'org.opencontainers.image.title': pkg.name,
    'org.opencontainers.image.description': pkg.description,
    'org.opencontainers.image.licenses': pkg.license,
  });
});

test('every COPY source exists and reaches the build context, which holds nothing else', () => {
  const sources = STAGES.flatMap((s) =>
    all(s, 'COPY')
      .map(copyOf)
      .filter((c) => c.flags.from === undefined)
      .flatMap((c) => c.sources),
  );
  assert.ok(sources.includes('src') && sources.includes('package-lock.json'));
  for (const source of sources) {
    assert.ok(existsSync(join(ROOT, source)), `COPY ${source}: not in the repository`);
    const files = tracked(source);
    assert.ok(files.length > 0, `COPY ${source}: git tracks nothing there`);
    for (const f of files) assert.ok(!ignored(f), `COPY ${source}: ${f} is left out by .dockerignore`);
  }

  // What is sent: exactly the COPY sources' tracked files.
  const sent = tracked('.').filter((f) => !ignored(f));
  const roots = new Set(sent.map((f) => f.split('/')[0]));
  assert.deepEqual([...roots].sort(), [...new Set(sources)].sort());

  // The matcher follows Docker's rules on the paths that matter.
  for (const f of [
    'node_modules/yaml/package.json',
    'dist/cli/main.js',
    '.git/HEAD',
    'test/unit/dockerfile.test.ts',
    'bench/proxy.ts',
    'docs/index.md',
    'charts/modelgate/values.yaml',
    'deploy/modelgate.yaml',
    'README.md',
    'Dockerfile',
    'modelgate-0.1.0.tgz',
    '.modelgate/rollouts.json',
    'examples/quickstart/.modelgate/rollouts.json',
    'src/node_modules/x/index.js',
  ])
    assert.ok(ignored(f), `${f} is sent to the builder`);
  for (const f of ['package.json', 'src/cli/main.ts', 'crds/modelgate.dev_modelroutes.yaml'])
    assert.ok(!ignored(f), `${f} is left out`);
});
