/**
 * Test support for the push channel: tables of any size, a PushServer on a real socket, a scripted
 * fake controller, a raw stream reader, manual timers, and waiting on events (never on time).
 */
import type { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PushServer, type PushServerOptions } from '../../../src/controlplane/push-server.ts';
import { LineSplitter } from '../../../src/dataplane/push/ndjson.ts';
import { PushClient, type PushClientOptions, type PushTimers } from '../../../src/dataplane/push-client.ts';
import {
  hashEndpointsPart,
  hashRoutesPart,
  tableHash,
  withEndpointsPart,
} from '../../../src/routing-table/hash.ts';
import type { CompiledEndpoint, RoutingTable } from '../../../src/routing-table/types.ts';

export const TOKEN = 'test-push-token-0123456789';

export function partKey(i: number): string {
  return `service/ml/model-${String(i).padStart(5, '0')}:8000`;
}

export function endpointsFor(i: number, n: number, generation = 0): CompiledEndpoint[] {
  const out: CompiledEndpoint[] = [];
  for (let j = 0; j < n; j++) {
    out.push({
      address: `10.${(i >> 8) & 255}.${i & 255}.${(j + generation * n) % 250}`,
      port: 8000,
      scheme: 'http',
      state: 'ready',
      zone: `zone-${j % 3}`,
    });
  }
  return out.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : a.port - b.port));
}

/** A table with `parts` endpoints parts of `perPart` endpoints each; `label` varies the routes part. */
export function makeTable(parts: number, perPart: number, label = 'base'): RoutingTable {
  const routes = hashRoutesPart({ rules: [], matches: [], rateLimitPolicies: [], models: [label] });
  const endpoints: RoutingTable['endpoints'] = {};
  for (let i = 0; i < parts; i++) endpoints[partKey(i)] = hashEndpointsPart(endpointsFor(i, perPart));
  return { schemaVersion: 1, hash: tableHash(1, routes, endpoints), routes, endpoints };
}

/** `table` with part `i` replaced by a new set of `perPart` endpoints (or removed with perPart -1). */
export function changePart(table: RoutingTable, i: number, perPart: number, generation = 1): RoutingTable {
  return withEndpointsPart(
    table,
    partKey(i),
    perPart < 0 ? undefined : hashEndpointsPart(endpointsFor(i, perPart, generation)),
  );
}

export async function listen(server: Server, port = 0): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

export interface RunningPush {
  push: PushServer;
  server: Server;
  url: string;
  close(): Promise<void>;
}

export async function startPush(
  opts: Partial<PushServerOptions> & { controllerId: string },
  port = 0,
): Promise<RunningPush> {
  const push = new PushServer({ token: TOKEN, pingIntervalMs: 0, ...opts });
  const server = createServer(push.requestListener());
  const url = await listen(server, port);
  return {
    push,
    server,
    url,
    close: async () => {
      push.close();
      await closeServer(server);
    },
  };
}

/** Resolves with the first `event` whose arguments satisfy `match`. Attach before acting. */
export function next<E extends Record<keyof E, unknown[]>, K extends keyof E & string>(
  emitter: EventEmitter<E>,
  event: K,
  match: (...args: E[K]) => boolean = () => true,
): Promise<E[K]> {
  const plain = emitter as unknown as EventEmitter;
  return new Promise((resolve) => {
    const listener = (...args: unknown[]) => {
      if (!match(...(args as E[K]))) return;
      plain.off(event, listener);
      resolve(args as E[K]);
    };
    plain.on(event, listener);
  });
}

/** Timers that fire only when the test says so. */
export class ManualTimers implements PushTimers {
  readonly pending = new Map<number, { fn: () => void; ms: number }>();
  readonly scheduled: number[] = [];
  private id = 0;
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.id;
    this.pending.set(id, { fn, ms });
    this.scheduled.push(ms);
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  /** Fires every pending timer (optionally only those with a given delay); returns how many. */
  fire(filter: (ms: number) => boolean = () => true): number {
    let n = 0;
    for (const [id, t] of [...this.pending]) {
      if (!filter(t.ms)) continue;
      this.pending.delete(id);
      n++;
      t.fn();
    }
    return n;
  }
}

export interface ApplyCall {
  table: RoutingTable;
  version: string;
}

/** An `apply` that records what it gets; `failNext(reason)` makes the next call fail. */
export class Recorder {
  readonly calls: ApplyCall[] = [];
  private failures: string[] = [];
  failNext(reason: string): void {
    this.failures.push(reason);
  }
  readonly apply = (table: RoutingTable, version: string): { ok: true } | { ok: false; reason: string } => {
    this.calls.push({ table, version });
    const reason = this.failures.shift();
    return reason === undefined ? { ok: true } : { ok: false, reason };
  };
  get last(): ApplyCall | undefined {
    return this.calls.at(-1);
  }
}

