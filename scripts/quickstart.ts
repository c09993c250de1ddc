/**
 * `npm start`: the quickstart on one machine. Two example model servers (v1 and v2, the backends
 * named in examples/quickstart/routes.yaml) and the standalone gateway in front of them, then the
 * curl lines to try. Ctrl-C stops it all.
 *
 * Flags: --host HOST (the gateway's listen and admin address; default 127.0.0.1).
 * Environment: MODEL_V1_PORT (8101), MODEL_V2_PORT (8102), GATEWAY_PORT (8080), ADMIN_PORT (9901),
 * TOKENS_PER_SECOND (20; the model servers' generation pace, so streaming is visible).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type ModelServer, startModelServer } from '../src/examples/model-server.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const EXAMPLE_DIR = 'examples/quickstart/';
/** The backend ports written in routes.yaml; other ports need a rewritten copy of it. */
const DEFAULT_V1 = 8101;
const DEFAULT_V2 = 8102;
/** How long the gateway gets to stop after Ctrl-C before it is killed. */
const STOP_GRACE_MS = 10_000;

const help = `Usage: npm start [-- --host HOST]

Starts two example model servers (v1 on 127.0.0.1:${DEFAULT_V1}, v2 on 127.0.0.1:${DEFAULT_V2}) and
'modelgate standalone -f ${EXAMPLE_DIR}' in front of them.

Options:
  --host HOST   address for the gateway's listener and admin server (default 127.0.0.1)
  -h, --help    show this help

Environment: MODEL_V1_PORT, MODEL_V2_PORT, GATEWAY_PORT (8080), ADMIN_PORT (9901),
TOKENS_PER_SECOND (20).`;

function fail(message: string): never {
  process.stderr.write(`quickstart: ${message}\n`);
  process.exit(1);
}

function port(env: string, fallback: number): number {
  const raw = process.env[env];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 65535) fail(`${env}=${raw} is not a port number`);
  return n;
}

/** host:port as a listen flag or URL authority wants it (IPv6 in brackets). */
const hostPort = (host: string, p: number) => `${host.includes(':') ? `[${host}]` : host}:${p}`;

/** What a user on this machine types to reach an address the gateway listens on. */
function reachable(host: string): string {
  return ['127.0.0.1', '::1', '0.0.0.0', '::', 'localhost'].includes(host) ? 'localhost' : host;
}

