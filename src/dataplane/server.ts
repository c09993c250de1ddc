/**
 * The public listeners. Both kinds hand their connections to one bare node:http server and one
 * node:http2 server whose request handler is the proxy:
 * - HTTP: one TCP port speaks HTTP/1.1 and cleartext HTTP/2 with prior knowledge (what gRPC clients
 *   use without TLS); the first bytes of a connection tell which.
 * - HTTPS: TLS termination (tls/termination.ts: certificate by SNI from the routing table and the
 *   listener's files, client certificates per hostname); ALPN tells HTTP/2 from HTTP/1.1.
 *
 * Requests the HTTP/1 parser refuses (a bad Content-Length, Content-Length together with
 * Transfer-Encoding, oversized headers) never reach a route or an upstream: they get a JSON error
 * and the connection is closed. So do requests with more header fields than `maxHeadersCount`
 * (431), and requests for a host that requires a client certificate the connection did not present
 * (403; on a plaintext listener, every request for such a host).
 *
 * Slow or silent clients are bounded: the TLS handshake (`tlsHandshakeTimeoutMs`), the time until
 * a connection starts its first request (`idleTimeoutMs`, including the bytes before the protocol
 * is known), the time to send a request's headers (`headersTimeoutMs`, HTTP/1), and the idle time
 * between requests (`keepAliveTimeoutMs`; for HTTP/2, a session without open streams).
 */
