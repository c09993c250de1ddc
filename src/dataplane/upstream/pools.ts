/**
 * Keep-alive connection pools, one per upstream endpoint and connection settings, shared by every
 * table that has them. A table swap keeps the pools of endpoints that remain (warm connections
 * survive a weight edit) and closes the others gracefully: undici's close() lets in-flight requests
 * finish.
 *
 * Upstream keep-alive is not optional: without it the cost per request doubles (see README).
 */
import { createHash } from 'node:crypto';
import { Pool } from 'undici';
import type { CompiledUpstreamTls } from '../../routing-table/types.ts';
import { installH2AbortGuard } from './h2-abort-guard.ts';

export { endpointOrigin } from '../../routing-table/endpoint-origin.ts';

export interface PoolSettings {
  connectTimeoutMs: number;
  /** Cleartext HTTP/2 with prior knowledge (h2c and gRPC backends on http). */
  h2c: boolean;
  tls: CompiledUpstreamTls | undefined;
  /** Identity of `tls` for pool keys (a hash computed once per table). */
  tlsId: string;
}

export function poolSettings(
  connectTimeoutMs: number,
  h2c: boolean,
  tls: CompiledUpstreamTls | undefined,
): PoolSettings {
  const tlsId = tls ? createHash('sha256').update(JSON.stringify(tls)).digest('hex').slice(0, 12) : '';
  return { connectTimeoutMs, h2c, tls, tlsId };
}

export class PoolRegistry {
  private readonly pools = new Map<string, Pool>();

  /** The key `retain` understands, for an origin and its settings. */
  keyOf(origin: string, s: PoolSettings): string {
    return `${origin}|${s.connectTimeoutMs}|${s.h2c ? 'h2c' : 'h1'}|${s.tlsId}`;
  }

  /** The pool for an origin, created on first use. */
  get(origin: string, settings: PoolSettings): Pool {
    const key = this.keyOf(origin, settings);
    let pool = this.pools.get(key);
    if (!pool) {
      // Aborting an HTTP/2 request with its body still queued could wedge the process (see there).
      if (settings.h2c) installH2AbortGuard();
      const tls = settings.tls;
      pool = new Pool(origin, {
        connect: {
          timeout: settings.connectTimeoutMs,
          ...(tls && {
            servername: tls.serverName,
            ca: tls.caPem,
            cert: tls.certificatePem,
            key: tls.privateKey,
            rejectUnauthorized: !tls.insecureSkipVerify,
          }),
        },
        // Inference requests can take minutes; undici's own timeouts are set per request.
        headersTimeout: 0,
        bodyTimeout: 0,
        // HTTP/2 multiplexes; HTTP/1.1 upstreams get one request per connection at a time.
        ...(settings.h2c ? { allowH2: true, useH2c: true, pipelining: 100 } : { pipelining: 1 }),
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
