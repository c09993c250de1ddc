/** Upstream keep-alive across table swaps, IPv6 listeners, and what access logs hold. */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { Agent, request } from 'undici';
import { GatewayProxy } from '../../../src/dataplane/proxy.ts';
import { listen } from '../../../src/dataplane/server.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { send } from '../../support/client.ts';
import { compileYaml, route, startGateway } from '../../support/gateway.ts';
import { startUpstream } from '../../support/upstream.ts';

test('upstream connections are kept alive and survive a swap that keeps the endpoint', async (t) => {
  const [up, other] = await Promise.all([startUpstream('up'), startUpstream('other')]);
  const gw = await startGateway(route('r', `{rules: [{backends: [{name: a, urls: ["${up.url}"]}]}]}`));
  t.after(async () => {
    await gw.close();
    await Promise.all([up.close(), other.close()]);
  });
  const pools = () => [
    ...(gw.proxy.pools as unknown as { pools: Map<string, { stats: { connected: number } }> }).pools.values(),
  ];
  for (let i = 0; i < 20; i++) await send(gw.url, { path: '/' });
  const before = pools()[0]!;
  // A weight-only change keeps the endpoint: its pool (and its warm connection) stays.
  gw.apply(
    route(
      'r',
      `{rules: [{backends: [{name: a, weight: 5, urls: ["${up.url}"]}, {name: b, weight: 0, urls: ["${other.url}"]}]}]}`,
    ),
  );
  for (let i = 0; i < 20; i++) await send(gw.url, { path: '/' });
  assert.ok(pools().includes(before), 'the same pool serves the endpoint after the swap');
  assert.equal(before.stats.connected, 1, 'sequential requests share one keep-alive connection');
  // Removing the endpoint closes its pool.
  gw.apply(route('r', `{rules: [{backends: [{name: b, urls: ["${other.url}"]}]}]}`));
  assert.ok(!pools().includes(before));
});

test('the listener serves IPv6 as well as IPv4', async (t) => {
  const up = await startUpstream('up');
  const { logger } = createLogger({ destination: new Writable({ write: (_c, _e, cb) => cb() }) });
  const proxy = new GatewayProxy({ logger });
  proxy.apply(compileYaml(route('r', `{rules: [{backends: [{name: a, urls: ["${up.url}"]}]}]}`)), 'v6');
  const listener = await listen(proxy, { address: '::1', port: 0 });
  t.after(async () => {
    await listener.close();
    await proxy.pools.destroy();
    await up.close();
  });
  assert.equal(listener.url, `http://[::1]:${listener.address.port}`);
  const r = await send(listener.url, { path: '/x' });
  assert.equal(r.status, 200);
  assert.equal(up.received.at(-1)!.headers['x-forwarded-for'], '::1');
});

test('access logs carry what operators need and never a credential', async (t) => {
  const up = await startUpstream('up');
  const gw = await startGateway(
    route(
      'chat',
      `{rules: [{matches: [{path: {value: /v1}, model: {value: m1}}], backends: [{name: main, urls: ["${up.url}"]}]}]}`,
    ) +
      route(
        'quiet',
        `{accessLog: {enabled: false}, rules: [{matches: [{path: {value: /quiet}}], backends: [{name: q, urls: ["${up.url}"]}]}]}`,
      ) +
      route(
        'sampled',
        `{accessLog: {sampleRate: 0}, rules: [{matches: [{path: {value: /sampled}}], backends: [{name: s, urls: ["${up.url}"]}]}]}`,
      ),
  );
  t.after(async () => {
    await gw.close();
    await up.close();
  });
  await send(gw.url, {
    path: '/v1/chat?api_key=sk-query-secret',
    body: '{"model":"m1"}',
    headers: { authorization: 'Bearer sk-header-secret', 'x-request-id': 'req-1' },
  });
  await send(gw.url, { path: '/quiet' });
  await send(gw.url, { path: '/sampled' });
  await send(gw.url, { path: '/nowhere' });
  await new Promise((resolve) => setImmediate(resolve));
  const access = gw.logs.filter((l) => l.msg === 'access');
  const line = access.find((l) => l.requestId === 'req-1')!;
  assert.equal(line.route, 'test/chat');
  assert.equal(line.backend, 'main');
  assert.equal(line.endpoint, up.url);
  assert.equal(line.model, 'm1');
  assert.equal(line.status, 200);
  assert.equal(line.path, '/v1/chat');
  assert.equal(line.bytesIn, 14);
  assert.ok(typeof line.durationMs === 'number' && typeof line.ttfbMs === 'number');
  assert.match(String(line.traceId), /^[0-9a-f]{32}$/);
  const all = JSON.stringify(gw.logs);
  assert.ok(
    !all.includes('sk-query-secret') && !all.includes('sk-header-secret'),
    'no credential in any log line',
  );
  assert.ok(!access.some((l) => l.route === 'test/quiet'), 'a route can switch its log off');
  assert.ok(!access.some((l) => l.route === 'test/sampled'), 'sample rate 0 logs no success');
  assert.ok(
    access.some((l) => l.code === 'MG_NO_ROUTE' && l.status === 404),
    'gateway errors are logged',
  );
});

test('a load of keep-alive clients is served over few upstream connections', async (t) => {
  const up = await startUpstream('up');
  const gw = await startGateway(route('r', `{rules: [{backends: [{name: a, urls: ["${up.url}"]}]}]}`));
  const agent = new Agent({ connections: 4 });
  t.after(async () => {
    await agent.close();
    await gw.close();
    await up.close();
  });
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      for (let i = 0; i < 50; i++) {
        const r = await request(`${gw.url}/`, { dispatcher: agent });
        await r.body.text();
      }
    }),
  );
  const pool = [
    ...(gw.proxy.pools as unknown as { pools: Map<string, { stats: { connected: number } }> }).pools.values(),
  ][0]!;
  assert.ok(pool.stats.connected <= 4, `connected ${pool.stats.connected}`);
  assert.equal(up.received.length, 200);
});
