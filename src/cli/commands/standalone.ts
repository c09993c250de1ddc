/**
 * `modelgate standalone -f DIR`: the whole gateway in one process, from YAML files.
 */
import { parseArgs } from 'node:util';
import { parseByteSize } from '../../compiler/units.ts';
import { startStandalone } from '../../roles/standalone.ts';
import { resolveLogLevel, servingSettings, untilSignalled } from '../serving.ts';
import { UsageError } from '../usage-error.ts';

export const standaloneHelp = `Usage: modelgate standalone -f PATH [-f PATH...] [--listen HOST:PORT] [--listen-https HOST:PORT
                            --tls-cert FILE --tls-key FILE] [--admin HOST:PORT] [--config FILE]

Runs the gateway in one process: reads ModelRoute, RateLimitPolicy, CanaryRollout, Service,
EndpointSlice and Secret manifests from files or folders, compiles them, and serves traffic.
Edits hot-reload; an edit that breaks a resource keeps its last good version and is logged.

Options:
  -f, --file PATH       a YAML/JSON file or a folder (recursive); repeatable
  --listen HOST:PORT    the HTTP listener (default 0.0.0.0:8080; [::]:8080 for IPv6); replaces
                        the first HTTP listener of --config, whose other listeners start too
  --listen-https HOST:PORT
                        an HTTPS listener (HTTP/2 and HTTP/1.1 by ALPN) serving the routes'
                        certificates; replaces the first HTTPS listener of --config, or adds one
  --tls-cert FILE       PEM certificate chain served for every name without a route
                        certificate, with --tls-key FILE (its PEM key); reloaded when the
                        files change
  --tls-key FILE        see --tls-cert
  --admin HOST:PORT     admin listener: /healthz /readyz /config /config/dump /status /metrics
                        (default 127.0.0.1:9901; never the address of a public listener)
  --config FILE         a GatewayConfig file (listeners, TLS, trusted proxies); flags win
  --state-dir DIR       where CanaryRollout progress is kept (rollouts.json), so a restart
                        resumes each rollout where it was [MODELGATE_STATE_DIR; default
                        GatewayConfig stateDir, ./.modelgate]
  --otlp-endpoint URL   export OpenTelemetry spans to this OTLP/HTTP collector (off by default)
  --drain-timeout DUR   on SIGTERM/SIGINT, how long in-flight requests and streams may take
                        to finish before they are cut (default 30s)
  --log-level LEVEL     trace, debug, info, warn, error, fatal or silent (default info)
                        [MODELGATE_LOG_LEVEL]. Access lines do not follow it (only silent
                        stops them): the routes' spec.accessLog decides them
  -h, --help            show this help`;

export async function standaloneCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      file: { type: 'string', short: 'f', multiple: true },
      listen: { type: 'string' },
      'listen-https': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      admin: { type: 'string' },
      config: { type: 'string' },
      'drain-timeout': { type: 'string', default: '30s' },
      'otlp-endpoint': { type: 'string' },
      'state-dir': { type: 'string' },
      'log-level': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${standaloneHelp}\n`);
    return 0;
  }
  const logLevel = resolveLogLevel(values['log-level']);
  if (!values.file || values.file.length === 0) throw new UsageError('standalone needs at least one -f PATH');
  const serving = await servingSettings(values);
  const gateway = await startStandalone({
    paths: values.file,
    listeners: serving.listeners,
    admin: serving.admin,
    trustedProxies: serving.config.trustedProxies.cidrs,
    tracing: serving.tracing,
    cacheMaxBytes: parseByteSize(serving.config.cache.maxBytes),
    stateDir: values['state-dir'] ?? process.env.MODELGATE_STATE_DIR ?? serving.config.stateDir,
    logLevel,
  });
  return untilSignalled((signal) => {
    gateway.proxy.logger.info({ signal }, 'shutting down');
    return gateway.shutdown(serving.drainMs);
  });
}
