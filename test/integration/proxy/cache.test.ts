/**
 * The response cache end to end: a real gateway in front of real upstreams that count what reaches
 * them and number their answers (a hit repeats a number, a miss makes a new one). Keys by caller,
 * body and revision; a revision change and a canary promotion purge; errors, streams and
 * `no-store` answers never stored; N concurrent identical requests reach the upstream once; TTL on
 * an injected clock; and two gateways sharing a real redis-server, which then dies.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import type { CacheFilterFactory } from '../../../src/dataplane/cache/cache-filter.ts';
import { type Reply, send } from '../../support/client.ts';
import { startGateway, type TestGateway } from '../../support/gateway.ts';
import { skipWithoutRedis, startRedis, type TestRedis } from '../../support/redis-server.ts';
import { startUpstream, type TestUpstream } from '../../support/upstream.ts';

const ALPHA_KEY = 'alpha-key-0123456789abcdef';
const BRAVO_KEY = 'bravo-key-0123456789abcdef';

/** An upstream that numbers its answers; `/slow` answers after 150 ms, others by path. */
async function numberingUpstream(name: string): Promise<TestUpstream & { count(): number }> {
  let n = 0;
  const answer = (req: IncomingMessage, res: ServerResponse) => {
    n++;
    const path = req.url ?? '';
    const json = (status: number, extra: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...extra });
      res.end(JSON.stringify({ upstream: name, n, path }));
    };
    if (path.startsWith('/error')) return json(500);
    if (path.startsWith('/no-store')) return json(200, { 'cache-control': 'no-store' });
    if (path.startsWith('/max-age')) return json(200, { 'cache-control': 'max-age=2' });
    if (path.startsWith('/cookie')) return json(200, { 'set-cookie': 'session=1' });
    if (path.startsWith('/vary')) return json(200, { vary: 'x-other' });
    if (path.startsWith('/sse')) {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(`data: {"n":${n}}\n\ndata: [DONE]\n\n`);
      return;
    }
    if (path.startsWith('/slow-error')) {
      setTimeout(() => json(500), 150);
      return;
    }
    if (path.startsWith('/slow')) {
      setTimeout(() => json(200), 150);
      return;
    }
    json(200);
  };
  const up = await startUpstream(name, answer);
  return Object.assign(up, { count: () => n });
}

function secret(name: string, key: string): string {
  return `apiVersion: v1
kind: Secret
metadata: { name: ${name}, namespace: ml, annotations: { modelgate.dev/consumer: ${name} } }
stringData: { key: ${key} }
---
`;
}

function manifests(
  up: string,
  opts: { revision?: string; canary?: string; rollout?: number; extra?: string } = {},
): string {
  const revision = opts.revision ?? 'v1';
  const canary = opts.canary
    ? `\n        - { name: canary, urls: ["${opts.canary}"], weight: 0, modelRevision: v2 }`
    : '';
  const rollout =
    opts.rollout === undefined
      ? ''
      : `apiVersion: modelgate.dev/v1alpha1
kind: CanaryRollout
metadata: { name: shared-v2, namespace: ml }
spec:
  routeRef: { name: shared }
  stableBackend: stable
  canaryBackend: canary
  weight: ${opts.rollout}
---
`;
  return `${secret('alpha', ALPHA_KEY)}${secret('bravo', BRAVO_KEY)}apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: { name: shared, namespace: ml }
spec:
  hostnames: [shared.test]
  rules:
    - backends:
        - { name: stable, urls: ["${up}"], modelRevision: ${revision} }${canary}
      cache:
        shared: true
        keyHeaders: [x-tenant]
        when:
          - bodyFields: [{ path: /temperature, equals: 0 }]
          - headers: [{ name: x-deterministic, value: "1" }]
---
apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: { name: private, namespace: ml }
spec:
  hostnames: [private.test]
  auth:
    apiKeys: { header: x-api-key, secretRefs: [{ name: alpha }, { name: bravo }] }
  rules:
    - backends: [{ name: b, urls: ["${up}"], modelRevision: ${revision} }]
      cache: {}
---
${rollout}${opts.extra ?? ''}`;
}

const CHAT = (temperature: number | undefined, prompt = 'hi') =>
  JSON.stringify({ model: 'm', temperature, messages: [{ role: 'user', content: prompt }] });

