/**
 * The rollout engine: runs the state machine (state-machine.ts) of every CanaryRollout that has
 * steps, on the leader only. Its state lives in each resource's status (status-mapping.ts), so a
 * restarted controller or a new leader resumes where the rollout was. The weight it chooses
 * (`status.stepWeight`) reaches proxies the usual way: the status change comes back through the
 * informer, the compiler reads it, the table is pushed.
 *
 * Analysis: for the running interval of an analysis step the engine keeps the window's opening
 * totals of canary and stable (from the proxies' reports, backend-stats.ts) and judges the deltas
 * when the interval ends; or asks Prometheus when the rollout names one. A new leader has no
 * opening totals for an interval already running: the state machine restarts that interval.
 *
 * Evaluation runs on every resource change and at the earliest time any rollout asked to be
 * woken (a pause or an interval ending), one pass at a time.
 */
import type { Logger } from 'pino';
import type { CanaryRollout } from '../../api/resources.ts';
import { judge } from './analysis.ts';
import { delta, type StatsAggregator, type Totals } from './backend-stats.ts';
import { PrometheusProvider } from './prometheus-provider.ts';
import { advance, intervalEndsAt } from './state-machine.ts';
import { inputOf, stateOf, statusOf } from './status-mapping.ts';
import type { AnalysisResult, RolloutEvent, RolloutInput, RolloutState } from './types.ts';

export interface EngineTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface RolloutEngineOptions {
  /** Wall clock, ms (status times are wall times). */
  now: () => number;
  aggregator: StatsAggregator;
  /**
   * Writes the engine's status fields (merge patch: null clears), on condition that the object is
   * still at `resourceVersion` (the version the state was read from) when one is given; returns
   * the new version. A write whose object moved on throws StaleStatusError.
   */
  persist: (
    r: { namespace: string; name: string },
    status: Record<string, unknown>,
    resourceVersion: string | undefined,
  ) => Promise<string | undefined>;
  event: (r: { namespace: string; name: string }, e: RolloutEvent) => Promise<void>;
  /** True while this replica may drive rollouts (the leader). */
  active: () => boolean;
  logger: Logger;
  timers?: EngineTimers;
  /** Tests inject Prometheus's fetch. */
  prometheusFetch?: typeof fetch;
  /** Called after each judged interval (metrics). */
  onVerdict?: (rollout: string, result: AnalysisResult) => void;
  /**
   * Called at the start of every pass on the leader: standalone mode feeds the aggregator its own
   * proxy's counters here, so windows open and close on current figures.
   */
  refresh?: () => void;
}

/**
 * The object changed since the state was read (another writer, or a newer leader): nothing was
 * written, and the next evaluation starts from the newer object.
 */
export class StaleStatusError extends Error {
  constructor(message = 'the CanaryRollout changed since it was read') {
    super(message);
    this.name = 'StaleStatusError';
  }
}

interface Window {
  /** The interval this window belongs to (state.intervalStartedAt). */
  startedAt: number;
  canary: Totals;
  stable: Totals;
}

const realTimers: EngineTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** Longest sleep between passes, whatever the rollouts say (a missed wake-up costs at most this). */
const MAX_SLEEP_MS = 30_000;

export class RolloutEngine {
  private readonly o: RolloutEngineOptions;
  private readonly timers: EngineTimers;
  private rollouts: CanaryRollout[] = [];
  private readonly windows = new Map<string, Window>();
  /** What this engine last wrote per rollout (the informer may lag behind it). */
  private readonly written = new Map<
    string,
    { text: string; state: RolloutState; resourceVersion: string | undefined }
  >();
  private readonly providers = new Map<string, PrometheusProvider>();
  private timer: unknown;
  private running: Promise<void> | undefined;
  private again = false;
  private closed = false;
  /** Passes run, for tests. */
  passes = 0;

  constructor(opts: RolloutEngineOptions) {
    this.o = opts;
    this.timers = opts.timers ?? realTimers;
  }

  /** The CanaryRollouts as the cluster has them now; evaluates soon. */
  sync(rollouts: readonly CanaryRollout[]): void {
    this.rollouts = rollouts.filter((r) => (r.spec.steps?.length ?? 0) > 0);
    const live = new Set(this.rollouts.map(keyOf));
    for (const k of [...this.windows.keys()]) if (!live.has(k)) this.windows.delete(k);
    for (const k of [...this.written.keys()]) if (!live.has(k)) this.written.delete(k);
    this.kick();
  }

