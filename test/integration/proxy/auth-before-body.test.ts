/**
 * Authentication comes before the gateway reads a request body. Routes that match on the model
 * need the body to be routed, and filters like validation need it too; neither may let a caller
 * without credentials make the gateway buffer (up to 64 MiB by default) and parse a body.
 *
 * How it is observed, without clocks: the test watches the gateway's side of each request (the
 * node:http 'request' event, before the proxy's own listener) for which comes first, the response
 * finishing or the request body starting to flow. The client sends the request head alone and the
 * body only once the gateway has started reading it; a refused request is answered while the
 * client has sent no body byte at all.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { send, sendRaw } from '../../support/client.ts';
import { startGateway, type TestGateway } from '../../support/gateway.ts';
import { type JwksServer, startJwksServer } from '../../support/jwks-server.ts';
import { startUpstream, type TestUpstream } from '../../support/upstream.ts';

const ALPHA_KEY = 'sk-alpha-0123456789abcdef';
const BRAVO_KEY = 'sk-bravo-0123456789abcdef';
const ISSUER = 'https://idp.test';
const BIG = 8 * 1024 * 1024;

function secret(name: string, data: Record<string, string>, groups = ''): string {
  return `apiVersion: v1
kind: Secret
metadata:
  name: ${name}
  namespace: ml
  annotations: ${JSON.stringify({ 'modelgate.dev/consumer': name, ...(groups ? { 'modelgate.dev/groups': groups } : {}) })}
stringData: ${JSON.stringify(data)}
---
`;
}

interface Probe {
  /** What the gateway did first: answer, or start reading the request body. */
  first: 'answered' | 'reading';
  /** Body bytes the client had sent when the response was complete. */
  bodySent: number;
  status: number;
  headers: Record<string, string>;
  body: string;
  /** The gateway closed the connection after the response. */
  closed: Promise<void>;
}

/**
 * Sends `POST path` with a body of `size` bytes (`prefix` first, then filler), on its own
 * connection. The body is sent only once the gateway has begun to read it.
 */
function probe(
  gw: TestGateway,
  path: string,
  headers: Record<string, string>,
  size: number,
  prefix = '{"model":"llama-3-8b","messages":"',
  suffix = '"}',
): Promise<Probe> {
  return new Promise((resolve, reject) => {
    let first: Probe['first'] | undefined;
    let bodySent = 0;
    let sending = false;
    const onRequest = (req: IncomingMessage, res: ServerResponse) => {
      if (req.headers['x-probe'] !== id) return;
      gw.listener.http1.off('request', onRequest);
      res.once('finish', () => {
        first ??= 'answered';
      });
      req.once('resume', () => {
        first ??= 'reading';
        if (first === 'reading') sendBody();
      });
    };
    const id = `p${Math.random()}`;
    gw.listener.http1.prependListener('request', onRequest);
    const url = new URL(gw.url);
    const socket = connect(Number(url.port), url.hostname);
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    const head = [
      `POST ${path} HTTP/1.1`,
      `host: ${headers.host ?? 'gw.test'}`,
      `content-length: ${size}`,
      'content-type: application/json',
      `x-probe: ${id}`,
      ...Object.entries(headers)
        .filter(([k]) => k !== 'host')
        .map(([k, v]) => `${k}: ${v}`),
      '',
      '',
    ].join('\r\n');
    socket.write(head);
    const sendBody = async () => {
      if (sending) return;
      sending = true;
      const filler = size - Buffer.byteLength(prefix) - Buffer.byteLength(suffix);
      const parts = [Buffer.from(prefix)];
      for (let left = filler; left > 0; left -= 65536) parts.push(Buffer.alloc(Math.min(65536, left), 'x'));
      parts.push(Buffer.from(suffix));
      for (const p of parts) {
        if (socket.destroyed || response) return;
        bodySent += p.length;
        if (!socket.write(p)) await new Promise((r) => socket.once('drain', r));
      }
    };
    let raw = Buffer.alloc(0);
    let response: Omit<Probe, 'first' | 'bodySent' | 'closed'> | undefined;
    socket.on('data', (chunk: Buffer) => {
      raw = Buffer.concat([raw, chunk]);
      const end = raw.indexOf('\r\n\r\n');
      if (end < 0 || response) return;
      const lines = raw.subarray(0, end).toString('latin1').split('\r\n');
      const hs: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const c = l.indexOf(':');
        hs[l.slice(0, c).toLowerCase()] = l.slice(c + 1).trim();
      }
      const length = Number(hs['content-length'] ?? 0);
      if (raw.length < end + 4 + length) return;
      response = {
        status: Number(lines[0]!.split(' ')[1]),
        headers: hs,
        body: raw.subarray(end + 4, end + 4 + length).toString('utf8'),
      };
      resolve({ ...response, first: first ?? 'answered', bodySent, closed });
      socket.end();
    });
    socket.on('error', (e) => {
      if (!response) reject(e);
    });
  });
}