interface Answer {
  upstream: string;
  n: number;
}

describe('response cache (Local)', () => {
  let up: Awaited<ReturnType<typeof numberingUpstream>>;
  let v2: Awaited<ReturnType<typeof numberingUpstream>>;
  let gw: TestGateway;
  let now = 1_000_000;
  before(async () => {
    up = await numberingUpstream('v1');
    v2 = await numberingUpstream('v2');
    gw = await startGateway(manifests(up.url), { proxy: { wallClock: () => now } });
  });
  after(async () => {
    await gw.close();
    await gw.proxy.close();
    await up.close();
    await v2.close();
  });

  const post = (path: string, body: string, headers: Record<string, string> = {}, host = 'shared.test') =>
    send(gw.url, {
      method: 'POST',
      path,
      body,
      headers: { host, 'content-type': 'application/json', ...headers },
    });
  const n = (r: Reply) => r.json<Answer>().n;

  test('a deterministic request: MISS, then HIT with the same answer, an Age, and no upstream call', async () => {
    const first = await post('/v1/chat', CHAT(0, 'first'));
    assert.equal(first.status, 200);
    assert.equal(first.headers['x-cache'], 'MISS');
    const calls = up.count();
    now += 3_000;
    const second = await post('/v1/chat', CHAT(0, 'first'));
    assert.equal(second.status, 200);
    assert.equal(second.headers['x-cache'], 'HIT');
    assert.equal(second.headers.age, '3');
    assert.equal(second.text, first.text);
    assert.equal(second.headers['content-type'], 'application/json');
    assert.notEqual(
      second.headers['x-request-id'],
      first.headers['x-request-id'],
      'the request id is the hit’s own',
    );
    assert.equal(up.count(), calls);
  });

  test('the key: another body, path, query or key header is another entry; other headers are not', async () => {
    await post('/v1/key', CHAT(0, 'a'), { 'x-tenant': 'acme' });
    assert.equal(
      (await post('/v1/key', CHAT(0, 'a'), { 'x-tenant': 'acme', 'x-other': '1' })).headers['x-cache'],
      'HIT',
    );
    assert.equal((await post('/v1/key', CHAT(0, 'b'), { 'x-tenant': 'acme' })).headers['x-cache'], 'MISS');
    assert.equal(
      (await post('/v1/key?x=1', CHAT(0, 'a'), { 'x-tenant': 'acme' })).headers['x-cache'],
      'MISS',
    );
    assert.equal((await post('/v1/key2', CHAT(0, 'a'), { 'x-tenant': 'acme' })).headers['x-cache'], 'MISS');
    assert.equal((await post('/v1/key', CHAT(0, 'a'), { 'x-tenant': 'other' })).headers['x-cache'], 'MISS');
  });

  test('not declared deterministic: BYPASS every time (a missing temperature is not 0)', async () => {
    const calls = up.count();
    for (const body of [CHAT(0.7), CHAT(0.7), CHAT(undefined), CHAT(undefined), 'not json']) {
      const r = await post('/v1/bypass', body);
      assert.equal(r.headers['x-cache'], 'BYPASS');
    }
    assert.equal(up.count(), calls + 5);
    // The header condition alone is enough (any `when` entry).
    await post('/v1/bypass', CHAT(0.7), { 'x-deterministic': '1' });
    assert.equal((await post('/v1/bypass', CHAT(0.7), { 'x-deterministic': '1' })).headers['x-cache'], 'HIT');
  });

  test('the client’s Cache-Control: no-store bypasses both ways, no-cache refreshes the entry', async () => {
    const a = await post('/v1/cc', CHAT(0));
    assert.equal(
      (await post('/v1/cc', CHAT(0), { 'cache-control': 'no-store' })).headers['x-cache'],
      'BYPASS',
    );
    const refreshed = await post('/v1/cc', CHAT(0), { 'cache-control': 'no-cache' });
    assert.equal(refreshed.headers['x-cache'], 'MISS');
    assert.notEqual(n(refreshed), n(a));
    const hit = await post('/v1/cc', CHAT(0));
    assert.equal(n(hit), n(refreshed), 'the refresh replaced the entry');
  });

  test('errors, event streams, no-store, Set-Cookie and unkeyed Vary answers are never stored', async () => {
    for (const path of ['/error', '/sse', '/no-store', '/cookie', '/vary']) {
      const calls = up.count();
      const a = await post(path, CHAT(0));
      const b = await post(path, CHAT(0));
      assert.equal(b.headers['x-cache'], 'MISS', path);
      assert.equal(up.count(), calls + 2, `${path} reached the upstream twice`);
      assert.notEqual(a.text, b.text, path);
    }
    const text = await metrics(gw);
    for (const reason of ['status', 'streamed', 'cache_control', 'set_cookie', 'vary']) {
      assert.match(
        text,
        new RegExp(`modelgate_cache_not_stored_total\\{route="ml/shared",reason="${reason}"\\} 2`),
      );
    }
  });

  test('TTL: the answer’s max-age shortens it; an expired entry is a miss', async () => {
    await post('/max-age', CHAT(0));
    now += 1_500;
    assert.equal((await post('/max-age', CHAT(0))).headers['x-cache'], 'HIT');
    now += 1_000;
    assert.equal((await post('/max-age', CHAT(0))).headers['x-cache'], 'MISS');
    // The rule's ttl (5m by default) bounds the rest.
    await post('/v1/ttl', CHAT(0));
    now += 299_000;
    assert.equal((await post('/v1/ttl', CHAT(0))).headers['x-cache'], 'HIT');
    now += 2_000;
    assert.equal((await post('/v1/ttl', CHAT(0))).headers['x-cache'], 'MISS');
  });

  test('HEAD is answered from the GET entry', async () => {
    const get = await send(gw.url, {
      path: '/v1/models-info',
      headers: { host: 'shared.test', 'x-deterministic': '1' },
    });
    assert.equal(get.headers['x-cache'], 'MISS');
    const head = await send(gw.url, {
      method: 'HEAD',
      path: '/v1/models-info',
      headers: { host: 'shared.test', 'x-deterministic': '1' },
    });
    assert.equal(head.status, 200);
    assert.equal(head.headers['x-cache'], 'HIT');
    assert.equal(head.headers['content-length'], String(get.body.length));
    assert.equal(head.body.length, 0);
  });

  test('the caller is part of the key: each consumer gets its own entry', async () => {
    const call = (key: string) =>
      send(gw.url, {
        method: 'POST',
        path: '/v1/me',
        body: CHAT(0),
        headers: { host: 'private.test', 'x-api-key': key },
      });
    const a1 = await call(ALPHA_KEY);
    const a2 = await call(ALPHA_KEY);
    const b1 = await call(BRAVO_KEY);
    const b2 = await call(BRAVO_KEY);
    assert.deepEqual(
      [a1, a2, b1, b2].map((r) => r.headers['x-cache']),
      ['MISS', 'HIT', 'MISS', 'HIT'],
    );
    assert.equal(n(a1), n(a2));
    assert.notEqual(n(a1), n(b1));
  });

  test('20 concurrent identical requests reach the upstream once', async () => {
    const calls = up.count();
    const replies = await Promise.all(Array.from({ length: 20 }, () => post('/slow', CHAT(0, 'storm'))));
    assert.equal(up.count(), calls + 1);
    assert.ok(replies.every((r) => r.status === 200 && r.text === replies[0]!.text));
    const caches = replies.map((r) => r.headers['x-cache']).sort();
    assert.deepEqual(caches, [...Array(19).fill('HIT'), 'MISS'].sort());
    assert.match(
      await metrics(gw),
      /modelgate_cache_requests_total\{route="ml\/shared",result="coalesced"\} 19/,
    );
  });

  test('concurrent identical requests whose answer cannot be stored each go upstream', async () => {
    const calls = up.count();
    const replies = await Promise.all(Array.from({ length: 5 }, () => post('/slow-error', CHAT(0))));
    assert.ok(replies.every((r) => r.status === 500));
    // The first one's 500 released the four waiting for it: they went upstream themselves.
    assert.equal(up.count(), calls + 5);
  });

  test('a new model revision never reads the old one’s answers, and its entries are purged', async () => {
    const first = await post('/v1/rev', CHAT(0));
    assert.equal((await post('/v1/rev', CHAT(0))).headers['x-cache'], 'HIT');
    const cache = cacheFactory(gw);
    const entries = cache.local.size;
    assert.ok(entries > 0);
    gw.apply(manifests(up.url, { revision: 'v1.1' }));
    assert.equal(cache.local.size, 0, 'every entry was keyed to v1, which no backend serves now');
    const after = await post('/v1/rev', CHAT(0));
    assert.equal(after.headers['x-cache'], 'MISS');
    assert.notEqual(n(after), n(first));
    gw.apply(manifests(up.url));
  });

  test('a canary promotion (weight 100) purges the stable revision; the canary starts afresh', async () => {
    gw.apply(manifests(up.url, { canary: v2.url, rollout: 0 }));
    const stable = await post('/v1/promo', CHAT(0));
    assert.equal(stable.json<Answer>().upstream, 'v1');
    assert.equal((await post('/v1/promo', CHAT(0))).headers['x-cache'], 'HIT');
    const cache = cacheFactory(gw);
    assert.ok(cache.local.size > 0);
    gw.apply(manifests(up.url, { canary: v2.url, rollout: 100 }));
    assert.equal(cache.local.size, 0, 'stable (v1) has weight 0 now');
    const promoted = await post('/v1/promo', CHAT(0));
    assert.equal(promoted.headers['x-cache'], 'MISS');
    assert.equal(promoted.json<Answer>().upstream, 'v2');
    assert.equal((await post('/v1/promo', CHAT(0))).headers['x-cache'], 'HIT');
    assert.match(await metrics(gw), /modelgate_cache_evictions_total\{reason="purged"\} [1-9]/);
    gw.apply(manifests(up.url));
  });
});

