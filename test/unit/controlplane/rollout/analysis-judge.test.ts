/**
 * The analysis judge: quantiles with Prometheus histogram_quantile semantics against hand-computed
 * values, and verdicts — too few canary requests, each criterion failing alone, several failing,
 * a stable backend without requests, and the figures a pass reports.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { judge, judgeFigures, quantile } from '../../../../src/controlplane/rollout/analysis.ts';
import type { Histogram, Totals } from '../../../../src/controlplane/rollout/backend-stats.ts';
import type { AnalysisSpec } from '../../../../src/controlplane/rollout/types.ts';
import { LATENCY_BUCKETS } from '../../../../src/observability/metric-families.ts';

const close = (actual: number | undefined, expected: number, what = '') => {
  assert.ok(actual !== undefined && Math.abs(actual - expected) < 1e-9, `${what}: ${actual} ≉ ${expected}`);
};

test('quantile: interpolation within the bucket, +Inf, single bucket, empty', () => {
  const h: Histogram = { bounds: [1, 2, 4], counts: [10, 80, 9, 1] };
  // q=0.99: rank 99; cumulative 10, 90, 99 → third bucket (2, 4], 9 of 9 → 4.
  close(quantile(h, 0.99), 4, 'p99 at the top of (2,4]');
  // q=0.5: rank 50 in (1, 2]: 1 + 1 × (40 / 80) = 1.5.
  close(quantile(h, 0.5), 1.5, 'p50');
  // q=0.95: rank 95 in (2, 4]: 2 + 2 × (5 / 9).
  close(quantile(h, 0.95), 2 + (2 * 5) / 9, 'p95');
  // q=0.05: rank 5 in the first bucket (0, 1]: 0.5.
  close(quantile(h, 0.05), 0.5, 'p05');
  // q=0.995: rank 99.5 beyond the last finite bucket: the highest finite bound.
  close(quantile(h, 0.995), 4, 'in +Inf');

  const g: Histogram = { bounds: [0.1, 0.25, 0.5, 1], counts: [0, 0, 200, 0, 0] };
  // q=0.99 interpolated: rank 198 of 200 in (0.25, 0.5]: 0.25 + 0.25 × 0.99 = 0.4975.
  close(quantile(g, 0.99), 0.4975, 'p99 interpolated');
  close(quantile(g, 1), 0.5, 'p100');
  close(quantile(g, 0), 0.25, 'p0 with empty leading buckets: lower bound of the first filled');

  // Everything in +Inf: the highest finite bound whatever q.
  const inf: Histogram = { bounds: [1, 2], counts: [0, 0, 7] };
  close(quantile(inf, 0.5), 2, 'all in +Inf p50');
  close(quantile(inf, 0.99), 2, 'all in +Inf p99');

  // A single finite bucket.
  const single: Histogram = { bounds: [5], counts: [4, 0] };
  close(quantile(single, 0.5), 2.5, 'single bucket p50');
  close(quantile(single, 0.99), 4.95, 'single bucket p99');

  // A first bound ≤ 0 answers itself (Prometheus).
  close(quantile({ bounds: [0, 1], counts: [3, 1, 0] }, 0.5), 0, 'bound 0');

  assert.equal(quantile({ bounds: [1, 2], counts: [0, 0, 0] }, 0.99), undefined);
  assert.equal(quantile({ bounds: [1], counts: [1, 0] }, Number.NaN), undefined);
  assert.equal(quantile({ bounds: [1], counts: [1, 0] }, -0.1), Number.NEGATIVE_INFINITY);
  assert.equal(quantile({ bounds: [1], counts: [1, 0] }, 1.1), Number.POSITIVE_INFINITY);
});

/** Totals on LATENCY_BUCKETS: `at` maps a bound (seconds) to observations in its bucket. */
function totals(requests: number, errors: number, latency: Record<number, number>, ttfb = latency): Totals {
  const h = (at: Record<number, number>): Histogram => {
    const counts = new Array<number>(LATENCY_BUCKETS.length + 1).fill(0);
    for (const [bound, n] of Object.entries(at)) {
      const i = (LATENCY_BUCKETS as readonly number[]).indexOf(Number(bound));
      assert.ok(i >= 0, `bound ${bound}`);
      counts[i] = n;
    }
    return { bounds: [...LATENCY_BUCKETS], counts };
  };
  return { requests, errors, clientErrors: 0, tokens: 0, latency: h(latency), ttfb: h(ttfb) };
}

