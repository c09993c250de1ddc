/**
 * Reading a request body into memory, within a limit: only done when the route must see the body
 * (model matching) — otherwise bodies stream through untouched.
 */
import type { IncomingMessage } from 'node:http';

export type BodyRead =
  | { ok: true; chunks: Buffer[]; size: number }
  | { ok: false; reason: 'too-large' | 'aborted' };

/**
 * True when the request carries a body: HTTP/1.1 says so with Content-Length or Transfer-Encoding
 * (RFC 9112 §6.3); an HTTP/2 request has one unless its HEADERS frame ended the stream.
 */
export function hasBody(req: IncomingMessage): boolean {
  const cl = req.headers['content-length'];
  if (cl !== undefined) return cl !== '0';
  if (req.httpVersionMajor === 2) {
    return !(req as unknown as { stream: { endAfterHeaders: boolean } }).stream.endAfterHeaders;
  }
  return req.headers['transfer-encoding'] !== undefined;
}

/** Declared length, or -1 when chunked/absent. */
export function declaredLength(req: IncomingMessage): number {
  const cl = req.headers['content-length'];
  return cl === undefined ? -1 : Number(cl);
}

export function readBody(req: IncomingMessage, limit: number): Promise<BodyRead> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (r: BodyRead) => {
      if (done) return;
      done = true;
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onAbort);
      req.off('close', onClose);
      resolve(r);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        // Stop reading; the caller answers 413 and the connection is not reused.
        req.pause();
        finish({ ok: false, reason: 'too-large' });
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => finish({ ok: true, chunks, size });
    const onAbort = () => finish({ ok: false, reason: 'aborted' });
    const onClose = () => {
      if (!req.complete) finish({ ok: false, reason: 'aborted' });
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onAbort);
    req.on('close', onClose);
  });
}
