/**
 * `modelgate compile -f PATH [-o json|yaml]`: prints the routing table and statuses the gateway
 * would run with, secrets redacted (the equivalent of Envoy Gateway's `egctl x translate`).
 */
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { compile } from '../../compiler/compile.ts';
import { redact } from '../../routing-table/redact.ts';
import { loadFiles } from '../../sources/files/index.ts';
import { UsageError } from '../usage-error.ts';

export const compileHelp = `Usage: modelgate compile -f PATH [-f PATH...] [-o json|yaml]

Compiles ModelGate manifests into the routing table the proxies would run, and prints it with
every resource's status. Credentials are redacted. Loading problems go to stderr.

Options:
  -f, --file PATH      a YAML/JSON file or a folder (recursive); repeatable
  -o, --output FORMAT  json (default) or yaml
  -h, --help           show this help`;

export async function compileCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      file: { type: 'string', short: 'f', multiple: true },
      output: { type: 'string', short: 'o', default: 'json' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${compileHelp}\n`);
    return 0;
  }
  if (!values.file || values.file.length === 0) throw new UsageError('compile needs at least one -f PATH');
  if (values.output !== 'json' && values.output !== 'yaml') throw new UsageError('-o must be json or yaml');
  const loaded = await loadFiles(values.file);
  for (const p of loaded.problems) {
    process.stderr.write(
      `${p.line !== undefined ? `${p.file}:${p.line}` : p.file}: ${p.key ? `${p.key}: ` : ''}${p.message}\n`,
    );
  }
  const result = redact(compile(loaded.state));
  process.stdout.write(values.output === 'yaml' ? stringify(result) : `${JSON.stringify(result, null, 2)}\n`);
  return 0;
}
