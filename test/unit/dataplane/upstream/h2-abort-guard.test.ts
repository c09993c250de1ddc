/**
 * The HTTP/2 abort guard (src/dataplane/upstream/h2-abort-guard.ts) on node:http2 alone: what
 * undici's abort does to a stream, close() and destroy() at once, must reach the peer as an
 * RST_STREAM(CANCEL) even when the request body is still queued behind the peer's flow-control
 * window. (Unguarded, Node sends nothing; once the peer then opened its window the process would
 * spin. The server here never reads again, so a missing guard fails these tests by a timeout, not by
 * wedging the test process.)
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import {
  type ClientHttp2Session,
  connect,
  constants,
  createServer,
  type Http2Server,
  type ServerHttp2Stream,
} from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { installH2AbortGuard } from '../../../../src/dataplane/upstream/h2-abort-guard.ts';

let server: Http2Server;
let session: ClientHttp2Session;
const streams: ServerHttp2Stream[] = [];

before(async () => {
  installH2AbortGuard();
  installH2AbortGuard(); // idempotent
  server = createServer({ settings: { initialWindowSize: 16_384 } });
  server.on('stream', (stream) => {
    stream.on('error', () => {});
    stream.pause(); // reads nothing: the client's body beyond 16 KiB stays queued
    streams.push(stream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  session = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  await once(session, 'remoteSettings');
});

after(() => {
  session.destroy();
  for (const s of streams) s.destroy();
  server.close();
});

/** Opens a POST, writes `bytes` and ends it; resolves with the client and server streams. */
async function upload(bytes: number) {
  const n = streams.length;
  const req = session.request({ ':method': 'POST', ':path': '/' });
  req.on('error', () => {});
  req.end(Buffer.alloc(bytes, 'x'));
  while (streams.length === n || streams[n]!.readableLength < Math.min(bytes, 16_384)) {
    await new Promise((r) => setTimeout(r, 5));
  }
  return { req, upstream: streams[n]! };
}

/** The RST_STREAM code the server stream closes with (bounded: a missing reset fails, not hangs). */
async function resetCode(s: ServerHttp2Stream): Promise<number | undefined> {
  if (!s.destroyed) {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the server stream was not reset in 5 s')), 5000);
      s.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
  return s.rstCode;
}

test('close() then destroy() with the body still queued resets the stream with CANCEL', async () => {
  const { req, upstream } = await upload(24_576);
  assert.equal(req.writableEnded, true);
  assert.equal(req.writableFinished, false, '8 KiB wait for a WINDOW_UPDATE that does not come');
  req.close();
  req.destroy();
  assert.equal(await resetCode(upstream), constants.NGHTTP2_CANCEL);
});

test('an explicit error code is kept', async () => {
  const { req, upstream } = await upload(24_576);
  req.close(constants.NGHTTP2_INTERNAL_ERROR);
  req.destroy();
  assert.equal(await resetCode(upstream), constants.NGHTTP2_INTERNAL_ERROR);
});

test('once the body has gone out, close() is NO_ERROR as Node has it', async () => {
  const { req, upstream } = await upload(1024);
  if (!req.writableFinished) await once(req, 'finish');
  req.close();
  upstream.resume(); // a NO_ERROR reset closes the server stream once its data is read
  assert.equal(await resetCode(upstream), constants.NGHTTP2_NO_ERROR);
});
