/**
 * Edge limits of both listener kinds (HTTP and HTTPS), with short timeouts: too many header fields
 * get a 431 JSON error (HTTP/1.1 and HTTP/2) and never reach the upstream; a client that stops in
 * the middle of its headers (slowloris), one that never starts a request, an HTTP/2 session without
 * streams, and a TLS handshake that never completes are all disconnected.
 */
import assert from 'node:assert/strict';
import { connect as h2connect } from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { type Listener, type ListenOptions, listen } from '../../../src/dataplane/server.ts';
import { route } from '../../support/gateway.ts';
import { startUpstream, type TestUpstream } from '../../support/upstream.ts';
import { routeCert, startTlsGateway, type TlsGateway } from './tls-support.ts';

const SHORT = 300;
const LONG = 20_000;
/** Upper bound for "closed after the timeout": generous for a loaded machine, far below LONG. */
const LATE = SHORT + 4_000;

let upstream: TestUpstream;
/** Answers after twice the short timeouts: a slow model. */
let slowUpstream: TestUpstream;
let gw: TlsGateway;
/** headersTimeout short, everything else long. */
let plainSlow: Listener;
let tlsSlow: Listener;
/** idle, keep-alive and handshake timeouts short, headersTimeout long. */
let plainIdle: Listener;
let tlsIdle: Listener;

before(async () => {
  upstream = await startUpstream('up');
  slowUpstream = await startUpstream('slow', (_req, res) => {
    setTimeout(() => res.end('late'), 2 * SHORT);
  });
  const yaml =
    route(
      'any',
      `{rules: [{matches: [{path: {value: /}}], backends: [{name: up, urls: ["${upstream.url}"]}]}]}`,
    ) +
    route(
      'slow',
      `{rules: [{matches: [{path: {value: /slow}}], backends: [{name: slow, urls: ["${slowUpstream.url}"]}]}]}`,
    );
  const slow: Partial<ListenOptions> = {
    headersTimeoutMs: SHORT,
    idleTimeoutMs: LONG,
    tlsHandshakeTimeoutMs: LONG,
  };
  const idle: Partial<ListenOptions> = {
    headersTimeoutMs: LONG,
    idleTimeoutMs: SHORT,
    keepAliveTimeoutMs: SHORT,
    tlsHandshakeTimeoutMs: SHORT,
  };
  gw = await startTlsGateway(yaml, [routeCert('demo/default', [], 'route-default')], slow);
  tlsSlow = gw.listener;
  plainSlow = await listen(gw.proxy, { address: '127.0.0.1', port: 0, ...slow });
  plainIdle = await listen(gw.proxy, { address: '127.0.0.1', port: 0, ...idle });
  tlsIdle = await listen(gw.proxy, { address: '127.0.0.1', port: 0, tls: {}, ...idle });
});

after(async () => {
  await Promise.all([plainSlow.close(), plainIdle.close(), tlsIdle.close()]);
  await gw.close();
  await Promise.all([upstream.close(), slowUpstream.close()]);
});

/** A connected socket to the listener (TLS handshake done for HTTPS). */
function open(l: Listener): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const port = l.address.port;
    if (l.protocol === 'http') {
      const s = netConnect(port, '127.0.0.1', () => resolve(s));
      s.once('error', reject);
    } else {
      const s = tlsConnect(
        {
          port,
          host: '127.0.0.1',
          servername: 'edge.example.test',
          rejectUnauthorized: false,
          ALPNProtocols: ['http/1.1'],
        },
        () => resolve(s),
      );
      s.once('error', reject);
    }
  });
}

/** Writes `bytes` (if any) and resolves once the server closes: what it sent, and after how long. */
function untilClosed(socket: Socket, bytes?: string): Promise<{ ms: number; text: string }> {
  const started = performance.now();
  return new Promise((resolve) => {
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      text += d;
    });
    socket.on('error', () => {});
    socket.once('close', () => resolve({ ms: performance.now() - started, text }));
    if (bytes !== undefined) socket.write(bytes);
  });
}

/** A request head with exactly `fields` header fields (Host and Connection included). */
function headWith(fields: number): string {
  let head = 'GET /count HTTP/1.1\r\nHost: edge.example.test\r\nConnection: close\r\n';
  for (let i = 0; i < fields - 2; i++) head += `x-h-${i}: v\r\n`;
  return `${head}\r\n`;
}

const statusOf = (text: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
const bodyOf = (text: string) => JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4));

