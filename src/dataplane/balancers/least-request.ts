/**
 * Least request by power of two choices: draw two distinct endpoints (weighted) and send to the
 * one with fewer requests in flight per unit of weight. The in-flight counts are the proxy's own
 * (incremented around each upstream call), so the choice reacts to queueing at a replica with no
 * extra round trip and no coordination between proxies. Two random choices rather than the global
 * minimum avoid herding: many proxies with slightly stale views do not all pile onto the one
 * least-loaded endpoint, yet the busiest endpoints are avoided almost always.
 */
import { PairDraw } from './p2c.ts';
import type { Balancer, BalancerOptions, EndpointState, PickContext, Random } from './types.ts';
import { effectiveWeights } from './weights.ts';

export class LeastRequestBalancer implements Balancer {
  readonly #endpoints: EndpointState[];
  readonly #weights: Float64Array;
  readonly #draw: PairDraw;
  readonly #random: Random;

  constructor(endpoints: readonly EndpointState[], opts: BalancerOptions) {
    const w = effectiveWeights(endpoints);
    this.#endpoints = w.endpoints;
    this.#weights = w.weights;
    this.#draw = new PairDraw(w);
    this.#random = opts.random;
  }

  pick(_ctx: PickContext): EndpointState | undefined {
    const n = this.#endpoints.length;
    if (n <= 1) return this.#endpoints[0];
    const d = this.#draw;
    d.draw(this.#random);
    const a = this.#endpoints[d.first]!;
    const b = this.#endpoints[d.second]!;
    // inFlight_b / w_b < inFlight_a / w_a, cross-multiplied; ties go to the first drawn, which was
    // itself drawn by weight.
    return b.inFlight * this.#weights[d.first]! < a.inFlight * this.#weights[d.second]! ? b : a;
  }
}
