/**
 * Reconnect delays: exponential, capped, with jitter so that proxies that lost the same controller
 * at the same moment do not all come back in the same instant.
 */
export interface BackoffOptions {
  /** First delay. Default 500 ms. */
  initialMs?: number;
  /** Cap. Default 30 s. */
  maxMs?: number;
  /** Growth per attempt. Default 2. */
  multiplier?: number;
  /** Share of the delay taken off at random, 0..1. Default 0.5 (delays in [d/2, d]). */
  jitter?: number;
}

/** Delay before reconnect attempt `attempt` (0 for the first retry); `random` returns [0, 1). */
export function backoffDelay(attempt: number, opts: BackoffOptions, random: () => number): number {
  const initial = opts.initialMs ?? 500;
  const max = opts.maxMs ?? 30_000;
  const multiplier = opts.multiplier ?? 2;
  const jitter = Math.min(1, Math.max(0, opts.jitter ?? 0.5));
  const base = Math.min(max, initial * multiplier ** Math.min(attempt, 64));
  return Math.round(base * (1 - jitter * random()));
}
