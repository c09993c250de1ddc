/**
 * A RateLimitPolicy prepared for requests, once per table: key builders, the caller's effective
 * amounts (tier overrides, and the split across proxies), queue priorities and the cached
 * RateLimit-Policy header value. Nothing here holds counters: those outlive tables (policy-state.ts).
 */
import type { CompiledLimit, CompiledRateLimitPolicy } from '../../routing-table/types.ts';
import type { Identity } from '../auth/identity.ts';
import type { FilterContext } from '../filters/filter.ts';
import { type PolicyDescription, rateLimitPolicyValue } from './headers.ts';
import { keyBuilder } from './limit-key.ts';

export interface PlannedLimit {
  readonly spec: CompiledLimit;
  readonly key: (ctx: FilterContext) => string;
  /** Counts model tokens (reserved at admission, reconciled at the end) rather than requests. */
  readonly tokens: boolean;
}

/** Most distinct amount tiers whose RateLimit-Policy value is cached (tiers are few in practice). */
const MAX_CACHED_DESCRIPTIONS = 64;

export class PolicyPlan {
  readonly policy: CompiledRateLimitPolicy;
  readonly limits: readonly PlannedLimit[];
  readonly hasTokenLimits: boolean;
  private readonly descriptions = new Map<string, string>();

  constructor(policy: CompiledRateLimitPolicy) {
    this.policy = policy;
    this.limits = policy.limits.map((spec) => ({
      spec,
      key: keyBuilder(spec.key),
      tokens: spec.cost === 'ModelTokens',
    }));
    this.hasTokenLimits = this.limits.some((l) => l.tokens);
  }

  /**
   * The caller's amount under each limit: the first override whose group the caller is in, else
   * the limit's own; divided among `proxies` when the policy splits a Local limit (rounded up, so
   * the cluster-wide total may exceed the amount by at most proxies − 1).
   */
  amounts(identity: Identity | undefined, proxies: number): number[] {
    const groups = identity?.groups;
    const split = this.policy.splitAcrossProxies === true && proxies > 1 ? proxies : 1;
    const out = new Array<number>(this.limits.length);
    for (let i = 0; i < this.limits.length; i++) {
      const spec = this.limits[i]!.spec;
      let amount = spec.amount;
      if (groups !== undefined && groups.length > 0) {
        for (const o of spec.overrides) {
          if (groups.includes(o.group)) {
            amount = o.amount;
            break;
          }
        }
      }
      out[i] = split > 1 ? Math.ceil(amount / split) : amount;
    }
    return out;
  }

  /** The RateLimit-Policy header value for these effective amounts (cached per tier). */
  policyHeader(amounts: readonly number[]): string {
    const key = amounts.join(',');
    let v = this.descriptions.get(key);
    if (v === undefined) {
      v = rateLimitPolicyValue(this.describe(amounts));
      if (this.descriptions.size >= MAX_CACHED_DESCRIPTIONS) this.descriptions.clear();
      this.descriptions.set(key, v);
    }
    return v;
  }

  describe(amounts: readonly number[]): PolicyDescription[] {
    return this.limits.map((l, i) => ({
      name: l.spec.name,
      quota: amounts[i]!,
      periodMs: l.spec.periodMs,
      cost: l.spec.cost,
    }));
  }

  /**
   * Queue level of a request: the first priority it matches (0 is served first); requests that
   * match none come after every listed level.
   */
  priorityOf(ctx: FilterContext): number {
    const priorities = this.policy.onExceeded.priorities;
    if (priorities === undefined) return 0;
    for (let i = 0; i < priorities.length; i++) {
      const p = priorities[i]!;
      if ('group' in p) {
        if (ctx.identity?.groups.includes(p.group)) return i;
      } else {
        const v = ctx.req.headers[p.header];
        if (v === p.value || (Array.isArray(v) && v.includes(p.value))) return i;
      }
    }
    return priorities.length;
  }
}

/** Units a limit can ever hold: a reservation above it could never be admitted. */
export function capacityOf(spec: CompiledLimit, amount: number): number {
  return spec.algorithm === 'TokenBucket' ? amount + spec.burst : amount;
}
