/**
 * For the HTTPS-listener tests: a gateway with an HTTPS listener whose route certificates are set
 * per applied table, fixture certificates, and clients that report what the handshake gave.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { connect as h2connect } from 'node:http2';
import { request as httpsRequestRaw } from 'node:https';
import { Writable } from 'node:stream';
import { type PeerCertificate, type TLSSocket, connect as tlsConnect } from 'node:tls';
import { seededRandom } from '../../../src/dataplane/balancers/random.ts';
import { GatewayProxy } from '../../../src/dataplane/proxy.ts';
import { type Listener, type ListenOptions, listen } from '../../../src/dataplane/server.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import type { CompiledTlsCertificate, RoutingTable } from '../../../src/routing-table/types.ts';
import { compileYaml } from '../../support/gateway.ts';

const here = (path: string) => new URL(`../../fixtures/tls/${path}`, import.meta.url);
export const fixturePath = (name: string) => here(`listener/${name}`).pathname;
export const pem = (name: string) => readFileSync(here(`listener/${name}`), 'utf8');
export const CA = readFileSync(here('ca.crt'), 'utf8');
export const CLIENT = {
  cert: readFileSync(here('client.crt'), 'utf8'),
  key: readFileSync(here('client.key'), 'utf8'),
};
export const OTHER_CLIENT = { cert: pem('other-client.crt'), key: pem('other-client.key') };

/** A route certificate from the fixtures named `name.crt`/`name.key`. */
export function routeCert(
  route: string,
  hostnames: string[],
  name: string,
  clientCaPem?: string,
): CompiledTlsCertificate {
  return {
    route,
    hostnames,
    certificatePem: pem(`${name}.crt`),
    privateKey: pem(`${name}.key`),
    ...(clientCaPem !== undefined ? { clientCaPem } : {}),
  };
}

export interface TlsGateway {
  readonly proxy: GatewayProxy;
  readonly listener: Listener;
  readonly logs: Record<string, unknown>[];
  readonly port: number;
  /** Compiles `yaml`, sets its `routes.tls` (a new array each time) and applies it. */
  apply(yaml: string, tls: CompiledTlsCertificate[] | undefined): RoutingTable;
  close(): Promise<void>;
}

export async function startTlsGateway(
  yaml: string,
  tls: CompiledTlsCertificate[] | undefined,
  opts: Partial<ListenOptions> = {},
  proxyOptions: { proto?: 'http' | 'https' } = {},
): Promise<TlsGateway> {
  const logs: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line));
      cb();
    },
  });
  const { logger } = createLogger({ destination, level: 'info' });
  const proxy = new GatewayProxy({ logger, random: seededRandom(1), ...proxyOptions });
  let version = 0;
  const apply = (text: string, certs: CompiledTlsCertificate[] | undefined) => {
    const compiled = compileYaml(text);
    const table: RoutingTable = {
      ...compiled,
      routes: { ...compiled.routes, ...(certs !== undefined ? { tls: [...certs] } : {}) },
    };
    if (certs === undefined) delete table.routes.tls;
    const r = proxy.apply(table, `tls-${++version}`);
    if (!r.ok) throw new Error(r.reason);
    return table;
  };
  apply(yaml, tls);
  const listener = await listen(proxy, { address: '127.0.0.1', port: 0, tls: {}, ...opts });
  return {
    proxy,
    listener,
    logs,
    port: listener.address.port,
    apply,
    close: async () => {
      await listener.close();
      await proxy.pools.destroy();
    },
  };
}

export interface HandshakeResult {
  ok: boolean;
  error?: string;
  /** CN of the certificate the server presented. */
  cn?: string;
  /** DNS names of the presented certificate. */
  san?: string;
  alpn?: string | false;
  protocol?: string | null;
}

