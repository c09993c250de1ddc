/**
 * The proxy's hot path: node:http in, undici's raw `dispatch` out.
 *
 * Why this shape (figures in the README, from bench/proxy.ts): a request through fastify +
 * http-proxy-3 costs about 3× the CPU of node:http + undici `dispatch` with a handler that writes
 * straight into the client response; undici's higher-level `request()` adds a stream and promise
 * per request on top. So the public listener is a bare node:http server, each upstream endpoint has
 * an undici keep-alive Pool, and each request allocates one Exchange that is both its state and the
 * dispatch handler. fastify serves the admin API, where convenience matters more than microseconds.
 *
 * The table in use is one reference (`current`): a request takes it once at the start and keeps
 * it to the end, so it sees the old table or the new one, never a mix.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { AccessLog } from '../observability/access-log.ts';
import { createLogger } from '../observability/logger.ts';
import { CallbackFamily } from '../observability/metric-families.ts';
import { ProxyMetrics } from '../observability/proxy-metrics.ts';
import { NOOP_TRACER, type Tracer } from '../observability/tracing.ts';
import { unknownFeatures } from '../routing-table/features.ts';
import { type CompiledRule, type RoutingTable, TABLE_SCHEMA_VERSION } from '../routing-table/types.ts';
import { AuthFilterFactory } from './auth/auth-filter.ts';
import type { IntrospectionRequest } from './auth/introspection.ts';
import { JwksRegistry } from './auth/jwks-cache.ts';
import type { Clock, EndpointState, Random } from './balancers/index.ts';
import { CacheFilterFactory } from './cache/cache-filter.ts';
import { RolloutStats } from './canary/rollout-stats.ts';
import { EndpointRegistry } from './endpoint-registry.ts';
import { type ErrorDefinition, type ErrorFields, sendError } from './errors.ts';
import { Exchange } from './exchange.ts';
import type { FilterFactory } from './filters/filter.ts';
import { isGrpc, sendGrpcError } from './grpc.ts';
import { EndpointHealth } from './health/endpoint-health.ts';
import { RateLimitFilterFactory } from './ratelimit/rate-limit-filter.ts';
import { TrustedProxies } from './request/client-address.ts';
import { type RuntimeBackend, type RuntimeRule, RuntimeTable } from './runtime-table.ts';
import { TransformFilterFactory } from './transform/transform-filter.ts';
import { handleUpgrade } from './upgrade.ts';
import { PoolRegistry } from './upstream/pools.ts';
import { ValidationFilterFactory } from './validation/validation-filter.ts';

export interface ProxyOptions {
  metrics?: ProxyMetrics;
  logger?: Logger;
  accessLog?: AccessLog;
  /** Filter factories, in the order their filters run. */
  filters?: readonly FilterFactory[];
  random?: Random;
  /** Monotonic milliseconds. */
  now?: Clock;
  /** Scheme of the listener, for x-forwarded-proto. */
  proto?: 'http' | 'https';
  /** Endpoint health (tests inject one with fake timers and probes). */
  health?: EndpointHealth;
  /** OpenTelemetry spans for the proxy hop; off (a no-op) unless an OTLP endpoint is configured. */
  tracer?: Tracer;
  /** Peers (IPs or CIDRs) whose x-forwarded-for is believed; default none. */
  trustedProxies?: readonly string[];
  /** Wall clock in ms for token expiry (tests inject one). Default Date.now. */
  wallClock?: () => number;
  /** JWKS key cache (tests inject one with a fake clock or fetch). */
  jwks?: JwksRegistry;
  /** Introspection transport (tests). */
  introspectionRequest?: IntrospectionRequest;
  /** The local response cache's budget in bytes (GatewayConfig cache.maxBytes); default 256 MiB. */
  cacheMaxBytes?: number;
}

export type ApplyResult = { ok: true } | { ok: false; reason: string };

