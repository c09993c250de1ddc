/**
 * The proxy role: the data plane fed by the controllers' push stream. It connects to every
 * controller replica, applies tables from the leader, and keeps serving its last table when no
 * controller answers (including right after a restart: the table persisted on disk).
 */
import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import { type Listener as ListenerConfig, publicListeners } from '../config/gateway-config.ts';
import { listenAdmin } from '../dataplane/admin.ts';
import { GatewayProxy } from '../dataplane/proxy.ts';
import { type ControllerTarget, controllerTargets } from '../dataplane/push/controller-address.ts';
import { PushClient } from '../dataplane/push-client.ts';
import {
  drainAll,
  type Listener,
  type ListenOptions,
  listenAll,
  listenOptionsFor,
} from '../dataplane/server.ts';
import { createLogger, type LogLevel } from '../observability/logger.ts';
import { CallbackFamily } from '../observability/metric-families.ts';
import { createTracer } from '../observability/tracing.ts';

export interface ProxyRoleOptions {
  proxyId: string;
  /**
   * Controller base URLs, or `dns:NAME:PORT` for a headless Service (every A/AAAA record); the
   * forms are in src/dataplane/push/controller-address.ts.
   */
  controllers: string[];
  token: () => string;
  stateDir: string;
  /** Every public listener (GatewayConfig `listeners`). */
  listeners?: ListenerConfig[];
  /** An HTTP listener's address: replaces the first HTTP listener of `listeners` (or adds one). */
  listen?: { address: string; port: number };
  admin: { address: string; port: number };
  /** Peers whose x-forwarded-for is believed (GatewayConfig `trustedProxies.cidrs`). */
  trustedProxies?: readonly string[];
  /** Limits and timeouts of every public listener (defaults in server.ts; tests shorten them). */
  listenerLimits?: Partial<ListenOptions>;
  /**
   * CA bundle (PEM) the controllers' push certificate must chain to. With it, addresses without a
   * scheme (`dns:NAME:PORT`, `HOST:PORT`) dial https, and plaintext ones are refused.
   */
  pushCa?: string;
  /** The name the controllers' certificate is checked against (default: each address's name). */
  pushServerName?: string;
  /** Addresses of a `dns:` name (default: its A and AAAA records); tests point it at 127.0.0.1. */
  lookup?: (name: string) => Promise<string[]>;
  /** How often rollout counters go to the controllers (default 5 s; tests shorten it). */
  reportIntervalMs?: number;
  logger?: Logger;
  /** The level of the logger made when `logger` is not given (default info). */
  logLevel?: LogLevel;
  tracing?: { otlpEndpoint?: string; sampleRatio: number; serviceName: string };
  /** The local response cache's budget in bytes (GatewayConfig cache.maxBytes). */
  cacheMaxBytes?: number;
}

export interface ProxyRole {
  readonly proxy: GatewayProxy;
  readonly push: PushClient;
  /** The first public listener. */
  readonly listener: Listener;
  readonly listeners: readonly Listener[];
  readonly adminUrl: string;
  shutdown(drainTimeoutMs: number): Promise<{ forced: boolean }>;
}

/**
 * Expands `dns:name:port` entries to one target per address (a headless Service lists every pod),
 * each https one verified against the Service name. Throws on an address it cannot use.
 */
export function controllerResolver(
  entries: readonly string[],
  opts: { tls?: boolean; serverName?: string; lookup?: (name: string) => Promise<string[]> } = {},
): () => Promise<ControllerTarget[]> {
  return controllerTargets(entries, opts);
}

