/**
 * Automated rollouts analysed by Prometheus, end to end: a fake API server, the controller
 * (leader) running the rollout engine, a proxy fed by its push stream, real upstreams, and a real
 * prometheus scraping the proxy's admin /metrics every 250 ms. The CanaryRollout names the
 * Prometheus provider (`spec.analysisProvider.prometheus.url`), so each analysis interval (3 s, a
 * dozen scrapes) is judged from `increase(...)` over ModelGate's own metrics, not from the proxies'
 * reports. A healthy canary is promoted; one answering 500 to one request in 5 is rolled back; so
 * is one failing a single request when no 5xx is tolerated (the proxy exports a governed backend's
 * 5xx series at 0 before its first 5xx, which increase() could not count otherwise); with
 * Prometheus unreachable every interval is a provider error, the rollout holds its weight while the
 * errors are tolerated and then fails to weight 0 (state-machine.ts: `errors > failureLimit`).
 * Load is a bounded loop (count and time) that runs while the test waits for the engine's status.
 *
 * Skipped without prometheus on PATH (Debian: apt-get install prometheus), except in CI.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { createLogger } from '../../../src/observability/logger.ts';
import { startController } from '../../../src/roles/controller.ts';
import { startProxyRole } from '../../../src/roles/proxy.ts';
import { send } from '../../support/client.ts';
import { kubeConfigFor, startFakeApiServer } from '../../support/fake-apiserver/index.ts';
import type { ChangeEvent } from '../../support/fake-apiserver/store.ts';
import {
  freePort,
  skipWithoutPrometheus,
  startPrometheus,
  type TestPrometheus,
} from '../../support/prometheus-server.ts';
import { startUpstream, type TestUpstream } from '../../support/upstream.ts';

const quiet = () => createLogger({ destination: new Writable({ write: (_c, _e, cb) => cb() }) }).logger;

const SCRAPE_INTERVAL_MS = 250;
/** An analysis interval: about a dozen scrapes. */
const ANALYSIS_INTERVAL = '3s';
const MAX_ERROR_RATE = 0.05;

interface RolloutStatus {
  phase?: string;
  stepWeight?: number;
  servedWeight?: number;
  currentStep?: number;
  message?: string;
  analysisRuns?: { passed: number; failed: number; errors: number };
  lastAnalysis?: {
    verdict: string;
    message?: string;
    canaryRequests?: number;
    stableRequests?: number;
    canaryErrorRate?: number | null;
    error?: boolean | null;
  };
  history?: { weight: number; reason: string }[];
}

interface ScenarioOptions {
  /** Whether the canary answers its n-th request (1, 2, …) with a 500; never when absent. */
  canaryFails?: (n: number) => boolean;
  /** A real prometheus scraping the proxy, or a URL where nothing listens. */
  prometheus: 'real' | 'unreachable';
  maxErrorRate?: number;
  failureLimit?: number;
  intervals?: number;
}

