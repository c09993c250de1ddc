/**
 * Passive outlier detection: endpoints that fail real requests in a row are ejected (get no new
 * requests) for a while, then return by themselves.
 *
 * Semantics:
 * - Outcomes come from the proxy, one per upstream attempt: `success` (any answer below 500),
 *   `error` (a 5xx, a reset, a protocol error), `connect-failure`, `timeout`. Every non-success
 *   counts towards the same run; a success ends it. Attempts the client aborted are not outcomes.
 * - `consecutiveErrors` failures in a row eject the endpoint for
 *   min(baseEjectionMs × 2^(k−1), maxEjectionMs), k being its ejection count (this one included).
 * - The count decays: an endpoint that stayed in service for max(maxEjectionMs, baseEjectionMs)
 *   since its last ejection ended starts again from k = 1. So a flapping endpoint is kept out
 *   longer and longer, and one that recovered long ago is not punished for its past.
 * - Ejection is per endpoint (origin), across every rule and table that has it: it is the pod
 *   that misbehaves. The cap is per group (a rule's backend): an ejection that would put more
 *   than floor(size × maxEjectionPercent / 100) of the group's members out at once does not
 *   happen (the CRD's "largest share ejected at once"; unlike Envoy there is no "at least one",
 *   so a backend of one endpoint under a cap below 100% is never emptied by this detector). The
 *   endpoint keeps its error run, so its next error ejects it once the cap allows.
 * - Outcomes of an endpoint while it is ejected (requests sent before the ejection finishing
 *   late) are ignored: they neither extend the ejection nor count afterwards. A returning endpoint
 *   starts with an empty error run.
 * - Returns happen on time without a timer per endpoint: one timer is armed for the earliest end
 *   of ejection; `record()` also releases an expired ejection it meets. `onChange(origin,
 *   available)` fires on each ejection and each return.
 */
import type { CompiledRule } from '../../routing-table/types.ts';
import type { Clock } from '../balancers/types.ts';
import { monotonicNow, realTimers, type Timers } from './timers.ts';

/** The `outlierDetection` of a CompiledRule. */
export type OutlierSettings = NonNullable<CompiledRule['outlierDetection']>;

export type Outcome = 'success' | 'error' | 'connect-failure' | 'timeout';

export type FailureOutcome = Exclude<Outcome, 'success'>;

/** Past this, 2^(k−1) × base is beyond any sensible maxEjectionMs; keeps k bounded. */
const MAX_EJECTION_COUNT = 32;

/**
 * The endpoints the ejection cap is counted over, with the settings that apply to them: one per
 * rule backend per table, built when the table is built and passed with every outcome.
 */
export class OutlierGroup {
  /** For logs, e.g. `ns/route/rule/backend`. */
  readonly id: string;
  /** Origins of the group's endpoints (those the backend balances over). */
  readonly members: ReadonlySet<string>;
  readonly settings: OutlierSettings;
  /** Most members ejected at once. */
  readonly maxEjected: number;

  constructor(id: string, members: Iterable<string>, settings: OutlierSettings) {
    this.id = id;
    this.members = new Set(members);
    this.settings = settings;
    this.maxEjected = Math.floor((this.members.size * settings.maxEjectionPercent) / 100);
  }
}

/** What the detector knows about one endpoint. */
interface EndpointRecord {
  /** Current run of failures. */
  errors: number;
  ejected: boolean;
  /** End of the current ejection (when ejected) or of the last one. */
  until: number;
  /** Ejections counted for the back-off (k). */
  ejections: number;
}

export interface OutlierDetectorOptions {
  /** An ejection started (false) or ended (true). */
  onChange: (origin: string, available: boolean) => void;
  now?: Clock;
  timers?: Timers;
}

/** Counters since construction; plain numbers the proxy's metrics read at scrape time. */
export interface OutlierStats {
  /** Ejections by the outcome that completed the error run. */
  ejections: Record<FailureOutcome, number>;
  /** Ejections the maxEjectionPercent cap prevented (one per refused attempt). */
  capped: number;
  /** Ejections that ended. */
  returns: number;
}

export interface EjectionStatus {
  origin: string;
  /** Clock reading when the ejection ends. */
  until: number;
  /** Ejection count k behind this ejection's length. */
  count: number;
}