export async function startProxyRole(opts: ProxyRoleOptions): Promise<ProxyRole> {
  const specs = publicListeners(opts.listeners, opts.listen, opts.admin);
  // Before anything starts: an unusable controller address fails here.
  const controllers = controllerResolver(opts.controllers, {
    tls: opts.pushCa !== undefined,
    ...(opts.pushServerName !== undefined ? { serverName: opts.pushServerName } : {}),
    ...(opts.lookup ? { lookup: opts.lookup } : {}),
  });
  // Test-only hook: while the file named by MODELGATE_TEST_REFUSE_TABLES_FILE exists, this proxy
  // refuses (NACKs) every table, so multi-process tests can force a NACK through the real CLI
  // (test/integration/controller/multi-process.test.ts). Unset in production: no effect.
  const refuseForTest = process.env.MODELGATE_TEST_REFUSE_TABLES_FILE || undefined;
  const { logger, flush } = opts.logger
    ? { logger: opts.logger, flush: () => {} }
    : createLogger({ level: opts.logLevel });
  const tracer = createTracer({
    endpoint: opts.tracing?.otlpEndpoint,
    sampleRatio: opts.tracing?.sampleRatio,
    serviceName: opts.tracing?.serviceName,
  });
  const proxy = new GatewayProxy({
    logger,
    tracer,
    trustedProxies: opts.trustedProxies,
    ...(opts.cacheMaxBytes !== undefined ? { cacheMaxBytes: opts.cacheMaxBytes } : {}),
  });
  const push = new PushClient({
    proxyId: opts.proxyId,
    controllers,
    token: opts.token,
    apply: (table, version) =>
      refuseForTest !== undefined && existsSync(refuseForTest)
        ? { ok: false, reason: 'refused for a test' }
        : proxy.apply(table, version),
    stateDir: opts.stateDir,
    logger,
    ca: opts.pushCa,
    // Counters of rollout-governed backends (the leader judges canaries on them) and the endpoints
    // this proxy took out of service (every replica's status API shows them). Sent every interval,
    // even with nothing governed, so a recovered endpoint is seen as recovered.
    stats: () => ({
      ...(proxy.rolloutStats.report(opts.proxyId) ?? {
        proxy: opts.proxyId,
        epoch: proxy.rolloutStats.epoch,
        backends: [],
      }),
      endpointsDown: proxy.health.downEndpoints(),
    }),
    ...(opts.reportIntervalMs !== undefined ? { reportIntervalMs: opts.reportIntervalMs } : {}),
  });
  push.on('connected', (c) =>
    logger.info({ controller: c.controller, url: c.url, leader: c.leader }, 'controller connected'),
  );
  push.on('disconnected', (d) => logger.warn({ url: d.url, reason: d.reason }, 'controller stream lost'));
  // Local limits with splitAcrossProxies divide their amounts by this.
  push.on('peers', (p) => {
    proxy.proxyCount = p.proxies;
    logger.info({ proxies: p.proxies }, 'proxies sharing the traffic');
  });
  proxy.metrics.registerCallback(
    new CallbackFamily(
      'modelgate_proxy_table_source',
      'Where the table in use came from (value 1).',
      'gauge',
      () => [[{ source: push.status().source }, 1]],
    ),
  );
  proxy.metrics.registerCallback(
    new CallbackFamily(
      'modelgate_proxy_controllers_connected',
      'Controller replicas with an open push stream.',
      'gauge',
      () => [[{}, push.status().connected]],
    ),
  );

  // Serve the last table at once if there is one; the controllers' table replaces it when it comes.
  const persisted = await push.loadPersisted();
  if (persisted.ok)
    logger.info({ version: persisted.version }, 'serving the persisted table until a controller answers');
  push.start();

  let listeners: Listener[] = [];
  let admin: Awaited<ReturnType<typeof listenAdmin>>;
  try {
    listeners = await listenAll(
      proxy,
      specs.map((l) => listenOptionsFor(l, opts.listenerLimits)),
    );
    // Readiness is served once every public listener is up.
    admin = await listenAdmin(proxy, {
      ...opts.admin,
      status: () => push.status(),
      readyDetails: () => ({ source: push.status().source }),
    });
  } catch (e) {
    await Promise.all(listeners.map((l) => l.close()));
    await push.close();
    await proxy.close();
    flush();
    throw e;
  }
  logger.info(
    {
      listen: listeners[0]!.url,
      listeners: listeners.map((l) => l.url),
      admin: admin.url,
      controllers: opts.controllers,
    },
    'modelgate proxy is serving',
  );
  return {
    proxy,
    push,
    listener: listeners[0]!,
    listeners,
    adminUrl: admin.url,
    shutdown: async (drainTimeoutMs) => {
      proxy.draining = true;
      const result = await drainAll(listeners, drainTimeoutMs);
      await push.close();
      await admin.app.close();
      await proxy.close();
      flush();
      return result;
    },
  };
}
