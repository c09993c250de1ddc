/**
 * One buffered call of a composition to a backend of its rule: an intermediate pipeline step or a
 * fan-out branch. It uses what the exchange uses for any request to that backend (exchange.ts), so
 * a step is balanced, health-checked and retried like one:
 *
 * - the endpoint comes from the backend's balancer (ready endpoints that health allows, then the
 *   draining ones), with the request's consistent-hash key; a retry asks for another endpoint;
 * - in-flight counts (endpoint and rule) are held while an attempt runs, so LeastRequest sees the
 *   step's load, and retries count against the rule's retry budget;
 * - retries follow the rule's `retries` (attempts, retryOn, budgetPercent); a step's body is in
 *   memory, so it can always be replayed;
 * - every attempt's outcome feeds passive health (outlier detection) and its time to first byte
 *   the latency estimate (PeakEWMA);
 * - the Host header and the backend's credentials are set per attempt as for a request;
 * - undici's timers enforce the rule's connect, first-byte and idle timeouts.
 *
 * On top: a whole-call deadline (the step's `timeout`, retries included), a bound on the answer
 * held in memory, and cancel() (the client left, or a sibling branch failed the fan-out), which
 * aborts the attempt in flight so the upstream sees the connection close.
 *
 * Undici only hands over an attempt's controller once the request is on a connection; a call
 * that is stopped before then settles at once and aborts the attempt when it starts.
 *
 * Also the one call of a translated rule (kserve/kserve-rule.ts): its answers are gRPC, whose
 * status comes in the trailers, so a result carries them, and `statusOf` lets the caller say what
 * status retries and passive health judge a complete answer by.
 */
import type { Dispatcher } from 'undici';
import { type EndpointState, observeLatency } from '../balancers/index.ts';
import { type ErrorDefinition, Errors } from '../errors.ts';
import { withCredentials } from '../exchange.ts';
import type { GatewayProxy } from '../proxy.ts';
import type { RuntimeBackend, RuntimeRule } from '../runtime-table.ts';
import type { OutgoingHeaders } from '../upstream/headers.ts';
import { classifyUpstreamError } from '../upstream/upstream-error.ts';

/** Retries may always run this many at once per rule, whatever the budget says (as the exchange does). */
const MIN_RETRY_CONCURRENCY = 3;

const STOPPED = new Error('composition call stopped');

/** What a call needs of the proxy. */
export type StepCallDeps = Pick<GatewayProxy, 'pools' | 'endpoints' | 'now' | 'endpointOutcome'>;

export interface StepRequest {
  method: string;
  /** Path and query. */
  path: string;
  /** Headers for the upstream, without Host (set per endpoint) or the backend's credentials (added here). */
  headers: OutgoingHeaders;
  body: Buffer | null;
  /** The Host a filter set (urlRewrite.hostname): wins over an endpoint's own name and the client's Host. */
  hostRewrite: string | undefined;
  /** The client's Host, for endpoints that are IP addresses. */
  authority: string | undefined;
  /** ConsistentHash key, when the rule hashes. */
  hashKey: string | undefined;
  /** Deadline of the whole call in ms, retries included; undefined: only the rule's timeouts. */
  timeoutMs: number | undefined;
  /** Largest answer held; a larger one fails the call (bad_response). */
  maxResponseBytes: number;
  /**
   * The status a complete answer is judged by (retries, passive health); default its HTTP status.
   * A gRPC answer is 200 with its outcome in grpc-status (headers of a trailers-only answer, else
   * the trailers).
   */
  statusOf?: (status: number, headers: ResponseHeaders, trailers: ResponseHeaders) => number;
}

type ResponseHeaders = Record<string, string | string[] | undefined>;

export type StepFailureKind = 'timeout' | 'upstream_error' | 'no_endpoint' | 'bad_response' | 'cancelled';

export type StepResult =
  | {
      ok: true;
      status: number;
      headers: ResponseHeaders;
      body: Buffer;
      /** HTTP trailers (gRPC's grpc-status); empty when there were none. */
      trailers: ResponseHeaders;
      /** The endpoint that answered (for access logs). */
      endpoint: EndpointState;
    }
  | { ok: false; kind: StepFailureKind; error: ErrorDefinition; message: string };

/** One attempt on one endpoint: the undici handler, forwarding to its call. */
class Attempt implements Dispatcher.DispatchHandler {
  readonly call: StepCall;
  readonly endpoint: EndpointState;
  readonly sentAt: number;
  controller: Dispatcher.DispatchController | undefined;
  /** The call no longer wants this attempt: abort it as soon as undici lets us. */
  stopped = false;
  /** Undici reported its end (or error): nothing left to abort. */
  finished = false;
  /** In-flight counts are held for this attempt. */
  open = true;
  /** A listed 5xx: aborted to retry elsewhere. */
  retryStatus = 0;
  status = 0;
  headers: ResponseHeaders = {};
  trailers: ResponseHeaders = {};
  chunks: Buffer[] = [];
  size = 0;

