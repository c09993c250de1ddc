/**
 * Backend statistics reported by proxies: validation of untrusted reports, and the controller's
 * aggregation — several proxies summed, a restart (new epoch) keeping what was counted before,
 * late reports from an old epoch ignored, silent proxies forgotten without totals going backwards
 * (and reconciled when they come back), histograms with other bounds skipped and counted.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type BackendStats,
  delta,
  type Histogram,
  parseStatsReport,
  StatsAggregator,
  type StatsReport,
  type Totals,
} from '../../../../src/controlplane/rollout/backend-stats.ts';
import { LATENCY_BUCKETS } from '../../../../src/observability/metric-families.ts';

const ROLLOUT = 'default/chat-canary';
const N = LATENCY_BUCKETS.length + 1;

/** A histogram on LATENCY_BUCKETS with `at` observations per bucket index (N - 1 = +Inf). */
function hist(at: Record<number, number> = {}, bounds: readonly number[] = LATENCY_BUCKETS): Histogram {
  const counts = new Array<number>(bounds.length + 1).fill(0);
  for (const [i, n] of Object.entries(at)) counts[Number(i)] = n;
  return { bounds: [...bounds], counts };
}

function backend(
  name: string,
  requests: number,
  errors = 0,
  extra: Partial<BackendStats> = {},
): BackendStats {
  return {
    rollout: ROLLOUT,
    backend: name,
    requests,
    errors,
    clientErrors: 0,
    tokens: 0,
    latency: hist({ 7: requests }),
    ttfb: hist({ 5: requests }),
    ...extra,
  };
}

function report(proxy: string, epoch: number, ...backends: BackendStats[]): StatsReport {
  return { proxy, epoch, backends };
}

function brief(t: Totals): { requests: number; errors: number; lat: number; ttfb: number } {
  const sum = (h: Histogram) => h.counts.reduce((a, b) => a + b, 0);
  return { requests: t.requests, errors: t.errors, lat: sum(t.latency), ttfb: sum(t.ttfb) };
}

test('parseStatsReport accepts a valid report and returns a clean copy', () => {
  const raw = {
    proxy: 'proxy-a',
    epoch: 1000,
    extra: 'ignored',
    backends: [{ ...backend('stable', 10, 1), tokens: 1234, more: true }],
  };
  const r = parseStatsReport(JSON.parse(JSON.stringify(raw)));
  assert.equal(typeof r, 'object');
  const rep = r as StatsReport;
  assert.equal(rep.proxy, 'proxy-a');
  assert.equal(rep.epoch, 1000);
  assert.deepEqual(rep.backends[0], {
    rollout: ROLLOUT,
    backend: 'stable',
    requests: 10,
    errors: 1,
    clientErrors: 0,
    tokens: 1234,
    latency: hist({ 7: 10 }),
    ttfb: hist({ 5: 10 }),
  });
  assert.equal('extra' in rep, false);
  assert.equal('more' in (rep.backends[0] as object), false);
});

test('4xx answers and tokens are summed and subtracted like the rest; a report without 4xx counted none', () => {
  const older = JSON.parse(JSON.stringify(report('a', 1, backend('canary', 10, 1, { tokens: 500 }))));
  delete older.backends[0].clientErrors;
  const parsed = parseStatsReport(older) as StatsReport;
  assert.equal(parsed.backends[0]!.clientErrors, 0);
  const agg = new StatsAggregator();
  agg.ingest(parsed, 1000);
  agg.ingest(report('b', 1, backend('canary', 20, 0, { clientErrors: 3, tokens: 800 })), 1000);
  const before = agg.totals(ROLLOUT, 'canary');
  assert.deepEqual([before.clientErrors, before.tokens], [3, 1300]);
  agg.ingest(report('b', 1, backend('canary', 40, 0, { clientErrors: 7, tokens: 2000 })), 2000);
  const d = delta(agg.totals(ROLLOUT, 'canary'), before);
  assert.deepEqual([d.requests, d.errors, d.clientErrors, d.tokens], [20, 0, 4, 1200]);
  const bad = JSON.parse(JSON.stringify(report('a', 1, backend('canary', 1))));
  bad.backends[0].clientErrors = -1;
  assert.match(String(parseStatsReport(bad)), /clientErrors: must be a finite non-negative number/);
});

/** A report as plain JSON, to break at will. */
interface RawBackend {
  [k: string]: unknown;
  latency: { bounds: unknown[]; counts: unknown[] };
  ttfb: { bounds: unknown[]; counts: unknown[] };
}
interface Raw {
  [k: string]: unknown;
  backends: RawBackend[];
}