const SPEC: AnalysisSpec = {
  intervalMs: 60_000,
  minRequests: 100,
  maxErrorRate: 0.01,
  maxLatencyP99Ratio: 1.3,
  maxTtftRatio: 1.5,
  failureLimit: 1,
  intervals: 3,
};

// Stable: 1000 requests in (0.25, 0.5], p99 = 0.25 + 0.25 × 0.99 = 0.4975; TTFT in (0.05, 0.1],
// p99 = 0.05 + 0.05 × 0.99 = 0.0995.
const STABLE = totals(1000, 2, { 0.5: 1000 }, { 0.1: 1000 });
// A healthy canary: the same shape, 200 requests, 1 error.
const HEALTHY = totals(200, 1, { 0.5: 200 }, { 0.1: 200 });

test('judge: fewer canary requests than minRequests is Inconclusive', () => {
  const r = judge(SPEC, totals(3, 3, { 0.5: 3 }), STABLE);
  assert.equal(r.verdict, 'Inconclusive');
  assert.equal(r.message, '3 canary requests, 100 needed');
  assert.equal(r.canaryRequests, 3);
  assert.equal(r.stableRequests, 1000);
  assert.equal(r.canaryErrorRate, 1);
  assert.equal(r.error, undefined);
  // minRequests 0 and no requests: still nothing to judge.
  const none = judge({ ...SPEC, minRequests: 0 }, totals(0, 0, {}), STABLE);
  assert.equal(none.verdict, 'Inconclusive');
  assert.equal(none.message, '0 canary requests, 1 needed');
});

test('judge: passes with the figures it passed on', () => {
  const r = judge(SPEC, HEALTHY, STABLE);
  assert.equal(r.verdict, 'Pass');
  assert.equal(
    r.message,
    'canary error rate 0.005 <= 0.010; p99 latency ratio 1.00 <= 1.30; TTFT ratio 1.00 <= 1.50; 200 canary, 1000 stable requests',
  );
  assert.equal(r.canaryErrorRate, 0.005);
  assert.equal(r.stableErrorRate, 0.002);
  close(r.latencyP99Ratio, 1, 'latency ratio');
  close(r.ttftRatio, 1, 'ttft ratio');
  assert.equal(r.canaryRequests, 200);
  assert.equal(r.stableRequests, 1000);
});

test('judge: each criterion failing alone', () => {
  const errors = judge(SPEC, totals(200, 10, { 0.5: 200 }, { 0.1: 200 }), STABLE);
  assert.equal(errors.verdict, 'Fail');
  assert.equal(errors.message, 'canary error rate 0.050 > 0.010; 200 canary, 1000 stable requests');
  assert.equal(errors.canaryErrorRate, 0.05);

  // Canary latency in (0.5, 1]: p99 = 0.5 + 0.5 × 0.99 = 0.995; ratio 0.995 / 0.4975 = 2.
  const slow = judge(SPEC, totals(200, 0, { 1: 200 }, { 0.1: 200 }), STABLE);
  assert.equal(slow.verdict, 'Fail');
  assert.equal(slow.message, 'p99 latency ratio 2.00 > 1.30; 200 canary, 1000 stable requests');
  close(slow.latencyP99Ratio, 2, 'latency ratio');
  close(slow.ttftRatio, 1, 'ttft ratio');

  // TTFT in (0.1, 0.25]: p99 = 0.1 + 0.15 × 0.99 = 0.2485; ratio 0.2485 / 0.0995.
  const ttft = judge(SPEC, totals(200, 0, { 0.5: 200 }, { 0.25: 200 }), STABLE);
  assert.equal(ttft.verdict, 'Fail');
  assert.equal(ttft.message, 'TTFT ratio 2.50 > 1.50; 200 canary, 1000 stable requests');
  close(ttft.ttftRatio, 0.2485 / 0.0995, 'ttft ratio');
});

