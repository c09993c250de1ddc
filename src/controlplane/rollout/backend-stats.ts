/**
 * What proxies report to the controller about the backends of rollout-governed rules, and the
 * controller's sum of it. A proxy reports its cumulative counters (since `epoch`, when its counters
 * started); the controller keeps, per proxy, the latest counters, and per (rollout, backend) a
 * retired base holding what proxies counted before they restarted or were forgotten, so totals
 * never go backwards. Analysis judges the difference of two totals (`delta`) over an interval.
 */
import { LATENCY_BUCKETS } from '../../observability/metric-families.ts';

/** Cumulative since the proxy started, for one backend of one rollout-governed rule set. */
export interface BackendStats {
  /** namespace/name of the CanaryRollout. */
  rollout: string;
  /** Backend name. */
  backend: string;
  /** Completed requests. */
  requests: number;
  /** 5xx answers, including the gateway's own 5xx for this backend (connect failures, timeouts). */
  errors: number;
  /** 4xx answers (not judged: a client's mistake is not the model's; shown next to the 5xx). */
  clientErrors: number;
  /** Whole-request duration, seconds. */
  latency: Histogram;
  /** Time to first byte (first token for streams), seconds. */
  ttfb: Histogram;
  /** Model tokens the answers reported (`usage`), or streamed pieces seen when they did not say. */
  tokens: number;
}

export interface Histogram {
  /** Upper bounds, strictly increasing, finite. */
  bounds: number[];
  /** Per bucket, NOT cumulative; length bounds.length + 1 (the last is the +Inf bucket). */
  counts: number[];
}

export interface StatsReport {
  proxy: string;
  /** ms: when this proxy's counters started (a change = the proxy restarted, counters reset). */
  epoch: number;
  backends: BackendStats[];
}

export interface Totals {
  requests: number;
  errors: number;
  clientErrors: number;
  latency: Histogram;
  ttfb: Histogram;
  tokens: number;
}

export const MAX_BACKENDS = 1000;
export const MAX_BUCKETS = 64;
const MAX_NAME = 512;

// ---- validation --------------------------------------------------------------------------------

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function count(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0;
}

function name(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= MAX_NAME;
}

function parseHistogram(v: unknown, where: string): Histogram | string {
  if (!isRecord(v)) return `${where}: not an object`;
  const { bounds, counts } = v;
  if (!Array.isArray(bounds) || !Array.isArray(counts)) return `${where}: bounds and counts must be arrays`;
  if (bounds.length < 1 || bounds.length > MAX_BUCKETS) {
    return `${where}: ${bounds.length} bounds (1 to ${MAX_BUCKETS} allowed)`;
  }
  if (counts.length !== bounds.length + 1) {
    return `${where}: ${counts.length} counts for ${bounds.length} bounds (bounds + 1 needed)`;
  }
  const b: number[] = [];
  for (const [i, x] of bounds.entries()) {
    if (!count(x)) return `${where}: bound ${i} is not a finite non-negative number`;
    if (i > 0 && x <= b[i - 1]!) return `${where}: bounds not strictly increasing at ${i}`;
    b.push(x);
  }
  const c: number[] = [];
  for (const [i, x] of counts.entries()) {
    if (!count(x)) return `${where}: count ${i} is not a finite non-negative number`;
    c.push(x);
  }
  return { bounds: b, counts: c };
}

/**
 * Validates an untrusted report (parsed JSON): sizes bounded (≤ 1000 backends, ≤ 64 buckets, names
 * ≤ 512 characters), every number finite and non-negative, bounds strictly increasing, no
 * (rollout, backend) twice. Returns a fresh copy (unknown fields dropped) or why it was refused.
 */
