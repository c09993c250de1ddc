/**
 * WebSocket proxying: the server's `'upgrade'` event, after routing has chosen a target, hands the
 * client socket here; this module performs the upstream handshake and then pipes bytes both ways.
 *
 * Why a raw node:http(s) request and not http-proxy-3's `ws()` (which the project card names for
 * this) or undici's `dispatch({ upgrade: 'websocket' })`:
 * - http-proxy-3's `ws()` builds the upstream request from `req.headers` (the unfiltered client
 *   headers; replacing them means mutating `req` or patching the request in a `proxyReqWs` event),
 *   has no connect or idle timeout and no byte counts, reports failures through a callback right
 *   before it calls `socket.destroySoon()` itself, re-chunks a refusal's body without backpressure,
 *   and ends (never destroys) the upstream when the client errors. Each of those would need a
 *   patch around it; the handshake itself is a dozen lines.
 * - undici would need a `Client` per upgrade anyway (an upgraded connection leaves its pool and
 *   never comes back, so the shared keep-alive pools gain nothing), forbids setting `connection`
 *   and `upgrade` headers ourselves, and its handler API adds surface for no gain here.
 * - node:http's client gives exactly what is needed: an `'upgrade'` event with the raw socket and
 *   the bytes read past the 101, a `'response'` event with a readable body for any other answer,
 *   and the strict llhttp parser for the upstream's response head.
 *
 * One upstream connection per tunnel (`agent: false`): a tunnel owns its socket for its whole life.
 *
 * Closing: a WebSocket's close handshake travels inside the tunnel as ordinary frames; the tunnel
 * only mirrors TCP. A FIN from one side is passed on as a FIN to the other (half-close), so the
 * peer's last frames still get through; a socket error on one side destroys the other; when one
 * side is fully closed the other is ended (pending writes flush first) and closes on its peer's
 * FIN, or is cut after a short linger; no byte in either direction for `idleTimeoutMs` destroys
 * both.
 */
import { type ClientRequest, request as httpRequest, type IncomingMessage, STATUS_CODES } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, Socket } from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import { type ErrorDefinition, Errors, errorBody } from './errors.ts';
import { HOP_BY_HOP, type OutgoingHeaders, requestIdFor } from './upstream/headers.ts';
import { classifyUpstreamError, type FailureKind } from './upstream/upstream-error.ts';

export interface UpgradeTarget {
  /** `http://host:port` or `https://host:port` (`ws:`/`wss:` are accepted as the same). */
  origin: string;
  /** Normalised path plus query, as the upstream receives it. */
  path: string;
  /**
   * Request headers for the upstream, already filtered and with the forwarding headers (as
   * `upstreamRequestHeaders` builds them). The handshake's `Connection`, `Upgrade` and
   * `Sec-WebSocket-{Key,Version,Protocol,Extensions}` are taken from the client request here.
   */
  headers: OutgoingHeaders;
  /**
   * No byte in either direction for this long closes both sides; also the time the upstream has
   * to answer the handshake once connected. 0 disables it.
   */
  idleTimeoutMs: number;
  /** TCP connect (plus TLS handshake for https) to the upstream. 0 disables it. */
  connectTimeoutMs: number;
  /** For gateway error bodies and `x-request-id` on responses; default: `headers['x-request-id']`. */
  requestId?: string;
  /** TLS to an https upstream. The server name defaults to the origin's host name. */
  tls?: { ca?: string | Buffer | (string | Buffer)[]; servername?: string; rejectUnauthorized?: boolean };
}

/**
 * How a tunnel ended:
 * - `client-closed` / `upstream-closed`: that side closed its TCP connection first (after a
 *   WebSocket close handshake this is usually the upstream, which RFC 6455 makes close first);
 * - `client-error` / `upstream-error`: a socket error on that side;
 * - `idle-timeout`: no byte either way for `idleTimeoutMs`;
 * - `closed-by-gateway`: `UpgradeHandle.close()`;
 * - `upstream-refused`: the upstream answered the handshake with something other than 101, which
 *   was relayed to the client;
 * - `upstream-failed`: the gateway answered with an error (connect failure, timeout, reset, invalid
 *   response; `code` says which);
 * - `bad-request`: not a WebSocket upgrade request (400 sent);
 * - `client-aborted`: the client went away before the upstream answered.
 */
