/**
 * A translated rule at run time (CompiledRule.translation, kind KServeV2), built once per table.
 * Clients speak the KServe v2 REST/JSON shape, the rule's backends its gRPC shape. The exchange
 * hands a request over once its filters have run (authentication, validation, rate limiting, the
 * request transform and the cache lookup run as for any rule, on the REST request); from there:
 *
 * 1. the REST operation is read from the path the upstream would get (after a urlRewrite) and the
 *    method (rest-routes.ts); the body, for inference, is read within the route's limit and
 *    decoded (gzip, deflate, br) and translated into one gRPC frame (rest-json.ts). A request the
 *    translation refuses never reaches a backend.
 * 2. the frame goes to a backend as one buffered call (compose/step-call.ts): the backend the
 *    exchange would choose (weights, a CanaryRollout's choice, the cache's early choice), then its
 *    balancer, in-flight counts, retries within the budget, passive health, credentials, the
 *    rule's timeouts, and cancellation when the client leaves. A gRPC error status counts as the
 *    HTTP status it maps to (UNAVAILABLE is 503, INTERNAL 500…), for retries (`retryOn: ["503"]`
 *    or `5xx`) and outlier detection alike; the call's answer is held within `maxResponseSize`.
 *    When the chosen backend has no endpoint, the rule's fallbackBackend is tried.
 * 3. the gRPC answer (status in its trailers) is translated into the REST reply, which goes to the
 *    client through the exchange's response side (Exchange.respondMade): the filters' response
 *    headers, CORS, the response transform, compression, the cache's fill, request metrics under
 *    the backend, the access log.
 *
 * Every error of these steps is answered in the v2 REST error shape `{"error": message, "code"}`
 * (errors.ts), the gateway's own failures (MG_UPSTREAM_CONNECT_FAILED, MG_UPSTREAM_TIMEOUT…)
 * included, so a v2 client reads one shape; each is counted in modelgate_gateway_errors_total and
 * logged with its code. Refusals by the filters before (401, 429…) keep the gateway's shape.
 *
 * Headers to the backend: those any request to it gets (the client's, minus hop-by-hop ones, the
 * forwarding headers, x-request-id, traceparent, the filters' changes; per attempt the Host and the
 * backend's credentials), minus what describes the JSON body or HTTP content negotiation
 * (content-length, content-type, content-encoding, accept, accept-encoding, expect) and any grpc-*
 * header the client sent; plus content-type application/grpc, te: trailers, grpc-accept-encoding
 * identity and grpc-timeout set to the rule's first-byte timeout, so the server stops working when
 * the gateway would stop waiting.
 */
import type { CompiledKServeV2Translation, CompiledRule } from '../../routing-table/types.ts';
import type { EndpointState } from '../balancers/index.ts';
import { hasBody, readBody } from '../body.ts';
import { StepCall, type StepResult } from '../compose/step-call.ts';
import { type ErrorDefinition, Errors } from '../errors.ts';
import { type Exchange, hashKeyOf } from '../exchange.ts';
import { decodeContent } from '../request/model-field.ts';
import type { RuntimeBackend } from '../runtime-table.ts';
import type { OutgoingHeaders } from '../upstream/headers.ts';
import {
  errorReply,
  JSON_HEADERS,
  KServeError,
  KServeErrors,
  kserveErrorBody,
  type RestReply,
} from './errors.ts';
import { grpcStatusToHttp } from './grpc-frame.ts';
import { type GrpcCall, translateRequest, translateResponse } from './rest-json.ts';
import { type KServeOp, parseRestRoute } from './rest-routes.ts';

/** Request headers that describe the REST exchange, not the gRPC call. */
const NOT_FORWARDED = [
  'content-length',
  'content-type',
  'content-encoding',
  'accept',
  'accept-encoding',
  'expect',
  'transfer-encoding',
  'te',
  'inference-header-content-length',
] as const;

