/**
 * Transformation and validation end to end, beyond the golden pairs (transform-golden.test.ts):
 * compressed and chunked request bodies, response bodies past the bound or without a declared
 * length, HEAD answers, a token limit reading usage before a response transform removes it, and
 * the metrics that count what was passed unchanged.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { send } from '../../support/client.ts';
import { route, startGateway, type TestGateway } from '../../support/gateway.ts';
import { startUpstream, type TestUpstream } from '../../support/upstream.ts';

let up: TestUpstream;
let gw: TestGateway;
/** Request bodies the upstream received, as text. */
const bodies: string[] = [];
/** What the upstream answers next: set by each test. */
let answer: { status: number; headers: Record<string, string>; chunks: (string | Buffer)[] } = {
  status: 200,
  headers: { 'content-type': 'application/json' },
  chunks: ['{}'],
};

const USAGE = { prompt_tokens: 7, completion_tokens: 5, total_tokens: 12 };

before(async () => {
  up = await startUpstream('up', (req, res, body) => {
    bodies.push(body.toString('utf8'));
    if (req.url?.startsWith('/v1/chat/completions')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: 'c', choices: [{ message: { content: 'abcd' } }], usage: USAGE }));
      return;
    }
    res.writeHead(answer.status, answer.headers);
    for (const c of answer.chunks) res.write(c);
    res.end();
  });
  const backends = `backends: [{name: b, urls: ["${up.url}"]}]`;
  gw = await startGateway(
    route(
      'api',
      `{rules: [
        {name: body, matches: [{path: {value: /body}}], ${backends},
         validation: {jsonSchema: {type: object, required: [model]}},
         transform: {request: {body: [{op: Set, path: /stream, value: false}]}}},
        {name: answer, matches: [{path: {value: /answer}}], ${backends},
         transform: {response: {maxBodySize: "64", headers: {set: [{name: x-transformed, value: "yes"}]},
                                body: [{op: Remove, path: /secret}]}}},
        {name: chat, matches: [{path: {value: /v1/chat/completions}}], ${backends},
         transform: {response: {body: [{op: Remove, path: /usage}]}}}]}`,
      'ml',
    ) +
      `apiVersion: modelgate.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: tokens, namespace: ml}
spec:
  targetRefs: [{name: api}]
  limits:
    - {name: tokens, key: [{type: ClientIP}], algorithm: FixedWindow, amount: 100000, period: 1h, cost: ModelTokens}
`,
  );
});

after(async () => {
  await gw.close();
  await up.close();
});

const metric = async (name: string, labels: string): Promise<number> => {
  const text = await gw.proxy.metrics.registry.getSingleMetricAsString(name);
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line ? Number(line.split(' ').at(-1)) : 0;
};

describe('request bodies', () => {
  test('a gzip body is validated decoded, and sent rewritten as identity with its own length', async () => {
    const r = await send(gw.url, {
      path: '/body',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: gzipSync(JSON.stringify({ model: 'm', stream: true })),
    });
    assert.equal(r.status, 200);
    const got = up.received.at(-1)!;
    assert.equal(got.headers['content-encoding'], undefined);
    assert.equal(bodies.at(-1), '{"model":"m","stream":false}');
    assert.equal(got.headers['content-length'], String(Buffer.byteLength(bodies.at(-1)!)));
  });

  test('a chunked body is read, rewritten and sent with a content-length', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const url = new URL(gw.url);
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          method: 'POST',
          path: '/body',
          headers: { 'content-type': 'application/json' },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.write('{"model":');
      req.end('"m"}');
    });
    assert.equal(status, 200);
    const got = up.received.at(-1)!;
    assert.equal(got.headers['transfer-encoding'], undefined);
    assert.equal(got.headers['content-length'], String(Buffer.byteLength('{"model":"m","stream":false}')));
    assert.equal(bodies.at(-1), '{"model":"m","stream":false}');
  });

  test('an invalid body never reaches the upstream, and the refusal is counted', async () => {
    const before = up.received.length;
    const r = await send(gw.url, { path: '/body', body: JSON.stringify({ stream: true }) });
    assert.equal(r.status, 400);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.deepEqual(r.json(), {
      error: {
        code: 'MG_REQUEST_INVALID',
        message: "the request body does not match the route's schema: /model: is required",
        requestId: r.headers['x-request-id'],
      },
    });
    const notJson = await send(gw.url, { path: '/body', body: 'model=m' });
    assert.equal(notJson.status, 400);
    assert.equal(notJson.json<{ error: { code: string } }>().error.code, 'MG_REQUEST_NOT_JSON');
    assert.equal(up.received.length, before);
    assert.equal(await metric('modelgate_request_validation_failures_total', 'reason="schema"'), 1);
    assert.equal(await metric('modelgate_request_validation_failures_total', 'reason="not_json"'), 1);
    assert.equal(await metric('modelgate_gateway_errors_total', 'code="MG_REQUEST_INVALID"'), 1);
  });
});

