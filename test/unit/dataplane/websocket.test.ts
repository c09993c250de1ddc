/**
 * WebSocket proxying with real endpoints on 127.0.0.1: a `ws` upstream, a minimal node:http front
 * server whose 'upgrade' handler calls proxyUpgrade (with headers built the way the proxy builds
 * them, so the handshake headers must be added back), and a `ws` or raw-socket client. Tests wait
 * on events, never on elapsed time.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { type AddressInfo, connect, createServer as createNetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { test } from 'node:test';
import { type ServerOptions, WebSocket, WebSocketServer } from 'ws';
import { Errors } from '../../../src/dataplane/errors.ts';
import {
  requestIdFor,
  traceparentFor,
  upstreamRequestHeaders,
} from '../../../src/dataplane/upstream/headers.ts';
import {
  proxyUpgrade,
  rejectUpgradeWith,
  type UpgradeCloseInfo,
  type UpgradeHandle,
  type UpgradeTarget,
} from '../../../src/dataplane/websocket.ts';

/** A queue of values that tests await one at a time. */
class Queue<T> {
  private readonly items: T[] = [];
  private readonly waiters: ((v: T) => void)[] = [];
  readonly all: T[] = [];
  push(v: T): void {
    this.all.push(v);
    const w = this.waiters.shift();
    if (w) w(v);
    else this.items.push(v);
  }
  next(): Promise<T> {
    const v = this.items.shift();
    if (v !== undefined) return Promise.resolve(v);
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

async function listenOn(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

interface Upstream {
  url: string;
  /** Server-side sockets, in connection order. */
  connections: Queue<WebSocket>;
  /** The upgrade requests the upstream accepted. */
  requests: IncomingMessage[];
  close(): Promise<void>;
}

/** A `ws` echo server (text stays text, binary stays binary). */
async function startEcho(
  options: ServerOptions = {},
  server: Server = createServer(),
  scheme = 'http',
): Promise<Upstream> {
  const wss = new WebSocketServer({ ...options, server });
  const connections = new Queue<WebSocket>();
  const requests: IncomingMessage[] = [];
  wss.on('connection', (ws, req) => {
    requests.push(req);
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    ws.on('error', () => {});
    connections.push(ws);
  });
  const port = await listenOn(server);
  return {
    url: `${scheme}://127.0.0.1:${port}`,
    connections,
    requests,
    close: async () => {
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await closeServer(server);
    },
  };
}

interface Front {
  url: string;
  opens: Queue<string | undefined>;
  closes: Queue<UpgradeCloseInfo>;
  /** The client sockets handed to proxyUpgrade. */
  sockets: Duplex[];
  close(): Promise<void>;
}

/** The gateway's part in miniature: build the upstream headers as the proxy does, then proxyUpgrade. */
async function startFront(
  origin: string,
  opts: Partial<UpgradeTarget> = {},
  handOff = false,
): Promise<Front> {
  const opens = new Queue<string | undefined>();
  const closes = new Queue<UpgradeCloseInfo>();
  const sockets: Duplex[] = [];
  const handles: UpgradeHandle[] = [];
  const server = createServer((_req, res) => res.writeHead(426).end());
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    sockets.push(socket);
    if (req.url === '/no-route') {
      rejectUpgradeWith(socket, Errors.NoRoute, 'rid-no-route');
      return;
    }
    const requestId = requestIdFor(req.headers['x-request-id']);
    const headers = upstreamRequestHeaders(req.headers, {
      trustForwarded: false,
      clientAddress: req.socket.remoteAddress ?? '',
      proto: 'http',
      host: req.headers.host,
      requestId,
      traceparent: traceparentFor(req.headers.traceparent).header,
      upstreamHost: undefined,
    });
    handles.push(
      proxyUpgrade(
        req,
        socket,
        head,
        { origin, path: req.url ?? '/', headers, idleTimeoutMs: 30_000, connectTimeoutMs: 5_000, ...opts },
        { onOpen: (info) => opens.push(info.protocol), onClose: (info) => closes.push(info) },
      ),
    );
  });
  if (!handOff) {
    const port = await listenOn(server);
    return {
      url: `ws://127.0.0.1:${port}`,
      opens,
      closes,
      sockets,
      close: async () => {
        for (const h of handles) h.close();
        await closeServer(server);
      },
    };
  }
  // As the real listener does: a net server (allowHalfOpen false) hands connections to node:http.
  const outer = createNetServer((socket) => server.emit('connection', socket));
  await new Promise<void>((resolve) => outer.listen(0, '127.0.0.1', resolve));
  return {
    url: `ws://127.0.0.1:${(outer.address() as AddressInfo).port}`,
    opens,
    closes,
    sockets,
    close: async () => {
      for (const h of handles) h.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => outer.close(() => resolve()));
    },
  };
}

