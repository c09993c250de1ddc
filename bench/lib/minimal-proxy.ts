/**
 * The least a Node reverse proxy can do per request: node:http in, one undici Pool per upstream
 * with a raw dispatch handler out, headers copied as they are (no routing, no hop-by-hop
 * handling, no metrics). Not a usable proxy: the floor the gateway's hot path is compared with, so
 * that what Node itself costs and what the gateway's own code costs can be told apart.
 */
import { Agent, createServer, type IncomingHttpHeaders, request, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Dispatcher, Pool } from 'undici';

export function startMinimalProxy(upstream: string): Promise<number> {
  const pool = new Pool(upstream, { connections: 64, pipelining: 1 });
  const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
    const headers: IncomingHttpHeaders = { ...req.headers };
    delete headers.connection;
    pool.dispatch(
      { method: req.method as 'GET', path: req.url!, headers: headers as Record<string, string> },
      handler(res),
    );
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  );
}

function handler(res: ServerResponse): Dispatcher.DispatchHandler {
  return {
    onRequestStart() {},
    onResponseError(_controller, err) {
      if (!res.headersSent) res.writeHead(502);
      res.end(String(err));
    },
    onResponseStart(_controller, status, headers) {
      const out = { ...headers };
      delete out.connection;
      delete out['keep-alive'];
      res.writeHead(status, out);
    },
    onResponseData(_controller, chunk) {
      res.write(chunk);
    },
    onResponseEnd() {
      res.end();
    },
  };
}

/** The same floor with node:http's own client (a keep-alive Agent) instead of undici. */
export function startMinimalNodeClientProxy(upstream: string): Promise<number> {
  const target = new URL(upstream);
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
    const headers: IncomingHttpHeaders = { ...req.headers };
    delete headers.connection;
    const up = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers, agent },
      (upRes) => {
        const out = { ...upRes.headers };
        delete out.connection;
        delete out['keep-alive'];
        res.writeHead(upRes.statusCode!, out);
        upRes.pipe(res);
      },
    );
    up.on('error', (err) => {
      if (!res.headersSent) res.writeHead(502);
      res.end(String(err));
    });
    up.end();
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  );
}
