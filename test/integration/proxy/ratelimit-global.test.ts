/**
 * Global rate limits end to end: two gateways (as two proxy replicas) counting in one real
 * redis-server, then Redis killed and restarted under a FailOpen and a FailClosed policy. Limits
 * have an hour-long period, so nothing refills during a test and counts are exact.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { send } from '../../support/client.ts';
import { startGateway, type TestGateway } from '../../support/gateway.ts';
import { skipWithoutRedis, startRedis, type TestRedis } from '../../support/redis-server.ts';
import { startUpstream, type TestUpstream } from '../../support/upstream.ts';

const skip = skipWithoutRedis();

function manifests(upstream: string, redisUrl: string, extra = ''): string {
  const route = (name: string, path: string) => `apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: { name: ${name}, namespace: ml }
spec:
  rules:
    - matches: [{ path: { value: ${path} } }]
      backends: [{ name: b, urls: ["${upstream}"] }]
---
`;
  const policy = (
    name: string,
    target: string,
    failureMode: string,
    amount: number,
  ) => `apiVersion: modelgate.dev/v1alpha1
kind: RateLimitPolicy
metadata: { name: ${name}, namespace: ml }
spec:
  targetRefs: [{ name: ${target} }]
  scope: Global
  failureMode: ${failureMode}
  redis: { secretRef: { name: redis }, timeout: 200ms }
  limits:
    - { name: per-client, key: [{ type: Header, name: x-client }], algorithm: SlidingWindow, amount: ${amount}, period: 1h }
    - { name: per-route, key: [{ type: Route }], algorithm: TokenBucket, amount: 1000000, period: 1h }
---
`;
  return `apiVersion: v1
kind: Secret
metadata: { name: redis, namespace: ml }
stringData: { url: "${redisUrl}" }
---
${route('open', '/open')}${route('closed', '/closed')}${policy('open', 'open', 'FailOpen', 40)}${policy('closed', 'closed', 'FailClosed', 40)}${extra}`;
}

describe('global limits', { skip }, () => {
  let redis: TestRedis;
  let up: TestUpstream;
  let a: TestGateway;
  let b: TestGateway;
  before(async () => {
    redis = await startRedis();
    up = await startUpstream('vllm');
    a = await startGateway(manifests(up.url, redis.url));
    b = await startGateway(manifests(up.url, redis.url));
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await a?.proxy.close();
    await b?.proxy.close();
    await up?.close();
    await redis?.close();
  });

  const call = (gw: TestGateway, path: string, client: string) =>
    send(gw.url, { path, headers: { 'x-client': client } });

  test('two proxies, concurrent clients: exactly the limit is admitted across both', async () => {
    const statuses: number[] = [];
    // 100 requests for one client, alternating proxies, 10 at a time.
    for (let batch = 0; batch < 10; batch++) {
      const replies = await Promise.all(
        Array.from({ length: 10 }, (_, i) => call(i % 2 === 0 ? a : b, '/open', 'shared')),
      );
      statuses.push(...replies.map((r) => r.status));
    }
    assert.equal(statuses.filter((s) => s === 200).length, 40);
    assert.equal(statuses.filter((s) => s === 429).length, 60);
    const r = await call(b, '/open', 'shared');
    assert.equal(r.status, 429);
    assert.equal(r.json<{ error: { code: string } }>().error.code, 'MG_RATE_LIMITED');
    assert.match(String(r.headers['ratelimit-policy']), /"per-client";q=40;w=3600/);
    assert.ok(Number(r.headers['retry-after']) > 0);
    // Another client is counted apart.
    assert.equal((await call(a, '/open', 'other')).status, 200);
    assert.match(
      await a.proxy.metrics.registry.metrics(),
      /modelgate_ratelimit_store_up\{policy="ml\/open"\} 1/,
    );
  });

  test('Redis down: FailOpen admits, FailClosed answers 503; both counted; recovery after restart', async () => {
    await redis.stop();
    const open = await call(a, '/open', 'during-outage');
    assert.equal(open.status, 200, 'FailOpen admits while Redis is down');
    assert.equal(open.headers.ratelimit, undefined, 'nothing was counted, so no RateLimit header');
    const closed = await call(a, '/closed', 'during-outage');
    assert.equal(closed.status, 503);
    assert.equal(closed.json<{ error: { code: string } }>().error.code, 'MG_RATE_LIMIT_UNAVAILABLE');
    const m = await a.proxy.metrics.registry.metrics();
    assert.match(
      m,
      /modelgate_ratelimit_decisions_total\{route="ml\/open",policy="ml\/open",outcome="fail_open"\} 1/,
    );
    assert.match(
      m,
      /modelgate_ratelimit_decisions_total\{route="ml\/closed",policy="ml\/closed",outcome="fail_closed"\} 1/,
    );
    assert.match(m, /modelgate_ratelimit_redis_errors_total\{policy="ml\/closed"\} \d+/);
    assert.ok(
      a.logs.some((l) => l.msg === 'global rate limit store unreachable; applying the policy failureMode'),
      'the outage is logged',
    );

    await redis.restart();
    // The client reconnects with backoff; requests keep getting answers meanwhile. Wait until
    // the FailClosed route admits again (bounded).
    let status = 0;
    for (let i = 0; i < 200 && status !== 200; i++) {
      status = (await call(a, '/closed', 'after-restart')).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(status, 200, 'counting resumes once Redis is back');
    const counted = await call(b, '/closed', 'after-restart');
    assert.equal(counted.status, 200);
    assert.match(String(counted.headers.ratelimit), /r=\d+/);
  });
});

describe('global limits on Redis Cluster', { skip }, () => {
  test('keys of one call share a slot: policies with mixed and shared key definitions work', async (t) => {
    const redis = await startRedis({ cluster: true });
    const up = await startUpstream('vllm');
    t.after(async () => {
      await up.close();
      await redis.close();
    });
    const clusterSecret = `apiVersion: v1
kind: Secret
metadata: { name: redis-cluster, namespace: ml }
stringData: { url: "${redis.url}", cluster: "true" }
---
apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: { name: shared, namespace: ml }
spec:
  rules:
    - matches: [{ path: { value: /shared } }]
      backends: [{ name: b, urls: ["${up.url}"] }]
---
apiVersion: modelgate.dev/v1alpha1
kind: RateLimitPolicy
metadata: { name: shared, namespace: ml }
spec:
  targetRefs: [{ name: shared }]
  scope: Global
  failureMode: FailClosed
  redis: { secretRef: { name: redis-cluster }, timeout: 500ms }
  limits:
    - { name: minute, key: [{ type: Header, name: x-client }], algorithm: FixedWindow, amount: 3, period: 1h }
    - { name: hour, key: [{ type: Header, name: x-client }], algorithm: TokenBucket, amount: 5, period: 1h }
---
`;
    const mixed = manifests(up.url, redis.url).replace(
      'stringData: { url: "',
      'stringData: { cluster: "true", url: "',
    );
    const gw = await startGateway(mixed + clusterSecret);
    t.after(async () => {
      await gw.close();
      await gw.proxy.close();
    });
    const statuses = async (path: string, n: number) => {
      const out: number[] = [];
      for (let i = 0; i < n; i++)
        out.push((await send(gw.url, { path, headers: { 'x-client': 'c1' } })).status);
      return out;
    };
    // Mixed definitions (per client + per route): tagged by policy; FailClosed would say 503 on CROSSSLOT.
    const closed = await statuses('/closed', 42);
    assert.deepEqual(closed.slice(0, 40), Array(40).fill(200));
    assert.deepEqual(closed.slice(40), [429, 429]);
    // Identical definitions: tagged by the client's key.
    assert.deepEqual(await statuses('/shared', 4), [200, 200, 200, 429]);
  });
});

describe('global limits with a queue', { skip }, () => {
  test('a queued request is re-checked against Redis when its limit refills, then admitted', async (t) => {
    const redis = await startRedis();
    const up = await startUpstream('vllm');
    t.after(async () => {
      await up.close();
      await redis.close();
    });
    const gw = await startGateway(`apiVersion: v1
kind: Secret
metadata: { name: redis, namespace: ml }
stringData: { url: "${redis.url}" }
---
apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: { name: slow, namespace: ml }
spec:
  rules:
    - matches: [{ path: { value: /slow } }]
      backends: [{ name: b, urls: ["${up.url}"] }]
---
apiVersion: modelgate.dev/v1alpha1
kind: RateLimitPolicy
metadata: { name: slow, namespace: ml }
spec:
  targetRefs: [{ name: slow }]
  scope: Global
  failureMode: FailClosed
  redis: { secretRef: { name: redis }, timeout: 500ms }
  limits:
    - { name: trickle, key: [{ type: Route }], algorithm: TokenBucket, amount: 1, period: 1s }
  onExceeded: { action: Queue, maxQueue: 4, maxWait: 20s }
`);
    t.after(async () => {
      await gw.close();
      await gw.proxy.close();
    });
    // One token: the first goes through, the next two wait for refills (one a second).
    const replies = await Promise.all([1, 2, 3].map(() => send(gw.url, { path: '/slow' })));
    assert.deepEqual(
      replies.map((r) => r.status),
      [200, 200, 200],
    );
    const m = await gw.proxy.metrics.registry.metrics();
    assert.match(
      m,
      /modelgate_ratelimit_decisions_total\{route="ml\/slow",policy="ml\/slow",outcome="queue_admitted"\} 2/,
    );
    assert.equal(up.received.length, 3);
  });
});