async function connectClient(url: string, protocols?: string[], options = {}): Promise<WebSocket> {
  const ws = new WebSocket(url, protocols, options);
  await once(ws, 'open');
  return ws;
}

/** Connects expecting a non-101 answer; resolves with its status, headers and body. */
function expectRefusal(
  url: string,
): Promise<{ status: number; headers: IncomingMessage['headers']; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.on('open', () => reject(new Error('unexpected open')));
    ws.on('error', () => {}); // ws reports the refusal as an error after 'unexpected-response'
    ws.on('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
        }),
      );
    });
  });
}

async function deadPort(): Promise<number> {
  const s = createServer();
  const port = await listenOn(s);
  await closeServer(s);
  return port;
}

test('text and binary messages are echoed through the tunnel; forwarding headers reach the upstream', async (t) => {
  const up = await startEcho();
  const front = await startFront(up.url);
  t.after(async () => {
    await front.close();
    await up.close();
  });
  const ws = await connectClient(`${front.url}/chat?x=1`, undefined, {
    headers: { 'x-request-id': 'rid-1' },
  });
  ws.send('hello');
  const [text, textIsBinary] = await once(ws, 'message');
  assert.equal(text.toString(), 'hello');
  assert.equal(textIsBinary, false);
  const bin = Buffer.from([0, 1, 2, 253, 254, 255]);
  ws.send(bin);
  const [echoed, binIsBinary] = await once(ws, 'message');
  assert.deepEqual(Buffer.from(echoed), bin);
  assert.equal(binIsBinary, true);

  const req = up.requests[0]!;
  assert.equal(req.url, '/chat?x=1');
  assert.equal(req.headers['x-request-id'], 'rid-1');
  assert.equal(req.headers['x-forwarded-for'], '127.0.0.1');
  assert.equal(req.headers['x-forwarded-proto'], 'http');

  ws.close(1000);
  await once(ws, 'close');
  const info = await front.closes.next();
  assert.equal(info.status, 101);
  assert.ok(info.reason === 'client-closed' || info.reason === 'upstream-closed', info.reason);
  // 'hello' (5) and 6 bytes with 6-byte headers from the client (masked), 2-byte headers back, plus close frames.
  assert.ok(info.bytesIn >= 5 + 6 + 6 + 6, `bytesIn ${info.bytesIn}`);
  assert.ok(info.bytesOut >= 5 + 6 + 2 + 2, `bytesOut ${info.bytesOut}`);
});

test('the subprotocol and extensions the upstream negotiates pass through unchanged', async (t) => {
  const up = await startEcho({
    handleProtocols: (protocols) => (protocols.has('chat.v2') ? 'chat.v2' : false),
    perMessageDeflate: { threshold: 0 },
  });
  const front = await startFront(up.url);
  t.after(async () => {
    await front.close();
    await up.close();
  });
  const ws = await connectClient(front.url, ['chat.v1', 'chat.v2'], { perMessageDeflate: true });
  assert.equal(ws.protocol, 'chat.v2');
  assert.match(ws.extensions, /permessage-deflate/);
  assert.equal(await front.opens.next(), 'chat.v2');
  assert.deepEqual(
    [...up.requests[0]!.headers['sec-websocket-protocol']!.split(/, */)],
    ['chat.v1', 'chat.v2'],
  );
  // Compressed frames survive the tunnel untouched.
  const text = 'compress me '.repeat(1000);
  ws.send(text);
  const [data] = await once(ws, 'message');
  assert.equal(data.toString(), text);
  ws.close();
  await once(ws, 'close');
});

