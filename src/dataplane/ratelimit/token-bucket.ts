/**
 * TokenBucket: holds up to amount + burst tokens, refilled continuously at `amount` per
 * `periodMs`, and starts full. A request of cost c takes c tokens.
 *
 * The deficit (capacity − tokens) is stored multiplied by periodMs, so one millisecond refills
 * exactly `amount` scaled units: for integer times and counts every step is integer arithmetic
 * (exact while (amount + burst) × periodMs < 2^53), and the wait for the next token is an exact
 * ceiling rather than a float that might land a hair short.
 *
 * Debt: a charge after admission can take tokens below zero; refill pays it back at the limit's
 * rate before anything is admitted again. A refund never fills beyond capacity.
 */
import type { Algorithm, Decision, LimitParams, LimitState } from './types.ts';
import { decision } from './types.ts';

function refill(s: LimitState, now: number, amount: number): void {
  // A clock that stepped back refills nothing and keeps the later time as the reference.
  if (now > s.start) {
    s.used = Math.max(0, s.used - (now - s.start) * amount);
    s.start = now;
  }
}

function decide(
  s: LimitState,
  cost: number,
  now: number,
  limit: LimitParams,
  amount: number,
  consume: boolean,
): Decision {
  // With no refill a burst would be a one-off grant: amount 0 means "never", burst or not.
  if (!(amount > 0)) return decision(false, 0, 0, Infinity);
  const period = limit.periodMs;
  refill(s, now, amount);
  const capacity = amount + limit.burst;
  const scaledCapacity = capacity * period;
  const scaledCost = cost * period;
  const allowed = cost <= capacity && s.used + scaledCost <= scaledCapacity;
  const after = allowed ? s.used + scaledCost : s.used;
  if (allowed && consume) s.used = after;
  const remaining = Math.max(0, Math.floor((scaledCapacity - after) / period));
  const resetMs = after > 0 ? Math.ceil(s.start + after / amount - now) : 0;
  let retryAfterMs = 0;
  if (!allowed) {
    if (cost > capacity) retryAfterMs = Infinity;
    else {
      // The deficit must fall to capacity − cost; it falls by `amount` per ms.
      const wait = Math.ceil((s.used + scaledCost - scaledCapacity) / amount);
      retryAfterMs = Math.max(1, Math.ceil(s.start + wait - now));
    }
  }
  return decision(allowed, remaining, resetMs, retryAfterMs);
}

export const tokenBucket: Algorithm = {
  take: (s, cost, now, limit, amount = limit.amount) => decide(s, cost, now, limit, amount, true),
  peek: (s, cost, now, limit, amount = limit.amount) => decide(s, cost, now, limit, amount, false),
  adjust(s, delta, now, limit, amount = limit.amount) {
    if (!Number.isFinite(delta)) return;
    refill(s, now, amount);
    s.used = Math.max(0, s.used + delta * limit.periodMs);
  },
  isFull(s, now, limit, amount = limit.amount) {
    refill(s, now, amount);
    return s.used <= 0;
  },
};