describe('response cache and the rest of the chain', () => {
  let up: Awaited<ReturnType<typeof numberingUpstream>>;
  let gw: TestGateway;
  before(async () => {
    up = await numberingUpstream('v1');
    gw = await startGateway(`apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: { name: chain, namespace: ml }
spec:
  cors: { allowOrigins: ["https://app.test"] }
  compression: { enabled: true, minBytes: 1 }
  rules:
    - backends: [{ name: b, urls: ["${up.url}"] }]
      transform:
        response:
          headers: { set: [{ name: x-transformed, value: "yes" }] }
          body: [{ op: Set, path: /transformed, value: true }]
      cache: { shared: true }
---
apiVersion: modelgate.dev/v1alpha1
kind: RateLimitPolicy
metadata: { name: three, namespace: ml }
spec:
  targetRefs: [{ name: chain }]
  limits: [{ name: r, key: [{ type: Route }], algorithm: FixedWindow, amount: 3, period: 1h }]
`);
  });
  after(async () => {
    await gw.close();
    await gw.proxy.close();
    await up.close();
  });

  test('a hit goes through the response side as a miss does, and counts against rate limits', async () => {
    const call = (encoding?: string) =>
      send(gw.url, {
        method: 'POST',
        path: '/x',
        body: CHAT(0),
        headers: { origin: 'https://app.test', ...(encoding ? { 'accept-encoding': encoding } : {}) },
      });
    const miss = await call();
    assert.equal(miss.headers['x-cache'], 'MISS');
    assert.equal(up.received.at(-1)!.headers['accept-encoding'], 'identity', 'stored answers are unencoded');
    const hit = await call();
    assert.equal(hit.headers['x-cache'], 'HIT');
    for (const r of [miss, hit]) {
      assert.equal(r.headers['access-control-allow-origin'], 'https://app.test');
      assert.equal(r.headers['x-transformed'], 'yes');
      assert.equal(r.json<{ transformed: boolean }>().transformed, true);
      assert.ok(r.headers.ratelimit, 'RateLimit headers');
    }
    assert.equal(hit.text, miss.text);
    const gz = await call('gzip');
    assert.equal(gz.headers['x-cache'], 'HIT');
    assert.equal(gz.headers['content-encoding'], 'gzip', 'the gateway compresses hits per client');
    assert.equal(up.count(), 1);
    const limited = await call();
    assert.equal(limited.status, 429, 'the fourth request, a would-be hit, is over the limit of 3');
  });
});

