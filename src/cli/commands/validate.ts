/**
 * `modelgate validate -f PATH...`: everything `kubectl apply` would reject, plus what the compiler
 * would refuse or leave unresolved, one line per problem:
 *   file: Kind/namespace/name: field.path: message
 * YAML syntax errors name the line: `file:line: message`. Exit 0 when all is valid, 1 otherwise.
 */
import { parseArgs } from 'node:util';
import { objectKey } from '../../api/cluster-state.ts';
import type { CustomResource, ModelRoute } from '../../api/resources.ts';
import { admit } from '../../compiler/admit.ts';
import { compile } from '../../compiler/compile.ts';
import { buildRouteModel } from '../../compiler/route-model.ts';
import { loadFiles } from '../../sources/files/index.ts';
import { UsageError } from '../usage-error.ts';

export const validateHelp = `Usage: modelgate validate -f PATH [-f PATH...] [--skip-refs]

Checks ModelGate manifests (files or folders of YAML) the way the API server and the compiler
would: schema, CEL rules, semantics, references. Prints one line per problem and exits 1, or
exits 0 when everything is valid.

Options:
  -f, --file PATH   a YAML/JSON file or a folder (recursive); repeatable
  --skip-refs       do not report Services that are not in the given files (for manifests
                    whose Services live in the cluster)
  -h, --help        show this help`;

export interface ValidateOutput {
  problems: string[];
  resources: number;
}

export async function validatePaths(paths: string[], skipRefs: boolean): Promise<ValidateOutput> {
  const loaded = await loadFiles(paths);
  const problems: string[] = [];
  for (const p of loaded.problems) {
    const where = p.line !== undefined ? `${p.file}:${p.line}` : p.file;
    problems.push(`${where}: ${p.key ? `${p.key}: ` : ''}${p.message}`);
  }
  const fileOf = (kind: string, ns: string | undefined, name: string) =>
    loaded.origins.get(objectKey(kind, ns, name))?.file ?? '<unknown>';

  const custom: CustomResource[] = [
    ...loaded.state.modelRoutes,
    ...loaded.state.rateLimitPolicies,
    ...loaded.state.canaryRollouts,
  ];
  const invalid = new Set<string>();
  for (const r of custom) {
    const key = objectKey(r.kind, r.metadata.namespace, r.metadata.name);
    const a = admit(r);
    let errors = a.ok ? [] : a.errors;
    if (a.ok && a.resource.kind === 'ModelRoute') {
      const built = buildRouteModel(a.resource as ModelRoute);
      if (!built.ok) errors = built.errors;
    }
    if (errors.length > 0) invalid.add(key);
    for (const e of errors)
      problems.push(
        `${fileOf(r.kind, r.metadata.namespace, r.metadata.name)}: ${key}: ${e.path}: ${e.message}`,
      );
  }

  const { statuses } = compile(loaded.state);
  for (const s of statuses) {
    const key = objectKey(s.kind, s.namespace, s.name);
    if (invalid.has(key)) continue;
    // Accepted and ResolvedRefs often say the same thing (a rollout whose route is missing): once.
    const messages = new Set<string>();
    for (const c of s.status.conditions) {
      if (c.status !== 'False' || c.type === 'Programmed') continue;
      if (skipRefs && c.type === 'ResolvedRefs' && s.kind === 'ModelRoute') continue;
      for (const m of c.message.split('; ')) messages.add(m);
    }
    for (const m of messages) problems.push(`${fileOf(s.kind, s.namespace, s.name)}: ${key}: ${m}`);
  }
  return { problems, resources: custom.length };
}

export async function validateCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      file: { type: 'string', short: 'f', multiple: true },
      'skip-refs': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${validateHelp}\n`);
    return 0;
  }
  if (!values.file || values.file.length === 0) throw new UsageError('validate needs at least one -f PATH');
  const out = await validatePaths(values.file, values['skip-refs'] ?? false);
  for (const line of out.problems) process.stdout.write(`${line}\n`);
  if (out.problems.length > 0) {
    process.stderr.write(`${out.problems.length} problem(s) found\n`);
    return 1;
  }
  process.stderr.write(`${out.resources} resource(s) valid\n`);
  return 0;
}