describe('response bodies', () => {
  test('an answer without a declared length is held and rewritten when it fits the bound', async () => {
    answer = {
      status: 200,
      headers: { 'content-type': 'application/json' },
      chunks: ['{"a":1,', '"secret":2}'],
    };
    const r = await send(gw.url, { path: '/answer' });
    assert.equal(r.text, '{"a":1}');
    assert.equal(r.headers['x-transformed'], 'yes');
    assert.equal(r.headers['content-length'], undefined);
  });

  test('an answer that grows past the bound is released unchanged, and counted', async () => {
    const big = JSON.stringify({ secret: 1, pad: 'x'.repeat(100) });
    answer = {
      status: 200,
      headers: { 'content-type': 'application/json' },
      chunks: [big.slice(0, 40), big.slice(40)],
    };
    const before = await metric('modelgate_transform_skipped_total', 'reason="too_large"');
    const r = await send(gw.url, { path: '/answer' });
    assert.equal(r.text, big);
    assert.equal(await metric('modelgate_transform_skipped_total', 'reason="too_large"'), before + 1);
  });

  test('an answer declared larger than the bound streams through with its length', async () => {
    const big = JSON.stringify({ secret: 1, pad: 'x'.repeat(100) });
    answer = {
      status: 200,
      headers: { 'content-type': 'application/json', 'content-length': String(big.length) },
      chunks: [big],
    };
    const r = await send(gw.url, { path: '/answer' });
    assert.equal(r.text, big);
    assert.equal(r.headers['content-length'], String(big.length));
    assert.equal(
      await metric(
        'modelgate_transform_skipped_total',
        'route="ml/api",direction="response",reason="too_large"',
      ),
      2,
    );
  });

  test('a compressed answer passes unchanged (the gateway asked for identity, the upstream ignored it)', async () => {
    const gz = gzipSync('{"secret":1}');
    answer = {
      status: 200,
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      chunks: [gz],
    };
    const r = await send(gw.url, { path: '/answer' });
    assert.deepEqual(r.body, gz);
    assert.equal(up.received.at(-1)!.headers['accept-encoding'], 'identity');
    assert.equal(r.headers['content-encoding'], 'gzip');
    assert.equal(await metric('modelgate_transform_skipped_total', 'reason="encoded"'), 1);
  });

  test('HEAD: response header changes apply, nothing waits for a body', async () => {
    answer = {
      status: 200,
      headers: { 'content-type': 'application/json', 'content-length': '11' },
      chunks: [],
    };
    const r = await send(gw.url, { method: 'HEAD', path: '/answer' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-transformed'], 'yes');
    assert.equal(r.headers['content-length'], '11');
  });

  test('a token limit reads usage before the response transform removes it', async () => {
    const before = await metric('modelgate_ratelimit_tokens_charged_total', 'source="usage"');
    const r = await send(gw.url, {
      path: '/v1/chat/completions',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 50 }),
    });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { id: 'c', choices: [{ message: { content: 'abcd' } }] });
    assert.equal(
      await metric('modelgate_ratelimit_tokens_charged_total', 'source="usage"'),
      before + USAGE.total_tokens,
    );
  });
});

describe('WebSocket upgrades', () => {
  test('request header, path and Host rewrites apply to the upgrade; validation refuses it (no body)', async () => {
    const { createServer } = await import('node:http');
    const { WebSocket, WebSocketServer } = await import('ws');
    const upstream = createServer((_req, res) => res.end('not a websocket'));
    const wss = new WebSocketServer({ server: upstream });
    const seen: { url: string; headers: Record<string, unknown> }[] = [];
    wss.on('connection', (ws, req) => {
      seen.push({ url: req.url ?? '', headers: req.headers });
      ws.on('message', (data) => ws.send(data));
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(upstream.address() as { port: number }).port}`;
    const ws = await startGateway(
      route(
        'ws',
        `{rules: [
          {matches: [{path: {value: /realtime}}], backends: [{name: b, urls: ["${url}"]}],
           transform: {request: {headers: {set: [{name: x-tenant, value: acme}]},
                                 urlRewrite: {hostname: rt.internal, path: {type: ReplacePrefixMatch, replacePrefixMatch: /v1/realtime}}}}},
          {matches: [{path: {value: /validated}}], backends: [{name: b, urls: ["${url}"]}],
           validation: {jsonSchema: {type: object}}}]}`,
      ),
    );
    try {
      const client = new WebSocket(`${ws.url.replace('http', 'ws')}/realtime/s1?x=1`);
      await new Promise((resolve, reject) => {
        client.once('open', resolve);
        client.once('error', reject);
      });
      client.send('ping');
      const echoed = await new Promise<string>((resolve) =>
        client.once('message', (d) => resolve(String(d))),
      );
      assert.equal(echoed, 'ping');
      client.close();
      assert.equal(seen.at(-1)!.url, '/v1/realtime/s1?x=1');
      assert.equal(seen.at(-1)!.headers.host, 'rt.internal');
      assert.equal(seen.at(-1)!.headers['x-tenant'], 'acme');

      const refused = new WebSocket(`${ws.url.replace('http', 'ws')}/validated`);
      const status = await new Promise<number>((resolve) =>
        refused.once('unexpected-response', (_req, res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        }),
      );
      assert.equal(status, 400);
    } finally {
      await ws.close();
      wss.close();
      upstream.closeAllConnections();
      await new Promise<void>((resolve) => upstream.close(() => resolve()));
    }
  });
});
