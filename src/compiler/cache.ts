/**
 * A rule's `cache` in table form, with the checks a schema cannot express: durations and sizes
 * within their bounds, a key header named once. Two steps, because the Redis Secret is resolved
 * where Secrets are known (compile.ts) while the rest keeps a route out of the table when it is
 * wrong (route-model.ts): a cache that cannot be configured as asked is never served without it.
 *
 * A Redis store whose Secret is missing or unusable is still placed, with `redisUnavailable`:
 * proxies then answer every lookup as a miss (the cache fails open, as when Redis is down), and
 * ResolvedRefs says why.
 */
import type { Cache } from '../api/cache.ts';
import type { FieldError } from '../api/cel.ts';
import type { Rule } from '../api/model-route.ts';
import { Reason } from '../api/status.ts';
import type { CompiledCache, CompiledCacheCondition } from '../routing-table/types.ts';
import { compileRedis } from './rate-limits.ts';
import type { SecretIndex } from './secrets.ts';
import { canonicalJson, parsePointer } from './transform.ts';
import { parseByteSize, parseDurationMs } from './units.ts';

const MAX_TTL_MS = 24 * 3_600_000;
const MAX_ENTRY_BYTES = 64 * 1024 ** 2;
const MAX_REDIS_TIMEOUT_MS = 5_000;
const MAX_WAIT_MS = 10 * 60_000;

function within(ms: number, max: number, at: string, what: string, errors: FieldError[]): void {
  if (!(ms > 0) || ms > max) errors.push({ path: at, message: `must be between 1ms and ${what}` });
}

function conditions(when: Cache['when']): CompiledCacheCondition[] {
  return (when ?? []).map((c) => ({
    bodyFields: (c.bodyFields ?? []).map((f) => ({
      path: parsePointer(f.path),
      equals: canonicalJson(f.equals),
    })),
    headers: (c.headers ?? []).map((h) => ({ name: h.name.toLowerCase(), value: h.value })),
  }));
}

/** The rule's cache without its Redis connection (see resolveCacheStore); errors keep the route out. */
export function compileCache(rule: Rule, at: string, errors: FieldError[]): CompiledCache | undefined {
  const c = rule.cache;
  if (!c) return undefined;
  const here = `${at}.cache`;
  if (rule.composition) {
    // A composed answer comes from several backends, each with its revision: not keyed yet.
    errors.push({ path: here, message: 'cache does not apply to a composed rule' });
  }
  const ttlMs = parseDurationMs(c.ttl);
  within(ttlMs, MAX_TTL_MS, `${here}.ttl`, '24h', errors);
  const maxEntryBytes = parseByteSize(c.maxEntrySize);
  if (!(maxEntryBytes > 0) || maxEntryBytes > MAX_ENTRY_BYTES) {
    errors.push({ path: `${here}.maxEntrySize`, message: 'must be between 1 byte and 64Mi' });
  }
  const keyHeaders: string[] = [];
  (c.keyHeaders ?? []).forEach((h, i) => {
    const name = h.toLowerCase();
    if (keyHeaders.includes(name)) {
      errors.push({
        path: `${here}.keyHeaders[${i}]`,
        message: `${h} is listed twice (names are case-insensitive)`,
      });
    }
    keyHeaders.push(name);
  });
  const coalescing = c.coalescing ?? { maxWaiters: 1000, maxWait: '60s' };
  const maxWaitMs = parseDurationMs(coalescing.maxWait);
  within(maxWaitMs, MAX_WAIT_MS, `${here}.coalescing.maxWait`, '10m', errors);
  if (c.redis?.timeout !== undefined) {
    within(parseDurationMs(c.redis.timeout), MAX_REDIS_TIMEOUT_MS, `${here}.redis.timeout`, '5s', errors);
  }
  return {
    ttlMs,
    maxEntryBytes,
    keyHeaders,
    shared: c.shared,
    when: conditions(c.when),
    store: c.store,
    coalescing: { maxWaiters: coalescing.maxWaiters, maxWaitMs },
  };
}

/**
 * The cache with its Redis connection resolved from the Secret (Redis store only). Problems go to
 * `refProblems` as [reason, message]; the rule is served anyway, every lookup a miss.
 */
export function resolveCacheStore(
  cache: CompiledCache,
  spec: Cache,
  namespace: string,
  secrets: SecretIndex,
  at: string,
  refProblems: [string, string][],
): CompiledCache {
  if (cache.store !== 'Redis' || !spec.redis) return cache;
  const r = compileRedis(spec.redis, namespace, secrets, `${at}.cache.redis.secretRef`);
  if (r.ok) return { ...cache, redis: r.redis };
  const missing = !secrets.has(`${namespace}/${spec.redis.secretRef.name}`);
  refProblems.push([missing ? Reason.SecretNotFound : Reason.InvalidSecret, r.message]);
  return { ...cache, redisUnavailable: r.message };
}