  /** Evaluates every rollout now (after the current pass, if one runs). */
  kick(): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.pass().finally(() => {
      this.running = undefined;
      if (this.again && !this.closed) {
        this.again = false;
        this.kick();
      }
    });
  }

  /**
   * Stops the engine. Resolves once a pass already running has finished, so that the events
   * following its last status write are written before the caller gives up leadership.
   */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    await this.running;
  }

  private async pass(): Promise<void> {
    this.passes++;
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.o.active()) {
      // A follower keeps no windows: the leader's are the ones that count.
      this.windows.clear();
      this.written.clear();
      return;
    }
    this.o.refresh?.();
    let wake = Infinity;
    for (const r of this.rollouts) {
      try {
        const at = await this.evaluate(r);
        if (at !== undefined && at < wake) wake = at;
      } catch (err) {
        if (err instanceof StaleStatusError) {
          // Expected now and then (another status write landed first): the informer brings the
          // newer object, which kicks a new pass; the timer is the fallback.
          this.o.logger.debug({ rollout: keyOf(r) }, err.message);
        } else {
          this.o.logger.warn({ err: String(err), rollout: keyOf(r) }, 'rollout evaluation failed');
        }
        wake = Math.min(wake, this.o.now() + 1000);
      }
    }
    if (this.closed) return;
    const sleep = Math.min(MAX_SLEEP_MS, Math.max(0, wake - this.o.now()));
    this.timer = this.timers.setTimeout(() => this.kick(), Number.isFinite(sleep) ? sleep : MAX_SLEEP_MS);
  }

  /** One rollout: judge an ended interval, advance, persist, emit. Returns when to look again. */
  private async evaluate(r: CanaryRollout): Promise<number | undefined> {
    const key = keyOf(r);
    const input = inputOf(r);
    const stored = stateOf(r.status as Record<string, unknown> | undefined);
    const mine = this.written.get(key);
    // The informer may not show our last write yet: trust what we wrote over an older status
    // (and the version our write made, so the next write is conditional on the right one).
    const trustMine = mine !== undefined && (!stored || JSON.stringify(statusOf(stored)) !== mine.text);
    const state = trustMine ? mine.state : stored;
    const resourceVersion = trustMine ? mine.resourceVersion : r.metadata.resourceVersion;
    const now = this.o.now();
    const analysis = state ? await this.judgement(r, input, state, now) : undefined;
    const result = advance(input, state, now, analysis);
    if (result.startInterval && result.state.intervalStartedAt !== undefined) {
      this.windows.set(key, { startedAt: result.state.intervalStartedAt, ...this.totals(r) });
    }
    const status = statusOf(result.state);
    const text = JSON.stringify(status);
    const before = state ? JSON.stringify(statusOf(state)) : undefined;
    const target = { namespace: r.metadata.namespace ?? 'default', name: r.metadata.name };
    // Each decision with its inputs: the figures of a judged interval (an Inconclusive verdict
    // holds the step without an Event) and where the state machine went.
    if ((analysis || text !== before) && this.o.logger.isLevelEnabled('debug')) {
      this.o.logger.debug(
        {
          rollout: key,
          phase: result.state.phase,
          step: result.state.currentStep,
          weight: result.state.stepWeight,
          passed: result.state.passed,
          failed: result.state.failed,
          ...(analysis ? { analysis } : {}),
          ...(result.wakeAt !== undefined ? { nextInMs: Math.max(0, result.wakeAt - now) } : {}),
        },
        'rollout evaluated',
      );
    }
    if (text !== before) {
      const version = await this.o.persist(target, status, resourceVersion);
      this.written.set(key, { text, state: result.state, resourceVersion: version });
    }
    for (const e of result.events) {
      await this.o
        .event(target, e)
        .catch((err) => this.o.logger.warn({ err: String(err) }, 'event not written'));
      this.o.logger[e.type === 'Warning' ? 'warn' : 'info']({ rollout: key, reason: e.reason }, e.message);
    }
    return result.wakeAt;
  }

  /** The verdict of the interval that ended, if this engine watched it from its start. */
  private async judgement(
    r: CanaryRollout,
    input: RolloutInput,
    state: RolloutState,
    now: number,
  ): Promise<AnalysisResult | undefined> {
    const end = intervalEndsAt(input, state);
    if (end === undefined || now < end || state.intervalStartedAt === undefined) return undefined;
    const step = input.steps[state.currentStep]?.analysis;
    if (!step) return undefined;
    const key = keyOf(r);
    const prometheus = r.spec.analysisProvider?.prometheus?.url;
    let result: AnalysisResult;
    if (prometheus !== undefined) {
      result = await this.provider(prometheus).analyse(step, {
        route: `${r.metadata.namespace ?? 'default'}/${r.spec.routeRef.name}`,
        stableBackend: r.spec.stableBackend,
        canaryBackend: r.spec.canaryBackend,
        startMs: state.intervalStartedAt,
        endMs: end,
      });
    } else {
      const w = this.windows.get(key);
      if (!w || w.startedAt !== state.intervalStartedAt) return undefined;
      const t = this.totals(r);
      result = judge(step, delta(t.canary, w.canary), delta(t.stable, w.stable));
    }
    this.o.onVerdict?.(key, result);
    return result;
  }

  private totals(r: CanaryRollout): { canary: Totals; stable: Totals } {
    const key = keyOf(r);
    return {
      canary: this.o.aggregator.totals(key, r.spec.canaryBackend),
      stable: this.o.aggregator.totals(key, r.spec.stableBackend),
    };
  }

  private provider(url: string): PrometheusProvider {
    let p = this.providers.get(url);
    if (!p) {
      p = new PrometheusProvider({
        url,
        ...(this.o.prometheusFetch ? { fetch: this.o.prometheusFetch } : {}),
      });
      this.providers.set(url, p);
    }
    return p;
  }
}

function keyOf(r: CanaryRollout): string {
  return `${r.metadata.namespace ?? 'default'}/${r.metadata.name}`;
}
