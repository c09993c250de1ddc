/**
 * The proxy's counters for the backends that CanaryRollouts govern: requests, 5xx and 4xx answers,
 * model tokens, whole-request duration and time-to-first-byte histograms, cumulative since this proxy started
 * (`epoch`). The push client sends them to the controllers, which judge canary against stable
 * on the deltas between two reports (src/controlplane/rollout/). Cumulative counters make a lost
 * or duplicated report harmless; a new epoch tells the controller the counters restarted.
 *
 * Only governed backends are counted (a few per rollout), so the per-request cost is paid only
 * on those rules: a bucket search over the ~20 latency bounds and a few additions.
 */
import type { BackendStats, StatsReport } from '../../controlplane/rollout/backend-stats.ts';
import { LATENCY_BUCKETS } from '../../observability/metric-families.ts';

interface Entry {
  rollout: string;
  backend: string;
  requests: number;
  errors: number;
  clientErrors: number;
  tokens: number;
  latency: number[];
  ttfb: number[];
}

function bucket(bounds: readonly number[], v: number): number {
  let i = 0;
  while (i < bounds.length && v > bounds[i]!) i++;
  return i;
}

export class RolloutStats {
  /** When these counters started (ms since the epoch): a new value means they restarted. */
  readonly epoch: number;
  private readonly entries = new Map<string, Entry>();
  private readonly bounds: readonly number[];

  constructor(epoch: number = Date.now(), bounds: readonly number[] = LATENCY_BUCKETS) {
    this.epoch = epoch;
    this.bounds = bounds;
  }

  /** One finished request on a governed backend; `ttfbS` < 0 when no byte came back. */
  record(
    rollout: string,
    backend: string,
    status: number,
    durationS: number,
    ttfbS: number,
    tokens = 0,
  ): void {
    const key = `${rollout}\u0000${backend}`;
    let e = this.entries.get(key);
    if (e === undefined) {
      const n = this.bounds.length + 1;
      e = {
        rollout,
        backend,
        requests: 0,
        errors: 0,
        clientErrors: 0,
        tokens: 0,
        latency: new Array(n).fill(0),
        ttfb: new Array(n).fill(0),
      };
      this.entries.set(key, e);
    }
    e.requests++;
    if (status >= 500) e.errors++;
    else if (status >= 400) e.clientErrors++;
    e.tokens += tokens;
    e.latency[bucket(this.bounds, durationS)]!++;
    if (ttfbS >= 0) e.ttfb[bucket(this.bounds, ttfbS)]!++;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The report to send (undefined when nothing governed was ever served). */
  report(proxy: string): StatsReport | undefined {
    if (this.entries.size === 0) return undefined;
    const backends: BackendStats[] = [];
    for (const e of this.entries.values()) {
      backends.push({
        rollout: e.rollout,
        backend: e.backend,
        requests: e.requests,
        errors: e.errors,
        clientErrors: e.clientErrors,
        latency: { bounds: [...this.bounds], counts: [...e.latency] },
        ttfb: { bounds: [...this.bounds], counts: [...e.ttfb] },
        tokens: e.tokens,
      });
    }
    return { proxy, epoch: this.epoch, backends };
  }
}
