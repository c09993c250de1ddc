/**
 * SlidingWindow: the two-window weighted counter (as Cloudflare and Envoy describe it). Counts are
 * kept per aligned window like FixedWindow; the usage "over the last period" is estimated as
 *
 *   estimate = previous window's count × (fraction of the previous window still inside the last
 *              period) + current window's count
 *
 * and a request of cost c is admitted when estimate + c ≤ amount.
 *
 * It is an approximation: it assumes the previous window's requests were spread evenly.
 * - Every aligned window still admits at most `amount` (the estimate never counts less than the
 *   current window), so any interval of one period admits at most 2 × amount — the same worst case
 *   as FixedWindow, reached only when the previous window's traffic all came at its very end.
 * - It can also refuse early when the previous window's traffic came at its start.
 * - For traffic spread evenly it is exact, which is the common case it is chosen for: no burst at
 *   the boundary, for two numbers per key.
 *
 * Exactness: comparisons are done on estimate × periodMs, which is an integer for integer counts
 * and times (exact while amount × periodMs < 2^53, e.g. a billion units per day).
 *
 * Debt (a charge beyond amount after admission) is attributed to the following windows, `amount`
 * per window, so it is paid back at the limit's rate and the estimate stays continuous in time.
 */
import type { Algorithm, Decision, LimitParams, LimitState } from './types.ts';
import { decision } from './types.ts';

/** Moves the state to the window holding `now`; `prev` gets what is attributed to the window before. */
function roll(s: LimitState, now: number, periodMs: number, amount: number): void {
  const start = Math.floor(now / periodMs) * periodMs;
  if (start > s.start) {
    const windows = (start - s.start) / periodMs;
    const cur = s.used;
    // Beyond `amount`, a window's count spills into the next window, and so on.
    const forPrev = cur - (windows - 1) * amount;
    s.prev = forPrev > 0 ? Math.min(forPrev, amount) : 0;
    s.used = Math.max(0, cur - windows * amount);
    s.start = start;
  }
}

/** When the estimate reaches 0 if nothing more is taken. */
function fullAt(s: LimitState, cur: number, amount: number, periodMs: number, now: number): number {
  // `cur` spills over ceil(cur / amount) windows, then what the last one left decays over one more.
  if (cur > 0) return s.start + (Math.ceil(cur / amount) + 1) * periodMs;
  if (s.prev > 0) return s.start + periodMs;
  return now;
}

/** The first integer offset into a window at which `cost` fits, given that window's counts. */
function firstFit(prev: number, cur: number, cost: number, amount: number, periodMs: number): number {
  if (prev <= 0) return 0;
  // Need prev × (period − e) ≤ (amount − cur − cost) × period.
  const room = (amount - cur - cost) * periodMs;
  return Math.max(0, periodMs - Math.floor(room / prev));
}

/** When `cost` would be admitted if nothing more is taken (cost ≤ amount, refused now). */
function retryAt(s: LimitState, cost: number, amount: number, periodMs: number): number {
  const cur = s.used;
  // The first window whose spilled-in count leaves room for `cost` once the previous one decays.
  const j = cur + cost <= amount ? 0 : Math.ceil((cur + cost - amount) / amount);
  if (j === 0) return s.start + firstFit(s.prev, cur, cost, amount, periodMs);
  const curJ = Math.max(0, cur - j * amount);
  const prevJ = Math.min(Math.max(0, cur - (j - 1) * amount), amount);
  return s.start + j * periodMs + firstFit(prevJ, curJ, cost, amount, periodMs);
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
  // Share of the previous window still inside the last period, × period. A clock that stepped
  // back counts the previous window in full (the cautious reading).
  const prevWeight = period - Math.max(0, now - s.start);
  const capacity = amount * period;
  const load = s.prev * prevWeight + s.used * period;
  const allowed = cost <= amount && load + cost * period <= capacity;
  const after = allowed ? s.used + cost : s.used;
  if (allowed && consume) s.used = after;
  const afterLoad = s.prev * prevWeight + after * period;
  const remaining = Math.max(0, Math.floor((capacity - afterLoad) / period));
  const resetMs = Math.max(0, Math.ceil(fullAt(s, after, amount, period, now) - now));
  let retryAfterMs = 0;
  if (!allowed) {
    retryAfterMs = cost > amount ? Infinity : Math.max(1, Math.ceil(retryAt(s, cost, amount, period) - now));
  }
  return decision(allowed, remaining, resetMs, retryAfterMs);
}

export const slidingWindow: Algorithm = {
  take: (s, cost, now, limit, amount = limit.amount) => decide(s, cost, now, limit, amount, true),
  peek: (s, cost, now, limit, amount = limit.amount) => decide(s, cost, now, limit, amount, false),
  adjust(s, delta, now, limit, amount = limit.amount) {
    if (!Number.isFinite(delta)) return;
    roll(s, now, limit.periodMs, amount);
    if (delta >= 0) {
      s.used += delta;
      return;
    }
    // A refund comes off the current window first, then off what the previous window still
    // counts (where a reservation made before the boundary now sits).
    const fromCur = Math.min(s.used, -delta);
    s.used -= fromCur;
    s.prev = Math.max(0, s.prev - (-delta - fromCur));
  },
  isFull(s, now, limit, amount = limit.amount) {
    roll(s, now, limit.periodMs, amount);
    return s.used <= 0 && s.prev <= 0;
  },
};
