/**
 * A RoutingTable made ready for requests: the router, and for every rule its backends with live
 * endpoint lists, balancers, pool settings, filter chain and metric cells. Built once per table;
 * a request only reads it. Nothing here is shared with the next table except the long-lived
 * registries (endpoint state, pools, metric families), so a swap is one reference assignment.
 */

import type { Pool } from 'undici';
import type { CounterCell, HistogramCell } from '../observability/metric-families.ts';
import { CODE_CLASSES, type ProxyMetrics } from '../observability/proxy-metrics.ts';
import type {
  CompiledBackend,
  CompiledRule,
  LoadBalancingAlgorithm,
  RoutingTable,
} from '../routing-table/types.ts';
import {
  type Balancer,
  type Clock,
  createBalancer,
  type EndpointState,
  type Random,
} from './balancers/index.ts';
import { CanaryChoice } from './canary/canary-choice.ts';
import { Mirror } from './canary/mirror.ts';
import { Composition } from './compose/composition.ts';
import { CorsPolicy } from './cors.ts';
import type { EndpointRegistry } from './endpoint-registry.ts';
import { buildChain, type FilterChain, type FilterFactory } from './filters/filter.ts';
import type { HealthTarget } from './health/active-checker.ts';
import type { EndpointHealth } from './health/endpoint-health.ts';
import { OutlierGroup } from './health/outlier-detector.ts';
import { KServeRule } from './kserve/kserve-rule.ts';
import { Router } from './router/router.ts';
import { endpointOrigin, type PoolRegistry, type PoolSettings, poolSettings } from './upstream/pools.ts';

export interface RuntimeBackend {
  readonly name: string;
  /** Normalised weight (of WEIGHT_TOTAL). */
  readonly weight: number;
  readonly protocol: string;
  readonly modelRevision: string | undefined;
  /** Endpoints taking new requests (whether or not health lets them, see `balancer`). */
  readonly ready: readonly EndpointState[];
  /** Terminating endpoints; used only when no ready one is available (as kube-proxy does). */
  readonly draining: readonly EndpointState[];
  /** Over the available ready endpoints; rebuilt when health changes. */
  balancer: Balancer;
  /** Over the available draining endpoints. */
  drainingBalancer: Balancer;
  readonly pool: PoolSettings;
  /** Pools of this backend's endpoints, looked up once (the registry's key is a string to build). */
  readonly pools: Map<string, Pool>;
  /** Passive health group, when the rule has outlier detection. */
  readonly outlierGroup: OutlierGroup | undefined;
  readonly duration: LazyHistogram;
  readonly ttfb: LazyHistogram;
  /** Request counters by [modelIndex * 5 + codeClass], bound on first use. */
  readonly requestCells: (CounterCell | undefined)[];
  /** A header the gateway sets upstream for this backend (a hosted API's key). */
  readonly credentials: { header: string; headerValue: string } | undefined;
}

export interface RuntimeRule {
  readonly compiled: CompiledRule;
  readonly backends: readonly RuntimeBackend[];
  /** Cumulative weights for the weighted backend choice. */
  readonly cumulative: Int32Array;
  readonly totalWeight: number;
  readonly filters: FilterChain | undefined;
  readonly inFlight: CounterCell;
  /** The backend used when the chosen one has no endpoint to serve with. */
  readonly fallback: RuntimeBackend | undefined;
  readonly retries: RetryState;
  readonly timeouts: { counter(kind: string): CounterCell };
  /** Bound on first use: most routes never see an abort, a stream or an exhausted budget. */
  readonly clientAborts: LazyCell;
  readonly activeStreams: LazyCell;
  /** The route's CORS policy, when it has one. */
  readonly cors: CorsPolicy | undefined;
  /** A CanaryRollout governs two of this rule's backends: previews, overrides, stickiness. */
  readonly canary: CanaryChoice | undefined;
  /** Copies of stable's requests to the canary, when the rollout mirrors. */
  readonly mirror: Mirror | undefined;
  /** The rule's pipeline or fan-out, when it is composed: it runs instead of the backend choice. */
  readonly composition: Composition | undefined;
  /** KServe v2 REST clients, gRPC backends: the translated call runs instead of the backend choice. */
  readonly translation: KServeRule | undefined;
}

