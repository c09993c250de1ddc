/**
 * The chart's dashboard and alert rules name only metrics a running gateway exports: a real
 * controller (fake API server) and a proxy fed by its push stream, with a route that has a rate
 * limit, a cache and a canary rollout, and one whose upstream answers 500; after a cache hit, a 429
 * and a 5xx, both /metrics are scraped and every family the dashboard and the rules use must have
 * a `# TYPE` line in one of them.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { createLogger } from '../../../src/observability/logger.ts';
import { startController } from '../../../src/roles/controller.ts';
import { startProxyRole } from '../../../src/roles/proxy.ts';
import { send } from '../../support/client.ts';
import { kubeConfigFor, startFakeApiServer } from '../../support/fake-apiserver/index.ts';
import { startUpstream } from '../../support/upstream.ts';
import { monitoringMetricNames } from '../../unit/chart/monitoring-files.ts';

const quiet = () => createLogger({ destination: new Writable({ write: (_c, _e, cb) => cb() }) }).logger;

const manifests = (stable: string, canary: string, broken: string) => `
apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: { name: chat, namespace: ml }
spec:
  rules:
    - matches: [{ path: { value: /v1/chat } }]
      backends:
        - { name: stable, urls: ["${stable}"] }
        - { name: canary, urls: ["${canary}"], weight: 0 }
      cache: { shared: true }
---
apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: { name: broken, namespace: ml }
spec:
  rules:
    - matches: [{ path: { value: /v1/broken } }]
      backends: [{ name: b, urls: ["${broken}"] }]
---
apiVersion: modelgate.dev/v1alpha1
kind: RateLimitPolicy
metadata: { name: three, namespace: ml }
spec:
  targetRefs: [{ name: chat }]
  limits: [{ name: r, key: [{ type: Route }], algorithm: FixedWindow, amount: 3, period: 1h }]
---
apiVersion: modelgate.dev/v1alpha1
kind: CanaryRollout
metadata: { name: chat-v2, namespace: ml }
spec:
  routeRef: { name: chat }
  stableBackend: stable
  canaryBackend: canary
  weight: 0
`;

/** Calls `f` every 50 ms until it returns a value. */
async function poll<T>(
  f: () => Promise<T | undefined>,
  o: { timeoutMs: number; message: string },
): Promise<T> {
  const deadline = Date.now() + o.timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(o.message);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Family names of an exposition (`# TYPE name type`). */
const families = (text: string) => new Set([...text.matchAll(/^# TYPE (\S+) \S+$/gm)].map((m) => m[1]!));

test('every metric the dashboard and the alert rules use is exported by a running proxy or controller', async (t) => {
  const api = await startFakeApiServer();
  const stable = await startUpstream('stable');
  const canary = await startUpstream('canary');
  const broken = await startUpstream('broken', (_req, res) => {
    res.writeHead(500, { 'content-type': 'application/json' });
    res.end('{"error":"boom"}');
  });
  const stateDir = await mkdtemp(join(tmpdir(), 'modelgate-monitoring-'));
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
  t.after(async () => {
    await proxy.shutdown(1000);
    await controller.shutdown();
    await api.close();
    await stable.close();
    await canary.close();
    await broken.close();
    await rm(stateDir, { recursive: true, force: true });
  });
  for (const doc of parseAllDocuments(manifests(stable.url, canary.url, broken.url)))
    api.apply(doc.toJS() as never);

  const url = proxy.listener.url;
  // The table arrives through the push stream: wait until the broken route answers its 500.
  await poll(
    async () =>
      (await send(url, { path: '/v1/broken' }).catch(() => undefined))?.status === 500 ? true : undefined,
    { timeoutMs: 20_000, message: 'the proxy never served the routes' },
  );
  // Then the chat route (its first answer, a cache miss, is the first of the three the policy allows).
  const first = await poll(
    async () => {
      const r = await send(url, { path: '/v1/chat' }).catch(() => undefined);
      return r && r.status !== 503 ? r : undefined;
    },
    { timeoutMs: 20_000, message: 'the proxy never served the chat route' },
  );
  const statuses: number[] = [first.status];
  const cache: (string | undefined)[] = [first.headers['x-cache'] as string | undefined];
  for (let i = 0; i < 3; i++) {
    const r = await send(url, { path: '/v1/chat' });
    statuses.push(r.status);
    cache.push(r.headers['x-cache'] as string | undefined);
  }
  assert.deepEqual(statuses, [200, 200, 200, 429], 'three allowed, then limited');
  assert.equal(cache[1], 'HIT', `a cache hit: ${cache}`);

  const scrape = async (base: string) => {
    const r = await fetch(new URL('/metrics', base));
    assert.equal(r.status, 200);
    return r.text();
  };
  const proxyText = await scrape(proxy.adminUrl);
  const controllerText = await scrape(controller.adminUrl);
  const exported = new Set([...families(proxyText), ...families(controllerText)]);
  const used = monitoringMetricNames();
  assert.ok(used.length > 25, `${used.length} metrics used`);
  assert.deepEqual(
    used.filter((m) => !exported.has(m)),
    [],
    'metrics the dashboard or the rules use that neither process exports',
  );
  // The traffic shows: a 5xx, a 429 and a hit are counted.
  assert.match(
    proxyText,
    /modelgate_requests_total\{[^}]*route="ml\/broken"[^}]*code_class="5xx"[^}]*\} [1-9]/,
  );
  assert.match(proxyText, /modelgate_ratelimit_decisions_total\{[^}]*outcome="limited"[^}]*\} 1/);
  assert.match(proxyText, /modelgate_cache_requests_total\{[^}]*result="hit"[^}]*\} [1-9]/);
});
