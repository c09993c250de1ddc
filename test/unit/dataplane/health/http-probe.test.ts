import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { test } from 'node:test';
import {
  ActiveHealthChecker,
  type HealthTarget,
  httpProbe,
  type ProbeResult,
} from '../../../../src/dataplane/health/active-checker.ts';
import { FakeTime } from './fake-time.ts';

async function listen(server: Server): Promise<string> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function stop(server: Server): Promise<void> {
  server.closeAllConnections();
  server.close();
  await once(server, 'close');
}

test('the default probe against real servers: 2xx passes; 503, 3xx, refused and silence fail', async (t) => {
  const seen: { method: string | undefined; url: string | undefined; headers: IncomingHttpHeaders }[] = [];
  const ok = createServer((req, res) => {
    seen.push({ method: req.method, url: req.url, headers: req.headers });
    res.end('ok');
  });
  const unavailable = createServer((_req, res) => {
    res.statusCode = 503;
    res.end('loading model');
  });
  const redirect = createServer((_req, res) => {
    res.writeHead(302, { location: '/elsewhere' });
    res.end();
  });
  let silentSocket: Socket | undefined;
  const silent = createServer((req) => {
    silentSocket = req.socket; // accepts, reads the request, never answers
  });
  const closed = createServer();
  const origins = {
    ok: await listen(ok),
    unavailable: await listen(unavailable),
    redirect: await listen(redirect),
    silent: await listen(silent),
    refused: await listen(closed),
  };
  await stop(closed); // its port now refuses connections
  t.after(() => Promise.all([ok, unavailable, redirect, silent].map(stop)));

  const time = new FakeTime();
  const results = new Map<string, ProbeResult>();
  let wake = (): void => {};
  const changes: [string, boolean][] = [];
  const checker = new ActiveHealthChecker({
    onChange: (origin, healthy) => changes.push([origin, healthy]),
    onProbe: (origin, _path, result) => {
      results.set(origin, result);
      wake();
    },
    timers: time.timers,
    random: () => 0, // every first probe is due at once
  });
  t.after(() => checker.close());
  const target = (origin: string): HealthTarget => ({
    origin,
    path: '/healthz?deep=1',
    intervalMs: 10_000,
    timeoutMs: 5_000, // fake time: only fires when the test fires it
    unhealthyThreshold: 1,
    healthyThreshold: 1,
  });
  checker.sync(Object.values(origins).map(target));
  for (let i = 0; i < 5; i++) time.next(); // start the five probes
  while (results.size < 4) await new Promise<void>((resolve) => (wake = resolve));
  assert.equal(results.has(origins.silent), false, 'the silent server has not answered');
  assert.ok(silentSocket, 'the silent server got the request');

  // The earliest timer is now the silent probe's deadline (the others wait a whole interval).
  assert.deepEqual(time.delays(), [5_000, 9_000, 9_000, 9_000, 9_000]);
  const socketClosed = once(silentSocket!, 'close');
  time.next();
  await checker.settle();
  await socketClosed; // the aborted probe let go of its connection

  assert.deepEqual(Object.fromEntries(Object.entries(origins).map(([k, o]) => [k, results.get(o)])), {
    ok: 'pass',
    unavailable: 'fail',
    redirect: 'fail',
    silent: 'timeout',
    refused: 'fail',
  });
  assert.deepEqual(
    changes
      .map(([o, h]) => [Object.keys(origins).find((k) => origins[k as keyof typeof origins] === o), h])
      .sort(),
    [
      ['redirect', false],
      ['refused', false],
      ['silent', false],
      ['unavailable', false],
    ],
  );
  assert.equal(checker.isHealthy(origins.ok), true);
  assert.deepEqual(seen, [
    {
      method: 'GET',
      url: '/healthz?deep=1',
      headers: {
        connection: 'close', // no keep-alive: each probe is a fresh connection
        'user-agent': 'modelgate-health-check',
        accept: '*/*',
        host: origins.ok.slice('http://'.length),
      },
    },
  ]);
});

test('httpProbe on its own: resolves false for an unparsable origin and when aborted', async () => {
  assert.equal(await httpProbe('not a url', '/health', 1000, new AbortController().signal), false);
  const server = createServer(() => {});
  const origin = await listen(server);
  try {
    const controller = new AbortController();
    const pending = httpProbe(origin, '/health', 60_000, controller.signal);
    await once(server, 'request');
    controller.abort();
    assert.equal(await pending, false);
  } finally {
    await stop(server);
  }
});
