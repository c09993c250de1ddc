/**
 * Endpoint health through the proxy: passive outlier ejection and active checks take an endpoint
 * out of service and bring it back. Tests wait on the proxy's own health events, never on time.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { send } from '../../support/client.ts';
import { route, startGateway, type TestGateway } from '../../support/gateway.ts';
import { startUpstream } from '../../support/upstream.ts';

/** Resolves when the gateway logs an availability change for `origin`. */
function healthEvent(gw: TestGateway, origin: string, available: boolean): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      if (gw.logs.some((l) => l.endpoint === origin && l.available === available)) resolve();
      else setImmediate(check);
    };
    check();
  });
}

test('consecutive errors eject an endpoint, which comes back after the ejection time', async (t) => {
  let sick = true;
  const flaky = await startUpstream('flaky', (_req, res) => {
    res.writeHead(sick ? 500 : 200, { 'x-upstream': 'flaky' });
    res.end();
  });
  const steady = await startUpstream('steady');
  const gw = await startGateway(
    route(
      'r',
      `{rules: [{loadBalancing: {algorithm: RoundRobin}, retries: {attempts: 0},
        outlierDetection: {consecutiveErrors: 3, baseEjectionTime: 300ms, maxEjectionPercent: 50},
        backends: [{name: b, urls: ["${flaky.url}", "${steady.url}"]}]}]}`,
    ),
    { seed: 2 },
  );
  t.after(async () => {
    await gw.close();
    await Promise.all([flaky.close(), steady.close()]);
  });
  const ejected = healthEvent(gw, flaky.url, false);
  for (let i = 0; i < 30; i++) await send(gw.url, { path: '/' });
  await ejected;
  assert.equal(flaky.received.length, 3, 'the third consecutive error ejects it; it then gets no traffic');
  const metrics = await gw.proxy.metrics.registry.metrics();
  assert.match(metrics, /modelgate_outlier_ejections_total\{reason="error"\} 1/);
  assert.match(metrics, /modelgate_endpoints_unavailable 1/);
  sick = false;
  await healthEvent(gw, flaky.url, true);
  for (let i = 0; i < 10; i++) await send(gw.url, { path: '/' });
  assert.ok(flaky.received.length > 3, 'back in service after the ejection time');
});

test('failing active checks take an endpoint out; passing ones bring it back', async (t) => {
  let healthy = true;
  const a = await startUpstream('a', (req, res) => {
    if (req.url === '/health') {
      res.writeHead(healthy ? 200 : 503);
      res.end();
      return;
    }
    res.writeHead(200, { 'x-upstream': 'a' });
    res.end();
  });
  const b = await startUpstream('b', (req, res) => {
    res.writeHead(200, { 'x-upstream': 'b' });
    res.end();
  });
  const gw = await startGateway(
    route(
      'r',
      `{rules: [{loadBalancing: {algorithm: RoundRobin},
        healthCheck: {path: /health, interval: 50ms, timeout: 1s, unhealthyThreshold: 2, healthyThreshold: 1},
        backends: [{name: b, urls: ["${a.url}", "${b.url}"]}]}]}`,
    ),
  );
  t.after(async () => {
    await gw.close();
    await Promise.all([a.close(), b.close()]);
  });
  healthy = false;
  await healthEvent(gw, a.url, false);
  const before = a.received.filter((r) => r.url !== '/health').length;
  for (let i = 0; i < 10; i++) assert.equal((await send(gw.url, { path: '/x' })).headers['x-upstream'], 'b');
  assert.equal(a.received.filter((r) => r.url !== '/health').length, before);
  healthy = true;
  await healthEvent(gw, a.url, true);
  const served = new Set<string>();
  for (let i = 0; i < 10; i++) served.add(String((await send(gw.url, { path: '/x' })).headers['x-upstream']));
  assert.deepEqual([...served].sort(), ['a', 'b']);
});

test('with every endpoint out of service the answer is 503 MG_NO_HEALTHY_UPSTREAM', async (t) => {
  const down = await startUpstream('down', (_req, res) => {
    res.writeHead(503);
    res.end();
  });
  const gw = await startGateway(
    route(
      'r',
      `{rules: [{healthCheck: {path: /health, interval: 50ms, unhealthyThreshold: 1}, backends: [{name: b, urls: ["${down.url}"]}]}]}`,
    ),
  );
  t.after(async () => {
    await gw.close();
    await down.close();
  });
  await healthEvent(gw, down.url, false);
  const r = await send(gw.url, { path: '/' });
  assert.equal(r.status, 503);
  assert.equal(r.json<{ error: { code: string } }>().error.code, 'MG_NO_HEALTHY_UPSTREAM');
});
