/**
 * `Expect: 100-continue`: the gateway sends `100 Continue` only once it is going to read the body
 * (after authentication, routing and the declared length against the route's limit); a request
 * refused before gets its final status directly, and the client never sends its body.
 *
 * Observed with raw sockets, without clocks: the client sends the request head alone and the body
 * only after a `100 Continue`. A refused request is answered while the client has sent no body
 * byte; the connection is closed after it (the client might still send the body otherwise).
 */
import assert from 'node:assert/strict';
import { connect as h2connect } from 'node:http2';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startGateway, type TestGateway } from '../../support/gateway.ts';
import { sha256, startUpstream, type TestUpstream } from '../../support/upstream.ts';

const ALPHA_KEY = 'sk-alpha-0123456789abcdef';

interface Exchange {
  /** Interim (1xx) statuses before the final one. */
  interim: number[];
  status: number;
  headers: Record<string, string>;
  body: string;
  /** Body bytes the client sent (only after a `100 Continue`). */
  bodySent: number;
  /** The gateway closed the connection. */
  closed: Promise<void>;
}

/**
 * Sends `POST path` with `Expect: 100-continue` (or `expect`) and a declared body of `body`'s
 * length, on its own connection; the body goes out only after a `100 Continue`.
 */
function expectRequest(
  gw: TestGateway,
  path: string,
  headers: Record<string, string>,
  body: Buffer,
  expect = '100-continue',
): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const url = new URL(gw.url);
    const socket = connect(Number(url.port), url.hostname);
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    const head = [
      `POST ${path} HTTP/1.1`,
      `content-length: ${body.length}`,
      'content-type: application/json',
      `expect: ${expect}`,
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
      '',
      '',
    ].join('\r\n');
    socket.write(head);
    const interim: number[] = [];
    let bodySent = 0;
    let done = false;
    let raw = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      raw = Buffer.concat([raw, chunk]);
      for (;;) {
        if (done) return;
        const end = raw.indexOf('\r\n\r\n');
        if (end < 0) return;
        const lines = raw.subarray(0, end).toString('latin1').split('\r\n');
        const status = Number(lines[0]!.split(' ')[1]);
        if (status < 200) {
          interim.push(status);
          raw = raw.subarray(end + 4);
          if (status === 100 && bodySent === 0) {
            bodySent = body.length;
            socket.write(body);
          }
          continue;
        }
        const hs: Record<string, string> = {};
        for (const l of lines.slice(1)) {
          const c = l.indexOf(':');
          hs[l.slice(0, c).toLowerCase()] = l.slice(c + 1).trim();
        }
        const content = hs['transfer-encoding'] === 'chunked' ? dechunk(raw.subarray(end + 4)) : undefined;
        const length = Number(hs['content-length'] ?? 0);
        if (content === null || (content === undefined && raw.length < end + 4 + length)) return;
        done = true;
        resolve({
          interim,
          status,
          headers: hs,
          body: (content ?? raw.subarray(end + 4, end + 4 + length)).toString('utf8'),
          bodySent,
          closed,
        });
        socket.end();
      }
    });
    socket.on('error', (e) => {
      if (!done) reject(e);
    });
  });
}