export function makeClient(
  opts: Partial<PushClientOptions> & { controllers: PushClientOptions['controllers'] },
): { client: PushClient; recorder: Recorder; timers: ManualTimers } {
  const recorder = new Recorder();
  const timers = new ManualTimers();
  const client = new PushClient({
    proxyId: 'proxy-a',
    token: TOKEN,
    apply: recorder.apply,
    timers,
    random: () => 0.5,
    resolveIntervalMs: 0,
    idleTimeoutMs: 0,
    ...opts,
  });
  return { client, recorder, timers };
}

/** A queue of values awaited one at a time. */
export class Queue<T> {
  private readonly items: T[] = [];
  private readonly waiters: ((v: T) => void)[] = [];
  readonly all: T[] = [];
  push(v: T): void {
    this.all.push(v);
    const w = this.waiters.shift();
    if (w) w(v);
    else this.items.push(v);
  }
  next(): Promise<T> {
    const v = this.items.shift();
    if (v !== undefined) return Promise.resolve(v);
    return new Promise((resolve) => this.waiters.push(resolve));
  }
  get size(): number {
    return this.items.length;
  }
}

export interface RawStream {
  status: number;
  body: string;
  lines: Queue<Record<string, unknown> & { bytes: number }>;
  ended: Promise<void>;
  close(): void;
}

/** Opens GET /v1/stream by hand and parses what comes back. */
export function openRaw(
  base: string,
  opts: {
    token?: string | undefined;
    proxy?: string | undefined;
    schema?: string | undefined;
    /** Keep `peers` messages (most tests read the stream positionally and skip them). */
    keepPeers?: boolean;
    /** More request headers. */
    headers?: Record<string, string>;
  } = {},
): Promise<RawStream> {
  const url = new URL(`${base}/v1/stream`);
  const proxy = 'proxy' in opts ? opts.proxy : 'raw-proxy';
  if (proxy !== undefined) url.searchParams.set('proxy', proxy);
  const headers: Record<string, string> = {};
  const token = 'token' in opts ? opts.token : TOKEN;
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const schema = 'schema' in opts ? opts.schema : '1';
  if (schema !== undefined) headers['x-modelgate-table-schema'] = schema;
  Object.assign(headers, opts.headers);
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, agent: false }, (res) => {
      const lines = new Queue<Record<string, unknown> & { bytes: number }>();
      const splitter = new LineSplitter(1 << 30);
      let body = '';
      let endedResolve!: () => void;
      const ended = new Promise<void>((r) => {
        endedResolve = r;
      });
      res.on('data', (chunk: Buffer) => {
        if (res.statusCode !== 200) body += chunk.toString();
        else
          for (const l of splitter.push(chunk)) {
            const m = { ...JSON.parse(l.text), bytes: l.bytes };
            if (m.type !== 'peers' || opts.keepPeers) lines.push(m);
          }
      });
      res.on('close', () => endedResolve());
      res.on('error', () => endedResolve());
      const stream: RawStream = {
        status: res.statusCode ?? 0,
        get body() {
          return body;
        },
        lines,
        ended,
        close: () => req.destroy(),
      };
      if (res.statusCode !== 200) ended.then(() => resolve(stream));
      else resolve(stream);
    });
    req.on('error', reject);
    req.end();
  });
}

/** POST /v1/ack by hand; `token` null sends no Authorization header. */
export function postAck(
  base: string,
  body: unknown,
  token: string | null = TOKEN,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (token !== null) headers.authorization = `Bearer ${token}`;
    const req = request(`${base}/v1/ack`, { method: 'POST', headers, agent: false }, (res) => {
      let out = '';
      res.on('data', (c: Buffer) => {
        out += c.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: out }));
    });
    req.on('error', reject);
    req.end(text);
  });
}

/**
 * A scripted controller: each stream request is handed to the test (`streams`), which writes
 * whatever lines it likes; ACK bodies are queued in `acks`.
 */
export class FakeController {
  readonly server: Server;
  readonly streams = new Queue<{
    req: IncomingMessage;
    res: ServerResponse;
    send(m: unknown): void;
    sendRaw(s: string): void;
  }>();
  readonly acks = new Queue<Record<string, unknown>>();
  url = '';
  constructor() {
    this.server = createServer((req, res) => {
      if (req.url?.startsWith('/v1/stream')) {
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        res.flushHeaders();
        this.streams.push({
          req,
          res,
          send: (m) => res.write(`${JSON.stringify(m)}\n`),
          sendRaw: (s) => res.write(s),
        });
        return;
      }
      let body = '';
      req.on('data', (c: Buffer) => {
        body += c.toString();
      });
      req.on('end', () => {
        res.writeHead(204).end();
        this.acks.push(JSON.parse(body));
      });
    });
  }
  async start(): Promise<this> {
    this.url = await listen(this.server);
    return this;
  }
  close(): Promise<void> {
    return closeServer(this.server);
  }
}