test('a client close reaches the upstream with its code and reason', async (t) => {
  const up = await startEcho();
  const front = await startFront(up.url);
  t.after(async () => {
    await front.close();
    await up.close();
  });
  const ws = await connectClient(front.url);
  const server = await up.connections.next();
  ws.close(4001, 'client says bye');
  const [code, reason] = await once(server, 'close');
  assert.equal(code, 4001);
  assert.equal(reason.toString(), 'client says bye');
  await once(ws, 'close');
  assert.equal((await front.closes.next()).status, 101);
});

test('an upstream close reaches the client with its code and reason', async (t) => {
  const up = await startEcho();
  const front = await startFront(up.url);
  t.after(async () => {
    await front.close();
    await up.close();
  });
  const ws = await connectClient(front.url);
  const server = await up.connections.next();
  server.close(4002, 'upstream says bye');
  const [code, reason] = await once(ws, 'close');
  assert.equal(code, 4002);
  assert.equal(reason.toString(), 'upstream says bye');
  // After a close handshake both ends close TCP; which FIN the gateway sees first is a race.
  const info = await front.closes.next();
  assert.ok(info.reason === 'client-closed' || info.reason === 'upstream-closed', info.reason);
});

test('a client that drops its connection closes the upstream (1006) and vice versa', async (t) => {
  const up = await startEcho();
  const front = await startFront(up.url);
  t.after(async () => {
    await front.close();
    await up.close();
  });
  const a = await connectClient(front.url);
  const serverA = await up.connections.next();
  a.terminate();
  const [codeA] = await once(serverA, 'close');
  assert.equal(codeA, 1006);
  await front.closes.next();

  const b = await connectClient(front.url);
  const serverB = await up.connections.next();
  serverB.terminate();
  const [codeB] = await once(b, 'close');
  assert.equal(codeB, 1006);
  assert.equal((await front.closes.next()).reason, 'upstream-closed');
});

test('through a listener that hands sockets to node:http (no half-open sockets), as the gateway does', async (t) => {
  const up = await startEcho();
  const front = await startFront(up.url, {}, true);
  t.after(async () => {
    await front.close();
    await up.close();
  });
  const a = await connectClient(front.url);
  a.send('handed off');
  assert.equal((await once(a, 'message'))[0].toString(), 'handed off');
  const serverA = await up.connections.next();
  a.close(4003, 'from client');
  assert.deepEqual((await once(serverA, 'close')).map(String), ['4003', 'from client']);
  await once(a, 'close');
  await front.closes.next();

  const b = await connectClient(front.url);
  const serverB = await up.connections.next();
  serverB.close(4004, 'from upstream');
  assert.deepEqual((await once(b, 'close')).map(String), ['4004', 'from upstream']);
  await front.closes.next();
});

test('an upstream refusing the handshake (403) is relayed to the client and the connection closed', async (t) => {
  const up = await startEcho({
    verifyClient: (_info, cb) => cb(false, 403, 'Forbidden', { 'x-why': 'no-token' }),
  });
  const front = await startFront(up.url);
  t.after(async () => {
    await front.close();
    await up.close();
  });
  const r = await expectRefusal(front.url);
  assert.equal(r.status, 403);
  assert.equal(r.headers['x-why'], 'no-token');
  assert.equal(r.headers.connection, 'close');
  assert.equal(r.body, 'Forbidden');
  const info = await front.closes.next();
  assert.equal(info.reason, 'upstream-refused');
  assert.equal(info.status, 403);
  assert.equal(info.code, '');
  assert.equal(info.bytesOut, 'Forbidden'.length);
});

test('an upstream that is down gets the client a 502 JSON error', async (t) => {
  const front = await startFront(`http://127.0.0.1:${await deadPort()}`);
  t.after(() => front.close());
  const r = await expectRefusal(front.url);
  assert.equal(r.status, 502);
  assert.equal(r.headers['content-type'], 'application/json');
  const body = JSON.parse(r.body) as { error: { code: string; requestId: string } };
  assert.equal(body.error.code, 'MG_UPSTREAM_CONNECT_FAILED');
  assert.equal(body.error.requestId, r.headers['x-request-id']);
  const info = await front.closes.next();
  assert.equal(info.reason, 'upstream-failed');
  assert.equal(info.code, 'MG_UPSTREAM_CONNECT_FAILED');
  assert.equal(info.failure, 'connect');
});

