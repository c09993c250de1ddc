/**
 * Consistent hashing on a ring: each endpoint owns VNODES_PER_WEIGHT × weight points on a 32-bit
 * circle; a key goes to the owner of the first point at or after the key's hash. The ring depends
 * only on endpoint ids and weights (not their order), so every proxy replica builds the same ring
 * and sends a key to the same endpoint. Removing one of N endpoints moves only the keys it owned,
 * about 1/N; adding one takes about 1/(N+1) from the others. That keeps per-session or per-prefix
 * state (a model server's KV cache) warm.
 *
 * With no key (the header or cookie is absent or empty) the pick falls back to least request.
 */
import { LeastRequestBalancer } from './least-request.ts';
import type { Balancer, BalancerOptions, EndpointState, PickContext } from './types.ts';
import { effectiveWeights } from './weights.ts';

/** Points per unit of weight: ~10% standard deviation of load between endpoints. */
export const VNODES_PER_WEIGHT = 100;

/** Cap on ring size; larger weights are scaled down proportionally (only extreme weights hit it). */
export const MAX_RING_POINTS = 1 << 20;

/**
 * FNV-1a over UTF-16 code units, then murmur3's finaliser. FNV alone mixes the last characters
 * poorly ("ep#1" and "ep#2" land close together, clumping virtual nodes); the finaliser spreads
 * them. Code units rather than UTF-8 bytes: only consistency between proxies matters, and it needs
 * no encoding step. Allocation-free.
 */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export class ConsistentHashBalancer implements Balancer {
  readonly #endpoints: EndpointState[];
  /** Sorted point hashes. */
  readonly #points: Uint32Array;
  /** Index into #endpoints of each point's owner. */
  readonly #owners: Uint32Array;
  readonly #fallback: LeastRequestBalancer;

  constructor(endpoints: readonly EndpointState[], opts: BalancerOptions) {
    const w = effectiveWeights(endpoints);
    this.#endpoints = w.endpoints;
    this.#fallback = new LeastRequestBalancer(endpoints, opts);
    let scale = VNODES_PER_WEIGHT;
    if (w.total * scale > MAX_RING_POINTS) scale = MAX_RING_POINTS / w.total;
    const ring: { hash: number; owner: number; id: string }[] = [];
    for (let e = 0; e < w.endpoints.length; e++) {
      const id = w.endpoints[e]!.id;
      const count = Math.max(1, Math.round(w.weights[e]! * scale));
      for (let v = 0; v < count; v++) ring.push({ hash: hash32(`${id}#${v}`), owner: e, id });
    }
    // Ties between points (hash collisions) are broken by id, so the ring is the same whatever
    // order the endpoints came in.
    ring.sort((x, y) => x.hash - y.hash || (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
    this.#points = Uint32Array.from(ring, (p) => p.hash);
    this.#owners = Uint32Array.from(ring, (p) => p.owner);
  }

  pick(ctx: PickContext): EndpointState | undefined {
    const n = this.#endpoints.length;
    if (n <= 1) return this.#endpoints[0];
    const key = ctx.hashKey;
    if (!key) return this.#fallback.pick(ctx);
    const h = hash32(key);
    const points = this.#points;
    // First point with hash ≥ h; past the last point the ring wraps to the first.
    let lo = 0;
    let hi = points.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (points[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    return this.#endpoints[this.#owners[lo === points.length ? 0 : lo]!];
  }
}