export class GatewayProxy {
  readonly metrics: ProxyMetrics;
  readonly logger: Logger;
  readonly endpoints = new EndpointRegistry();
  /** Active health checks and outlier ejection; shared by all tables, like endpoint state. */
  readonly health: EndpointHealth;
  readonly tracer: Tracer;
  readonly pools = new PoolRegistry();
  private readonly accessLog: AccessLog;
  private readonly filters: readonly FilterFactory[];
  readonly random: Random;
  readonly now: Clock;
  readonly proto: 'http' | 'https';
  readonly trustedProxies: TrustedProxies;
  /** Signing keys of JWT providers, shared by all tables. */
  readonly jwks: JwksRegistry;
  private current: RuntimeTable | undefined;
  /** Increments on every applied table; tests and the admin API wait on it. */
  sequence = 0;
  /** Set when shutting down: readiness fails first so load balancers stop sending traffic. */
  draining = false;
  /** Proxies sharing the traffic, as the controller last said (Local limits may be split by it). */
  proxyCount = 1;
  /** Counters of the backends CanaryRollouts govern, reported to the controllers for analysis. */
  readonly rolloutStats = new RolloutStats();

  constructor(opts: ProxyOptions = {}) {
    this.metrics = opts.metrics ?? new ProxyMetrics();
    this.logger = opts.logger ?? createLogger().logger;
    this.random = opts.random ?? Math.random;
    this.accessLog = opts.accessLog ?? new AccessLog(this.logger, this.random);
    this.trustedProxies = new TrustedProxies(opts.trustedProxies ?? []);
    this.jwks =
      opts.jwks ??
      new JwksRegistry({
        onEvent: (e) => {
          if (e.kind !== 'fetched') this.logger.warn({ jwksUri: e.uri, error: e.error }, `JWKS ${e.kind}`);
        },
      });
    this.now = opts.now ?? (() => performance.now());
    // Authentication runs first: nothing else (limits, caches) spends work on an unknown caller.
    // Validation next, on the body as the client sent it: a request it refuses spends no quota
    // and takes no queue place (Kong orders its request-validator before rate limiting too).
    // Rate limits then, keyed by who the caller is and what it sent; transforms, so what they
    // change is what the upstream gets. The response cache last: its key is what the upstream
    // would receive, and a hit has been authenticated, validated and counted like any request.
    this.filters = [
      new AuthFilterFactory({
        jwks: this.jwks,
        decisions: this.metrics.authDecisions,
        ...(opts.wallClock ? { now: opts.wallClock } : {}),
        ...(opts.introspectionRequest ? { introspectionRequest: opts.introspectionRequest } : {}),
      }),
      new ValidationFilterFactory(this.metrics),
      new RateLimitFilterFactory({
        metrics: this.metrics,
        logger: this.logger,
        now: this.now,
        proxies: () => this.proxyCount,
      }),
      new TransformFilterFactory(this.metrics),
      new CacheFilterFactory({
        metrics: this.metrics,
        logger: this.logger,
        now: opts.wallClock ?? Date.now,
        ...(opts.cacheMaxBytes !== undefined ? { maxBytes: opts.cacheMaxBytes } : {}),
      }),
      ...(opts.filters ?? []),
    ];
    this.proto = opts.proto ?? 'http';
    this.tracer = opts.tracer ?? NOOP_TRACER;
    this.health =
      opts.health ??
      new EndpointHealth({
        onChange: (origin, available) => {
          this.current?.availabilityChanged(origin);
          this.logger.warn(
            { endpoint: origin, available },
            available ? 'endpoint back in service' : 'endpoint taken out of service',
          );
        },
        now: this.now,
        random: this.random,
      });
    this.registerHealthMetrics();
  }

