/**
 * A batching exporter for OTLP/HTTP: finished spans wait in a bounded queue and leave in batches,
 * when a batch is full or when the flush interval comes round, one request at a time.
 *
 * Choices, and why:
 * - One export request in flight at a time (OTLP's "sequential" mode). A gateway's collector is
 *   normally a nearby agent, and sequential sending bounds memory to the queue plus one batch.
 * - When the queue is full the NEW span is dropped and counted. Dropping the newest is O(1), keeps
 *   what is queued in order, and is what the OpenTelemetry SDKs' batch processors do, so operators
 *   see the behaviour they expect; a proxy under overload must shed telemetry, never requests.
 * - One interval timer for the whole exporter, unref'd so it never keeps the process alive, and no
 *   timer per span. A full batch is sent from a microtask, so the request that filled it only
 *   pays for a push.
 * - Retries follow the OTLP/HTTP spec: network errors and 429, 502, 503, 504 are retried with
 *   exponential back-off and jitter (or the server's Retry-After), a few times, then the batch is
 *   dropped and counted; other statuses (400, 500, ...) are not retried, since sending the same
 *   bytes again would fail the same way.
 * - Nothing here throws to the caller: `add` only pushes, and every failure is counted and
 *   reported through `onError`.
 */

/** The result of one HTTP request to the collector. */
export interface TransportResponse {
  status: number;
  /** The Retry-After header, if any. */
  retryAfter?: string | null;
  /** The response body (a JSON ExportTraceServiceResponse, possibly with partialSuccess). */
  body?: string;
}

/** Sends one request body; rejects on a network error. */
export type Transport = (
  url: string,
  body: string,
  headers: Record<string, string>,
) => Promise<TransportResponse>;

