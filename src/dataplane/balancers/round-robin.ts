/**
 * Smooth weighted round-robin (nginx's algorithm): on every pick each endpoint's `current` grows
 * by its weight, the largest `current` wins and gives back the total. Over one cycle every
 * endpoint is picked exactly in proportion to its weight, and the picks of a heavy endpoint are
 * spread out rather than bunched (weights 5,1,1 → a a b a c a a, not a a a a a b c).
 *
 * Blind to load: a slow or busy endpoint keeps getting its share. It is here for predictability
 * and as the baseline the load-aware balancers are measured against.
 */
import type { Balancer, BalancerOptions, EndpointState, PickContext } from './types.ts';
import { effectiveWeights } from './weights.ts';

export class RoundRobinBalancer implements Balancer {
  readonly #endpoints: EndpointState[];
  readonly #weights: Float64Array;
  readonly #current: Float64Array;
  readonly #total: number;
  readonly #uniform: boolean;
  /** Next index, for the equal-weights fast path. */
  #next = 0;

  constructor(endpoints: readonly EndpointState[], opts: BalancerOptions) {
    const w = effectiveWeights(endpoints);
    this.#endpoints = w.endpoints;
    this.#weights = w.weights;
    this.#total = w.total;
    this.#uniform = w.uniform;
    this.#current = new Float64Array(w.endpoints.length);
    // A balancer is rebuilt on every table swap, in every proxy replica at about the same time. If
    // all of them started at the first endpoint, their first requests would land on it together,
    // so each starts a random number of steps in (tests pass a random that returns 0 to start at
    // the beginning). Equal weights are plain rotation, so the offset is the start index; with
    // weights the sequence is advanced by up to n picks, enough to de-synchronise replicas.
    const n = w.endpoints.length;
    if (n === 0) return;
    const skip = Math.min(Math.floor(opts.random() * n), n - 1);
    if (this.#uniform) this.#next = skip;
    else for (let s = 0; s < skip; s++) this.#weightedPick();
  }

  pick(_ctx: PickContext): EndpointState | undefined {
    const n = this.#endpoints.length;
    if (n === 0) return undefined;
    if (this.#uniform) {
      // Smooth WRR with equal weights is exactly rotation; skip the O(n) scan.
      const i = this.#next;
      this.#next = i + 1 === n ? 0 : i + 1;
      return this.#endpoints[i];
    }
    return this.#endpoints[this.#weightedPick()];
  }

  #weightedPick(): number {
    const cur = this.#current;
    const w = this.#weights;
    let best = 0;
    for (let i = 0; i < cur.length; i++) {
      cur[i]! += w[i]!;
      // Strictly greater: ties go to the earlier endpoint, as in nginx.
      if (cur[i]! > cur[best]!) best = i;
    }
    cur[best]! -= this.#total;
    return best;
  }
}
