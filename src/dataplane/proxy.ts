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
import { Transform, type TransformCallback } from 'node:stream';
import type { Logger } from 'pino';
import type { Dispatcher } from 'undici';
import { AccessLog } from '../observability/access-log.ts';
import { createLogger } from '../observability/logger.ts';
import { ProxyMetrics } from '../observability/proxy-metrics.ts';
import { type RoutingTable, TABLE_SCHEMA_VERSION } from '../routing-table/types.ts';
import { type Clock, type EndpointState, observeLatency, type Random } from './balancers/index.ts';
import { declaredLength, hasBody, readBody } from './body.ts';
import { EndpointRegistry } from './endpoint-registry.ts';
import { type ErrorDefinition, Errors, sendError } from './errors.ts';
import type { FilterContext, FilterFactory, FilterOutcome } from './filters/filter.ts';
import { scanModel } from './request/model-field.ts';
import { normalizePath } from './request/normalize-path.ts';
import type { RuntimeMatch } from './router/conditions.ts';
import { hostOf, type RouteResult } from './router/router.ts';
import { type RuntimeBackend, type RuntimeRule, RuntimeTable } from './runtime-table.ts';
import {
  clientResponseHeaders,
  type OutgoingHeaders,
  requestIdFor,
  traceparentFor,
  upstreamRequestHeaders,
} from './upstream/headers.ts';
import { PoolRegistry } from './upstream/pools.ts';
import { classifyUpstreamError } from './upstream/upstream-error.ts';

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
}

export type ApplyResult = { ok: true } | { ok: false; reason: string };

export class GatewayProxy {
  readonly metrics: ProxyMetrics;
  readonly logger: Logger;
  readonly endpoints = new EndpointRegistry();
  readonly pools = new PoolRegistry();
  private readonly accessLog: AccessLog;
  private readonly filters: readonly FilterFactory[];
  readonly random: Random;
  readonly now: Clock;
  readonly proto: 'http' | 'https';
  private current: RuntimeTable | undefined;
  /** Increments on every applied table; tests and the admin API wait on it. */
  sequence = 0;

  constructor(opts: ProxyOptions = {}) {
    this.metrics = opts.metrics ?? new ProxyMetrics();
    this.logger = opts.logger ?? createLogger().logger;
    this.random = opts.random ?? Math.random;
    this.accessLog = opts.accessLog ?? new AccessLog(this.logger, this.random);
    this.filters = opts.filters ?? [];
    this.now = opts.now ?? (() => performance.now());
    this.proto = opts.proto ?? 'http';
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
    let runtime: RuntimeTable;
    try {
      runtime = new RuntimeTable(table, version, {
        endpoints: this.endpoints,
        pools: this.pools,
        metrics: this.metrics,
        filters: this.filters,
        random: this.random,
        now: this.now,
      });
    } catch (e) {
      return this.reject(`table could not be built: ${(e as Error).message}`);
    }
    this.current = runtime;
    this.sequence++;
    // Pools and endpoint state of endpoints that left are dropped; in-flight requests on them finish.
    this.pools.retain(runtime.poolKeys);
    this.endpoints.retain(runtime.origins);
    const routes = new Set(table.routes.rules.map((r) => r.route));
    const keep = (labels: Record<string, string>) => routes.has(labels.route ?? '');
    this.metrics.requests.prune(keep);
    this.metrics.duration.prune(keep);
    this.metrics.ttfb.prune(keep);
    this.metrics.inFlight.prune(keep);
    this.metrics.tableApplied(table.hash, version, Date.now() / 1000);
    this.logger.info(
      { version, hash: table.hash, rules: table.routes.rules.length },
      'routing table applied',
    );
    return { ok: true };
  }

  private reject(reason: string): ApplyResult {
    this.metrics.tableRejected.child([]).value++;
    this.logger.error({ reason }, 'routing table rejected; keeping the previous one');
    return { ok: false, reason };
  }

  /** The node:http request listener. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    const ex = new Exchange(this, req, res);
    ex.start();
  };

  async close(): Promise<void> {
    await this.pools.close();
  }

  /** For Exchange: one place that answers with a gateway error, counts and logs it. */
  fail(ex: Exchange, e: ErrorDefinition, message?: string, headers?: Record<string, string>): void {
    this.metrics.gatewayError(e.code);
    ex.code = e.code;
    ex.status = e.status;
    sendError(ex.res, e, ex.requestId, message, headers);
    ex.complete();
  }

