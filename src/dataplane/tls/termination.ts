/**
 * TLS termination for an HTTPS listener: a node:tls server whose certificate is chosen per SNI name
 * from a TlsCertificateStore, offering ALPN `h2` and `http/1.1`, and the client-certificate (mTLS)
 * policy per hostname.
 *
 * mTLS. A hostname requires a client certificate when its certificate entry carries a CA bundle (a
 * route certificate's `clientCaPem`, or the listener's `tls.clientCA` for its file certificates).
 * - During the handshake, the client is asked for a certificate only when the name it sent (SNI)
 *   selects such an entry; the certificate is verified against that entry's CA bundle, and a
 *   missing or unverifiable certificate does not fail the handshake (so the client gets a readable
 *   answer rather than a TLS alert).
 * - Per request, the request's host decides (`Host`, or `:authority` in HTTP/2, the one the router
 *   uses; the SNI name when there is none): if the entry selected for that host has a CA bundle,
 *   the connection must have presented a certificate that the handshake verified against that same
 *   bundle; otherwise the request is refused with 403 MG_CLIENT_CERTIFICATE_REQUIRED before it
 *   reaches a route. So a client cannot send the SNI of a host without mTLS (or of a host with
 *   another CA) and then a Host header of a host with mTLS.
 * - Clients without SNI get the fallback certificate (see sni.ts); the fallback's CA bundle applies
 *   to them the same way.
 * - Plaintext listeners apply the same per-request check with the route certificates: a host whose
 *   route certificate asks for a client certificate is refused there (it cannot present one),
 *   unless that route redirects plaintext requests to https (the proxy answers with the redirect).
 * What the handshake established is recorded on the socket once; a request only compares it.
 *
 * Two node internals are used, each with a safe fallback: the SNI callback is called with the TLS
 * socket as `this` (used to record the selected entry and to request a client certificate only for
 * names that need one; without it every client is asked when any name needs it, and the entry is
 * looked up again from the SNI name when the handshake completes), and a server TLS socket's
 * `_parent` is the TCP socket it wraps (used for clients without SNI; without it such clients can
 * reach no host that requires a client certificate).
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { createServer, TLSSocket, type Server as TlsServer } from 'node:tls';
import type { Logger } from 'pino';
import { hostOf } from '../router/router.ts';
import type { TlsCertificateStore } from './certificate-store.ts';
import { baseContextOptions, contextOptions } from './contexts.ts';
import { type CertificateEntry, type CertificateIndex, normalizeServerName } from './sni.ts';

const kEntry = Symbol('modelgate.tls.sniEntry');
const kDefault = Symbol('modelgate.tls.defaultEntry');
const kHandshake = Symbol('modelgate.tls.handshake');

/** What the handshake of a connection established about its client certificate. */
export interface HandshakeRecord {
  /** The CA bundle the client certificate was verified against (undefined: none was asked). */
  readonly clientCaPem: string | undefined;
  /** True when a client certificate was presented and verified against `clientCaPem`. */
  readonly verified: boolean;
}

interface Marks {
  [kEntry]?: CertificateEntry | null;
  [kDefault]?: CertificateEntry | null;
  [kHandshake]?: HandshakeRecord;
}

interface TlsInternals {
  _handle?: { setVerifyMode?: (requestCert: boolean, rejectUnauthorized: boolean) => void } | null;
  _parent?: unknown;
}

export interface TlsServerOptions {
  store: TlsCertificateStore;
  handshakeTimeoutMs: number;
  logger: Logger;
  listener?: string;
}

/**
 * The node:tls server of an HTTPS listener. It emits 'secureConnection' with the handshake already
 * recorded (see handshakeOf).
 */
