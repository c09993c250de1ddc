/**
 * The public listener: a bare node:http server whose request handler is the proxy. Requests the
 * HTTP parser refuses (a bad Content-Length, Content-Length together with Transfer-Encoding,
 * oversized headers) never reach a route or an upstream: they get a JSON error and the connection
 * is closed.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Errors, errorBody } from './errors.ts';
import type { GatewayProxy } from './proxy.ts';
import { requestIdFor } from './upstream/headers.ts';

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
  readonly server: Server;
  readonly address: AddressInfo;
  /** `http://host:port`, with IPv6 in brackets. */
  readonly url: string;
  close(): Promise<void>;
  /**
   * Graceful stop: no new connections, idle keep-alive connections closed, requests and streams
   * in flight run to their end; whatever is still open after `timeoutMs` is cut.
   */
  drain(timeoutMs: number): Promise<{ forced: boolean }>;
}

function rawError(status: number, reason: string, body: string): string {
  return `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

export async function listen(proxy: GatewayProxy, opts: ListenOptions): Promise<Listener> {
  const server = createServer(
    {
      maxHeaderSize: opts.maxHeaderBytes ?? 32 * 1024,
      headersTimeout: opts.headersTimeoutMs ?? 30_000,
      // Uploads of multimodal prompts can be slow; the route's idle timeout governs the rest.
      requestTimeout: 0,
      keepAliveTimeout: opts.keepAliveTimeoutMs ?? 65_000,
      // No request smuggling: never accept what the strict parser refuses.
      insecureHTTPParser: false,
    },
    proxy.handle,
  );
  server.on('clientError', (err: Error & { code?: string }, socket: Socket) => {
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
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.address, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    server,
    address,
    url: `http://${host}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
    drain: (timeoutMs) =>
      new Promise((resolve) => {
        let forced = false;
        const deadline = setTimeout(() => {
          forced = true;
          server.closeAllConnections();
        }, timeoutMs);
        // A connection that finishes its request while draining would otherwise idle in keep-alive.
        const closeIdle = setInterval(() => server.closeIdleConnections(), 250);
        server.close(() => {
          clearTimeout(deadline);
          clearInterval(closeIdle);
          resolve({ forced });
        });
        server.closeIdleConnections();
      }),
  };
}