  record(ex: Exchange): void {
    const rule = ex.rule?.compiled;
    this.accessLog.record(rule?.accessLog, {
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
      status: ex.status,
      code: ex.code,
      durationMs: round(this.now() - ex.startedAt),
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

/**
 * One request: its state, and the undici dispatch handler for its upstream call. One object per
 * request keeps allocation and closures off the hot path.
 */
class Exchange implements Dispatcher.DispatchHandler {
  readonly proxy: GatewayProxy;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly startedAt: number;
  requestId = '';
  traceId = '';
  host = '';
  path = '';
  query = '';
  model: string | undefined;
  modelLabel = 0;
  table: RuntimeTable | undefined;
  rule: RuntimeRule | undefined;
  backend: RuntimeBackend | undefined;
  endpoint: EndpointState | undefined;
  status = 0;
  code = '';
  sentAt = 0;
  firstByteAt = 0;
  bytesIn = 0;
  bytesOut = 0;
  clientAborted = false;
  private done = false;
  private controller: Dispatcher.DispatchController | undefined;
  private resumeUpstream: (() => void) | undefined;

  constructor(proxy: GatewayProxy, req: IncomingMessage, res: ServerResponse) {
    this.proxy = proxy;
    this.req = req;
    this.res = res;
    this.startedAt = proxy.now();
  }

  start(): void {
    const { req, proxy } = this;
    this.requestId = requestIdFor(req.headers['x-request-id']);
    const table = proxy.table;
    if (!table) {
      proxy.fail(this, Errors.NotReady);
      return;
    }
    this.table = table;
    const target = normalizePath(req.url ?? '');
    if (!target.ok) {
      proxy.fail(this, Errors.BadPath, `the request path is not valid: ${target.reason}`);
      return;
    }
    this.path = target.path;
    this.query = target.query;
    this.host = hostOf(req.headers.host);
    const headerModel = req.headers['x-model'];
    const routeReq = {
      host: this.host,
      path: this.path,
      query: this.query,
      method: req.method ?? 'GET',
      headers: req.headers,
      model: undefined as string | null | undefined,
    };
    const r = table.router.route(routeReq);
    if (r.kind === 'needs-model') {
      this.readModelThenRoute(
        table,
        routeReq,
        r.match,
        typeof headerModel === 'string' ? headerModel : undefined,
      );
      return;
    }
    this.routed(table, r, undefined, typeof headerModel === 'string' ? headerModel : undefined);
  }

  /** Reads the body (within the route's limit), finds the model, and routes again with it. */
  private readModelThenRoute(
    table: RuntimeTable,
    routeReq: Parameters<RuntimeTable['router']['route']>[0],
    match: RuntimeMatch<RuntimeRule>,
    headerModel: string | undefined,
  ): void {
    const { req, proxy } = this;
    const limit = match.rule.compiled.maxRequestBodyBytes;
    if (declaredLength(req) > limit) {
      proxy.fail(this, Errors.BodyTooLarge);
      return;
    }
    const body = hasBody(req)
      ? readBody(req, limit)
      : Promise.resolve({ ok: true as const, chunks: [], size: 0 });
    body.then(
      (read) => {
        if (!read.ok) {
          if (read.reason === 'too-large') {
            proxy.fail(this, Errors.BodyTooLarge);
            return;
          }
          this.clientAborted = true;
          this.status = 499;
          this.complete();
          return;
        }
        this.bytesIn = read.size;
        const scan =
          read.size > 0
            ? scanModel(read.chunks, headerString(req.headers['content-encoding']), limit)
            : undefined;
        let bodyModel: string | undefined;
        if (scan) {
          if (scan.kind === 'too-large') {
            proxy.fail(this, Errors.BodyTooLarge);
            return;
          }
          if (scan.kind === 'bad-encoding') {
            proxy.fail(this, Errors.BadContentEncoding);
            return;
          }
          if (scan.kind === 'ambiguous') {
            proxy.fail(this, Errors.ModelAmbiguous);
            return;
          }
          if (scan.kind === 'found') bodyModel = scan.model;
        }
        if (headerModel !== undefined && bodyModel !== undefined && headerModel !== bodyModel) {
          proxy.fail(
            this,
            Errors.ModelMismatch,
            `the x-model header names ${headerModel} but the body names ${bodyModel}`,
          );
          return;
        }
        const model = bodyModel ?? headerModel ?? null;
        routeReq.model = model;
        const bytes = read.chunks.length === 1 ? read.chunks[0]! : Buffer.concat(read.chunks);
        this.routed(table, table.router.route(routeReq), bytes, model);
      },
      () => proxy.fail(this, Errors.Internal),
    );
  }

  /**
   * `model`: the request's model when known (string), known to be absent (null), or not looked
   * for (undefined: the route does not match on models).
   */
  private routed(
    table: RuntimeTable,
    r: RouteResult<RuntimeRule>,
    body: Buffer | undefined,
    model: string | null | undefined,
  ): void {
    const { proxy, req } = this;
    this.model = model ?? undefined;
    if (r.kind !== 'matched') {
      proxy.fail(this, Errors.NoRoute);
      return;
    }
    const rule = r.match.rule;
    this.rule = rule;
    this.modelLabel = table.modelLabelIndex(r.match.model?.label, body !== undefined ? model : undefined);
    if (body === undefined && declaredLength(req) > rule.compiled.maxRequestBodyBytes) {
      proxy.fail(this, Errors.BodyTooLarge);
      return;
    }
    const trace = traceparentFor(req.headers.traceparent);
    this.traceId = trace.traceId;
    const headers = upstreamRequestHeaders(req.headers, {
      clientAddress: req.socket.remoteAddress ?? '',
      proto: proxy.proto,
      host: req.headers.host,
      requestId: this.requestId,
      traceparent: trace.header,
      upstreamHost: undefined,
    });
    // node:http has already answered `Expect: 100-continue`; the upstream must not wait for it.
    delete headers.expect;
    if (rule.filters) {
      const ctx: FilterContext = {
        req,
        res: this.res,
        requestId: this.requestId,
        rule: rule.compiled,
        model: this.model,
        upstreamHeaders: headers,
        responseHeaders: undefined,
      };
      const outcome = rule.filters(ctx);
      if (outcome instanceof Promise) {
        outcome.then(
          (o) => this.afterFilters(table, rule, o, ctx, headers, body),
          () => proxy.fail(this, Errors.Internal),
        );
        return;
      }
      this.afterFilters(table, rule, outcome, ctx, headers, body);
      return;
    }
    this.forward(table, rule, headers, body, undefined);
  }

  private afterFilters(
    table: RuntimeTable,
    rule: RuntimeRule,
    outcome: FilterOutcome,
    ctx: FilterContext,
    headers: OutgoingHeaders,
    body: Buffer | undefined,
  ): void {
    if (outcome) {
      this.proxy.fail(this, outcome.error, outcome.message, outcome.headers);
      return;
    }
    this.forward(table, rule, headers, body, ctx.responseHeaders);
  }

  private extraResponseHeaders: OutgoingHeaders | undefined;

  private forward(
    table: RuntimeTable,
    rule: RuntimeRule,
    headers: OutgoingHeaders,
    body: Buffer | undefined,
    responseHeaders: OutgoingHeaders | undefined,
  ): void {
    const { proxy, req, res } = this;
    this.extraResponseHeaders = responseHeaders;
    const backend = table.pickBackend(rule, proxy.random);
    if (!backend) {
      proxy.fail(this, Errors.NoHealthyUpstream, 'every backend of this route has weight 0');
      return;
    }
    this.backend = backend;
    const hashOn = rule.compiled.loadBalancing.hashOn;
    const pickCtx = hashOn ? { hashKey: hashKeyOf(req, hashOn) } : NO_HASH;
    const endpoint = backend.readyBalancer.pick(pickCtx) ?? backend.drainingBalancer.pick(pickCtx);
    if (!endpoint) {
      proxy.fail(this, Errors.NoHealthyUpstream);
      return;
    }
    this.endpoint = endpoint;
    const info = proxy.endpoints.lookup(endpoint.id);
    if (info?.hostHeader !== undefined) headers.host = info.hostHeader;

    let upstreamBody: Buffer | IncomingMessage | Transform | null = null;
    if (body !== undefined) upstreamBody = body.length > 0 ? body : null;
    else if (hasBody(req)) {
      const cl = declaredLength(req);
      this.bytesIn = cl > 0 ? cl : 0;
      upstreamBody = cl >= 0 ? req : req.pipe(new BodyLimit(rule.compiled.maxRequestBodyBytes, this));
    }

    endpoint.inFlight++;
    rule.inFlight.value++;
    res.on('close', this.onClientClose);
    this.sentAt = proxy.now();
    const t = rule.compiled.timeouts;
    proxy.pools.get(endpoint.id, rule.pool).dispatch(
      {
        path: this.path + this.query,
        method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
        headers,
        body: upstreamBody,
        headersTimeout: t.firstByteMs,
        bodyTimeout: t.idleMs,
      },
      this,
    );
  }

  /** The client went away before the response ended: stop the upstream request (frees the GPU). */
  private readonly onClientClose = (): void => {
    if (this.done || this.res.writableFinished) return;
    this.clientAborted = true;
    this.controller?.abort(new Error('client disconnected'));
  };

  // --- undici dispatch handler ---

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.clientAborted) controller.abort(new Error('client disconnected'));
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    if (statusCode < 200) return; // 1xx: node:http handles 100-continue itself
    this.firstByteAt = this.proxy.now();
    this.status = statusCode;
    const out = clientResponseHeaders(headers, this.requestId);
    if (this.extraResponseHeaders) Object.assign(out, this.extraResponseHeaders);
    this.res.writeHead(statusCode, out);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.bytesOut += chunk.length;
    if (!this.res.write(chunk)) {
      // Backpressure: a slow client pauses the upstream read instead of growing our buffers.
      controller.pause();
      this.resumeUpstream ??= () => this.controller?.resume();
      this.res.once('drain', this.resumeUpstream);
    }
  }

  onResponseEnd(
    _controller: Dispatcher.DispatchController,
    trailers: Record<string, string | string[] | undefined>,
  ): void {
    if (trailers && Object.keys(trailers).length > 0 && this.res.chunkedEncoding) {
      this.res.addTrailers(trailers as Record<string, string>);
    }
    this.res.end();
    this.complete();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.done) return;
    if (this.clientAborted) {
      this.status = 499; // nginx's "client closed request", for logs and metrics
      this.complete();
      return;
    }
    if (this.bodyTooLarge) {
      this.proxy.fail(this, Errors.BodyTooLarge);
      return;
    }
    const failure = classifyUpstreamError(err as Error & { code?: string });
    if (this.res.headersSent) {
      // Mid-response: the only honest signal left is to cut the connection.
      this.code = failure.error.code;
      this.res.destroy();
      this.complete();
      return;
    }
    this.proxy.fail(this, failure.error);
  }

