/**
 * The public listener. One TCP port speaks HTTP/1.1 and cleartext HTTP/2 with prior knowledge (what
 * gRPC clients use without TLS): the first bytes of a connection tell which, and the connection is
 * handed to a bare node:http or node:http2 server whose request handler is the proxy.
 *
 * Requests the HTTP/1 parser refuses (a bad Content-Length, Content-Length together with
 * Transfer-Encoding, oversized headers) never reach a route or an upstream: they get a JSON error
 * and the connection is closed.
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttp2Server, type Http2Server, type ServerHttp2Session } from 'node:http2';
import {
  type AddressInfo,
  createServer as createNetServer,
  type Server as NetServer,
  type Socket,
} from 'node:net';
import { Errors, errorBody } from './errors.ts';
import type { GatewayProxy } from './proxy.ts';
import { requestIdFor } from './upstream/headers.ts';
import { isWebSocketUpgrade } from './websocket.ts';

export interface ListenOptions {
  address: string;
  port: number;
  /** Largest request head accepted (431 above). Default 32 KiB. */
  maxHeaderBytes?: number;
  /** Time a client has to send its request headers. Default 30 s. */
  headersTimeoutMs?: number;
  /** Idle keep-alive time; above common load balancers' 60 s so they close first. Default 65 s. */
  keepAliveTimeoutMs?: number;
}

export interface Listener {
  readonly server: NetServer;
  readonly http1: HttpServer;
  readonly http2: Http2Server;
  readonly address: AddressInfo;
  /** `http://host:port`, with IPv6 in brackets. */
  readonly url: string;
  close(): Promise<void>;
  /**
   * Graceful stop: no new connections, idle keep-alive connections closed, HTTP/2 sessions told to
   * go away, requests and streams in flight run to their end; whatever is still open after
   * `timeoutMs` is cut.
   */
  drain(timeoutMs: number): Promise<{ forced: boolean }>;
}

/** The HTTP/2 connection preface (RFC 9113 §3.4). */
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

function rawError(status: number, reason: string, body: string): string {
  return `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

export async function listen(proxy: GatewayProxy, opts: ListenOptions): Promise<Listener> {
  const http1 = createHttpServer(
    {
      maxHeaderSize: opts.maxHeaderBytes ?? 32 * 1024,
      headersTimeout: opts.headersTimeoutMs ?? 30_000,
      // Uploads of multimodal prompts can be slow; the route's idle timeout governs the rest.
      requestTimeout: 0,
      keepAliveTimeout: opts.keepAliveTimeoutMs ?? 65_000,
      // No request smuggling: never accept what the strict parser refuses.
      insecureHTTPParser: false,
      // Only WebSocket upgrades leave the request path; `Upgrade: h2c` and others are served as
      // plain requests (the upgrade is simply not taken).
      shouldUpgradeCallback: isWebSocketUpgrade,
    },
    proxy.handle,
  );
  http1.on('upgrade', proxy.handleUpgrade);
  // The HTTP/1 server never listens itself (connections are handed to it), so start the
  // connection tracking that enforces headersTimeout the way listening would.
  http1.emit('listening');
  http1.on('clientError', (err: Error & { code?: string }, socket: Socket) => {
    if (!socket.writable || err.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    const id = requestIdFor(undefined);
    const e = err.code === 'HPE_HEADER_OVERFLOW' ? Errors.HeadersTooLarge : Errors.BadRequest;
    proxy.metrics.gatewayError(e.code);
    const reason = e.status === 431 ? 'Request Header Fields Too Large' : 'Bad Request';
    socket.end(rawError(e.status, reason, errorBody(e, id, `${e.message} (${err.code ?? 'parse error'})`)));
  });

  const http2 = createHttp2Server({ maxSendHeaderBlockLength: opts.maxHeaderBytes ?? 32 * 1024 });
  http2.on('request', proxy.handle as unknown as Parameters<Http2Server['on']>[1]);
  const sessions = new Set<ServerHttp2Session>();
  http2.on('session', (s: ServerHttp2Session) => {
    sessions.add(s);
    s.once('close', () => sessions.delete(s));
  });
  // A session error (bad frames) ends that session, never the process.
  http2.on('sessionError', () => {});

  const sockets = new Set<Socket>();
  const server = createNetServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    sniff(socket, http1, http2);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.address, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;

  const stopAccepting = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return {
    server,
    http1,
    http2,
    address,
    url: `http://${host}:${address.port}`,
    close: async () => {
      const closed = stopAccepting();
      http1.closeAllConnections();
      for (const s of sessions) s.destroy();
      for (const s of sockets) s.destroy();
      await closed;
    },
    drain: (timeoutMs) =>
      new Promise((resolve) => {
        let forced = false;
        let finish: () => void = () => {};
        const deadline = setTimeout(() => {
          forced = true;
          for (const s of sockets) s.destroy();
        }, timeoutMs);
        // A connection that finishes its last request while draining would otherwise idle in
        // keep-alive until its timeout.
        const closeIdle = setInterval(() => http1.closeIdleConnections(), 250);
        finish = () => {
          if (sockets.size > 0) return;
          clearTimeout(deadline);
          clearInterval(closeIdle);
          resolve({ forced });
        };
        void stopAccepting();
        http1.closeIdleConnections();
        for (const s of sessions) s.close();
        for (const s of sockets) s.once('close', finish);
        finish();
      }),
  };
}

/**
 * Reads just enough of a new connection to tell HTTP/2 prior knowledge from HTTP/1.x, puts the
 * bytes back, and hands the socket to the right server.
 */
function sniff(socket: Socket, http1: HttpServer, http2: Http2Server): void {
  let seen: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    const n = Math.min(seen.length, PREFACE.length);
    const isH2 = seen.subarray(0, n).equals(PREFACE.subarray(0, n));
    if (isH2 && seen.length < PREFACE.length) return; // could still be the preface: read more
    socket.off('data', onData);
    socket.off('error', onError);
    socket.pause();
    socket.unshift(seen);
    if (isH2) {
      // node:http2 takes over the socket's handle and first drains what is buffered in JS.
      http2.emit('connection', socket);
    } else {
      http1.emit('connection', socket);
      // node:http reads through the JS stream: let the bytes put back (and the rest) flow to it.
      socket.resume();
    }
  };
  const onError = () => socket.destroy();
  socket.on('data', onData);
  socket.on('error', onError);
}