async function delay(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

async function scenario(opts: ScenarioOptions) {
  const closers: (() => Promise<unknown>)[] = [];
  const cleanup = async () => {
    // Last opened, first closed; one failing close does not keep the others open.
    const errors: unknown[] = [];
    for (const close of closers.reverse()) await close().catch((e: unknown) => errors.push(e));
    if (errors.length > 0) throw errors[0];
  };
  try {
    return await setUp(opts, closers, cleanup);
  } catch (err) {
    await cleanup().catch(() => undefined);
    throw err;
  }
}

async function setUp(
  opts: ScenarioOptions,
  closers: (() => Promise<unknown>)[],
  cleanup: () => Promise<void>,
) {
  const api = await startFakeApiServer();
  closers.push(() => api.close());
  const stable = await startUpstream('stable');
  closers.push(() => stable.close());
  let canaryCalls = 0;
  let canaryFailures = 0;
  const canary: TestUpstream = await startUpstream('canary', (_req, res) => {
    canaryCalls++;
    const fail = opts.canaryFails?.(canaryCalls) === true;
    if (fail) canaryFailures++;
    res.writeHead(fail ? 500 : 200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ upstream: 'canary' }));
  });
  closers.push(() => canary.close());
  const stateDir = await mkdtemp(join(tmpdir(), 'modelgate-rollout-prom-'));
  closers.push(() => rm(stateDir, { recursive: true, force: true }));
  const controller = await startController({
    kc: kubeConfigFor(api.url),
    namespace: 'modelgate',
    identity: 'controller-0',
    listen: { address: '127.0.0.1', port: 0 },
    admin: { address: '127.0.0.1', port: 0 },
    leaseDurationMs: 2000,
    renewDeadlineMs: 1500,
    retryPeriodMs: 100,
    debounceMs: 10,
    logger: quiet(),
  });
  closers.push(() => controller.shutdown());
  const token = Buffer.from(
    String(api.get<{ data: { token: string } }>('Secret', 'modelgate', 'modelgate-push-token')!.data.token),
    'base64',
  ).toString();
  const proxy = await startProxyRole({
    proxyId: 'proxy-0',
    controllers: [controller.pushUrl],
    token: () => token,
    stateDir,
    listen: { address: '127.0.0.1', port: 0 },
    admin: { address: '127.0.0.1', port: 0 },
    reportIntervalMs: 100,
    logger: quiet(),
  });
  closers.push(() => proxy.shutdown(1000));

  let prom: TestPrometheus | undefined;
  let prometheusUrl: string;
  if (opts.prometheus === 'real') {
    const admin = new URL(proxy.adminUrl);
    prom = await startPrometheus([admin.host], { scrapeIntervalMs: SCRAPE_INTERVAL_MS });
    const p = prom;
    closers.push(() => p.close());
    prometheusUrl = p.url;
    // The proxy is a healthy target before the rollout starts: every interval gets its scrapes.
    await waitUntil('prometheus scraping the proxy', async () => {
      const up = await p.query('up{job="modelgate"}').catch(() => []);
      return up.some((s) => s.value[1] === '1') || undefined;
    });
  } else {
    // Nothing listens there (the port was free a moment ago): every query is refused.
    prometheusUrl = `http://127.0.0.1:${await freePort()}`;
  }

  // Every status the engine writes, in order: "never" assertions look at all of them.
  const seen: RolloutStatus[] = [];
  const onChange = (ev: ChangeEvent) => {
    const o = ev.object as { kind?: string; metadata: { name?: string }; status?: RolloutStatus };
    if (o.kind === 'CanaryRollout' && o.metadata.name === 'chat-v2' && o.status) {
      seen.push(structuredClone(o.status));
    }
  };
  api.events.on('change', onChange);
  closers.push(async () => api.events.off('change', onChange));

  api.apply({
    apiVersion: 'modelgate.dev/v1alpha1',
    kind: 'ModelRoute',
    metadata: { name: 'chat', namespace: 'ml' },
    spec: {
      rules: [
        {
          backends: [
            { name: 'stable', urls: [stable.url] },
            { name: 'canary', urls: [canary.url] },
          ],
        },
      ],
    },
  });
  api.apply({
    apiVersion: 'modelgate.dev/v1alpha1',
    kind: 'CanaryRollout',
    metadata: { name: 'chat-v2', namespace: 'ml' },
    spec: {
      routeRef: { name: 'chat' },
      stableBackend: 'stable',
      canaryBackend: 'canary',
      analysisProvider: { prometheus: { url: prometheusUrl } },
      steps: [
        { setWeight: 50 },
        {
          analysis: {
            interval: ANALYSIS_INTERVAL,
            minRequests: 30,
            maxErrorRate: opts.maxErrorRate ?? MAX_ERROR_RATE,
            ...(opts.failureLimit !== undefined ? { failureLimit: opts.failureLimit } : {}),
            ...(opts.intervals !== undefined ? { intervals: opts.intervals } : {}),
          },
        },
        { setWeight: 80 },
      ],
    },
  });
  const status = () => api.get<{ status?: RolloutStatus }>('CanaryRollout', 'ml', 'chat-v2')?.status;

  // Load until the rollout ends: at most 20,000 requests or 60 s.
  let stop = false;
  let sent = 0;
  const proxyUrl = proxy.listener.url;
  const load = (async () => {
    const deadline = Date.now() + 60_000;
    while (!stop && sent < 20_000 && Date.now() < deadline) {
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          sent++;
          await send(proxyUrl, { path: '/v1/chat' }).catch(() => undefined);
        }),
      );
    }
  })();
  // Stopped first: the load must not outlive the proxy it sends to.
  closers.push(async () => {
    stop = true;
    await load;
  });
  return {
    api,
    prom,
    status,
    seen,
    cleanup,
    canary: () => ({ calls: canaryCalls, failures: canaryFailures }),
    reasons: () => api.recordedEvents('ml').map((e) => (e as { reason?: string }).reason),
    event: (reason: string) =>
      api.recordedEvents('ml').find((e) => (e as { reason?: string }).reason === reason) as
        | { type?: string; message?: string }
        | undefined,
  };
}

