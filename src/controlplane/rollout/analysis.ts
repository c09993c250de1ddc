/**
 * Judging a canary against the stable backend over one interval: error rate, p99 latency ratio,
 * TTFT (time to first byte) p99 ratio, and a minimum number of canary requests before judging.
 * Both sources of figures — the proxies' own counters (`judge`, from Totals deltas) and Prometheus
 * (prometheus-provider.ts) — reduce to `Figures` and share `judgeFigures`, so thresholds mean the
 * same thing whichever provider answers.
 */
import type { Histogram, Totals } from './backend-stats.ts';
import type { AnalysisResult, AnalysisSpec, Verdict } from './types.ts';

/**
 * The q-quantile of a histogram with Prometheus `histogram_quantile` semantics: linear
 * interpolation within the bucket holding the rank (the first bucket's lower bound is 0); a rank in
 * the +Inf bucket gives the highest finite bound. undefined when the histogram is empty (Prometheus:
 * NaN). q < 0 gives -Infinity and q > 1 +Infinity, as in Prometheus.
 */
export function quantile(h: Histogram, q: number): number | undefined {
  if (Number.isNaN(q)) return undefined;
  const { bounds, counts } = h;
  if (bounds.length === 0) return undefined;
  let total = 0;
  for (const c of counts) total += c;
  if (!(total > 0)) return undefined;
  if (q < 0) return Number.NEGATIVE_INFINITY;
  if (q > 1) return Number.POSITIVE_INFINITY;
  const rank = q * total;
  let below = 0;
  for (let b = 0; b < bounds.length; b++) {
    const inBucket = counts[b] ?? 0;
    const cumulative = below + inBucket;
    // An empty bucket only matches rank 0 (q = 0) before any observation: Prometheus answers NaN
    // there (0/0); the lower bound of the first bucket with observations is more useful.
    if (cumulative >= rank && inBucket > 0) {
      const end = bounds[b]!;
      if (b === 0 && end <= 0) return end;
      const start = b === 0 ? 0 : bounds[b - 1]!;
      return start + (end - start) * ((rank - below) / inBucket);
    }
    below = cumulative;
  }
  return bounds[bounds.length - 1];
}

/** An interval's figures, whatever their source. Quantiles undefined when there were no samples. */
export interface Figures {
  canaryRequests: number;
  canaryErrors: number;
  stableRequests: number;
  stableErrors: number;
  canaryLatencyP99?: number | undefined;
  stableLatencyP99?: number | undefined;
  canaryTtftP99?: number | undefined;
  stableTtftP99?: number | undefined;
}

/** The figures of two interval deltas (see backend-stats.ts `delta`). */
export function figuresOf(canary: Totals, stable: Totals): Figures {
  return {
    canaryRequests: canary.requests,
    canaryErrors: canary.errors,
    stableRequests: stable.requests,
    stableErrors: stable.errors,
    canaryLatencyP99: quantile(canary.latency, 0.99),
    stableLatencyP99: quantile(stable.latency, 0.99),
    canaryTtftP99: quantile(canary.ttfb, 0.99),
    stableTtftP99: quantile(stable.ttfb, 0.99),
  };
}

/** Judges the canary's interval against the stable's (both deltas over the same interval). */
export function judge(spec: AnalysisSpec, canary: Totals, stable: Totals): AnalysisResult {
  return judgeFigures(spec, figuresOf(canary, stable));
}

/** Shows a figure with enough digits to tell it from the threshold it is compared with. */
function show(value: number, digits: number, against?: number): string {
  let d = digits;
  while (d < 6 && against !== undefined && value !== against && value.toFixed(d) === against.toFixed(d)) d++;
  return value.toFixed(d);
}