/** Connects, completes (or fails) the handshake, and closes. */
export function handshake(
  port: number,
  opts: {
    servername?: string;
    minVersion?: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
    maxVersion?: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
    ciphers?: string;
    ALPNProtocols?: string[];
  } = {},
): Promise<HandshakeResult> {
  return new Promise((resolve) => {
    const socket = tlsConnect({
      port,
      host: '127.0.0.1',
      // An empty servername sends no SNI.
      servername: opts.servername ?? '',
      rejectUnauthorized: false,
      ...(opts.minVersion ? { minVersion: opts.minVersion } : {}),
      ...(opts.maxVersion ? { maxVersion: opts.maxVersion } : {}),
      ...(opts.ciphers ? { ciphers: opts.ciphers } : {}),
      ALPNProtocols: opts.ALPNProtocols ?? ['http/1.1'],
    });
    socket.once('secureConnect', () => {
      const peer = socket.getPeerCertificate() as PeerCertificate;
      resolve({
        ok: true,
        cn: peer.subject?.CN as string | undefined,
        san: peer.subjectaltname,
        alpn: socket.alpnProtocol ?? undefined,
        protocol: socket.getProtocol(),
      });
      socket.destroy();
    });
    socket.once('error', (e: Error & { code?: string }) =>
      resolve({ ok: false, error: `${e.code}: ${e.message}` }),
    );
  });
}

export interface TlsReply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json<T = Record<string, unknown>>(): T;
  /** CN of the server certificate on the connection that carried the request. */
  serverCn: string | undefined;
}

export interface HttpsRequestOptions {
  servername?: string;
  host?: string;
  path?: string;
  method?: string;
  headers?: Record<string, string>;
  cert?: string;
  key?: string;
  agent?: import('node:https').Agent | false;
}

/** One HTTP/1.1 request over TLS (ALPN http/1.1). */
export function httpsRequest(port: number, opts: HttpsRequestOptions = {}): Promise<TlsReply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequestRaw(
      {
        host: '127.0.0.1',
        port,
        servername: opts.servername ?? '',
        method: opts.method ?? 'GET',
        path: opts.path ?? '/',
        headers: { host: opts.host ?? opts.servername ?? 'localhost', ...opts.headers },
        // Which certificate the server presented is what the tests check (serverCn).
        rejectUnauthorized: false,
        ...(opts.cert ? { cert: opts.cert, key: opts.key } : {}),
        agent: opts.agent ?? false,
      },
      (res) => {
        const serverCn = cnOf(res.socket as TLSSocket);
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text,
            json: () => JSON.parse(text),
            serverCn,
          });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Per client socket: node's client no longer reports the peer certificate once the agent reuses it. */
const cns = new WeakMap<TLSSocket, string | undefined>();

function cnOf(socket: TLSSocket | undefined): string | undefined {
  if (socket === undefined) return undefined;
  if (cns.has(socket)) return cns.get(socket);
  const raw = socket.getPeerX509Certificate?.();
  const cn = raw ? new X509Certificate(raw.raw).subject.replace(/^CN=/, '') : undefined;
  cns.set(socket, cn);
  return cn;
}

/** One HTTP/2 request over TLS (ALPN h2). */
export function h2Request(
  port: number,
  opts: { servername?: string; authority?: string; path?: string; cert?: string; key?: string } = {},
): Promise<TlsReply & { alpn: string | false | undefined }> {
  return new Promise((resolve, reject) => {
    const session = h2connect(`https://127.0.0.1:${port}`, {
      servername: opts.servername ?? '',
      rejectUnauthorized: false,
      ...(opts.cert ? { cert: opts.cert, key: opts.key } : {}),
    });
    session.on('error', reject);
    const stream = session.request({
      ':path': opts.path ?? '/',
      ':authority': opts.authority ?? opts.servername ?? 'localhost',
    });
    let status = 0;
    let headers: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on('response', (h) => {
      status = Number(h[':status']);
      headers = h as IncomingHttpHeaders;
    });
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', reject);
    stream.on('end', () => {
      const socket = session.socket as TLSSocket;
      const text = Buffer.concat(chunks).toString('utf8');
      const reply = {
        status,
        headers,
        text,
        json: <T>() => JSON.parse(text) as T,
        serverCn: cnOf(socket),
        alpn: session.alpnProtocol,
      };
      session.close(() => resolve(reply));
    });
    stream.end();
  });
}

/** Resolves with the milliseconds until the server closes `socket` (which must already be open). */
export function closedAfter(socket: import('node:net').Socket, since: number): Promise<number> {
  return new Promise((resolve) => {
    socket.on('error', () => {});
    socket.on('data', () => {});
    socket.once('close', () => resolve(performance.now() - since));
  });
}
