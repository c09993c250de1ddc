/**
 * Canary traffic control end to end: real upstreams named stable/canary (blue/green), tables
 * swapped as a rollout would, a seeded random source. Split shares are checked against the
 * expected weight with a tolerance; sticky assignments are checked exactly (the hash is seeded by
 * the rollout, so they are deterministic).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { send } from '../../support/client.ts';
import { startGateway, type TestGateway } from '../../support/gateway.ts';
import { startUpstream, type TestUpstream } from '../../support/upstream.ts';

function manifests(stable: string, canary: string, rollout: string): string {
  return `apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: { name: chat, namespace: ml }
spec:
  hostnames: [chat.test, preview.chat.test]
  rules:
    - backends:
        - { name: stable, urls: ["${stable}"] }
        - { name: canary, urls: ["${canary}"] }
---
apiVersion: modelgate.dev/v1alpha1
kind: CanaryRollout
metadata: { name: chat-v2, namespace: ml }
spec:
  routeRef: { name: chat }
  stableBackend: stable
  canaryBackend: canary
${rollout}
`;
}

const who = async (gw: TestGateway, headers: Record<string, string> = {}, host = 'chat.test') =>
  (await send(gw.url, { path: '/v1/chat', headers: { host, ...headers } })).json<{ upstream: string }>()
    .upstream;

describe('canary traffic', () => {
  let stable: TestUpstream;
  let canary: TestUpstream;
  let gw: TestGateway;
  const yaml = (rollout: string) => manifests(stable.url, canary.url, rollout);
  before(async () => {
    stable = await startUpstream('stable');
    canary = await startUpstream('canary');
    gw = await startGateway(yaml('  weight: 10'));
  });
  after(async () => {
    await gw.close();
    await stable.close();
    await canary.close();
  });

  test('without stickiness the canary gets its weight (seeded split)', async () => {
    let toCanary = 0;
    for (let i = 0; i < 400; i++) if ((await who(gw)) === 'canary') toCanary++;
    assert.ok(toCanary > 400 * 0.05 && toCanary < 400 * 0.15, `canary share ${toCanary}/400 at weight 10`);
  });

  test('sticky keys only move stable→canary as the weight rises, and the share follows the weight', async () => {
    const users = Array.from({ length: 300 }, (_, i) => `user-${i}`);
    const assignment = async () => {
      const out = new Map<string, string>();
      for (const u of users) out.set(u, await who(gw, { 'x-user': u }));
      return out;
    };
    const shares: number[] = [];
    let previous: Map<string, string> | undefined;
    for (const weight of [5, 20, 50, 90]) {
      gw.apply(yaml(`  weight: ${weight}\n  stickiness: { header: x-user }`));
      const now = await assignment();
      // The same key twice at one weight: the same answer.
      assert.equal(await who(gw, { 'x-user': users[7]! }), now.get(users[7]!));
      if (previous) {
        for (const u of users) {
          if (previous.get(u) === 'canary') assert.equal(now.get(u), 'canary', `${u} moved back to stable`);
        }
      }
      shares.push([...now.values()].filter((v) => v === 'canary').length / users.length);
      previous = now;
    }
    [5, 20, 50, 90].forEach((w, i) => {
      assert.ok(Math.abs(shares[i]! - w / 100) < 0.08, `share ${shares[i]} at weight ${w}`);
    });
  });

  test('override header: testers choose always or never, whatever the weight', async () => {
    gw.apply(yaml('  weight: 50\n  override: { header: { name: x-canary, always: "yes", never: "no" } }'));
    for (let i = 0; i < 20; i++) {
      assert.equal(await who(gw, { 'x-canary': 'yes' }), 'canary');
      assert.equal(await who(gw, { 'x-canary': 'no' }), 'stable');
    }
  });

  test('counters of governed backends are kept for the controller', () => {
    const report = gw.proxy.rolloutStats.report('proxy-1')!;
    const byBackend = Object.fromEntries(report.backends.map((b) => [b.backend, b]));
    assert.equal(
      report.backends.every((b) => b.rollout === 'ml/chat-v2'),
      true,
    );
    assert.ok(byBackend.stable!.requests > 0 && byBackend.canary!.requests > 0);
    assert.equal(byBackend.canary!.errors, 0);
    const counted = byBackend.stable!.latency.counts.reduce((a, b) => a + b, 0);
    assert.equal(counted, byBackend.stable!.requests);
  });
});

describe('rollout counters', () => {
  test('count 4xx apart from 5xx, and the model tokens answers report (or stream) unchanged to the client', async (t) => {
    const stable = await startUpstream('stable');
    const sse = (withUsage: boolean) =>
      [
        ...['Hel', 'lo', '!'].map((c) => `data: {"choices":[{"delta":{"content":"${c}"}}]}\n\n`),
        withUsage
          ? 'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":8,"total_tokens":13}}\n\n'
          : '',
        'data: [DONE]\n\n',
      ].join('');
    const bodies: Record<string, { status: number; type: string; body: string }> = {
      '/v1/json': {
        status: 200,
        type: 'application/json',
        body: '{"id":"x","usage":{"prompt_tokens":40,"completion_tokens":2,"total_tokens":42}}',
      },
      '/v1/sse': { status: 200, type: 'text/event-stream', body: sse(true) },
      '/v1/sse-no-usage': { status: 200, type: 'text/event-stream', body: sse(false) },
      '/v1/bad': { status: 400, type: 'application/json', body: '{"error":"bad"}' },
      '/v1/broken': { status: 503, type: 'application/json', body: '{"error":"down"}' },
    };
    const canary = await startUpstream('canary', (req, res) => {
      const b = bodies[req.url ?? '']!;
      res.writeHead(b.status, { 'content-type': b.type });
      res.end(b.body);
    });
    const gw = await startGateway(
      manifests(
        stable.url,
        canary.url,
        '  weight: 0\n  override: { header: { name: x-canary, always: "yes" } }',
      ),
    );
    t.after(async () => {
      await gw.close();
      await stable.close();
      await canary.close();
    });
    for (const path of ['/v1/json', '/v1/json', '/v1/sse', '/v1/sse-no-usage', '/v1/bad', '/v1/broken']) {
      const r = await send(gw.url, { path, headers: { host: 'chat.test', 'x-canary': 'yes' } });
      // The client gets the answer byte for byte.
      assert.equal(r.body.toString(), bodies[path]!.body, path);
    }
    const c = gw.proxy.rolloutStats.report('p')!.backends.find((b) => b.backend === 'canary')!;
    assert.equal(c.requests, 6);
    assert.equal(c.errors, 1);
    assert.equal(c.clientErrors, 1);
    // 42 + 42 reported, 13 reported by the stream, 3 pieces streamed without a usage.
    assert.equal(c.tokens, 100);
  });
});

describe('blue-green', () => {
  test('the preview host reaches green only; the switch is atomic under load; switch-back is instant', async (t) => {
    const blue = await startUpstream('blue');
    const green = await startUpstream('green');
    const yaml = (weight: number) => `apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: { name: chat, namespace: ml }
spec:
  hostnames: [chat.test, preview.chat.test]
  rules:
    - backends:
        - { name: blue, urls: ["${blue.url}"] }
        - { name: green, urls: ["${green.url}"] }
---
apiVersion: modelgate.dev/v1alpha1
kind: CanaryRollout
metadata: { name: chat-green, namespace: ml }
spec:
  routeRef: { name: chat }
  strategy: BlueGreen
  stableBackend: blue
  canaryBackend: green
  preview: { hostname: preview.chat.test }
  weight: ${weight}
`;
    const gw = await startGateway(yaml(0));
    t.after(async () => {
      await gw.close();
      await blue.close();
      await green.close();
    });
    for (let i = 0; i < 20; i++) {
      assert.equal(await who(gw), 'blue');
      assert.equal(await who(gw, {}, 'preview.chat.test'), 'green');
    }
    // Load while switching: 8 clients, 400 requests in all; the switch happens in the middle.
    const statuses: number[] = [];
    const seen: string[] = [];
    let sent = 0;
    let switched = false;
    const client = async () => {
      while (sent < 400) {
        sent++;
        if (sent === 200 && !switched) {
          switched = true;
          gw.apply(yaml(100));
        }
        const r = await send(gw.url, { path: '/v1/chat', headers: { host: 'chat.test' } });
        statuses.push(r.status);
        seen.push(r.json<{ upstream: string }>().upstream);
      }
    };
    await Promise.all(Array.from({ length: 8 }, client));
    assert.equal(statuses.length, 400);
    assert.ok(
      statuses.every((s) => s === 200),
      'no request failed during the switch',
    );
    const firstGreen = seen.indexOf('green');
    assert.ok(firstGreen > 0, 'blue served before the switch');
    assert.ok(
      seen.slice(firstGreen + 8).every((s) => s === 'green'),
      'after the switch (and the requests already in flight), everything goes to green',
    );
    gw.apply(yaml(0));
    for (let i = 0; i < 20; i++) assert.equal(await who(gw), 'blue');
  });
});

describe('mirroring', () => {
  test('copies reach the canary, answers are discarded, the client never waits, copies are bounded', async (t) => {
    const stable = await startUpstream('stable');
    const held: (() => void)[] = [];
    let copies = 0;
    let copiesWithBody = 0;
    const canary = await startUpstream('canary', (req, res, body) => {
      copies++;
      if (req.headers['x-modelgate-mirror'] === '1' && body.toString() === '{"prompt":"hi"}')
        copiesWithBody++;
      held.push(() => {
        res.writeHead(500);
        res.end('canary answer, never seen by a client');
      });
    });
    const gw = await startGateway(
      manifests(stable.url, canary.url, '  weight: 0\n  mirror: { percent: 100, maxInFlight: 2 }'),
    );
    t.after(async () => {
      for (const h of held) h();
      await gw.close();
      await stable.close();
      await canary.close();
    });
    for (let i = 0; i < 5; i++) {
      const r = await send(gw.url, {
        path: '/v1/chat',
        headers: { host: 'chat.test', 'content-type': 'application/json' },
        body: '{"prompt":"hi"}',
      });
      assert.equal(r.status, 200, 'the client gets stable while the canary holds its copies');
      assert.equal(r.json<{ upstream: string }>().upstream, 'stable');
    }
    // Wait for the two copies in flight to arrive (bounded).
    for (let i = 0; i < 2000 && copies < 2; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(copies, 2, 'at most maxInFlight copies are in flight');
    assert.equal(copiesWithBody, 2, 'copies carry the body and the mirror header');
    const m = await gw.proxy.metrics.registry.metrics();
    assert.match(m, /modelgate_mirror_requests_total\{route="ml\/chat",outcome="sent"\} 2/);
    assert.match(m, /modelgate_mirror_requests_total\{route="ml\/chat",outcome="skipped"\} 3/);
    // Released copies count as canary answers (here 500s) for the analysis.
    for (const h of held.splice(0)) h();
    for (let i = 0; i < 2000; i++) {
      const c = gw.proxy.rolloutStats.report('p')?.backends.find((b) => b.backend === 'canary');
      if (c && c.requests === 2) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    const c = gw.proxy.rolloutStats.report('p')!.backends.find((b) => b.backend === 'canary')!;
    assert.equal(c.requests, 2);
    assert.equal(c.errors, 2);
    assert.equal(stable.received.length, 5);
  });
});
