/**
 * One Redis client per distinct connection (URL, credentials, cluster flag, timeout), shared by
 * every Global policy that counts there and kept across tables; closed when no policy of the
 * table in service uses it any more. The response cache keeps its own set (its connections are
 * named apart, and a large cached answer never queues a rate-limit check behind it).
 */
import type { CompiledRedis } from '../../routing-table/types.ts';
import { RedisLimiter } from './redis/redis-limiter.ts';

export class RedisClients {
  private readonly clients = new Map<string, RedisLimiter>();
  private readonly connectionName: string | undefined;

  constructor(opts: { connectionName?: string } = {}) {
    this.connectionName = opts.connectionName;
  }

  static keyOf(r: CompiledRedis): string {
    return JSON.stringify([r.url, r.username ?? '', r.password ?? '', r.cluster, r.timeoutMs]);
  }

  get(r: CompiledRedis): RedisLimiter {
    const key = RedisClients.keyOf(r);
    let c = this.clients.get(key);
    if (!c) {
      c = new RedisLimiter(
        {
          url: r.url,
          cluster: r.cluster,
          ...(r.username !== undefined ? { username: r.username } : {}),
          ...(r.password !== undefined ? { password: r.password } : {}),
        },
        {
          timeoutMs: r.timeoutMs,
          ...(this.connectionName !== undefined ? { connectionName: this.connectionName } : {}),
        },
      );
      this.clients.set(key, c);
    }
    return c;
  }

  /** Closes the clients whose key is not in `keys`. */
  retain(keys: ReadonlySet<string>): void {
    for (const [key, c] of this.clients) {
      if (keys.has(key)) continue;
      this.clients.delete(key);
      void c.close().catch(() => {});
    }
  }

  /** Every client, for metrics. */
  all(): IterableIterator<RedisLimiter> {
    return this.clients.values();
  }

  async closeAll(): Promise<void> {
    const all = [...this.clients.values()];
    this.clients.clear();
    await Promise.allSettled(all.map((c) => c.close()));
  }
}