export type UpgradeCloseReason =
  | 'client-closed'
  | 'upstream-closed'
  | 'client-error'
  | 'upstream-error'
  | 'idle-timeout'
  | 'closed-by-gateway'
  | 'upstream-refused'
  | 'upstream-failed'
  | 'bad-request'
  | 'client-aborted';

export interface UpgradeCloseInfo {
  reason: UpgradeCloseReason;
  /** 101 once the tunnel opened; the relayed or gateway error status otherwise; 0 if none was sent. */
  status: number;
  /** The gateway error code when the gateway produced the answer, else ''. */
  code: string;
  /** For passive health: how the upstream failed, when it did before the handshake completed. */
  failure: FailureKind | undefined;
  /** Bytes from the client to the upstream after the handshake (WebSocket frames). */
  bytesIn: number;
  /** Bytes from the upstream to the client after the 101 head, or of a relayed refusal's body. */
  bytesOut: number;
}

export interface UpgradeOpenInfo {
  /** The subprotocol the upstream chose (`Sec-WebSocket-Protocol`), if any. */
  protocol: string | undefined;
}

export interface UpgradeHooks {
  /** The upstream accepted (101) and the 101 has been written to the client. */
  onOpen?(info: UpgradeOpenInfo): void;
  /** Exactly once per `proxyUpgrade` call, whatever happened, when both sides are done. */
  onClose?(info: UpgradeCloseInfo): void;
}

export interface UpgradeHandle {
  /** Destroys both sides now (shutdown); `onClose` reports `closed-by-gateway`. */
  close(): void;
}

/** A one-side-closed socket gets this long to flush its writes before it is destroyed. */
const LINGER_MS = 5_000;
/** Bytes a client may send before the upstream has answered the handshake (it should send none). */
const MAX_EARLY_BYTES = 64 * 1024;

/** Handshake headers taken from the client request, whatever the target's headers say. */
const HANDSHAKE_HEADERS = [
  'sec-websocket-key',
  'sec-websocket-version',
  'sec-websocket-protocol',
  'sec-websocket-extensions',
];

/** GET with `Upgrade: websocket` (node's server also emits `'upgrade'` for h2c and others). */
export function isWebSocketUpgrade(req: IncomingMessage): boolean {
  if (req.method !== 'GET') return false;
  const upgrade = req.headers.upgrade;
  if (upgrade === undefined) return false;
  for (const token of upgrade.split(',')) {
    if (token.trim().toLowerCase() === 'websocket') return true;
  }
  return false;
}

/**
 * Writes a raw HTTP error response on a socket that has not been upgraded (refusals before the
 * handshake: no route, filters, bad path…) and closes it. `body` is a JSON error body
 * (`errorBody(...)`); `headers` adds e.g. `x-request-id` (values must be valid header values).
 */
