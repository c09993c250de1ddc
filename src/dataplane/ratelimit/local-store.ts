/**
 * LocalLimiter: one proxy's counters for a list of limits (typically one policy's), keyed by
 * strings the caller builds (consumer, client IP, claim, header, model, route). Nothing is shared
 * with other proxies; Global scope is a different store.
 *
 * Memory is bounded without timers. Each limit has its own map, so a flood of keys on one limit
 * (say, per client IP) cannot push out the counters of another (say, per consumer). Each map keeps
 * its keys in LRU order (lru.ts). Inserting sweeps a few entries from the cold end, dropping those
 * whose quota is full again (a full state is the same as no state, so dropping it loses nothing).
 * At the bound the least recently used key is dropped even if not full, which restarts its quota:
 * that is counted in `evictions`, because a client that can mint keys faster than they go stale
 * could use it to reset someone else's limit. Keys that are never admitted (amount 0, cost above
 * capacity) or that consume nothing are not stored at all.
 *
 * A LocalLimiter's states only make sense for the limits it was built with: when a new routing
 * table changes a limit's algorithm or period, start a new one (amount changes are fine: the
 * amount is passed per call).
 *
 * Several limits on one request: take each in turn; when one refuses, undo the ones already taken
 * with `adjust(limit, key, -cost, now)` at the same `now`, which restores them exactly.
 */
import { type AlgorithmName, algorithmFor } from './algorithms.ts';
import { Lru, LruNode } from './lru.ts';
import type { Algorithm, Decision, LimitParams, LimitState } from './types.ts';

export interface LocalLimit extends LimitParams {
  algorithm: AlgorithmName;
}

export interface LocalLimiterOptions {
  /** Most keys kept per limit. Default DEFAULT_MAX_KEYS. */
  maxKeysPerLimit?: number;
}

export const DEFAULT_MAX_KEYS = 100_000;
/** Cold-end entries checked on every insert, so the maps shrink again when traffic drops. */
const SWEEP_ON_INSERT = 2;
/** Cold-end entries checked when a map is at its bound, before evicting a live one. */
const SWEEP_AT_BOUND = 32;

/** A state and the effective amount it was last used with (the sweep judges it with that amount). */
class Slot extends LruNode implements LimitState {
  start = 0;
  used = 0;
  prev = 0;
  amount: number;
  constructor(key: string, amount: number) {
    super(key);
    this.amount = amount;
  }
}

export class LocalLimiter {
  readonly maxKeysPerLimit: number;
  /** Keys dropped at the bound while their quota was not full (their limit restarted). */
  evictions = 0;
  readonly #limits: readonly LocalLimit[];
  readonly #algorithms: Algorithm[];
  readonly #maps: Lru<Slot>[];

  constructor(limits: readonly LocalLimit[], options: LocalLimiterOptions = {}) {
    this.maxKeysPerLimit = Math.max(1, options.maxKeysPerLimit ?? DEFAULT_MAX_KEYS);
    this.#limits = limits;
    this.#algorithms = limits.map((l) => algorithmFor(l.algorithm));
    this.#maps = limits.map(() => new Lru<Slot>());
  }

  /**
   * Admits and consumes `cost` units of limit number `limit` for `key`, or refuses and consumes
   * nothing. `amount` is the caller's effective amount (an override tier; 0 refuses everything),
   * default the limit's own.
   */
  take(limit: number, key: string, cost: number, now: number, amount?: number): Decision {
    return this.#decide(limit, key, cost, now, amount, true);
  }

  /** What `take` would decide, without consuming. */
  peek(limit: number, key: string, cost: number, now: number, amount?: number): Decision {
    return this.#decide(limit, key, cost, now, amount, false);
  }

  /** Reconciles a reservation: delta > 0 charges more (possibly into debt), delta < 0 refunds. */
  adjust(limit: number, key: string, delta: number, now: number, amount?: number): void {
    const spec = this.#spec(limit);
    const effective = amount ?? spec.amount;
    const algorithm = this.#algorithms[limit]!;
    const map = this.#maps[limit]!;
    let slot = map.get(key);
    if (slot === undefined) {
      // A refund to a full quota changes nothing; only a charge needs a state.
      if (!(delta > 0)) return;
      slot = new Slot(key, effective);
      algorithm.adjust(slot, delta, now, spec, effective);
      this.#insert(map, slot, now, algorithm, spec);
      return;
    }
    slot.amount = effective;
    algorithm.adjust(slot, delta, now, spec, effective);
  }

  /** Keys held for one limit, or for all. */
  size(limit?: number): number {
    if (limit !== undefined) return this.#maps[limit]?.size ?? 0;
    let n = 0;
    for (const m of this.#maps) n += m.size;
    return n;
  }

  clear(): void {
    for (const m of this.#maps) m.clear();
  }

  #spec(limit: number): LocalLimit {
    const spec = this.#limits[limit];
    if (spec === undefined) throw new RangeError(`no limit number ${limit}`);
    return spec;
  }

  #decide(
    limit: number,
    key: string,
    cost: number,
    now: number,
    amount: number | undefined,
    consume: boolean,
  ): Decision {
    const spec = this.#spec(limit);
    const effective = amount ?? spec.amount;
    const algorithm = this.#algorithms[limit]!;
    const map = this.#maps[limit]!;
    let slot = consume ? map.get(key) : map.peek(key);
    if (slot !== undefined) {
      slot.amount = effective;
      return consume
        ? algorithm.take(slot, cost, now, spec, effective)
        : algorithm.peek(slot, cost, now, spec, effective);
    }
    slot = new Slot(key, effective);
    if (!consume) return algorithm.peek(slot, cost, now, spec, effective);
    const d = algorithm.take(slot, cost, now, spec, effective);
    // Only a state that consumed something differs from a fresh one and is worth keeping.
    if (d.allowed && cost > 0) this.#insert(map, slot, now, algorithm, spec);
    return d;
  }

  #insert(map: Lru<Slot>, slot: Slot, now: number, algorithm: Algorithm, spec: LimitParams): void {
    const atBound = map.size >= this.maxKeysPerLimit;
    this.#sweep(map, now, algorithm, spec, atBound ? SWEEP_AT_BOUND : SWEEP_ON_INSERT);
    if (map.size >= this.maxKeysPerLimit) {
      const coldest = map.coldest();
      if (coldest !== null) {
        map.delete(coldest);
        this.evictions++;
      }
    }
    map.add(slot);
  }

  /** Drops full states among the `budget` least recently used entries. */
  #sweep(map: Lru<Slot>, now: number, algorithm: Algorithm, spec: LimitParams, budget: number): void {
    let slot = map.coldest();
    while (slot !== null && budget-- > 0) {
      const next = map.newerThan(slot);
      if (algorithm.isFull(slot, now, spec, slot.amount)) map.delete(slot);
      slot = next;
    }
  }
}
