/**
 * Rate limits refusing gRPC calls: a trailers-only RESOURCE_EXHAUSTED whose metadata carries what
 * an HTTP client gets with its 429 (ratelimit-policy, ratelimit, retry-after), plus
 * grpc-retry-pushback-ms (gRFC A6) from the Retry-After. A real @grpc/grpc-js client and server;
 * the window is an hour long so nothing refills during the test.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as loader from '@grpc/proto-loader';
import { send } from '../../support/client.ts';
import { startGateway, type TestGateway } from '../../support/gateway.ts';

const PROTO = fileURLToPath(new URL('../../fixtures/echo.proto', import.meta.url));
const ALPHA = 'sk-alpha-0123456789abcdef';
const BLOCKED = 'sk-blocked-0123456789abcdef';

type EchoClient = grpc.Client & {
  Unary(
    req: object,
    md: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null, res: { message: string }) => void,
  ): grpc.ClientUnaryCall;
};

describe('gRPC calls refused by a rate limit', () => {
  let server: grpc.Server;
  let gw: TestGateway;
  let client: EchoClient;
  before(async () => {
    const pkg = grpc.loadPackageDefinition(loader.loadSync(PROTO, { keepCase: false })) as unknown as {
      test: { Echo: grpc.ServiceClientConstructor };
    };
    server = new grpc.Server();
    server.addService(pkg.test.Echo.service, {
      Unary: (call: grpc.ServerUnaryCall<{ message: string }, unknown>, cb: grpc.sendUnaryData<unknown>) =>
        cb(null, { message: `echo: ${call.request.message}` }),
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    const secret = (name: string, key: string, groups: string) => `apiVersion: v1
kind: Secret
metadata: { name: ${name}, namespace: ml, annotations: { modelgate.dev/groups: "${groups}" } }
stringData: { key: ${key} }
---
`;
    gw =
      await startGateway(`${secret('alpha', ALPHA, '')}${secret('blocked', BLOCKED, 'blocked')}apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: { name: echo, namespace: ml }
spec:
  auth: { apiKeys: { header: x-api-key, secretRefs: [{ name: alpha }, { name: blocked }] } }
  rules:
    - matches: [{ path: { value: /test.Echo } }]
      backends: [{ name: echo, protocol: GRPC, urls: ["http://127.0.0.1:${port}"] }]
---
apiVersion: modelgate.dev/v1alpha1
kind: RateLimitPolicy
metadata: { name: per-consumer, namespace: ml }
spec:
  targetRefs: [{ name: echo }]
  limits:
    - name: requests
      key: [{ type: Consumer }]
      algorithm: FixedWindow
      amount: 2
      period: 1h
      overrides: [{ group: blocked, amount: 0 }]
---
`);
    client = new pkg.test.Echo(
      gw.url.replace('http://', ''),
      grpc.credentials.createInsecure(),
    ) as unknown as EchoClient;
  });
  after(async () => {
    client.close();
    await gw.close();
    server.forceShutdown();
  });

  const unary = (key: string) =>
    new Promise<{ err: grpc.ServiceError | null; headers: grpc.Metadata | undefined }>((resolve) => {
      const md = new grpc.Metadata();
      md.set('x-api-key', key);
      let headers: grpc.Metadata | undefined;
      const call = client.Unary({ message: 'hi' }, md, {}, (err) => resolve({ err, headers }));
      call.on('metadata', (m) => {
        headers = m;
      });
    });
  const one = (md: grpc.Metadata, key: string) => {
    const v = md.get(key);
    assert.equal(v.length, 1, `one ${key}: ${JSON.stringify(v)}`);
    return String(v[0]);
  };

  test('admitted calls carry the RateLimit headers; the refused one RESOURCE_EXHAUSTED with them', async () => {
    for (const remaining of [1, 0]) {
      const ok = await unary(ALPHA);
      assert.equal(ok.err, null);
      assert.equal(one(ok.headers!, 'ratelimit-policy'), '"requests";q=2;w=3600');
      assert.match(one(ok.headers!, 'ratelimit'), new RegExp(`^"requests";r=${remaining};t=\\d+$`));
    }
    const { err } = await unary(ALPHA);
    assert.ok(err);
    assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(err.details, /^MG_RATE_LIMITED: limit "requests" of policy ml\/per-consumer exceeded/);
    const md = err.metadata;
    assert.equal(one(md, 'ratelimit-policy'), '"requests";q=2;w=3600');
    const limit = /^"requests";r=0;t=(\d+)$/.exec(one(md, 'ratelimit'));
    assert.ok(limit, one(md, 'ratelimit'));
    const retryAfter = one(md, 'retry-after');
    assert.equal(retryAfter, limit[1], 'RateLimit t and Retry-After name the same moment');
    assert.ok(Number(retryAfter) >= 1 && Number(retryAfter) <= 3600);
    assert.equal(one(md, 'grpc-retry-pushback-ms'), String(Number(retryAfter) * 1000));
    assert.match(one(md, 'x-request-id'), /.+/);

    // The same refusal over HTTP: the 429's headers hold the same values.
    const http = await send(gw.url, {
      path: '/test.Echo/Unary',
      body: '{}',
      headers: { 'x-api-key': ALPHA, 'content-type': 'application/json' },
    });
    assert.equal(http.status, 429);
    assert.equal(http.headers['ratelimit-policy'], one(md, 'ratelimit-policy'));
    assert.equal(http.headers['grpc-retry-pushback-ms'], undefined, 'gRPC metadata only');
  });

  test('a call no wait would admit: no retry-after, and a pushback of -1 (do not retry)', async () => {
    const { err } = await unary(BLOCKED);
    assert.ok(err);
    assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED);
    const md = err.metadata;
    assert.equal(one(md, 'ratelimit-policy'), '"requests";q=0;w=3600');
    assert.equal(md.get('retry-after').length, 0);
    assert.equal(one(md, 'grpc-retry-pushback-ms'), '-1');
  });
});
