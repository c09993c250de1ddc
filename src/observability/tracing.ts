/**
 * OpenTelemetry tracing of the proxy hop: one span per request, exported over OTLP/HTTP with JSON
 * encoding, without the OpenTelemetry SDK.
 *
 * Why no SDK: the proxy needs exactly one span kind with a fixed set of attributes, W3C
 * propagation and a batching exporter. The SDK brings a context manager (async hooks), a
 * processor pipeline and a large dependency tree for that, and its per-span cost lands on the hot
 * path. Here a span is one small object whose fields are turned into OTLP only at export time,
 * in the exporter's loop, not in the request.
 *
 * Off by default: without an endpoint `createTracer` returns a shared no-op tracer whose
 * `startHop` returns one shared no-op span, so a proxy with tracing off allocates nothing for it.
 *
 * The span is a SERVER span (kind 2) covering the whole hop, from the request's arrival to the
 * end of the response. Its id is the parent-id sent upstream, so the model server's spans nest
 * under it. Attributes follow the stable HTTP server semantic conventions: server.address and
 * server.port are the host the client addressed, client.address the client. The upstream
 * endpoint goes in modelgate.upstream.address/port, because in a SERVER span the server.* and
 * network.peer.* names already mean the gateway itself and the client.
 */
import { BatchExporter, type ExporterStats, type Timers, type Transport } from './otlp/exporter.ts';
import { newSpanId, newTraceId } from './otlp/ids.ts';
import {
  type AttributeValue,
  encodeTraces,
  keyValue,
  type OtlpKeyValue,
  type OtlpResource,
  type OtlpScope,
  type OtlpSpan,
  SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE,
  SPAN_FLAGS_CONTEXT_IS_REMOTE,
  SPAN_KIND_SERVER,
  STATUS_ERROR,
} from './otlp/json.ts';
import {
  FLAG_RANDOM,
  FLAG_SAMPLED,
  formatTraceparent,
  isValidTraceparent,
  parentIdOf,
  traceFlagsOf,
  traceIdOf,
} from './otlp/traceparent.ts';

export type { Timers, Transport, TransportResponse } from './otlp/exporter.ts';
export type { AttributeValue } from './otlp/json.ts';

/** Attribute names, so callers do not spell semantic-convention keys by hand. */
export const ATTR = {
  method: 'http.request.method',
  methodOriginal: 'http.request.method_original',
  path: 'url.path',
  scheme: 'url.scheme',
  serverAddress: 'server.address',
  serverPort: 'server.port',
  clientAddress: 'client.address',
  statusCode: 'http.response.status_code',
  errorType: 'error.type',
  /** Upstream retries: the number of the attempt that produced the response (1 = first retry). */
  resendCount: 'http.request.resend_count',
  route: 'modelgate.route',
  rule: 'modelgate.rule',
  backend: 'modelgate.backend',
  model: 'modelgate.model',
  upstreamAddress: 'modelgate.upstream.address',
  upstreamPort: 'modelgate.upstream.port',
} as const;

/** What is known of the request when the hop starts. */
export interface HopRequest {
  method: string;
  /** The normalised path, without the query string (queries carry credentials). */
  path: string;
  /** The host the client addressed (Host or :authority), without the port. */
  host?: string;
  port?: number;
  scheme?: string;
  clientAddress?: string;
}

export interface HopSpan {
  /** The trace id, for the access log; '' when tracing is off. */
  readonly traceId: string;
  /** Whether this span is recorded and exported. */
  readonly sampled: boolean;
  /**
   * The `traceparent` to send upstream: this trace's id, this span's id as the parent-id, and
   * the sampled flag of this span. '' when tracing is off: the caller keeps its own propagation.
   */
  traceparentForUpstream(): string;
  /** Sets (or replaces) an attribute; ignored on unsampled spans and after `end`. */
  setAttribute(key: string, value: AttributeValue): void;
  /**
   * Ends the hop. `statusCode`: the status sent to the client (0 when none was). `errorCode`: the
   * gateway's low-cardinality error code when the hop failed (becomes error.type). Only the first
   * call counts.
   */
  end(statusCode: number, errorCode?: string): void;
}

