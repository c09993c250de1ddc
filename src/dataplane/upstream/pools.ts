/**
 * Keep-alive connection pools, one per upstream endpoint, shared by every table that has the
 * endpoint. A table swap keeps the pools of endpoints that remain (warm connections survive a
 * weight edit) and closes the others gracefully: undici's close() lets in-flight requests finish.
 *
 * Upstream keep-alive is not optional: without it the cost per request doubles (see README).
 */
import { Pool } from 'undici';
import type { CompiledEndpoint } from '../../routing-table/types.ts';

export function endpointOrigin(e: Pick<CompiledEndpoint, 'scheme' | 'address' | 'port'>): string {
  const host = e.address.includes(':') ? `[${e.address}]` : e.address;
  return `${e.scheme}://${host}:${e.port}`;
}

export interface PoolSettings {
  connectTimeoutMs: number;
}

export class PoolRegistry {
  private readonly pools = new Map<string, Pool>();

  private static key(origin: string, s: PoolSettings): string {
    return `${origin}|${s.connectTimeoutMs}`;
  }

  /** The pool for an origin, created on first use. */
  get(origin: string, settings: PoolSettings): Pool {
    const key = PoolRegistry.key(origin, settings);
    let pool = this.pools.get(key);
    if (!pool) {
      pool = new Pool(origin, {
        pipelining: 1,
        connect: { timeout: settings.connectTimeoutMs },
        // Inference requests can take minutes; undici's own timeouts are set per request.
        headersTimeout: 0,
        bodyTimeout: 0,
      });
      this.pools.set(key, pool);
    }
    return pool;
  }

  /** Closes pools whose key is not in `keep`; in-flight requests on them finish first. */
  retain(keep: ReadonlySet<string>): void {
    for (const [key, pool] of this.pools) {
      if (keep.has(key)) continue;
      this.pools.delete(key);
      pool.close().catch(() => {});
    }
  }

  /** The key `retain` understands, for an origin and its settings. */
  keyOf(origin: string, settings: PoolSettings): string {
    return PoolRegistry.key(origin, settings);
  }

  get size(): number {
    return this.pools.size;
  }

  async close(): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(all.map((p) => p.close().catch(() => {})));
  }

  /** Immediate teardown (tests, hard shutdown): aborts in-flight requests. */
  async destroy(): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(all.map((p) => p.destroy().catch(() => {})));
  }
}