  private registerHealthMetrics(): void {
    const h = this.health;
    const m = this.metrics;
    m.registerCallback(
      new CallbackFamily(
        'modelgate_endpoints_unavailable',
        'Endpoints out of service (failing checks or ejected).',
        'gauge',
        () => [[{}, h.unavailableOrigins().length]],
      ),
    );
    m.registerCallback(
      new CallbackFamily(
        'modelgate_outlier_ejections_total',
        'Endpoints ejected by outlier detection, by cause.',
        'counter',
        () => Object.entries(h.outliers.stats.ejections).map(([reason, n]) => [{ reason }, n]),
      ),
    );
    m.registerCallback(
      new CallbackFamily('modelgate_outlier_ejections_active', 'Endpoints ejected now.', 'gauge', () => [
        [{}, h.outliers.activeEjections],
      ]),
    );
    m.registerCallback(
      new CallbackFamily(
        'modelgate_health_checks_total',
        'Active health-check probes, by result.',
        'counter',
        () => {
          const s = h.checker.stats;
          return [
            [{ result: 'pass' }, s.pass],
            [{ result: 'fail' }, s.fail],
            [{ result: 'timeout' }, s.timeout],
          ];
        },
      ),
    );
  }

  get table(): RuntimeTable | undefined {
    return this.current;
  }

  /**
   * Builds the runtime for `table` and swaps it in. A table that cannot be applied is refused
   * (NACK) and the previous one stays in service.
   */
  apply(table: RoutingTable, version: string): ApplyResult {
    if (table.schemaVersion !== TABLE_SCHEMA_VERSION) {
      return this.reject(
        `table schema version ${table.schemaVersion} is not supported (this proxy speaks ${TABLE_SCHEMA_VERSION})`,
      );
    }
    const missing = unknownFeatures(table.routes.features);
    if (missing.length > 0) {
      return this.reject(
        `table needs ${missing.join(', ')}, which this proxy does not implement (upgrade the proxy)`,
      );
    }
    let runtime: RuntimeTable;
    try {
      runtime = new RuntimeTable(table, version, {
        endpoints: this.endpoints,
        health: this.health,
        pools: this.pools,
        metrics: this.metrics,
        filters: this.filters,
        random: this.random,
        now: this.now,
        mirrors: this.current?.mirrors ?? new Map(),
      });
    } catch (e) {
      return this.reject(`table could not be built: ${(e as Error).message}`);
    }
    this.current = runtime;
    this.sequence++;
    // Pools and endpoint state of endpoints that left are dropped; in-flight requests on them finish.
    this.pools.retain(runtime.poolKeys);
    this.endpoints.retain(runtime.origins);
    this.health.checker.sync(runtime.healthTargets);
    this.health.retain(runtime.origins);
    // Key caches of JWKS URLs no route uses any more go (a JWKS document can be large).
    this.jwks.retainOnly(
      new Set((table.routes.auth ?? []).flatMap((a) => a.jwt.flatMap((p) => (p.jwksUri ? [p.jwksUri] : [])))),
    );
    for (const f of this.filters) f.applied?.(table);
    this.metrics.pruneRoutes(new Set(table.routes.rules.map((r) => r.route)));
    this.metrics.tableApplied(table.hash, version, Date.now() / 1000);
    this.logger.info(
      { version, hash: table.hash, rules: table.routes.rules.length },
      'routing table applied',
    );
    // What a "my route does not match" or "no healthy upstream" diagnosis needs first: which
    // routes this proxy serves and how many endpoints each endpoint set has. Built only at debug.
    if (this.logger.isLevelEnabled('debug')) {
      this.logger.debug(
        {
          version,
          routes: [...new Set(table.routes.rules.map((r) => r.route))],
          hosts: [...new Set(table.routes.matches.map((m) => m.hostname || '*'))],
          endpoints: Object.fromEntries(
            Object.entries(table.endpoints).map(([k, p]) => [k, p.endpoints.length]),
          ),
        },
        'routing table contents',
      );
    }
    return { ok: true };
  }

  private reject(reason: string): ApplyResult {
    this.metrics.tableRejected.child([]).value++;
    this.logger.error({ reason }, 'routing table rejected; keeping the previous one');
    return { ok: false, reason };
  }