test('parseStatsReport rejects bad input with a reason', () => {
  const good = (): Raw => JSON.parse(JSON.stringify(report('p', 1, backend('stable', 10))));
  // Each case breaks a good report in place, or returns a replacement.
  const cases: [string, (r: Raw, b: RawBackend) => unknown, RegExp][] = [
    ['not an object', () => 'x', /not an object/],
    ['null', () => null, /not an object/],
    ['an array', () => [], /not an object/],
    ['no proxy', (r) => ({ ...r, proxy: '' }), /proxy/],
    ['negative epoch', (r) => ({ ...r, epoch: -1 }), /epoch/],
    ['backends not an array', (r) => ({ ...r, backends: {} }), /backends must be an array/],
    [
      'negative requests',
      (_, b) => {
        b.requests = -1;
      },
      /requests/,
    ],
    [
      'NaN errors',
      (_, b) => {
        b.errors = Number.NaN;
      },
      /errors/,
    ],
    [
      'Infinity tokens',
      (_, b) => {
        b.tokens = Number.POSITIVE_INFINITY;
      },
      /tokens/,
    ],
    [
      'string count',
      (_, b) => {
        b.requests = '5';
      },
      /requests/,
    ],
    [
      'no rollout',
      (_, b) => {
        delete b.rollout;
      },
      /rollout/,
    ],
    [
      'long backend',
      (_, b) => {
        b.backend = 'x'.repeat(513);
      },
      /backend/,
    ],
    [
      'too many backends',
      (r, b) => ({ ...r, backends: Array.from({ length: 1001 }, (_, i) => ({ ...b, backend: `b${i}` })) }),
      /1001 backends/,
    ],
    [
      'equal bounds',
      (_, b) => {
        b.latency.bounds[3] = b.latency.bounds[2];
      },
      /strictly increasing at 3/,
    ],
    [
      'decreasing bounds',
      (_, b) => {
        b.ttfb = { bounds: [1, 0.5], counts: [0, 0, 0] };
      },
      /strictly increasing/,
    ],
    [
      'NaN bound',
      (_, b) => {
        b.ttfb.bounds[0] = Number.NaN;
      },
      /bound 0/,
    ],
    [
      'negative bound',
      (_, b) => {
        b.ttfb.bounds[0] = -1;
      },
      /bound 0/,
    ],
    [
      'negative bucket count',
      (_, b) => {
        b.latency.counts[2] = -3;
      },
      /count 2/,
    ],
    [
      'counts length',
      (_, b) => {
        b.latency.counts.pop();
      },
      /counts for/,
    ],
    [
      'too many buckets',
      (_, b) => {
        b.latency = hist(
          {},
          Array.from({ length: 65 }, (_, i) => i + 1),
        );
      },
      /65 bounds/,
    ],
    [
      'no bounds',
      (_, b) => {
        b.latency = { bounds: [], counts: [0] };
      },
      /0 bounds/,
    ],
    [
      'missing histogram',
      (_, b) => {
        delete (b as Partial<RawBackend>).ttfb;
      },
      /ttfb: not an object/,
    ],
    ['duplicate backend', (r, b) => ({ ...r, backends: [b, b] }), /twice/],
  ];
  for (const [what, mutate, reason] of cases) {
    const r = good();
    const replaced = mutate(r, r.backends[0]!);
    const result = parseStatsReport(replaced === undefined ? r : replaced);
    assert.equal(typeof result, 'string', what);
    assert.match(result as string, reason, what);
  }
});

test('totals sum every proxy; delta subtracts element-wise and clamps at 0', () => {
  const agg = new StatsAggregator();
  agg.ingest(report('a', 1, backend('stable', 100, 1), backend('canary', 10, 2)), 1000);
  agg.ingest(report('b', 5, backend('stable', 50), backend('canary', 5, 1, { tokens: 70 })), 1000);
  const before = agg.totals(ROLLOUT, 'canary');
  assert.deepEqual(brief(before), { requests: 15, errors: 3, lat: 15, ttfb: 15 });
  assert.equal(before.tokens, 70);
  assert.deepEqual(brief(agg.totals(ROLLOUT, 'stable')), { requests: 150, errors: 1, lat: 150, ttfb: 150 });
  // Unknown keys: zeros, with the aggregator's bounds.
  const none = agg.totals(ROLLOUT, 'nope');
  assert.deepEqual(none.latency, hist());
  assert.equal(none.requests, 0);
  assert.deepEqual(agg.totals('other/rollout', 'canary').requests, 0);

  agg.ingest(report('a', 1, backend('stable', 100, 1), backend('canary', 30, 4)), 2000);
  const after = agg.totals(ROLLOUT, 'canary');
  const d = delta(after, before);
  assert.deepEqual(brief(d), { requests: 20, errors: 2, lat: 20, ttfb: 20 });
  assert.equal(d.latency.counts[7], 20);
  assert.deepEqual(d.latency.bounds, [...LATENCY_BUCKETS]);
  // Clamped: before − after is all zeros, not negative.
  assert.deepEqual(brief(delta(before, after)), { requests: 0, errors: 0, lat: 0, ttfb: 0 });
  // Different bounds cannot be subtracted: after's bounds, no counts.
  const odd = { ...after, latency: hist({ 0: 5 }, [1, 2]) };
  assert.deepEqual(delta(odd, before).latency, hist({}, [1, 2]));
  // totals() returns fresh objects: mutating one does not touch the aggregator.
  after.latency.counts[7] = 999;
  assert.equal(agg.totals(ROLLOUT, 'canary').latency.counts[7], 35);
});