  constructor(call: StepCall, endpoint: EndpointState, sentAt: number) {
    this.call = call;
    this.endpoint = endpoint;
    this.sentAt = sentAt;
  }

  stop(): void {
    this.stopped = true;
    if (!this.finished) this.controller?.abort(STOPPED);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.stopped) controller.abort(STOPPED);
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: ResponseHeaders,
  ): void {
    if (statusCode < 200 || this.stopped) return; // 1xx: interim
    this.call.responseStart(this, statusCode, headers);
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.stopped) this.call.data(this, chunk);
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: ResponseHeaders): void {
    this.finished = true;
    if (trailers) this.trailers = trailers;
    if (!this.stopped) this.call.end(this);
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.finished = true;
    this.call.error(this, err);
  }
}

export class StepCall {
  readonly result: Promise<StepResult>;
  private resolve!: (r: StepResult) => void;
  private readonly deps: StepCallDeps;
  private readonly rule: RuntimeRule;
  private readonly backend: RuntimeBackend;
  private readonly request: StepRequest;
  private current: Attempt | undefined;
  private attempts = 0;
  private isRetry = false;
  private readonly tried: string[] = [];
  private settled = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(deps: StepCallDeps, rule: RuntimeRule, backend: RuntimeBackend, request: StepRequest) {
    this.deps = deps;
    this.rule = rule;
    this.backend = backend;
    this.request = request;
    this.result = new Promise((resolve) => {
      this.resolve = resolve;
    });
    if (request.timeoutMs !== undefined) {
      this.timer = setTimeout(
        () =>
          this.finish({
            ok: false,
            kind: 'timeout',
            error: Errors.StepTimeout,
            message: `no answer within ${request.timeoutMs}ms`,
          }),
        request.timeoutMs,
      );
      this.timer.unref();
    }
    this.dispatch();
  }

  /**
   * Stops the call: `cancelled` when the client left or a sibling failed the fan-out, `timeout`
   * when the fan-out's deadline passed. The attempt in flight is aborted.
   */
  stop(kind: 'cancelled' | 'timeout', message: string): void {
    this.finish({
      ok: false,
      kind,
      error: kind === 'timeout' ? Errors.StepTimeout : Errors.UpstreamReset,
      message,
    });
  }

  /** Same preference as the exchange: a ready endpoint, else a draining one; a retry goes elsewhere when it can. */
  private pick(): EndpointState | undefined {
    const b = this.backend;
    const ctx = this.request.hashKey !== undefined ? { hashKey: this.request.hashKey } : {};
    let ep = b.balancer.pick(ctx) ?? b.drainingBalancer.pick(ctx);
    for (let i = 0; i < 4 && ep && this.tried.includes(ep.id); i++) ep = b.balancer.pick({}) ?? ep;
    return ep;
  }

  private dispatch(): void {
    if (this.settled) return;
    const { deps, rule, backend, request } = this;
    const endpoint = this.pick();
    if (!endpoint) {
      this.finish({
        ok: false,
        kind: 'no_endpoint',
        error: Errors.NoHealthyUpstream,
        message: `backend ${backend.name} has no endpoint available`,
      });
      return;
    }
    this.tried.push(endpoint.id);
    const headers = backend.credentials
      ? withCredentials(request.headers, backend.credentials)
      : { ...request.headers };
    const info = deps.endpoints.lookup(endpoint.id);
    const host = request.hostRewrite ?? info?.hostHeader ?? request.authority;
    if (host !== undefined) headers.host = host;
    endpoint.inFlight++;
    rule.inFlight.value++;
    if (this.isRetry) rule.retries.active++;
    this.attempts++;
    const attempt = new Attempt(this, endpoint, deps.now());
    this.current = attempt;
    let pool = backend.pools.get(endpoint.id);
    if (pool === undefined || pool.closed) {
      pool = deps.pools.get(endpoint.id, backend.pool);
      backend.pools.set(endpoint.id, pool);
    }
    const t = rule.compiled.timeouts;
    pool.dispatch(
      {
        path: request.path,
        method: request.method as Dispatcher.HttpMethod,
        headers,
        body: request.body,
        headersTimeout: t.firstByteMs,
        bodyTimeout: t.idleMs,
      },
      attempt,
    );
  }

  /** Releases the attempt's in-flight counts (once). */
  private endAttempt(a: Attempt): void {
    if (!a.open) return;
    a.open = false;
    a.endpoint.inFlight--;
    this.rule.inFlight.value--;
    if (this.isRetry) this.rule.retries.active--;
  }