  /** The node:http 'upgrade' listener (WebSockets). */
  readonly handleUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    handleUpgrade(this, req, socket, head);
  };

  /** Access log for a WebSocket tunnel when it closes. */
  recordUpgrade(u: {
    requestId: string;
    traceId: string;
    method: string;
    host: string;
    path: string;
    rule: CompiledRule;
    backend: string;
    endpoint: string;
    status: number;
    code: string;
    durationMs: number;
    bytesIn: number;
    bytesOut: number;
  }): void {
    this.accessLog.record(u.rule.accessLog, {
      requestId: u.requestId,
      traceId: u.traceId,
      method: u.method,
      host: u.host,
      path: u.path,
      route: u.rule.route,
      rule: u.rule.name,
      backend: u.backend,
      endpoint: u.endpoint,
      model: '',
      consumer: '',
      client: '',
      status: u.status,
      code: u.code,
      durationMs: round(u.durationMs),
      ttfbMs: -1,
      bytesIn: u.bytesIn,
      bytesOut: u.bytesOut,
      clientAborted: false,
    });
  }

  /** The node:http request listener. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    const ex = new Exchange(this, req, res);
    ex.start();
  };

  /**
   * The 'checkContinue' listener: a request with `Expect: 100-continue`. Its `100 Continue` is sent
   * only once the exchange is about to read the body (Exchange.readingBody); a request refused
   * before (credentials, no route, a declared length over the limit) gets its final status
   * instead, and the client never sends the body.
   */
  readonly handleContinue = (req: IncomingMessage, res: ServerResponse): void => {
    const ex = new Exchange(this, req, res);
    ex.continuePending = true;
    ex.start();
  };

  async close(): Promise<void> {
    this.health.close();
    this.jwks.close();
    await Promise.allSettled(this.filters.map((f) => f.close?.()));
    await this.tracer.shutdown();
    await this.pools.close();
  }

  /** For Exchange: one place that answers with a gateway error, counts and logs it. */
  fail(
    ex: Exchange,
    e: ErrorDefinition,
    message?: string,
    headers?: Record<string, string>,
    fields?: ErrorFields,
  ): void {
    this.metrics.gatewayError(e.code);
    ex.code = e.code;
    ex.status = e.status;
    if (isGrpc(ex.req)) sendGrpcError(ex.res, e, ex.requestId, message, headers);
    else {
      // A page may read the gateway's own errors (a 401 above all) when its origin is allowed.
      let extra = ex.corsHeaders ? { ...ex.corsHeaders, ...headers } : headers;
      // Refused before a large body was read: close rather than take the rest in (Exchange).
      if (ex.closesConnection()) extra = { ...extra, connection: 'close' };
      sendError(ex.res, e, ex.requestId, message, extra as Record<string, string> | undefined, fields);
    }
    ex.complete();
  }

  /**
   * Passive health: how an attempt went on an endpoint. Outlier detection plugs in here.
   */
  endpointOutcome(
    endpoint: EndpointState,
    backend: RuntimeBackend,
    _rule: RuntimeRule,
    outcome: 'success' | 'error' | 'connect-failure' | 'timeout',
  ): void {
    if (backend.outlierGroup) this.health.outliers.record(endpoint.id, outcome, backend.outlierGroup);
  }

  record(ex: Exchange, now: number): void {
    const rule = ex.rule?.compiled;
    // Decide first: most lines are sampled out, and building one is most of its cost.
    if (!this.accessLog.wants(rule?.accessLog, ex.status, ex.code)) return;
    this.accessLog.write({
      requestId: ex.requestId,
      traceId: ex.traceId,
      method: ex.req.method ?? '',
      host: ex.host,
      path: ex.path,
      route: rule?.route ?? '',
      rule: rule?.name ?? '',
      backend: ex.backend?.name ?? '',
      endpoint: ex.endpoint?.id ?? '',
      model: ex.model ?? '',
      consumer: ex.identity?.consumer ?? '',
      client: ex.clientIp,
      status: ex.status,
      code: ex.code,
      durationMs: round(now - ex.startedAt),
      ttfbMs: ex.firstByteAt > 0 ? round(ex.firstByteAt - ex.sentAt) : -1,
      bytesIn: ex.bytesIn,
      bytesOut: ex.bytesOut,
      clientAborted: ex.clientAborted,
    });
  }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