test('a restart (new epoch) keeps what the old epoch counted; late reports from it are ignored', () => {
  const agg = new StatsAggregator();
  agg.ingest(report('a', 1, backend('canary', 40, 4)), 1000);
  agg.ingest(report('b', 1, backend('canary', 10)), 1000);
  assert.equal(agg.totals(ROLLOUT, 'canary').requests, 50);
  // a restarts: counters start over at 3.
  agg.ingest(report('a', 2, backend('canary', 3, 1)), 2000);
  let t = agg.totals(ROLLOUT, 'canary');
  assert.deepEqual(brief(t), { requests: 53, errors: 5, lat: 53, ttfb: 53 });
  assert.equal(agg.counters.restarts, 1);
  // A report of epoch 1 delivered late: ignored, nothing goes backwards or is counted twice.
  agg.ingest(report('a', 1, backend('canary', 45, 5)), 2100);
  assert.equal(agg.counters.stale, 1);
  assert.deepEqual(brief(agg.totals(ROLLOUT, 'canary')), brief(t));
  // Within an epoch an overtaken (smaller) report does not lower anything.
  agg.ingest(report('a', 2, backend('canary', 8, 1)), 2200);
  agg.ingest(report('a', 2, backend('canary', 5, 1)), 2300);
  t = agg.totals(ROLLOUT, 'canary');
  assert.equal(t.requests, 58);
  // A second restart, and a backend the new epoch has not reported yet still counts (base).
  agg.ingest(report('a', 3), 3000);
  assert.equal(agg.totals(ROLLOUT, 'canary').requests, 58);
  agg.ingest(report('a', 3, backend('canary', 2)), 3100);
  assert.equal(agg.totals(ROLLOUT, 'canary').requests, 60);
  assert.equal(agg.counters.restarts, 2);
});

test('a silent proxy is forgotten without totals going backwards, and reconciled if it returns', () => {
  const agg = new StatsAggregator({ forgetAfterMs: 60_000 });
  agg.ingest(report('a', 1, backend('canary', 40, 4)), 0);
  agg.ingest(report('b', 1, backend('canary', 10)), 0);
  assert.deepEqual(agg.proxies().sort(), ['a', 'b']);
  // b keeps reporting; a goes silent.
  agg.ingest(report('b', 1, backend('canary', 20)), 30_000);
  agg.ingest(report('b', 1, backend('canary', 30)), 59_999);
  assert.deepEqual(agg.proxies().sort(), ['a', 'b']);
  agg.ingest(report('b', 1, backend('canary', 31)), 60_000);
  assert.deepEqual(agg.proxies(), ['b']);
  assert.equal(agg.counters.forgotten, 1);
  // a's 40 requests stay in the base.
  assert.deepEqual(brief(agg.totals(ROLLOUT, 'canary')), { requests: 71, errors: 4, lat: 71, ttfb: 71 });
  // forgetSilent alone (no reports at all) forgets b too: still no change in totals.
  agg.forgetSilent(200_000);
  assert.deepEqual(agg.proxies(), []);
  assert.equal(agg.totals(ROLLOUT, 'canary').requests, 71);

  // a comes back with the same epoch (a partition, not a restart): its cumulative 45 replaces the
  // 40 kept in the base rather than adding to it.
  agg.ingest(report('a', 1, backend('canary', 45, 5)), 210_000);
  assert.deepEqual(brief(agg.totals(ROLLOUT, 'canary')), { requests: 76, errors: 5, lat: 76, ttfb: 76 });
  // b comes back restarted (new epoch): its 31 stay, the new 2 add.
  agg.ingest(report('b', 7, backend('canary', 2)), 210_000);
  assert.equal(agg.totals(ROLLOUT, 'canary').requests, 78);
  assert.deepEqual(agg.proxies().sort(), ['a', 'b']);
  // A late report of b's old epoch: ignored.
  agg.ingest(report('b', 1, backend('canary', 500)), 210_000);
  assert.equal(agg.totals(ROLLOUT, 'canary').requests, 78);
  assert.equal(agg.counters.stale, 1);
});

