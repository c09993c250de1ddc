/** WebSockets through the gateway: routed, balanced, echoed both ways, closes propagated. */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { route, startGateway, type TestGateway } from '../../support/gateway.ts';

let upstream: ReturnType<typeof createServer>;
let wss: WebSocketServer;
let gw: TestGateway;
const upstreamCloses: number[] = [];
const seenHeaders: Record<string, string | string[] | undefined>[] = [];

before(async () => {
  upstream = createServer((_req, res) => res.end('not a websocket'));
  wss = new WebSocketServer({
    server: upstream,
    handleProtocols: (protocols) => (protocols.has('chat.v1') ? 'chat.v1' : false),
  });
  wss.on('connection', (ws, req) => {
    seenHeaders.push(req.headers);
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    ws.on('close', (code) => upstreamCloses.push(code));
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  gw = await startGateway(
    route(
      'ws',
      `{hostnames: [ws.test], rules: [{matches: [{path: {value: /realtime}}], backends: [{name: b, urls: ["${url}"]}]}]}`,
    ),
  );
});
after(async () => {
  await gw.close();
  wss.close();
  upstream.closeAllConnections();
  await new Promise<void>((resolve) => upstream.close(() => resolve()));
});

function connect(path: string, protocols?: string[]): WebSocket {
  return new WebSocket(`${gw.url.replace('http', 'ws')}${path}`, protocols, { headers: { host: 'ws.test' } });
}

test('messages echo through the gateway, text and binary, with the negotiated subprotocol', async () => {
  const ws = connect('/realtime/session?id=1', ['chat.v1']);
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  assert.equal(ws.protocol, 'chat.v1');
  const next = () =>
    new Promise<{ data: Buffer; binary: boolean }>((resolve) =>
      ws.once('message', (data, binary) => resolve({ data: data as Buffer, binary })),
    );
  ws.send('hello');
  const text = await next();
  assert.equal(text.data.toString(), 'hello');
  assert.equal(text.binary, false);
  const big = Buffer.alloc(3 * 1024 * 1024, 7);
  ws.send(big);
  const bin = await next();
  assert.equal(bin.binary, true);
  assert.ok(bin.data.equals(big));
  assert.equal(seenHeaders.at(-1)!['x-forwarded-for'], '127.0.0.1');
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  ws.close(1000, 'bye');
  assert.equal(await closed, 1000);
  await new Promise<void>((resolve) => {
    const check = () => (upstreamCloses.includes(1000) ? resolve() : setImmediate(check));
    check();
  });
});

test('an upgrade without a route gets a JSON 404 and no tunnel', async () => {
  const ws = connect('/elsewhere');
  const response = await new Promise<{ status: number; body: string }>((resolve) => {
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
  });
  assert.equal(response.status, 404);
  assert.equal(JSON.parse(response.body).error.code, 'MG_NO_ROUTE');
});
