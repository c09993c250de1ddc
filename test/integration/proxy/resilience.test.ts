/**
 * Retries, timeouts, client aborts and fallbacks, with lock-step upstreams: the upstream holds or
 * releases requests when the test says so, so nothing depends on timing.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { Agent, request } from 'undici';
import { send } from '../../support/client.ts';
import { route, startGateway } from '../../support/gateway.ts';
import { startUpstream } from '../../support/upstream.ts';

/** A port with nothing listening: bind, note the port, close. */
async function deadPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

test('a connect failure is retried on another endpoint', async (t) => {
  const up = await startUpstream('up');
  const dead = await deadPort();
  const gw = await startGateway(
    route(
      'r',
      `{rules: [{loadBalancing: {algorithm: RoundRobin}, backends: [{name: b, urls: ["http://127.0.0.1:${dead}", "${up.url}"]}]}]}`,
    ),
  );
  t.after(async () => {
    await gw.close();
    await up.close();
  });
  for (let i = 0; i < 10; i++) assert.equal((await send(gw.url, { path: '/' })).status, 200);
  assert.equal(up.received.length, 10);
  const metrics = await gw.proxy.metrics.registry.metrics();
  assert.match(metrics, /modelgate_upstream_retries_total\{route="test\/r",reason="connect-failure"\} [1-9]/);
});

test('a listed status is retried elsewhere; an unlisted one is passed through', async (t) => {
  const sick = await startUpstream('sick', (_req, res) => {
    res.writeHead(503, { 'x-upstream': 'sick' });
    res.end('busy');
  });
  const well = await startUpstream('well');
  const gw = await startGateway(
    route(
      'r',
      `{rules: [
        {name: retrying, matches: [{path: {value: /retry}}], retries: {attempts: 2, retryOn: ["503"]}, loadBalancing: {algorithm: RoundRobin},
         backends: [{name: b, urls: ["${sick.url}", "${well.url}"]}]},
        {name: plain, matches: [{path: {value: /plain}}], retries: {attempts: 2, retryOn: [connect-failure]},
         backends: [{name: b, urls: ["${sick.url}"]}]}]}`,
    ),
  );
  t.after(async () => {
    await gw.close();
    await Promise.all([sick.close(), well.close()]);
  });
  for (let i = 0; i < 6; i++) {
    const r = await send(gw.url, { path: '/retry', body: '{"prompt":"same body twice"}' });
    assert.equal(r.status, 200);
  }
  assert.ok(sick.received.length > 0, 'some first attempts hit the sick endpoint');
  assert.equal(well.received.length, 6);
  for (const r of sick.received) assert.equal(r.bodyBytes, 28, 'the replayed body is complete');
  const plain = await send(gw.url, { path: '/plain' });
  assert.equal(plain.status, 503);
  assert.equal(plain.text, 'busy', "the upstream's own answer reaches the client");
});

test('nothing is retried once the response has started', async (t) => {
  let hits = 0;
  const flaky = await startUpstream('flaky', (_req, res) => {
    hits++;
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('partial');
    setImmediate(() => res.socket?.destroy());
  });
  const gw = await startGateway(
    route(
      'r',
      `{rules: [{retries: {attempts: 3, retryOn: [reset, 5xx]}, backends: [{name: b, urls: ["${flaky.url}"]}]}]}`,
    ),
  );
  t.after(async () => {
    await gw.close();
    await flaky.close();
  });
  await assert.rejects(send(gw.url, { path: '/' }), 'the client sees the cut, not a made-up success');
  assert.equal(hits, 1);
});