/** Whether something accepts TCP connections there (wildcard addresses are probed on loopback). */
function listening(host: string, p: number): Promise<boolean> {
  const target = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return new Promise((resolve) => {
    const socket = connect({ host: target, port: p });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * routes.yaml names the backends at 127.0.0.1:8101 and :8102. With other ports the gateway reads
 * a copy with the URLs rewritten; with the defaults it reads the example itself, so edits to it
 * are what the gateway sees.
 */
async function manifests(v1: number, v2: number): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  if (v1 === DEFAULT_V1 && v2 === DEFAULT_V2) return { dir: EXAMPLE_DIR, cleanup: async () => {} };
  const dir = await mkdtemp(path.join(os.tmpdir(), 'modelgate-quickstart-'));
  for (const file of await readdir(path.join(root, EXAMPLE_DIR))) {
    if (!/\.(ya?ml|json)$/.test(file)) continue;
    const text = await readFile(path.join(root, EXAMPLE_DIR, file), 'utf8');
    const rewritten = text
      .replaceAll(`127.0.0.1:${DEFAULT_V1}`, `127.0.0.1:${v1}`)
      .replaceAll(`127.0.0.1:${DEFAULT_V2}`, `127.0.0.1:${v2}`);
    await writeFile(path.join(dir, file), rewritten);
  }
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

async function startServer(
  label: string,
  env: string,
  p: number,
  tokensPerSecond: number,
): Promise<ModelServer> {
  try {
    return await startModelServer({ port: p, name: `model-${label}`, revision: label, tokensPerSecond });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EADDRINUSE')
      fail(`port ${p} (model ${label}) is in use; stop what holds it or set ${env}`);
    throw e;
  }
}

function tryLines(gateway: string, admin: string): string {
  const json = "-H 'content-type: application/json'";
  const hello = '{"model":"tiny-chat","messages":[{"role":"user","content":"hello gateway"}]}';
  const story =
    '{"model":"tiny-chat","stream":true,"stream_options":{"include_usage":true},' +
    '"messages":[{"role":"user","content":"tell me a story about a gateway that routes tokens"}]}';
  const tensor = '{"inputs":[{"name":"input0","shape":[2,2],"datatype":"FP32","data":[1,2,3,4]}]}';
  const hi = '{"model":"tiny-chat","messages":[{"role":"user","content":"hi"}]}';
  return `Try:
  # a chat completion (the reply says which revision wrote it)
  curl -s ${gateway}/v1/chat/completions ${json} \\
    -d '${hello}'

  # the same, streamed token by token as Server-Sent Events
  curl -sN ${gateway}/v1/chat/completions ${json} \\
    -d '${story}'

  # KServe v2 inference, always served by v1: output0 is the input doubled
  curl -s ${gateway}/v2/models/tiny-chat/infer ${json} \\
    -d '${tensor}'

  # the gateway's metrics
  curl -s ${admin}/metrics | head

  # the 90/10 split: which revision answered 20 requests
  # (the quickstart rate limit allows bursts of 20 per client; wait a little between runs)
  for i in $(seq 20); do curl -s -o /dev/null -D - ${gateway}/v1/chat/completions ${json} \\
    -d '${hi}' | grep -i '^x-model-revision' | tr -d '\\r'; done | sort | uniq -c
`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${help}\n`);
    return;
  }
  const host = values.host;
  const v1Port = port('MODEL_V1_PORT', DEFAULT_V1);
  const v2Port = port('MODEL_V2_PORT', DEFAULT_V2);
  const gatewayPort = port('GATEWAY_PORT', 8080);
  const adminPort = port('ADMIN_PORT', 9901);
  const tps = Number(process.env.TOKENS_PER_SECOND ?? 20);
  if (!(tps >= 0) || !Number.isFinite(tps))
    fail(`TOKENS_PER_SECOND=${process.env.TOKENS_PER_SECOND} is not a number >= 0`);

  // Something already there (often an earlier quickstart) would answer our readiness probe.
  for (const [p, env] of [
    [gatewayPort, 'GATEWAY_PORT'],
    [adminPort, 'ADMIN_PORT'],
  ] as const) {
    if (await listening(host, p))
      fail(`something already listens on ${hostPort(host, p)}; stop it or set ${env}`);
  }

  const servers: ModelServer[] = [];
  servers.push(await startServer('v1', 'MODEL_V1_PORT', v1Port, tps));
  servers.push(await startServer('v2', 'MODEL_V2_PORT', v2Port, tps));
  const files = await manifests(v1Port, v2Port);

  const args = [
    'src/cli/main.ts',
    'standalone',
    '-f',
    files.dir,
    '--listen',
    hostPort(host, gatewayPort),
    '--admin',
    hostPort(host, adminPort),
  ];
  process.stdout.write(`quickstart: model servers v1 ${servers[0]!.url} and v2 ${servers[1]!.url}\n`);
  process.stdout.write(`quickstart: starting the gateway: node ${args.join(' ')}\n`);
  // Its own process group: Ctrl-C in the terminal then reaches only this script, which passes it
  // on exactly once (a second copy straight from the terminal could cut a graceful stop short).
  const child: ChildProcess = spawn(process.execPath, args, { cwd: root, stdio: 'inherit', detached: true });

  let ready = false;
  let killed = false;
  let killTimer: NodeJS.Timeout | undefined;
  let stopping = false;
  let exited = false;
  let shutdown: Promise<void> | undefined;
  const cleanup = () => {
    shutdown ??= Promise.all([...servers.map((s) => s.close()), files.cleanup()]).then(() => {});
    return shutdown;
  };

  const exit = new Promise<number>((resolve) => {
    child.once('error', (e) => {
      exited = true;
      process.stderr.write(`quickstart: could not start the gateway: ${e.message}\n`);
      resolve(1);
    });
    child.once('exit', (code, signal) => {
      exited = true;
      if (!ready && !stopping) {
        const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
        const hint = existsSync(path.join(root, 'src/cli/commands/standalone.ts'))
          ? 'Its output above says why.'
          : "This checkout has no standalone gateway yet (src/cli/commands/standalone.ts): 'modelgate standalone' arrives with the proxy.";
        process.stderr.write(
          `\nquickstart: the gateway ${how} before listening on ${hostPort(host, gatewayPort)}.\n`,
        );
        process.stderr.write(`quickstart: ${hint}\n`);
        resolve(1);
        return;
      }
      if (!stopping)
        process.stderr.write(
          `quickstart: the gateway ${signal ? `stopped (${signal})` : `exited (${code})`}\n`,
        );
      // After Ctrl-C a clean stop is success, whether the gateway exits 0 or by the signal passed on.
      resolve(stopping && !killed && (code === 0 || signal !== null) ? 0 : (code ?? 1));
    });
  });

  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return; // npm and the terminal may both deliver the same Ctrl-C
    stopping = true;
    if (exited) return;
    process.stderr.write(`\nquickstart: stopping (${signal})\n`);
    child.kill(signal === 'SIGHUP' ? 'SIGTERM' : signal);
    killTimer = setTimeout(() => {
      process.stderr.write(
        `quickstart: the gateway did not stop within ${STOP_GRACE_MS / 1000}s; killing it\n`,
      );
      killed = true;
      child.kill('SIGKILL');
    }, STOP_GRACE_MS);
  };
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, onSignal);
  // Being in its own process group, the gateway would outlive us if we crashed.
  process.once('exit', () => {
    if (!exited) child.kill('SIGKILL');
  });

  // Readiness: the gateway's port accepts connections. Polled until it does or the child exits.
  void (async () => {
    const started = Date.now();
    let warned = false;
    while (!exited && !stopping) {
      if (await listening(host, gatewayPort)) {
        if (exited || stopping) return;
        ready = true;
        const gateway = hostPort(reachable(host), gatewayPort);
        const admin = hostPort(reachable(host), adminPort);
        process.stdout.write(
          `\nModelGate quickstart is up.
  gateway    http://${gateway}   (admin http://${admin})
  model v1   ${servers[0]!.url}   stable: 90% of tiny-chat, and all of KServe
  model v2   ${servers[1]!.url}   canary: 10% of tiny-chat
  routes     ${path.join(EXAMPLE_DIR, 'routes.yaml')}${files.dir === EXAMPLE_DIR ? '' : ` (ports rewritten in ${files.dir})`}

${tryLines(gateway, admin)}
Ctrl-C stops the gateway and both model servers.
`,
        );
        return;
      }
      if (!warned && Date.now() - started > 15_000) {
        warned = true;
        process.stderr.write(
          `quickstart: still waiting for the gateway on ${hostPort(host, gatewayPort)}...\n`,
        );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  })();

  const code = await exit;
  clearTimeout(killTimer);
  await cleanup();
  process.exitCode = code;
  // Nothing else should keep the loop alive, but the signal listeners would; drop them.
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(s, onSignal);
}

main().catch((e: unknown) => fail((e as Error).stack ?? String(e)));
