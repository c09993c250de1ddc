/**
 * Answers shared by every proxy through Redis: one value per entry (entry.ts), written with a PX
 * expiry so Redis drops it at the end of its TTL, read with one GET. Keys are
 * `modelgate:cache:<group>:<key>`: the group (rule, settings, model revision; groups.ts) is the
 * namespace, so a revision that stops serving is never read again and its keys simply expire.
 *
 * It fails open: a lookup Redis cannot answer in time (down, slow, no usable Secret) is a miss,
 * and a store that fails is dropped; both are counted, and logged at most once per 10 s per route
 * by the filter factory. The connection is the rate limiter's client (RedisLimiter: no offline
 * queue, a timeout per call, reconnection with backoff), from a RedisClients set of the cache's own.
 */
import type { RedisLimiter } from '../ratelimit/redis/redis-limiter.ts';
import { type CacheEntry, decodeEntry, encodeEntry } from './entry.ts';

/** Lookups and stores of one rule's cache. */
export interface CacheStore {
  /** The live entry, or undefined (absent, expired, or the store could not answer). */
  get(key: string, group: string, now: number): CacheEntry | undefined | Promise<CacheEntry | undefined>;
  /** False when the entry could not be kept (larger than the whole store). */
  set(key: string, entry: CacheEntry, now: number): boolean;
}

export const REDIS_KEY_PREFIX = 'modelgate:cache:';

export function redisKey(group: string, key: string): string {
  return `${REDIS_KEY_PREFIX}${group}:${key}`;
}

export class RedisCacheStore implements CacheStore {
  private readonly client: RedisLimiter;
  private readonly onError: (message: string) => void;

  constructor(client: RedisLimiter, onError: (message: string) => void) {
    this.client = client;
    this.onError = onError;
  }

  get(key: string, group: string, now: number): Promise<CacheEntry | undefined> {
    return this.client.getBuffer(redisKey(group, key)).then(
      (value) => {
        if (value === null) return undefined;
        const entry = decodeEntry(value, group);
        // Proxies' clocks differ a little from the one that stored it: its own expiry still holds.
        return entry !== undefined && entry.expiresAt > now ? entry : undefined;
      },
      (err: unknown) => {
        this.onError(err instanceof Error ? err.message : String(err));
        return undefined;
      },
    );
  }

  set(key: string, entry: CacheEntry, now: number): boolean {
    const ttlMs = entry.expiresAt - now;
    if (ttlMs <= 0) return true;
    this.client.setBuffer(redisKey(entry.group, key), encodeEntry(entry), ttlMs).catch((err: unknown) => {
      this.onError(err instanceof Error ? err.message : String(err));
    });
    return true;
  }
}

/** A Redis store whose Secret is unusable: every lookup a miss (and reported), nothing kept. */
export class UnavailableStore implements CacheStore {
  private readonly onError: () => void;
  constructor(onError: () => void) {
    this.onError = onError;
  }
  get(): undefined {
    this.onError();
    return undefined;
  }
  set(): boolean {
    return true;
  }
}
