/**
 * Model-token accounting for limits with `cost: ModelTokens`:
 *
 * - at admission, a reservation: the prompt estimate plus the answer's bound (`max_tokens` and
 *   its successors, else the limit's completionTokensEstimate), capped at what the limit can ever
 *   hold, so a generous max_tokens is never refused forever;
 * - for a streamed request, the gateway asks for usage (`stream_options.include_usage`) when the
 *   client did not, and removes that extra chunk on the way back;
 * - at the end, the real count replaces the reservation (`adjust` by the difference): the usage
 *   the model server reported; or, for a stream cut short (client gone, upstream failure), the
 *   prompt estimate plus the chunks generated; or nothing for an answer that is an error or never
 *   came. A complete non-streamed answer without usage keeps the reservation (nothing better is
 *   known).
 *
 * The gateway asks upstream for an uncompressed answer (`accept-encoding: identity`) on these
 * routes, so usage can be read; its own compression towards the client still applies.
 */
import type { ProxyMetrics } from '../../observability/proxy-metrics.ts';
import type { BodyTransformer, ExchangeEnd, ExchangeObserver, FilterContext } from '../filters/filter.ts';
import type { Charge, Counter } from './counters.ts';
import { capacityOf, type PolicyPlan } from './policy-plan.ts';
import type { RouteGate } from './policy-state.ts';
import { inspectTokenRequest } from './usage/request-tokens.ts';
import { meterable, tokensOf, UsageMeter } from './usage/usage-meter.ts';

export interface TokenReservation {
  /** Per limit: the reservation for token limits (0 for request limits). */
  costs: number[];
  promptEstimate: number;
  /** The gateway added include_usage: the usage-only chunk is not the client's to see. */
  injectedUsage: boolean;
}

function identityEncoded(ctx: FilterContext): boolean {
  const enc = ctx.req.headers['content-encoding'];
  return enc === undefined || enc === '' || enc.toLowerCase() === 'identity';
}

/** Reads the body, rewrites it when usage must be asked for, and returns the reservations. */
export function reserveTokens(
  plan: PolicyPlan,
  ctx: FilterContext,
  amounts: readonly number[],
): TokenReservation {
  const body = ctx.body;
  const inspected =
    body !== undefined && body.length > 0 && identityEncoded(ctx)
      ? inspectTokenRequest(body, { defaultCompletionTokens: 0 })
      : undefined;
  if (inspected?.injectedUsage) ctx.body = inspected.body;
  ctx.upstreamHeaders['accept-encoding'] = 'identity';
  const promptEstimate = inspected?.promptEstimate ?? 0;
  // With defaultCompletionTokens 0, estimate − prompt is the request's own bound (0 if none).
  const bound = inspected === undefined ? 0 : inspected.estimate - inspected.promptEstimate;
  const costs = plan.limits.map((l, i) => {
    if (!l.tokens) return 0;
    const answer = bound > 0 ? bound : (l.spec.completionTokensEstimate ?? 0);
    return Math.min(promptEstimate + answer, Math.max(1, capacityOf(l.spec, amounts[i]!)));
  });
  return { costs, promptEstimate, injectedUsage: inspected?.injectedUsage === true };
}

/**
 * One admitted request, seen to its end: gives back the route's in-flight slot (waking the queue)
 * and settles token reservations.
 */
export class AdmittedRequest implements ExchangeObserver {
  private readonly gate: RouteGate;
  private readonly counter: Counter | undefined;
  private readonly plan: PolicyPlan;
  private readonly charge: Charge;
  private readonly tokens: TokenReservation | undefined;
  private readonly metrics: ProxyMetrics;
  private readonly route: string;
  private meter: UsageMeter | undefined;
  private streaming = false;
  private ended = false;

  constructor(
    gate: RouteGate,
    counter: Counter | undefined,
    plan: PolicyPlan,
    charge: Charge,
    tokens: TokenReservation | undefined,
    metrics: ProxyMetrics,
    route: string,
  ) {
    this.gate = gate;
    this.counter = counter;
    this.plan = plan;
    this.charge = charge;
    this.tokens = tokens;
    this.metrics = metrics;
    this.route = route;
  }

  onResponseStart(
    status: number,
    headers: Record<string, string | string[] | undefined>,
  ): BodyTransformer | undefined {
    if (this.tokens === undefined) return undefined;
    const how = meterable(status, headers);
    if (how === undefined) return undefined;
    this.streaming = how.streaming;
    const strip = this.streaming && this.tokens.injectedUsage;
    const meter = new UsageMeter({ streaming: this.streaming, stripUsageChunk: strip });
    this.meter = meter;
    return {
      data: (chunk) => meter.data(chunk),
      end: () => meter.end(),
      changesLength: strip,
      tokens: () => tokensOf(meter.result()),
    };
  }

  onEnd(end: ExchangeEnd): void {
    if (this.ended) return;
    this.ended = true;
    this.gate.leave();
    const tokens = this.tokens;
    const counter = this.counter;
    if (tokens === undefined || counter === undefined) return;
    const { charged, source } = this.actual(end);
    const limits = this.plan.limits;
    let counted = 0;
    for (let i = 0; i < limits.length; i++) {
      if (!limits[i]!.tokens) continue;
      const reserved = tokens.costs[i]!;
      // undefined: the reservation stands as the charge.
      if (charged !== undefined)
        counter.adjust(i, this.charge.keys[i]!, this.charge.amounts[i]!, charged - reserved);
      counted = Math.max(counted, charged ?? reserved);
    }
    if (counted > 0)
      this.metrics.rateLimitTokens.child([this.route, this.plan.policy.id, source]).value += counted;
  }

  /** What the request really cost (undefined: the reservation), and how that is known. */
  private actual(end: ExchangeEnd): { charged: number | undefined; source: string } {
    const meter = this.meter;
    if (meter !== undefined) {
      const r = meter.result();
      if (r.exact) return { charged: r.totalTokens, source: 'usage' };
      if (this.streaming && (end.incomplete || r.generatedChunks > 0)) {
        return { charged: this.tokens!.promptEstimate + r.generatedChunks, source: 'generated' };
      }
    }
    // No answer, or an error answer: nothing was generated.
    if (!end.responseStarted || end.status >= 300) return { charged: 0, source: 'estimate' };
    // An answer that did not say what it cost.
    return { charged: undefined, source: 'estimate' };
  }
}
