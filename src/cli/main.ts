#!/usr/bin/env node
/**
 * The `modelgate` binary: one entry point, one subcommand per role or tool.
 */
// First: V8's linear-time regexp fallback for every regexp built after it (route-regex.ts).
import '../routing-table/route-regex.ts';
import { readFileSync } from 'node:fs';
import { compileCommand } from './commands/compile.ts';
import { controllerCommand } from './commands/controller.ts';
import { proxyCommand } from './commands/proxy.ts';
import { rolloutCommand } from './commands/rollout.ts';
import { standaloneCommand } from './commands/standalone.ts';
import { statusCommand } from './commands/status.ts';
import { validateCommand } from './commands/validate.ts';
import { UsageError } from './usage-error.ts';

type Command = { summary: string; run: (argv: string[]) => Promise<number> };

const COMMANDS: Record<string, Command> = {
  standalone: { summary: 'run the gateway from YAML files, no cluster needed', run: standaloneCommand },
  controller: { summary: 'watch the cluster, push tables to proxies, write status', run: controllerCommand },
  proxy: { summary: 'run the data plane, fed by the controllers', run: proxyCommand },
  validate: { summary: 'check manifests: schema, CEL rules, semantics, references', run: validateCommand },
  compile: { summary: 'print the routing table and statuses compiled from manifests', run: compileCommand },
  rollout: { summary: 'steer a CanaryRollout: status, pause, resume, promote, abort', run: rolloutCommand },
  status: { summary: "ask a controller: proxies in sync, routes' conditions, rollouts", run: statusCommand },
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

function help(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `ModelGate ${version()}: a Kubernetes-native API gateway for model serving.

Usage: modelgate <command> [options]

Commands:
${lines.join('\n')}

Run 'modelgate <command> --help' for a command's options.`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${help()}\n`);
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === 'version') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`modelgate: unknown command '${name}'\n\n${help()}\n`);
    return 2;
  }
  try {
    return await command.run(rest);
  } catch (e) {
    const err = e as Error & { code?: string };
    if (e instanceof UsageError || err.code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`modelgate ${name}: ${err.message}\nRun 'modelgate ${name} --help' for usage.\n`);
      return 2;
    }
    throw e;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`modelgate: ${(e as Error).stack ?? String(e)}\n`);
    process.exitCode = 1;
  },
);
