/**
 * A rule's response cache in table form (CompiledRule.cache). Plain data, like the rest of the
 * table; kept in its own file because it is a concern of its own. The proxy side is
 * src/dataplane/cache/.
 */
import type { CompiledRedis } from './types.ts';

/** A field of the JSON request body and the value it must have. */
export interface CompiledCacheBodyField {
  /** JSON Pointer tokens (never empty: a member of the body). */
  path: string[];
  /** Any JSON value, object keys sorted. */
  equals: unknown;
}

/** One `when` entry: every condition must hold. */
export interface CompiledCacheCondition {
  bodyFields: CompiledCacheBodyField[];
  /** Lower-case names, exact values. */
  headers: { name: string; value: string }[];
}

export interface CompiledCache {
  /** Longest an answer is served, ms; an answer's Cache-Control max-age/s-maxage may shorten it. */
  ttlMs: number;
  /** Largest answer body stored, bytes. */
  maxEntryBytes: number;
  /** Lower-case request header names that are part of the key, in the order given. */
  keyHeaders: string[];
  /** Answers are the same for every caller: the caller is not part of the key. */
  shared: boolean;
  /** Any entry holding makes a request cacheable; empty: every request of the rule. */
  when: CompiledCacheCondition[];
  store: 'Local' | 'Redis';
  /** Redis store: where; absent when its Secret is unusable (see redisUnavailable). */
  redis?: CompiledRedis;
  /** Redis store without a usable Redis: why. Proxies then treat every lookup as a miss. */
  redisUnavailable?: string;
  /** Identical requests in flight wait for the first one's answer; maxWaiters 0: off. */
  coalescing: { maxWaiters: number; maxWaitMs: number };
}