export function rejectUpgrade(
  socket: Duplex,
  status: number,
  body: string,
  headers?: Record<string, string>,
): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n`;
  if (headers) for (const name in headers) head += `${name}: ${headers[name]}\r\n`;
  socket.end(`${head}\r\n${body}`);
  // The server's sockets allow half-open connections: read (and drop) until the client's FIN so
  // the socket closes, and do not wait for a client that never sends one.
  socket.resume();
  linger(socket);
}

/** `rejectUpgrade` with a gateway error from the catalogue. */
export function rejectUpgradeWith(
  socket: Duplex,
  e: ErrorDefinition,
  requestId: string,
  message?: string,
): void {
  rejectUpgrade(socket, e.status, errorBody(e, requestId, message), { 'x-request-id': requestId });
}

/**
 * Proxies a WebSocket upgrade to `target`. Takes ownership of `clientSocket`: every outcome
 * (tunnel, relayed refusal, gateway error) ends with the socket closed and `onClose` called once.
 */
export function proxyUpgrade(
  req: IncomingMessage,
  clientSocket: Duplex,
  head: Buffer,
  target: UpgradeTarget,
  hooks: UpgradeHooks = {},
): UpgradeHandle {
  const tunnel = new Tunnel(req, clientSocket, head, target, hooks);
  tunnel.start();
  return tunnel;
}

type Phase = 'handshake' | 'open' | 'relaying' | 'rejecting' | 'done';

class Tunnel implements UpgradeHandle {
  private readonly req: IncomingMessage;
  private readonly client: Duplex;
  private readonly target: UpgradeTarget;
  private readonly hooks: UpgradeHooks;
  private readonly requestId: string;
  private phase: Phase = 'handshake';
  private upstreamReq: ClientRequest | undefined;
  private upstream: Duplex | undefined;
  /** What writes to the client (upstream socket or a refusal's body), resumed on client drain. */
  private toClient: Readable | undefined;
  /** Client bytes read before the tunnel opened (the upgrade's `head`, early frames). */
  private early: Buffer[] = [];
  private earlyBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private clientClosed = false;
  private upstreamClosed = false;
  private reason: UpgradeCloseReason | undefined;
  private status = 0;
  private code = '';
  private failure: FailureKind | undefined;
  private bytesIn = 0;
  private bytesOut = 0;

  constructor(
    req: IncomingMessage,
    client: Duplex,
    head: Buffer,
    target: UpgradeTarget,
    hooks: UpgradeHooks,
  ) {
    this.req = req;
    this.client = client;
    this.target = target;
    this.hooks = hooks;
    const headerId = target.headers['x-request-id'];
    this.requestId = target.requestId ?? (typeof headerId === 'string' ? headerId : requestIdFor(undefined));
    if (head.length > 0) {
      this.early.push(head);
      this.earlyBytes = head.length;
    }
  }

  start(): void {
    const { client, target } = this;
    client.on('data', this.onClientData);
    client.on('end', this.onClientEnd);
    client.on('error', this.onClientError);
    client.on('close', this.onClientClose);
    client.on('drain', this.onClientDrain);
    // Read during the handshake too: that is how a client going away is noticed (early frames
    // are kept for the upstream).
    client.resume();
    if (client instanceof Socket) {
      // Server-level socket timeouts are for requests; the tunnel's idle timer governs from here.
      client.setTimeout(0);
      client.setNoDelay(true);
    }
    if (client.destroyed) {
      this.onClientClose();
      return;
    }
    if (!isWebSocketUpgrade(this.req)) {
      this.fail(Errors.BadRequest, 'not a WebSocket upgrade request', undefined, 'bad-request');
      return;
    }
    let url: URL;
    try {
      url = new URL(target.origin);
    } catch {
      this.fail(Errors.Internal, `invalid upstream origin ${target.origin}`, undefined);
      return;
    }
    const secure = url.protocol === 'https:' || url.protocol === 'wss:';
    // URL keeps IPv6 literals in brackets; the socket layer wants them bare.
    const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const port = url.port === '' ? (secure ? 443 : 80) : Number(url.port);
    const headers = handshakeHeaders(this.req, target.headers);
    const upstreamReq = secure
      ? httpsRequest({
          hostname,
          port,
          method: 'GET',
          path: target.path,
          headers,
          agent: false,
          // The Host header names the client's view (or the backend's), not necessarily the name
          // on the upstream's certificate; SNI and verification use the origin's host name.
          servername: target.tls?.servername ?? (isIP(hostname) === 0 ? hostname : undefined),
          ca: target.tls?.ca,
          rejectUnauthorized: target.tls?.rejectUnauthorized ?? true,
        })
      : httpRequest({ hostname, port, method: 'GET', path: target.path, headers, agent: false });
    this.upstreamReq = upstreamReq;
    upstreamReq.on('error', this.onUpstreamRequestError);
    upstreamReq.on('upgrade', this.onUpstreamUpgrade);
    upstreamReq.on('response', this.onUpstreamResponse);
    upstreamReq.on('socket', (socket: Socket) => {
      socket.setNoDelay(true);
      socket.once(secure ? 'secureConnect' : 'connect', this.onUpstreamConnected);
    });
    if (target.connectTimeoutMs > 0) {
      this.timer = setTimeout(this.onConnectTimeout, target.connectTimeoutMs);
    }
    upstreamReq.end();
  }

  close(): void {
    if (this.phase === 'done') return;
    this.note('closed-by-gateway');
    this.upstreamReq?.destroy();
    this.upstream?.destroy();
    this.client.destroy();
  }

  // --- handshake ---------------------------------------------------------------------------

  private readonly onUpstreamConnected = (): void => {
    if (this.phase !== 'handshake') return;
    clearTimeout(this.timer);
    // Connected: the upstream now has the idle time to answer the handshake.
    this.timer =
      this.target.idleTimeoutMs > 0 ? setTimeout(this.onAnswerTimeout, this.target.idleTimeoutMs) : undefined;
  };

  private readonly onConnectTimeout = (): void => {
    if (this.phase !== 'handshake') return;
    this.fail(Errors.UpstreamTimeout, 'connecting to the upstream timed out', 'connect-timeout');
  };

  private readonly onAnswerTimeout = (): void => {
    if (this.phase !== 'handshake') return;
    this.fail(
      Errors.UpstreamTimeout,
      'the upstream did not answer the WebSocket handshake in time',
      'timeout',
    );
  };

  private readonly onUpstreamRequestError = (err: Error & { code?: string }): void => {
    if (this.phase !== 'handshake') return; // our own destroy() after the handshake settled
    // node reports a close before any response as ECONNRESET "socket hang up".
    const f = classifyUpstreamError(err);
    this.fail(f.error, undefined, f.kind);
  };

  /** The upstream accepted: write its 101 to the client and start piping. */
  private readonly onUpstreamUpgrade = (res: IncomingMessage, socket: Duplex, upHead: Buffer): void => {
    clearTimeout(this.timer);
    this.timer = undefined;
    const { client } = this;
    if (this.phase !== 'handshake' || !client.writable) {
      socket.destroy();
      return;
    }
    this.phase = 'open';
    this.status = 101;
    this.upstream = socket;
    this.toClient = socket;
    socket.on('data', this.onUpstreamData);
    socket.on('end', this.onUpstreamEnd);
    socket.on('error', this.onUpstreamError);
    socket.on('close', this.onUpstreamClose);
    socket.on('drain', this.onUpstreamDrain);
    client.write(
      responseHead(
        `HTTP/1.1 101 ${res.statusMessage || 'Switching Protocols'}`,
        res.rawHeaders,
        `connection: Upgrade\r\nupgrade: ${res.headers.upgrade ?? 'websocket'}\r\n`,
        this.requestId,
        true,
      ),
    );
    if (upHead.length > 0) {
      this.bytesOut += upHead.length;
      client.write(upHead);
    }
    for (const chunk of this.early) {
      this.bytesIn += chunk.length;
      socket.write(chunk);
    }
    this.early = [];
    if (this.target.idleTimeoutMs > 0) {
      this.timer = setTimeout(this.onIdle, this.target.idleTimeoutMs);
    }
    socket.resume();
    const protocol = res.headers['sec-websocket-protocol'];
    this.hooks.onOpen?.({ protocol: typeof protocol === 'string' ? protocol : undefined });
  };

  /** Anything but 101: relay it to the client (status, headers, body) and close. */
  private readonly onUpstreamResponse = (res: IncomingMessage): void => {
    clearTimeout(this.timer);
    this.timer = undefined;
    const { client } = this;
    if (this.phase !== 'handshake' || !client.writable) {
      this.upstreamReq?.destroy();
      return;
    }
    this.phase = 'relaying';
    this.status = res.statusCode ?? 502;
    this.note('upstream-refused');
    this.toClient = res;
    client.write(
      responseHead(
        `HTTP/1.1 ${this.status} ${res.statusMessage || STATUS_CODES[this.status] || ''}`,
        res.rawHeaders,
        '',
        this.requestId,
        false,
      ),
    );
    res.on('data', (chunk: Buffer) => {
      this.bytesOut += chunk.length;
      if (!client.write(chunk)) res.pause();
    });
    res.on('end', () => {
      this.upstreamReq?.destroy();
      this.endClient();
    });
    // A body cut short: the client must not take a truncated body for a whole one.
    res.on('aborted', () => client.destroy());
    res.on('error', () => client.destroy());
  };

  /** The gateway's own error answer before the handshake completed. */
  private fail(
    e: ErrorDefinition,
    message: string | undefined,
    failure: FailureKind | undefined,
    reason: UpgradeCloseReason = 'upstream-failed',
  ): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.phase = 'rejecting';
    this.upstreamReq?.destroy();
    this.note(reason);
    this.failure = failure;
    if (!this.client.writable) {
      this.client.destroy();
      return;
    }
    this.status = e.status;
    this.code = e.code;
    rejectUpgrade(this.client, e.status, errorBody(e, this.requestId, message), {
      'x-request-id': this.requestId,
    });
    this.client.once('finish', this.finish);
  }

  /** Ends the client after a relayed or gateway answer; `onClose` does not wait for its FIN. */
  private endClient(): void {
    const { client } = this;
    client.end();
    client.once('finish', this.finish);
    linger(client);
  }

  // --- client side -------------------------------------------------------------------------

  private readonly onClientData = (chunk: Buffer): void => {
    if (this.phase === 'open') {
      const up = this.upstream!;
      // Nowhere to go once the upstream is gone; dropping (not pausing) lets the FIN be read.
      if (this.upstreamClosed || up.writableEnded) return;
      this.bytesIn += chunk.length;
      this.timer?.refresh();
      if (!up.write(chunk)) this.client.pause();
    } else if (this.phase === 'handshake') {
      // A client should wait for the 101; keep a little of what it sends early, refuse more.
      this.earlyBytes += chunk.length;
      if (this.earlyBytes > MAX_EARLY_BYTES) {
        this.note('client-error');
        this.upstreamReq?.destroy();
        this.client.destroy();
        return;
      }
      this.early.push(chunk);
    }
    // relaying / rejecting: the client's bytes are read and dropped until its FIN.
  };

  private readonly onClientEnd = (): void => {
    if (this.phase === 'open') {
      this.note('client-closed');
      this.upstream!.end();
    } else if (this.phase === 'handshake') {
      this.note('client-aborted');
      this.upstreamReq?.destroy();
      this.client.destroy();
    }
  };

  private readonly onClientError = (): void => {
    if (this.phase === 'open') {
      this.note('client-error');
      this.upstream!.destroy();
    } else if (this.phase === 'handshake') {
      this.note('client-aborted');
      this.upstreamReq?.destroy();
    } else {
      this.upstreamReq?.destroy();
    }
  };

  private readonly onClientClose = (): void => {
    this.clientClosed = true;
    if (this.phase === 'open') {
      this.note('client-closed');
      if (!this.upstreamClosed) endAndLinger(this.upstream!);
      this.maybeFinish();
      return;
    }
    if (this.phase === 'handshake') this.note('client-aborted');
    this.upstreamReq?.destroy();
    this.finish();
  };

  private readonly onClientDrain = (): void => {
    this.toClient?.resume();
  };

  // --- upstream side (open tunnel) ----------------------------------------------------------

  private readonly onUpstreamData = (chunk: Buffer): void => {
    const { client } = this;
    // A client already gone cannot take it; its close ends the upstream.
    if (this.clientClosed || client.writableEnded) return;
    this.bytesOut += chunk.length;
    this.timer?.refresh();
    if (!client.write(chunk)) this.upstream!.pause();
  };

  private readonly onUpstreamEnd = (): void => {
    this.note('upstream-closed');
    if (!this.client.writableEnded) this.client.end();
  };

  private readonly onUpstreamError = (): void => {
    this.note('upstream-error');
    this.client.destroy();
  };

  private readonly onUpstreamClose = (): void => {
    this.upstreamClosed = true;
    this.note('upstream-closed');
    if (!this.clientClosed) endAndLinger(this.client);
    this.maybeFinish();
  };

  private readonly onUpstreamDrain = (): void => {
    this.client.resume();
  };

  private readonly onIdle = (): void => {
    this.note('idle-timeout');
    this.upstream?.destroy();
    this.client.destroy();
  };

  // --- end ----------------------------------------------------------------------------------

  /** The first cause seen is the reason; later events are consequences of it. */
  private note(reason: UpgradeCloseReason): void {
    this.reason ??= reason;
  }

  private maybeFinish(): void {
    if (this.clientClosed && this.upstreamClosed) this.finish();
  }

  private readonly finish = (): void => {
    if (this.phase === 'done') return;
    this.phase = 'done';
    clearTimeout(this.timer);
    this.timer = undefined;
    this.hooks.onClose?.({
      reason: this.reason ?? 'client-aborted',
      status: this.status,
      code: this.code,
      failure: this.failure,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
    });
  };
}

/** The upstream handshake request's headers: the target's, plus the handshake from the client. */
function handshakeHeaders(req: IncomingMessage, base: OutgoingHeaders): OutgoingHeaders {
  const out: OutgoingHeaders = {};
  for (const name in base) {
    const lower = name.toLowerCase();
    if (lower === 'connection' || lower === 'upgrade' || HANDSHAKE_HEADERS.includes(lower)) continue;
    out[name] = base[name]!;
  }
  out.connection = 'Upgrade';
  out.upgrade = req.headers.upgrade ?? 'websocket';
  // headersDistinct keeps repeated lines (several Sec-WebSocket-Protocol lines) as they came.
  const distinct = req.headersDistinct;
  for (const name of HANDSHAKE_HEADERS) {
    const v = distinct[name];
    if (v !== undefined) out[name] = v.length === 1 ? v[0]! : v;
  }
  return out;
}

/**
 * A response head for the client from the upstream's raw headers (names and values as sent, so
 * Sec-WebSocket-Accept, -Protocol and -Extensions pass unchanged), without hop-by-hop headers;
 * `fixed` holds the Connection/Upgrade lines of a 101; other answers get `connection: close`.
 */
function responseHead(
  statusLine: string,
  raw: string[],
  fixed: string,
  requestId: string,
  upgraded: boolean,
): string {
  // Headers the upstream's Connection header names are hop-by-hop too (Upgrade we set ourselves).
  const named = new Set<string>();
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() !== 'connection') continue;
    for (const part of raw[i + 1]!.split(',')) {
      const n = part.trim().toLowerCase();
      if (n !== '' && n !== 'upgrade') named.add(n);
    }
  }
  let head = `${statusLine}\r\n${fixed}`;
  let hasId = false;
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase();
    if (HOP_BY_HOP.has(lower) || named.has(lower)) continue;
    // A 1xx has no body, so no length (RFC 9110 §8.6).
    if (upgraded && lower === 'content-length') continue;
    if (lower === 'x-request-id') hasId = true;
    head += `${raw[i]}: ${raw[i + 1]}\r\n`;
  }
  if (!hasId) head += `x-request-id: ${requestId}\r\n`;
  // A refusal's body is delimited by its Content-Length, or else by the close.
  if (!upgraded) head += 'connection: close\r\n';
  return `${head}\r\n`;
}

/**
 * The other side of `socket` is gone: end it (its pending writes flush first) and keep reading, so
 * the peer's FIN closes it; a peer that never sends one is cut after LINGER_MS.
 */
function endAndLinger(socket: Duplex): void {
  if (socket.destroyed) return;
  if (!socket.writableEnded) socket.end();
  socket.resume();
  linger(socket);
}

/** Destroys `socket` if it has not closed within LINGER_MS (a peer that never sends its FIN). */
function linger(socket: Duplex): void {
  const t = setTimeout(() => socket.destroy(), LINGER_MS);
  t.unref();
  socket.once('close', () => clearTimeout(t));
}
