/**
 * The balancer contract. A balancer is built once per backend per table from the backend's live
 * endpoints and picks one per request. Endpoint state (in-flight counts, latency averages) lives in
 * EndpointState objects that outlive table swaps, so a new table does not forget what it knew.
 * Randomness and time are injected so that every choice can be tested exactly.
 */

/** Uniform in [0, 1). Tests pass a seeded generator. */
export type Random = () => number;

/** Monotonic milliseconds. Tests pass a fake clock. */
export type Clock = () => number;

/** What the proxy knows about one upstream endpoint; shared by every table that has it. */
export interface EndpointState {
  /** `scheme://address:port` — stable across tables. */
  readonly id: string;
  /** Relative capacity; 1 for every endpoint today. */
  weight: number;
  /** Requests sent and not yet finished, maintained by the proxy around each upstream call. */
  inFlight: number;
  /** Peak-EWMA latency estimate in ms (0 until the first observation). */
  ewmaMs: number;
  /** Clock reading of the last EWMA update. */
  ewmaStamp: number;
}

export interface PickContext {
  /** Consistent-hash key (a header or cookie value), when the rule hashes. */
  hashKey?: string;
}

export interface Balancer {
  /** One endpoint, or undefined when there is none. Must not allocate on the hot path. */
  pick(ctx: PickContext): EndpointState | undefined;
}

export interface BalancerOptions {
  random: Random;
  now: Clock;
}

export function newEndpointState(id: string, weight = 1): EndpointState {
  return { id, weight, inFlight: 0, ewmaMs: 0, ewmaStamp: 0 };
}