test('retries stay within the budget while the backend fails', async (t) => {
  const N = 20;
  const held: (() => void)[] = [];
  let arrivals = 0;
  let onArrival: (() => void) | undefined;
  const failing = await startUpstream('failing', (_req, res) => {
    arrivals++;
    held.push(() => {
      res.writeHead(503);
      res.end();
    });
    onArrival?.();
  });
  const gw = await startGateway(
    route(
      'r',
      `{rules: [{retries: {attempts: 3, retryOn: ["503"], budgetPercent: 20}, backends: [{name: b, urls: ["${failing.url}"]}]}]}`,
    ),
  );
  const agent = new Agent({ connections: N });
  t.after(async () => {
    await agent.close();
    await gw.close();
    await failing.close();
  });
  const waitArrivals = (n: number) =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (arrivals >= n) resolve();
      };
      onArrival = check;
      check();
    });
  const replies = Array.from({ length: N }, () =>
    request(`${gw.url}/`, { dispatcher: agent }).then((r) => r.statusCode),
  );
  await waitArrivals(N);
  // Fail every first attempt at once; retries that the budget allows arrive and are held.
  const firsts = held.splice(0, N);
  for (const f of firsts) f();
  // Requests refused a retry get the 503 now; the retried ones stay in flight (held). Every
  // request is accounted for once replies + retries in flight = N.
  const passedThrough: number[] = [];
  await new Promise<void>((resolve) => {
    const check = () => {
      if (passedThrough.length + (arrivals - N) >= N) resolve();
    };
    onArrival = check;
    for (const p of replies) {
      p.then((s) => {
        passedThrough.push(s);
        check();
      });
    }
  });
  const retried = arrivals - N;
  assert.ok(retried >= 1, 'some requests were retried');
  assert.ok(retried <= 4, `retries in flight stay within max(3, 20% of live requests): got ${retried}`);
  assert.ok(passedThrough.every((s) => s === 503));
  const metrics = await gw.proxy.metrics.registry.metrics();
  assert.match(metrics, /modelgate_retry_budget_exhausted_total\{route="test\/r"\} [1-9]/);
  // Release everything (including any later retries) so the test ends cleanly.
  onArrival = () => {
    for (const f of held.splice(0)) f();
  };
  for (const f of held.splice(0)) f();
  await Promise.all(replies);
});

test('a silent upstream times out with 504, counted as a first-byte timeout', async (t) => {
  const silent = await startUpstream('silent', () => {});
  const gw = await startGateway(
    route(
      'r',
      `{rules: [{timeouts: {firstByte: 150ms}, retries: {attempts: 0}, backends: [{name: b, urls: ["${silent.url}"]}]}]}`,
    ),
  );
  t.after(async () => {
    await gw.close();
    await silent.close();
  });
  const r = await send(gw.url, { path: '/' });
  assert.equal(r.status, 504);
  assert.equal(r.json<{ error: { code: string } }>().error.code, 'MG_UPSTREAM_TIMEOUT');
  const metrics = await gw.proxy.metrics.registry.metrics();
  assert.match(metrics, /modelgate_upstream_timeouts_total\{route="test\/r",kind="first_byte"\} 1/);
});

for (const phase of ['before the response', 'mid-stream'] as const) {
  test(`a client that disconnects ${phase} cancels the upstream request`, async (t) => {
    let upstreamClosed: () => void = () => {};
    const closed = new Promise<void>((resolve) => {
      upstreamClosed = resolve;
    });
    let arrived: () => void = () => {};
    const arrival = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    const gpu = await startUpstream('gpu', (req, res) => {
      res.on('close', () => upstreamClosed());
      req.socket.on('close', () => upstreamClosed());
      if (phase === 'mid-stream') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('data: first token\n\n');
      }
      arrived();
    });
    const gw = await startGateway(route('r', `{rules: [{backends: [{name: b, urls: ["${gpu.url}"]}]}]}`));
    t.after(async () => {
      await gw.close();
      await gpu.close();
    });
    const controller = new AbortController();
    const pending = request(`${gw.url}/v1/chat`, { method: 'POST', body: '{}', signal: controller.signal });
    await arrival;
    if (phase === 'mid-stream') {
      const r = await pending;
      for await (const chunk of r.body) {
        assert.match(String(chunk), /first token/);
        break;
      }
    }
    controller.abort();
    await pending.then(
      (r) => r.body.text().catch(() => ''),
      () => '',
    );
    await closed; // the upstream saw its connection close: the GPU is free
    const metrics = await gw.proxy.metrics.registry.metrics();
    assert.match(metrics, /modelgate_client_aborts_total\{route="test\/r"\} 1/);
  });
}

test('a fallback backend serves when the chosen backend has no endpoint', async (t) => {
  const small = await startUpstream('small');
  const gw = await startGateway(
    route(
      'r',
      `{rules: [{fallbackBackend: small, backends: [{name: big, service: {name: not-deployed-yet, port: 8000}}, {name: small, weight: 0, urls: ["${small.url}"]}]}]}`,
    ),
  );
  t.after(async () => {
    await gw.close();
    await small.close();
  });
  const r = await send(gw.url, { path: '/' });
  assert.equal(r.status, 200);
  assert.equal(r.headers['x-upstream'], 'small');
});
