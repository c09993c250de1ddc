/**
 * The transform filter (see filters/filter.ts): a rule's `transform`, built once per table.
 *
 * Per request, in this order: request headers (remove, set, add), the path and Host rewrites
 * (through FilterContext.path and hostRewrite, which the proxy applies to every attempt), then the
 * JSON request body. It runs after authentication, validation and rate limiting (proxy.ts), so
 * limits are keyed by what the client sent and validation saw the client's body. Response
 * changes are an observer shared by the rule's requests: header changes on every upstream answer
 * (not on the gateway's own errors), body changes on qualifying JSON answers (response-body.ts).
 *
 * A rule with only header and path changes reads no body and allocates nothing per request
 * beyond what the changes themselves need.
 */
import type { ProxyMetrics } from '../../observability/proxy-metrics.ts';
import type { CompiledBodyOp, CompiledRule, CompiledTransform } from '../../routing-table/types.ts';
import type {
  BodyTransformer,
  ExchangeObserver,
  Filter,
  FilterContext,
  FilterFactory,
  FilterOutcome,
} from '../filters/filter.ts';
import { decodeContent } from '../request/model-field.ts';
import type { OutgoingHeaders } from '../upstream/headers.ts';
import { HeaderOps } from './header-ops.ts';
import { type PathRewriter, pathRewriter } from './path-rewrite.ts';
import { JsonResponseRewrite, rewriteJson, type SkipReason, unrewritable } from './response-body.ts';

export class TransformFilterFactory implements FilterFactory {
  readonly name = 'transform';
  private readonly metrics: ProxyMetrics;

  constructor(metrics: ProxyMetrics) {
    this.metrics = metrics;
  }

  build(rule: CompiledRule): Filter | undefined {
    return rule.transform ? new TransformFilter(rule, rule.transform, this.metrics) : undefined;
  }
}

/** Counts bodies passed unchanged, per direction and reason; cells bound on first use. */
class SkipCounter {
  private readonly metrics: ProxyMetrics;
  private readonly route: string;
  private readonly direction: 'request' | 'response';
  constructor(metrics: ProxyMetrics, route: string, direction: 'request' | 'response') {
    this.metrics = metrics;
    this.route = route;
    this.direction = direction;
  }
  readonly count = (reason: SkipReason): void => {
    this.metrics.transformSkipped.child([this.route, this.direction, reason]).value++;
  };
}

/** Response changes of one rule, shared by its requests. */
class ResponseTransform implements ExchangeObserver {
  private readonly headers: HeaderOps | undefined;
  private readonly body: readonly CompiledBodyOp[] | undefined;
  private readonly maxBytes: number;
  private readonly skipped: SkipCounter;

  constructor(r: NonNullable<CompiledTransform['response']>, skipped: SkipCounter, withBody: boolean) {
    this.headers = r.headers ? new HeaderOps(r.headers) : undefined;
    this.body = withBody ? r.body : undefined;
    this.maxBytes = r.maxBodyBytes;
    this.skipped = skipped;
  }

  onResponseStart(
    status: number,
    headers: Record<string, string | string[] | undefined>,
    clientHeaders: OutgoingHeaders,
  ): BodyTransformer | undefined {
    this.headers?.apply(clientHeaders);
    if (!this.body || status < 200 || status >= 300 || status === 204) return undefined;
    const reason = unrewritable(headers, this.maxBytes);
    if (reason) {
      this.skipped.count(reason);
      return undefined;
    }
    return new JsonResponseRewrite(this.body, this.maxBytes, this.skipped.count);
  }

  onEnd(): void {}
}

class TransformFilter implements Filter {
  readonly name = 'transform';
  readonly readsBody: boolean;
  private readonly requestHeaders: HeaderOps | undefined;
  private readonly rewritePath: PathRewriter | undefined;
  private readonly hostname: string | undefined;
  private readonly requestBody: readonly CompiledBodyOp[] | undefined;
  private readonly maxRequestBytes: number;
  private readonly requestSkipped: SkipCounter;
  /** For requests whose answer has a body, and for HEAD requests (headers only). */
  private readonly response: ResponseTransform | undefined;
  private readonly headResponse: ResponseTransform | undefined;
  private readonly identityUpstream: boolean;

  constructor(rule: CompiledRule, t: CompiledTransform, metrics: ProxyMetrics) {
    const req = t.request;
    this.requestHeaders = req?.headers ? new HeaderOps(req.headers) : undefined;
    this.rewritePath = req?.path ? pathRewriter(req.path) : undefined;
    this.hostname = req?.hostname;
    this.requestBody = req?.body && req.body.length > 0 ? req.body : undefined;
    this.readsBody = this.requestBody !== undefined;
    this.maxRequestBytes = rule.maxRequestBodyBytes;
    this.requestSkipped = new SkipCounter(metrics, rule.route, 'request');
    const res = t.response;
    if (res && (res.headers || res.body)) {
      const skipped = new SkipCounter(metrics, rule.route, 'response');
      this.response = new ResponseTransform(res, skipped, true);
      this.headResponse = res.headers ? new ResponseTransform(res, skipped, false) : undefined;
    }
    // Answers must come uncompressed to be rewritten; the gateway's own compression still applies.
    this.identityUpstream = res?.body !== undefined && res.body.length > 0;
  }

  onRequest(ctx: FilterContext): FilterOutcome {
    this.requestHeaders?.apply(ctx.upstreamHeaders);
    if (this.rewritePath) ctx.path = this.rewritePath(ctx.path);
    if (this.hostname !== undefined) ctx.hostRewrite = this.hostname;
    if (this.requestBody && ctx.body !== undefined && ctx.body.length > 0)
      this.rewriteBody(ctx, this.requestBody);
    if (this.response) {
      const observer = ctx.req.method === 'HEAD' ? this.headResponse : this.response;
      if (observer) {
        if (ctx.observers) ctx.observers.push(observer);
        else ctx.observers = [observer];
      }
      if (this.identityUpstream) ctx.upstreamHeaders['accept-encoding'] = 'identity';
    }
    return undefined;
  }

  /** The JSON body with the rule's changes; unchanged (and counted) when it is not JSON. */
  private rewriteBody(ctx: FilterContext, ops: readonly CompiledBodyOp[]): void {
    const decoded = decodeContent([ctx.body!], ctx.req.headers['content-encoding'], this.maxRequestBytes);
    if (decoded.kind !== 'ok') {
      this.requestSkipped.count(decoded.kind === 'too-large' ? 'too_large' : 'encoded');
      return;
    }
    const out = rewriteJson(decoded.body, ops);
    if (out === undefined) {
      this.requestSkipped.count('not_json');
      return;
    }
    if (out === decoded.body) return;
    ctx.body = out;
    // Sent as identity: the proxy sets the new content-length.
    if (!decoded.identity) delete ctx.upstreamHeaders['content-encoding'];
  }
}
