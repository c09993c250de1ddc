/**
 * The rate-limit filter (see filters/filter.ts). It runs after authentication, so limits can be
 * keyed by the consumer and tiered by its groups. Per request:
 *
 * 1. the charge: each limit's key, the caller's amount, and the cost (1 request, or a model-token
 *    reservation read from the body, see token-charge.ts);
 * 2. admission: an in-flight slot on the route when the policy caps it, then every limit
 *    all-or-nothing (locally, or in one Redis call);
 * 3. refused: 429 with Retry-After and the RateLimit headers, or a wait in the route's queue when
 *    the policy says Queue (re-checked when capacity may have freed, see throttle-queue.ts);
 * 4. admitted: RateLimit headers on the response, and an observer that gives the slot back and
 *    reconciles token reservations when the exchange ends, however it ends.
 *
 * A Global policy whose Redis cannot be reached (or whose Secret is unusable) applies its
 * failureMode: FailOpen admits without counting, FailClosed answers 503; both are counted and
 * logged (the log at most once per policy every 10 s).
 */
import type { Logger } from 'pino';
import { CallbackFamily, type CounterCell } from '../../observability/metric-families.ts';
import type { ProxyMetrics } from '../../observability/proxy-metrics.ts';
import type { CompiledRateLimitPolicy, CompiledRule, RoutingTable } from '../../routing-table/types.ts';
import { Errors } from '../errors.ts';
import type { Filter, FilterContext, FilterFactory, FilterOutcome, Rejection } from '../filters/filter.ts';
import { type Charge, type Counter, type CountResult, LocalCounter } from './counters.ts';
import { GlobalCounter } from './global-counter.ts';
import { type LimitReport, mostRestrictive, rateLimitItem, retryAfterValue } from './headers.ts';
import { PolicyPlan } from './policy-plan.ts';
import { countingFingerprint, PolicyState, RouteGate } from './policy-state.ts';
import { RedisClients } from './redis-clients.ts';
import { type LeaveReason, type Recheck, ThrottleQueue, type Waiter } from './throttle-queue.ts';
import { AdmittedRequest, reserveTokens, type TokenReservation } from './token-charge.ts';
import type { Decision } from './types.ts';

export interface RateLimitFilterOptions {
  metrics: ProxyMetrics;
  logger: Logger;
  /** Monotonic clock in ms (local counters and the queue). */
  now: () => number;
  /** How many proxies share the traffic (splitAcrossProxies); default 1. */
  proxies?: () => number;
  /** Most keys a local limit keeps (memory bound); default local-store's. */
  maxKeysPerLimit?: number;
}

const OUTCOMES = [
  'allowed',
  'limited',
  'concurrency_limited',
  'queue_admitted',
  'queue_timeout',
  'queue_full',
  'queue_displaced',
  'queue_aborted',
  'queue_closed',
  'fail_open',
  'fail_closed',
] as const;
type Outcome = (typeof OUTCOMES)[number];

const LEFT_QUEUE: Record<LeaveReason, Outcome> = {
  timeout: 'queue_timeout',
  aborted: 'queue_aborted',
  rejected: 'limited',
  displaced: 'queue_displaced',
  closed: 'queue_closed',
};

/** How often a Redis outage is logged per policy (it is counted every time). */
const OUTAGE_LOG_INTERVAL_MS = 10_000;

export class RateLimitFilterFactory implements FilterFactory {
  readonly name = 'ratelimit';
  readonly opts: RateLimitFilterOptions;
  readonly redis: RedisClients;
  private states = new Map<string, PolicyState>();
  private previous = new Map<string, PolicyState>();
  private builtFor: RoutingTable | undefined;
  private plans = new Map<string, PolicyPlan>();
  private readonly lastOutageLog = new Map<string, number>();