export function createTlsServer(opts: TlsServerOptions): TlsServer {
  const { store } = opts;
  let hookMissing = false;
  const sni = function (this: unknown, servername: string, cb: (err: Error | null, ctx?: unknown) => void) {
    const index = store.current();
    const entry = index.select(normalizeServerName(servername));
    const context = entry?.context();
    if (this instanceof TLSSocket) {
      (this as TLSSocket & Marks)[kEntry] = entry ?? null;
      const handle = (this as TlsInternals)._handle;
      if (typeof handle?.setVerifyMode === 'function')
        handle.setVerifyMode(entry?.clientCaPem !== undefined, false);
    } else if (!hookMissing) {
      hookMissing = true;
      opts.logger.warn(
        { listener: opts.listener },
        'TLS: the SNI callback has no socket; client certificates are requested from every client',
      );
    }
    if (context === undefined) cb(new Error(`no usable certificate for ${servername}`));
    else cb(null, context);
  };

  let applied: CertificateIndex | undefined;
  let defaultEntry: CertificateEntry | undefined;
  const defaultOptions = (entry: CertificateEntry | undefined) =>
    entry !== undefined
      ? contextOptions(entry.material, store.minVersion)
      : baseContextOptions(store.minVersion);

  const initial = store.current();
  const server = createServer({
    ...defaultOptions(initial.fallback),
    SNICallback: sni as never,
    ALPNProtocols: ['h2', 'http/1.1'],
    handshakeTimeout: opts.handshakeTimeoutMs,
    requestCert: initial.requiresClientCertificates,
    rejectUnauthorized: false,
  });
  applied = initial;
  defaultEntry = initial.fallback;

  // Runs before node:tls wraps the TCP socket: the wrap takes the server's default context and
  // `requestCert` as they are now.
  server.prependListener('connection', (raw: Socket) => {
    const index = store.current();
    if (index !== applied) {
      applied = index;
      // Read by node:tls for each new connection (whether the client is asked by default).
      (server as TlsServer & { requestCert: boolean }).requestCert = index.requiresClientCertificates;
      const next = index.fallback;
      if (!sameMaterial(next, defaultEntry)) {
        try {
          server.setSecureContext(defaultOptions(next));
          defaultEntry = next;
        } catch (e) {
          opts.logger.warn(
            { listener: opts.listener, certificate: next?.source, reason: (e as Error).message },
            'default certificate unusable: clients without SNI fail their handshake',
          );
          server.setSecureContext(defaultOptions(undefined));
          defaultEntry = undefined;
        }
      }
    }
    (raw as Socket & Marks)[kDefault] = defaultEntry ?? null;
  });

  // Registered first, so the record exists before the listener's own 'secureConnection' handler.
  server.on('secureConnection', (socket: TLSSocket) => {
    const marked = socket as TLSSocket & Marks;
    let entry: CertificateEntry | null | undefined = marked[kEntry];
    if (entry === undefined) {
      if (socket.servername) entry = store.current().select(normalizeServerName(socket.servername));
      else {
        const parent = (socket as TlsInternals)._parent as (Socket & Marks) | undefined;
        entry = parent?.[kDefault];
      }
    }
    const clientCaPem = entry?.clientCaPem;
    const verified =
      clientCaPem !== undefined && socket.authorized && socket.getPeerX509Certificate() !== undefined;
    marked[kHandshake] = { clientCaPem, verified };
  });
  return server;
}

function sameMaterial(a: CertificateEntry | undefined, b: CertificateEntry | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined) return false;
  const x = a.material;
  const y = b.material;
  return (
    x.certificatePem === y.certificatePem &&
    x.privateKeyPem === y.privateKeyPem &&
    x.clientCaPem === y.clientCaPem
  );
}

/** The handshake record of a listener's socket (for HTTP/2 requests, the session's socket proxy). */
export function handshakeOf(socket: unknown): HandshakeRecord | undefined {
  return (socket as Marks | undefined)?.[kHandshake];
}

/**
 * True when the request may proceed: its host needs no client certificate, or the connection
 * presented one verified against that host's CA bundle.
 */
export function clientCertificateAllowed(store: TlsCertificateStore, req: IncomingMessage): boolean {
  const index = store.current();
  if (!index.requiresClientCertificates) return true;
  const socket = req.socket as TLSSocket & Marks;
  let host = hostOf(req.headers.host ?? (req.headers[':authority'] as string | undefined));
  if (host === '' && socket.servername) host = normalizeServerName(socket.servername);
  const need = index.select(host)?.clientCaPem;
  if (need === undefined) return true;
  const record = socket[kHandshake];
  return record?.verified === true && record.clientCaPem === need;
}

/**
 * For a plaintext listener: true unless the request's host requires a client certificate (and its
 * route does not redirect to https, see `redirecting`).
 */
export function plaintextAllowed(
  store: TlsCertificateStore,
  req: IncomingMessage,
  redirecting: (route: string) => boolean,
): boolean {
  const index = store.current();
  if (!index.requiresClientCertificates) return true;
  const entry = index.select(hostOf(req.headers.host ?? (req.headers[':authority'] as string | undefined)));
  if (entry?.clientCaPem === undefined) return true;
  return entry.route !== undefined && redirecting(entry.route);
}
