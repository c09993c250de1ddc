/**
 * Test upstreams: real node:http servers on 127.0.0.1, port 0. Each records what it received
 * (method, path, headers, body SHA-256) and answers with JSON naming itself, unless the test gives
 * its own handler.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  bodySha256: string;
  bodyBytes: number;
}

export interface TestUpstream {
  readonly name: string;
  readonly url: string;
  readonly port: number;
  readonly received: Received[];
  close(): Promise<void>;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

export async function startUpstream(name: string, handler?: Handler): Promise<TestUpstream> {
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      received.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        bodySha256: createHash('sha256').update(body).digest('hex'),
        bodyBytes: body.length,
      });
      if (handler) return handler(req, res, body);
      const payload = JSON.stringify({ upstream: name, method: req.method, url: req.url });
      res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': name });
      res.end(payload);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    name,
    url: `http://127.0.0.1:${port}`,
    port,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}