  constructor(opts: RateLimitFilterOptions) {
    this.opts = opts;
    this.redis = new RedisClients();
    opts.metrics.registerCallback(
      new CallbackFamily(
        'modelgate_ratelimit_evictions_total',
        'Local rate-limit keys dropped at the memory bound while still counting (their quota restarted), by policy.',
        'counter',
        () =>
          this.perPolicy(
            (s) => s.counter?.evictions ?? 0,
            (s) => s.counter?.scope === 'Local',
          ),
      ),
    );
    opts.metrics.registerCallback(
      new CallbackFamily(
        'modelgate_ratelimit_store_up',
        'Whether the Redis of a Global policy answers (1) or not (0), by policy.',
        'gauge',
        () =>
          this.perPolicy(
            (s) => ((s.counter?.up ?? false) ? 1 : 0),
            (s) => s.counter?.scope !== 'Local',
          ),
      ),
    );
  }

  /** One metric value per policy in service. */
  private perPolicy(
    value: (s: PolicyState) => number,
    include: (s: PolicyState) => boolean,
  ): [Record<string, string>, number][] {
    const out: [Record<string, string>, number][] = [];
    for (const [id, s] of this.policyStates) if (include(s)) out.push([{ policy: id }, value(s)]);
    return out;
  }

  /** Policy id → state, of the table being built or in service. */
  private policyStates = new Map<string, PolicyState>();

  build(rule: CompiledRule, table: RoutingTable): Filter | undefined {
    if (rule.rateLimitPolicy === undefined) return undefined;
    if (table !== this.builtFor) {
      this.builtFor = table;
      this.previous = new Map([...this.previous, ...this.states]);
      this.states = new Map();
      this.plans = new Map();
      this.policyStates = new Map();
    }
    const policy = table.routes.rateLimitPolicies.find((p) => p.id === rule.rateLimitPolicy);
    // A rule that names a policy the table lacks would go unlimited: refuse the table instead.
    if (!policy)
      throw new Error(`rule ${rule.id} names rate-limit policy ${rule.rateLimitPolicy}, not in the table`);
    let plan = this.plans.get(policy.id);
    if (!plan) {
      plan = new PolicyPlan(policy);
      this.plans.set(policy.id, plan);
    }
    const state = this.stateFor(policy);
    this.policyStates.set(policy.id, state);
    let gate = state.gates.get(rule.route);
    if (gate) gate.configure(policy, this.makeQueue(rule.route));
    else {
      gate = new RouteGate(policy, this.makeQueue(rule.route));
      state.gates.set(rule.route, gate);
    }
    return new RateLimitFilter(this, rule, plan, state, gate);
  }

  /** After a table is in service: what no policy uses any more is released. */
  applied(table: RoutingTable): void {
    this.previous = new Map();
    this.redis.retain(
      new Set(table.routes.rateLimitPolicies.flatMap((p) => (p.redis ? [RedisClients.keyOf(p.redis)] : []))),
    );
  }

  async close(): Promise<void> {
    for (const s of this.states.values()) for (const g of s.gates.values()) g.queue?.close();
    await this.redis.closeAll();
  }

  private stateFor(policy: CompiledRateLimitPolicy): PolicyState {
    const fp = countingFingerprint(policy);
    let state = this.states.get(fp) ?? this.previous.get(fp);
    if (!state) state = new PolicyState(this.counterFor(policy));
    this.states.set(fp, state);
    return state;
  }

  private counterFor(policy: CompiledRateLimitPolicy): Counter | undefined {
    if (policy.scope === 'Local') {
      return new LocalCounter(policy.limits, () => Math.floor(this.opts.now()), this.opts.maxKeysPerLimit);
    }
    if (!policy.redis) return undefined;
    return new GlobalCounter(policy, this.redis.get(policy.redis));
  }