export interface TracerStats extends ExporterStats {
  /** Spans started (sampled or not). */
  started: number;
  /** Of those, sampled (recorded). */
  sampled: number;
}

export interface Tracer {
  readonly enabled: boolean;
  /**
   * Starts the span of one proxy hop. `incomingTraceparent`: the client's `traceparent` header;
   * a valid one is joined (same trace, its parent-id as ours, its sampled flag honoured),
   * anything else starts a new trace sampled at `sampleRatio`.
   */
  startHop(incomingTraceparent: string | undefined, req: HopRequest): HopSpan;
  /** Sends what is queued; never rejects. */
  flush(): Promise<void>;
  /** Flushes and stops the exporter's timer; spans ended afterwards are dropped. Never rejects. */
  shutdown(): Promise<void>;
  stats(): TracerStats;
}

export interface TracerOptions {
  /** The collector's base URL (e.g. http://otel-collector:4318); spans go to `{endpoint}/v1/traces`. Unset: tracing off. */
  endpoint?: string;
  /** service.name of the resource; default "modelgate". */
  serviceName?: string;
  serviceVersion?: string;
  /** Extra request headers for the collector (e.g. authorization). */
  headers?: Record<string, string>;
  /** Share of NEW traces sampled, 0..1; default 1. Joined traces follow the incoming flag. */
  sampleRatio?: number;
  /** Queue bound in spans; default 2048. When full, new spans are dropped and counted. */
  maxQueue?: number;
  /** Spans per export request; default 512. */
  batchSize?: number;
  /** Default 5000. */
  flushIntervalMs?: number;
  /** Retries of a failed export (network error, 429, 502, 503, 504); default 3. */
  maxRetries?: number;
  /** First retry delay, doubled each time; default 200. */
  backoffMs?: number;
  /** Unix time in nanoseconds. */
  now?: () => bigint;
  /** For the sampling decision of new traces; default Math.random. */
  random?: () => number;
  /** Sends one export request; default fetch. */
  transport?: Transport;
  timers?: Timers;
  /** Told about export failures (for a rate-limited log line); never on the request path. */
  onError?: (message: string) => void;
}

// --- off ---

const RESOLVED: Promise<void> = Promise.resolve();

const NOOP_SPAN: HopSpan = Object.freeze({
  traceId: '',
  sampled: false,
  traceparentForUpstream: (): string => '',
  setAttribute: (): void => {},
  end: (): void => {},
});

const ZERO_STATS: TracerStats = Object.freeze({
  started: 0,
  sampled: 0,
  queued: 0,
  exported: 0,
  droppedQueueFull: 0,
  droppedExportFailed: 0,
  droppedAfterShutdown: 0,
  rejected: 0,
  requests: 0,
  retries: 0,
});

/** The tracer when tracing is off: every method does nothing and allocates nothing. */
export const NOOP_TRACER: Tracer = Object.freeze({
  enabled: false,
  startHop: (): HopSpan => NOOP_SPAN,
  flush: (): Promise<void> => RESOLVED,
  shutdown: (): Promise<void> => RESOLVED,
  stats: (): TracerStats => ZERO_STATS,
});

// --- on ---

/** Unix nanoseconds from the monotonic clock, anchored once to the wall clock. */
function defaultNow(): () => bigint {
  const base =
    BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6)) - process.hrtime.bigint();
  return () => base + process.hrtime.bigint();
}

/** RFC 9110 methods and PATCH; anything else is recorded as _OTHER, per the conventions. */
const KNOWN_METHODS = new Set([
  'CONNECT',
  'DELETE',
  'GET',
  'HEAD',
  'OPTIONS',
  'PATCH',
  'POST',
  'PUT',
  'TRACE',
]);

/** A span that is propagated but not recorded (its trace is not sampled). */
class NonRecordingSpan implements HopSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly flags: number;
  get sampled(): boolean {
    return false;
  }

  constructor(traceId: string, spanId: string, flags: number) {
    this.traceId = traceId;
    this.spanId = spanId;
    this.flags = flags;
  }

  traceparentForUpstream(): string {
    return formatTraceparent(this.traceId, this.spanId, this.flags);
  }

  setAttribute(): void {}
  end(): void {}
}

/**
 * A sampled span. It holds raw fields only; OTLP objects are built from them at export time.
 */
