/**
 * The response cache filter (see filters/filter.ts and the README, "Response cache"). It runs last,
 * after authentication, validation, rate limiting (so a hit has been counted against the caller's
 * limits, like any request) and transforms (so its key and conditions read what the upstream would
 * receive). Per request:
 *
 * 1. cacheable? GET, HEAD or POST (not an upgrade, not gRPC), no `Cache-Control: no-store`, a
 *    caller unless the rule's answers are shared (the anonymous caller is none), the rule's
 *    deterministic conditions, and a backend to send it to. Otherwise BYPASS.
 * 2. the backend is chosen now (FilterContext.chooseBackend; the exchange keeps that choice), and
 *    its model revision picks the key's namespace (groups.ts); the key covers the request
 *    (cache-key.ts).
 * 3. lookup, unless the request asks for a fresh answer: a live entry is the answer (HIT, with Age).
 *    A HEAD request is answered from the GET entry, and never stores.
 * 4. miss: when an identical request is already on its way upstream, wait for its answer
 *    (coalescer.ts); otherwise go upstream (MISS) with an observer that stores a storable answer
 *    (fill.ts) and hands it to the waiters.
 *
 * The client sees `x-cache: HIT | MISS | BYPASS`. Nothing here ever fails a request: a store that
 * cannot answer is a miss.
 */
import type { Logger } from 'pino';
import type { CounterCell } from '../../observability/metric-families.ts';
import type { ProxyMetrics } from '../../observability/proxy-metrics.ts';
import type { CompiledCache, CompiledRule, RoutingTable } from '../../routing-table/types.ts';
import type { Filter, FilterContext, FilterFactory, FilterOutcome } from '../filters/filter.ts';
import { isGrpc } from '../grpc.ts';
import { RedisClients } from '../ratelimit/redis-clients.ts';
import type { OutgoingHeaders } from '../upstream/headers.ts';
import { type RequestDirectives, requestDirectives } from './cache-control.ts';
import { cacheKey } from './cache-key.ts';
import { CacheMetrics, type CacheResult, type NotStoredReason } from './cache-metrics.ts';
import { Coalescer, type Flight } from './coalescer.ts';
import { Determinism } from './conditions.ts';
import type { CacheEntry } from './entry.ts';
import { Fill, type FillTarget } from './fill.ts';
import { groupsOf, liveGroups } from './groups.ts';
import { LocalCacheStore } from './local-store.ts';
import { type CacheStore, RedisCacheStore, UnavailableStore } from './redis-store.ts';

/** The local store's budget when the GatewayConfig gives none. */
export const DEFAULT_CACHE_MAX_BYTES = 256 * 1024 ** 2;

/** How often a Redis problem is logged per route (it is counted every time). */
const REDIS_LOG_INTERVAL_MS = 10_000;

export interface CacheFilterOptions {
  metrics: ProxyMetrics;
  logger: Logger;
  /** Wall clock in ms: entries' ages and expiry (Redis entries are shared by proxies). */
  now?: () => number;
  /** The local store's budget in bytes, for every rule together. */
  maxBytes?: number;
}

export class CacheFilterFactory implements FilterFactory {
  readonly name = 'cache';
  readonly local: LocalCacheStore;
  readonly coalescer = new Coalescer();
  /** The cache's own Redis connections (apart from the rate limiter's). */
  readonly redis = new RedisClients({ connectionName: 'modelgate-cache' });
  readonly metrics: CacheMetrics;
  readonly now: () => number;
  readonly logger: Logger;
  /** Groups some backend serves, as of the last applied table; undefined before the first. */
  private live: Set<string> | undefined;
  private readonly lastRedisLog = new Map<string, number>();

  constructor(opts: CacheFilterOptions) {
    this.now = opts.now ?? Date.now;
    this.logger = opts.logger;
    this.metrics = new CacheMetrics(opts.metrics, () => ({
      bytes: this.local.bytes,
      entries: this.local.size,
    }));
    this.local = new LocalCacheStore(opts.maxBytes ?? DEFAULT_CACHE_MAX_BYTES, (reason, n) => {
      this.metrics.evictions.child([reason]).value += n;
    });
  }

  build(rule: CompiledRule): Filter | undefined {
    return rule.cache ? new CacheFilter(this, rule, rule.cache) : undefined;
  }