const codeOf = (p: { body: string }) => (JSON.parse(p.body) as { error: { code: string } }).error.code;

describe('API keys on a route that matches the model', () => {
  let llama: TestUpstream;
  let qwen: TestUpstream;
  let gw: TestGateway;
  before(async () => {
    [llama, qwen] = await Promise.all([startUpstream('llama'), startUpstream('qwen')]);
    gw =
      await startGateway(`${secret('alpha', { key: ALPHA_KEY }, 'gold')}${secret('bravo', { key: BRAVO_KEY })}apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: { name: chat, namespace: ml }
spec:
  hostnames: [keys.test]
  auth:
    apiKeys: { header: x-api-key, secretRefs: [{ name: alpha }, { name: bravo }] }
  rules:
    - name: llama
      matches: [{ path: { value: /v1/chat }, model: { value: llama-3-8b } }]
      backends: [{ name: llama, urls: ["${llama.url}"] }]
    - name: qwen
      matches: [{ path: { value: /v1/chat }, model: { type: Glob, value: "qwen-*" } }]
      authorization: { groups: [gold] }
      backends: [{ name: qwen, urls: ["${qwen.url}"] }]
    - name: validated
      matches: [{ path: { value: /v1/validated } }]
      validation: { jsonSchema: { type: object, required: [model] } }
      backends: [{ name: llama, urls: ["${llama.url}"] }]
---
`);
  });
  after(async () => {
    await gw.close();
    await Promise.all([llama.close(), qwen.close()]);
  });
  const hits = () => llama.received.length + qwen.received.length;

  test('no key, 8 MiB body: 401 before a body byte is read, and the connection is closed', async () => {
    const before = hits();
    const p = await probe(gw, '/v1/chat', { host: 'keys.test' }, BIG);
    assert.equal(p.status, 401);
    assert.equal(codeOf(p), 'MG_UNAUTHENTICATED');
    assert.match(p.headers['www-authenticate'] ?? '', /^ApiKey realm="modelgate", header="x-api-key"/);
    assert.equal(p.first, 'answered', 'the gateway answered before reading the body');
    assert.equal(p.bodySent, 0);
    assert.equal(p.headers.connection, 'close');
    await p.closed;
    assert.equal(hits(), before);
  });

  test('an unknown key and an x-model header: 401 before the body is read', async () => {
    const unknown = await probe(
      gw,
      '/v1/chat',
      { host: 'keys.test', 'x-api-key': 'sk-nope-000000000000' },
      BIG,
    );
    assert.equal(unknown.status, 401);
    assert.equal(unknown.first, 'answered');
    assert.equal(unknown.bodySent, 0);
    const withHeader = await probe(gw, '/v1/chat', { host: 'keys.test', 'x-model': 'llama-3-8b' }, BIG);
    assert.equal(withHeader.status, 401);
    assert.equal(withHeader.first, 'answered');
    assert.equal(withHeader.bodySent, 0);
  });

  test('a key some candidate rule admits is read; the chosen rule still authorizes it', async () => {
    // bravo may use llama (no authorization) but not qwen (gold): the body decides, so it is read.
    const p = await probe(
      gw,
      '/v1/chat',
      { host: 'keys.test', 'x-api-key': BRAVO_KEY },
      64 * 1024,
      '{"model":"qwen-2","m":"',
    );
    assert.equal(p.first, 'reading');
    assert.equal(p.status, 403);
    assert.equal(codeOf(p), 'MG_FORBIDDEN');
  });

  test('a route whose filter reads the body (validation) authenticates first too', async () => {
    const p = await probe(gw, '/v1/validated', { host: 'keys.test' }, BIG);
    assert.equal(p.status, 401);
    assert.equal(p.first, 'answered');
    assert.equal(p.bodySent, 0);
    const ok = await probe(gw, '/v1/validated', { host: 'keys.test', 'x-api-key': ALPHA_KEY }, 200 * 1024);
    assert.equal(ok.first, 'reading');
    assert.equal(ok.status, 200);
    const invalid = await send(gw.url, {
      path: '/v1/validated',
      body: '{"messages":[]}',
      headers: { host: 'keys.test', 'x-api-key': ALPHA_KEY },
    });
    assert.equal(invalid.status, 400);
    assert.equal(invalid.json<{ error: { code: string } }>().error.code, 'MG_REQUEST_INVALID');
  });

  test('a small refused body is drained and the connection stays usable', async () => {
    const body = '{"model":"llama-3-8b"}';
    const refused = `POST /v1/chat HTTP/1.1\r\nhost: keys.test\r\ncontent-length: ${body.length}\r\n\r\n${body}`;
    const next = `POST /v1/chat HTTP/1.1\r\nhost: keys.test\r\nx-api-key: ${ALPHA_KEY}\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`;
    const out = await sendRaw(gw.url, refused + next);
    assert.deepEqual(
      [...out.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]),
      ['401', '200'],
    );
  });

  test('each request is counted once: a refusal before the body, an admission by the rule', async () => {
    const count = async (outcome: string) => {
      const text = await gw.proxy.metrics.registry.metrics();
      const line = text
        .split('\n')
        .find((l) =>
          l.startsWith(
            `modelgate_auth_decisions_total{route="ml/chat",method="${outcome === 'allowed' ? 'apiKey' : 'none'}",outcome="${outcome}"}`,
          ),
        );
      return Number(line?.split(' ').at(-1) ?? 0);
    };
    const [refused, allowed] = [await count('unauthenticated'), await count('allowed')];
    await probe(gw, '/v1/chat', { host: 'keys.test' }, BIG);
    const ok = await send(gw.url, {
      path: '/v1/chat',
      body: '{"model":"llama-3-8b"}',
      headers: { host: 'keys.test', 'x-api-key': ALPHA_KEY },
    });
    assert.equal(ok.status, 200);
    assert.equal(await count('unauthenticated'), refused + 1);
    assert.equal(await count('allowed'), allowed + 1);
  });

  test('with a key, requests still route by the body model and by x-model', async () => {
    const key = { host: 'keys.test', 'x-api-key': ALPHA_KEY };
    const big = await probe(gw, '/v1/chat', key, 3 * 1024 * 1024);
    assert.equal(big.first, 'reading');
    assert.equal(big.status, 200);
    assert.equal(big.headers['x-upstream'], 'llama');
    assert.equal(llama.received.at(-1)!.bodyBytes, 3 * 1024 * 1024);
    const body = await send(gw.url, { path: '/v1/chat', body: '{"model":"qwen-2-7b"}', headers: key });
    assert.equal(body.headers['x-upstream'], 'qwen');
    const header = await send(gw.url, {
      path: '/v1/chat',
      body: '{"messages":[]}',
      headers: { ...key, 'x-model': 'qwen-2-7b' },
    });
    assert.equal(header.headers['x-upstream'], 'qwen');
    const agree = await send(gw.url, {
      path: '/v1/chat',
      body: '{"model":"llama-3-8b"}',
      headers: { ...key, 'x-model': 'llama-3-8b' },
    });
    assert.equal(agree.headers['x-upstream'], 'llama');
    const noBody = await send(gw.url, {
      method: 'POST',
      path: '/v1/chat',
      headers: { ...key, 'x-model': 'llama-3-8b' },
    });
    assert.equal(noBody.headers['x-upstream'], 'llama');
  });

  test('x-model and the body must still agree, and the body may name the model once', async () => {
    const key = { host: 'keys.test', 'x-api-key': ALPHA_KEY };
    const before = hits();
    const mismatch = await send(gw.url, {
      path: '/v1/chat',
      body: '{"model":"llama-3-8b"}',
      headers: { ...key, 'x-model': 'qwen-2' },
    });
    assert.equal(mismatch.status, 400);
    assert.equal(mismatch.json<{ error: { code: string } }>().error.code, 'MG_MODEL_MISMATCH');
    const twice = await send(gw.url, {
      path: '/v1/chat',
      body: '{"model":"llama-3-8b","model":"llama-3-8b"}',
      headers: { ...key, 'x-model': 'llama-3-8b' },
    });
    assert.equal(twice.json<{ error: { code: string } }>().error.code, 'MG_MODEL_AMBIGUOUS');
    const badEncoding = await send(gw.url, {
      path: '/v1/chat',
      body: '{"model":"llama-3-8b"}',
      headers: { ...key, 'x-model': 'llama-3-8b', 'content-encoding': 'br' },
    });
    assert.equal(badEncoding.status, 400);
    assert.equal(badEncoding.json<{ error: { code: string } }>().error.code, 'MG_BAD_CONTENT_ENCODING');
    assert.equal(hits(), before, 'refused requests never reach an upstream');
  });
});

