/**
 * Makes an aborted HTTP/2 upstream request reset its stream at once, whatever is still queued.
 *
 * Why: undici (since 8.7, nodejs/undici#5462 and #5559; 8.13.1 still does it) aborts an HTTP/2
 * request with `stream.close()` and then `stream.destroy()` straight away. close() without a code
 * means NGHTTP2_NO_ERROR, and for that code Node waits until the stream's writable side has
 * finished (the queued request body has gone out) before it submits the RST_STREAM. The destroy()
 * that follows does not submit it either (the stream is already "closed") and frees the native
 * stream, while nghttp2 still has the request body's DATA scheduled. When the upstream's
 * WINDOW_UPDATE lets that DATA go, Node's read callback finds no stream and answers "0 bytes, not
 * the end", and nghttp2 makes empty DATA frames for ever inside Http2Session::SendPendingData: the
 * event loop never comes back and memory grows by hundreds of MB a second until std::bad_alloc.
 *
 * The gateway aborts its upstream request whenever a client leaves, so a client that went away
 * while its body was still held by the upstream's flow-control window (or behind a socket write)
 * wedged the whole process: bench/h2-abort-spin.ts reproduces it, in load and in lockstep.
 *
 * The guard: every client stream Node creates (node:diagnostics_channel
 * `http2.client.stream.created`; in the gateway they are all undici's) gets a close() that, when
 * called without an error code before its request body has finished, closes with NGHTTP2_CANCEL
 * instead. For any code but NO_ERROR Node submits the RST_STREAM at once, nghttp2 drops the
 * stream's pending DATA, and the destroy() that follows is harmless. CANCEL is also the right code
 * for a request nobody wants any more (RFC 9113 §7), and the upstream learns of the abort then,
 * not after the rest of the body. A close() with an explicit code, or once the body has gone out,
 * is left as it is.
 *
 * Cost: one diagnostics message and one property per upstream HTTP/2 stream, installed only once
 * a gateway has an HTTP/2 pool; HTTP/1.1 upstreams do not see it.
 */
import { subscribe } from 'node:diagnostics_channel';
import { type ClientHttp2Stream, constants } from 'node:http2';

const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL } = constants;

type Close = ClientHttp2Stream['close'];

let nativeClose: Close | undefined;
let installed = false;

/** Installs the guard for the process (idempotent). */
export function installH2AbortGuard(): void {
  if (installed) return;
  installed = true;
  subscribe('http2.client.stream.created', guardStream);
}

function guardStream(message: unknown): void {
  const stream = (message as { stream: ClientHttp2Stream }).stream;
  nativeClose ??= Object.getPrototypeOf(stream).close as Close;
  stream.close = closeCancellingUnsentBody;
}

/** close() as Node has it, but an abort before the body is out resets with CANCEL. */
function closeCancellingUnsentBody(this: ClientHttp2Stream, code?: number, callback?: () => void): void {
  const unsent = (code === undefined || code === NGHTTP2_NO_ERROR) && !this.writableFinished;
  nativeClose!.call(this, unsent ? NGHTTP2_CANCEL : code, callback);
}
