/**
 * The Prometheus analysis provider. Against a real prometheus (skipped without one, except in CI)
 * scraping a target that serves ModelGate's own proxy metrics: a canary with 10 % 5xx and slower
 * latencies fails with the right figures, a healthy one passes, a route without series is
 * Inconclusive; label values with quotes and backslashes are escaped. Against fakes: the PromQL
 * sent, and every way of not getting an answer (unreachable, non-200, bad JSON, timeout, a PromQL
 * error) is an error result, never a throw.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { judge } from '../../../../src/controlplane/rollout/analysis.ts';
import type { Histogram, Totals } from '../../../../src/controlplane/rollout/backend-stats.ts';
import {
  PrometheusProvider,
  promqlString,
  queriesFor,
} from '../../../../src/controlplane/rollout/prometheus-provider.ts';
import type { AnalysisSpec } from '../../../../src/controlplane/rollout/types.ts';
import { LATENCY_BUCKETS } from '../../../../src/observability/metric-families.ts';
import { ProxyMetrics } from '../../../../src/observability/proxy-metrics.ts';
import {
  freePort,
  skipWithoutPrometheus,
  startPrometheus,
  type TestPrometheus,
} from '../../../support/prometheus-server.ts';

const SPEC: AnalysisSpec = {
  intervalMs: 60_000,
  minRequests: 50,
  maxErrorRate: 0.05,
  maxLatencyP99Ratio: 1.5,
  maxTtftRatio: 1.5,
  failureLimit: 1,
  intervals: 1,
};

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test('promqlString escapes quotes, backslashes and control characters', () => {
  assert.equal(promqlString('default/chat'), '"default/chat"');
  assert.equal(promqlString('a"b\\c'), '"a\\"b\\\\c"');
  assert.equal(promqlString('x\ny\tz\r\u0001\u007f'), '"x\\ny\\tz\\r\\x01\\x7f"');
  assert.equal(promqlString('ünï'), '"ünï"');
  // A lone surrogate (not valid UTF-8) becomes U+FFFD rather than breaking the query.
  assert.equal(promqlString('a\ud800'), '"a\ufffd"');
});

test('the queries sent: increase() over the window, at its end, per route and backend', async () => {
  const seen: { url: string; query: string; time: string }[] = [];
  const fakeFetch = (async (url: string | URL | Request, init?: RequestInit) => {
    const params = new URLSearchParams(String(init?.body));
    seen.push({ url: String(url), query: params.get('query') ?? '', time: params.get('time') ?? '' });
    return new Response(JSON.stringify({ status: 'success', data: { resultType: 'vector', result: [] } }), {
      status: 200,
    });
  }) as typeof fetch;
  const provider = new PrometheusProvider({ url: 'http://prom.example:9090/prefix/', fetch: fakeFetch });
  const route = 'ns/a"b\\c';
  const r = await provider.analyse(SPEC, {
    route,
    stableBackend: 'stable',
    canaryBackend: 'canary',
    startMs: 1_700_000_000_000,
    endMs: 1_700_000_060_500,
  });
  // No series at all: nothing to judge, but the provider did answer.
  assert.equal(r.verdict, 'Inconclusive');
  assert.equal(r.error, undefined);
  assert.equal(r.message, '0 canary requests, 50 needed');
  assert.equal(seen.length, 8);
  for (const s of seen) {
    assert.equal(s.url, 'http://prom.example:9090/prefix/api/v1/query');
    assert.equal(s.time, '1700000060.500');
  }
  const queries = seen.map((s) => s.query).sort();
  const expected = [
    ...Object.values(queriesFor(route, 'canary', '60500ms')),
    ...Object.values(queriesFor(route, 'stable', '60500ms')),
  ].sort();
  assert.deepEqual(queries, expected);
  assert.ok(
    queries.includes(
      'sum(increase(modelgate_requests_total{route="ns/a\\"b\\\\c",backend="canary",code_class="5xx"}[60500ms]))',
    ),
  );
  assert.ok(
    queries.includes(
      'histogram_quantile(0.99, sum by (le) (increase(modelgate_upstream_ttfb_seconds_bucket{route="ns/a\\"b\\\\c",backend="stable"}[60500ms])))',
    ),
  );
});

describe('no answer from Prometheus is an error result, never a throw', () => {
  const window = { route: 'r', stableBackend: 's', canaryBackend: 'c', startMs: 0, endMs: 60_000 };
  let server: Server;
  let port = 0;
  let answer: (url: string, res: import('node:http').ServerResponse) => void = () => {};

  before(async () => {
    server = createServer((req, res) => answer(req.url ?? '', res));
    port = await listen(server);
  });
  after(() => closeServer(server));

  const check = async (provider: PrometheusProvider, pattern: RegExp) => {
    const r = await provider.analyse(SPEC, window);
    assert.equal(r.error, true);
    assert.equal(r.verdict, 'Inconclusive');
    assert.equal(r.canaryRequests, 0);
    assert.match(r.message, pattern);
    return r;
  };

  test('unreachable', async () => {
    const closed = await freePort();
    await check(
      new PrometheusProvider({ url: `http://127.0.0.1:${closed}` }),
      /^Prometheus at http:\/\/127\.0\.0\.1:\d+: fetch failed/,
    );
  });

  test('non-200 with a Prometheus error body, and without one', async () => {
    answer = (_url, res) => {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: 'error', errorType: 'bad_data', error: 'parse error at char 5' }));
    };
    await check(
      new PrometheusProvider({ url: `http://127.0.0.1:${port}` }),
      /HTTP 400: parse error at char 5/,
    );
    answer = (_url, res) => {
      res.writeHead(503);
      res.end('Service Unavailable\n');
    };
    await check(
      new PrometheusProvider({ url: `http://127.0.0.1:${port}` }),
      /HTTP 503: Service Unavailable$/,
    );
  });

  test('bad JSON and unexpected shapes', async () => {
    answer = (_url, res) => res.end('<html>not prometheus</html>');
    await check(new PrometheusProvider({ url: `http://127.0.0.1:${port}` }), /answer is not JSON: <html>/);
    answer = (_url, res) =>
      res.end(JSON.stringify({ status: 'success', data: { resultType: 'matrix', result: [] } }));
    await check(new PrometheusProvider({ url: `http://127.0.0.1:${port}` }), /not a vector/);
    answer = (_url, res) => {
      const sample = { metric: {}, value: [1, '3'] };
      res.end(
        JSON.stringify({ status: 'success', data: { resultType: 'vector', result: [sample, sample] } }),
      );
    };
    await check(new PrometheusProvider({ url: `http://127.0.0.1:${port}` }), /2 series for/);
  });

  test('timeout', async () => {
    answer = () => {}; // never answers
    const started = Date.now();
    await check(
      new PrometheusProvider({ url: `http://127.0.0.1:${port}`, timeoutMs: 200 }),
      /no answer within 200 ms/,
    );
    assert.ok(Date.now() - started < 5000);
    server.closeAllConnections();
  });

  test('a throwing fetch and an empty window', async () => {
    const boom = (async () => {
      throw new TypeError('boom');
    }) as typeof fetch;
    await check(new PrometheusProvider({ url: 'http://x', fetch: boom }), /boom/);
    const provider = new PrometheusProvider({ url: `http://127.0.0.1:${port}` });
    const r = await provider.analyse(SPEC, { ...window, startMs: 5, endMs: 5 });
    assert.equal(r.error, true);
    assert.match(r.message, /window .* is empty/);
  });
});

// ---- against a real prometheus -----------------------------------------------------------------

const BAD = 'default/bad "route" \\ x';
const GOOD = 'default/good';

/** Observations fed to the target, kept to compute what the judge says on the same data. */
interface Fed {
  ok: number;
  failed: number;
  latency: number;
  ttfb: number;
}