  /** The table is in service: entries of revisions that no longer serve go, unused Redis clients close. */
  applied(table: RoutingTable): void {
    const live = liveGroups(table.routes.rules);
    this.live = live;
    this.local.purge((g) => live.has(g), this.now());
    const redis = new Set<string>();
    for (const r of table.routes.rules) if (r.cache?.redis) redis.add(RedisClients.keyOf(r.cache.redis));
    this.redis.retain(redis);
    this.metrics.pruneRoutes(new Set(table.routes.rules.map((r) => r.route)));
  }

  async close(): Promise<void> {
    await this.redis.closeAll();
    this.local.clear();
  }

  /** False for a group no backend of the table in service serves (a fill that finished late). */
  isLive(group: string): boolean {
    return this.live === undefined || this.live.has(group);
  }

  /** Logs a Redis problem of a route, at most once per interval. */
  redisProblem(route: string, message: string): void {
    const now = Date.now();
    if (now - (this.lastRedisLog.get(route) ?? -Infinity) < REDIS_LOG_INTERVAL_MS) return;
    this.lastRedisLog.set(route, now);
    this.logger.warn({ route, error: message }, 'response cache: Redis unavailable; lookups are misses');
  }
}

/** What the filter remembers of a request between its lookup and its answer. */
interface Pending {
  ctx: FilterContext;
  key: string;
  group: string;
  backend: string;
  directives: RequestDirectives | undefined;
}

class CacheFilter implements Filter, FillTarget {
  readonly name = 'cache';
  // The key includes a hash of the body, and conditions may read it.
  readonly readsBody = true;
  readonly maxEntryBytes: number;
  readonly ttlMs: number;
  readonly shared: boolean;
  readonly keyHeaders: ReadonlySet<string>;
  private readonly keyHeaderList: readonly string[];
  private readonly factory: CacheFilterFactory;
  private readonly route: string;
  private readonly determinism: Determinism;
  private readonly groups: Map<string, string>;
  private readonly store: CacheStore;
  private readonly maxWaiters: number;
  private readonly maxWaitMs: number;
  private readonly results: Record<CacheResult, CounterCell>;
  private readonly redisErrors: CounterCell;

  constructor(factory: CacheFilterFactory, rule: CompiledRule, c: CompiledCache) {
    this.factory = factory;
    this.route = rule.route;
    this.maxEntryBytes = c.maxEntryBytes;
    this.ttlMs = c.ttlMs;
    this.shared = c.shared;
    this.keyHeaderList = c.keyHeaders;
    this.keyHeaders = new Set(c.keyHeaders);
    this.determinism = new Determinism(c.when, rule.maxRequestBodyBytes);
    this.groups = groupsOf(rule);
    this.maxWaiters = c.coalescing.maxWaiters;
    this.maxWaitMs = c.coalescing.maxWaitMs;
    this.results = factory.metrics.results(rule.route);
    this.redisErrors = factory.metrics.redisErrors.child([rule.route]);
    if (c.store === 'Local') this.store = new LocalStoreView(factory.local);
    else if (c.redis) {
      this.store = new RedisCacheStore(factory.redis.get(c.redis), (message) => {
        this.redisErrors.value++;
        factory.redisProblem(rule.route, message);
      });
    } else {
      const reason = c.redisUnavailable ?? 'no Redis';
      this.store = new UnavailableStore(() => {
        this.redisErrors.value++;
        factory.redisProblem(rule.route, reason);
      });
    }
  }

  onRequest(ctx: FilterContext): FilterOutcome | Promise<FilterOutcome> {
    const req = ctx.req;
    const method = req.method;
    if (
      (method !== 'POST' && method !== 'GET' && method !== 'HEAD') ||
      req.headers.upgrade !== undefined ||
      ctx.chooseBackend === undefined ||
      isGrpc(req)
    ) {
      return this.bypass(ctx);
    }
    const directives = requestDirectives(req.headers['cache-control'], req.headers.pragma);
    if (directives?.noStore) return this.bypass(ctx);
    let caller = '';
    if (!this.shared) {
      const id = ctx.identity;
      if (id === undefined || id.method === 'anonymous') return this.bypass(ctx);
      caller = `${id.method}\u0000${id.provider ?? ''}\u0000${id.consumer}`;
    }
    if (!this.determinism.holds({ headers: ctx.upstreamHeaders, body: ctx.body })) return this.bypass(ctx);
    const backend = ctx.chooseBackend();
    const group = backend === undefined ? undefined : this.groups.get(backend.name);
    if (group === undefined) return this.bypass(ctx);
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const host = ctx.hostRewrite ?? ctx.upstreamHeaders.host;
    const key = cacheKey({
      group,
      method: method === 'HEAD' ? 'GET' : method,
      host: typeof host === 'string' ? host.toLowerCase() : '',
      path: ctx.path,
      query: q < 0 ? '' : url.slice(q),
      model: ctx.model,
      headers: ctx.upstreamHeaders,
      keyHeaders: this.keyHeaderList,
      caller,
      body: ctx.body,
    });
    const p: Pending = { ctx, key, group, backend: backend!.name, directives };
    if (directives?.refresh) return this.miss(p, true);
    const found = this.store.get(key, group, this.factory.now());
    if (found instanceof Promise) return found.then((e) => this.looked(p, e));
    return this.looked(p, found);
  }

