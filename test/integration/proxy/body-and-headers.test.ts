/** Reading the model from bodies, body limits, and what the upstream receives. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { send } from '../../support/client.ts';
import { route, startGateway, type TestGateway } from '../../support/gateway.ts';
import { sha256, startUpstream, type TestUpstream } from '../../support/upstream.ts';

let llama: TestUpstream;
let other: TestUpstream;
let plain: TestUpstream;
let gw: TestGateway;

before(async () => {
  [llama, other, plain] = await Promise.all([
    startUpstream('llama'),
    startUpstream('other'),
    startUpstream('plain'),
  ]);
  gw = await startGateway(
    route(
      'chat',
      `{maxRequestBodySize: 4Mi, rules: [
        {name: llama, matches: [{path: {value: /v1/chat}, model: {value: llama-3-8b}}], backends: [{name: b, urls: ["${llama.url}"]}]},
        {name: glob, matches: [{path: {value: /v1/chat}, model: {type: Glob, value: "qwen-*"}}], backends: [{name: b, urls: ["${other.url}"]}]}]}`,
    ) +
      route(
        'plain',
        `{maxRequestBodySize: 1Mi, rules: [{matches: [{path: {value: /upload}}], backends: [{name: b, urls: ["${plain.url}"]}]}]}`,
      ),
  );
});

after(async () => {
  await gw.close();
  await Promise.all([llama.close(), other.close(), plain.close()]);
});

const hits = () => llama.received.length + other.received.length + plain.received.length;

test('the model is found after a 2 MB field and the upstream gets exactly the bytes sent', async () => {
  const body = `{"messages":[{"role":"user","content":"${'x'.repeat(2 * 1024 * 1024)}"}],"model":"llama-3-8b","stream":false}`;
  const r = await send(gw.url, {
    path: '/v1/chat/completions',
    body,
    headers: { 'content-type': 'application/json' },
  });
  assert.equal(r.status, 200);
  assert.equal(r.headers['x-upstream'], 'llama');
  const got = llama.received.at(-1)!;
  assert.equal(got.bodySha256, sha256(body));
  assert.equal(got.bodyBytes, Buffer.byteLength(body));
});

test('a gzip-encoded body is read for the model and forwarded still encoded', async () => {
  const zipped = gzipSync(JSON.stringify({ model: 'qwen-2-7b', messages: [] }));
  const r = await send(gw.url, { path: '/v1/chat', body: zipped, headers: { 'content-encoding': 'gzip' } });
  assert.equal(r.headers['x-upstream'], 'other');
  assert.equal(other.received.at(-1)!.bodySha256, sha256(zipped));
});

test('a model nobody routes gets 404; no model at all gets 404', async () => {
  assert.equal((await send(gw.url, { path: '/v1/chat', body: '{"model":"gpt-5"}' })).status, 404);
  assert.equal((await send(gw.url, { path: '/v1/chat', body: '{"messages":[]}' })).status, 404);
});

test('x-model and the body must agree, and the body may name the model once', async () => {
  const before = hits();
  const mismatch = await send(gw.url, {
    path: '/v1/chat',
    body: '{"model":"llama-3-8b"}',
    headers: { 'x-model': 'qwen-2' },
  });
  assert.equal(mismatch.status, 400);
  assert.equal(mismatch.json<{ error: { code: string } }>().error.code, 'MG_MODEL_MISMATCH');
  const twice = await send(gw.url, { path: '/v1/chat', body: '{"model":"qwen-1","model":"llama-3-8b"}' });
  assert.equal(twice.json<{ error: { code: string } }>().error.code, 'MG_MODEL_AMBIGUOUS');
  const agree = await send(gw.url, {
    path: '/v1/chat',
    body: '{"model":"llama-3-8b"}',
    headers: { 'x-model': 'llama-3-8b' },
  });
  assert.equal(agree.headers['x-upstream'], 'llama');
  assert.equal(hits(), before + 1, 'refused requests never reach an upstream');
});

test('bodies over the route limit get 413, declared or chunked, and reach no upstream', async () => {
  const before = hits();
  const big = 'y'.repeat(1024 * 1024 + 1);
  const declared = await send(gw.url, { path: '/upload', body: big });
  assert.equal(declared.status, 413);
  assert.equal(declared.json<{ error: { code: string } }>().error.code, 'MG_BODY_TOO_LARGE');
  const modelRoute = await send(gw.url, {
    path: '/v1/chat',
    body: `{"model":"llama-3-8b","p":"${'z'.repeat(5 * 1024 * 1024)}"}`,
  });
  assert.equal(modelRoute.status, 413);
  assert.equal(hits(), before);
});

test('bodies within the limit stream through unchanged', async () => {
  const body = Buffer.alloc(900 * 1024, 7);
  const r = await send(gw.url, {
    path: '/upload',
    body,
    headers: { 'content-type': 'application/octet-stream' },
  });
  assert.equal(r.status, 200);
  assert.equal(plain.received.at(-1)!.bodySha256, sha256(body));
});

test('hop-by-hop headers are dropped and forwarding headers set', async () => {
  const r = await send(gw.url, {
    path: '/upload?a=1',
    headers: {
      host: 'api.example.com:8443',
      connection: 'keep-alive, x-secret-hop',
      'x-secret-hop': 'do not forward',
      'keep-alive': 'timeout=5',
      'x-forwarded-for': '203.0.113.7',
      'x-request-id': 'client-chosen-id',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    },
  });
  assert.equal(r.status, 200);
  assert.equal(r.headers['x-request-id'], 'client-chosen-id');
  const h = plain.received.at(-1)!.headers;
  assert.equal(h['x-secret-hop'], undefined);
  assert.equal(h['keep-alive'], undefined);
  // The test client is no trusted proxy: what it says in x-forwarded-for is replaced, not extended.
  assert.equal(h['x-forwarded-for'], '127.0.0.1');
  assert.equal(h['x-forwarded-proto'], 'http');
  assert.equal(h['x-forwarded-host'], 'api.example.com:8443');
  assert.equal(h.host, 'api.example.com:8443', 'IP endpoints get the client Host');
  assert.equal(h['x-request-id'], 'client-chosen-id');
  assert.equal(h.traceparent, '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
  assert.equal(plain.received.at(-1)!.url, '/upload?a=1');
});

test('a request id and a trace are created when the client sends none', async () => {
  const r = await send(gw.url, { path: '/upload' });
  const h = plain.received.at(-1)!.headers;
  assert.match(String(r.headers['x-request-id']), /^[0-9a-f]{12}-[0-9a-z]+$/);
  assert.equal(h['x-request-id'], r.headers['x-request-id']);
  assert.match(String(h.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
});