describe('JWT on a route that matches the model', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  let jwks: JwksServer;
  let token: string;
  before(async () => {
    const rsa = await generateKeyPair('RS256');
    jwks = await startJwksServer({
      keys: [{ ...(await exportJWK(rsa.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }],
    });
    const now = Math.floor(Date.now() / 1000);
    token = await new SignJWT({ scope: 'inference' })
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setIssuer(ISSUER)
      .setAudience('modelgate')
      .setSubject('user-1')
      .setIssuedAt(now)
      .setExpirationTime(now + 3600)
      .sign(rsa.privateKey);
    up = await startUpstream('vllm');
    gw = await startGateway(`apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: { name: jwt, namespace: ml }
spec:
  hostnames: [jwt.test]
  auth:
    jwt:
      - name: corp
        issuer: ${ISSUER}
        audiences: [modelgate]
        algorithms: [RS256]
        jwksUri: ${jwks.url}
  rules:
    - name: llama
      matches: [{ path: { value: /v1/chat }, model: { value: llama-3-8b } }]
      backends: [{ name: vllm, urls: ["${up.url}"] }]
---
`);
  });
  after(async () => {
    await gw.close();
    await up.close();
    await jwks.close();
  });

  test('no token or a bad one, 8 MiB body: 401 before a body byte is read', async () => {
    const before = up.received.length;
    for (const auth of [undefined, 'Bearer not.a.jwt', `Bearer ${token.slice(0, -4)}AAAA`]) {
      const p = await probe(
        gw,
        '/v1/chat',
        { host: 'jwt.test', ...(auth ? { authorization: auth } : {}) },
        BIG,
      );
      assert.equal(p.status, 401, String(auth));
      assert.equal(codeOf(p), 'MG_UNAUTHENTICATED');
      assert.equal(p.first, 'answered', String(auth));
      assert.equal(p.bodySent, 0);
    }
    assert.equal(up.received.length, before);
  });

  test('a valid token routes by the body model', async () => {
    const p = await probe(
      gw,
      '/v1/chat',
      { host: 'jwt.test', authorization: `Bearer ${token}` },
      1024 * 1024,
    );
    assert.equal(p.first, 'reading');
    assert.equal(p.status, 200);
    assert.equal(up.received.at(-1)!.bodyBytes, 1024 * 1024);
    const other = await send(gw.url, {
      path: '/v1/chat',
      body: '{"model":"gpt-5"}',
      headers: { host: 'jwt.test', authorization: `Bearer ${token}` },
    });
    assert.equal(other.status, 404);
  });
});

describe('routes with different auth on the same path, told apart by the model', () => {
  let a: TestUpstream;
  let b: TestUpstream;
  let pub: TestUpstream;
  let gw: TestGateway;
  const routeOf = (name: string, spec: string) => `apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: { name: ${name}, namespace: ml }
spec: ${spec}
---
`;
  before(async () => {
    [a, b, pub] = await Promise.all([startUpstream('a'), startUpstream('b'), startUpstream('pub')]);
    gw = await startGateway(
      secret('alpha', { key: ALPHA_KEY }) +
        secret('bravo', { key: BRAVO_KEY }) +
        routeOf(
          'team-a',
          `{hostnames: [mixed.test, open.test], auth: {apiKeys: {header: x-api-key, secretRefs: [{name: alpha}]}},
            rules: [{matches: [{path: {value: /v1/chat}, model: {type: Glob, value: "a-*"}}], backends: [{name: a, urls: ["${a.url}"]}]}]}`,
        ) +
        routeOf(
          'team-b',
          `{hostnames: [mixed.test, open.test], auth: {apiKeys: {header: x-api-key, secretRefs: [{name: bravo}]}},
            rules: [{matches: [{path: {value: /v1/chat}, model: {type: Glob, value: "b-*"}}], backends: [{name: b, urls: ["${b.url}"]}]}]}`,
        ) +
        routeOf(
          'free',
          `{hostnames: [open.test], maxRequestBodySize: 1Mi,
            rules: [{matches: [{path: {value: /v1/chat}, model: {value: free}}], backends: [{name: pub, urls: ["${pub.url}"]}]}]}`,
        ),
    );
  });
  after(async () => {
    await gw.close();
    await Promise.all([a.close(), b.close(), pub.close()]);
  });
  const hits = () => a.received.length + b.received.length + pub.received.length;

  test('a caller no candidate admits gets the first candidate’s 401 before the body is read', async () => {
    const before = hits();
    for (const key of [undefined, 'sk-nobody-0000000000000']) {
      const p = await probe(
        gw,
        '/v1/chat',
        { host: 'mixed.test', ...(key ? { 'x-api-key': key } : {}) },
        BIG,
      );
      assert.equal(p.status, 401);
      assert.equal(p.first, 'answered');
      assert.equal(p.bodySent, 0);
    }
    assert.equal(hits(), before);
  });

  test('a caller admitted by one candidate is read, and each route still checks its own callers', async () => {
    const asA = { host: 'mixed.test', 'x-api-key': ALPHA_KEY };
    const ok = await probe(gw, '/v1/chat', asA, 512 * 1024, '{"model":"a-1","m":"');
    assert.equal(ok.first, 'reading');
    assert.equal(ok.status, 200);
    assert.equal(ok.headers['x-upstream'], 'a');
    const wrong = await send(gw.url, { path: '/v1/chat', body: '{"model":"b-1"}', headers: asA });
    assert.equal(wrong.status, 401, 'team-b does not take alpha');
    const asB = await send(gw.url, {
      path: '/v1/chat',
      body: '{"model":"b-1"}',
      headers: { host: 'mixed.test', 'x-api-key': BRAVO_KEY },
    });
    assert.equal(asB.headers['x-upstream'], 'b');
  });

  test('beside a public candidate, an anonymous caller may send only what the public route accepts', async () => {
    const anonymous = { host: 'open.test' };
    const free = await send(gw.url, { path: '/v1/chat', body: '{"model":"free"}', headers: anonymous });
    assert.equal(free.headers['x-upstream'], 'pub');
    const before = hits();
    const big = await probe(gw, '/v1/chat', anonymous, 2 * 1024 * 1024, '{"model":"a-1","m":"');
    assert.equal(big.status, 413);
    assert.equal(codeOf(big), 'MG_BODY_TOO_LARGE');
    assert.equal(big.first, 'answered');
    assert.equal(big.bodySent, 0);
    assert.equal(big.headers.connection, 'close');
    const small = await send(gw.url, { path: '/v1/chat', body: '{"model":"a-1"}', headers: anonymous });
    assert.equal(small.status, 401);
    // An authenticated caller of team-a keeps its own (default 64 MiB) limit.
    const asA = await probe(
      gw,
      '/v1/chat',
      { ...anonymous, 'x-api-key': ALPHA_KEY },
      2 * 1024 * 1024,
      '{"model":"a-1","m":"',
    );
    assert.equal(asA.status, 200);
    assert.equal(hits(), before + 1);
  });
});