class RecordingSpan implements HopSpan {
  readonly traceId: string;
  readonly spanId: string;
  /** '' for a root span. */
  readonly parentSpanId: string;
  readonly flags: number;
  readonly startNs: bigint;
  endNs = 0n;
  readonly method: string;
  readonly path: string;
  readonly host: string | undefined;
  readonly port: number | undefined;
  readonly scheme: string | undefined;
  readonly clientAddress: string | undefined;
  /** Attributes set after the start, as parallel arrays (a handful; a Map would cost more). */
  keys: string[] | undefined;
  values: AttributeValue[] | undefined;
  statusCode = 0;
  errorCode: string | undefined;
  private ended = false;
  private readonly tracer: ActiveTracer;

  constructor(
    tracer: ActiveTracer,
    traceId: string,
    spanId: string,
    parentSpanId: string,
    flags: number,
    req: HopRequest,
  ) {
    this.tracer = tracer;
    this.traceId = traceId;
    this.spanId = spanId;
    this.parentSpanId = parentSpanId;
    this.flags = flags;
    this.startNs = tracer.now();
    this.method = req.method;
    this.path = req.path;
    this.host = req.host;
    this.port = req.port;
    this.scheme = req.scheme;
    this.clientAddress = req.clientAddress;
  }

  get sampled(): boolean {
    return true;
  }

  traceparentForUpstream(): string {
    return formatTraceparent(this.traceId, this.spanId, this.flags);
  }

  setAttribute(key: string, value: AttributeValue): void {
    if (this.ended) return;
    if (this.keys === undefined || this.values === undefined) {
      this.keys = [key];
      this.values = [value];
      return;
    }
    const i = this.keys.indexOf(key);
    if (i >= 0) this.values[i] = value;
    else {
      this.keys.push(key);
      this.values.push(value);
    }
  }

  end(statusCode: number, errorCode?: string): void {
    if (this.ended) return;
    this.ended = true;
    this.endNs = this.tracer.now();
    this.statusCode = statusCode;
    this.errorCode = errorCode || undefined;
    this.tracer.exporter.add(this);
  }
}

/** The OTLP form of a finished span; runs in the export loop. */
function toOtlp(s: RecordingSpan): OtlpSpan {
  const attributes: OtlpKeyValue[] = [];
  const known = KNOWN_METHODS.has(s.method);
  attributes.push(keyValue(ATTR.method, known ? s.method : '_OTHER'));
  if (!known) attributes.push(keyValue(ATTR.methodOriginal, s.method));
  attributes.push(keyValue(ATTR.path, s.path));
  if (s.scheme) attributes.push(keyValue(ATTR.scheme, s.scheme));
  if (s.host) attributes.push(keyValue(ATTR.serverAddress, s.host));
  if (s.port !== undefined) attributes.push(keyValue(ATTR.serverPort, s.port));
  if (s.clientAddress) attributes.push(keyValue(ATTR.clientAddress, s.clientAddress));
  const status = s.statusCode;
  if (status > 0) attributes.push(keyValue(ATTR.statusCode, status));
  // Semantic conventions for SERVER spans: 5xx, or no response at all, is an error; 4xx is the
  // client's and leaves the status unset; a failure after a success status (a stream cut
  // mid-way) is an error too.
  const failed = status >= 500 || status < 100 || (s.errorCode !== undefined && status < 400);
  const errorType = s.errorCode ?? (status >= 500 ? String(status) : status < 100 ? '_OTHER' : undefined);
  if (errorType !== undefined) attributes.push(keyValue(ATTR.errorType, errorType));
  let route: AttributeValue | undefined;
  if (s.keys !== undefined && s.values !== undefined) {
    for (let i = 0; i < s.keys.length; i++) {
      const key = s.keys[i]!;
      const value = s.values[i]!;
      if (key === ATTR.route) route = value;
      const at = attributes.findIndex((a) => a.key === key);
      if (at >= 0) attributes[at] = keyValue(key, value);
      else attributes.push(keyValue(key, value));
    }
  }
  // "{method} {target}" with a low-cardinality target: the route name, never the path.
  const method = known ? s.method : 'HTTP';
  const span: OtlpSpan = {
    traceId: s.traceId,
    spanId: s.spanId,
    flags:
      s.flags | SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE | (s.parentSpanId !== '' ? SPAN_FLAGS_CONTEXT_IS_REMOTE : 0),
    name: route !== undefined && route !== '' ? `${method} ${route}` : method,
    kind: SPAN_KIND_SERVER,
    startTimeUnixNano: String(s.startNs),
    endTimeUnixNano: String(s.endNs),
    attributes,
  };
  if (s.parentSpanId !== '') span.parentSpanId = s.parentSpanId;
  if (failed) span.status = { code: STATUS_ERROR };
  return span;
}