test('judge: several criteria failing are all named', () => {
  // 9 of 180 failed (0.05); latency: 162 in (0.25, 0.5] and 18 in (0.5, 1] → rank 178.2, in the
  // second bucket at (178.2 − 162) / 18 = 0.9 → 0.95, ratio 0.95 / 0.4975 = 1.909…
  const r = judge(SPEC, totals(180, 9, { 0.5: 162, 1: 18 }, { 0.1: 180 }), STABLE);
  assert.equal(r.verdict, 'Fail');
  assert.equal(
    r.message,
    'canary error rate 0.050 > 0.010; p99 latency ratio 1.91 > 1.30; 180 canary, 1000 stable requests',
  );
  close(r.latencyP99Ratio, 0.95 / 0.4975);
});

test('judge: a ratio without stable requests is Inconclusive, unless something fails', () => {
  const empty = totals(0, 0, {});
  const r = judge(SPEC, HEALTHY, empty);
  assert.equal(r.verdict, 'Inconclusive');
  assert.equal(
    r.message,
    'p99 latency ratio unknown: the stable backend had no requests; TTFT ratio unknown: the stable backend had no requests; canary error rate 0.005 <= 0.010; 200 canary, 0 stable requests',
  );
  assert.equal(r.latencyP99Ratio, undefined);
  assert.equal(r.ttftRatio, undefined);
  assert.equal(r.stableErrorRate, undefined);
  assert.equal(r.stableRequests, 0);

  const bad = judge(SPEC, totals(200, 20, { 0.5: 200 }), empty);
  assert.equal(bad.verdict, 'Fail');
  assert.match(bad.message, /^canary error rate 0\.100 > 0\.010 \(also p99 latency ratio unknown/);

  // Only the error rate configured: stable without requests does not matter.
  const onlyErrors = judge(
    { ...SPEC, maxLatencyP99Ratio: undefined, maxTtftRatio: undefined },
    HEALTHY,
    empty,
  );
  assert.equal(onlyErrors.verdict, 'Pass');
  assert.equal(onlyErrors.message, 'canary error rate 0.005 <= 0.010; 200 canary, 0 stable requests');
});

test('judge: missing samples, equal-looking figures, no criteria', () => {
  // Requests but no TTFT samples for the canary (every request failed before a first byte).
  const noTtft = judge(SPEC, totals(200, 0, { 0.5: 200 }, {}), STABLE);
  assert.equal(noTtft.verdict, 'Inconclusive');
  assert.match(
    noTtft.message,
    /^TTFT ratio unknown: no canary samples; canary error rate 0\.000 <= 0\.010; p99/,
  );

  // 0.0104 > 0.010 is shown with enough digits to see why.
  const near = judge(
    { ...SPEC, maxLatencyP99Ratio: undefined, maxTtftRatio: undefined },
    totals(1000, 10.4, {}),
    STABLE,
  );
  assert.equal(near.verdict, 'Fail');
  assert.equal(near.message, 'canary error rate 0.0104 > 0.0100; 1000 canary, 1000 stable requests');
  // Exactly at the threshold passes.
  const at = judge(
    { ...SPEC, maxLatencyP99Ratio: undefined, maxTtftRatio: undefined },
    totals(1000, 10, {}),
    STABLE,
  );
  assert.equal(at.verdict, 'Pass');

  const none = judge(
    { ...SPEC, maxErrorRate: undefined, maxLatencyP99Ratio: undefined, maxTtftRatio: undefined },
    HEALTHY,
    STABLE,
  );
  assert.equal(none.verdict, 'Pass');
  assert.equal(none.message, 'no criteria configured; 200 canary, 1000 stable requests');
  // Ratios are still reported for information.
  close(none.latencyP99Ratio, 1);
});

test('judgeFigures: fractional counts (Prometheus increase) are shown with one decimal', () => {
  const r = judgeFigures(
    { ...SPEC, maxLatencyP99Ratio: undefined, maxTtftRatio: undefined },
    { canaryRequests: 99.5, canaryErrors: 0, stableRequests: 900.25, stableErrors: 0 },
  );
  assert.equal(r.message, '99.5 canary requests, 100 needed');
});