  private makeQueue(route: string): (maxQueue: number, maxWaitMs: number) => ThrottleQueue {
    return (maxQueue, maxWaitMs) => {
      const now = this.opts.now;
      const q = new ThrottleQueue({
        maxQueue,
        maxWaitMs,
        clock: {
          now,
          setTimer: (fn, ms) => {
            const t = setTimeout(fn, ms);
            t.unref();
            return t;
          },
          clearTimer: (h) => clearTimeout(h as NodeJS.Timeout),
        },
      });
      const length = this.opts.metrics.rateLimitQueueLength.child([route]);
      q.onSettled = (outcome, waitedMs) => {
        length.value = q.length;
        this.opts.metrics.rateLimitQueueWait.child([route, outcome]).observe(waitedMs / 1000);
      };
      return q;
    };
  }

  /** Logs a Redis outage of a policy, at most once per interval. */
  outage(policy: string, error: unknown): void {
    const now = this.opts.now();
    const last = this.lastOutageLog.get(policy);
    if (last !== undefined && now - last < OUTAGE_LOG_INTERVAL_MS) return;
    this.lastOutageLog.set(policy, now);
    this.opts.logger.warn(
      { policy, error: error instanceof Error ? error.message : String(error) },
      'global rate limit store unreachable; applying the policy failureMode',
    );
  }
}

type Admission =
  | { kind: 'admitted'; result: CountResult | undefined; failedOpen: boolean }
  | { kind: 'refused'; result: CountResult; retryAfterMs: number }
  | { kind: 'busy' }
  | { kind: 'unavailable'; error: unknown };

function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | null)?.then === 'function';
}

class RateLimitFilter implements Filter {
  readonly name = 'ratelimit';
  readonly readsBody: boolean;
  private readonly factory: RateLimitFilterFactory;
  private readonly rule: CompiledRule;
  private readonly plan: PolicyPlan;
  private readonly state: PolicyState;
  private readonly gate: RouteGate;
  private readonly cells: (CounterCell | undefined)[] = new Array(OUTCOMES.length);

  constructor(
    factory: RateLimitFilterFactory,
    rule: CompiledRule,
    plan: PolicyPlan,
    state: PolicyState,
    gate: RouteGate,
  ) {
    this.factory = factory;
    this.rule = rule;
    this.plan = plan;
    this.state = state;
    this.gate = gate;
    this.readsBody = plan.hasTokenLimits;
  }