/** A histogram child created on the first observation: 10,000 idle routes cost no buckets. */
export class LazyHistogram {
  private cell: HistogramCell | undefined;
  private readonly make: () => HistogramCell;
  constructor(make: () => HistogramCell) {
    this.make = make;
  }
  observe(v: number): void {
    this.cell ??= this.make();
    this.cell.observe(v);
  }
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
  /** Which endpoints may get new requests (active checks and outlier ejection). */
  health: EndpointHealth;
  pools: PoolRegistry;
  metrics: ProxyMetrics;
  filters: readonly FilterFactory[];
  random: Random;
  now: Clock;
  /** The previous table's mirrors, by rule and settings: reused so in-flight counts carry over. */
  mirrors: ReadonlyMap<string, Mirror>;
}

/** The rule's canary choice, when its rollout's two backends are both among its backends. */
function canaryOf(rule: CompiledRule, backends: readonly RuntimeBackend[]): CanaryChoice | undefined {
  const c = rule.canary;
  if (!c) return undefined;
  const stable = backends.find((b) => b.name === c.stableBackend);
  const canary = backends.find((b) => b.name === c.canaryBackend);
  return stable && canary ? new CanaryChoice(c, stable, canary) : undefined;
}

/** Indexes in CODE_CLASSES of 2xx and 5xx: bound together for rollout backends (bindRequestCell). */
const ANALYSED_CLASSES = [1, 4] as const;

