/**
 * One request through the proxy: its state, and the undici dispatch handler of its upstream
 * attempts. One object per request keeps allocation and closures off the hot path.
 *
 * Life of an exchange: start (normalise, route) → maybe read the body for the model, once the
 * caller is admitted by a rule it could select (auth/admission.ts) → filters (those that read the
 * body after those that do not, so authentication comes before any body is read) → choose a
 * backend (or earlier, when a filter asks: FilterContext.chooseBackend) → attempt (choose
 * an endpoint, dispatch) → response streamed to the client, or a retry on another endpoint while
 * nothing has reached the client yet → complete (bookkeeping exactly once, whatever happened). A
 * filter may answer instead (a cache hit): its answer takes the response path with no upstream.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Transform, type TransformCallback, type Writable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Dispatcher } from 'undici';
import { ATTR, type HopSpan, NOOP_TRACER } from '../observability/tracing.ts';
import { type Admission, admit } from './auth/admission.ts';
import type { Identity } from './auth/identity.ts';
import type { AuthenticationOutcome } from './auth/route-authenticator.ts';
import { type EndpointState, observeLatency } from './balancers/index.ts';
import { declaredLength, hasBody, readBody } from './body.ts';
import type { Mirror } from './canary/mirror.ts';
import { usageTap } from './canary/usage-tap.ts';
import { chooseCoding, compressedHeaders, createCompressor } from './compression.ts';
import { isPreflight } from './cors.ts';
import { type ErrorDefinition, Errors } from './errors.ts';
import {
  type Answer,
  type BodyTransformer,
  chainTransformers,
  type ExchangeObserver,
  type FilterChain,
  type FilterContext,
  type FilterOutcome,
} from './filters/filter.ts';
import { GrpcStatus, grpcTimeoutMs, isGrpc, respondTrailersOnly } from './grpc.ts';
import { answerModels } from './models-endpoint.ts';
import type { GatewayProxy } from './proxy.ts';
import { scanModel } from './request/model-field.ts';
import { normalizePath } from './request/normalize-path.ts';
import { hostOf, type RouteRequest, type RouteResult } from './router/router.ts';
import type { RuntimeBackend, RuntimeRule, RuntimeTable } from './runtime-table.ts';
import {
  clientResponseHeaders,
  type OutgoingHeaders,
  requestIdFor,
  traceparentFor,
  upstreamRequestHeaders,
} from './upstream/headers.ts';
import { classifyUpstreamError, type FailureKind } from './upstream/upstream-error.ts';

/** Retries may always run this many at once per rule, whatever the budget says (as Envoy does). */
const MIN_RETRY_CONCURRENCY = 3;

/** Marks the abort the proxy itself causes to discard a retryable response. */
const RETRY_ABORT = new Error('retrying on another endpoint');

const NO_HASH = {};

/** The body of a request routed on the model that has none (filters see it as read, empty). */
const EMPTY_BODY = Buffer.alloc(0);

/**
 * A body the gateway refuses without reading it may be left to node:http, which reads and discards
 * it to keep the connection, when it is declared this small; a larger or chunked one closes the
 * connection instead (Exchange.closesConnection).
 */
const SMALL_UNREAD_BODY = 64 * 1024;

/** The span handle the no-op tracer gives out: shared, does nothing. */
const NOOP_SPAN: HopSpan = NOOP_TRACER.startHop(undefined, { method: '', path: '' });

/** The exchange a FilterContext belongs to, for chooseBackendEarly. */
const EXCHANGE = Symbol('exchange');

interface ExchangeFilterContext extends FilterContext {
  readonly [EXCHANGE]: Exchange;
}

/** FilterContext.chooseBackend: one function for every request (no closure per request). */
function chooseBackendEarly(this: FilterContext): RuntimeBackend | undefined {
  return (this as ExchangeFilterContext)[EXCHANGE].chooseEarly(this);
}

/** Stands in for undici's controller when a filter's answer goes through the response path. */
const NO_CONTROLLER: Dispatcher.DispatchController = {
  aborted: false,
  paused: false,
  reason: null,
  abort() {},
  pause() {},
  resume() {},
};

