import type {
  Algorithm,
  Decision,
  LimitParams,
  LimitState,
} from '../../../../src/dataplane/ratelimit/types.ts';

export function lim(amount: number, periodMs: number, burst = 0): LimitParams {
  return { amount, periodMs, burst };
}

/** Takes `costs` one after another at `now`; returns which were admitted. */
export function takes(
  alg: Algorithm,
  s: LimitState,
  now: number,
  limit: LimitParams,
  costs: number[],
): boolean[] {
  return costs.map((c) => alg.take(s, c, now, limit).allowed);
}

export function d(allowed: boolean, remaining: number, resetMs: number, retryAfterMs: number): Decision {
  return { allowed, remaining, resetMs, retryAfterMs };
}

export function clone(s: LimitState): LimitState {
  return { start: s.start, used: s.used, prev: s.prev };
}