  private looked(p: Pending, entry: CacheEntry | undefined): FilterOutcome | Promise<FilterOutcome> {
    if (entry === undefined) return this.miss(p, false);
    const ageS = Math.max(0, Math.floor((this.factory.now() - entry.storedAt) / 1000));
    const maxAge = p.directives?.maxAgeS;
    // Older than the client accepts: fetch a fresh one, as a refresh.
    if (maxAge !== undefined && ageS > maxAge) return this.miss(p, true);
    return this.serve(p.ctx, entry, ageS, 'hit');
  }

  private serve(ctx: FilterContext, entry: CacheEntry, ageS: number, result: CacheResult): FilterOutcome {
    const headers = cacheHeader(ctx, 'HIT');
    headers.age = String(ageS);
    this.results[result].value++;
    return entry.outcome;
  }

  private miss(p: Pending, refresh: boolean): FilterOutcome | Promise<FilterOutcome> {
    const { ctx } = p;
    if (ctx.req.method === 'HEAD') {
      // An answer to HEAD has no body to store: it goes upstream as it is.
      cacheHeader(ctx, 'MISS');
      this.results.miss.value++;
      return undefined;
    }
    // Stored answers are served to every client: ask for them unencoded (the gateway's own
    // compression, when the route enables it, then applies per client, on hits too).
    ctx.upstreamHeaders['accept-encoding'] = 'identity';
    if (refresh || this.maxWaiters === 0) return this.fill(p, undefined);
    const coalescer = this.factory.coalescer;
    const flight = coalescer.get(p.key);
    if (flight === undefined) return this.fill(p, coalescer.lead(p.key));
    const wait = coalescer.wait(flight, this.maxWaiters, this.maxWaitMs);
    if (wait === undefined) return this.fill(p, undefined);
    return wait.then((entry) => (entry ? this.serve(ctx, entry, 0, 'coalesced') : this.fill(p, undefined)));
  }

  private fill(p: Pending, flight: Flight | undefined): FilterOutcome {
    const ctx = p.ctx;
    cacheHeader(ctx, 'MISS');
    this.results.miss.value++;
    const fill = new Fill(this, p.key, p.group, p.backend, flight);
    // First, so it copies the upstream's own bytes (before a response transform changes them).
    if (ctx.observers) ctx.observers.unshift(fill);
    else ctx.observers = [fill];
    return undefined;
  }

  private bypass(ctx: FilterContext): undefined {
    cacheHeader(ctx, 'BYPASS');
    this.results.bypass.value++;
    return undefined;
  }

  // --- FillTarget ---

  now(): number {
    return this.factory.now();
  }

  keep(key: string, entry: CacheEntry): void {
    if (!this.factory.isLive(entry.group)) this.notStored('revision_gone');
    else if (!this.store.set(key, entry, this.factory.now())) this.notStored('too_large');
  }

  notStored(reason: NotStoredReason): void {
    this.factory.metrics.notStored.child([this.route, reason]).value++;
  }

  settle(flight: Flight, entry: CacheEntry | undefined): void {
    this.factory.coalescer.settle(flight, entry);
  }
}

/** Sets `x-cache` on the answer; returns the headers the filters add to it. */
function cacheHeader(ctx: FilterContext, value: 'HIT' | 'MISS' | 'BYPASS'): OutgoingHeaders {
  let headers = ctx.responseHeaders;
  if (headers === undefined) {
    headers = {};
    ctx.responseHeaders = headers;
  }
  headers['x-cache'] = value;
  return headers;
}

/** The proxy's local store as one rule's CacheStore. */
class LocalStoreView implements CacheStore {
  private readonly local: LocalCacheStore;
  constructor(local: LocalCacheStore) {
    this.local = local;
  }
  get(key: string, _group: string, now: number): CacheEntry | undefined {
    return this.local.get(key, now);
  }
  set(key: string, entry: CacheEntry, now: number): boolean {
    return this.local.set(key, entry, now);
  }
}
