/**
 * The response cache's metrics, registered in the proxy's registry by the cache filter factory.
 * Labels are bounded by configuration (`route`) or by the fixed lists below.
 */
import { CallbackFamily, type CounterCell, CounterFamily } from '../../observability/metric-families.ts';
import type { ProxyMetrics } from '../../observability/proxy-metrics.ts';

/** hit: served from the store; coalesced: served the answer of an identical request in flight. */
export const CACHE_RESULTS = ['hit', 'miss', 'bypass', 'coalesced'] as const;
export type CacheResult = (typeof CACHE_RESULTS)[number];

/** Why a miss's answer was not stored. */
export type NotStoredReason =
  | 'status'
  | 'streamed'
  | 'encoded'
  | 'set_cookie'
  | 'vary'
  | 'cache_control'
  | 'too_large'
  | 'incomplete'
  | 'fallback'
  | 'revision_gone';

export class CacheMetrics {
  readonly requests = new CounterFamily(
    'modelgate_cache_requests_total',
    'Requests on rules with a cache, by route and result (hit, miss, bypass: not cacheable, coalesced: served the answer of an identical request in flight).',
    ['route', 'result'],
  );
  readonly notStored = new CounterFamily(
    'modelgate_cache_not_stored_total',
    'Answers to cache misses that were not stored, by route and reason (status, streamed, encoded, set_cookie, vary, cache_control, too_large, incomplete, fallback, revision_gone).',
    ['route', 'reason'],
  );
  readonly evictions = new CounterFamily(
    'modelgate_cache_evictions_total',
    'Entries dropped from the local store, by reason (size: least recently used, for room; expired; purged: their model revision no longer serves).',
    ['reason'],
  );
  readonly redisErrors = new CounterFamily(
    'modelgate_cache_redis_errors_total',
    'Redis cache lookups and stores that failed (each failed lookup served as a miss), by route.',
    ['route'],
  );

  constructor(metrics: ProxyMetrics, local: () => { bytes: number; entries: number }) {
    for (const f of [this.requests, this.notStored, this.evictions, this.redisErrors]) {
      metrics.registry.registerMetric(
        f as unknown as Parameters<ProxyMetrics['registry']['registerMetric']>[0],
      );
    }
    metrics.registerCallback(
      new CallbackFamily('modelgate_cache_bytes', 'Bytes held by the local response cache.', 'gauge', () => [
        [{}, local().bytes],
      ]),
    );
    metrics.registerCallback(
      new CallbackFamily('modelgate_cache_entries', 'Entries in the local response cache.', 'gauge', () => [
        [{}, local().entries],
      ]),
    );
  }

  /** The four result counters of a route, bound once per rule. */
  results(route: string): Record<CacheResult, CounterCell> {
    return {
      hit: this.requests.child([route, 'hit']),
      miss: this.requests.child([route, 'miss']),
      bypass: this.requests.child([route, 'bypass']),
      coalesced: this.requests.child([route, 'coalesced']),
    };
  }

  /** Drops the series of routes not in `routes`. */
  pruneRoutes(routes: ReadonlySet<string>): void {
    const keep = (labels: Record<string, string>) => routes.has(labels.route ?? '');
    this.requests.prune(keep);
    this.notStored.prune(keep);
    this.redisErrors.prune(keep);
  }
}
