/**
 * What `standalone` and `proxy` share: the GatewayConfig file plus the flags that override it, and
 * the shutdown on SIGTERM/SIGINT that drains before exiting. The log level is shared by every
 * serving command, `controller` included.
 */
import { parseDurationMs } from '../compiler/units.ts';
import {
  applyListenerOverrides,
  bindConflicts,
  type GatewayConfig,
  type Listener,
  parseGatewayConfig,
  parseHostPort,
} from '../config/gateway-config.ts';
import { DEFAULT_LOG_LEVEL, isLogLevel, LOG_LEVELS, type LogLevel } from '../observability/logger.ts';
import { loadConfigFile } from './config-file.ts';
import { UsageError } from './usage-error.ts';

export interface ServingFlags {
  config?: string;
  listen?: string;
  'listen-https'?: string;
  'tls-cert'?: string;
  'tls-key'?: string;
  admin?: string;
  'drain-timeout'?: string;
  'otlp-endpoint'?: string;
}

export interface ServingSettings {
  config: GatewayConfig;
  /** Every public listener, the flags applied. */
  listeners: Listener[];
  admin: { address: string; port: number };
  drainMs: number;
  tracing: GatewayConfig['tracing'];
}

export async function servingSettings(flags: ServingFlags): Promise<ServingSettings> {
  const parsed = parseGatewayConfig(flags.config ? await loadConfigFile(flags.config) : undefined);
  if (!parsed.ok) {
    throw new UsageError(
      `${flags.config}: ${parsed.errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`,
    );
  }
  const config = parsed.config;
  const listen = flags.listen !== undefined ? parseHostPort(flags.listen) : undefined;
  const listenHttps = flags['listen-https'] !== undefined ? parseHostPort(flags['listen-https']) : undefined;
  const admin = flags.admin ? parseHostPort(flags.admin) : config.admin;
  if (flags.listen !== undefined && !listen)
    throw new UsageError(`--listen ${flags.listen}: expected HOST:PORT`);
  if (flags['listen-https'] !== undefined && !listenHttps)
    throw new UsageError(`--listen-https ${flags['listen-https']}: expected HOST:PORT`);
  if (!admin) throw new UsageError(`--admin ${flags.admin}: expected HOST:PORT`);
  const certFile = flags['tls-cert'];
  const keyFile = flags['tls-key'];
  if ((certFile === undefined) !== (keyFile === undefined))
    throw new UsageError('--tls-cert and --tls-key go together');
  const overridden = applyListenerOverrides(config.listeners, {
    listen,
    listenHttps,
    certificate: certFile !== undefined && keyFile !== undefined ? { certFile, keyFile } : undefined,
  });
  if (!overridden.ok) throw new UsageError(overridden.error);
  const listeners = overridden.listeners;
  const conflicts = bindConflicts(listeners, admin);
  if (conflicts.length > 0) throw new UsageError(conflicts.join('; '));
  const drain = flags['drain-timeout'] ?? '30s';
  if (!/^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$/.test(drain)) {
    throw new UsageError(`--drain-timeout ${drain}: expected a duration like 30s`);
  }
  const tracing = { ...config.tracing };
  if (flags['otlp-endpoint']) tracing.otlpEndpoint = flags['otlp-endpoint'];
  return { config, listeners, admin, drainMs: parseDurationMs(drain), tracing };
}

/**
 * The level of the operational log: `--log-level`, else MODELGATE_LOG_LEVEL (empty counts as
 * unset), else info. Case does not matter (`DEBUG` is `debug`). Anything else is a usage error
 * naming the levels, so a typo in a Deployment fails at start instead of logging at a level
 * nobody asked for.
 */
export function resolveLogLevel(
  flag: string | undefined,
  env: Record<string, string | undefined> = process.env,
): LogLevel {
  const fromEnv = env.MODELGATE_LOG_LEVEL || undefined;
  const text = flag ?? fromEnv;
  if (text === undefined) return DEFAULT_LOG_LEVEL;
  const level = text.trim().toLowerCase();
  if (isLogLevel(level)) return level;
  const source = flag !== undefined ? `--log-level ${flag.trim() || '""'}` : `MODELGATE_LOG_LEVEL=${fromEnv}`;
  throw new UsageError(`${source}: expected one of ${LOG_LEVELS.join(', ')}`);
}

/** Resolves with the exit code once a signal has stopped the server (draining first). */
export function untilSignalled(shutdown: (signal: string) => Promise<unknown>): Promise<number> {
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      shutdown(signal).then(
        () => resolve(0),
        () => resolve(1),
      );
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
  });
}
