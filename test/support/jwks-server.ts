/**
 * A local JWKS server for tests: node:http on 127.0.0.1, port 0. Counts requests, serves the key
 * set it is given (which the test may change), and can be switched to fail (500, or a connection
 * reset before any response) or to hold its answers until the test releases them.
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type JwksServerMode = 'ok' | 'error500' | 'reset';

export interface JwksServer {
  readonly url: string;
  /** Requests (and, in `reset` mode, connections) received so far. */
  readonly requests: number;
  setKeys(jwks: unknown): void;
  setMode(mode: JwksServerMode): void;
  /** Sent as Cache-Control with every 200; undefined: none. */
  setCacheControl(value: string | undefined): void;
  /** Answers wait until the returned function is called. */
  hold(): () => void;
  close(): Promise<void>;
}

export async function startJwksServer(jwks: unknown): Promise<JwksServer> {
  let keys = jwks;
  let mode: JwksServerMode = 'ok';
  let cacheControl: string | undefined;
  let requests = 0;
  let held: (() => void)[] | undefined;

  const answer = (res: ServerResponse) => {
    if (mode === 'error500') {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('boom');
      return;
    }
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (cacheControl !== undefined) headers['cache-control'] = cacheControl;
    res.writeHead(200, headers);
    res.end(JSON.stringify(keys));
  };

  const server = createServer((req, res) => {
    requests++;
    if (mode === 'reset') {
      req.socket.destroy(); // a kept-alive connection from before the switch
      return;
    }
    req.resume();
    if (held) held.push(() => answer(res));
    else answer(res);
  });
  server.on('connection', (socket) => {
    if (mode === 'reset') {
      requests++;
      socket.destroy();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    get requests() {
      return requests;
    },
    setKeys(j) {
      keys = j;
    },
    setMode(m) {
      mode = m;
    },
    setCacheControl(v) {
      cacheControl = v;
    },
    hold() {
      const queue: (() => void)[] = [];
      held = queue;
      return () => {
        if (held === queue) held = undefined;
        for (const f of queue) f();
      };
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A URL on 127.0.0.1 where nothing listens (a port that was just bound and released). */
export async function unreachableUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}/jwks.json`;
}
