/**
 * Where a policy counts: in this process (LocalCounter) or in Redis (GlobalCounter, see
 * global-counter.ts). Both take every limit of a request all-or-nothing, so a request refused by
 * its second limit has not spent anything of its first, and both reconcile reservations with
 * `adjust` (model tokens: the real count replaces the estimate).
 */
import type { CompiledLimit } from '../../routing-table/types.ts';
import { LocalLimiter } from './local-store.ts';
import type { Decision } from './types.ts';

/** One request's charge: per limit of the policy, in policy order. */
export interface Charge {
  readonly keys: readonly string[];
  /** The caller's effective amount per limit (overrides applied). */
  readonly amounts: readonly number[];
  /** Units to take per limit (1 for requests, the reservation for model tokens). */
  readonly costs: readonly number[];
}

export interface CountResult {
  allowed: boolean;
  /** Per limit: what it decided (when refused, what each would have decided: nothing was taken). */
  decisions: Decision[];
}

export interface Counter {
  readonly scope: 'Local' | 'Global';
  /** Global counters answer asynchronously and may reject when the store is unreachable. */
  take(charge: Charge): CountResult | Promise<CountResult>;
  /** delta > 0 charges more (into debt if need be), delta < 0 gives back. Never throws. */
  adjust(limit: number, key: string, amount: number, delta: number): void;
  /** Keys dropped while still counting (local memory bound), for metrics. */
  readonly evictions: number;
  /** The store answers (always true for a local counter). */
  readonly up: boolean;
}

export class LocalCounter implements Counter {
  readonly scope = 'Local' as const;
  readonly up = true;
  private readonly limiter: LocalLimiter;
  private readonly now: () => number;

  constructor(limits: readonly CompiledLimit[], now: () => number, maxKeysPerLimit?: number) {
    this.limiter = new LocalLimiter(
      limits.map((l) => ({ algorithm: l.algorithm, amount: l.amount, periodMs: l.periodMs, burst: l.burst })),
      maxKeysPerLimit === undefined ? {} : { maxKeysPerLimit },
    );
    this.now = now;
  }

  get evictions(): number {
    return this.limiter.evictions;
  }

  take(charge: Charge): CountResult {
    const now = this.now();
    const n = charge.keys.length;
    const decisions = new Array<Decision>(n);
    for (let i = 0; i < n; i++) {
      const d = this.limiter.take(i, charge.keys[i]!, charge.costs[i]!, now, charge.amounts[i]);
      decisions[i] = d;
      if (!d.allowed) {
        // Undo the limits already taken (exact at the same `now`), then report what the rest
        // would have said, so the headers can name the limit with the longest wait.
        for (let j = 0; j < i; j++) {
          this.limiter.adjust(j, charge.keys[j]!, -charge.costs[j]!, now, charge.amounts[j]);
          decisions[j] = this.limiter.peek(j, charge.keys[j]!, charge.costs[j]!, now, charge.amounts[j]);
        }
        for (let j = i + 1; j < n; j++) {
          decisions[j] = this.limiter.peek(j, charge.keys[j]!, charge.costs[j]!, now, charge.amounts[j]);
        }
        return { allowed: false, decisions };
      }
    }
    return { allowed: true, decisions };
  }

  adjust(limit: number, key: string, amount: number, delta: number): void {
    if (delta === 0) return;
    this.limiter.adjust(limit, key, delta, this.now(), amount);
  }
}