test('more than 100 header fields → 431 MG_HEADERS_TOO_LARGE on HTTP/1.1 (both listeners) and HTTP/2', async () => {
  for (const l of [plainSlow, tlsSlow]) {
    const at = await untilClosed(await open(l), headWith(100));
    assert.equal(statusOf(at.text), 200, `${l.protocol}: 100 fields are fine`);
    const before = upstream.received.length;
    const over = await untilClosed(await open(l), headWith(101));
    assert.equal(statusOf(over.text), 431, l.protocol);
    assert.equal(bodyOf(over.text).error.code, 'MG_HEADERS_TOO_LARGE');
    assert.equal(upstream.received.length, before, 'never reaches the upstream');
  }

  const session = h2connect(plainSlow.url);
  const h2 = (fields: number) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const headers: Record<string, string> = { ':path': '/count' };
      for (let i = 0; i < fields; i++) headers[`x-h-${i}`] = 'v';
      const s = session.request(headers);
      let status = 0;
      let body = '';
      s.setEncoding('utf8');
      s.on('response', (h) => {
        status = Number(h[':status']);
      });
      s.on('data', (d: string) => {
        body += d;
      });
      s.on('end', () => resolve({ status, body }));
      s.on('error', reject);
      s.end();
    });
  try {
    assert.equal((await h2(100)).status, 200);
    const before = upstream.received.length;
    const over = await h2(101);
    assert.equal(over.status, 431);
    assert.equal(JSON.parse(over.body).error.code, 'MG_HEADERS_TOO_LARGE');
    assert.equal(upstream.received.length, before);
  } finally {
    session.close();
  }
});

test('slowloris: a request head left unfinished is cut after headersTimeout (HTTP and HTTPS)', async () => {
  for (const l of [plainSlow, tlsSlow]) {
    const before = upstream.received.length;
    const r = await untilClosed(await open(l), 'GET / HTTP/1.1\r\nHost: edge.example.test\r\nX-Slow: aaa');
    assert.ok(r.ms >= SHORT - 50 && r.ms < LATE, `${l.protocol}: closed after ${r.ms} ms`);
    assert.equal(statusOf(r.text), 408, l.protocol);
    assert.equal(upstream.received.length, before);
  }
});

test('a connection that never starts a request is closed after idleTimeout', async () => {
  // Plain TCP, nothing sent (the protocol is not even known yet).
  let r = await untilClosed(await open(plainIdle));
  assert.ok(r.ms >= SHORT - 50 && r.ms < LATE, `silent: ${r.ms} ms`);
  // The start of the HTTP/2 preface, then nothing.
  r = await untilClosed(await open(plainIdle), 'PRI * HTTP/2.0\r\n');
  assert.ok(r.ms >= SHORT - 50 && r.ms < LATE, `partial preface: ${r.ms} ms`);
  // TLS: the handshake done, then no request.
  r = await untilClosed(await open(tlsIdle));
  assert.ok(r.ms >= SHORT - 50 && r.ms < LATE, `after the handshake: ${r.ms} ms`);
  // An HTTP/2 session that opens no stream.
  const started = performance.now();
  const session = h2connect(plainIdle.url);
  session.on('error', () => {});
  await new Promise<void>((resolve) => session.once('close', () => resolve()));
  const ms = performance.now() - started;
  assert.ok(ms >= SHORT - 50 && ms < LATE, `HTTP/2 without streams: ${ms} ms`);
});

test('a connection that did make a request is not cut by idleTimeout; HTTP/2 sessions idle out after keep-alive', async () => {
  // HTTP/1.1 and HTTPS: a response slower than idleTimeout still arrives.
  for (const l of [plainIdle, tlsIdle]) {
    const r = await untilClosed(
      await open(l),
      'GET /slow HTTP/1.1\r\nHost: edge.example.test\r\nConnection: close\r\n\r\n',
    );
    assert.equal(statusOf(r.text), 200, l.protocol);
    assert.ok(r.text.endsWith('late'));
    assert.ok(r.ms >= 2 * SHORT - 50);
  }
  const session = h2connect(plainIdle.url);
  session.on('error', () => {});
  const started = performance.now();
  const status = await new Promise<number>((resolve, reject) => {
    const s = session.request({ ':path': '/one' });
    let st = 0;
    s.on('response', (h) => {
      st = Number(h[':status']);
    });
    s.on('data', () => {});
    s.on('end', () => resolve(st));
    s.on('error', reject);
    s.end();
  });
  assert.equal(status, 200);
  const goaway = new Promise<void>((resolve) => session.once('goaway', () => resolve()));
  await new Promise<void>((resolve) => session.once('close', () => resolve()));
  await goaway;
  const ms = performance.now() - started;
  assert.ok(ms >= SHORT - 50 && ms < LATE, `closed with GOAWAY after ${ms} ms`);
});

test('a TLS handshake that never completes is closed after the handshake timeout', async () => {
  const port = tlsIdle.address.port;
  const connectRaw = () =>
    new Promise<Socket>((resolve, reject) => {
      const s = netConnect(port, '127.0.0.1', () => resolve(s));
      s.once('error', reject);
    });
  let r = await untilClosed(await connectRaw());
  assert.ok(r.ms >= SHORT - 50 && r.ms < LATE, `nothing sent: ${r.ms} ms`);
  // A TLS record header announcing a ClientHello that never comes.
  r = await untilClosed(await connectRaw(), '\x16\x03\x01\x02\x00');
  assert.ok(r.ms >= SHORT - 50 && r.ms < LATE, `partial ClientHello: ${r.ms} ms`);
});
