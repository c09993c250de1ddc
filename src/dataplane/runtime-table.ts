/**
 * A RoutingTable made ready for requests: the router, and for every rule its backends with live
 * endpoint lists, balancers, pool settings, filter chain and metric cells. Built once per table;
 * a request only reads it. Nothing here is shared with the next table except the long-lived
 * registries (endpoint state, pools, metric families), so a swap is one reference assignment.
 */

import type { CounterCell, HistogramCell } from '../observability/metric-families.ts';
import { CODE_CLASSES, type ProxyMetrics } from '../observability/proxy-metrics.ts';
import type { CompiledRule, RoutingTable } from '../routing-table/types.ts';
import {
  type Balancer,
  type Clock,
  createBalancer,
  type EndpointState,
  type Random,
} from './balancers/index.ts';
import type { EndpointRegistry } from './endpoint-registry.ts';
import { buildChain, type FilterChain, type FilterFactory } from './filters/filter.ts';
import { Router } from './router/router.ts';
import { endpointOrigin, type PoolRegistry, type PoolSettings } from './upstream/pools.ts';

export interface RuntimeBackend {
  readonly name: string;
  /** Normalised weight (of WEIGHT_TOTAL). */
  readonly weight: number;
  readonly protocol: string;
  readonly modelRevision: string | undefined;
  /** Endpoints taking new requests. */
  readonly ready: readonly EndpointState[];
  /** Terminating endpoints; used only when none is ready (as kube-proxy does). */
  readonly draining: readonly EndpointState[];
  readonly readyBalancer: Balancer;
  readonly drainingBalancer: Balancer;
  readonly duration: HistogramCell;
  readonly ttfb: HistogramCell;
  /** Request counters by [modelIndex * 5 + codeClass], bound on first use. */
  readonly requestCells: (CounterCell | undefined)[];
}

export interface RuntimeRule {
  readonly compiled: CompiledRule;
  readonly backends: readonly RuntimeBackend[];
  /** Cumulative weights for the weighted backend choice. */
  readonly cumulative: Int32Array;
  readonly totalWeight: number;
  readonly filters: FilterChain | undefined;
  readonly pool: PoolSettings;
  readonly inFlight: CounterCell;
  /** The backend used when the chosen one has no endpoint to serve with. */
  readonly fallback: RuntimeBackend | undefined;
  readonly retries: RetryState;
  readonly timeouts: { counter(kind: string): CounterCell };
  /** Bound on first use: most routes never see an abort, a stream or an exhausted budget. */
  readonly clientAborts: LazyCell;
  readonly activeStreams: LazyCell;
}

/** A metric cell created when first needed, so quiet routes add no series. */
export class LazyCell {
  private cell: CounterCell | undefined;
  private readonly make: () => CounterCell;
  constructor(make: () => CounterCell) {
    this.make = make;
  }
  get value(): number {
    return this.cell?.value ?? 0;
  }
  set value(v: number) {
    this.cell ??= this.make();
    this.cell.value = v;
  }
}

/** Per-rule retry accounting: the budget is a share of the rule's live requests. */
export interface RetryState {
  /** Retry attempts in flight. */
  active: number;
  readonly budgetExhausted: LazyCell;
  counter(reason: string): CounterCell;
}

export interface RuntimeDeps {
  endpoints: EndpointRegistry;
  pools: PoolRegistry;
  metrics: ProxyMetrics;
  filters: readonly FilterFactory[];
  random: Random;
  now: Clock;
}

/** Model label index 0 = route does not read the model, 1 = a model nobody configured. */
export const MODEL_LABEL_NONE = 0;
export const MODEL_LABEL_OTHER = 1;

export class RuntimeTable {
  readonly table: RoutingTable;
  readonly version: string;
  readonly router: Router<RuntimeRule>;
  readonly rules = new Map<string, RuntimeRule>();
  /** Metric label per model: '' , 'other', then every configured model name or glob. */
  readonly modelLabels: string[];
  readonly modelIndex: Map<string, number>;
  /** Endpoint origins and pool keys this table uses (for the registries' retain). */
  readonly origins = new Set<string>();
  readonly poolKeys = new Set<string>();
  private readonly metrics: ProxyMetrics;