describe('response cache (Redis)', { skip: skipWithoutRedis() }, () => {
  let redis: TestRedis;
  let up: Awaited<ReturnType<typeof numberingUpstream>>;
  let a: TestGateway;
  let b: TestGateway;
  const yaml = (url: string) => `apiVersion: v1
kind: Secret
metadata: { name: cache-redis, namespace: ml }
stringData: { url: "${url}" }
---
apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: { name: shared, namespace: ml }
spec:
  rules:
    - backends: [{ name: b, urls: ["${up.url}"], modelRevision: v1 }]
      cache:
        shared: true
        store: Redis
        redis: { secretRef: { name: cache-redis }, timeout: 200ms }
`;
  before(async () => {
    redis = await startRedis();
    up = await numberingUpstream('v1');
    a = await startGateway(yaml(redis.url));
    b = await startGateway(yaml(redis.url));
    const client = cacheFactory(a).redis.all().next().value!;
    assert.ok(await client.waitReady(5000));
    assert.ok(await cacheFactory(b).redis.all().next().value!.waitReady(5000));
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await a?.proxy.close();
    await b?.proxy.close();
    await up?.close();
    await redis?.close();
  });

  // One Host for both, as behind one load balancer (the Host sent upstream is part of the key).
  const post = (gw: TestGateway, prompt: string) =>
    send(gw.url, { method: 'POST', path: '/v1/chat', body: CHAT(0, prompt), headers: { host: 'chat.test' } });

  test('the second gateway is served what the first stored', async () => {
    const first = await post(a, 'shared');
    assert.equal(first.headers['x-cache'], 'MISS');
    // The entry is written once the answer has gone out: wait for it to land.
    const probe = new Redis(redis.url);
    try {
      for (let i = 0; i < 100 && (await probe.dbsize()) === 0; i++)
        await new Promise((r) => setTimeout(r, 10));
      const keys = await probe.keys('*');
      assert.equal(keys.length, 1);
      assert.match(keys[0]!, /^modelgate:cache:[\w-]{22}:[\w-]{43}$/);
      const ttl = await probe.pttl(keys[0]!);
      assert.ok(ttl > 290_000 && ttl <= 300_000, `PX is the rule's ttl (${ttl})`);
    } finally {
      probe.disconnect();
    }
    const second = await post(b, 'shared');
    assert.equal(second.headers['x-cache'], 'HIT');
    assert.equal(second.text, first.text);
    assert.equal((await post(a, 'shared')).headers['x-cache'], 'HIT');
  });

  test('Redis killed: every request is a miss, and still served', async () => {
    await redis.stop();
    const calls = up.count();
    for (let i = 0; i < 4; i++) {
      const r = await post(i % 2 === 0 ? a : b, 'shared');
      assert.equal(r.status, 200);
      assert.equal(r.headers['x-cache'], 'MISS');
    }
    assert.equal(up.count(), calls + 4);
    assert.match(await metrics(a), /modelgate_cache_redis_errors_total\{route="ml\/shared"\} [1-9]/);
    assert.ok(a.logs.some((l) => l.msg === 'response cache: Redis unavailable; lookups are misses'));
  });

  test('Redis back (empty): answers are stored and shared again', async () => {
    await redis.restart();
    for (const gw of [a, b]) assert.ok(await cacheFactory(gw).redis.all().next().value!.waitReady(10_000));
    const first = await post(a, 'after the restart');
    assert.equal(first.headers['x-cache'], 'MISS');
    const probe = new Redis(redis.url);
    try {
      for (let i = 0; i < 100 && (await probe.dbsize()) === 0; i++)
        await new Promise((r) => setTimeout(r, 10));
    } finally {
      probe.disconnect();
    }
    const second = await post(b, 'after the restart');
    assert.equal(second.headers['x-cache'], 'HIT');
    assert.equal(second.text, first.text);
  });
});

function cacheFactory(gw: TestGateway) {
  // The factory is one of the proxy's filters; tests look at its store.
  const filters = (gw.proxy as unknown as { filters: { name: string }[] }).filters;
  return filters.find((f) => f.name === 'cache') as unknown as CacheFilterFactory;
}

async function metrics(gw: TestGateway): Promise<string> {
  return gw.proxy.metrics.registry.metrics();
}
