/**
 * `modelgate standalone -f DIR`: the whole gateway in one process, from YAML files.
 */
import { parseArgs } from 'node:util';
import { parseDurationMs } from '../../compiler/units.ts';
import { parseGatewayConfig, parseHostPort } from '../../config/gateway-config.ts';
import { startStandalone } from '../../roles/standalone.ts';
import { loadConfigFile } from '../config-file.ts';
import { UsageError } from '../usage-error.ts';

export const standaloneHelp = `Usage: modelgate standalone -f PATH [-f PATH...] [--listen HOST:PORT] [--admin HOST:PORT] [--config FILE]

Runs the gateway in one process: reads ModelRoute, RateLimitPolicy, CanaryRollout, Service,
EndpointSlice and Secret manifests from files or folders, compiles them, and serves traffic.
Edits hot-reload; an edit that breaks a resource keeps its last good version and is logged.

Options:
  -f, --file PATH       a YAML/JSON file or a folder (recursive); repeatable
  --listen HOST:PORT    public listener (default 0.0.0.0:8080; [::]:8080 for IPv6)
  --admin HOST:PORT     admin listener: /healthz /readyz /config /config/dump /status /metrics
                        (default 127.0.0.1:9901)
  --config FILE         a GatewayConfig file (listeners, TLS, trusted proxies); flags win
  --otlp-endpoint URL   export OpenTelemetry spans to this OTLP/HTTP collector (off by default)
  --drain-timeout DUR   on SIGTERM/SIGINT, how long in-flight requests and streams may take
                        to finish before they are cut (default 30s)
  -h, --help            show this help`;

export async function standaloneCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      file: { type: 'string', short: 'f', multiple: true },
      listen: { type: 'string' },
      admin: { type: 'string' },
      config: { type: 'string' },
      'drain-timeout': { type: 'string', default: '30s' },
      'otlp-endpoint': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${standaloneHelp}\n`);
    return 0;
  }
  if (!values.file || values.file.length === 0) throw new UsageError('standalone needs at least one -f PATH');
  const parsed = parseGatewayConfig(values.config ? await loadConfigFile(values.config) : undefined);
  if (!parsed.ok) {
    throw new UsageError(
      `${values.config}: ${parsed.errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`,
    );
  }
  const config = parsed.config;
  const first = config.listeners[0]!;
  const listenAt = values.listen
    ? parseHostPort(values.listen)
    : { address: first.address, port: first.port };
  const adminAt = values.admin ? parseHostPort(values.admin) : config.admin;
  if (!listenAt) throw new UsageError(`--listen ${values.listen}: expected HOST:PORT`);
  if (!adminAt) throw new UsageError(`--admin ${values.admin}: expected HOST:PORT`);

  const drainText = values['drain-timeout'] ?? '30s';
  if (!/^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$/.test(drainText))
    throw new UsageError(`--drain-timeout ${drainText}: expected a duration like 30s`);
  const drainMs = parseDurationMs(drainText);

  const tracing = { ...config.tracing };
  if (values['otlp-endpoint']) tracing.otlpEndpoint = values['otlp-endpoint'];
  const gateway = await startStandalone({ paths: values.file, listen: listenAt, admin: adminAt, tracing });
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      gateway.proxy.logger.info({ signal }, 'shutting down');
      gateway.shutdown(drainMs).then(
        () => resolve(0),
        () => resolve(1),
      );
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
  });
}