function totalsOf(f: Fed): Totals {
  const h = (v: number): Histogram => {
    const counts = new Array<number>(LATENCY_BUCKETS.length + 1).fill(0);
    const i = LATENCY_BUCKETS.findIndex((b) => v <= b);
    counts[i < 0 ? LATENCY_BUCKETS.length : i] = f.ok + f.failed;
    return { bounds: [...LATENCY_BUCKETS], counts };
  };
  return {
    requests: f.ok + f.failed,
    errors: f.failed,
    clientErrors: 0,
    tokens: 0,
    latency: h(f.latency),
    ttfb: h(f.ttfb),
  };
}

describe('against a real prometheus', { skip: skipWithoutPrometheus() }, () => {
  const metrics = new ProxyMetrics({ processMetrics: false });
  let target: Server;
  let prom: TestPrometheus;
  let startMs = 0;
  let endMs = 0;
  const fed: Record<string, Record<string, Fed>> = {
    [BAD]: {
      stable: { ok: 900, failed: 0, latency: 0.2, ttfb: 0.05 },
      canary: { ok: 90, failed: 10, latency: 0.8, ttfb: 0.2 },
    },
    [GOOD]: {
      stable: { ok: 900, failed: 0, latency: 0.2, ttfb: 0.05 },
      canary: { ok: 99, failed: 1, latency: 0.2, ttfb: 0.05 },
    },
  };

  /** Samples of the good canary's 2xx counter newer than `sinceMs`, and the latest value. */
  const samplesSince = async (sinceMs: number): Promise<{ n: number; last: number }> => {
    const sel = `modelgate_requests_total{route="${GOOD}",backend="canary",code_class="2xx"}`;
    const now = Date.now();
    const range = Math.max(1, now - sinceMs);
    const [count] = await prom.query(`count_over_time(${sel}[${range}ms])`, now / 1000);
    const [last] = await prom.query(sel, now / 1000);
    return { n: count ? Number(count.value[1]) : 0, last: last ? Number(last.value[1]) : -1 };
  };

  before(async () => {
    // Every series exists from the start, at 0 (as the proxy's do once a table names them).
    for (const route of [BAD, GOOD]) {
      for (const backend of ['stable', 'canary']) {
        for (const code of ['2xx', '5xx']) metrics.requests.child([route, 'rule-0', backend, '', code]);
        metrics.duration.child([route, backend]);
        metrics.ttfb.child([route, backend]);
      }
    }
    target = createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404);
        res.end();
        return;
      }
      metrics.registry.metrics().then(
        (body) => {
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          res.end(body);
        },
        (err: Error) => {
          res.writeHead(500);
          res.end(err.message);
        },
      );
    });
    const targetPort = await listen(target);
    prom = await startPrometheus([`127.0.0.1:${targetPort}`]);

    // The window starts with a few samples at 0 inside it…
    await waitFor('the target scraped', async () =>
      (await samplesSince(Date.now() - 60_000)).n > 0 ? true : undefined,
    );
    startMs = Date.now();
    await waitFor('baseline samples', async () => ((await samplesSince(startMs)).n >= 3 ? true : undefined));
    // …then the traffic, all at once…
    for (const [route, backends] of Object.entries(fed)) {
      for (const [backend, f] of Object.entries(backends)) {
        metrics.requests.child([route, 'rule-0', backend, '', '2xx']).value += f.ok;
        metrics.requests.child([route, 'rule-0', backend, '', '5xx']).value += f.failed;
        for (let i = 0; i < f.ok + f.failed; i++) {
          metrics.duration.child([route, backend]).observe(f.latency);
          metrics.ttfb.child([route, backend]).observe(f.ttfb);
        }
      }
    }
    const bumpMs = Date.now();
    // …and a few samples of it before the window ends.
    await waitFor('samples after the traffic', async () => {
      const s = await samplesSince(bumpMs);
      return s.n >= 3 && s.last === 99 ? true : undefined;
    });
    endMs = Date.now();
  });

  after(async () => {
    await prom?.close();
    if (target) await closeServer(target);
  });

  test('a canary with 10 % 5xx and slower latencies fails, with the right figures', async () => {
    const provider = new PrometheusProvider({ url: prom.url });
    const r = await provider.analyse(SPEC, {
      route: BAD,
      stableBackend: 'stable',
      canaryBackend: 'canary',
      startMs,
      endMs,
    });
    assert.equal(r.error, undefined, r.message);
    assert.equal(r.verdict, 'Fail', r.message);
    // increase() extrapolates to the window's end (not before the counters' 0): some slack.
    assert.ok(r.canaryRequests >= 95 && r.canaryRequests <= 130, `canary requests ${r.canaryRequests}`);
    assert.ok(r.stableRequests >= 855 && r.stableRequests <= 1170, `stable requests ${r.stableRequests}`);
    // Ratios of figures from the same scrapes are exact (up to floating point).
    assert.ok(Math.abs((r.canaryErrorRate ?? 0) - 0.1) < 1e-6, `canary error rate ${r.canaryErrorRate}`);
    assert.ok(Math.abs(r.stableErrorRate ?? 1) < 1e-9, `stable error rate ${r.stableErrorRate}`);
    // p99: canary (0.5, 1] → 0.995, stable (0.1, 0.25] → 0.2485; TTFT: (0.1, 0.25] → 0.2485 and
    // (0.025, 0.05] → 0.04975.
    assert.ok(
      Math.abs((r.latencyP99Ratio ?? 0) - 0.995 / 0.2485) < 1e-6,
      `latency ratio ${r.latencyP99Ratio}`,
    );
    assert.ok(Math.abs((r.ttftRatio ?? 0) - 0.2485 / 0.04975) < 1e-6, `TTFT ratio ${r.ttftRatio}`);
    assert.match(
      r.message,
      /^canary error rate 0\.100 > 0\.050; p99 latency ratio 4\.00 > 1\.50; TTFT ratio 4\.99 > 1\.50; [\d.]+ canary, [\d.]+ stable requests$/,
    );
    // The proxies' own counters, judged locally, agree.
    const local = judge(SPEC, totalsOf(fed[BAD]!.canary!), totalsOf(fed[BAD]!.stable!));
    assert.equal(local.verdict, 'Fail');
    assert.ok(Math.abs((local.latencyP99Ratio ?? 0) - (r.latencyP99Ratio ?? 0)) < 1e-6);
    assert.ok(Math.abs((local.ttftRatio ?? 0) - (r.ttftRatio ?? 0)) < 1e-6);
    assert.equal(local.canaryErrorRate, 0.1);
  });

  test('a healthy canary passes', async () => {
    const provider = new PrometheusProvider({ url: `${prom.url}/` });
    const r = await provider.analyse(SPEC, {
      route: GOOD,
      stableBackend: 'stable',
      canaryBackend: 'canary',
      startMs,
      endMs,
    });
    assert.equal(r.error, undefined, r.message);
    assert.equal(r.verdict, 'Pass', r.message);
    assert.ok(Math.abs((r.canaryErrorRate ?? 0) - 0.01) < 1e-6, `canary error rate ${r.canaryErrorRate}`);
    assert.ok(Math.abs((r.latencyP99Ratio ?? 0) - 1) < 1e-9);
    assert.ok(Math.abs((r.ttftRatio ?? 0) - 1) < 1e-9);
    assert.match(
      r.message,
      /^canary error rate 0\.010 <= 0\.050; p99 latency ratio 1\.00 <= 1\.50; TTFT ratio 1\.00 <= 1\.50; [\d.]+ canary, [\d.]+ stable requests$/,
    );
  });

  test('a window before any traffic, and a route without series: Inconclusive, not an error', async () => {
    const provider = new PrometheusProvider({ url: prom.url });
    const quiet = await provider.analyse(SPEC, {
      route: GOOD,
      stableBackend: 'stable',
      canaryBackend: 'canary',
      startMs: startMs - 60_000,
      endMs: startMs,
    });
    assert.equal(quiet.error, undefined, quiet.message);
    assert.equal(quiet.verdict, 'Inconclusive');
    assert.equal(quiet.message, '0 canary requests, 50 needed');
    const missing = await provider.analyse(SPEC, {
      route: 'default/none',
      stableBackend: 'stable',
      canaryBackend: 'canary',
      startMs,
      endMs,
    });
    assert.equal(missing.error, undefined, missing.message);
    assert.equal(missing.verdict, 'Inconclusive');
    assert.equal(missing.message, '0 canary requests, 50 needed');
  });
});