export class Exchange implements Dispatcher.DispatchHandler {
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
  /** The endpoint of the current (or last) attempt. */
  endpoint: EndpointState | undefined;
  status = 0;
  code = '';
  sentAt = 0;
  firstByteAt = 0;
  bytesIn = 0;
  bytesOut = 0;
  clientAborted = false;
  bodyTooLarge = false;
  /** Upstream attempts made (1 + retries). */
  attempts = 0;
  /** The caller, once authenticated (undefined on routes without auth). */
  identity: Identity | undefined;
  /**
   * The client sent `Expect: 100-continue` and waits for `100 Continue` before sending its body:
   * sent when the body is about to be read (readingBody), never for a request refused before.
   */
  continuePending = false;
  /** The route matches on the model and the request was routed on it (header or body). */
  private modelRouted = false;
  /** Routed on the x-model header: the body, read after authentication, must agree with it. */
  private checkBodyModel = false;
  /** Authentication done before the body was read to route (admission.ts), by gate key. */
  private preAuthenticated: Map<string, AuthenticationOutcome> | undefined;
  /** The client's address: the TCP peer, or from x-forwarded-for through trusted proxies. */
  clientIp = '';
  /** CORS headers for whatever response this request gets (the route's policy allowed the origin). */
  corsHeaders: OutgoingHeaders | undefined;
  private preflight = false;
  /** Filters watching the response and the end (rate limits giving back what they took). */
  private observers: ExchangeObserver[] | undefined;
  /** The backend a filter had chosen early (chooseEarly): undefined until then, null for none. */
  private chosen: RuntimeBackend | null | undefined;
  /** A filter's rewrite of the response body (the usage chunk the gateway asked for, removed). */
  private transform: BodyTransformer | undefined;
  /** The upstream response reached its end (not cut by an error or the client). */
  private responseEnded = false;
  /** onClientClose is listening on the response. */
  private watchingClient = false;
  /** The OpenTelemetry span of this hop (a shared no-op when tracing is off). */
  private span: HopSpan = NOOP_SPAN;
  private done = false;
  private controller: Dispatcher.DispatchController | undefined;
  private resumeUpstream: (() => void) | undefined;
  private headers: OutgoingHeaders | undefined;
  private extraResponseHeaders: OutgoingHeaders | undefined;
  /** A body that can be sent again (read into memory), or null for none. */
  private replayBody: Buffer | null = null;
  /** A body that streams through once; a request with one is never retried. */
  private streamBody: IncomingMessage | Transform | undefined;
  private tried: string[] | undefined;
  private retryPending = false;
  /** An attempt is dispatched and its accounting (in-flight counts) not yet settled. */
  private attemptOpen = false;
  private isRetry = false;
  private streaming = false;
  /** The client's Host (HTTP/1) or :authority (HTTP/2). */
  private authority: string | undefined;
  /** The path sent upstream when a filter rewrote it (`path` stays the client's, for logs). */
  private upstreamPath: string | undefined;
  /** The Host header a filter set for the upstream; wins over the client's and a URL backend's. */
  private hostRewrite: string | undefined;
  /** The method of the last pipeline step (continueWith); undefined: the client's. */
  private upstreamMethod: string | undefined;
  /** `endpoint`'s latency was observed by a call the exchange did not dispatch (respondMade). */
  private latencyObserved = false;
  /** The answer is one the gateway made (respondMade): there is no attempt to retry. */
  private made = false;
  /** Where response bytes go: the client response, or a compressor in front of it. */
  private sink: Writable | undefined;

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
    this.host = hostOf(req.headers.host ?? (req.headers[':authority'] as string | undefined));
    if (proxy.tracer.enabled) {
      this.span = proxy.tracer.startHop(headerString(req.headers.traceparent), {
        method: req.method ?? 'GET',
        path: this.path,
        host: this.host,
        scheme: proxy.proto,
        clientAddress: req.socket.remoteAddress,
      });
    }
    const headerModel = typeof req.headers['x-model'] === 'string' ? req.headers['x-model'] : undefined;
    // A preflight is routed as the request it announces: that is the route whose CORS policy answers.
    this.preflight = isPreflight(req.method, req.headers);
    const routeReq: RouteRequest = {
      host: this.host,
      path: this.path,
      query: this.query,
      method: this.preflight
        ? (req.headers['access-control-request-method'] as string)
        : (req.method ?? 'GET'),
      headers: req.headers,
      model: undefined,
    };
    const r = table.router.route(routeReq);
    if (r.kind === 'needs-model') {
      this.routeOnModel(table, routeReq, headerModel);
      return;
    }
    this.routed(table, r, undefined, headerModel);
  }

  /**
   * The route matches on the model. When the x-model header names it, the request is routed on
   * it now and its body, which must name the same model or none, is checked once the rule's
   * filters have authenticated the caller (routed, checkBodyModel). Otherwise the model is in the
   * body, which is read only for a caller a rule it could select admits (admitThenReadModel).
   */
  private routeOnModel(table: RuntimeTable, routeReq: RouteRequest, headerModel: string | undefined): void {
    this.modelRouted = true;
    if (headerModel !== undefined) {
      routeReq.model = headerModel;
      this.checkBodyModel = hasBody(this.req);
      const body = this.checkBodyModel ? undefined : EMPTY_BODY;
      this.routed(table, table.router.route(routeReq), body, headerModel);
      return;
    }
    if (!hasBody(this.req)) {
      routeReq.model = null;
      this.routed(table, table.router.route(routeReq), EMPTY_BODY, null);
      return;
    }
    this.admitThenReadModel(table, routeReq);
  }

  /** A route that is HTTPS-only, reached over plaintext: 308 to the same URL over https. */
  private redirectToHttps(port: number | undefined): void {
    const host = this.host.includes(':') ? `[${this.host}]` : this.host;
    const location = `https://${host}${port !== undefined && port !== 443 ? `:${port}` : ''}${this.path}${this.query}`;
    this.status = 308;
    this.res.writeHead(308, { location, 'content-length': 0, 'x-request-id': this.requestId });
    this.res.end();
    this.complete();
  }

  /** Answers a CORS preflight at the gateway (204, or 403 when the policy refuses it). */
  private answerPreflight(rule: RuntimeRule): void {
    const answer = rule.cors!.preflight(this.req.headers);
    if (!answer.ok) {
      this.proxy.fail(this, Errors.CorsRejected, `CORS preflight refused: ${answer.message}`);
      return;
    }
    this.status = 204;
    this.res.writeHead(204, { ...answer.headers, 'content-length': 0, 'x-request-id': this.requestId });
    this.res.end();
    this.complete();
  }

  /**
   * The model is in the body. The caller is checked first against every rule the body could
   * select (auth/admission.ts): refused by all, it gets the first one's answer and the body is
   * never read; admitted, the body is read within the largest limit of the rules that admit it,
   * and the request routed on the model it names.
   */
  private admitThenReadModel(table: RuntimeTable, routeReq: RouteRequest): void {
    const rules = table.router.candidates(routeReq);
    const candidates = rules.map((r) => ({
      gate: r.filters?.authGate,
      limit: r.compiled.maxRequestBodyBytes,
    }));
    // Admission may wait on a token check: a client that leaves meanwhile ends the exchange.
    this.watchClient();
    const admission = admit(candidates, this.req.headers);
    if (admission instanceof Promise) {
      admission.then(
        (a) => this.admitted(table, routeReq, rules[0]!, a),
        () => {
          if (!this.done) this.proxy.fail(this, Errors.Internal);
        },
      );
      return;
    }
    this.admitted(table, routeReq, rules[0]!, admission);
  }

  private admitted(table: RuntimeTable, routeReq: RouteRequest, first: RuntimeRule, a: Admission): void {
    if (this.done) return;
    const { req, proxy } = this;
    if (!a.ok) {
      // Answered as the first candidate answers: its https redirect, preflight and CORS headers.
      if (this.enter(first)) proxy.fail(this, a.rejection.error, a.rejection.message, a.rejection.headers);
      return;
    }
    this.preAuthenticated = a.outcomes;
    const limit = a.limit;
    if (declaredLength(req) > limit) {
      proxy.fail(this, Errors.BodyTooLarge);
      return;
    }
    this.readingBody();
    readBody(req, limit).then(
      (read) => {
        if (this.done) return;
        if (!read.ok) {
          if (read.reason === 'too-large') proxy.fail(this, Errors.BodyTooLarge);
          else this.abandon();
          return;
        }
        this.bytesIn = read.size;
        const scan = bodyModel(read.chunks, read.size, req, limit, undefined);
        if ('error' in scan) return proxy.fail(this, scan.error, scan.message);
        const model = scan.model ?? null;
        routeReq.model = model;
        const bytes = read.chunks.length === 1 ? read.chunks[0]! : Buffer.concat(read.chunks);
        this.routed(table, table.router.route(routeReq), bytes, model);
      },
      () => proxy.fail(this, Errors.Internal),
    );
  }

  /**
   * Takes `rule` for the request. A plaintext request to an HTTPS-only route is redirected, and a
   * CORS preflight answered, here (false: the request is answered); other requests get the
   * route's CORS headers for whatever response they get.
   */
  private enter(rule: RuntimeRule): boolean {
    const { req } = this;
    this.rule = rule;
    const redirect = rule.compiled.httpsRedirect;
    if (redirect && (req.socket as TLSSocket | null)?.encrypted !== true) {
      this.redirectToHttps(redirect.port);
      return false;
    }
    const origin = req.headers.origin;
    if (rule.cors && typeof origin === 'string') {
      if (this.preflight) {
        this.answerPreflight(rule);
        return false;
      }
      this.corsHeaders = rule.cors.actual(origin);
    }
    return true;
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
      if (answerModels(table.table, req.method, this.path, this.host, this.res, this.requestId)) {
        this.status = this.res.statusCode;
        this.complete();
        return;
      }
      proxy.fail(this, Errors.NoRoute);
      return;
    }
    const rule = r.match.rule;
    this.modelLabel = table.modelLabelIndex(r.match.model?.label, this.modelRouted ? model : undefined);
    if (!this.enter(rule)) return;
    const tls = (req.socket as TLSSocket | null)?.encrypted === true;
    // A body read to route was bounded by the largest limit among the candidate rules.
    const max = rule.compiled.maxRequestBodyBytes;
    if (body === undefined ? declaredLength(req) > max : body.length > max) {
      proxy.fail(this, Errors.BodyTooLarge);
      return;
    }
    // With tracing on, the upstream's parent is this hop's span; otherwise the client's context.
    const fromSpan = this.span.traceparentForUpstream();
    const trace = fromSpan
      ? { header: fromSpan, traceId: this.span.traceId }
      : traceparentFor(req.headers.traceparent);
    this.traceId = trace.traceId;
    if (fromSpan) {
      this.span.setAttribute(ATTR.route, rule.compiled.route);
      this.span.setAttribute(ATTR.rule, rule.compiled.name);
      if (this.model !== undefined) this.span.setAttribute(ATTR.model, this.model);
    }
    this.authority = req.headers.host ?? (req.headers[':authority'] as string | undefined);
    const peer = req.socket.remoteAddress ?? '';
    const trusted = proxy.trustedProxies.trusts(peer);
    this.clientIp = trusted ? proxy.trustedProxies.clientAddress(peer, req.headers['x-forwarded-for']) : peer;
    const headers = upstreamRequestHeaders(req.headers, {
      clientAddress: peer,
      trustForwarded: trusted,
      proto: tls ? 'https' : proxy.proto,
      host: this.authority,
      requestId: this.requestId,
      traceparent: trace.header,
      upstreamHost: undefined,
    });
    // `Expect: 100-continue` is the gateway's to answer (readingBody), not the upstream's: undici
    // refuses the header, and the upstream gets the body the gateway already has or streams.
    delete headers.expect;
    this.watchClient();
    const filters = rule.filters;
    if (body === undefined && (this.checkBodyModel || filters?.readsBody === true) && hasBody(req)) {
      // The body is needed in memory (a filter reads it, or it must name x-model's model): it is
      // read after the filters that do not need it, authentication first, and never before.
      this.filtersThenBody(rule, filters, headers);
      return;
    }
    if (!filters) {
      this.prepareBody(rule, headers, body, undefined);
      return;
    }
    this.runFilters(rule, headers, body);
  }

  private filterContext(
    rule: RuntimeRule,
    headers: OutgoingHeaders,
    body: Buffer | undefined,
  ): ExchangeFilterContext {
    return {
      req: this.req,
      res: this.res,
      requestId: this.requestId,
      rule: rule.compiled,
      model: this.model,
      upstreamHeaders: headers,
      path: this.path,
      hostRewrite: undefined,
      responseHeaders: undefined,
      identity: undefined,
      clientIp: this.clientIp,
      body,
      observers: undefined,
      authenticated: this.preAuthenticated === undefined ? undefined : this.authenticatedFor(rule),
      chooseBackend: chooseBackendEarly,
      [EXCHANGE]: this,
    };
  }

  /** The caller's authentication done before routing, for `rule`'s authentication settings. */
  private authenticatedFor(rule: RuntimeRule): AuthenticationOutcome | undefined {
    const gate = rule.filters?.authGate;
    return gate === undefined ? undefined : this.preAuthenticated!.get(gate.key);
  }

  /**
   * Runs the filters that do not read the body (all of them when none does), then reads the body
   * (within the route's limit) and checks the model it names against x-model's, then runs the
   * rest with the body in memory.
   */
  private filtersThenBody(
    rule: RuntimeRule,
    filters: FilterChain | undefined,
    headers: OutgoingHeaders,
  ): void {
    const ctx = this.filterContext(rule, headers, undefined);
    const head = filters?.readsBody ? filters.beforeBody : filters;
    const outcome = head ? head(ctx) : undefined;
    if (outcome instanceof Promise) {
      outcome.then(
        (o) => this.readBodyAfter(rule, o, ctx, headers),
        () => {
          this.observers = ctx.observers;
          if (!this.done) this.proxy.fail(this, Errors.Internal);
        },
      );
      return;
    }
    this.readBodyAfter(rule, outcome, ctx, headers);
  }

  private readBodyAfter(
    rule: RuntimeRule,
    outcome: FilterOutcome,
    ctx: ExchangeFilterContext,
    headers: OutgoingHeaders,
  ): void {
    if (outcome !== undefined || this.done) {
      this.afterFilters(rule, outcome, ctx, headers, undefined);
      return;
    }
    // What the filters so far took is given back however the exchange ends from here.
    this.observers = ctx.observers;
    this.identity = ctx.identity;
    const { proxy, req } = this;
    const limit = rule.compiled.maxRequestBodyBytes;
    this.readingBody();
    readBody(req, limit).then(
      (read) => {
        if (this.done) return;
        if (!read.ok) {
          if (read.reason === 'too-large') proxy.fail(this, Errors.BodyTooLarge);
          else this.abandon();
          return;
        }
        this.bytesIn = read.size;
        if (this.checkBodyModel) {
          const scan = bodyModel(read.chunks, read.size, req, limit, this.model);
          if ('error' in scan) return proxy.fail(this, scan.error, scan.message);
        }
        const bytes = read.chunks.length === 1 ? read.chunks[0]! : Buffer.concat(read.chunks);
        ctx.body = bytes;
        const tail = rule.filters?.readsBody ? rule.filters.withBody : undefined;
        if (!tail) {
          this.afterFilters(rule, undefined, ctx, headers, bytes);
          return;
        }
        const o = tail(ctx);
        if (o instanceof Promise) {
          o.then(
            (settled) => this.afterFilters(rule, settled, ctx, headers, bytes),
            () => {
              this.observers = ctx.observers;
              if (!this.done) proxy.fail(this, Errors.Internal);
            },
          );
          return;
        }
        this.afterFilters(rule, o, ctx, headers, bytes);
      },
      () => proxy.fail(this, Errors.Internal),
    );
  }

  private runFilters(rule: RuntimeRule, headers: OutgoingHeaders, body: Buffer | undefined): void {
    const ctx = this.filterContext(rule, headers, body);
    const outcome = rule.filters!(ctx);
    if (outcome instanceof Promise) {
      outcome.then(
        (o) => this.afterFilters(rule, o, ctx, headers, body),
        () => {
          this.observers = ctx.observers;
          if (!this.done) this.proxy.fail(this, Errors.Internal);
        },
      );
      return;
    }
    this.afterFilters(rule, outcome, ctx, headers, body);
  }

  private afterFilters(
    rule: RuntimeRule,
    outcome: FilterOutcome,
    ctx: FilterContext,
    headers: OutgoingHeaders,
    body: Buffer | undefined,
  ): void {
    // Observers first: whatever a filter took is given back at complete(), even on a refusal.
    this.observers = ctx.observers;
    if (this.done) {
      // The client left while a filter was deciding (a queued request): settle what was taken.
      this.notifyEnd();
      return;
    }
    if (outcome && 'answer' in outcome) {
      this.identity = ctx.identity;
      this.serveAnswer(outcome.answer, ctx.responseHeaders);
      return;
    }
    if (outcome) {
      this.proxy.fail(this, outcome.error, outcome.message, outcome.headers);
      return;
    }
    this.identity = ctx.identity;
    if (ctx.path !== this.path) this.upstreamPath = ctx.path;
    this.hostRewrite = ctx.hostRewrite;
    if (ctx.body !== body && ctx.body !== undefined) {
      // A filter rewrote the body: its length is known now, whatever the client declared.
      headers['content-length'] = String(ctx.body.length);
      delete headers['transfer-encoding'];
      this.bytesIn = ctx.body.length;
    }
    this.prepareBody(rule, headers, ctx.body, ctx.responseHeaders);
  }

  /** Listens for the client going away, from the moment the request is routed. */
  private watchClient(): void {
    if (this.watchingClient) return;
    this.watchingClient = true;
    this.res.on('close', this.onClientClose);
  }

  /**
   * Decides how the body travels. A body already in memory is replayable. A streamed body small
   * enough to replay is read first when the rule retries (store and forward, bounded by
   * maxReplayBodySize); anything else streams through once and is never retried.
   */
  private prepareBody(
    rule: RuntimeRule,
    headers: OutgoingHeaders,
    body: Buffer | undefined,
    responseHeaders: OutgoingHeaders | undefined,
  ): void {
    const { req } = this;
    this.headers = headers;
    this.extraResponseHeaders =
      this.corsHeaders && responseHeaders
        ? { ...responseHeaders, ...this.corsHeaders }
        : (responseHeaders ?? this.corsHeaders);
    this.watchClient();
    if (rule.composition) {
      // A pipeline or fan-out (compose/): its calls run instead of the backend choice.
      rule.composition.run(this, headers, body);
      return;
    }
    const grpc = isGrpc(req);
    if (rule.translation && !grpc) {
      // KServe v2 REST in, gRPC out (kserve/kserve-rule.ts); gRPC clients pass through as they are.
      rule.translation.run(this, headers, body);
      return;
    }
    if (grpc) this.startDeadline();
    if (body !== undefined) {
      this.replayBody = body.length > 0 ? body : null;
      this.chooseBackend(rule);
      return;
    }
    if (!hasBody(req)) {
      this.chooseBackend(rule);
      return;
    }
    const cl = declaredLength(req);
    const retries = rule.compiled.retries;
    if (retries.attempts > 0 && cl >= 0 && cl <= retries.maxReplayBodyBytes) {
      this.readingBody();
      readBody(req, cl).then((read) => {
        if (!read.ok) {
          this.abandon();
          return;
        }
        this.bytesIn = read.size;
        this.replayBody =
          read.size > 0 ? (read.chunks.length === 1 ? read.chunks[0]! : Buffer.concat(read.chunks)) : null;
        this.chooseBackend(rule);
      });
      return;
    }
    this.bytesIn = cl > 0 ? cl : 0;
    this.streamBody = cl >= 0 ? req : req.pipe(new BodyLimit(rule.compiled.maxRequestBodyBytes, this));
    // `100 Continue` waits for the upstream dispatch (attempt): a request with no healthy upstream
    // is refused before its body is sent.
    this.chooseBackend(rule);
  }

  /**
   * A filter answered (a cache hit): the answer goes to the client as an upstream answer would,
   * through the response side (observers, transforms, the filters' headers, CORS, compression).
   * No backend is recorded: request metrics and rollout counters are about backends.
   */
  private serveAnswer(answer: Answer['answer'], responseHeaders: OutgoingHeaders | undefined): void {
    this.extraResponseHeaders =
      this.corsHeaders && responseHeaders
        ? { ...responseHeaders, ...this.corsHeaders }
        : (responseHeaders ?? this.corsHeaders);
    this.sentAt = this.proxy.now();
    this.onResponseStart(NO_CONTROLLER, answer.status, answer.headers);
    if (answer.body.length > 0) this.onResponseData(NO_CONTROLLER, answer.body);
    this.onResponseEnd(NO_CONTROLLER, {});
  }

  /**
   * The backend this request goes to, for a call the exchange does not dispatch itself (a
   * translated rule's): a filter's early choice (the cache keys on it), else the weighted pick and
   * the rollout's choice, as chooseBackend makes them. Undefined when every weight is 0.
   */
  backendForCall(): RuntimeBackend | undefined {
    return this.chosen === undefined
      ? this.pickBackend(this.rule!, this.identity?.consumer)
      : (this.chosen ?? undefined);
  }

  /** FilterContext.chooseBackend: the choice made now, with the caller known so far, and kept. */
  chooseEarly(ctx: FilterContext): RuntimeBackend | undefined {
    if (this.chosen === undefined) this.chosen = this.pickBackend(this.rule!, ctx.identity?.consumer) ?? null;
    return this.chosen ?? undefined;
  }

  private pickBackend(rule: RuntimeRule, consumer: string | undefined): RuntimeBackend | undefined {
    const backend = this.table!.pickBackend(rule, this.proxy.random);
    if (!rule.canary) return backend;
    return rule.canary.choose({ host: this.host, headers: this.req.headers, consumer }, backend);
  }

  private chooseBackend(rule: RuntimeRule): void {
    const chosen = this.chosen;
    const backend =
      chosen === undefined ? this.pickBackend(rule, this.identity?.consumer) : (chosen ?? undefined);
    if (!backend) {
      this.proxy.fail(this, Errors.NoHealthyUpstream, 'every backend of this route has weight 0');
      return;
    }
    this.backend = backend;
    this.attempt();
  }

  /** Picks an endpoint (a different one on a retry, when there is one) and dispatches. */
  private attempt(): void {
    const { proxy, req, rule } = this;
    let backend = this.backend!;
    let endpoint = this.pickEndpoint(backend);
    if (!endpoint && rule!.fallback && rule!.fallback !== backend) {
      // The primary has nothing to serve with: the rule's fallback backend (e.g. a smaller model).
      backend = rule!.fallback;
      this.backend = backend;
      endpoint = this.pickEndpoint(backend);
    }
    if (!endpoint) {
      proxy.fail(this, Errors.NoHealthyUpstream);
      return;
    }
    this.endpoint = endpoint;
    if (this.span !== NOOP_SPAN) {
      this.span.setAttribute(ATTR.backend, backend.name);
      this.span.setAttribute(ATTR.upstreamAddress, endpoint.id);
      if (this.attempts > 0) this.span.setAttribute(ATTR.resendCount, this.attempts);
    }
    this.tried ??= [];
    this.tried.push(endpoint.id);
    const headers = this.headers!;
    const info = proxy.endpoints.lookup(endpoint.id);
    if (this.hostRewrite !== undefined) headers.host = this.hostRewrite;
    else if (info?.hostHeader !== undefined) headers.host = info.hostHeader;
    else if (this.authority !== undefined) headers.host = this.authority;
    endpoint.inFlight++;
    rule!.inFlight.value++;
    if (this.isRetry) rule!.retries.active++;
    this.attemptOpen = true;
    this.attempts++;
    this.controller = undefined;
    this.sentAt = proxy.now();
    const t = rule!.compiled.timeouts;
    const deadline = this.deadlineMs;
    let pool = backend.pools.get(endpoint.id);
    if (pool === undefined || pool.closed) {
      pool = proxy.pools.get(endpoint.id, backend.pool);
      backend.pools.set(endpoint.id, pool);
    }
    // A streamed body flows once the client has its `100 Continue` (when it asked for one).
    if (this.continuePending) this.readingBody();
    pool.dispatch(
      {
        path: (this.upstreamPath ?? this.path) + this.query,
        method: (this.upstreamMethod ?? req.method ?? 'GET') as Dispatcher.HttpMethod,
        headers: backend.credentials ? withCredentials(headers, backend.credentials) : headers,
        body: this.streamBody ?? this.replayBody,
        headersTimeout: deadline === undefined ? t.firstByteMs : Math.min(t.firstByteMs, deadline),
        bodyTimeout: t.idleMs,
      },
      this,
    );
    const mirror = rule!.mirror;
    if (mirror && !this.isRetry && this.streamBody === undefined && backend === rule!.canary?.stable) {
      if (mirror.wants(proxy.random())) this.mirrorTo(rule!, mirror);
    }
  }

  /** A copy of this request to the rollout's canary (mirror.ts); its answer is discarded. */
  private mirrorTo(rule: RuntimeRule, mirror: Mirror): void {
    const { proxy } = this;
    const canary = rule.canary!.canary;
    const endpoint = canary.balancer.pick(NO_HASH) ?? canary.drainingBalancer.pick(NO_HASH);
    if (!endpoint) return;
    let pool = canary.pools.get(endpoint.id);
    if (pool === undefined || pool.closed) {
      pool = proxy.pools.get(endpoint.id, canary.pool);
      canary.pools.set(endpoint.id, pool);
    }
    const headers = canary.credentials
      ? withCredentials(this.headers!, canary.credentials)
      : { ...this.headers! };
    const info = proxy.endpoints.lookup(endpoint.id);
    if (this.hostRewrite !== undefined) headers.host = this.hostRewrite;
    else if (info?.hostHeader !== undefined) headers.host = info.hostHeader;
    const t = rule.compiled.timeouts;
    const rollout = rule.canary!.compiled.rollout;
    const sent = mirror.send(
      pool,
      {
        method: this.req.method ?? 'GET',
        path: (this.upstreamPath ?? this.path) + this.query,
        headers,
        body: this.replayBody,
        headersTimeoutMs: t.firstByteMs,
        bodyTimeoutMs: t.idleMs,
      },
      proxy.now,
      (o) => proxy.rolloutStats.record(rollout, canary.name, o.status, o.durationS, o.ttfbS),
    );
    proxy.metrics.mirrored.child([rule.compiled.route, sent ? 'sent' : 'skipped']).value++;
  }

  private pickEndpoint(backend: RuntimeBackend): EndpointState | undefined {
    const hashOn = this.rule!.compiled.loadBalancing.hashOn;
    const ctx = hashOn
      ? { hashKey: hashOn.consumer ? this.identity?.consumer : hashKeyOf(this.req, hashOn) }
      : NO_HASH;
    let ep = backend.balancer.pick(ctx) ?? backend.drainingBalancer.pick(ctx);
    // A retry goes elsewhere when it can: a few more picks, then take what there is.
    for (let i = 0; i < 4 && ep && this.tried?.includes(ep.id); i++) {
      ep = backend.balancer.pick(NO_HASH) ?? ep;
    }
    return ep;
  }

  /** Ends the current attempt's accounting (not the exchange). */
  private endAttempt(): void {
    if (!this.attemptOpen) return;
    this.attemptOpen = false;
    this.endpoint!.inFlight--;
    this.rule!.inFlight.value--;
    if (this.isRetry) this.rule!.retries.active--;
  }

  /**
   * Whether a failed attempt may be retried: attempts left, a replayable body, nothing sent to
   * the client, the condition listed in `retryOn`, and room in the retry budget.
   */
  private mayRetry(condition: string, status?: number): boolean {
    const rule = this.rule!;
    const r = rule.compiled.retries;
    if (
      this.attempts > r.attempts ||
      this.streamBody ||
      this.res.headersSent ||
      this.clientAborted ||
      this.made
    )
      return false;
    const listed =
      r.retryOn.includes(condition) || (status !== undefined && status >= 500 && r.retryOn.includes('5xx'));
    if (!listed) return false;
    const budget = Math.max(MIN_RETRY_CONCURRENCY, Math.floor((r.budgetPercent / 100) * rule.inFlight.value));
    if (rule.retries.active >= budget) {
      rule.retries.budgetExhausted.value++;
      return false;
    }
    return true;
  }

  private retry(reason: string): void {
    this.rule!.retries.counter(reason).value++;
    this.isRetry = true;
    this.firstByteAt = 0;
    this.attempt();
  }

  /** A gRPC deadline in ms (`grpc-timeout`), when the client set one. */
  private deadlineMs: number | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;

  /**
   * gRPC deadlines bound the whole call, streams included, so they get one timer per call that
   * sets one; the route's socket-level timeouts still apply underneath.
   */
  private startDeadline(): void {
    const ms = grpcTimeoutMs(this.req.headers['grpc-timeout']);
    if (ms === undefined) return;
    this.deadlineMs = ms;
    this.deadlineTimer = setTimeout(() => {
      if (this.done) return;
      this.deadlineExceeded = true;
      if (this.controller) this.controller.abort(new Error('grpc deadline exceeded'));
      else this.proxy.fail(this, Errors.UpstreamTimeout, 'the gRPC deadline passed');
    }, ms);
    this.deadlineTimer.unref();
  }

  private deadlineExceeded = false;
  /** The response was a gRPC trailers-only answer, already complete. */
  private trailersOnly = false;

  /** The client went away before the response ended: stop the upstream request (frees the GPU). */
  private readonly onClientClose = (): void => {
    if (this.done || this.res.writableFinished) return;
    this.clientAborted = true;
    if (this.controller) this.controller.abort(new Error('client disconnected'));
    else if (!this.endpoint) this.abandon(); // still reading the body or waiting on a filter
  };

  /**
   * Whether an error answered now closes the (HTTP/1) connection. A request refused before its
   * body was read (credentials, a declared length over the limit) would otherwise have node:http
   * read and discard the rest to keep the connection: a caller refused for its credentials must
   * not make the gateway take in megabytes, even to drop them. A small declared body is left to
   * node:http and the connection stays usable. A body whose reading stopped midway (413) cannot
   * be resumed: its connection closes too.
   */
  closesConnection(): boolean {
    const req = this.req;
    if (req.httpVersionMajor !== 1 || req.complete) return false;
    // Refused before `100 Continue`: the client may or may not send its body (node:http closes too).
    if (this.continuePending) return true;
    if (req.readableFlowing === false) return true; // paused midway
    if (req.readableFlowing !== null || !hasBody(req)) return false; // streaming, or nothing to read
    const cl = declaredLength(req);
    return cl < 0 || cl > SMALL_UNREAD_BODY;
  }

  /**
   * The body is about to be read: a client that sent `Expect: 100-continue` gets its
   * `100 Continue` now, once (node:http's 'checkContinue' leaves it to the gateway, so that a
   * request refused before its body is read gets its final status instead, and never sends it).
   */
  readingBody(): void {
    if (!this.continuePending) return;
    this.continuePending = false;
    this.res.writeContinue();
  }

  /** The client left before an upstream was involved. */
  private abandon(): void {
    this.clientAborted = true;
    this.status = 499;
    this.complete();
  }

  // --- composition (compose/composition.ts) ---

  /** What a composition's calls inherit: the upstream path (after a rewrite) and the Host rules. */
  upstreamTarget(): { path: string; hostRewrite: string | undefined; authority: string | undefined } {
    return { path: this.upstreamPath ?? this.path, hostRewrite: this.hostRewrite, authority: this.authority };
  }

  /**
   * The last pipeline step: sent as this request's upstream call, so its answer streams to the
   * client and is transformed, counted and logged as any answer, under `backend`. `path` carries
   * its own query; `firstByteMs` (the step's timeout) shortens the rule's first-byte timeout.
   */
  continueWith(
    backend: RuntimeBackend,
    call: {
      method: string;
      path: string;
      headers: OutgoingHeaders;
      body: Buffer | null;
      firstByteMs: number | undefined;
    },
    observer: ExchangeObserver,
  ): void {
    if (this.done) return;
    this.backend = backend;
    this.headers = call.headers;
    this.replayBody = call.body;
    this.upstreamMethod = call.method;
    this.upstreamPath = call.path;
    this.query = '';
    this.deadlineMs = call.firstByteMs;
    if (this.observers) this.observers.push(observer);
    else this.observers = [observer];
    this.attempt();
  }

  /**
   * A body the composition made (a fan-out's merged answer), counted under `backend`: it goes
   * through the response side as an upstream's 200 would (observers, response transforms, the
   * filters' headers, CORS, compression). `startedAt`: when its calls started, for the ttfb.
   */
  respondComposed(backend: RuntimeBackend, body: Buffer, startedAt: number): void {
    this.respondMade(backend, undefined, 200, { 'content-type': 'application/json' }, body, startedAt);
  }

  /**
   * An answer the gateway made from its backend calls (a fan-out's merge, a translated reply),
   * sent through the response side as an upstream's answer would be. `backend`: what it is counted
   * under (undefined: not counted, as for a refusal before any call); `endpoint`: the endpoint that
   * answered, for the access log (its latency was observed by the call). `headers` get the
   * content-length here.
   */
  respondMade(
    backend: RuntimeBackend | undefined,
    endpoint: EndpointState | undefined,
    status: number,
    headers: Record<string, string>,
    body: Buffer,
    startedAt: number,
  ): void {
    if (this.done) return;
    this.made = true;
    this.backend = backend;
    if (endpoint) {
      this.endpoint = endpoint;
      this.latencyObserved = true;
    }
    this.sentAt = startedAt;
    this.onResponseStart(NO_CONTROLLER, status, { ...headers, 'content-length': String(body.length) });
    if (body.length > 0) this.onResponseData(NO_CONTROLLER, body);
    this.onResponseEnd(NO_CONTROLLER, {});
  }

  // --- undici dispatch handler ---

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.clientAborted) controller.abort(new Error('client disconnected'));
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    if (statusCode < 200) return; // 1xx (interim) answers of the upstream are not passed on
    if (statusCode >= 500 && this.mayRetry(String(statusCode), statusCode)) {
      this.retryPending = true;
      this.status = statusCode;
      controller.abort(RETRY_ABORT);
      return;
    }
    this.firstByteAt = this.proxy.now();
    this.status = statusCode;
    const out = clientResponseHeaders(headers, this.requestId);
    if (this.extraResponseHeaders) Object.assign(out, this.extraResponseHeaders);
    if (this.observers) {
      // Transformers chain in filter order: the first sees the upstream's bytes (a token meter
      // reads usage before a response transform may remove it).
      for (const o of this.observers) {
        const t = o.onResponseStart?.(statusCode, headers, out);
        if (t) this.transform = this.transform ? chainTransformers(this.transform, t) : t;
      }
    }
    // Rollout counters include model tokens: meter the upstream's answer unless a filter already does.
    if (!this.transform?.tokens && this.backend && this.rule!.canary?.governs(this.backend)) {
      const tap = usageTap(statusCode, headers);
      if (tap) this.transform = this.transform ? chainTransformers(tap, this.transform) : tap;
    }
    if (this.transform?.changesLength) delete out['content-length'];
    const type = headers['content-type'];
    const eventStream = typeof type === 'string' && type.startsWith('text/event-stream');
    if (eventStream) {
      this.streaming = true;
      this.rule!.activeStreams.value++;
    }
    const compression = this.rule!.compiled.compression;
    const coding =
      compression.enabled && !eventStream
        ? chooseCoding(
            headerString(this.req.headers['accept-encoding']),
            headers,
            compression.minBytes,
            this.req.method,
          )
        : undefined;
    if (coding) {
      compressedHeaders(out, coding);
      const compressor = createCompressor(coding);
      compressor.pipe(this.res);
      compressor.on('error', () => this.res.destroy());
      this.sink = compressor;
    }
    if (headers['grpc-status'] !== undefined && isHttp2(this.res)) {
      // A gRPC trailers-only answer (an error with no message): it must end in its HEADERS frame.
      this.trailersOnly = true;
      respondTrailersOnly(this.res, statusCode, out);
      return;
    }
    this.res.writeHead(statusCode, out);
    // node:http holds the head back to send it with the first body chunk. For an event stream the
    // first event may be a long prefill away, and the client should know the request got through.
    if (eventStream && typeof this.res.flushHeaders === 'function') this.res.flushHeaders();
  }

  onResponseData(controller: Dispatcher.DispatchController, upstreamChunk: Buffer): void {
    this.bytesOut += upstreamChunk.length;
    let chunk: Buffer | undefined = upstreamChunk;
    if (this.transform) {
      chunk = this.transform.data(upstreamChunk);
      if (chunk === undefined || chunk.length === 0) return;
    }
    const sink = this.sink ?? this.res;
    if (!sink.write(chunk)) {
      // Backpressure: a slow client pauses the upstream read instead of growing our buffers.
      controller.pause();
      this.resumeUpstream ??= () => this.controller?.resume();
      sink.once('drain', this.resumeUpstream);
    }
  }

  onResponseEnd(
    _controller: Dispatcher.DispatchController,
    trailers: Record<string, string | string[] | undefined>,
  ): void {
    // Trailers (gRPC's grpc-status) travel in HTTP/2 responses, or chunked HTTP/1.1 ones.
    if (trailers && (this.res.chunkedEncoding || isHttp2(this.res))) {
      for (const _ in trailers) {
        this.res.addTrailers(trailers as Record<string, string>);
        break;
      }
    }
    const rest = this.transform?.end();
    if (rest !== undefined && rest.length > 0) (this.sink ?? this.res).write(rest);
    this.responseEnded = true;
    if (this.sink) this.sink.end();
    else if (!this.trailersOnly) this.res.end();
    this.outcome('success');
    this.complete();
  }

  onResponseError(controller: Dispatcher.DispatchController, err: Error): void {
    if (this.done || (this.controller !== undefined && controller !== this.controller)) return;
    if (this.retryPending) {
      this.retryPending = false;
      this.outcome('error');
      this.endAttempt();
      this.retry(String(this.status));
      return;
    }
    if (this.deadlineExceeded) {
      this.rule!.timeouts.counter('deadline').value++;
      if (this.res.headersSent && isHttp2(this.res)) {
        // Mid-stream: end the call with the deadline status in the trailers.
        this.res.addTrailers({
          'grpc-status': String(GrpcStatus.DEADLINE_EXCEEDED),
          'grpc-message': 'deadline%20exceeded',
        });
        this.res.end();
        this.complete();
      } else this.proxy.fail(this, Errors.UpstreamTimeout, 'the gRPC deadline passed');
      return;
    }
    if (this.clientAborted) {
      this.status = 499; // nginx's "client closed request", for logs and metrics
      this.rule!.clientAborts.value++;
      this.complete();
      return;
    }
    if (this.bodyTooLarge) {
      this.proxy.fail(this, Errors.BodyTooLarge);
      return;
    }
    const failure = classifyUpstreamError(err as Error & { code?: string });
    if (failure.kind === 'timeout' || failure.kind === 'connect-timeout') {
      this.rule!.timeouts.counter(failure.timeout!).value++;
    }
    this.outcome(
      failure.kind === 'connect' || failure.kind === 'connect-timeout'
        ? 'connect-failure'
        : failure.kind === 'timeout'
          ? 'timeout'
          : 'error',
    );
    const condition = retryCondition(failure.kind);
    if (condition && this.mayRetry(condition)) {
      this.endAttempt();
      this.retry(condition);
      return;
    }
    if (this.res.headersSent) {
      // Mid-response: the only honest signal left is to cut the connection.
      this.code = failure.error.code;
      this.sink?.destroy();
      this.res.destroy();
      this.complete();
      return;
    }
    this.proxy.fail(this, failure.error);
  }

  /** Passive health: tells the proxy how the attempt went on its endpoint. */
  private outcome(o: 'success' | 'error' | 'connect-failure' | 'timeout'): void {
    const ep = this.endpoint;
    if (!ep) return;
    const result = o === 'success' && this.status >= 500 ? 'error' : o;
    this.proxy.endpointOutcome(ep, this.backend!, this.rule!, result);
  }

  /** Bookkeeping once, however the exchange ended. */
  complete(): void {
    if (this.done) return;
    this.done = true;
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    const { proxy, rule, backend, endpoint, table } = this;
    const now = proxy.now();
    this.res.off('close', this.onClientClose);
    this.endAttempt();
    if (endpoint && this.firstByteAt > 0 && !this.latencyObserved) {
      observeLatency(endpoint, this.firstByteAt - this.sentAt, now);
    }
    if (this.streaming) rule!.activeStreams.value--;
    if (rule && backend && table) {
      if (rule.canary?.governs(backend)) {
        proxy.rolloutStats.record(
          rule.canary.compiled.rollout,
          backend.name,
          this.status,
          (now - this.startedAt) / 1000,
          this.firstByteAt > 0 ? (this.firstByteAt - this.sentAt) / 1000 : -1,
          this.transform?.tokens?.() ?? 0,
        );
      }
      table.requestCounter(rule, backend, this.modelLabel, this.status).value++;
      backend.duration.observe((now - this.startedAt) / 1000);
      if (this.firstByteAt > 0) backend.ttfb.observe((this.firstByteAt - this.sentAt) / 1000);
    }
    this.span.end(this.status, this.code || (this.clientAborted ? 'client_aborted' : undefined));
    proxy.record(this, now);
    this.notifyEnd();
  }

  /** Tells the filters' observers how the exchange ended; once, and only once it has. */
  private notifyEnd(): void {
    const observers = this.observers;
    if (!observers || !this.done) return;
    this.observers = undefined;
    const started = this.firstByteAt > 0;
    const end = {
      status: this.status,
      responseStarted: started,
      clientAborted: this.clientAborted,
      incomplete: started && !this.responseEnded,
      backend: this.backend?.name,
    };
    for (const o of observers) {
      try {
        o.onEnd(end);
      } catch (e) {
        this.proxy.logger.error({ err: e }, 'a filter failed at the end of an exchange');
      }
    }
  }
}

