/**
 * `modelgate proxy`: the data plane, fed by the controllers' push stream.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { parseDurationMs } from '../../compiler/units.ts';
import { parseGatewayConfig, parseHostPort } from '../../config/gateway-config.ts';
import { startProxyRole } from '../../roles/proxy.ts';
import { loadConfigFile } from '../config-file.ts';
import { UsageError } from '../usage-error.ts';

export const proxyHelp = `Usage: modelgate proxy --controller URL [--controller URL...] [options]

Runs the data plane: connects to every controller replica, applies routing tables from the
leader, and serves traffic. Without a reachable controller it serves the table it persisted last.

Options (environment variables in brackets):
  --controller URL       a controller replica (http://host:port), or dns:NAME:PORT for a headless
                         Service (every address it resolves to); repeatable [MODELGATE_CONTROLLERS,
                         comma-separated]
  --push-token-file F    the push token, shared with the controllers [MODELGATE_PUSH_TOKEN_FILE]
  --push-ca-file F       CA bundle for https controller URLs
  --proxy-id ID          this proxy's name in ACKs and status [POD_NAME; default: the host name]
  --state-dir DIR        where the last accepted table is kept [MODELGATE_STATE_DIR; default
                         from --config, ./.modelgate]
  --listen HOST:PORT     public listener (default 0.0.0.0:8080)
  --admin HOST:PORT      admin listener (default 127.0.0.1:9901)
  --config FILE          a GatewayConfig file; flags win
  --otlp-endpoint URL    export OpenTelemetry spans (off by default)
  --drain-timeout DUR    on SIGTERM, how long requests in flight may take (default 30s)
  -h, --help             show this help`;

export async function proxyCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      controller: { type: 'string', multiple: true },
      'push-token-file': { type: 'string' },
      'push-ca-file': { type: 'string' },
      'proxy-id': { type: 'string' },
      'state-dir': { type: 'string' },
      listen: { type: 'string' },
      admin: { type: 'string' },
      config: { type: 'string' },
      'otlp-endpoint': { type: 'string' },
      'drain-timeout': { type: 'string', default: '30s' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${proxyHelp}\n`);
    return 0;
  }
  const env = process.env;
  const controllers = values.controller ?? env.MODELGATE_CONTROLLERS?.split(',').filter(Boolean) ?? [];
  if (controllers.length === 0)
    throw new UsageError('proxy needs at least one --controller (or MODELGATE_CONTROLLERS)');
  const tokenFile = values['push-token-file'] ?? env.MODELGATE_PUSH_TOKEN_FILE;
  if (!tokenFile) throw new UsageError('proxy needs --push-token-file (or MODELGATE_PUSH_TOKEN_FILE)');
  // Read on every use: a rotated token in a mounted Secret is picked up without a restart.
  const token = () => readFileSync(tokenFile, 'utf8').trim();
  token();
  const parsed = parseGatewayConfig(values.config ? await loadConfigFile(values.config) : undefined);
  if (!parsed.ok)
    throw new UsageError(
      `${values.config}: ${parsed.errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`,
    );
  const config = parsed.config;
  const first = config.listeners[0]!;
  const listenAt = values.listen
    ? parseHostPort(values.listen)
    : { address: first.address, port: first.port };
  const adminAt = values.admin ? parseHostPort(values.admin) : config.admin;
  if (!listenAt) throw new UsageError(`--listen ${values.listen}: expected HOST:PORT`);
  if (!adminAt) throw new UsageError(`--admin ${values.admin}: expected HOST:PORT`);
  const drain = values['drain-timeout'] ?? '30s';
  if (!/^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$/.test(drain))
    throw new UsageError(`--drain-timeout ${drain}: expected a duration like 30s`);
  const tracing = { ...config.tracing };
  if (values['otlp-endpoint']) tracing.otlpEndpoint = values['otlp-endpoint'];

  const role = await startProxyRole({
    proxyId: values['proxy-id'] ?? env.POD_NAME ?? hostname(),
    controllers,
    token,
    stateDir: values['state-dir'] ?? env.MODELGATE_STATE_DIR ?? config.stateDir,
    listen: listenAt,
    admin: adminAt,
    pushCa: values['push-ca-file'] ? readFileSync(values['push-ca-file'], 'utf8') : undefined,
    tracing,
  });
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      role.proxy.logger.info({ signal }, 'shutting down');
      role.shutdown(parseDurationMs(drain)).then(
        () => resolve(0),
        () => resolve(1),
      );
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
  });
}