/** The balancer of a backend with nothing to balance over. */
const EMPTY_BALANCER: Balancer = { pick: () => undefined };

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
  /** Active health checks this table asks for. */
  readonly healthTargets: HealthTarget[] = [];
  /** This table's mirrors (the next table reuses them). */
  readonly mirrors = new Map<string, Mirror>();
  /** Backends by endpoint origin, to rebuild just the affected balancers when health changes. */
  private readonly backendsByOrigin = new Map<string, RuntimeBackend[]>();
  private readonly balancerOptions: { random: Random; now: Clock };
  private readonly algorithms = new Map<RuntimeBackend, LoadBalancingAlgorithm>();
  private readonly health: EndpointHealth;
  private readonly metrics: ProxyMetrics;

  constructor(table: RoutingTable, version: string, deps: RuntimeDeps) {
    this.table = table;
    this.version = version;
    this.metrics = deps.metrics;
    this.health = deps.health;
    this.balancerOptions = { random: deps.random, now: deps.now };
    this.modelLabels = ['', 'other', ...table.routes.models];
    this.modelIndex = new Map(this.modelLabels.map((m, i) => [m, i]));
    for (const rule of table.routes.rules) this.rules.set(rule.id, this.buildRule(rule, deps));
    this.router = new Router(table.routes.matches, (id) => this.rules.get(id));
  }

  private buildRule(rule: CompiledRule, deps: RuntimeDeps): RuntimeRule {
    const backends: RuntimeBackend[] = rule.backends.map((b) => this.buildBackend(rule, b, deps));
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
      cors: rule.cors ? new CorsPolicy(rule.cors) : undefined,
      canary: canaryOf(rule, backends),
      mirror: rule.canary?.mirror ? this.mirrorFor(rule, deps) : undefined,
      composition: rule.composition
        ? new Composition(rule, rule.composition, backends, deps.metrics)
        : undefined,
      translation: rule.translation ? new KServeRule(rule, rule.translation) : undefined,
    };
  }

  /** The rule's mirror: kept across tables while its settings stay (its in-flight count is live). */
  private mirrorFor(rule: CompiledRule, deps: RuntimeDeps): Mirror {
    const m = rule.canary!.mirror!;
    const key = `${rule.id}\u0000${m.percent}\u0000${m.maxInFlight}`;
    const mirror = deps.mirrors.get(key) ?? new Mirror(m.percent, m.maxInFlight);
    this.mirrors.set(key, mirror);
    return mirror;
  }

  private buildBackend(rule: CompiledRule, b: CompiledBackend, deps: RuntimeDeps): RuntimeBackend {
    // A Service spoken to over TLS: same endpoints, https scheme.
    const scheme = b.tls ? 'https' : undefined;
    const pool = poolSettings(rule.timeouts.connectMs, b.protocol !== 'HTTP' && !b.tls, b.tls);
    const ready: EndpointState[] = [];
    const draining: EndpointState[] = [];
    const part = b.unavailable === undefined ? this.table.endpoints[b.endpoints] : undefined;
    for (const e of part?.endpoints ?? []) {
      const origin = endpointOrigin({ ...e, scheme: scheme ?? e.scheme });
      this.origins.add(origin);
      this.poolKeys.add(deps.pools.keyOf(origin, pool));
      const info = deps.endpoints.get(origin, e.address, e.port, scheme ?? e.scheme);
      (e.state === 'ready' ? ready : draining).push(info.state);
      if (rule.healthCheck) {
        const tls = b.tls && {
          ca: b.tls.caPem,
          servername: b.tls.serverName,
          cert: b.tls.certificatePem,
          key: b.tls.privateKey,
          rejectUnauthorized: !b.tls.insecureSkipVerify,
        };
        this.healthTargets.push({ origin, ...rule.healthCheck, ...(tls && { tls }) });
      }
    }
    const labels = [rule.route, b.name];
    const o = rule.outlierDetection;
    const backend: RuntimeBackend = {
      name: b.name,
      weight: b.weight,
      protocol: b.protocol,
      modelRevision: b.modelRevision,
      ready,
      draining,
      balancer: EMPTY_BALANCER,
      drainingBalancer: EMPTY_BALANCER,
      pool,
      pools: new Map(),
      outlierGroup: o
        ? new OutlierGroup(
            `${rule.id}/${b.name}`,
            ready.map((e) => e.id),
            {
              consecutiveErrors: o.consecutiveErrors,
              baseEjectionMs: o.baseEjectionMs,
              maxEjectionMs: o.maxEjectionMs,
              maxEjectionPercent: o.maxEjectionPercent,
            },
          )
        : undefined,
      duration: new LazyHistogram(() => deps.metrics.duration.child(labels)),
      ttfb: new LazyHistogram(() => deps.metrics.ttfb.child(labels)),
      requestCells: [],
      credentials: b.credentials,
    };
    this.algorithms.set(backend, rule.loadBalancing.algorithm);
    for (const e of [...ready, ...draining]) {
      const list = this.backendsByOrigin.get(e.id);
      if (list) list.push(backend);
      else this.backendsByOrigin.set(e.id, [backend]);
    }
    this.rebuild(backend);
    return backend;
  }

  /** Balancers over the endpoints health allows now. */
  private rebuild(backend: RuntimeBackend): void {
    const algorithm = this.algorithms.get(backend)!;
    backend.balancer = createBalancer(algorithm, this.health.available(backend.ready), this.balancerOptions);
    backend.drainingBalancer = createBalancer(
      'LeastRequest',
      this.health.available(backend.draining),
      this.balancerOptions,
    );
  }

  /** Health changed for an endpoint: rebuild the balancers that include it. */
  availabilityChanged(origin: string): void {
    for (const backend of this.backendsByOrigin.get(origin) ?? []) this.rebuild(backend);
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
      cell = this.bindRequestCell(rule, backend, modelIdx, cls);
      if (rule.canary?.governs(backend)) {
        for (const sibling of ANALYSED_CLASSES) {
          if (sibling !== cls) this.bindRequestCell(rule, backend, modelIdx, sibling);
        }
      }
    }
    return cell;
  }

  /**
   * Binds (creates at 0 when new) one series of `modelgate_requests_total`.
   *
   * Series are created lazily, so a backend's first 5xx would make a new series whose first
   * scraped value already counts it; Prometheus's increase() cannot count a series' first sample
   * (it has no predecessor), and a canary with a rare 5xx judged by the Prometheus analysis
   * provider would pass with none counted. So for the two backends a CanaryRollout governs, the
   * first request of a model label binds the 2xx and 5xx series together, at 0 (requestCounter):
   * a later 5xx is an increment Prometheus sees. (A 5xx within one scrape of that first request
   * still goes uncounted, but then the 2xx series loses its first sample too, in proportion.)
   * Fixed here rather than in prometheus-provider.ts's queries: exporting a series at 0 before its
   * first increment is Prometheus's own advice, it also makes dashboards' and alerts' 5xx rates
   * right, and a PromQL correction (adding the whole value of series born in the window) would
   * mix exact and extrapolated counts and count a new series' increments from before the window.
   * Only for governed backends, and only those two classes (errors, and nearly all requests), so
   * routes without a rollout add no series.
   */
  private bindRequestCell(
    rule: RuntimeRule,
    backend: RuntimeBackend,
    modelIdx: number,
    cls: number,
  ): CounterCell {
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
