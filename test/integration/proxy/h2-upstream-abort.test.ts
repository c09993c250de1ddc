/**
 * Clients that leave while their request body is still on its way to an HTTP/2 upstream (H2C
 * passthrough, buffered or streamed, and the KServe v2 REST → gRPC translation) must leave the
 * gateway idle and working.
 *
 * They used to wedge it: undici aborts an HTTP/2 request with close() and destroy() at once, Node
 * then never sent the RST_STREAM (a NO_ERROR close waits for the queued body) and freed the native
 * stream while nghttp2 still had the body's DATA to send, and the upstream's next WINDOW_UPDATE sent
 * Http2Session::SendPendingData into an endless loop of empty DATA frames: 100% CPU, no event loop,
 * memory growing until std::bad_alloc (src/dataplane/upstream/h2-abort-guard.ts).
 *
 * Lockstep, no sleeps for the abort itself: the upstream (node:http2, h2c) advertises a 16 KiB
 * stream window and reads nothing on `x-test-hold` requests, so each client's 24 KiB (or larger)
 * body stops with 16 KiB upstream and the rest queued in the gateway; once the upstream holds those
 * 16 KiB the client's socket is destroyed; the gateway process reports each upstream call it
 * cancelled; then the upstream starts reading (its WINDOW_UPDATEs are what set the loop off). The
 * gateway runs in its own process (test/support/gateway-process.ts): a wedged gateway in this one
 * would hang the test runner rather than fail. Checked afterwards: the gateway's CPU time over an
 * idle second is under half of it (a spin is all of it; no latency is measured), and a normal
 * request through the same upstream connection gets its answer.
 */
import assert from 'node:assert/strict';
import { createServer as createH2Server, type Http2Server, type ServerHttp2Stream } from 'node:http2';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { encodeFramed } from '../../../src/dataplane/kserve/grpc-frame.ts';
import { encodeModelInferResponse } from '../../../src/dataplane/kserve/messages.ts';
import { type Reply, send } from '../../support/client.ts';
import { route } from '../../support/gateway.ts';
import { type GatewayProcess, startGatewayProcess } from '../../support/gateway-process.ts';

/** The upstream's stream window: what it receives of each held body. */
const WINDOW = 16_384;
const CLIENTS = 4;
const IDLE_MS = 1000;
/** Upstream memory-safety valve: a spinning gateway grows by hundreds of MB a second. */
const RSS_LIMIT = 1024 * 1048576;
const STEP_MS = 10_000;

const onLinux = process.platform === 'linux';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let upstream: Http2Server;
let upstreamUrl = '';
const held: ServerHttp2Stream[] = [];
const resetByGateway: number[] = [];

/** A KServe v2 answer for model `m`: one FP32 [1, 2] output. */
const inferReply = encodeFramed(encodeModelInferResponse, {
  modelName: 'm',
  modelVersion: '1',
  outputs: [{ name: 'out', datatype: 'FP32', shape: [1, 2], contents: { fp32: Float32Array.of(1, 2) } }],
});