/** True for node:http2's compatibility response (it has a `stream`). */
function isHttp2(res: ServerResponse): boolean {
  return (res as unknown as { stream?: unknown }).stream !== undefined;
}

/** Which `retryOn` condition an upstream failure is. */
function retryCondition(kind: FailureKind): string | undefined {
  switch (kind) {
    case 'connect':
    case 'connect-timeout':
      return 'connect-failure';
    case 'reset':
      return 'reset';
    case 'timeout':
      return 'timeout';
    default:
      return undefined;
  }
}

/**
 * The model a request body names (undefined: none), or why the body is refused: it cannot be
 * decoded, decodes past `limit`, names the model twice, or names another model than the x-model
 * header (`headerModel`).
 */
function bodyModel(
  chunks: readonly Buffer[],
  size: number,
  req: IncomingMessage,
  limit: number,
  headerModel: string | undefined,
): { model: string | undefined } | { error: ErrorDefinition; message?: string } {
  if (size === 0) return { model: undefined };
  const scan = scanModel(chunks, headerString(req.headers['content-encoding']), limit);
  if (scan.kind === 'too-large') return { error: Errors.BodyTooLarge };
  if (scan.kind === 'bad-encoding') return { error: Errors.BadContentEncoding };
  if (scan.kind === 'ambiguous') return { error: Errors.ModelAmbiguous };
  const model = scan.kind === 'found' ? scan.model : undefined;
  if (headerModel !== undefined && model !== undefined && headerModel !== model) {
    return {
      error: Errors.ModelMismatch,
      message: `the x-model header names ${headerModel} but the body names ${model}`,
    };
  }
  return { model };
}

export function headerString(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v;
}

/**
 * The request headers for a backend the gateway holds a credential for: the client's own
 * credentials are removed (they belong to the gateway's auth, not to the hosted API) and the
 * backend's is set. A copy, because a retry may go to a backend without one.
 */
export function withCredentials(
  headers: OutgoingHeaders,
  c: { header: string; headerValue: string },
): OutgoingHeaders {
  const out = { ...headers };
  delete out.authorization;
  delete out['x-api-key'];
  delete out['api-key'];
  out[c.header] = c.headerValue;
  return out;
}

export function hashKeyOf(
  req: IncomingMessage,
  on: { header?: string; cookie?: string },
): string | undefined {
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
