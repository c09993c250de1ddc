/**
 * What `standalone` and `proxy` share: the GatewayConfig file plus the flags that override it, and
 * the shutdown on SIGTERM/SIGINT that drains before exiting.
 */
import { parseDurationMs } from '../compiler/units.ts';
import { type GatewayConfig, parseGatewayConfig, parseHostPort } from '../config/gateway-config.ts';
import { loadConfigFile } from './config-file.ts';
import { UsageError } from './usage-error.ts';

export interface ServingFlags {
  config?: string;
  listen?: string;
  admin?: string;
  'drain-timeout'?: string;
  'otlp-endpoint'?: string;
}

export interface ServingSettings {
  config: GatewayConfig;
  listen: { address: string; port: number };
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
  const first = config.listeners[0]!;
  const listen = flags.listen ? parseHostPort(flags.listen) : { address: first.address, port: first.port };
  const admin = flags.admin ? parseHostPort(flags.admin) : config.admin;
  if (!listen) throw new UsageError(`--listen ${flags.listen}: expected HOST:PORT`);
  if (!admin) throw new UsageError(`--admin ${flags.admin}: expected HOST:PORT`);
  const drain = flags['drain-timeout'] ?? '30s';
  if (!/^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$/.test(drain)) {
    throw new UsageError(`--drain-timeout ${drain}: expected a duration like 30s`);
  }
  const tracing = { ...config.tracing };
  if (flags['otlp-endpoint']) tracing.otlpEndpoint = flags['otlp-endpoint'];
  return { config, listen, admin, drainMs: parseDurationMs(drain), tracing };
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
