/**
 * FixedWindow: `amount` units per window of `periodMs` aligned on multiples of the period
 * (window start = floor(now / period) × period), so every key's windows share boundaries and the
 * reset time is the same for everyone — simple and exact, at the price of allowing up to 2 × amount
 * across a boundary (the end of one window and the start of the next).
 *
 * Debt: a charge after admission (model tokens reconciled upward) can push `used` above `amount`.
 * The excess is carried into the following windows (each window pays back `amount`) rather than
 * forgiven at the boundary, so over any run of whole windows the charged total stays within
 * amount × windows plus one request's overshoot.
 */
import type { Algorithm, Decision, LimitParams, LimitState } from './types.ts';
import { decision } from './types.ts';

/** Moves the state to the window holding `now`, paying back `amount` per window passed. */
function roll(s: LimitState, now: number, periodMs: number, amount: number): void {
  const start = Math.floor(now / periodMs) * periodMs;
  // A clock that stepped back stays in the newer window: never re-open quota already counted.
  if (start > s.start) {
    s.used = Math.max(0, s.used - ((start - s.start) / periodMs) * amount);
    s.start = start;
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
  if (!(amount > 0)) return decision(false, 0, 0, Infinity);
  const period = limit.periodMs;
  roll(s, now, period, amount);
  const allowed = cost <= amount && s.used + cost <= amount;
  const after = allowed ? s.used + cost : s.used;
  if (allowed && consume) s.used = after;
  const remaining = Math.max(0, Math.floor(amount - after));
  // Fully available again once the windows passed have paid back everything counted.
  const resetMs = after > 0 ? Math.ceil(s.start + Math.max(1, Math.ceil(after / amount)) * period - now) : 0;
  let retryAfterMs = 0;
  if (!allowed) {
    if (cost > amount) retryAfterMs = Infinity;
    else {
      // First window whose carried-in debt leaves room for `cost`.
      const windows = Math.max(1, Math.ceil((s.used + cost - amount) / amount));
      retryAfterMs = Math.max(1, Math.ceil(s.start + windows * period - now));
    }
  }
  return decision(allowed, remaining, resetMs, retryAfterMs);
}

export const fixedWindow: Algorithm = {
  take: (s, cost, now, limit, amount = limit.amount) => decide(s, cost, now, limit, amount, true),
  peek: (s, cost, now, limit, amount = limit.amount) => decide(s, cost, now, limit, amount, false),
  adjust(s, delta, now, limit, amount = limit.amount) {
    if (!Number.isFinite(delta)) return;
    roll(s, now, limit.periodMs, amount);
    // A refund that arrives after its window closed credits the current one (clamped at empty):
    // the units were counted against the earlier window, so the two together stay ≤ 2 × amount.
    s.used = Math.max(0, s.used + delta);
  },
  isFull(s, now, limit, amount = limit.amount) {
    roll(s, now, limit.periodMs, amount);
    return s.used <= 0;
  },
};
