/**
 * Power-of-two-choices draws: two distinct endpoints, each drawn with probability proportional to
 * its weight (the second from the endpoints left after the first). Shared by LeastRequest,
 * PeakEWMA and ConsistentHash's no-key fallback. The result goes into mutable fields rather than a
 * returned tuple so that a pick allocates nothing.
 */
import type { Random } from './types.ts';
import type { Weighted } from './weights.ts';

export class PairDraw {
  readonly size: number;
  /** Index of the first endpoint drawn (the one that wins ties). */
  first = 0;
  /** Index of the second endpoint drawn; distinct from `first` when size ≥ 2. */
  second = 0;
  readonly #weights: Float64Array;
  /** cumulative[i] = weights[0] + … + weights[i]. */
  readonly #cumulative: Float64Array;
  readonly #total: number;
  readonly #uniform: boolean;

  constructor(w: Weighted) {
    this.size = w.endpoints.length;
    this.#weights = w.weights;
    this.#total = w.total;
    this.#uniform = w.uniform;
    this.#cumulative = new Float64Array(this.size);
    let sum = 0;
    for (let i = 0; i < this.size; i++) {
      sum += w.weights[i]!;
      this.#cumulative[i] = sum;
    }
  }

  /** Sets `first` and `second`. Needs size ≥ 2. Two calls of `random`. */
  draw(random: Random): void {
    const n = this.size;
    if (this.#uniform) {
      // Second draw over the n-1 others, shifted past the first: distinct without rejection loops.
      const i = Math.min(Math.floor(random() * n), n - 1);
      let j = Math.min(Math.floor(random() * (n - 1)), n - 2);
      if (j >= i) j++;
      this.first = i;
      this.second = j;
      return;
    }
    const i = this.#index(random() * this.#total);
    // Draw over the total less the first's weight, then step over the first's interval.
    const wi = this.#weights[i]!;
    let r = random() * (this.#total - wi);
    if (r >= this.#cumulative[i]! - wi) r += wi;
    let j = this.#index(r);
    // Only floating-point rounding at the very top of the range can land back on i.
    if (j === i) j = i === n - 1 ? i - 1 : i + 1;
    this.first = i;
    this.second = j;
  }

  /** The first index whose cumulative weight exceeds r (binary search), clamped to the last. */
  #index(r: number): number {
    const c = this.#cumulative;
    let lo = 0;
    let hi = this.size - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (c[mid]! > r) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}
