/**
 * The proxy's in-memory answers: one store for every rule with `store: Local`, bounded in bytes
 * (the GatewayConfig's cache.maxBytes) with the least recently used entry out first, and by each
 * entry's TTL (an expired entry is dropped when it is next looked up, when it reaches the least
 * recently used end while the store makes room, or when a table is applied). A Map keeps insertion order, so moving an entry to the end on every hit makes the first
 * entry the least recently used one: no list of its own.
 *
 * One budget for the proxy, not one per route: the pod's memory limit is the operator's, and per
 * route budgets would add up beyond it as routes are added. A busy route may push a quiet one's
 * entries out: that is what least recently used means.
 */
import type { CacheEntry } from './entry.ts';

export type EvictionReason = 'size' | 'expired' | 'purged';

export class LocalCacheStore {
  readonly maxBytes: number;
  private readonly entries = new Map<string, CacheEntry>();
  private readonly onEvict: (reason: EvictionReason, n: number) => void;
  /** Bytes held (entries' sizes). */
  bytes = 0;

  constructor(maxBytes: number, onEvict: (reason: EvictionReason, n: number) => void = () => {}) {
    this.maxBytes = maxBytes;
    this.onEvict = onEvict;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The live entry for `key`, now the most recently used; undefined when none or expired. */
  get(key: string, now: number): CacheEntry | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    this.entries.delete(key);
    if (e.expiresAt <= now) {
      this.bytes -= e.size;
      this.onEvict('expired', 1);
      return undefined;
    }
    this.entries.set(key, e);
    return e;
  }

  /** Stores (or replaces) an entry, making room from the least recently used end; false when it cannot fit. */
  set(key: string, entry: CacheEntry, now: number): boolean {
    if (entry.size > this.maxBytes) return false;
    const old = this.entries.get(key);
    if (old !== undefined) {
      this.entries.delete(key);
      this.bytes -= old.size;
    }
    if (this.bytes + entry.size > this.maxBytes) this.makeRoom(entry.size, now);
    this.entries.set(key, entry);
    this.bytes += entry.size;
    return true;
  }

  /**
   * Drops entries from the least recently used end until `needed` bytes fit. Only that end is
   * walked (a scan of every entry would cost a full pass per insert when the store is full);
   * expired entries elsewhere go when looked up or purged.
   */
  private makeRoom(needed: number, now: number): void {
    let expired = 0;
    let evicted = 0;
    for (const [k, e] of this.entries) {
      if (this.bytes + needed <= this.maxBytes) break;
      this.entries.delete(k);
      this.bytes -= e.size;
      if (e.expiresAt <= now) expired++;
      else evicted++;
    }
    if (expired > 0) this.onEvict('expired', expired);
    if (evicted > 0) this.onEvict('size', evicted);
  }

  /**
   * Drops every entry whose group `keep` refuses (revisions that no longer serve), and the expired
   * ones; returns how many went for their group.
   */
  purge(keep: (group: string) => boolean, now: number): number {
    let purged = 0;
    let expired = 0;
    for (const [k, e] of this.entries) {
      const gone = !keep(e.group);
      if (!gone && e.expiresAt > now) continue;
      this.entries.delete(k);
      this.bytes -= e.size;
      if (gone) purged++;
      else expired++;
    }
    if (purged > 0) this.onEvict('purged', purged);
    if (expired > 0) this.onEvict('expired', expired);
    return purged;
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }
}
