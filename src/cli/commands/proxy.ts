/**
 * `modelgate proxy`: the data plane, fed by the controllers' push stream.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { parseByteSize } from '../../compiler/units.ts';
import { parseControllerAddress } from '../../dataplane/push/controller-address.ts';
import { startProxyRole } from '../../roles/proxy.ts';
import { resolveLogLevel, servingSettings, untilSignalled } from '../serving.ts';
import { UsageError } from '../usage-error.ts';

export const proxyHelp = `Usage: modelgate proxy --controller URL [--controller URL...] [options]

Runs the data plane: connects to every controller replica, applies routing tables from the
leader, and serves traffic. Without a reachable controller it serves the table it persisted last.

Options (environment variables in brackets):
  --controller URL       a controller replica (https://host:port or http://host:port), or
                         dns:NAME:PORT for a headless Service (every address it resolves to);
                         repeatable [MODELGATE_CONTROLLERS, comma-separated]. Without a scheme
                         (dns:NAME:PORT, host:PORT) it dials https when --push-ca is given, http
                         otherwise; dns:https://NAME:PORT and dns:http://NAME:PORT say it outright
  --push-token-file F    the push token, shared with the controllers [MODELGATE_PUSH_TOKEN_FILE]
  --push-ca FILE         PEM CA bundle the controllers' push certificate (--push-tls-cert) must
                         chain to: the push stream then uses https, and plaintext http controller
                         addresses are refused [MODELGATE_PUSH_CA_FILE]. Read at start: restart the
                         proxy after the CA changes. Without it, https addresses are verified
                         against the system CAs
  --push-ca-file FILE    the same as --push-ca
  --push-server-name N   the name the controllers' certificate must hold (default: the host of
                         each address; for dns:NAME:PORT, NAME, though the replicas are dialled
                         by IP). Certificates are always verified
  --proxy-id ID          this proxy's name in ACKs and status [POD_NAME; default: the host name]
  --state-dir DIR        where the last accepted table is kept [MODELGATE_STATE_DIR; default
                         from --config, ./.modelgate]
  --listen HOST:PORT     the HTTP listener (default 0.0.0.0:8080); replaces the first HTTP
                         listener of --config, whose other listeners start too
  --listen-https HOST:PORT
                         an HTTPS listener (HTTP/2 and HTTP/1.1 by ALPN) serving the routes'
                         certificates; replaces the first HTTPS listener of --config, or
                         adds one
  --tls-cert FILE        PEM certificate chain for every name without a route certificate,
                         with --tls-key FILE (its PEM key); reloaded when the files change
  --tls-key FILE         see --tls-cert
  --admin HOST:PORT      admin listener (default 127.0.0.1:9901; never the address of a
                         public listener)
  --config FILE          a GatewayConfig file; flags win
  --otlp-endpoint URL    export OpenTelemetry spans (off by default)
  --drain-timeout DUR    on SIGTERM, how long requests in flight may take (default 30s)
  --log-level LEVEL      trace, debug, info, warn, error, fatal or silent (default info)
                         [MODELGATE_LOG_LEVEL]. Access lines do not follow it (only silent
                         stops them): the routes' spec.accessLog decides them
  -h, --help             show this help`;

export async function proxyCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      controller: { type: 'string', multiple: true },
      'push-token-file': { type: 'string' },
      'push-ca': { type: 'string' },
      'push-ca-file': { type: 'string' },
      'push-server-name': { type: 'string' },
      'proxy-id': { type: 'string' },
      'state-dir': { type: 'string' },
      listen: { type: 'string' },
      'listen-https': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      admin: { type: 'string' },
      config: { type: 'string' },
      'otlp-endpoint': { type: 'string' },
      'drain-timeout': { type: 'string', default: '30s' },
      'log-level': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${proxyHelp}\n`);
    return 0;
  }
  const env = process.env;
  const logLevel = resolveLogLevel(values['log-level'], env);
  const push = pushSettings(values, env);
  const tokenFile = values['push-token-file'] ?? env.MODELGATE_PUSH_TOKEN_FILE;
  if (!tokenFile) throw new UsageError('proxy needs --push-token-file (or MODELGATE_PUSH_TOKEN_FILE)');
  // Read on every use: a rotated token in a mounted Secret is picked up without a restart.
  const token = () => readFileSync(tokenFile, 'utf8').trim();
  try {
    token();
  } catch (err) {
    // Not fatal: on a first install the controller creates the token Secret after proxies start
    // (mounted optional, the file appears later). The push client dials with backoff until then.
    process.stderr.write(
      `modelgate proxy: ${tokenFile} is not readable yet (${(err as Error).message}); retrying until it is\n`,
    );
  }
  const serving = await servingSettings(values);
  const role = await startProxyRole({
    proxyId: values['proxy-id'] ?? env.POD_NAME ?? hostname(),
    controllers: push.controllers,
    token,
    stateDir: values['state-dir'] ?? env.MODELGATE_STATE_DIR ?? serving.config.stateDir,
    listeners: serving.listeners,
    admin: serving.admin,
    trustedProxies: serving.config.trustedProxies.cidrs,
    ...(push.ca !== undefined ? { pushCa: push.ca } : {}),
    ...(push.serverName !== undefined ? { pushServerName: push.serverName } : {}),
    tracing: serving.tracing,
    cacheMaxBytes: parseByteSize(serving.config.cache.maxBytes),
    logLevel,
  });
  return untilSignalled((signal) => {
    role.proxy.logger.info({ signal }, 'shutting down');
    return role.shutdown(serving.drainMs);
  });
}

export interface PushSettings {
  controllers: string[];
  /** The CA bundle (PEM) of --push-ca. */
  ca?: string;
  serverName?: string;
}

/**
 * The push stream's flags: the controller addresses (checked against the scheme rules), the CA
 * (read now, and it must hold a certificate) and the server name. Errors are usage errors.
 */
export function pushSettings(
  values: {
    controller?: string[];
    'push-ca'?: string;
    'push-ca-file'?: string;
    'push-server-name'?: string;
  },
  env: Record<string, string | undefined> = {},
): PushSettings {
  const controllers = values.controller ?? env.MODELGATE_CONTROLLERS?.split(',').filter(Boolean) ?? [];
  if (controllers.length === 0)
    throw new UsageError('proxy needs at least one --controller (or MODELGATE_CONTROLLERS)');
  const flagged = values['push-ca'];
  const alias = values['push-ca-file'];
  if (flagged !== undefined && alias !== undefined && flagged !== alias)
    throw new UsageError('--push-ca and --push-ca-file name different files; give one');
  const caFile = flagged ?? alias ?? (env.MODELGATE_PUSH_CA_FILE || undefined);
  const ca = caFile !== undefined ? readCaBundle(caFile) : undefined;
  for (const c of controllers) {
    const a = parseControllerAddress(c, { tls: ca !== undefined });
    if (typeof a === 'string') throw new UsageError(`--controller ${a}`);
  }
  const serverName = values['push-server-name'];
  if (serverName !== undefined && !/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(serverName))
    throw new UsageError(`--push-server-name ${serverName}: expected a DNS name`);
  return {
    controllers,
    ...(ca !== undefined ? { ca } : {}),
    ...(serverName !== undefined ? { serverName } : {}),
  };
}

/** A PEM bundle with at least one certificate, each of which parses. */
function readCaBundle(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`--push-ca ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new UsageError(`--push-ca ${file}: no PEM certificate`);
  for (const b of blocks) {
    try {
      new X509Certificate(b);
    } catch (e) {
      throw new UsageError(`--push-ca ${file}: ${(e as Error).message}`);
    }
  }
  return text;
}
