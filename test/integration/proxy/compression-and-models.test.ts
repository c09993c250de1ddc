/** Response compression where a route asks for it, and the synthesised model list. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { request } from 'undici';
import { send } from '../../support/client.ts';
import { route, startGateway, type TestGateway } from '../../support/gateway.ts';
import { startUpstream, type TestUpstream } from '../../support/upstream.ts';

const BIG = JSON.stringify({ choices: [{ text: 'token '.repeat(2000) }] });
let up: TestUpstream;
let gw: TestGateway;

before(async () => {
  up = await startUpstream('up', (req, res) => {
    if (req.url === '/sse') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(`data: ${BIG}\n\n`);
    } else if (req.url === '/small') {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': 2 });
      res.end('{}');
    } else if (req.url === '/already') {
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
      res.end(Buffer.from('not really gzip'));
    } else {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(BIG) });
      res.end(BIG);
    }
  });
  gw = await startGateway(
    route(
      'zip',
      `{hostnames: [zip.test], compression: {enabled: true}, rules: [{backends: [{name: b, urls: ["${up.url}"]}]}]}`,
    ) +
      route('plain', `{hostnames: [plain.test], rules: [{backends: [{name: b, urls: ["${up.url}"]}]}]}`) +
      route(
        'models',
        `{hostnames: [api.test], rules: [
          {matches: [{path: {value: /v1/chat}, model: {value: llama-3-8b}}, {path: {value: /v1/chat}, model: {value: qwen-2}}], backends: [{name: b, urls: ["${up.url}"]}]},
          {matches: [{path: {value: /v1/chat}, model: {type: Glob, value: "mistral-*"}}], backends: [{name: b, urls: ["${up.url}"]}]}]}`,
      ) +
      route(
        'other-host',
        `{hostnames: [other.test], rules: [{matches: [{path: {value: /v1/chat}, model: {value: secret-model}}], backends: [{name: b, urls: ["${up.url}"]}]}]}`,
      ),
  );
});
after(async () => {
  await gw.close();
  await up.close();
});

async function get(host: string, path: string, acceptEncoding?: string) {
  const headers: Record<string, string> = { host };
  if (acceptEncoding) headers['accept-encoding'] = acceptEncoding;
  const r = await request(`${gw.url}${path}`, { headers });
  return { status: r.statusCode, headers: r.headers, body: Buffer.from(await r.body.arrayBuffer()) };
}

test('responses are compressed with the coding the client prefers', async () => {
  const br = await get('zip.test', '/json', 'gzip, br');
  assert.equal(br.headers['content-encoding'], 'br');
  assert.equal(br.headers.vary, 'Accept-Encoding');
  assert.equal(brotliDecompressSync(br.body).toString(), BIG);
  assert.ok(br.body.length < BIG.length / 10);
  const gz = await get('zip.test', '/json', 'gzip;q=1, br;q=0.5');
  assert.equal(gz.headers['content-encoding'], 'gzip');
  assert.equal(gunzipSync(gz.body).toString(), BIG);
});

test('no compression without the route, the client, a compressible body, or for event streams', async () => {
  assert.equal((await get('plain.test', '/json', 'br')).headers['content-encoding'], undefined);
  assert.equal((await get('zip.test', '/json')).headers['content-encoding'], undefined);
  assert.equal((await get('zip.test', '/small', 'br')).headers['content-encoding'], undefined);
  const sse = await get('zip.test', '/sse', 'gzip, br');
  assert.equal(sse.headers['content-encoding'], undefined);
  assert.equal(sse.body.toString(), `data: ${BIG}\n\n`);
  const already = await get('zip.test', '/already', 'br');
  assert.equal(already.headers['content-encoding'], 'gzip', 'an encoded body passes as it is');
});

test('GET /v1/models lists the exact model names the host serves', async () => {
  const r = await send(gw.url, { path: '/v1/models', headers: { host: 'api.test' } });
  assert.equal(r.status, 200);
  assert.deepEqual(r.json(), {
    object: 'list',
    data: [
      { id: 'llama-3-8b', object: 'model', created: 0, owned_by: 'modelgate' },
      { id: 'qwen-2', object: 'model', created: 0, owned_by: 'modelgate' },
    ],
  });
  const one = await send(gw.url, { path: '/v1/models/qwen-2', headers: { host: 'api.test' } });
  assert.equal(one.json<{ id: string }>().id, 'qwen-2');
  const missing = await send(gw.url, { path: '/v1/models/secret-model', headers: { host: 'api.test' } });
  assert.equal(missing.status, 404);
  assert.equal(missing.json<{ error: { code: string } }>().error.code, 'model_not_found');
  assert.equal(up.received.filter((x) => x.url.startsWith('/v1/models')).length, 0);
});