test('rejectUpgrade answers a refusal before the handshake with a JSON error', async (t) => {
  const front = await startFront('http://127.0.0.1:1');
  t.after(() => front.close());
  const r = await expectRefusal(`${front.url}/no-route`);
  assert.equal(r.status, 404);
  assert.equal(r.headers.connection, 'close');
  assert.equal(r.headers['x-request-id'], 'rid-no-route');
  assert.deepEqual(JSON.parse(r.body), {
    error: { code: 'MG_NO_ROUTE', message: 'no route matches this request', requestId: 'rid-no-route' },
  });
  await once(front.sockets[0]!, 'close');
});

test('an upstream that accepts the connection but never answers the handshake gets a 504', async (t) => {
  const held = new Queue<Duplex>();
  const silent = createServer();
  silent.on('upgrade', (_req, socket: Duplex) => {
    // Read, so the gateway's FIN is seen, and answer it as a server would.
    socket.resume();
    socket.on('end', () => socket.end());
    held.push(socket);
  });
  const port = await listenOn(silent);
  const front = await startFront(`http://127.0.0.1:${port}`, { idleTimeoutMs: 200 });
  t.after(async () => {
    await front.close();
    for (const s of held.all) s.destroy(); // upgraded sockets are not the server's to close
    await closeServer(silent);
  });
  const refusal = expectRefusal(front.url);
  const upstreamSide = await held.next();
  const r = await refusal;
  assert.equal(r.status, 504);
  assert.equal((JSON.parse(r.body) as { error: { code: string } }).error.code, 'MG_UPSTREAM_TIMEOUT');
  if (!upstreamSide.destroyed) await once(upstreamSide, 'close');
  assert.equal((await front.closes.next()).failure, 'timeout');
});

test('a client that goes away during the handshake cancels the upstream request', async (t) => {
  const held = new Queue<Duplex>();
  const silent = createServer();
  silent.on('upgrade', (_req, socket: Duplex) => {
    // Read, so the gateway's FIN is seen, and answer it as a server would.
    socket.resume();
    socket.on('end', () => socket.end());
    held.push(socket);
  });
  const port = await listenOn(silent);
  const front = await startFront(`http://127.0.0.1:${port}`);
  t.after(async () => {
    await front.close();
    for (const s of held.all) s.destroy(); // upgraded sockets are not the server's to close
    await closeServer(silent);
  });
  const ws = new WebSocket(front.url);
  ws.on('error', () => {});
  const upstreamSide = await held.next();
  const upstreamClosed = once(upstreamSide, 'close');
  ws.terminate();
  await upstreamClosed;
  const info = await front.closes.next();
  assert.equal(info.reason, 'client-aborted');
  assert.equal(info.status, 0);
});

test('frames the client sends with the upgrade request (the head) reach the upstream', async (t) => {
  const up = await startEcho();
  const front = await startFront(up.url);
  t.after(async () => {
    await front.close();
    await up.close();
  });
  const port = Number(new URL(front.url).port);
  const socket: Socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const payload = Buffer.from('early bird');
  const mask = randomBytes(4);
  const frame = Buffer.concat([
    Buffer.from([0x81, 0x80 | payload.length]),
    mask,
    Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!)),
  ]);
  socket.write(
    Buffer.concat([
      Buffer.from(
        'GET /early HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      ),
      frame,
    ]),
  );
  const server = await up.connections.next();
  const [data] = await once(server, 'message');
  assert.equal(data.toString(), 'early bird');
  // The 101 carries the upstream's accept for the client's key (RFC 6455's own example).
  let received = '';
  while (!received.includes('\r\n\r\n')) received += (await once(socket, 'data'))[0].toString('latin1');
  assert.match(received, /^HTTP\/1\.1 101 /);
  assert.match(received, /\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/i);
  socket.destroy();
});

test('a request that is not a WebSocket upgrade is refused with 400', async (t) => {
  const up = await startEcho();
  const front = await startFront(up.url);
  t.after(async () => {
    await front.close();
    await up.close();
  });
  const socket = connect(Number(new URL(front.url).port), '127.0.0.1');
  socket.end('GET / HTTP/1.1\r\nHost: gw\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n');
  let received = '';
  socket.on('data', (c: Buffer) => {
    received += c.toString();
  });
  await once(socket, 'close');
  assert.match(received, /^HTTP\/1\.1 400 /);
  assert.match(received, /"code":"MG_BAD_REQUEST"/);
  assert.equal((await front.closes.next()).reason, 'bad-request');
  assert.equal(up.requests.length, 0);
});

