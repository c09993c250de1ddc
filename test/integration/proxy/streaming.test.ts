/** Streaming through the proxy: SSE event by event, and backpressure from a slow client. */
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { test } from 'node:test';
import { request } from 'undici';
import { route, startGateway } from '../../support/gateway.ts';
import { startUpstream } from '../../support/upstream.ts';

test('Server-Sent Events pass through one event at a time (lock-step)', async (t) => {
  let stream: ServerResponse | undefined;
  let opened: () => void = () => {};
  const open = new Promise<void>((resolve) => {
    opened = resolve;
  });
  const llm = await startUpstream('llm', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.flushHeaders();
    stream = res;
    opened();
  });
  const gw = await startGateway(route('r', `{rules: [{backends: [{name: b, urls: ["${llm.url}"]}]}]}`));
  t.after(async () => {
    await gw.close();
    await llm.close();
  });
  const r = await request(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    body: '{"stream":true}',
    headers: { 'accept-encoding': 'gzip, br' },
  });
  await open;
  assert.equal(r.statusCode, 200);
  assert.equal(r.headers['content-type'], 'text/event-stream');
  assert.equal(r.headers['content-encoding'], undefined, 'event streams are never compressed');
  const reader = r.body[Symbol.asyncIterator]();
  for (let k = 1; k <= 5; k++) {
    // Event k+1 is written only after the client has received event k through the proxy: a proxy
    // that buffered would deadlock here and the test would time out.
    stream!.write(`data: {"token":${k}}\n\n`);
    const { value } = await reader.next();
    assert.equal(String(value), `data: {"token":${k}}\n\n`);
  }
  stream!.end('data: [DONE]\n\n');
  assert.equal(String((await reader.next()).value), 'data: [DONE]\n\n');
  assert.equal((await reader.next()).done, true);
});

test('a slow client holds a fast stream back instead of filling proxy memory', async (t) => {
  const CHUNK = Buffer.alloc(1024 * 1024, 'x');
  const TOTAL_CHUNKS = 128; // 128 MiB
  const BOUND = 40 * 1024 * 1024; // all socket buffers on the way, generously
  let written = 0;
  let blockedWaiters: (() => void)[] = [];
  const hash = (await import('node:crypto')).createHash('sha256');
  const fast = await startUpstream('fast', (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    let i = 0;
    const pump = () => {
      while (i < TOTAL_CHUNKS) {
        i++;
        written += CHUNK.length;
        if (!res.write(CHUNK)) {
          const w = blockedWaiters;
          blockedWaiters = [];
          for (const f of w) f();
          res.once('drain', pump);
          return;
        }
      }
      res.end();
      // Finished: nobody should wait for a block that cannot come.
      for (const f of blockedWaiters.splice(0)) f();
    };
    pump();
  });
  const gw = await startGateway(route('r', `{rules: [{backends: [{name: b, urls: ["${fast.url}"]}]}]}`));
  t.after(async () => {
    await gw.close();
    await fast.close();
  });
  const r = await request(`${gw.url}/download`);
  let received = 0;
  const body = r.body;
  body.on('data', (c: Buffer) => {
    received += c.length;
    hash.update(c);
  });
  const ended = new Promise<void>((resolve) => body.on('end', () => resolve()));
  for (let round = 0; round < 4; round++) {
    body.pause();
    // Wait until the upstream itself is blocked: backpressure has reached it through the proxy.
    await new Promise<void>((resolve) => blockedWaiters.push(resolve));
    assert.ok(
      written - received <= BOUND,
      `in flight between upstream and client: ${written - received} bytes (bound ${BOUND})`,
    );
    body.resume();
    const target = received + 8 * 1024 * 1024;
    await new Promise<void>((resolve) => {
      const check = () => {
        if (received >= target || written >= TOTAL_CHUNKS * CHUNK.length) {
          body.off('data', check);
          resolve();
        }
      };
      body.on('data', check);
    });
  }
  body.resume();
  await ended;
  assert.equal(received, TOTAL_CHUNKS * CHUNK.length);
  const expected = (await import('node:crypto')).createHash('sha256');
  for (let i = 0; i < TOTAL_CHUNKS; i++) expected.update(CHUNK);
  assert.equal(hash.digest('hex'), expected.digest('hex'));
});