export class OutlierDetector {
  readonly stats: OutlierStats = {
    ejections: { error: 0, 'connect-failure': 0, timeout: 0 },
    capped: 0,
    returns: 0,
  };
  private readonly onChange: (origin: string, available: boolean) => void;
  private readonly now: Clock;
  private readonly timers: Timers;
  private readonly endpoints = new Map<string, EndpointRecord>();
  private readonly ejected = new Map<string, EndpointRecord>();
  private timer: unknown = undefined;
  /** When the armed timer fires; Infinity when none is armed. */
  private timerAt = Number.POSITIVE_INFINITY;

  constructor(opts: OutlierDetectorOptions) {
    this.onChange = opts.onChange;
    this.now = opts.now ?? monotonicNow;
    this.timers = opts.timers ?? realTimers;
  }

  /** Endpoints ejected now (including any whose time is up but not yet released). */
  get activeEjections(): number {
    return this.ejected.size;
  }

  /** The outcome of one upstream attempt on `origin`, a member of `group`. */
  record(origin: string, outcome: Outcome, group: OutlierGroup, now: number = this.now()): void {
    let e = this.endpoints.get(origin);
    if (e === undefined) {
      if (outcome === 'success') return; // the common case allocates nothing
      e = { errors: 0, ejected: false, until: 0, ejections: 0 };
      this.endpoints.set(origin, e);
    }
    if (e.ejected) {
      if (now < e.until) return;
      this.release(origin, e);
      this.arm(now);
    }
    if (outcome === 'success') {
      e.errors = 0;
      return;
    }
    e.errors++;
    const s = group.settings;
    if (e.errors < s.consecutiveErrors) return;
    if (this.ejectedMembers(group, now) >= group.maxEjected) {
      this.stats.capped++;
      return;
    }
    if (e.ejections > 0 && now - e.until >= Math.max(s.maxEjectionMs, s.baseEjectionMs)) e.ejections = 0;
    e.ejections = Math.min(e.ejections + 1, MAX_EJECTION_COUNT);
    e.ejected = true;
    e.until = now + Math.min(s.baseEjectionMs * 2 ** (e.ejections - 1), s.maxEjectionMs);
    e.errors = 0;
    this.ejected.set(origin, e);
    this.stats.ejections[outcome]++;
    this.arm(now);
    this.onChange(origin, false);
  }

  /** Whether `origin` is ejected at `now`. A pure reading: returns are reported by the timer. */
  isEjected(origin: string, now: number = this.now()): boolean {
    const e = this.ejected.get(origin);
    return e !== undefined && now < e.until;
  }

  /** Ends every ejection whose time is up. The timer calls it; callers may too. */
  sweep(now: number = this.now()): void {
    for (const [origin, e] of this.ejected) if (now >= e.until) this.release(origin, e);
    this.arm(now);
  }

  /**
   * Forgets endpoints not in `keep` (no table has them any more), ejected ones included, without
   * onChange: whoever removed them from the tables already stopped sending them requests.
   */
  retain(keep: ReadonlySet<string>): void {
    for (const origin of this.endpoints.keys()) {
      if (keep.has(origin)) continue;
      this.endpoints.delete(origin);
      this.ejected.delete(origin);
    }
    this.arm(this.now());
  }

  /** Current ejections, soonest end first (for the admin side). */
  snapshot(): EjectionStatus[] {
    return [...this.ejected]
      .map(([origin, e]) => ({ origin, until: e.until, count: e.ejections }))
      .sort((a, b) => a.until - b.until);
  }

  /** Clears the timer. Ejections stay as they are; nothing fires any more unless recorded. */
  close(): void {
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
  }

  private ejectedMembers(group: OutlierGroup, now: number): number {
    // Ejections are few; walking them beats walking a large group.
    let n = 0;
    for (const [origin, e] of this.ejected) if (now < e.until && group.members.has(origin)) n++;
    return n;
  }

  private release(origin: string, e: EndpointRecord): void {
    e.ejected = false;
    e.errors = 0;
    this.ejected.delete(origin);
    this.stats.returns++;
    this.onChange(origin, true);
  }

  /** Keeps one timer armed for the earliest end of ejection. */
  private arm(now: number): void {
    let next = Number.POSITIVE_INFINITY;
    for (const e of this.ejected.values()) if (e.until < next) next = e.until;
    if (next === this.timerAt) return;
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = next;
    if (next === Number.POSITIVE_INFINITY) return;
    this.timer = this.timers.setTimeout(
      () => {
        this.timer = undefined;
        this.timerAt = Number.POSITIVE_INFINITY;
        this.sweep();
      },
      Math.max(0, next - now),
    );
  }
}