test('what a proxy counted before the aggregator started is a baseline, never charged to a window', () => {
  // The controller started at t=1000; proxy a has run since t=1 (an earlier rollout run's 500
  // canary requests with 100 errors), proxy c started after the controller did.
  const agg = new StatsAggregator({ baselineBefore: 1000, forgetAfterMs: 60_000 });
  const opened = agg.totals(ROLLOUT, 'canary'); // a window opened before any report
  agg.ingest(report('a', 1, backend('canary', 500, 100)), 2000);
  agg.ingest(report('c', 1500, backend('canary', 7)), 2000);
  assert.deepEqual(brief(delta(agg.totals(ROLLOUT, 'canary'), opened)), {
    requests: 7,
    errors: 0,
    lat: 7,
    ttfb: 7,
  });
  // Growth after first sight counts, histograms included.
  agg.ingest(report('a', 1, backend('canary', 530, 101)), 3000);
  const t = agg.totals(ROLLOUT, 'canary');
  assert.deepEqual(brief(t), { requests: 37, errors: 1, lat: 37, ttfb: 37 });
  assert.equal(t.latency.counts[7], 37);
  // Forgotten and back with the same epoch: still only the growth; restarted: all of the new epoch.
  agg.forgetSilent(100_000);
  assert.equal(agg.totals(ROLLOUT, 'canary').requests, 37);
  agg.ingest(report('a', 1, backend('canary', 540, 101)), 100_001);
  assert.equal(agg.totals(ROLLOUT, 'canary').requests, 47);
  agg.ingest(report('a', 2000, backend('canary', 3)), 100_002);
  assert.equal(agg.totals(ROLLOUT, 'canary').requests, 50);
});

test('a forgotten proxy that returns with a stale epoch is ignored and stays forgotten', () => {
  const agg = new StatsAggregator({ forgetAfterMs: 1000 });
  agg.ingest(report('a', 1, backend('canary', 10)), 0);
  agg.ingest(report('a', 2, backend('canary', 5)), 10);
  agg.forgetSilent(5000);
  assert.equal(agg.totals(ROLLOUT, 'canary').requests, 15);
  agg.ingest(report('a', 1, backend('canary', 12)), 6000);
  assert.deepEqual(agg.proxies(), []);
  assert.equal(agg.totals(ROLLOUT, 'canary').requests, 15);
  // Then its current epoch: back, reconciled (7 replaces 5).
  agg.ingest(report('a', 2, backend('canary', 7)), 6001);
  assert.equal(agg.totals(ROLLOUT, 'canary').requests, 17);
});

test('histograms with other bounds are skipped and counted; the rest of the report counts', () => {
  const agg = new StatsAggregator();
  agg.ingest(report('a', 1, backend('canary', 10)), 0);
  agg.ingest(
    report('b', 1, backend('canary', 5, 1, { latency: hist({ 1: 5 }, [0.1, 1, 10]), ttfb: hist({ 5: 5 }) })),
    0,
  );
  assert.equal(agg.counters.incompatible, 1);
  const t = agg.totals(ROLLOUT, 'canary');
  assert.deepEqual(brief(t), { requests: 15, errors: 1, lat: 10, ttfb: 15 });
  assert.deepEqual(t.latency.bounds, [...LATENCY_BUCKETS]);
  assert.equal(t.latency.counts.length, N);

  // An aggregator with its own bounds takes those and skips LATENCY_BUCKETS.
  const custom = new StatsAggregator({ bounds: [0.1, 1, 10] });
  custom.ingest(
    report('b', 1, backend('canary', 5, 0, { latency: hist({ 1: 5 }, [0.1, 1, 10]), ttfb: hist({ 5: 5 }) })),
    0,
  );
  assert.equal(custom.counters.incompatible, 1);
  const c = custom.totals(ROLLOUT, 'canary');
  assert.deepEqual(c.latency, hist({ 1: 5 }, [0.1, 1, 10]));
  assert.deepEqual(c.ttfb, hist({}, [0.1, 1, 10]));
});

test('dropRollout forgets a deleted rollout everywhere', () => {
  const agg = new StatsAggregator({ forgetAfterMs: 1000 });
  agg.ingest(report('a', 1, backend('canary', 10)), 0);
  agg.ingest(report('a', 2, backend('canary', 5), { ...backend('canary', 9), rollout: 'other/r' }), 10);
  agg.dropRollout(ROLLOUT);
  assert.equal(agg.totals(ROLLOUT, 'canary').requests, 0);
  assert.equal(agg.totals('other/r', 'canary').requests, 9);
});