export function parseStatsReport(value: unknown): StatsReport | string {
  if (!isRecord(value)) return 'report: not an object';
  const { proxy, epoch, backends } = value;
  if (!name(proxy)) return `report: proxy must be a non-empty string of at most ${MAX_NAME} characters`;
  if (!count(epoch)) return 'report: epoch must be a finite non-negative number';
  if (!Array.isArray(backends)) return 'report: backends must be an array';
  if (backends.length > MAX_BACKENDS) return `report: ${backends.length} backends (at most ${MAX_BACKENDS})`;
  const out: BackendStats[] = [];
  const seen = new Set<string>();
  for (const [i, raw] of backends.entries()) {
    const where = `backends[${i}]`;
    if (!isRecord(raw)) return `${where}: not an object`;
    // clientErrors came after the first reports: a proxy that does not send it counted none.
    const { rollout, backend, requests, errors, tokens, clientErrors = 0 } = raw;
    if (!name(rollout))
      return `${where}.rollout: must be a non-empty string of at most ${MAX_NAME} characters`;
    if (!name(backend))
      return `${where}.backend: must be a non-empty string of at most ${MAX_NAME} characters`;
    for (const [field, x] of [
      ['requests', requests],
      ['errors', errors],
      ['clientErrors', clientErrors],
      ['tokens', tokens],
    ] as const) {
      if (!count(x)) return `${where}.${field}: must be a finite non-negative number`;
    }
    const latency = parseHistogram(raw.latency, `${where}.latency`);
    if (typeof latency === 'string') return latency;
    const ttfb = parseHistogram(raw.ttfb, `${where}.ttfb`);
    if (typeof ttfb === 'string') return ttfb;
    const key = keyOf(rollout, backend);
    if (seen.has(key)) return `${where}: ${rollout} backend ${backend} reported twice`;
    seen.add(key);
    out.push({
      rollout,
      backend,
      requests: requests as number,
      errors: errors as number,
      clientErrors: clientErrors as number,
      tokens: tokens as number,
      latency,
      ttfb,
    });
  }
  return { proxy, epoch, backends: out };
}

// ---- arithmetic --------------------------------------------------------------------------------

function keyOf(rollout: string, backend: string): string {
  return `${rollout}\u0000${backend}`;
}