function showCount(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

interface Outcome {
  verdict: Verdict;
  text: string;
}

function ratioCriterion(
  label: string,
  max: number,
  canaryP99: number | undefined,
  stableP99: number | undefined,
  stableRequests: number,
): { outcome: Outcome; ratio?: number } {
  if (stableRequests <= 0) {
    return {
      outcome: { verdict: 'Inconclusive', text: `${label} unknown: the stable backend had no requests` },
    };
  }
  if (stableP99 === undefined || canaryP99 === undefined) {
    const who = stableP99 === undefined ? 'stable' : 'canary';
    return { outcome: { verdict: 'Inconclusive', text: `${label} unknown: no ${who} samples` } };
  }
  if (!(stableP99 > 0)) {
    return { outcome: { verdict: 'Inconclusive', text: `${label} unknown: stable p99 is 0` } };
  }
  const ratio = canaryP99 / stableP99;
  const fail = ratio > max;
  return {
    ratio,
    outcome: {
      verdict: fail ? 'Fail' : 'Pass',
      text: `${label} ${show(ratio, 2, max)} ${fail ? '>' : '<='} ${show(max, 2, ratio)}`,
    },
  };
}

/** The shared comparison: thresholds of `spec` against an interval's figures. */
export function judgeFigures(spec: AnalysisSpec, f: Figures): AnalysisResult {
  const canaryErrorRate = f.canaryRequests > 0 ? Math.min(1, f.canaryErrors / f.canaryRequests) : undefined;
  const stableErrorRate = f.stableRequests > 0 ? Math.min(1, f.stableErrors / f.stableRequests) : undefined;
  const base: AnalysisResult = {
    verdict: 'Inconclusive',
    message: '',
    canaryRequests: f.canaryRequests,
    stableRequests: f.stableRequests,
  };
  if (canaryErrorRate !== undefined) base.canaryErrorRate = canaryErrorRate;
  if (stableErrorRate !== undefined) base.stableErrorRate = stableErrorRate;

  const needed = Math.max(1, spec.minRequests);
  if (f.canaryRequests < needed) {
    return {
      ...base,
      message: `${showCount(f.canaryRequests)} canary requests, ${showCount(needed)} needed`,
    };
  }

  const outcomes: Outcome[] = [];
  if (spec.maxErrorRate !== undefined) {
    const rate = canaryErrorRate ?? 0;
    const fail = rate > spec.maxErrorRate;
    outcomes.push({
      verdict: fail ? 'Fail' : 'Pass',
      text: `canary error rate ${show(rate, 3, spec.maxErrorRate)} ${fail ? '>' : '<='} ${show(spec.maxErrorRate, 3, rate)}`,
    });
  }
  const result = { ...base };
  if (spec.maxLatencyP99Ratio !== undefined) {
    const c = ratioCriterion(
      'p99 latency ratio',
      spec.maxLatencyP99Ratio,
      f.canaryLatencyP99,
      f.stableLatencyP99,
      f.stableRequests,
    );
    outcomes.push(c.outcome);
    if (c.ratio !== undefined) result.latencyP99Ratio = c.ratio;
  } else {
    const r = plainRatio(f.canaryLatencyP99, f.stableLatencyP99, f.stableRequests);
    if (r !== undefined) result.latencyP99Ratio = r;
  }
  if (spec.maxTtftRatio !== undefined) {
    const c = ratioCriterion(
      'TTFT ratio',
      spec.maxTtftRatio,
      f.canaryTtftP99,
      f.stableTtftP99,
      f.stableRequests,
    );
    outcomes.push(c.outcome);
    if (c.ratio !== undefined) result.ttftRatio = c.ratio;
  } else {
    const r = plainRatio(f.canaryTtftP99, f.stableTtftP99, f.stableRequests);
    if (r !== undefined) result.ttftRatio = r;
  }

  const counts = `${showCount(f.canaryRequests)} canary, ${showCount(f.stableRequests)} stable requests`;
  const failing = outcomes.filter((o) => o.verdict === 'Fail');
  const unknown = outcomes.filter((o) => o.verdict === 'Inconclusive');
  const passing = outcomes.filter((o) => o.verdict === 'Pass');
  const join = (os: Outcome[]) => os.map((o) => o.text).join('; ');
  if (failing.length > 0) {
    const also = unknown.length > 0 ? ` (also ${join(unknown)})` : '';
    return { ...result, verdict: 'Fail', message: `${join(failing)}${also}; ${counts}` };
  }
  if (unknown.length > 0) {
    const ok = passing.length > 0 ? `; ${join(passing)}` : '';
    return { ...result, verdict: 'Inconclusive', message: `${join(unknown)}${ok}; ${counts}` };
  }
  if (passing.length === 0) {
    return { ...result, verdict: 'Pass', message: `no criteria configured; ${counts}` };
  }
  return { ...result, verdict: 'Pass', message: `${join(passing)}; ${counts}` };
}

/** A ratio shown for information when no threshold asks for it. */
function plainRatio(
  c: number | undefined,
  s: number | undefined,
  stableRequests: number,
): number | undefined {
  return stableRequests > 0 && c !== undefined && s !== undefined && s > 0 ? c / s : undefined;
}
