/**
 * WebSocket upgrades through the proxy: routed like any request (no body, so a model match uses
 * the x-model header), filtered, balanced, then tunnelled by websocket.ts. Accounting mirrors
 * Exchange: in-flight counts while the tunnel is open, passive health on the handshake result, a
 * request counter and an access-log line when it closes.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { Errors } from './errors.ts';
import type { ExchangeObserver, FilterContext } from './filters/filter.ts';
import type { GatewayProxy } from './proxy.ts';
import { normalizePath } from './request/normalize-path.ts';
import { hostOf } from './router/router.ts';
import { requestIdFor, traceparentFor, upstreamRequestHeaders } from './upstream/headers.ts';
import { proxyUpgrade, rejectUpgradeWith } from './websocket.ts';

export function handleUpgrade(proxy: GatewayProxy, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  const requestId = requestIdFor(req.headers['x-request-id']);
  const started = proxy.now();
  const refuse = (e: (typeof Errors)[keyof typeof Errors], message?: string) => {
    proxy.metrics.gatewayError(e.code);
    rejectUpgradeWith(socket, e, requestId, message);
  };
  const table = proxy.table;
  if (!table || proxy.draining) {
    refuse(Errors.NotReady);
    return;
  }
  const target = normalizePath(req.url ?? '');
  if (!target.ok) {
    refuse(Errors.BadPath, `the request path is not valid: ${target.reason}`);
    return;
  }
  const host = hostOf(req.headers.host);
  const headerModel = typeof req.headers['x-model'] === 'string' ? req.headers['x-model'] : null;
  const r = table.router.route({
    host,
    path: target.path,
    query: target.query,
    method: req.method ?? 'GET',
    headers: req.headers,
    model: headerModel,
  });
  if (r.kind !== 'matched') {
    refuse(Errors.NoRoute);
    return;
  }
  const rule = r.match.rule;
  if (rule.composition) {
    // A pipeline or fan-out answers with JSON; there is no one upstream to tunnel to.
    refuse(Errors.BadRequest, 'this route composes several calls and does not take WebSocket upgrades');
    return;
  }
  if (rule.translation) {
    // Each REST request is translated into one gRPC call; a tunnel would carry neither.
    refuse(
      Errors.BadRequest,
      'this route translates KServe v2 REST to gRPC and does not take WebSocket upgrades',
    );
    return;
  }
  const trace = traceparentFor(req.headers.traceparent);
  const peer = req.socket.remoteAddress ?? '';
  const headers = upstreamRequestHeaders(req.headers, {
    clientAddress: peer,
    trustForwarded: proxy.trustedProxies.trusts(peer),
    proto: (req.socket as { encrypted?: boolean }).encrypted === true ? 'https' : proxy.proto,
    host: req.headers.host,
    requestId,
    traceparent: trace.header,
    upstreamHost: undefined,
  });

  /** Filters' observers (a rate limit's in-flight slot): told when the tunnel ends, however it ends. */
  let observers: ExchangeObserver[] | undefined;
  /** What the filters left for the upstream: the path (a rewrite) and a Host header. */
  let upstreamPath = target.path;
  let hostRewrite: string | undefined;
  const notifyEnd = (status: number) => {
    const list = observers;
    observers = undefined;
    for (const o of list ?? []) {
      try {
        o.onEnd({ status, responseStarted: status === 101, clientAborted: false, incomplete: false });
      } catch (e) {
        proxy.logger.error({ err: e }, 'a filter failed at the end of a WebSocket tunnel');
      }
    }
  };

  const proceed = () => {
    let backend = table.pickBackend(rule, proxy.random);
    let endpoint = backend && (backend.balancer.pick({}) ?? backend.drainingBalancer.pick({}));
    if (!endpoint && rule.fallback) {
      backend = rule.fallback;
      endpoint = backend.balancer.pick({}) ?? backend.drainingBalancer.pick({});
    }
    if (!backend || !endpoint) {
      refuse(Errors.NoHealthyUpstream);
      notifyEnd(Errors.NoHealthyUpstream.status);
      return;
    }
    const info = proxy.endpoints.lookup(endpoint.id);
    if (hostRewrite !== undefined) headers.host = hostRewrite;
    else if (info?.hostHeader !== undefined) headers.host = info.hostHeader;
    const tls = backend.pool.tls;
    endpoint.inFlight++;
    rule.inFlight.value++;
    const ep = endpoint;
    const be = backend;
    const t = rule.compiled.timeouts;
    proxyUpgrade(
      req,
      socket,
      head,
      {
        origin: endpoint.id,
        path: upstreamPath + target.query,
        headers,
        idleTimeoutMs: t.idleMs,
        connectTimeoutMs: t.connectMs,
        requestId,
        tls: tls && {
          ca: tls.caPem,
          servername: tls.serverName,
          rejectUnauthorized: !tls.insecureSkipVerify,
        },
      },
      {
        onClose: (closed) => {
          ep.inFlight--;
          rule.inFlight.value--;
          notifyEnd(closed.status || 499);
          const outcome =
            closed.status === 101
              ? 'success'
              : closed.failure === 'connect'
                ? 'connect-failure'
                : closed.failure === 'connect-timeout' || closed.failure === 'timeout'
                  ? 'timeout'
                  : 'error';
          if (closed.status === 101 || closed.failure) proxy.endpointOutcome(ep, be, rule, outcome);
          if (closed.code) proxy.metrics.gatewayError(closed.code);
          table.requestCounter(
            rule,
            be,
            table.modelLabelIndex(r.match.model?.label, undefined),
            closed.status || 499,
          ).value++;
          proxy.recordUpgrade({
            requestId,
            traceId: trace.traceId,
            method: req.method ?? 'GET',
            host,
            path: target.path,
            rule: rule.compiled,
            backend: be.name,
            endpoint: ep.id,
            status: closed.status,
            code: closed.code ?? '',
            durationMs: proxy.now() - started,
            bytesIn: closed.bytesIn,
            bytesOut: closed.bytesOut,
          });
        },
      },
    );
  };

  if (!rule.filters) {
    proceed();
    return;
  }
  const ctx: FilterContext = {
    req,
    res: undefined as unknown as FilterContext['res'],
    requestId,
    rule: rule.compiled,
    model: headerModel ?? undefined,
    upstreamHeaders: headers,
    path: target.path,
    hostRewrite: undefined,
    responseHeaders: undefined,
    identity: undefined,
    clientIp: proxy.trustedProxies.clientAddress(peer, req.headers['x-forwarded-for']),
    body: undefined,
    observers: undefined,
  };
  const settle = (o: Awaited<ReturnType<NonNullable<typeof rule.filters>>>) => {
    observers = ctx.observers;
    upstreamPath = ctx.path;
    hostRewrite = ctx.hostRewrite;
    // A filter's own answer (a cache hit) never happens here: the cache passes upgrades by.
    if (o && 'error' in o) {
      notifyEnd(o.error.status);
      proxy.metrics.gatewayError(o.error.code);
      rejectUpgradeWith(socket, o.error, requestId, o.message);
      return;
    }
    proceed();
  };
  const outcome = rule.filters(ctx);
  if (outcome instanceof Promise) outcome.then(settle, () => refuse(Errors.Internal));
  else settle(outcome);
}