  constructor(table: RoutingTable, version: string, deps: RuntimeDeps) {
    this.table = table;
    this.version = version;
    this.metrics = deps.metrics;
    this.modelLabels = ['', 'other', ...table.routes.models];
    this.modelIndex = new Map(this.modelLabels.map((m, i) => [m, i]));
    for (const rule of table.routes.rules) this.rules.set(rule.id, this.buildRule(rule, deps));
    this.router = new Router(table.routes.matches, (id) => this.rules.get(id));
  }

  private buildRule(rule: CompiledRule, deps: RuntimeDeps): RuntimeRule {
    const pool: PoolSettings = { connectTimeoutMs: rule.timeouts.connectMs };
    const opts = { random: deps.random, now: deps.now };
    const backends: RuntimeBackend[] = rule.backends.map((b) => {
      const ready: EndpointState[] = [];
      const draining: EndpointState[] = [];
      for (const e of this.table.endpoints[b.endpoints]?.endpoints ?? []) {
        const origin = endpointOrigin(e);
        this.origins.add(origin);
        this.poolKeys.add(deps.pools.keyOf(origin, pool));
        const info = deps.endpoints.get(origin, e.address, e.port, e.scheme);
        (e.state === 'ready' ? ready : draining).push(info.state);
      }
      const labels = [rule.route, b.name];
      return {
        name: b.name,
        weight: b.weight,
        protocol: b.protocol,
        modelRevision: b.modelRevision,
        ready,
        draining,
        readyBalancer: createBalancer(rule.loadBalancing.algorithm, ready, opts),
        drainingBalancer: createBalancer('LeastRequest', draining, opts),
        duration: deps.metrics.duration.child(labels),
        ttfb: deps.metrics.ttfb.child(labels),
        requestCells: [],
      };
    });
    const cumulative = new Int32Array(backends.length);
    let total = 0;
    backends.forEach((b, i) => {
      total += b.weight;
      cumulative[i] = total;
    });
    const m = deps.metrics;
    return {
      compiled: rule,
      backends,
      cumulative,
      totalWeight: total,
      filters: buildChain(deps.filters, rule, this.table),
      pool,
      inFlight: m.inFlight.child([rule.route]),
      fallback:
        rule.fallbackBackend === undefined
          ? undefined
          : backends.find((b) => b.name === rule.fallbackBackend),
      retries: {
        active: 0,
        budgetExhausted: new LazyCell(() => m.retryBudgetExhausted.child([rule.route])),
        counter: (reason) => m.retries.child([rule.route, reason]),
      },
      timeouts: { counter: (kind) => m.upstreamTimeouts.child([rule.route, kind]) },
      clientAborts: new LazyCell(() => m.clientAborts.child([rule.route])),
      activeStreams: new LazyCell(() => m.activeStreams.child([rule.route])),
    };
  }

  /** Weighted choice of a backend; undefined when every weight is zero. */
  pickBackend(rule: RuntimeRule, random: Random): RuntimeBackend | undefined {
    if (rule.totalWeight <= 0) return undefined;
    if (rule.backends.length === 1) return rule.backends[0];
    const x = Math.floor(random() * rule.totalWeight);
    const c = rule.cumulative;
    for (let i = 0; i < c.length; i++) if (x < c[i]!) return rule.backends[i];
    return rule.backends[rule.backends.length - 1];
  }

  /** The request counter for a backend, model label and status; bound once, then an array read. */
  requestCounter(rule: RuntimeRule, backend: RuntimeBackend, modelIdx: number, status: number): CounterCell {
    const cls = Math.min(Math.max(Math.floor(status / 100), 1), 5) - 1;
    const slot = modelIdx * 5 + cls;
    let cell = backend.requestCells[slot];
    if (!cell) {
      cell = this.metrics.requests.child([
        rule.compiled.route,
        rule.compiled.name,
        backend.name,
        this.modelLabels[modelIdx] ?? '',
        CODE_CLASSES[cls]!,
      ]);
      backend.requestCells[slot] = cell;
    }
    return cell;
  }

  /** Model label index for a request: the match's configured model, or the request's if known. */
  modelLabelIndex(matchLabel: string | undefined, requestModel: string | null | undefined): number {
    if (matchLabel !== undefined) return this.modelIndex.get(matchLabel) ?? MODEL_LABEL_OTHER;
    if (requestModel === undefined || requestModel === null) return MODEL_LABEL_NONE;
    return this.modelIndex.get(requestModel) ?? MODEL_LABEL_OTHER;
  }
}