class ActiveTracer implements Tracer {
  readonly enabled = true;
  readonly now: () => bigint;
  readonly exporter: BatchExporter<RecordingSpan>;
  private readonly sampleRatio: number;
  private readonly random: () => number;
  private started = 0;
  private sampledCount = 0;

  constructor(endpoint: string, opts: TracerOptions) {
    const ratio = opts.sampleRatio ?? 1;
    if (!(ratio >= 0 && ratio <= 1)) throw new RangeError(`sampleRatio must be within 0..1, got ${ratio}`);
    this.sampleRatio = ratio;
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? defaultNow();
    const resource: OtlpResource = {
      attributes: [
        keyValue('service.name', opts.serviceName ?? 'modelgate'),
        ...(opts.serviceVersion !== undefined ? [keyValue('service.version', opts.serviceVersion)] : []),
        keyValue('telemetry.sdk.name', 'modelgate'),
        keyValue('telemetry.sdk.language', 'nodejs'),
      ],
    };
    const scope: OtlpScope = { name: 'modelgate.proxy' };
    this.exporter = new BatchExporter<RecordingSpan>({
      url: tracesUrl(endpoint),
      headers: { ...opts.headers, 'content-type': 'application/json' },
      encode: (batch) => encodeTraces(resource, scope, batch.map(toOtlp)),
      transport: opts.transport,
      timers: opts.timers,
      maxQueue: opts.maxQueue,
      batchSize: opts.batchSize,
      flushIntervalMs: opts.flushIntervalMs,
      maxRetries: opts.maxRetries,
      backoffMs: opts.backoffMs,
      onError: opts.onError,
    });
  }

  startHop(incoming: string | undefined, req: HopRequest): HopSpan {
    this.started++;
    let traceId: string;
    let flags: number;
    let joined = false;
    if (incoming !== undefined && isValidTraceparent(incoming)) {
      // Parent-based: the caller's decision stands; the random flag is passed on with the id.
      traceId = traceIdOf(incoming);
      flags = traceFlagsOf(incoming) & (FLAG_SAMPLED | FLAG_RANDOM);
      joined = true;
    } else {
      traceId = newTraceId();
      flags = this.sampleNew() ? FLAG_SAMPLED : 0;
    }
    const spanId = newSpanId();
    if ((flags & FLAG_SAMPLED) === 0) return new NonRecordingSpan(traceId, spanId, flags);
    this.sampledCount++;
    return new RecordingSpan(this, traceId, spanId, joined ? parentIdOf(incoming!) : '', flags, req);
  }

  private sampleNew(): boolean {
    const r = this.sampleRatio;
    return r >= 1 || (r > 0 && this.random() < r);
  }

  flush(): Promise<void> {
    return this.exporter.flush();
  }

  shutdown(): Promise<void> {
    return this.exporter.shutdown();
  }

  stats(): TracerStats {
    return { started: this.started, sampled: this.sampledCount, ...this.exporter.stats() };
  }
}

function tracesUrl(endpoint: string): string {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new TypeError(`tracing endpoint is not a URL: ${endpoint}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError(`tracing endpoint must be http or https: ${endpoint}`);
  }
  return `${endpoint.replace(/\/+$/, '')}/v1/traces`;
}

/**
 * The tracer for these options: the shared no-op tracer when `endpoint` is unset, else one with
 * its own exporter (and its one unref'd flush timer). Bad options throw here, at configuration
 * time, never later.
 */
export function createTracer(opts: TracerOptions = {}): Tracer {
  if (opts.endpoint === undefined || opts.endpoint === '') return NOOP_TRACER;
  return new ActiveTracer(opts.endpoint, opts);
}