/** Polls `probe` (bounded: 30 s) until it gives a value. */
async function waitUntil<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(100);
  }
}

const ended = (s: RolloutStatus | undefined) =>
  s && (s.phase === 'Promoted' || s.phase === 'RolledBack' || s.phase === 'Failed') ? s : undefined;

describe('automated rollouts analysed by Prometheus', { skip: skipWithoutPrometheus() }, () => {
  test('a healthy canary judged by Prometheus is promoted', async (t) => {
    const run = await scenario({ prometheus: 'real' });
    t.after(run.cleanup);
    const s = await run.api.waitFor(() => ended(run.status()), {
      timeoutMs: 60_000,
      message: 'the rollout did not end',
    });
    assert.equal(s.phase, 'Promoted', s.message);
    assert.equal(s.stepWeight, 100);
    assert.deepEqual(
      s.history?.map((h) => h.weight),
      [0, 50, 80, 100],
    );
    const a = s.lastAnalysis;
    assert.equal(a?.verdict, 'Pass', a?.message);
    assert.notEqual(a?.error, true);
    // Prometheus's figures: at least minRequests canary requests, no 5xx, and the stable backend seen.
    assert.ok((a?.canaryRequests ?? 0) >= 30, `canary requests ${a?.canaryRequests}`);
    assert.ok((a?.stableRequests ?? 0) > 0, `stable requests ${a?.stableRequests}`);
    assert.equal(a?.canaryErrorRate, 0);
    assert.match(
      a?.message ?? '',
      /^canary error rate 0\.000 <= 0\.050; [\d.]+ canary, [\d.]+ stable requests$/,
    );
    assert.equal(run.canary().failures, 0);
    // Never failed, never an error: every interval Prometheus judged was a Pass or too early to tell.
    for (const seen of run.seen) {
      assert.notEqual(seen.lastAnalysis?.error, true, seen.lastAnalysis?.message);
      assert.notEqual(seen.lastAnalysis?.verdict, 'Fail', seen.lastAnalysis?.message);
    }
    // The figures came from the proxy's metrics in Prometheus.
    const series = await run.prom!.query('modelgate_requests_total{route="ml/chat",backend="canary"}');
    assert.ok(series.length > 0, 'prometheus has the canary request counter');
    await run.api.waitFor(() => run.status()?.servedWeight === 100 || undefined, { timeoutMs: 30_000 });
    await run.api.waitFor(() => run.reasons().includes('Promoted') || undefined, {
      timeoutMs: 30_000,
      message: `no Promoted event: ${run.reasons().join(', ')}`,
    });
    assert.ok(run.reasons().includes('AnalysisPassed'), `events: ${run.reasons().join(', ')}`);
  });

  test('a canary answering 500 to one request in 5 is rolled back on Prometheus figures', async (t) => {
    const run = await scenario({ canaryFails: (n) => n % 5 === 0, prometheus: 'real' });
    t.after(run.cleanup);
    const s = await run.api.waitFor(() => ended(run.status()), {
      timeoutMs: 60_000,
      message: 'the rollout did not end',
    });
    assert.equal(s.phase, 'RolledBack', s.message);
    assert.equal(s.stepWeight, 0);
    assert.equal(s.currentStep, 1, 'rolled back during the analysis step');
    assert.deepEqual(
      s.history?.map((h) => h.weight),
      [0, 50, 0],
    );
    const a = s.lastAnalysis;
    assert.equal(a?.verdict, 'Fail', a?.message);
    assert.notEqual(a?.error, true);
    // 20 % of the canary's answers are 500s; increase() extrapolates counts, but the ratio of two
    // counters from the same scrapes stays close to the truth.
    const rate = a?.canaryErrorRate ?? 0;
    assert.ok(rate > 0.12 && rate < 0.3, `canary error rate ${rate} (20 % expected)`);
    assert.ok((a?.canaryRequests ?? 0) >= 30, `canary requests ${a?.canaryRequests}`);
    assert.match(s.message ?? '', /^rolled back: canary error rate 0\.\d{3} > 0\.050; /);
    assert.ok(run.canary().failures > 0);
    for (const seen of run.seen) {
      assert.notEqual(seen.lastAnalysis?.verdict, 'Pass', 'a failing canary never passes');
      assert.ok((seen.stepWeight ?? 0) <= 50, `weight ${seen.stepWeight}: never past the analysis`);
    }
    await run.api.waitFor(() => run.status()?.servedWeight === 0 || undefined, { timeoutMs: 30_000 });
    const warning = await run.api.waitFor(() => run.event('RolledBack'), {
      timeoutMs: 30_000,
      message: `no RolledBack event: ${run.reasons().join(', ')}`,
    });
    assert.equal(warning.type, 'Warning');
    assert.match(warning.message ?? '', /canary error rate 0\.\d{3} > 0\.050/);
  });

  test('a canary failing a single request is rolled back when no 5xx is tolerated', async (t) => {
    // One 500 among thousands of requests. Prometheus counts it only because the proxy exported
    // the canary's 5xx series at 0 before it (runtime-table.ts, bindRequestCell): increase() cannot
    // count a series' first sample, so a 5xx series born with that 500 would show no increase and
    // the canary would be promoted.
    let armed = false;
    const run = await scenario({
      canaryFails: () => {
        if (!armed) return false;
        armed = false;
        return true;
      },
      prometheus: 'real',
      maxErrorRate: 0,
      // Two intervals to pass: wherever the 500 falls, an interval that must pass contains it.
      intervals: 2,
    });
    t.after(run.cleanup);
    // The canary is served and scraped, its 5xx series already there at 0…
    await waitUntil('the canary 2xx and 5xx series in prometheus', async () => {
      const series = await run.prom!.query('modelgate_requests_total{route="ml/chat",backend="canary"}');
      const of = (c: string) => series.find((x) => x.metric.code_class === c)?.value[1];
      return Number(of('2xx') ?? 0) > 0 && of('5xx') === '0' ? true : undefined;
    });
    // …then one request fails.
    armed = true;
    await waitUntil('the one failure', async () => (run.canary().failures === 1 ? true : undefined));
    const s = await run.api.waitFor(() => ended(run.status()), {
      timeoutMs: 60_000,
      message: 'the rollout did not end',
    });
    assert.equal(s.phase, 'RolledBack', s.message);
    assert.equal(s.stepWeight, 0);
    assert.equal(s.currentStep, 1, 'rolled back during the analysis step');
    assert.equal(run.canary().failures, 1);
    const a = s.lastAnalysis;
    assert.equal(a?.verdict, 'Fail', a?.message);
    // About one error counted (increase() extrapolates a little towards the window's edges).
    const errors = (a?.canaryErrorRate ?? 0) * (a?.canaryRequests ?? 0);
    assert.ok(errors > 0.5 && errors < 2, `${errors} canary errors counted, 1 expected`);
    assert.match(s.message ?? '', /^rolled back: canary error rate 0\.\d+ > 0\.0+; /);
    for (const seen of run.seen) {
      assert.notEqual(seen.phase, 'Promoted');
      assert.ok((seen.stepWeight ?? 0) <= 50, `weight ${seen.stepWeight}: never past the analysis`);
    }
  });

  test('Prometheus unreachable: errors hold the weight, never pass, then the rollout fails', async (t) => {
    // One error tolerated: the first interval holds at 50, the second ends the rollout.
    const run = await scenario({ prometheus: 'unreachable', failureLimit: 1 });
    t.after(run.cleanup);
    const unavailable = /^Prometheus at http:\/\/127\.0\.0\.1:\d+: fetch failed/;
    const first = await run.api.waitFor(
      () => run.seen.find((s) => (s.analysisRuns?.errors ?? 0) >= 1 && s.lastAnalysis !== undefined),
      { timeoutMs: 60_000, message: 'no analysis error recorded' },
    );
    // Tolerated: the rollout stays in its analysis step at its weight.
    assert.equal(first.analysisRuns?.errors, 1);
    assert.equal(first.phase, 'Progressing', first.message);
    assert.equal(first.stepWeight, 50);
    assert.equal(first.currentStep, 1);
    assert.equal(first.lastAnalysis?.error, true);
    assert.equal(first.lastAnalysis?.verdict, 'Inconclusive');
    assert.match(first.lastAnalysis?.message ?? '', unavailable);
    assert.match(first.message ?? '', /provider unavailable 1 in a row/);

    const s = await run.api.waitFor(() => ended(run.status()), {
      timeoutMs: 60_000,
      message: 'the rollout did not end',
    });
    // errors (2) > failureLimit (1): phase Failed at weight 0, not RolledBack and not Promoted.
    assert.equal(s.phase, 'Failed', s.message);
    assert.equal(s.stepWeight, 0);
    assert.equal(s.currentStep, 1, 'never advanced past the analysis');
    assert.equal(s.analysisRuns?.errors, 2);
    assert.equal(s.analysisRuns?.passed, 0);
    assert.equal(s.lastAnalysis?.error, true);
    assert.match(s.lastAnalysis?.message ?? '', unavailable);
    assert.match(s.message ?? '', /^failed: analysis unavailable \(2 intervals in a row\): Prometheus at /);
    assert.deepEqual(
      s.history?.map((h) => h.weight),
      [0, 50, 0],
    );
    for (const seen of run.seen) {
      assert.notEqual(seen.lastAnalysis?.verdict, 'Pass', 'an unanswered analysis never passes');
      assert.ok((seen.stepWeight ?? 0) <= 50, `weight ${seen.stepWeight}: never past the analysis`);
      assert.ok((seen.currentStep ?? 0) <= 1, `step ${seen.currentStep}: never past the analysis`);
    }
    await run.api.waitFor(() => run.status()?.servedWeight === 0 || undefined, { timeoutMs: 30_000 });
    const failed = await run.api.waitFor(() => run.event('Failed'), {
      timeoutMs: 30_000,
      message: `no Failed event: ${run.reasons().join(', ')}`,
    });
    assert.equal(failed.type, 'Warning');
    assert.equal(run.event('AnalysisUnavailable')?.type, 'Warning');
    assert.ok(!run.reasons().includes('AnalysisPassed'), `events: ${run.reasons().join(', ')}`);
  });
});
