/**
 * A real OTLP/HTTP collector stand-in for tests: a node:http server on 127.0.0.1:0 that records
 * every POST (path, headers, parsed JSON body) and answers from a script of responses.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ExportTraceServiceRequest, OtlpSpan } from '../../../src/observability/otlp/json.ts';
import type { Timers } from '../../../src/observability/tracing.ts';

export interface Recorded {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: ExportTraceServiceRequest;
}

export interface ScriptedResponse {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

export class FakeCollector {
  readonly requests: Recorded[] = [];
  /** Answers for the next requests, in order; then 200 with an empty ExportTraceServiceResponse. */
  readonly script: ScriptedResponse[] = [];
  private readonly server: Server;
  private waiters: { n: number; resolve: () => void }[] = [];

  constructor() {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        this.requests.push({
          method: req.method ?? '',
          path: req.url ?? '',
          headers: req.headers,
          body: JSON.parse(text) as ExportTraceServiceRequest,
        });
        const answer = this.script.shift() ?? { status: 200, body: '{}' };
        res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
        res.end(answer.body ?? '{}');
        this.waiters = this.waiters.filter((w) => {
          if (this.requests.length < w.n) return true;
          w.resolve();
          return false;
        });
      });
    });
  }

  /** Listens and returns the base endpoint (no /v1/traces). */
  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Resolves once `n` requests in total have been received. */
  waitFor(n: number): Promise<void> {
    if (this.requests.length >= n) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ n, resolve }));
  }

  /** Every span received, in order. */
  spans(): OtlpSpan[] {
    return this.requests.flatMap((r) =>
      r.body.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((s) => s.spans)),
    );
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * Timers driven by the test: `tick()` runs the interval callbacks; back-off timeouts fire on the
 * next turn of the event loop (their requested delays are recorded), so no test sleeps.
 */
export function manualTimers(): {
  timers: Timers;
  tick: () => void;
  intervals: { ms: number; cleared: boolean }[];
  delays: number[];
} {
  const intervals: { fn: () => void; ms: number; cleared: boolean }[] = [];
  const delays: number[] = [];
  const timers: Timers = {
    setInterval(fn, ms) {
      const h = { fn, ms, cleared: false };
      intervals.push(h);
      return h;
    },
    clearInterval(h) {
      (h as { cleared: boolean }).cleared = true;
    },
    setTimeout(fn, ms) {
      delays.push(ms);
      return setImmediate(fn);
    },
    clearTimeout(h) {
      clearImmediate(h as NodeJS.Immediate);
    },
  };
  return {
    timers,
    tick: () => {
      for (const i of intervals) if (!i.cleared) i.fn();
    },
    intervals,
    delays,
  };
}

/** Deterministic uniform [0, 1) (mulberry32). */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