  bodyTooLarge = false;

  /** Bookkeeping once, however the exchange ended. */
  complete(): void {
    if (this.done) return;
    this.done = true;
    const { proxy, rule, backend, endpoint, table } = this;
    const now = proxy.now();
    if (endpoint) {
      endpoint.inFlight--;
      rule!.inFlight.value--;
      this.res.off('close', this.onClientClose);
      if (this.firstByteAt > 0) observeLatency(endpoint, this.firstByteAt - this.sentAt, now);
    }
    if (rule && backend && table) {
      table.requestCounter(rule, backend, this.modelLabel, this.status).value++;
      backend.duration.observe((now - this.startedAt) / 1000);
      if (this.firstByteAt > 0) backend.ttfb.observe((this.firstByteAt - this.sentAt) / 1000);
    }
    proxy.record(this);
  }
}

const NO_HASH = {};

function headerString(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v;
}

function hashKeyOf(req: IncomingMessage, on: { header?: string; cookie?: string }): string | undefined {
  if (on.header !== undefined) return headerString(req.headers[on.header]);
  const cookies = req.headers.cookie;
  if (!cookies || on.cookie === undefined) return undefined;
  for (const part of cookies.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === on.cookie) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Counts a chunked request body on its way upstream and stops it at the route's limit. */
class BodyLimit extends Transform {
  private seen = 0;
  private readonly limit: number;
  private readonly ex: Exchange;
  constructor(limit: number, ex: Exchange) {
    super();
    this.limit = limit;
    this.ex = ex;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length;
    this.ex.bytesIn = this.seen;
    if (this.seen > this.limit) {
      this.ex.bodyTooLarge = true;
      cb(new Error('request body exceeds the route limit'));
      return;
    }
    cb(null, chunk);
  }
}
