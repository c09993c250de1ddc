/**
 * Shared shapes of the local rate limiter. Every algorithm works on the same small mutable state
 * object so that a store holds one object shape whatever the algorithm (monomorphic access), and
 * a zeroed state means "full quota" for all three, so a fresh key needs no algorithm-specific setup.
 *
 * Time is milliseconds from a clock the caller injects (Date.now(), a monotonic clock, or a test's
 * variable); nothing here reads a clock. Times must be ≥ 0. With integer milliseconds and counts
 * every comparison is exact (see each algorithm for the ranges); fractional times work too but
 * may be off by a rounding error at a boundary.
 */

/** What a limit needs to decide; a CompiledRateLimitPolicy limit has these fields. */
export interface LimitParams {
  /** Units per period (the default; a consumer's override replaces it per call). */
  amount: number;
  /** The window, or the refill period for TokenBucket. */
  periodMs: number;
  /** TokenBucket only: units the bucket holds above `amount`. */
  burst: number;
}

/**
 * The per-(limit, key) state. Meaning of the fields by algorithm:
 * - FixedWindow: `start` = start of the current aligned window, `used` = units counted in it
 *   (above `amount` when charged into debt).
 * - SlidingWindow: `start` and `used` as FixedWindow, `prev` = units attributed to the window before.
 * - TokenBucket: `start` = time of the last refill, `used` = missing tokens × periodMs (the deficit,
 *   scaled so that refill is an integer `amount` per ms; above capacity × periodMs when in debt).
 */
export interface LimitState {
  start: number;
  used: number;
  prev: number;
}

/** A zeroed state: full quota for every algorithm at any time ≥ 0. */
export function newLimitState(): LimitState {
  return { start: 0, used: 0, prev: 0 };
}

/**
 * The outcome of one take. All durations are whole milliseconds, rounded up, so that acting on
 * them with an integer-millisecond clock is never early.
 */
export interface Decision {
  allowed: boolean;
  /** Units still available right now after this request (nothing taken when refused); ≥ 0. */
  remaining: number;
  /** Until the quota is entirely available again if nothing more is taken; 0 when it already is. */
  resetMs: number;
  /**
   * 0 when allowed. Otherwise the least wait after which the same cost would be admitted if nothing
   * else is taken meanwhile; Infinity when it never would be (cost above capacity, or amount 0).
   */
  retryAfterMs: number;
}

export function decision(
  allowed: boolean,
  remaining: number,
  resetMs: number,
  retryAfterMs: number,
): Decision {
  return { allowed, remaining, resetMs, retryAfterMs };
}

/**
 * One algorithm. `amount` is the effective amount for this caller (an override, or limit.amount);
 * 0 refuses everything. `cost` is ≥ 0; 0 asks "is this key out of debt?" without consuming.
 */
export interface Algorithm {
  /** Admits and consumes `cost`, or refuses and consumes nothing. */
  take(state: LimitState, cost: number, now: number, limit: LimitParams, amount?: number): Decision;
  /** The decision `take` would return, without consuming. */
  peek(state: LimitState, cost: number, now: number, limit: LimitParams, amount?: number): Decision;
  /**
   * Reconciles a reservation: delta > 0 charges more (possibly into debt, so later requests wait
   * until it is paid back at the limit's rate), delta < 0 refunds (never beyond a full quota).
   */
  adjust(state: LimitState, delta: number, now: number, limit: LimitParams, amount?: number): void;
  /** True when the state is equivalent to a zeroed one (full quota): a store may then drop it. */
  isFull(state: LimitState, now: number, limit: LimitParams, amount?: number): boolean;
}