function sameBounds(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function emptyHistogram(bounds: readonly number[]): Histogram {
  return { bounds: [...bounds], counts: new Array<number>(bounds.length + 1).fill(0) };
}

function emptyTotals(bounds: readonly number[]): Totals {
  return {
    requests: 0,
    errors: 0,
    clientErrors: 0,
    tokens: 0,
    latency: emptyHistogram(bounds),
    ttfb: emptyHistogram(bounds),
  };
}

function copyTotals(t: Totals): Totals {
  return {
    requests: t.requests,
    errors: t.errors,
    clientErrors: t.clientErrors,
    tokens: t.tokens,
    latency: { bounds: [...t.latency.bounds], counts: [...t.latency.counts] },
    ttfb: { bounds: [...t.ttfb.bounds], counts: [...t.ttfb.counts] },
  };
}

/** into += from (histograms assumed to share bounds: only reference-bound histograms are kept). */
function addInto(into: Totals, from: Totals, sign: 1 | -1 = 1): void {
  const add = (a: number, b: number) => Math.max(0, a + sign * b);
  into.requests = add(into.requests, from.requests);
  into.errors = add(into.errors, from.errors);
  into.clientErrors = add(into.clientErrors, from.clientErrors);
  into.tokens = add(into.tokens, from.tokens);
  for (const k of ['latency', 'ttfb'] as const) {
    const a = into[k].counts;
    const b = from[k].counts;
    if (a.length !== b.length) continue;
    for (let i = 0; i < a.length; i++) a[i] = add(a[i]!, b[i]!);
  }
}

/**
 * after − before, element-wise, each clamped at 0. Histograms with different bounds cannot be
 * subtracted: the result then has after's bounds and no counts.
 */
export function delta(after: Totals, before: Totals): Totals {
  const d = (a: number, b: number) => Math.max(0, a - b);
  const hist = (a: Histogram, b: Histogram): Histogram =>
    sameBounds(a.bounds, b.bounds) && a.counts.length === b.counts.length
      ? { bounds: [...a.bounds], counts: a.counts.map((x, i) => d(x, b.counts[i]!)) }
      : emptyHistogram(a.bounds);
  return {
    requests: d(after.requests, before.requests),
    errors: d(after.errors, before.errors),
    clientErrors: d(after.clientErrors, before.clientErrors),
    tokens: d(after.tokens, before.tokens),
    latency: hist(after.latency, before.latency),
    ttfb: hist(after.ttfb, before.ttfb),
  };
}

// ---- aggregation -------------------------------------------------------------------------------

interface ProxyState {
  epoch: number;
  /** Epochs this proxy had before (most recent last, bounded): late reports from them are ignored. */
  pastEpochs: number[];
  lastSeen: number;
  /** Latest counters of the current epoch, by rollout/backend key. */
  stats: Map<string, Totals>;
  /**
   * What the epoch had counted when this aggregator first heard of it, when that epoch began
   * before the aggregator did (`baselineBefore`): those counts are not the aggregator's to sum.
   */
  baseline?: Map<string, Totals>;
}

export interface StatsAggregatorOptions {
  /**
   * Proxies silent this long are dropped from the live set; their counts stay in the retired base
   * so totals never go backwards. Default 10 minutes.
   */
  forgetAfterMs?: number;
  /** Histogram bounds that are summed; histograms with other bounds are skipped. Default LATENCY_BUCKETS. */
  bounds?: readonly number[];
  /** Forgotten proxies remembered (to reconcile one that comes back with the same epoch). Default 1000. */
  maxForgotten?: number;
  /**
   * A proxy first heard of with an epoch older than this (ms) has counted things this aggregator
   * never saw (before a controller started, or before it reached this replica): its first report
   * becomes its baseline and only later growth is summed. Without it, an analysis window opened
   * before a proxy's first report would be charged everything that proxy counted since it started
   * (earlier runs of the rollout included). The controller passes its start time.
   */
  baselineBefore?: number;
}

export interface AggregatorCounters {
  /** Histograms skipped because their bounds differ from the aggregator's. */
  incompatible: number;
  /** Reports from an epoch the proxy had already left (delivered late): ignored. */
  stale: number;
  /** Proxy restarts seen (epoch changes). */
  restarts: number;
  /** Proxies forgotten after a silence. */
  forgotten: number;
}

const PAST_EPOCHS = 8;

export class StatsAggregator {
  readonly forgetAfterMs: number;
  readonly bounds: readonly number[];
  readonly counters: AggregatorCounters = { incompatible: 0, stale: 0, restarts: 0, forgotten: 0 };
  private readonly maxForgotten: number;
  private readonly baselineBefore: number;
  private readonly live = new Map<string, ProxyState>();
  /** Forgotten proxies: their last counters (already added to the base) and epochs. */
  private readonly forgotten = new Map<string, ProxyState>();
  /** What retired epochs and forgotten proxies counted, by rollout/backend key. */
  private readonly base = new Map<string, Totals>();

  constructor(opts: StatsAggregatorOptions = {}) {
    this.forgetAfterMs = opts.forgetAfterMs ?? 10 * 60_000;
    this.bounds = [...(opts.bounds ?? LATENCY_BUCKETS)];
    this.maxForgotten = opts.maxForgotten ?? 1000;
    this.baselineBefore = opts.baselineBefore ?? Number.NEGATIVE_INFINITY;
  }

  /** Takes a proxy's report (already validated by parseStatsReport) received at `now` (ms). */
  ingest(report: StatsReport, now: number): void {
    this.forgetSilent(now);
    let firstSight = false;
    let p = this.live.get(report.proxy);
    if (p === undefined) {
      p = this.forgotten.get(report.proxy);
      if (p !== undefined) {
        if (p.pastEpochs.includes(report.epoch)) {
          this.counters.stale++;
          return;
        }
        // Back after a silence. Same epoch: its last counters are in the base; they leave it
        // and come back as live counters, which only grow. New epoch: it restarted meanwhile,
        // what it had counted stays in the base.
        this.forgotten.delete(report.proxy);
        if (p.epoch === report.epoch) {
          for (const [key, t] of p.stats) this.baseFor(key, (b) => this.unretire(b, p!, key, t));
        } else {
          this.counters.restarts++;
          this.newEpoch(p, report.epoch, false);
        }
      } else {
        p = { epoch: report.epoch, pastEpochs: [], lastSeen: now, stats: new Map() };
        firstSight = report.epoch < this.baselineBefore;
      }
      p.lastSeen = now;
      this.live.set(report.proxy, p);
    } else if (report.epoch !== p.epoch) {
      if (p.pastEpochs.includes(report.epoch)) {
        this.counters.stale++;
        return;
      }
      // Restarted: what the old epoch counted moves to the base; counting starts over.
      this.counters.restarts++;
      this.newEpoch(p, report.epoch, true);
    }
    p.lastSeen = Math.max(p.lastSeen, now);
    for (const b of report.backends) {
      const key = keyOf(b.rollout, b.backend);
      let t = p.stats.get(key);
      if (t === undefined) {
        t = emptyTotals(this.bounds);
        p.stats.set(key, t);
      }
      // Within an epoch counters only grow; the maximum also shrugs off a report overtaken by a
      // newer one, so what is summed never goes backwards.
      t.requests = Math.max(t.requests, b.requests);
      t.errors = Math.max(t.errors, b.errors);
      t.clientErrors = Math.max(t.clientErrors, b.clientErrors);
      t.tokens = Math.max(t.tokens, b.tokens);
      for (const k of ['latency', 'ttfb'] as const) {
        const h = b[k];
        if (!sameBounds(h.bounds, this.bounds)) {
          this.counters.incompatible++;
          continue;
        }
        const c = t[k].counts;
        for (let i = 0; i < c.length; i++) c[i] = Math.max(c[i]!, h.counts[i]!);
      }
    }
    if (firstSight) p.baseline = new Map([...p.stats].map(([key, t]) => [key, copyTotals(t)]));
  }

  /**
   * Drops proxies silent for forgetAfterMs from the live set (their counts go to the base).
   * ingest() does this too; call it when reports may have stopped altogether.
   */
  forgetSilent(now: number): void {
    for (const [proxy, p] of this.live) {
      if (now - p.lastSeen < this.forgetAfterMs) continue;
      this.live.delete(proxy);
      this.retire(p);
      this.counters.forgotten++;
      this.forgotten.delete(proxy);
      this.forgotten.set(proxy, p);
      while (this.forgotten.size > this.maxForgotten) {
        const oldest = this.forgotten.keys().next().value as string;
        this.forgotten.delete(oldest);
      }
    }
  }

  /** Sum over every proxy ever seen, for one backend of one rollout (a fresh object). */
  totals(rollout: string, backend: string): Totals {
    const key = keyOf(rollout, backend);
    const base = this.base.get(key);
    const sum = base ? copyTotals(base) : emptyTotals(this.bounds);
    for (const p of this.live.values()) {
      const t = p.stats.get(key);
      if (!t) continue;
      addInto(sum, t);
      // Counters only grow within an epoch, so t ≥ baseline and nothing is clamped.
      const b = p.baseline?.get(key);
      if (b) addInto(sum, b, -1);
    }
    return sum;
  }

  /** Proxies in the live set (reported within forgetAfterMs of the last ingest or forgetSilent). */
  proxies(): string[] {
    return [...this.live.keys()];
  }

  /** Forgets everything of a rollout (deleted): its keys leave the base and every proxy's counters. */
  dropRollout(rollout: string): void {
    const prefix = `${rollout}\u0000`;
    const drop = (m: Map<string, Totals>) => {
      for (const key of m.keys()) if (key.startsWith(prefix)) m.delete(key);
    };
    drop(this.base);
    for (const p of this.live.values()) drop(p.stats);
    for (const p of this.forgotten.values()) drop(p.stats);
  }

  private newEpoch(p: ProxyState, epoch: number, retire: boolean): void {
    if (retire) this.retire(p);
    p.pastEpochs.push(p.epoch);
    if (p.pastEpochs.length > PAST_EPOCHS) p.pastEpochs.shift();
    p.epoch = epoch;
    p.stats = new Map();
    p.baseline = undefined;
  }

  /** Moves what a proxy's epoch counted (past its baseline) into the base. */
  private retire(p: ProxyState): void {
    for (const [key, t] of p.stats) {
      this.baseFor(key, (b) => {
        addInto(b, t);
        const line = p.baseline?.get(key);
        if (line) addInto(b, line, -1);
      });
    }
  }

  /** The reverse of retire() for one key (a forgotten proxy is back): baseline first, so nothing clamps. */
  private unretire(b: Totals, p: ProxyState, key: string, t: Totals): void {
    const line = p.baseline?.get(key);
    if (line) addInto(b, line);
    addInto(b, t, -1);
  }

  private baseFor(key: string, f: (b: Totals) => void): void {
    let b = this.base.get(key);
    if (b === undefined) {
      b = emptyTotals(this.bounds);
      this.base.set(key, b);
    }
    f(b);
  }
}