  onRequest(ctx: FilterContext): FilterOutcome | Promise<FilterOutcome> {
    const plan = this.plan;
    const amounts = plan.amounts(ctx.identity, this.factory.opts.proxies?.() ?? 1);
    const tokens = plan.hasTokenLimits ? reserveTokens(plan, ctx, amounts) : undefined;
    const n = plan.limits.length;
    const keys = new Array<string>(n);
    const costs = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      const l = plan.limits[i]!;
      keys[i] = l.key(ctx);
      costs[i] = l.tokens ? tokens!.costs[i]! : 1;
    }
    const charge: Charge = { keys, amounts, costs };
    const first = this.admit(charge);
    return isPromise(first)
      ? first.then((a) => this.decide(ctx, charge, tokens, a))
      : this.decide(ctx, charge, tokens, first);
  }

  /** An in-flight slot (when capped), then every limit. Undoes the slot when a limit refuses. */
  private admit(charge: Charge): Admission | Promise<Admission> {
    if (!this.gate.enter()) return { kind: 'busy' };
    const counter = this.state.counter;
    if (counter === undefined) return this.storeDown(new Error(this.plan.policy.redisUnavailable));
    let r: CountResult | Promise<CountResult>;
    try {
      r = counter.take(charge);
    } catch (e) {
      return this.storeDown(e);
    }
    if (isPromise(r)) {
      return r.then(
        (res) => this.counted(res),
        (e) => this.storeDown(e),
      );
    }
    return this.counted(r);
  }

  private counted(result: CountResult): Admission {
    if (result.allowed) return { kind: 'admitted', result, failedOpen: false };
    this.gate.inFlight--;
    let retryAfterMs = 0;
    for (const d of result.decisions)
      if (!d.allowed && d.retryAfterMs > retryAfterMs) retryAfterMs = d.retryAfterMs;
    return { kind: 'refused', result, retryAfterMs };
  }

  private storeDown(error: unknown): Admission {
    const policy = this.plan.policy;
    this.factory.opts.metrics.rateLimitRedisErrors.child([policy.id]).value++;
    this.factory.outage(policy.id, error);
    if (policy.failureMode === 'FailOpen') return { kind: 'admitted', result: undefined, failedOpen: true };
    this.gate.inFlight--;
    return { kind: 'unavailable', error };
  }

  private decide(
    ctx: FilterContext,
    charge: Charge,
    tokens: TokenReservation | undefined,
    a: Admission,
  ): FilterOutcome | Promise<FilterOutcome> {
    switch (a.kind) {
      case 'admitted':
        this.count(a.failedOpen ? 'fail_open' : 'allowed');
        this.admitted(ctx, charge, tokens, a.result);
        return undefined;
      case 'unavailable':
        this.count('fail_closed');
        return { error: Errors.RateLimitUnavailable };
      case 'busy':
        if (this.gate.queue) return this.wait(ctx, charge, tokens, this.factory.opts.now(), undefined, 0);
        this.count('concurrency_limited');
        return { error: Errors.ConcurrencyLimited, headers: { 'retry-after': '1' } };
      case 'refused': {
        this.countRefusals(a.result);
        if (this.gate.queue && Number.isFinite(a.retryAfterMs)) {
          return this.wait(ctx, charge, tokens, this.factory.opts.now(), a.result, a.retryAfterMs);
        }
        this.count('limited');
        return this.limited(charge, a.result);
      }
    }
  }

  /** Queues a refused request; resolves when it is admitted or leaves the queue. */
  private wait(
    ctx: FilterContext,
    charge: Charge,
    tokens: TokenReservation | undefined,
    since: number,
    refusal: CountResult | undefined,
    retryAfterMs: number,
  ): FilterOutcome | Promise<FilterOutcome> {
    const queue = this.gate.queue!;
    let last = refusal;
    let admittedResult: CountResult | undefined;
    let resolve!: (o: FilterOutcome) => void;
    const done = new Promise<FilterOutcome>((r) => {
      resolve = r;
    });
    const onClientGone = () => queue.cancel(waiter);
    const waiter: Waiter = {
      level: this.plan.priorityOf(ctx),
      recheck: (): Recheck | Promise<Recheck> => {
        const a = this.admit(charge);
        const judge = (x: Admission): Recheck => {
          switch (x.kind) {
            case 'admitted':
              admittedResult = x.result;
              return { admit: true };
            case 'refused':
              last = x.result;
              return { admit: false, retryAfterMs: x.retryAfterMs };
            case 'busy':
              // A slot frees at the end of a request, which kicks the queue: wake on that (or
              // at the deadline), not on a timer.
              // (The deadline is exclusive: aim just before it.)
              return {
                admit: false,
                retryAfterMs: Math.max(1, since + this.gate.maxWaitMs - this.factory.opts.now() - 1),
              };
            case 'unavailable':
              return { admit: false, retryAfterMs: Infinity };
          }
        };
        return isPromise(a) ? a.then(judge) : judge(a);
      },
      release: () => {
        // Admitted after the client left: give back what the recheck took.
        this.gate.leave();
        for (let i = 0; i < charge.keys.length; i++) {
          this.state.counter?.adjust(i, charge.keys[i]!, charge.amounts[i]!, -charge.costs[i]!);
        }
      },
      settle: (outcome: 'admitted' | LeaveReason) => {
        ctx.res.off('close', onClientGone);
        if (outcome === 'admitted') {
          this.count('queue_admitted');
          this.admitted(ctx, charge, tokens, admittedResult);
          resolve(undefined);
          return;
        }
        this.count(LEFT_QUEUE[outcome]);
        if (outcome === 'aborted') {
          resolve(undefined); // the exchange is already over (499); nothing is sent
          return;
        }
        const waited = Math.round(this.factory.opts.now() - since);
        if (last) {
          const r = this.limited(charge, last);
          resolve({ ...r, message: `${r.message} (waited ${waited} ms in the queue: ${outcome})` });
        } else {
          resolve({
            error: Errors.ConcurrencyLimited,
            message: `too many requests in flight on this route (waited ${waited} ms in the queue: ${outcome})`,
            headers: { 'retry-after': '1' },
          });
        }
      },
    };
    if (!queue.enqueue(waiter, retryAfterMs)) {
      // Full, or the wait would outlast maxWait: refused now, with the real Retry-After.
      this.count(
        queue.length >= this.gate.maxQueue ? 'queue_full' : last ? 'limited' : 'concurrency_limited',
      );
      if (last) return this.limited(charge, last);
      return {
        error: Errors.ConcurrencyLimited,
        message: 'too many requests in flight on this route, and its queue is full',
        headers: { 'retry-after': '1' },
      };
    }
    this.factory.opts.metrics.rateLimitQueueLength.child([this.rule.route]).value = queue.length;
    ctx.res.once('close', onClientGone);
    return done;
  }

  /** Admission done: headers for the client, and an observer that settles at the end. */
  private admitted(
    ctx: FilterContext,
    charge: Charge,
    tokens: TokenReservation | undefined,
    result: CountResult | undefined,
  ): void {
    if (result) {
      const reports = this.reports(charge, result.decisions);
      const i = mostRestrictive(reports);
      if (i >= 0) {
        ctx.responseHeaders ??= {};
        ctx.responseHeaders['ratelimit-policy'] = this.plan.policyHeader(charge.amounts);
        ctx.responseHeaders.ratelimit = rateLimitItem(reports[i]!);
      }
    }
    const observer = new AdmittedRequest(
      this.gate,
      this.state.counter,
      this.plan,
      charge,
      result === undefined ? undefined : tokens,
      this.factory.opts.metrics,
      this.rule.route,
    );
    if (ctx.observers) ctx.observers.push(observer);
    else ctx.observers = [observer];
  }

  private limited(charge: Charge, result: CountResult): Rejection {
    const reports = this.reports(charge, result.decisions);
    const i = mostRestrictive(reports);
    const named = reports[i]!;
    const headers: Record<string, string> = {
      'ratelimit-policy': this.plan.policyHeader(charge.amounts),
      ratelimit: rateLimitItem(named),
    };
    const retry = retryAfterValue(named.decision.retryAfterMs);
    if (retry !== undefined) headers['retry-after'] = retry;
    const message = Number.isFinite(named.decision.retryAfterMs)
      ? `limit "${named.name}" of policy ${this.plan.policy.id} exceeded; retry in ${retry ?? 1} s`
      : `the request costs more than limit "${named.name}" of policy ${this.plan.policy.id} can ever admit`;
    return { error: Errors.RateLimited, message, headers };
  }

  private reports(charge: Charge, decisions: readonly Decision[]): LimitReport[] {
    return this.plan.limits.map((l, i) => ({
      name: l.spec.name,
      quota: charge.amounts[i]!,
      periodMs: l.spec.periodMs,
      cost: l.spec.cost,
      decision: decisions[i]!,
    }));
  }

  private countRefusals(result: CountResult): void {
    const m = this.factory.opts.metrics;
    result.decisions.forEach((d, i) => {
      if (!d.allowed)
        m.rateLimitRefusals.child([this.plan.policy.id, this.plan.limits[i]!.spec.name]).value++;
    });
  }

  private count(outcome: Outcome): void {
    const i = OUTCOMES.indexOf(outcome);
    let cell = this.cells[i];
    if (!cell) {
      cell = this.factory.opts.metrics.rateLimitDecisions.child([
        this.rule.route,
        this.plan.policy.id,
        outcome,
      ]);
      this.cells[i] = cell;
    }
    cell.value++;
  }
}