/** A chunked body's content, or null while its last chunk has not arrived. */
function dechunk(data: Buffer): Buffer | null {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = data.indexOf('\r\n', at);
    if (eol < 0) return null;
    const size = Number.parseInt(data.subarray(at, eol).toString('latin1'), 16);
    if (size === 0) return data.indexOf('\r\n', eol + 2) < 0 ? null : Buffer.concat(parts);
    if (data.length < eol + 2 + size + 2) return null;
    parts.push(data.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}

function payload(size: number): Buffer {
  const prefix = '{"model":"llama-3-8b","messages":"';
  const suffix = '"}';
  return Buffer.concat([
    Buffer.from(prefix),
    Buffer.alloc(size - prefix.length - suffix.length, 'x'),
    Buffer.from(suffix),
  ]);
}

const codeOf = (e: { body: string }) => (JSON.parse(e.body) as { error: { code: string } }).error.code;

describe('Expect: 100-continue', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  before(async () => {
    up = await startUpstream('llama');
    gw = await startGateway(`apiVersion: v1
kind: Secret
metadata:
  name: alpha
  namespace: ml
  annotations: {"modelgate.dev/consumer": "alpha"}
stringData: {"key": "${ALPHA_KEY}"}
---
apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: { name: keyed, namespace: ml }
spec:
  hostnames: [keys.test]
  maxRequestBodySize: 4Mi
  auth:
    apiKeys: { header: x-api-key, secretRefs: [{ name: alpha }] }
  rules:
    - name: chat
      matches: [{ path: { value: /v1/chat } }]
      backends: [{ name: llama, urls: ["${up.url}"] }]
    - name: by-model
      matches: [{ path: { value: /v1/models-chat }, model: { value: llama-3-8b } }]
      backends: [{ name: llama, urls: ["${up.url}"] }]
---
apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: { name: open, namespace: ml }
spec:
  hostnames: [open.test]
  maxRequestBodySize: 1Mi
  rules:
    - matches: [{ path: { value: /v1/chat } }]
      backends: [{ name: llama, urls: ["${up.url}"] }]
---
`);
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  test('no credentials: 401 without a 100, the body is never sent, the connection closes', async () => {
    const before = up.received.length;
    const e = await expectRequest(gw, '/v1/chat', { host: 'keys.test' }, payload(2 * 1024 * 1024));
    assert.equal(e.status, 401);
    assert.equal(codeOf(e), 'MG_UNAUTHENTICATED');
    assert.deepEqual(e.interim, []);
    assert.equal(e.bodySent, 0);
    assert.equal(e.headers.connection, 'close');
    await e.closed;
    assert.equal(up.received.length, before);
  });

  test('with credentials: 100 Continue, then the body, then the upstream answer', async () => {
    // 2 MiB streams through (over maxReplayBodySize); 1 KiB is read first for retries.
    for (const size of [2 * 1024 * 1024, 1024]) {
      const body = payload(size);
      const e = await expectRequest(gw, '/v1/chat', { host: 'keys.test', 'x-api-key': ALPHA_KEY }, body);
      assert.deepEqual(e.interim, [100], `size ${size}`);
      assert.equal(e.bodySent, size);
      assert.equal(e.status, 200, e.body);
      assert.equal(JSON.parse(e.body).upstream, 'llama');
      const got = up.received.at(-1)!;
      assert.equal(got.bodyBytes, size);
      assert.equal(got.bodySha256, sha256(body));
      assert.equal(got.headers.expect, undefined, 'the upstream is not asked to expect anything');
    }
  });

  test('a route that reads the body for the model: 100 only for an admitted caller', async () => {
    const body = payload(64 * 1024);
    const refused = await expectRequest(gw, '/v1/models-chat', { host: 'keys.test' }, body);
    assert.equal(refused.status, 401);
    assert.deepEqual(refused.interim, []);
    assert.equal(refused.bodySent, 0);
    const ok = await expectRequest(
      gw,
      '/v1/models-chat',
      { host: 'keys.test', 'x-api-key': ALPHA_KEY },
      body,
    );
    assert.deepEqual(ok.interim, [100]);
    assert.equal(ok.status, 200, ok.body);
    assert.equal(up.received.at(-1)!.bodySha256, sha256(body));
  });

  test('a declared length over the limit: 413 without a 100', async () => {
    const e = await expectRequest(gw, '/v1/chat', { host: 'open.test' }, payload(1024 * 1024 + 1));
    assert.equal(e.status, 413);
    assert.equal(codeOf(e), 'MG_BODY_TOO_LARGE');
    assert.deepEqual(e.interim, []);
    assert.equal(e.bodySent, 0);
    await e.closed;
  });

  test('no route: 404 without a 100', async () => {
    const e = await expectRequest(gw, '/v1/nowhere', { host: 'open.test' }, payload(1024));
    assert.equal(e.status, 404);
    assert.deepEqual(e.interim, []);
    assert.equal(e.bodySent, 0);
  });

  test('another expectation: 417, as node:http answers it', async () => {
    const before = up.received.length;
    const e = await expectRequest(gw, '/v1/chat', { host: 'open.test' }, payload(1024), 'something-else');
    assert.equal(e.status, 417);
    assert.deepEqual(e.interim, []);
    assert.equal(up.received.length, before);
  });

  test('HTTP/2: no 100 for a refused request, 100 and the answer for an admitted one', async () => {
    const session = h2connect(gw.url);
    try {
      const call = (headers: Record<string, string>, body: Buffer) =>
        new Promise<{ continued: boolean; status: number; body: string }>((resolve, reject) => {
          const stream = session.request({
            ':method': 'POST',
            ':path': '/v1/chat',
            ':authority': 'keys.test',
            'content-type': 'application/json',
            'content-length': String(body.length),
            expect: '100-continue',
            ...headers,
          });
          let continued = false;
          stream.once('continue', () => {
            continued = true;
            stream.end(body);
          });
          let status = 0;
          stream.once('response', (h) => {
            status = Number(h[':status']);
          });
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.once('end', () => resolve({ continued, status, body: Buffer.concat(chunks).toString() }));
          stream.once('error', reject);
        });
      const refused = await call({}, payload(64 * 1024));
      assert.equal(refused.status, 401);
      assert.equal(refused.continued, false);
      const body = payload(64 * 1024);
      const ok = await call({ 'x-api-key': ALPHA_KEY }, body);
      assert.equal(ok.continued, true);
      assert.equal(ok.status, 200, ok.body);
      assert.equal(up.received.at(-1)!.bodySha256, sha256(body));
    } finally {
      session.close();
    }
  });

  test('a request without Expect gets no interim response', async () => {
    const e = await new Promise<string>((resolve, reject) => {
      const url = new URL(gw.url);
      const socket = connect(Number(url.port), url.hostname);
      let raw = '';
      socket.on('data', (c: Buffer) => {
        raw += c.toString('latin1');
      });
      socket.on('end', () => resolve(raw));
      socket.on('error', reject);
      socket.write(
        `POST /v1/chat HTTP/1.1\r\nhost: keys.test\r\nx-api-key: ${ALPHA_KEY}\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}`,
      );
    });
    assert.match(e, /^HTTP\/1\.1 200 /);
    assert.doesNotMatch(e, /HTTP\/1\.1 100/);
  });
});