import {
  createServer as createHttpServer,
  type Server as HttpServer,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import {
  createServer as createHttp2Server,
  type Http2Server,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import {
  type AddressInfo,
  createServer as createNetServer,
  type Server as NetServer,
  type Socket,
} from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Listener as ListenerConfig } from '../config/gateway-config.ts';
import { type ErrorDefinition, Errors, errorBody, sendError } from './errors.ts';
import { isGrpc, sendGrpcError } from './grpc.ts';
import type { GatewayProxy } from './proxy.ts';
import { TlsCertificateStore } from './tls/certificate-store.ts';
import type { TlsMinVersion } from './tls/contexts.ts';
import { type FileCertificateSpec, FileCertificates } from './tls/file-certificates.ts';
import { clientCertificateAllowed, createTlsServer, plaintextAllowed } from './tls/termination.ts';
import { requestIdFor } from './upstream/headers.ts';
import { isWebSocketUpgrade, rejectUpgradeWith } from './websocket.ts';

export interface ListenOptions {
  address: string;
  port: number;
  /** For logs. */
  name?: string;
  /** Largest request head accepted (431 above). Default 32 KiB. */
  maxHeaderBytes?: number;
  /** Most header fields a request may have (431 above). Default 100. */
  maxHeadersCount?: number;
  /** Time a client has to send its request headers (HTTP/1). Default 30 s. */
  headersTimeoutMs?: number;
  /** Idle keep-alive time; above common load balancers' 60 s so they close first. Default 65 s. */
  keepAliveTimeoutMs?: number;
  /** Time a new connection has to start its first request (after the TLS handshake). Default 30 s. */
  idleTimeoutMs?: number;
  /** Time a client has to complete the TLS handshake. Default 10 s. */
  tlsHandshakeTimeoutMs?: number;
  /** Makes this an HTTPS listener. */
  tls?: HttpsListenOptions;
}

export interface HttpsListenOptions {
  /** The listener's own certificates, from PEM files (watched and reloaded). */
  certificates?: readonly FileCertificateSpec[];
  /** CA bundle the clients of the file certificates must present a certificate from (mTLS). */
  clientCaFile?: string;
  /** Default TLSv1.2. */
  minVersion?: TlsMinVersion;
  /** Quiet time after a change to the certificate files before reloading. Default 200 ms. */
  reloadDebounceMs?: number;
}

export interface Listener {
  readonly name: string | undefined;
  readonly protocol: 'http' | 'https';
  readonly server: NetServer;
  readonly http1: HttpServer;
  readonly http2: Http2Server;
  readonly address: AddressInfo;
  /** `http://host:port` or `https://host:port`, with IPv6 in brackets. */
  readonly url: string;
  /** The certificates (routing table + files): served on HTTPS, client-certificate policy on both. */
  readonly certificates: TlsCertificateStore;
  /** HTTPS with file certificates: emits 'reload' after each reload attempt. */
  readonly files: FileCertificates | undefined;
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

const kIdle = Symbol('modelgate.idleTimer');
type IdleMark = { [kIdle]?: NodeJS.Timeout | undefined };

function rawError(status: number, reason: string, body: string): string {
  return `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

/** Closes the connection unless it starts a request within `ms`. */
function armIdle(socket: Socket, ms: number): void {
  const timer = setTimeout(() => socket.destroy(), ms);
  timer.unref();
  (socket as Socket & IdleMark)[kIdle] = timer;
  socket.once('close', () => clearTimeout(timer));
}

function clearIdle(socket: unknown): void {
  const marked = socket as IdleMark | undefined;
  const timer = marked?.[kIdle];
  if (timer !== undefined) {
    clearTimeout(timer);
    marked![kIdle] = undefined;
  }
}

/** Header fields of a request: HTTP/1 raw pairs, HTTP/2 without pseudo-headers. */
function headerCount(req: IncomingMessage): number {
  const raw = req.rawHeaders;
  if (req.httpVersionMajor !== 2) return raw.length >>> 1;
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.charCodeAt(0) !== 58 /* : */) n++;
  return n;
}

export async function listen(proxy: GatewayProxy, opts: ListenOptions): Promise<Listener> {
  const maxHeaderBytes = opts.maxHeaderBytes ?? 32 * 1024;
  const maxHeaders = opts.maxHeadersCount ?? 100;
  const headersTimeout = opts.headersTimeoutMs ?? 30_000;
  const keepAliveTimeout = opts.keepAliveTimeoutMs ?? 65_000;
  const idleTimeout = opts.idleTimeoutMs ?? 30_000;

  // HTTPS: certificates first, so that a file that does not load stops the start.
  const https = opts.tls !== undefined;
  const minVersion = opts.tls?.minVersion ?? 'TLSv1.2';
  let files: FileCertificates | undefined;
  if (opts.tls?.certificates !== undefined && opts.tls.certificates.length > 0) {
    try {
      files = new FileCertificates({
        certificates: opts.tls.certificates,
        clientCaFile: opts.tls.clientCaFile,
        minVersion,
        logger: proxy.logger,
        debounceMs: opts.tls.reloadDebounceMs,
        listener: opts.name,
      });
    } catch (e) {
      throw new Error(`listener ${opts.name ?? `${opts.address}:${opts.port}`}: ${(e as Error).message}`);
    }
  }
  // The certificates served (HTTPS), and in any case which hosts require a client certificate: a
  // plaintext listener refuses requests for hosts whose route certificate asks for one, since
  // they could not present it there.
  const store = new TlsCertificateStore({
    routeCertificates: () => proxy.table?.table.routes.tls,
    files,
    minVersion,
    logger: proxy.logger,
    listener: opts.name,
  });

  // Routes whose plaintext requests the proxy redirects to https, by the routes part in use.
  let redirectsOf: unknown;
  let redirects = new Set<string>();
  const redirecting = (route: string) => {
    const routes = proxy.table?.table.routes;
    if (routes !== redirectsOf) {
      redirectsOf = routes;
      redirects = new Set(routes?.rules.filter((r) => r.httpsRedirect !== undefined).map((r) => r.route));
    }
    return redirects.has(route);
  };
  const allowed = https
    ? (req: IncomingMessage) => clientCertificateAllowed(store, req)
    : (req: IncomingMessage) => plaintextAllowed(store, req, redirecting);

  const inner = proxy.handle;
  const innerUpgrade = proxy.handleUpgrade;
  const refuse = (req: IncomingMessage, res: ServerResponse, e: ErrorDefinition, message?: string) => {
    proxy.metrics.gatewayError(e.code);
    const id = requestIdFor(req.headers['x-request-id']);
    if (isGrpc(req)) sendGrpcError(res, e, id, message);
    else sendError(res, e, id, message, req.httpVersionMajor === 2 ? undefined : { connection: 'close' });
  };
  /** The listener's own checks; false when the request was refused. */
  const screen = (req: IncomingMessage, res: ServerResponse): boolean => {
    if (req.httpVersionMajor !== 2) clearIdle(req.socket);
    if (headerCount(req) > maxHeaders) {
      refuse(req, res, Errors.HeadersTooLarge, `more than ${maxHeaders} header fields`);
      return false;
    }
    if (!allowed(req)) {
      refuse(req, res, Errors.ClientCertificateRequired);
      return false;
    }
    return true;
  };
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    if (screen(req, res)) inner(req, res);
  };
  // `Expect: 100-continue` (both servers emit 'checkContinue' instead of 'request' when it is
  // listened for): the proxy sends `100 Continue` only when it reads the body. Other expectations
  // get node's 417 (no 'checkExpectation' listener).
  const innerContinue = proxy.handleContinue;
  const handleContinue = (req: IncomingMessage, res: ServerResponse): void => {
    if (screen(req, res)) innerContinue(req, res);
  };
  const upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    clearIdle(req.socket);
    let e: ErrorDefinition | undefined;
    if (headerCount(req) > maxHeaders) e = Errors.HeadersTooLarge;
    else if (!allowed(req)) e = Errors.ClientCertificateRequired;
    if (e !== undefined) {
      proxy.metrics.gatewayError(e.code);
      rejectUpgradeWith(socket, e, requestIdFor(req.headers['x-request-id']));
      return;
    }
    innerUpgrade(req, socket, head);
  };

  const http1 = createHttpServer(
    {
      maxHeaderSize: maxHeaderBytes,
      headersTimeout,
      // How often headersTimeout is enforced (node's default, 30 s, would let it run 30 s late).
      connectionsCheckingInterval: Math.max(10, Math.min(5000, Math.floor(headersTimeout / 4))),
      // Uploads of multimodal prompts can be slow; the route's idle timeout governs the rest.
      requestTimeout: 0,
      keepAliveTimeout,
      // No request smuggling: never accept what the strict parser refuses.
      insecureHTTPParser: false,
      // Only WebSocket upgrades leave the request path; `Upgrade: h2c` and others are served as
      // plain requests (the upgrade is simply not taken).
      shouldUpgradeCallback: isWebSocketUpgrade,
    },
    handle,
  );
  // node:http keeps this many fields and silently drops the rest: one more than allowed is
  // enough to see that the request has too many.
  http1.maxHeadersCount = maxHeaders + 1;
  http1.on('checkContinue', handleContinue);
  http1.on('upgrade', upgrade);
  // The HTTP/1 server never listens itself (connections are handed to it), so start the
  // connection tracking that enforces headersTimeout the way listening would.
  http1.emit('listening');
  http1.on('clientError', (err: Error & { code?: string }, socket: Socket) => {
    if (!socket.writable || err.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      // headersTimeout: a client that does not finish its headers gets no more than this.
      socket.end('HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      return;
    }
    const id = requestIdFor(undefined);
    const e = err.code === 'HPE_HEADER_OVERFLOW' ? Errors.HeadersTooLarge : Errors.BadRequest;
    proxy.metrics.gatewayError(e.code);
    const reason = e.status === 431 ? 'Request Header Fields Too Large' : 'Bad Request';
    socket.end(rawError(e.status, reason, errorBody(e, id, `${e.message} (${err.code ?? 'parse error'})`)));
  });

  const http2 = createHttp2Server({
    maxSendHeaderBlockLength: maxHeaderBytes,
    // Above the limit the stream is reset; up to it, the request gets the 431 above.
    maxHeaderListPairs: Math.max(128, 2 * maxHeaders + 8),
  });
  http2.on('request', handle as unknown as Parameters<Http2Server['on']>[1]);
  http2.on('checkContinue', handleContinue as unknown as Parameters<Http2Server['on']>[1]);
  const sessions = new Set<ServerHttp2Session>();
  let draining = false;
  http2.on('session', (s: ServerHttp2Session) => {
    sessions.add(s);
    s.once('close', () => sessions.delete(s));
    if (draining) {
      s.close();
      return;
    }
    const socket = s.socket;
    let open = 0;
    s.on('stream', (stream: ServerHttp2Stream) => {
      if (open === 0) clearIdle(socket);
      open++;
      stream.once('close', () => open--);
    });
    // Keep-alive for HTTP/2: a session without streams for this long is told to go away.
    s.setTimeout(keepAliveTimeout, () => {
      if (open === 0) s.close();
    });
  });
  // A session error (bad frames) ends that session, never the process.
  http2.on('sessionError', () => {});

  // Every TCP (and TLS) socket, to wait for on drain and to cut on close.
  const sockets = new Set<Socket>();
  let onEmpty: (() => void) | undefined;
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      if (sockets.size === 0) onEmpty?.();
    });
  };

  let server: NetServer;
  if (!https) {
    server = createNetServer({ noDelay: true }, (socket) => {
      track(socket);
      armIdle(socket, idleTimeout);
      sniff(socket, http1, http2);
    });
  } else {
    const tlsServer = createTlsServer({
      store,
      handshakeTimeoutMs: opts.tlsHandshakeTimeoutMs ?? 10_000,
      logger: proxy.logger,
      listener: opts.name,
    });
    tlsServer.on('connection', (raw: Socket) => {
      raw.setNoDelay(true);
      track(raw);
    });
    tlsServer.on('secureConnection', (socket: TLSSocket) => {
      track(socket);
      armIdle(socket, idleTimeout);
      if (socket.alpnProtocol === 'h2') http2.emit('connection', socket);
      else http1.emit('connection', socket);
    });
    // A failed or timed-out handshake (no certificate for the name, a protocol the policy refuses).
    tlsServer.on('tlsClientError', (err: Error, socket: TLSSocket) => {
      proxy.logger.debug({ listener: opts.name, reason: err.message }, 'TLS handshake failed');
      socket.destroy();
    });
    server = tlsServer;
  }
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, opts.address, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (e) {
    files?.close();
    http1.close();
    throw e;
  }
  files?.watch();
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;

  const stopAccepting = () =>
    new Promise<void>((resolve) => {
      if (!server.listening) resolve();
      else server.close(() => resolve());
    });
  const release = () => {
    files?.close();
    // Stops the headersTimeout checks (the HTTP/1 server never listened, so close() only does that).
    http1.close();
  };
  return {
    name: opts.name,
    protocol: https ? 'https' : 'http',
    server,
    http1,
    http2,
    address,
    url: `${https ? 'https' : 'http'}://${host}:${address.port}`,
    certificates: store,
    files,
    close: async () => {
      const closed = stopAccepting();
      http1.closeAllConnections();
      for (const s of sessions) s.destroy();
      for (const s of sockets) s.destroy();
      release();
      await closed;
    },
    drain: (timeoutMs) =>
      new Promise((resolve) => {
        let forced = false;
        draining = true;
        const deadline = setTimeout(() => {
          forced = true;
          for (const s of sockets) s.destroy();
        }, timeoutMs);
        // A connection that finishes its last request while draining would otherwise idle in
        // keep-alive until its timeout.
        const closeIdle = setInterval(() => http1.closeIdleConnections(), 250);
        const finish = () => {
          if (sockets.size > 0) return;
          onEmpty = undefined;
          clearTimeout(deadline);
          clearInterval(closeIdle);
          release();
          resolve({ forced });
        };
        onEmpty = finish;
        void stopAccepting();
        http1.closeIdleConnections();
        for (const s of sessions) s.close();
        finish();
      }),
  };
}

/** ListenOptions for a GatewayConfig listener; `extra` adds limits (and test settings). */
export function listenOptionsFor(l: ListenerConfig, extra: Partial<ListenOptions> = {}): ListenOptions {
  return {
    ...extra,
    name: l.name,
    address: l.address,
    port: l.port,
    ...(l.protocol === 'HTTPS'
      ? {
          tls: {
            ...extra.tls,
            certificates: l.tls?.certificates ?? [],
            ...(l.tls?.clientCA ? { clientCaFile: l.tls.clientCA.file } : {}),
            minVersion: l.tls?.minVersion ?? 'TLSv1.2',
          },
        }
      : { tls: undefined }),
  };
}

/**
 * Starts every listener, in order; if one cannot start, those already started are closed and the
 * error names the listener.
 */
export async function listenAll(proxy: GatewayProxy, all: readonly ListenOptions[]): Promise<Listener[]> {
  const started: Listener[] = [];
  try {
    for (const opts of all) {
      try {
        started.push(await listen(proxy, opts));
      } catch (e) {
        const what = `${opts.name ?? 'listener'} (${opts.address}:${opts.port})`;
        const msg = (e as Error).message;
        const err = new Error(msg.startsWith(`listener ${opts.name}`) ? msg : `${what}: ${msg}`);
        throw Object.assign(err, { code: (e as NodeJS.ErrnoException).code });
      }
    }
  } catch (e) {
    await Promise.all(started.map((l) => l.close()));
    throw e;
  }
  return started;
}

/** Drains every listener at once; `forced` when any had to cut connections. */
export async function drainAll(
  listeners: readonly Listener[],
  timeoutMs: number,
): Promise<{ forced: boolean }> {
  const results = await Promise.all(listeners.map((l) => l.drain(timeoutMs)));
  return { forced: results.some((r) => r.forced) };
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