  /** Passive health, as for any request to the backend. */
  private outcome(a: Attempt, o: 'success' | 'error' | 'connect-failure' | 'timeout'): void {
    this.deps.endpointOutcome(a.endpoint, this.backend, this.rule, o);
  }

  /** The exchange's rule: attempts left, the condition listed, room in the retry budget. */
  private mayRetry(condition: string, status?: number): boolean {
    const rule = this.rule;
    const r = rule.compiled.retries;
    if (this.settled || this.attempts > r.attempts) return false;
    const listed =
      r.retryOn.includes(condition) || (status !== undefined && status >= 500 && r.retryOn.includes('5xx'));
    if (!listed) return false;
    const budget = Math.max(MIN_RETRY_CONCURRENCY, Math.floor((r.budgetPercent / 100) * rule.inFlight.value));
    if (rule.retries.active >= budget) {
      rule.retries.budgetExhausted.value++;
      return false;
    }
    return true;
  }

  private retry(a: Attempt, reason: string): void {
    this.endAttempt(a);
    this.rule.retries.counter(reason).value++;
    this.isRetry = true;
    this.dispatch();
  }

  responseStart(a: Attempt, status: number, headers: ResponseHeaders): void {
    if (a !== this.current || this.settled) return;
    const now = this.deps.now();
    observeLatency(a.endpoint, now - a.sentAt, now);
    if (status >= 500 && this.mayRetry(String(status), status)) {
      a.retryStatus = status;
      a.controller?.abort(STOPPED);
      return;
    }
    a.status = status;
    a.headers = headers;
    const declared = Number(headers['content-length']);
    if (declared > this.request.maxResponseBytes) this.tooLarge(a);
  }

  data(a: Attempt, chunk: Buffer): void {
    if (a !== this.current || this.settled || a.retryStatus) return;
    a.size += chunk.length;
    if (a.size > this.request.maxResponseBytes) {
      this.tooLarge(a);
      return;
    }
    a.chunks.push(chunk);
  }

  private tooLarge(a: Attempt): void {
    this.outcome(a, 'success');
    this.finish({
      ok: false,
      kind: 'bad_response',
      error: Errors.PipelineBadResponse,
      message: `the answer is larger than maxResponseSize (${this.request.maxResponseBytes} bytes)`,
    });
  }

  end(a: Attempt): void {
    if (a !== this.current || this.settled) return;
    const statusOf = this.request.statusOf;
    const judged = statusOf ? statusOf(a.status, a.headers, a.trailers) : a.status;
    this.outcome(a, judged >= 500 ? 'error' : 'success');
    // A gRPC failure is known only now (the HTTP status was 200); the answer is buffered, so
    // nothing has reached the client and the call may still go to another endpoint.
    if (judged !== a.status && judged >= 500 && this.mayRetry(String(judged), judged)) {
      this.retry(a, String(judged));
      return;
    }
    const body = a.chunks.length === 1 ? a.chunks[0]! : Buffer.concat(a.chunks, a.size);
    this.finish({
      ok: true,
      status: a.status,
      headers: a.headers,
      body,
      trailers: a.trailers,
      endpoint: a.endpoint,
    });
  }

  error(a: Attempt, err: Error): void {
    if (a !== this.current || this.settled) return;
    if (a.retryStatus) {
      this.outcome(a, 'error');
      this.retry(a, String(a.retryStatus));
      return;
    }
    const failure = classifyUpstreamError(err as Error & { code?: string });
    if (failure.kind === 'timeout' || failure.kind === 'connect-timeout') {
      this.rule.timeouts.counter(failure.timeout!).value++;
    }
    this.outcome(
      a,
      failure.kind === 'connect' || failure.kind === 'connect-timeout'
        ? 'connect-failure'
        : failure.kind === 'timeout'
          ? 'timeout'
          : 'error',
    );
    const condition =
      failure.kind === 'connect' || failure.kind === 'connect-timeout'
        ? 'connect-failure'
        : failure.kind === 'reset' || failure.kind === 'timeout'
          ? failure.kind
          : undefined;
    if (condition && this.mayRetry(condition)) {
      this.retry(a, condition);
      return;
    }
    const timedOut = failure.kind === 'timeout' || failure.kind === 'connect-timeout';
    this.finish({
      ok: false,
      kind: timedOut ? 'timeout' : 'upstream_error',
      error: timedOut ? Errors.StepTimeout : failure.error,
      message: failure.error.message,
    });
  }

  private finish(r: StepResult): void {
    if (this.settled) return;
    this.settled = true;
    if (this.timer) clearTimeout(this.timer);
    const a = this.current;
    if (a) {
      this.endAttempt(a);
      if (!a.finished) a.stop();
    }
    this.resolve(r);
  }
}