test('no byte either way for idleTimeoutMs closes both sides', async (t) => {
  const up = await startEcho();
  const front = await startFront(up.url, { idleTimeoutMs: 200 });
  t.after(async () => {
    await front.close();
    await up.close();
  });
  const ws = await connectClient(front.url);
  const server = await up.connections.next();
  // Traffic keeps it open; then silence closes it.
  ws.send('still here');
  await once(ws, 'message');
  await Promise.all([once(ws, 'close'), once(server, 'close')]);
  const info = await front.closes.next();
  assert.equal(info.reason, 'idle-timeout');
  assert.equal(info.status, 101);
});

test('a message of several MB makes the round trip intact', async (t) => {
  const up = await startEcho();
  const front = await startFront(up.url);
  t.after(async () => {
    await front.close();
    await up.close();
  });
  const ws = await connectClient(front.url);
  const big = randomBytes(8 * 1024 * 1024);
  ws.send(big);
  const [data] = await once(ws, 'message');
  assert.equal(
    createHash('sha256').update(data).digest('hex'),
    createHash('sha256').update(big).digest('hex'),
  );
  ws.close();
  await once(ws, 'close');
  const info = await front.closes.next();
  assert.ok(info.bytesIn > big.length && info.bytesOut > big.length);
});

test('backpressure: a client that does not read stops the tunnel reading from the upstream', async (t) => {
  const up = await startEcho();
  const front = await startFront(up.url);
  t.after(async () => {
    await front.close();
    await up.close();
  });
  const ws = await connectClient(front.url);
  const server = await up.connections.next();
  const clientSide = front.sockets[0]!;
  ws.pause();
  const chunk = randomBytes(1024 * 1024);
  const total = 64;
  const hash = createHash('sha256');
  for (let i = 0; i < total; i++) {
    server.send(chunk);
    hash.update(chunk);
  }
  // Look until the upstream has sent everything or has stopped making progress.
  let maxQueued = 0;
  let last = -1;
  let still = 0;
  while (server.bufferedAmount > 0 && still < 10) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    maxQueued = Math.max(maxQueued, clientSide.writableLength);
    still = server.bufferedAmount === last ? still + 1 : 0;
    last = server.bufferedAmount;
  }
  // Without backpressure the gateway would queue most of the 64 MiB in memory for the client.
  assert.ok(server.bufferedAmount > 0, 'the upstream should be held back');
  assert.ok(maxQueued < 4 * 1024 * 1024, `gateway queued ${maxQueued} bytes for the client`);
  const got = createHash('sha256');
  let n = 0;
  const done = new Promise<void>((resolve) =>
    ws.on('message', (data: Buffer) => {
      got.update(data);
      if (++n === total) resolve();
    }),
  );
  ws.resume();
  await done;
  assert.equal(got.digest('hex'), hash.digest('hex'));
  ws.close();
  await once(ws, 'close');
});

function makeCert(): { key: Buffer; cert: Buffer } | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'mg-ws-tls-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
        '-days',
        '1',
        '-subj',
        '/CN=upstream.test',
        '-addext',
        'subjectAltName=DNS:upstream.test,IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    return { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) };
  } catch {
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('an https upstream is verified against the given CA', async (t) => {
  const pair = makeCert();
  if (!pair) {
    t.skip('openssl is not available');
    return;
  }
  const up = await startEcho({}, createHttpsServer(pair) as unknown as Server, 'https');
  const trusted = await startFront(up.url, { tls: { ca: pair.cert } });
  const untrusted = await startFront(up.url);
  t.after(async () => {
    await trusted.close();
    await untrusted.close();
    await up.close();
  });
  const ws = await connectClient(trusted.url);
  ws.send('over tls');
  const [data] = await once(ws, 'message');
  assert.equal(data.toString(), 'over tls');
  ws.close();
  await once(ws, 'close');

  const r = await expectRefusal(untrusted.url);
  assert.equal(r.status, 502);
  assert.equal((await untrusted.closes.next()).reason, 'upstream-failed');
});