before(async () => {
  upstream = createH2Server({ settings: { initialWindowSize: WINDOW } });
  upstream.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    stream.on('close', () => {
      if (stream.rstCode !== undefined && stream.rstCode !== 0) resetByGateway.push(stream.rstCode);
    });
    if (headers['x-test-hold'] !== undefined) {
      stream.pause(); // read nothing (no WINDOW_UPDATE) until the test says so
      held.push(stream);
      return;
    }
    let n = 0;
    stream.on('data', (d: Buffer) => {
      n += d.length;
    });
    stream.on('end', () => {
      if (stream.destroyed || stream.closed) return;
      if (String(headers['content-type']).startsWith('application/grpc')) {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end(inferReply);
      } else {
        stream.respond({ ':status': 200, 'content-type': 'text/plain' });
        stream.end(`received ${n}`);
      }
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
});

after(() => {
  for (const s of held) s.destroy();
  upstream.close();
});

/** `send` bounded in time: a wedged gateway would never answer. */
function sendBounded(url: string, opts: Parameters<typeof send>[1]): Promise<Reply> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer in ${STEP_MS} ms`)), STEP_MS);
  });
  return Promise.race([send(url, opts), timeout]).finally(() => clearTimeout(timer));
}

async function until(what: string, cond: () => boolean): Promise<void> {
  const deadline = Date.now() + STEP_MS;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

interface Case {
  /** Rule fields besides the backend. */
  rule: string;
  protocol: 'H2C' | 'GRPC';
  path: string;
  body: Buffer;
  /** The client sends the first WINDOW bytes, then the rest once the upstream holds them. */
  twoParts: boolean;
  /** The normal request afterwards, and what its answer must be. */
  followUp: { body: Buffer; check(r: Reply): void };
}

/**
 * Clients send `c.body` with `x-test-hold` and are destroyed once the upstream holds WINDOW bytes
 * of it; when the gateway has cancelled every upstream call, the upstream reads. Then the gateway
 * must idle, and answer `c.followUp`.
 */
async function abortMidBody(name: string, c: Case): Promise<void> {
  const gw: GatewayProcess = await startGatewayProcess(
    route(
      name,
      `{rules: [{${c.rule}backends: [{name: up, protocol: ${c.protocol}, urls: ["${upstreamUrl}"]}]}]}`,
    ),
  );
  const port = Number(new URL(gw.url).port);
  const clients: Socket[] = [];
  const first = held.length;
  try {
    // The gateway's HTTP/2 session is up and has the upstream's SETTINGS (its 16 KiB window).
    const warm = await sendBounded(gw.url, {
      path: c.path,
      headers: { 'content-type': 'application/json' },
      body: c.followUp.body,
    });
    c.followUp.check(warm);
    const errorsBefore = gw.upstreamErrors;
    for (let i = 0; i < CLIENTS; i++) {
      const s = connect(port, '127.0.0.1');
      s.on('error', () => {});
      clients.push(s);
      s.write(
        `POST ${c.path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\n` +
          `x-test-hold: 1\r\nContent-Length: ${c.body.length}\r\n\r\n`,
      );
      s.write(c.twoParts ? c.body.subarray(0, WINDOW) : c.body);
      await until(`upstream to hold ${WINDOW} bytes of request ${i + 1}`, () => {
        const st = held[first + i];
        return st !== undefined && st.readableLength >= WINDOW;
      });
      if (c.twoParts) {
        // A streamed body: the gateway writes this last part and ends its upstream stream, which
        // cannot send it, before it reads the client's FIN behind it. The pause only orders the
        // gateway's own writes before the close (it measures nothing).
        s.write(c.body.subarray(WINDOW));
        await sleep(50);
      }
      s.destroy();
    }
    await gw.waitForUpstreamErrors(errorsBefore + CLIENTS, STEP_MS);
    for (const st of held.slice(first)) st.resume(); // WINDOW_UPDATEs reach the gateway now

    await sleep(200);
    const cpu0 = gw.cpuMs();
    const t0 = performance.now();
    let rss = 0;
    while (performance.now() - t0 < IDLE_MS) {
      await sleep(50);
      rss = gw.rssBytes() ?? 0;
      if (rss > RSS_LIMIT) break; // spinning: memory runs away; no need to watch it for longer
    }
    const cpu1 = gw.cpuMs();
    const elapsed = performance.now() - t0;
    assert.ok(cpu0 !== undefined && cpu1 !== undefined, 'the gateway process is still alive');
    const share = (cpu1 - cpu0) / elapsed;
    assert.ok(
      share < 0.5,
      `the gateway used ${Math.round(share * 100)}% of a core for ${Math.round(elapsed)} ms with nothing ` +
        `in flight (RSS ${Math.round(rss / 1048576)} MB): it is spinning`,
    );

    const r = await sendBounded(gw.url, {
      path: c.path,
      headers: { 'content-type': 'application/json' },
      body: c.followUp.body,
    });
    c.followUp.check(r);
    // The upstream learnt of each abort: its held streams were reset (RST_STREAM CANCEL = 8).
    assert.deepEqual(
      held.slice(first).map((s) => s.rstCode),
      Array(CLIENTS).fill(8),
    );
  } finally {
    for (const s of clients) s.destroy();
    await gw.kill();
  }
}

const plain = {
  body: Buffer.from('{"hello":"upstream"}'),
  check(r: Reply) {
    assert.equal(r.status, 200, r.text);
    assert.equal(r.text, 'received 20');
  },
};

test('H2C, a buffered body (the default route replays bodies up to 1 MiB)', { skip: !onLinux }, () =>
  abortMidBody('h2c-buffered', {
    rule: '',
    protocol: 'H2C',
    path: '/upload',
    body: Buffer.alloc(24_576, 'x'),
    twoParts: false,
    followUp: plain,
  }),
);

test('H2C, a streamed body (no retries: the body streams through)', { skip: !onLinux }, () =>
  abortMidBody('h2c-streamed', {
    rule: 'retries: {attempts: 0}, ',
    protocol: 'H2C',
    path: '/upload',
    body: Buffer.alloc(24_576, 'x'),
    twoParts: true,
    followUp: plain,
  }),
);

test('KServe v2 REST translated to a gRPC upstream', { skip: !onLinux }, () => {
  // 8,192 FP32 values: a 32 KiB protobuf message, twice the upstream's window.
  const data = Array.from({ length: 8192 }, (_, i) => i / 8);
  const tensorBody = (n: number, values: number[]) =>
    Buffer.from(JSON.stringify({ inputs: [{ name: 'in', datatype: 'FP32', shape: [1, n], data: values }] }));
  return abortMidBody('kserve', {
    rule: 'translation: {kserveV2: {}}, ',
    protocol: 'GRPC',
    path: '/v2/models/m/infer',
    body: tensorBody(8192, data),
    twoParts: false,
    followUp: {
      body: tensorBody(2, [1, 2]),
      check(r: Reply) {
        assert.equal(r.status, 200, r.text);
        assert.deepEqual((r.json().outputs as Array<{ data: number[] }>)[0]!.data, [1, 2]);
      },
    },
  });
});
