/**
 * Peak-EWMA (Finagle, Linkerd): power of two choices on
 *
 *   cost = latency estimate × (inFlight + 1) / weight
 *
 * where the estimate is a moving average of observed latencies that jumps to any sample above it
 * at once (the "peak") and only decays back down over time. A replica that turns slow is avoided
 * from its first slow response; one that recovers earns traffic back gradually.
 *
 * Unmeasured endpoints (ewmaMs 0: new, or never answered yet). When idle their cost is 0, so a
 * new endpoint is tried straight away rather than waiting for luck. Once one has a request in
 * flight and still no answer it costs UNMEASURED_PENALTY_MS per request (Finagle's approach): a
 * replica that is still warming up gets one probe at a time, not a flood, until it has answered.
 * When every endpoint is unmeasured (a fresh proxy under load) the penalty is common to all and
 * the choice is plain least-request.
 *
 * Idle endpoints' estimates fade at read time (towards 0, with the same decay constant, without
 * writing the state): otherwise a replica that was slow once and then lost every draw would never
 * be picked again and never get the chance to show that it recovered. A busy endpoint keeps its
 * estimate: it will report soon.
 */
import { PairDraw } from './p2c.ts';
import type { Balancer, BalancerOptions, Clock, EndpointState, PickContext, Random } from './types.ts';
import { effectiveWeights } from './weights.ts';

/** Decay time constant of the estimate (Finagle and Linkerd use 10 s too). */
export const DEFAULT_DECAY_MS = 10_000;

/** Latency charged per request to an endpoint that has requests in flight and no measurement. */
export const UNMEASURED_PENALTY_MS = 1_000_000;

/** Samples are floored here so that a sub-resolution 0 ms answer still marks the endpoint measured. */
const MIN_SAMPLE_MS = 0.001;

/**
 * Records one observed latency (the proxy calls it when an upstream call finishes). A sample above
 * the estimate replaces it; otherwise the estimate moves towards the sample with weight
 * 1 - exp(-elapsed / decay), so the estimate is time-weighted, not count-weighted.
 */
export function observeLatency(
  ep: EndpointState,
  latencyMs: number,
  now: number,
  decayMs = DEFAULT_DECAY_MS,
): void {
  if (!(latencyMs >= 0)) return; // NaN or negative: a broken clock reading, not a latency.
  const sample = Math.max(latencyMs, MIN_SAMPLE_MS);
  if (sample > ep.ewmaMs) {
    ep.ewmaMs = sample;
  } else {
    const elapsed = now - ep.ewmaStamp;
    const w = elapsed > 0 ? Math.exp(-elapsed / decayMs) : 1;
    ep.ewmaMs = ep.ewmaMs * w + sample * (1 - w);
  }
  ep.ewmaStamp = now;
}

export interface PeakEwmaOptions {
  /** Must match the decayMs given to observeLatency. */
  decayMs?: number;
}

export class PeakEwmaBalancer implements Balancer {
  readonly #endpoints: EndpointState[];
  readonly #weights: Float64Array;
  readonly #draw: PairDraw;
  readonly #random: Random;
  readonly #now: Clock;
  readonly #decayMs: number;

  constructor(endpoints: readonly EndpointState[], opts: BalancerOptions & PeakEwmaOptions) {
    const w = effectiveWeights(endpoints);
    this.#endpoints = w.endpoints;
    this.#weights = w.weights;
    this.#draw = new PairDraw(w);
    this.#random = opts.random;
    this.#now = opts.now;
    this.#decayMs = opts.decayMs ?? DEFAULT_DECAY_MS;
  }

  pick(_ctx: PickContext): EndpointState | undefined {
    const n = this.#endpoints.length;
    if (n <= 1) return this.#endpoints[0];
    const d = this.#draw;
    d.draw(this.#random);
    const now = this.#now();
    const a = this.#endpoints[d.first]!;
    const b = this.#endpoints[d.second]!;
    const costA = this.#cost(a, this.#weights[d.first]!, now);
    const costB = this.#cost(b, this.#weights[d.second]!, now);
    return costB < costA ? b : a; // ties: the first drawn
  }

  #cost(ep: EndpointState, weight: number, now: number): number {
    let latency = ep.ewmaMs;
    if (latency > 0) {
      if (ep.inFlight === 0) {
        const elapsed = now - ep.ewmaStamp;
        if (elapsed > 0) latency *= Math.exp(-elapsed / this.#decayMs);
      }
    } else if (ep.inFlight > 0) {
      latency = UNMEASURED_PENALTY_MS;
    }
    return (latency * (ep.inFlight + 1)) / weight;
  }
}