/** grpc-timeout's value for a number of milliseconds: at most 8 digits (PROTOCOL-HTTP2.md). */
export function grpcTimeoutValue(ms: number): string {
  const whole = Math.max(1, Math.ceil(ms));
  return whole <= 99_999_999 ? `${whole}m` : `${Math.min(99_999_999, Math.ceil(whole / 1000))}S`;
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/**
 * The status a gRPC answer is judged by for retries and passive health: its HTTP status when that
 * is not 200, else the HTTP status its grpc-status maps to (0 is 200); a 200 without a valid
 * grpc-status is a broken answer (502).
 */
export function grpcJudgedStatus(
  status: number,
  headers: Record<string, string | string[] | undefined>,
  trailers: Record<string, string | string[] | undefined>,
): number {
  if (status !== 200) return status;
  const v = first(trailers['grpc-status']) ?? first(headers['grpc-status']);
  if (v === undefined || !/^\s*\d+\s*$/.test(v)) return 502;
  const code = Number(v);
  return code === 0 ? 200 : grpcStatusToHttp(code);
}

/** A gateway error in the v2 REST error shape. */
function gatewayReply(e: ErrorDefinition, message = e.message): RestReply {
  return {
    status: e.status,
    headers: { ...JSON_HEADERS },
    body: kserveErrorBody(e.code, message),
    code: e.code,
  };
}

export class KServeRule {
  readonly compiled: CompiledKServeV2Translation;
  private readonly rule: CompiledRule;

  constructor(rule: CompiledRule, compiled: CompiledKServeV2Translation) {
    this.rule = rule;
    this.compiled = compiled;
  }

  /**
   * Takes the request over once the filters have run. `headers` are the upstream headers the
   * filters left; `body` the client's body when it is in memory already.
   */
  run(ex: Exchange, headers: OutgoingHeaders, body: Buffer | undefined): void {
    const route = parseRestRoute(ex.req.method, ex.upstreamTarget().path);
    if (!route.ok) {
      send(ex, errorReply(route.error, route.headers), undefined, undefined, ex.proxy.now());
      return;
    }
    const op = route.op;
    if (ex.model === undefined && 'model' in op) ex.model = op.model; // for the access log
    if (op.kind !== 'model_infer' || body !== undefined || !hasBody(ex.req)) {
      new Call(this, ex, op, headers, body).start();
      return;
    }
    const limit = this.rule.maxRequestBodyBytes;
    ex.readingBody();
    readBody(ex.req, limit).then(
      (read) => {
        if (ex.clientAborted) return;
        if (!read.ok) {
          // An aborted read ends with the client's close, which the exchange already handles.
          if (read.reason === 'too-large') {
            send(ex, gatewayReply(Errors.BodyTooLarge), undefined, undefined, ex.proxy.now());
          }
          return;
        }
        ex.bytesIn = read.size;
        const bytes = read.chunks.length === 1 ? read.chunks[0]! : Buffer.concat(read.chunks);
        new Call(this, ex, op, headers, bytes).start();
      },
      () => send(ex, gatewayReply(Errors.Internal), undefined, undefined, ex.proxy.now()),
    );
  }
}

/**
 * Sends a REST reply through the exchange's response side. An error reply is counted and logged
 * under its code, as the gateway's errors are.
 */
function send(
  ex: Exchange,
  reply: RestReply,
  backend: RuntimeBackend | undefined,
  endpoint: EndpointState | undefined,
  startedAt: number,
): void {
  if (reply.code !== undefined) {
    ex.code = reply.code;
    ex.proxy.metrics.gatewayError(reply.code);
  }
  ex.respondMade(backend, endpoint, reply.status, reply.headers, Buffer.from(reply.body, 'utf8'), startedAt);
}

/** One request through a translated rule. */
class Call {
  private readonly k: KServeRule;
  private readonly ex: Exchange;
  private readonly op: KServeOp;
  private readonly headers: OutgoingHeaders;
  private readonly body: Buffer | undefined;
  private call: StepCall | undefined;
  private finished = false;

  constructor(k: KServeRule, ex: Exchange, op: KServeOp, headers: OutgoingHeaders, body: Buffer | undefined) {
    this.k = k;
    this.ex = ex;
    this.op = op;
    this.headers = headers;
    this.body = body;
  }

  start(): void {
    const { ex } = this;
    const startedAt = ex.proxy.now();
    let text: Buffer | undefined;
    if (this.op.kind === 'model_infer' && this.body !== undefined && this.body.length > 0) {
      const encoding = first(this.headers['content-encoding']);
      const decoded = decodeContent([this.body], encoding, ex.rule!.compiled.maxRequestBodyBytes);
      if (decoded.kind === 'too-large') {
        send(ex, gatewayReply(Errors.BodyTooLarge), undefined, undefined, startedAt);
        return;
      }
      if (decoded.kind === 'bad-encoding') {
        send(ex, gatewayReply(Errors.BadContentEncoding), undefined, undefined, startedAt);
        return;
      }
      text = decoded.body;
    }
    const translated = translateRequest(this.op, text, ex.req.headers, {
      rawInputs: this.k.compiled.rawInputs,
    });
    if (!translated.ok) {
      send(ex, translated.reply, undefined, undefined, startedAt);
      return;
    }
    const backend = ex.backendForCall();
    if (!backend) {
      send(
        ex,
        gatewayReply(Errors.NoHealthyUpstream, 'every backend of this route has weight 0'),
        undefined,
        undefined,
        startedAt,
      );
      return;
    }
    ex.res.on('close', this.onClose);
    this.dispatch(backend, translated, startedAt).catch(this.crashed);
  }

  /** A bug, not a failure of the call: the client gets 500 rather than a hung request. */
  private readonly crashed = (e: unknown): void => {
    this.ex.proxy.logger.error({ err: e, rule: this.ex.rule?.compiled.id }, 'translation failed');
    if (this.finished) return;
    this.finish();
    send(this.ex, gatewayReply(Errors.Internal), this.ex.backend, undefined, this.ex.proxy.now());
  };

  /** The client left: stop the call in flight (the exchange has already recorded the 499). */
  private readonly onClose = (): void => {
    if (this.finished || this.ex.res.writableFinished) return;
    this.finished = true;
    this.call?.stop('cancelled', 'the client closed the connection');
  };

  private finish(): void {
    this.finished = true;
    this.ex.res.off('close', this.onClose);
  }

  private grpcHeaders(grpc: GrpcCall): OutgoingHeaders {
    const out: OutgoingHeaders = {};
    for (const name in this.headers) {
      if (name.startsWith('grpc-')) continue;
      out[name] = this.headers[name]!;
    }
    for (const name of NOT_FORWARDED) delete out[name];
    Object.assign(out, grpc.headers);
    const firstByteMs = this.ex.rule!.compiled.timeouts.firstByteMs;
    if (firstByteMs > 0) out['grpc-timeout'] = grpcTimeoutValue(firstByteMs);
    return out;
  }

  private async dispatch(chosen: RuntimeBackend, grpc: GrpcCall, startedAt: number): Promise<void> {
    const { ex } = this;
    const rule = ex.rule!;
    const target = ex.upstreamTarget();
    const hashOn = rule.compiled.loadBalancing.hashOn;
    const hashKey = hashOn
      ? hashOn.consumer
        ? ex.identity?.consumer
        : hashKeyOf(ex.req, hashOn)
      : undefined;
    const headers = this.grpcHeaders(grpc);
    let backend = chosen;
    let r: StepResult;
    for (;;) {
      // Counted under this backend from now on, a client abort (499) included.
      ex.backend = backend;
      this.call = new StepCall(ex.proxy, rule, backend, {
        method: 'POST',
        path: grpc.grpcPath,
        headers,
        body: grpc.frame,
        hostRewrite: target.hostRewrite,
        authority: target.authority,
        hashKey,
        timeoutMs: undefined,
        maxResponseBytes: this.k.compiled.maxResponseBytes,
        statusOf: grpcJudgedStatus,
      });
      r = await this.call.result;
      if (this.finished) return;
      // The chosen backend has nothing to serve with: the rule's fallback, as for any request.
      if (!r.ok && r.kind === 'no_endpoint' && rule.fallback && rule.fallback !== backend) {
        backend = rule.fallback;
        continue;
      }
      break;
    }
    this.finish();
    if (r.ok) {
      const reply = translateResponse(
        this.op,
        { status: r.status, headers: r.headers, body: r.body, trailers: r.trailers },
        { maxMessageBytes: this.k.compiled.maxResponseBytes },
      );
      send(ex, reply, backend, r.endpoint, startedAt);
      return;
    }
    send(ex, this.failureReply(r), backend, undefined, startedAt);
  }

  private failureReply(r: Extract<StepResult, { ok: false }>): RestReply {
    switch (r.kind) {
      case 'timeout':
        return gatewayReply(Errors.UpstreamTimeout);
      case 'no_endpoint':
        return gatewayReply(Errors.NoHealthyUpstream);
      case 'bad_response': {
        // The only bad_response of a buffered call is an answer over its bound.
        return errorReply(
          new KServeError(
            KServeErrors.ResponseTooLarge,
            `the gRPC answer exceeds maxResponseSize (${this.k.compiled.maxResponseBytes} bytes)`,
          ),
        );
      }
      default:
        return gatewayReply(r.error, r.message);
    }
  }
}
