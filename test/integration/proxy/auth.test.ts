/**
 * Authentication and authorization end to end: real upstreams counting what reaches them, a real
 * JWKS server and a real introspection server, tokens minted here. In every refused case the
 * upstream receives nothing.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { send, sendRaw } from '../../support/client.ts';
import { startGateway, type TestGateway } from '../../support/gateway.ts';
import { type JwksServer, startJwksServer } from '../../support/jwks-server.ts';
import { startUpstream, type TestUpstream } from '../../support/upstream.ts';

const ALPHA_KEY = 'sk-alpha-0123456789abcdef';
const ALPHA_NEXT = 'sk-alpha-rotated-0123456789';
const BRAVO_KEY = 'sk-bravo-0123456789abcdef';
const ISSUER = 'https://idp.test';

function secret(
  name: string,
  data: Record<string, string>,
  annotations: Record<string, string> = {},
): string {
  return `apiVersion: v1
kind: Secret
metadata:
  name: ${name}
  namespace: ml
  annotations: ${JSON.stringify(annotations)}
stringData: ${JSON.stringify(data)}
---
`;
}

function keysRoute(upstream: string, alphaKeys: Record<string, string>): string {
  return `${secret('alpha', alphaKeys, { 'modelgate.dev/consumer': 'alpha', 'modelgate.dev/groups': 'gold' })}${secret('bravo', { key: BRAVO_KEY })}apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: { name: keys, namespace: ml }
spec:
  hostnames: [keys.test]
  auth:
    apiKeys: { header: x-api-key, secretRefs: [{ name: alpha }, { name: bravo }] }
  rules:
    - name: chat
      matches: [{ path: { value: /v1/chat } }]
      backends: [{ name: vllm, urls: ["${upstream}"] }]
    - name: admin
      matches: [{ path: { value: /admin } }]
      authorization: { groups: [gold] }
      backends: [{ name: vllm, urls: ["${upstream}"] }]
    - name: public
      matches: [{ path: { value: /public } }]
      backends: [{ name: vllm, urls: ["${upstream}"] }]
---
`;
}

describe('API keys', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  before(async () => {
    up = await startUpstream('vllm');
    gw = await startGateway(keysRoute(up.url, { key: ALPHA_KEY }));
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  const call = (path: string, key?: string) =>
    send(gw.url, { path, headers: { host: 'keys.test', ...(key ? { 'x-api-key': key } : {}) } });

  test('a known key passes, as its consumer, and the key never reaches the upstream', async () => {
    const before = up.received.length;
    const r = await call('/v1/chat', ALPHA_KEY);
    assert.equal(r.status, 200);
    assert.equal(up.received.length, before + 1);
    assert.equal(up.received.at(-1)!.headers['x-api-key'], undefined);
    const line = gw.logs.findLast((l) => l.msg === 'access');
    assert.equal(line?.consumer, 'alpha');
    assert.ok(!JSON.stringify(gw.logs).includes(ALPHA_KEY), 'the key is in no log line');
  });

  test('missing and unknown keys: 401 with a challenge, nothing upstream', async () => {
    const before = up.received.length;
    const missing = await call('/v1/chat');
    assert.equal(missing.status, 401);
    assert.equal(missing.json<{ error: { code: string } }>().error.code, 'MG_UNAUTHENTICATED');
    assert.match(
      String(missing.headers['www-authenticate']),
      /^ApiKey realm="modelgate", header="x-api-key"/,
    );
    const unknown = await call('/v1/chat', 'sk-not-a-real-key-000000');
    assert.equal(unknown.status, 401);
    assert.match(unknown.json<{ error: { message: string } }>().error.message, /not known/);
    // Every rule of the route is protected, not only the first.
    assert.equal((await call('/public')).status, 401);
    assert.equal(up.received.length, before);
  });

  test('authorization by group: 403 for a valid key without it, 200 with it', async () => {
    const before = up.received.length;
    const denied = await call('/admin', BRAVO_KEY);
    assert.equal(denied.status, 403);
    assert.equal(denied.json<{ error: { code: string } }>().error.code, 'MG_FORBIDDEN');
    assert.equal(up.received.length, before);
    assert.equal((await call('/admin', ALPHA_KEY)).status, 200);
  });

  test('path normalisation cannot reach a protected rule without credentials', async () => {
    const before = up.received.length;
    for (const path of ['/public/../admin', '/public/%2e%2e/admin', '//admin', '/public/..%2fadmin']) {
      const r = await call(path);
      assert.ok(r.status === 401 || r.status === 400 || r.status === 404, `${path}: ${r.status}`);
    }
    assert.equal(up.received.length, before);
  });

  test('request smuggling cannot slip a request past authentication', async () => {
    const before = up.received.length;
    const smuggled = 'GET /admin HTTP/1.1\r\nhost: keys.test\r\n\r\n';
    const clte = await sendRaw(
      gw.url,
      `POST /public HTTP/1.1\r\nhost: keys.test\r\ncontent-length: ${4 + smuggled.length}\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`,
    );
    assert.match(clte, /^HTTP\/1\.1 400 /);
    const doubleCl = await sendRaw(
      gw.url,
      `POST /public HTTP/1.1\r\nhost: keys.test\r\ncontent-length: 0\r\ncontent-length: ${smuggled.length}\r\n\r\n${smuggled}`,
    );
    assert.match(doubleCl, /^HTTP\/1\.1 400 /);
    // Pipelined after a refused request on the same connection: refused on its own merits.
    const pipelined = await sendRaw(
      gw.url,
      `GET /public HTTP/1.1\r\nhost: keys.test\r\n\r\nGET /admin HTTP/1.1\r\nhost: keys.test\r\nx-api-key: ${BRAVO_KEY}\r\nconnection: close\r\n\r\n`,
    );
    assert.deepEqual(
      [...pipelined.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]),
      ['401', '403'],
    );
    assert.equal(up.received.length, before);
  });

  test('rotation: a Secret edit revokes the old key and admits the new one at the next table', async () => {
    gw.apply(keysRoute(up.url, { key: ALPHA_KEY, 'key.next': ALPHA_NEXT }));
    assert.equal((await call('/v1/chat', ALPHA_KEY)).status, 200, 'both keys during the overlap');
    assert.equal((await call('/v1/chat', ALPHA_NEXT)).status, 200);
    gw.apply(keysRoute(up.url, { key: ALPHA_NEXT }));
    assert.equal((await call('/v1/chat', ALPHA_KEY)).status, 401, 'the old key is revoked');
    assert.equal((await call('/v1/chat', ALPHA_NEXT)).status, 200);
  });

  test('decisions are counted by route, method and outcome, never by consumer', async () => {
    const text = await gw.proxy.metrics.registry.metrics();
    assert.match(
      text,
      /modelgate_auth_decisions_total\{route="ml\/keys",method="apiKey",outcome="allowed"\} \d+/,
    );
    assert.match(
      text,
      /modelgate_auth_decisions_total\{route="ml\/keys",method="none",outcome="unauthenticated"\} \d+/,
    );
    assert.match(
      text,
      /modelgate_auth_decisions_total\{route="ml\/keys",method="apiKey",outcome="forbidden"\} \d+/,
    );
    assert.ok(!text.includes('alpha') && !text.includes(ALPHA_KEY));
  });

  test('the table dump shows no key material', async () => {
    const { redact } = await import('../../../src/routing-table/redact.ts');
    const dumped = JSON.stringify(redact(gw.proxy.table!.table));
    assert.ok(!dumped.includes(ALPHA_KEY));
    assert.ok(!/"sha256":"[A-Za-z0-9_-]{20,}"/.test(dumped), 'digests are redacted too');
  });
});

describe('JWT', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  let jwks: JwksServer;
  let rsa: Awaited<ReturnType<typeof generateKeyPair>>;
  let ec: Awaited<ReturnType<typeof generateKeyPair>>;
  let ed: Awaited<ReturnType<typeof generateKeyPair>>;
  let rsaPublic: JWK;
  let now = Date.now();

  before(async () => {
    rsa = await generateKeyPair('RS256');
    ec = await generateKeyPair('ES256');
    ed = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
    rsaPublic = { ...(await exportJWK(rsa.publicKey)), kid: 'rsa-1', alg: 'RS256', use: 'sig' };
    jwks = await startJwksServer({
      keys: [
        rsaPublic,
        { ...(await exportJWK(ec.publicKey)), kid: 'ec-1', alg: 'ES256' },
        { ...(await exportJWK(ed.publicKey)), kid: 'ed-1', alg: 'EdDSA' },
      ],
    });
    up = await startUpstream('vllm');
    gw = await startGateway(
      `apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: { name: jwt, namespace: ml }
spec:
  hostnames: [jwt.test]
  auth:
    jwt:
      - name: corp
        issuer: ${ISSUER}
        audiences: [modelgate]
        algorithms: [RS256, ES256, EdDSA]
        jwksUri: ${jwks.url}
        groupsClaim: groups
        forwardClaims: [{ claim: sub, header: x-user }, { claim: tier, header: x-tier }]
  rules:
    - name: chat
      matches: [{ path: { value: /v1/chat } }]
      backends: [{ name: vllm, urls: ["${up.url}"] }]
    - name: write
      matches: [{ path: { value: /v1/write } }]
      authorization: { scopes: [inference:write], claims: [{ name: tier, values: [pro] }] }
      backends: [{ name: vllm, urls: ["${up.url}"] }]
`,
      { proxy: { wallClock: () => now } },
    );
  });
  after(async () => {
    await gw.close();
    await up.close();
    await jwks.close();
  });

  const mint = (
    key: CryptoKey | Uint8Array,
    alg: string,
    kid: string,
    claims: Record<string, unknown> = {},
    opts: { exp?: number; iss?: string; aud?: string } = {},
  ) =>
    new SignJWT({ tier: 'pro', scope: 'inference:read', ...claims })
      .setProtectedHeader({ alg, kid })
      .setIssuer(opts.iss ?? ISSUER)
      .setAudience(opts.aud ?? 'modelgate')
      .setSubject('user-1')
      .setIssuedAt(Math.floor(now / 1000))
      .setExpirationTime(opts.exp ?? Math.floor(now / 1000) + 600)
      .sign(key);

  const call = (path: string, token?: string, headers: Record<string, string> = {}) =>
    send(gw.url, {
      path,
      headers: { host: 'jwt.test', ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    });

  test('RS256, ES256 and EdDSA tokens pass; claims are forwarded, spoofed values replaced', async () => {
    for (const [key, alg, kid] of [
      [rsa.privateKey, 'RS256', 'rsa-1'],
      [ec.privateKey, 'ES256', 'ec-1'],
      [ed.privateKey, 'EdDSA', 'ed-1'],
    ] as const) {
      const r = await call('/v1/chat', await mint(key, alg, kid), { 'x-user': 'admin' });
      assert.equal(r.status, 200, `${alg}: ${r.text}`);
      const got = up.received.at(-1)!.headers;
      assert.equal(got['x-user'], 'user-1', 'the claim, not the client header');
      assert.equal(got['x-tier'], 'pro');
      assert.equal(got.authorization, undefined, 'the token is not forwarded');
    }
  });

  test('refused tokens: 401 invalid_token, nothing upstream', async () => {
    const before = up.received.length;
    const nowS = Math.floor(now / 1000);
    const hmacWithPublicKey = await new SignJWT({ sub: 'x' })
      .setProtectedHeader({ alg: 'HS256', kid: 'rsa-1' })
      .setIssuer(ISSUER)
      .setAudience('modelgate')
      .setExpirationTime(nowS + 600)
      .sign(new TextEncoder().encode(JSON.stringify(rsaPublic)));
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const none = `${b64({ alg: 'none' })}.${b64({ iss: ISSUER, aud: 'modelgate', sub: 'x', exp: nowS + 600 })}.`;
    const cases: [string, string][] = [
      ['expired', await mint(rsa.privateKey, 'RS256', 'rsa-1', {}, { exp: nowS - 3600 })],
      ['wrong issuer', await mint(rsa.privateKey, 'RS256', 'rsa-1', {}, { iss: 'https://evil.test' })],
      ['wrong audience', await mint(rsa.privateKey, 'RS256', 'rsa-1', {}, { aud: 'other' })],
      ['HS256 with the RSA public key', hmacWithPublicKey],
      ['alg none', none],
      ['signed by another key', await mint((await generateKeyPair('RS256')).privateKey, 'RS256', 'rsa-1')],
      ['garbage', 'not.a.jwt'],
    ];
    for (const [what, token] of cases) {
      const r = await call('/v1/chat', token);
      assert.equal(r.status, 401, `${what}: ${r.text}`);
      assert.match(String(r.headers['www-authenticate']), /error="invalid_token"/, what);
    }
    assert.equal(up.received.length, before);
  });

  test('scopes and claims: 403 insufficient_scope, then 200 with them', async () => {
    const before = up.received.length;
    const r = await call('/v1/write', await mint(rsa.privateKey, 'RS256', 'rsa-1'));
    assert.equal(r.status, 403);
    assert.match(
      String(r.headers['www-authenticate']),
      /error="insufficient_scope", scope="inference:write"/,
    );
    const basic = await call(
      '/v1/write',
      await mint(rsa.privateKey, 'RS256', 'rsa-1', { scope: 'inference:write', tier: 'free' }),
    );
    assert.equal(basic.status, 403, 'the tier claim is not allowed');
    assert.equal(up.received.length, before);
    const ok = await call(
      '/v1/write',
      await mint(rsa.privateKey, 'RS256', 'rsa-1', { scope: 'chat inference:write' }),
    );
    assert.equal(ok.status, 200);
  });

  test('a storm of unknown kids causes a handful of JWKS fetches at most', async () => {
    const fetchesBefore = jwks.requests;
    const before = up.received.length;
    const tokens = await Promise.all(
      Array.from({ length: 200 }, (_, i) => mint(rsa.privateKey, 'RS256', `unknown-${i}`)),
    );
    for (let i = 0; i < tokens.length; i += 50) {
      const replies = await Promise.all(tokens.slice(i, i + 50).map((t) => call('/v1/chat', t)));
      for (const r of replies) assert.equal(r.status, 401);
    }
    assert.ok(jwks.requests - fetchesBefore <= 2, `${jwks.requests - fetchesBefore} JWKS fetches`);
    assert.equal(up.received.length, before);
  });

  test('time moves: a token accepted now is refused once expired (cached or not)', async () => {
    const token = await mint(rsa.privateKey, 'RS256', 'rsa-1', {}, { exp: Math.floor(now / 1000) + 60 });
    assert.equal((await call('/v1/chat', token)).status, 200);
    now += 120_000;
    assert.equal((await call('/v1/chat', token)).status, 401);
  });
});

describe('introspection, anonymous access and the unreachable case', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  let idp: ReturnType<typeof createServer>;
  let idpUrl = '';
  let introspections = 0;
  let idpDown = false;

  before(async () => {
    idp = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => {
        body += c.toString();
      });
      req.on('end', () => {
        introspections++;
        if (idpDown) {
          res.writeHead(500);
          res.end();
          return;
        }
        const token = new URLSearchParams(body).get('token');
        const active = token === 'opaque-good';
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(active ? { active: true, sub: 'svc-7', scope: 'chat' } : { active: false }));
      });
    });
    await new Promise<void>((r) => idp.listen(0, '127.0.0.1', r));
    idpUrl = `http://127.0.0.1:${(idp.address() as AddressInfo).port}/introspect`;
    up = await startUpstream('vllm');
    gw =
      await startGateway(`${secret('idp-client', { 'client-id': 'gw', 'client-secret': 'pw' })}apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: { name: open, namespace: ml }
spec:
  hostnames: [open.test]
  auth:
    anonymous: true
    introspection: { endpoint: "${idpUrl}", clientSecretRef: { name: idp-client }, negativeCacheTTL: 0s }
  rules:
    - backends: [{ name: vllm, urls: ["${up.url}"] }]
`);
  });
  after(async () => {
    await gw.close();
    await up.close();
    idp.closeAllConnections();
    await new Promise<void>((r) => idp.close(() => r()));
  });

  const call = (token?: string) =>
    send(gw.url, {
      path: '/x',
      headers: { host: 'open.test', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    });

  test('an active token passes as its subject; answers are cached', async () => {
    const n = introspections;
    assert.equal((await call('opaque-good')).status, 200);
    assert.equal((await call('opaque-good')).status, 200);
    assert.equal(introspections, n + 1);
    assert.equal(gw.logs.findLast((l) => l.msg === 'access')?.consumer, 'svc-7');
  });

  test('no credential on an anonymous route passes as anonymous; a bad one is still refused', async () => {
    assert.equal((await call()).status, 200);
    assert.equal(gw.logs.findLast((l) => l.msg === 'access')?.consumer, 'anonymous');
    const before = up.received.length;
    assert.equal((await call('opaque-bad')).status, 401);
    assert.equal(up.received.length, before);
  });

  test('the introspection endpoint failing gives 503 MG_AUTH_UNAVAILABLE, not 401', async () => {
    idpDown = true;
    try {
      const before = up.received.length;
      const r = await call('opaque-other');
      assert.equal(r.status, 503);
      assert.equal(r.json<{ error: { code: string } }>().error.code, 'MG_AUTH_UNAVAILABLE');
      assert.equal(up.received.length, before);
    } finally {
      idpDown = false;
    }
  });
});