/** The timer functions the exporter uses, injectable so tests drive time by hand. */
export interface Timers {
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const nodeTimers: Timers = {
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** How long one export request may take before it counts as a network error. */
const REQUEST_TIMEOUT_MS = 10_000;

/** POST with the runtime's fetch (undici, keep-alive); the body is read so the socket is reused. */
export const fetchTransport: Transport = async (url, body, headers) => {
  const res = await fetch(url, {
    method: 'POST',
    headers,
    body,
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  const text = await res.text();
  return { status: res.status, retryAfter: res.headers.get('retry-after'), body: text };
};

/** Statuses the OTLP/HTTP spec says to retry ("Retryable Response Codes"). */
const RETRYABLE = new Set([429, 502, 503, 504]);

/** A Retry-After longer than this is not waited for in full (the batch would be stale anyway). */
const MAX_RETRY_AFTER_MS = 30_000;

export interface ExporterStats {
  /** Spans waiting in the queue. */
  queued: number;
  /** Spans the collector accepted (rejected ones in partial successes excluded). */
  exported: number;
  /** Spans dropped because the queue was full. */
  droppedQueueFull: number;
  /** Spans dropped because their export failed for good (after retries, or not retryable). */
  droppedExportFailed: number;
  /** Spans dropped because they ended after shutdown. */
  droppedAfterShutdown: number;
  /** Spans the collector reported as rejected in a partial success. */
  rejected: number;
  /** Export requests made, retries included. */
  requests: number;
  /** Of those, retries. */
  retries: number;
}

export interface ExporterOptions<T> {
  url: string;
  headers: Record<string, string>;
  /** Turns a batch into the request body; runs off the request path, in the export loop. */
  encode: (batch: T[]) => string;
  transport?: Transport;
  timers?: Timers;
  /** Queue bound; default 2048. */
  maxQueue?: number;
  /** Spans per request; default 512 (never more than maxQueue). */
  batchSize?: number;
  /** Default 5000. */
  flushIntervalMs?: number;
  /** Retries of a failed export before its batch is dropped; default 3. */
  maxRetries?: number;
  /** First back-off delay, doubled each retry; default 200. */
  backoffMs?: number;
  /** Ceiling of the computed back-off; default 5000. */
  maxBackoffMs?: number;
  /** Told about each failed export, for logging. Must not throw (it is guarded anyway). */
  onError?: (message: string) => void;
}

export class BatchExporter<T> {
  private readonly url: string;
  private readonly headers: Record<string, string>;
  private readonly encode: (batch: T[]) => string;
  private readonly transport: Transport;
  private readonly timers: Timers;
  private readonly maxQueue: number;
  private readonly batchSize: number;
  private readonly maxRetries: number;
  private readonly backoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly onError: ((message: string) => void) | undefined;
  private queue: T[] = [];
  private readonly interval: unknown;
  /** The export loop, while it runs. */
  private running: Promise<void> | undefined;
  /** A size-triggered drain is scheduled in a microtask. */
  private kicked = false;
  private stopped = false;
  private shutdownPromise: Promise<void> | undefined;
  /** The pending back-off wait, so shutdown can cut it short. */
  private backoff: { handle: unknown; wake: () => void } | undefined;
  private readonly counts: Omit<ExporterStats, 'queued'> = {
    exported: 0,
    droppedQueueFull: 0,
    droppedExportFailed: 0,
    droppedAfterShutdown: 0,
    rejected: 0,
    requests: 0,
    retries: 0,
  };

  constructor(opts: ExporterOptions<T>) {
    this.url = opts.url;
    this.headers = opts.headers;
    this.encode = opts.encode;
    this.transport = opts.transport ?? fetchTransport;
    this.timers = opts.timers ?? nodeTimers;
    this.maxQueue = positiveInt(opts.maxQueue ?? 2048, 'maxQueue');
    this.batchSize = Math.min(positiveInt(opts.batchSize ?? 512, 'batchSize'), this.maxQueue);
    this.maxRetries = Math.max(0, Math.floor(opts.maxRetries ?? 3));
    this.backoffMs = Math.max(0, opts.backoffMs ?? 200);
    this.maxBackoffMs = Math.max(this.backoffMs, opts.maxBackoffMs ?? 5000);
    this.onError = opts.onError;
    const every = positiveInt(opts.flushIntervalMs ?? 5000, 'flushIntervalMs');
    this.interval = this.timers.setInterval(this.tick, every);
    (this.interval as { unref?: () => void } | undefined)?.unref?.();
  }

  /** Queues one finished span. O(1); never throws. */
  add(item: T): void {
    if (this.stopped) {
      this.counts.droppedAfterShutdown++;
      return;
    }
    if (this.queue.length >= this.maxQueue) {
      this.counts.droppedQueueFull++;
      return;
    }
    this.queue.push(item);
    if (this.queue.length >= this.batchSize && !this.kicked && this.running === undefined) {
      this.kicked = true;
      queueMicrotask(this.kick);
    }
  }

  /** Sends everything queued now; resolves when it has been sent or dropped. Never rejects. */
  flush(): Promise<void> {
    return this.drain(true);
  }

  /** Stops the timer, refuses new spans, sends what is queued (no more back-off waits). */
  shutdown(): Promise<void> {
    if (this.shutdownPromise) return this.shutdownPromise;
    this.stopped = true;
    this.timers.clearInterval(this.interval);
    this.wakeBackoff();
    this.shutdownPromise = this.drain(true);
    return this.shutdownPromise;
  }

  stats(): ExporterStats {
    return { queued: this.queue.length, ...this.counts };
  }

  private readonly kick = (): void => {
    this.kicked = false;
    void this.drain(false);
  };

  private readonly tick = (): void => {
    // A running loop keeps sending full batches; what is left over waits for the next tick.
    if (this.running === undefined && this.queue.length > 0) void this.drain(true);
  };

  /** `all`: send a final partial batch too (flush, tick, shutdown); else only full batches. */
  private drain(all: boolean): Promise<void> {
    if (this.running) return all ? this.running.then(() => this.drain(true)) : this.running;
    if (this.queue.length === 0 || (!all && this.queue.length < this.batchSize)) return Promise.resolve();
    const run = this.loop(all)
      .catch((e: unknown) => this.report(`span export loop failed: ${String(e)}`))
      .finally(() => {
        this.running = undefined;
        // A batch that filled up while the loop was finishing would otherwise wait for the tick.
        if (this.queue.length >= this.batchSize && !this.stopped) void this.drain(false);
      });
    this.running = run;
    return run;
  }

  private async loop(all: boolean): Promise<void> {
    // `all` covers what is queued now, not what arrives meanwhile, so a flush ends under load.
    let owed = all ? this.queue.length : 0;
    while (this.queue.length >= this.batchSize || owed > 0) {
      const batch =
        this.queue.length <= this.batchSize ? this.swapQueue() : this.queue.splice(0, this.batchSize);
      owed -= batch.length;
      await this.send(batch);
    }
  }

  /** Takes the whole queue without copying it. */
  private swapQueue(): T[] {
    const batch = this.queue;
    this.queue = [];
    return batch;
  }

  private async send(batch: T[]): Promise<void> {
    let body: string;
    try {
      body = this.encode(batch);
    } catch (e) {
      this.counts.droppedExportFailed += batch.length;
      this.report(`spans could not be encoded: ${String(e)}`);
      return;
    }
    for (let attempt = 0; ; attempt++) {
      let res: TransportResponse | undefined;
      let failure = '';
      this.counts.requests++;
      if (attempt > 0) this.counts.retries++;
      try {
        res = await this.transport(this.url, body, this.headers);
      } catch (e) {
        const err = e as { message?: string; cause?: { code?: string } } | undefined;
        failure = `network error: ${err?.cause?.code ?? err?.message ?? String(e)}`;
      }
      if (res !== undefined && res.status >= 200 && res.status < 300) {
        const rejected = Math.min(batch.length, rejectedSpans(res.body));
        this.counts.rejected += rejected;
        this.counts.exported += batch.length - rejected;
        return;
      }
      if (res !== undefined) failure = `HTTP ${res.status}`;
      const retryable = res === undefined || RETRYABLE.has(res.status);
      if (!retryable || attempt >= this.maxRetries || this.stopped) {
        this.counts.droppedExportFailed += batch.length;
        this.report(
          `span export to ${this.url} failed (${failure}) after ${attempt + 1} attempt(s); dropped ${batch.length} spans`,
        );
        return;
      }
      await this.wait(this.delay(attempt, res?.retryAfter));
    }
  }

  /** Exponential back-off with jitter (50-100% of the step), or the server's Retry-After. */
  private delay(attempt: number, retryAfter: string | null | undefined): number {
    const asked = retryAfterMs(retryAfter);
    if (asked !== undefined) return Math.min(asked, MAX_RETRY_AFTER_MS);
    const step = Math.min(this.maxBackoffMs, this.backoffMs * 2 ** attempt);
    return step / 2 + (Math.random() * step) / 2;
  }

  private wait(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = (): void => {
        this.backoff = undefined;
        resolve();
      };
      const handle = this.timers.setTimeout(wake, ms);
      (handle as { unref?: () => void } | undefined)?.unref?.();
      this.backoff = { handle, wake };
    });
  }

  private wakeBackoff(): void {
    const b = this.backoff;
    if (!b) return;
    this.timers.clearTimeout(b.handle);
    b.wake();
  }

  private report(message: string): void {
    try {
      this.onError?.(message);
    } catch {
      // A failing logger must not break the exporter either.
    }
  }
}

function positiveInt(n: number, name: string): number {
  if (!Number.isFinite(n) || n < 1) throw new RangeError(`${name} must be a positive number, got ${n}`);
  return Math.floor(n);
}

/** Retry-After as delay-seconds or an HTTP date (RFC 9110 §10.2.3), in milliseconds. */
export function retryAfterMs(v: string | null | undefined): number | undefined {
  if (v === null || v === undefined || v === '') return undefined;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** partialSuccess.rejectedSpans of an ExportTraceServiceResponse (int64: a string or a number). */
function rejectedSpans(body: string | undefined): number {
  if (!body?.includes('rejectedSpans')) return 0;
  try {
    const n = Number(
      (JSON.parse(body) as { partialSuccess?: { rejectedSpans?: unknown } }).partialSuccess?.rejectedSpans,
    );
    return Number.isSafeInteger(n) && n > 0 ? n : 0;
  } catch {
    return 0;
  }
}
