/**
 * What the gateway answers itself or rewrites at the edge: CORS preflights and headers, the https
 * redirect, credentials injected for a hosted backend, x-forwarded-for trusted only from
 * configured peers, and consistent hashing on the authenticated consumer.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { send } from '../../support/client.ts';
import { startGateway, type TestGateway } from '../../support/gateway.ts';
import { startUpstream, type TestUpstream } from '../../support/upstream.ts';

const KEY_A = 'sk-consumer-a-0123456789';
const KEY_B = 'sk-consumer-b-0123456789';

function manifests(up: string, up2: string): string {
  return `apiVersion: v1
kind: Secret
metadata: { name: hosted, namespace: ml }
stringData: { api-key: "sk-upstream-secret" }
---
apiVersion: v1
kind: Secret
metadata: { name: a, namespace: ml }
stringData: { key: "${KEY_A}" }
---
apiVersion: v1
kind: Secret
metadata: { name: b, namespace: ml }
stringData: { key: "${KEY_B}" }
---
apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: { name: web, namespace: ml }
spec:
  hostnames: [web.test]
  auth: { apiKeys: { secretRefs: [{ name: a }, { name: b }] } }
  cors:
    allowOrigins: ["https://app.example.com", "https://*.example.org"]
    allowMethods: [POST]
    allowHeaders: [authorization, content-type]
    exposeHeaders: [x-request-id]
    allowCredentials: true
    maxAge: 1h
  rules:
    - matches: [{ path: { value: /v1/chat }, method: POST }]
      backends: [{ name: vllm, urls: ["${up}"] }]
---
apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: { name: secure-only, namespace: ml }
spec:
  hostnames: [secure.test]
  tls: { certificateRef: { name: missing-cert }, httpsRedirect: true, redirectPort: 8443 }
  rules:
    - backends: [{ name: vllm, urls: ["${up}"] }]
---
apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: { name: hosted, namespace: ml }
spec:
  hostnames: [hosted.test]
  rules:
    - backends:
        - name: api
          urls: ["${up}"]
          credentials: { secretKeyRef: { name: hosted, key: api-key }, prefix: "Bearer " }
---
apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: { name: sticky, namespace: ml }
spec:
  hostnames: [sticky.test]
  auth: { apiKeys: { secretRefs: [{ name: a }, { name: b }] } }
  rules:
    - loadBalancing: { algorithm: ConsistentHash, consistentHash: { consumer: true } }
      backends: [{ name: pool, urls: ["${up}", "${up2}"] }]
---
apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: { name: plain, namespace: ml }
spec:
  hostnames: [plain.test]
  rules:
    - backends: [{ name: vllm, urls: ["${up}"] }]
`;
}

describe('edge behaviour', () => {
  let up: TestUpstream;
  let up2: TestUpstream;
  let gw: TestGateway;
  before(async () => {
    up = await startUpstream('one');
    up2 = await startUpstream('two');
    gw = await startGateway(manifests(up.url, up2.url), { proxy: { trustedProxies: ['10.0.0.0/8'] } });
  });
  after(async () => {
    await gw.close();
    await up.close();
    await up2.close();
  });

  const preflight = (origin: string, method = 'POST', headers = 'authorization, content-type') =>
    send(gw.url, {
      method: 'OPTIONS',
      path: '/v1/chat',
      headers: {
        host: 'web.test',
        origin,
        'access-control-request-method': method,
        'access-control-request-headers': headers,
      },
    });

  test('an allowed preflight is answered by the gateway, without credentials or an upstream', async () => {
    const before = up.received.length;
    const r = await preflight('https://app.example.com');
    assert.equal(r.status, 204);
    assert.equal(r.headers['access-control-allow-origin'], 'https://app.example.com');
    assert.equal(r.headers['access-control-allow-methods'], 'POST');
    assert.equal(r.headers['access-control-allow-headers'], 'authorization, content-type');
    assert.equal(r.headers['access-control-allow-credentials'], 'true');
    assert.equal(r.headers['access-control-max-age'], '3600');
    assert.match(String(r.headers.vary), /origin/);
    const wildcard = await preflight('https://tenant.example.org');
    assert.equal(wildcard.status, 204);
    assert.equal(up.received.length, before);
  });

  test('refused preflights: origin, method or header not allowed', async () => {
    for (const [origin, method, headers] of [
      ['https://evil.test', 'POST', 'content-type'],
      ['https://example.org', 'POST', 'content-type'],
      ['https://app.example.com', 'POST', 'x-secret'],
    ] as const) {
      const r = await preflight(origin, method, headers);
      assert.equal(r.status, 403, `${origin} ${method} ${headers}`);
      assert.equal(r.json<{ error: { code: string } }>().error.code, 'MG_CORS_REJECTED');
      assert.equal(r.headers['access-control-allow-origin'], undefined);
    }
    // A preflight is routed as the request it announces: no route serves DELETE here.
    const r = await preflight('https://app.example.com', 'DELETE', 'content-type');
    assert.equal(r.status, 404);
    assert.equal(r.headers['access-control-allow-origin'], undefined);
  });

  test('actual requests from an allowed origin carry CORS headers, on a 401 too', async () => {
    const denied = await send(gw.url, {
      method: 'POST',
      path: '/v1/chat',
      headers: { host: 'web.test', origin: 'https://app.example.com' },
      body: '{}',
    });
    assert.equal(denied.status, 401);
    assert.equal(denied.headers['access-control-allow-origin'], 'https://app.example.com');
    const ok = await send(gw.url, {
      method: 'POST',
      path: '/v1/chat',
      headers: { host: 'web.test', origin: 'https://app.example.com', authorization: `Bearer ${KEY_A}` },
      body: '{}',
    });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers['access-control-allow-origin'], 'https://app.example.com');
    assert.equal(ok.headers['access-control-expose-headers'], 'x-request-id');
    const other = await send(gw.url, {
      method: 'POST',
      path: '/v1/chat',
      headers: { host: 'web.test', origin: 'https://evil.test', authorization: `Bearer ${KEY_A}` },
      body: '{}',
    });
    assert.equal(other.status, 200, 'not a browser decision for the gateway to make');
    assert.equal(other.headers['access-control-allow-origin'], undefined);
  });

  test('an https-only route answers plaintext with a 308 to https, keeping path and query', async () => {
    const before = up.received.length;
    const r = await send(gw.url, { path: '/v1/models?x=1', headers: { host: 'secure.test:8080' } });
    assert.equal(r.status, 308);
    assert.equal(r.headers.location, 'https://secure.test:8443/v1/models?x=1');
    assert.equal(up.received.length, before);
  });

  test("a hosted backend gets the gateway's credential, never the client's", async () => {
    const r = await send(gw.url, {
      path: '/v1/chat',
      headers: { host: 'hosted.test', authorization: 'Bearer client-token', 'x-api-key': 'client-key' },
    });
    assert.equal(r.status, 200);
    const got = up.received.at(-1)!.headers;
    assert.equal(got.authorization, 'Bearer sk-upstream-secret');
    assert.equal(got['x-api-key'], undefined);
  });

  test('x-forwarded-for from an untrusted peer is replaced, not extended', async () => {
    const r = await send(gw.url, {
      path: '/',
      headers: {
        host: 'plain.test',
        'x-forwarded-for': '203.0.113.9',
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'bank.test',
      },
    });
    assert.equal(r.status, 200);
    const got = up.received.at(-1)!.headers;
    assert.equal(got['x-forwarded-for'], '127.0.0.1');
    assert.equal(got['x-forwarded-proto'], 'http');
    assert.equal(got['x-forwarded-host'], 'plain.test');
    assert.equal(gw.logs.findLast((l) => l.msg === 'access')?.client, '127.0.0.1');
  });

  test('consistent hashing on the consumer keeps each consumer on one endpoint', async () => {
    const seen: Record<string, Set<string>> = { a: new Set(), b: new Set() };
    for (let i = 0; i < 20; i++) {
      for (const [name, key] of [
        ['a', KEY_A],
        ['b', KEY_B],
      ] as const) {
        const r = await send(gw.url, {
          path: '/',
          headers: { host: 'sticky.test', authorization: `Bearer ${key}` },
        });
        assert.equal(r.status, 200);
        seen[name]!.add(r.json<{ upstream: string }>().upstream);
      }
    }
    assert.equal(seen.a!.size, 1);
    assert.equal(seen.b!.size, 1);
  });
});

describe('x-forwarded-for through a trusted proxy', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  before(async () => {
    up = await startUpstream('one');
    gw = await startGateway(
      `apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: { name: plain, namespace: ml }
spec:
  rules:
    - backends: [{ name: vllm, urls: ["${up.url}"] }]
`,
      { proxy: { trustedProxies: ['127.0.0.1', '10.0.0.0/8'] } },
    );
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  test('the chain is kept, and the client is the right-most untrusted hop', async () => {
    const r = await send(gw.url, {
      path: '/',
      headers: { 'x-forwarded-for': '198.51.100.7, 203.0.113.9, 10.1.2.3', 'x-forwarded-proto': 'https' },
    });
    assert.equal(r.status, 200);
    const got = up.received.at(-1)!.headers;
    assert.equal(got['x-forwarded-for'], '198.51.100.7, 203.0.113.9, 10.1.2.3, 127.0.0.1');
    assert.equal(got['x-forwarded-proto'], 'https', 'the load balancer terminated TLS');
    assert.equal(gw.logs.findLast((l) => l.msg === 'access')?.client, '203.0.113.9');
  });
});
