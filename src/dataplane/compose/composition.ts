/**
 * A composed rule at run time (CompiledRule.composition), built once per table. The exchange hands
 * a request over after its filters have run (authentication, validation, rate limiting and the
 * request transform run once, for the client's request); from there:
 *
 * - **Pipeline.** Steps run in order, each a buffered StepCall (step-call.ts) whose answer must be
 *   2xx JSON. The last step is not buffered: the exchange dispatches it as the request itself
 *   (Exchange.continueWith), so its answer streams to the client (Server-Sent Events included),
 *   passes the rule's response transform and compression, and is counted and logged as any
 *   request's answer, under the last step's backend.
 * - **Fan-out.** Branches run at once; the answer merges theirs (merge.ts), or under
 *   `onPartialFailure: Fail` the first failure is the answer and the other branches are cancelled.
 *
 * What a step sends: the headers a request to that backend would get (the client's, without
 * hop-by-hop ones, with the forwarding headers, the filters' changes, and per attempt the Host and
 * the backend's credentials); a body built by the step's mapping (mapping.ts), or the previous
 * answer as it came, or (first step, branches) the client's body as it came. Intermediate calls ask
 * for identity encoding, since their answers are read.
 *
 * A client that leaves cancels the calls in flight (their upstreams see the connection close).
 * Failures the client sees name the step (`error.step`, or `error.branch`) and, when the upstream
 * answered, its status (`error.upstreamStatus`).
 */

import type { CounterCell } from '../../observability/metric-families.ts';
import type { ProxyMetrics } from '../../observability/proxy-metrics.ts';
import type { CompiledComposition, CompiledRule, CompiledStep } from '../../routing-table/types.ts';
import { hasBody, readBody } from '../body.ts';
import { type ErrorDefinition, type ErrorFields, Errors } from '../errors.ts';
import { type Exchange, hashKeyOf } from '../exchange.ts';
import type { ExchangeEnd, ExchangeObserver } from '../filters/filter.ts';
import { decodeContent } from '../request/model-field.ts';
import { LazyHistogram, type RuntimeBackend } from '../runtime-table.ts';
import { jsonText, parseForRewrite, serialize } from '../transform/json-text.ts';
import type { OutgoingHeaders } from '../upstream/headers.ts';
import { buildBody, missing, readsRequest } from './mapping.ts';
import { type BranchOutcome, mergeBranches } from './merge.ts';
import { StepCall, type StepResult } from './step-call.ts';

const CODE_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;

/** Backend label of a fan-out's merged answer in the request metrics; a DNS label cannot start with `_`. */
export const FAN_OUT_BACKEND = '_fanout';

/** A step with what it calls and where it is counted. */
class RuntimeStep {
  readonly compiled: CompiledStep;
  readonly backend: RuntimeBackend;
  readonly duration: LazyHistogram;
  private readonly results = new Map<string, CounterCell>();
  private readonly metrics: ProxyMetrics;
  private readonly labels: readonly string[];

  constructor(rule: CompiledRule, step: CompiledStep, backend: RuntimeBackend, metrics: ProxyMetrics) {
    this.compiled = step;
    this.backend = backend;
    this.metrics = metrics;
    this.labels = [rule.route, rule.name, step.name];
    this.duration = new LazyHistogram(() => metrics.compositionStepDuration.child(this.labels));
  }

  /** `result`: a status class, or a failure kind (timeout, upstream_error, …). */
  count(result: string, seconds: number): void {
    let cell = this.results.get(result);
    if (!cell) {
      cell = this.metrics.compositionSteps.child([...this.labels, result]);
      this.results.set(result, cell);
    }
    cell.value++;
    this.duration.observe(seconds);
  }
}

function statusClass(status: number): string {
  return CODE_CLASSES[Math.min(Math.max(Math.floor(status / 100), 1), 5) - 1]!;
}

/** The step metric's result for a call that failed before answering, or answered `status`. */
function resultOf(r: StepResult): string {
  if (!r.ok) return r.kind;
  return r.status >= 200 && r.status < 300 ? 'bad_response' : statusClass(r.status);
}

/** The last pipeline step's result, from how the exchange ended. */
function handedOffResult(end: ExchangeEnd): string {
  if (end.clientAborted) return 'cancelled';
  if (end.responseStarted) return statusClass(end.status);
  // The exchange answered with its own error: what the upstream call ran into.
  return end.status === 503 ? 'no_endpoint' : end.status === 504 ? 'timeout' : 'upstream_error';
}

/** A backend that is never dispatched to: the label a fan-out's answer is counted under. */
function answerBackend(rule: CompiledRule, metrics: ProxyMetrics): RuntimeBackend {
  const labels = [rule.route, FAN_OUT_BACKEND];
  const none = { pick: () => undefined };
  return {
    name: FAN_OUT_BACKEND,
    weight: 0,
    protocol: 'HTTP',
    modelRevision: undefined,
    ready: [],
    draining: [],
    balancer: none,
    drainingBalancer: none,
    pool: { connectTimeoutMs: rule.timeouts.connectMs, h2c: false, tls: undefined, tlsId: '' },
    pools: new Map(),
    outlierGroup: undefined,
    duration: new LazyHistogram(() => metrics.duration.child(labels)),
    ttfb: new LazyHistogram(() => metrics.ttfb.child(labels)),
    requestCells: [],
    credentials: undefined,
  };
}

/** A step's 2xx answer, checked to be JSON. */
interface Answer {
  /** Identity-encoded bytes, sent as they are to a next step without a mapping. */
  bytes: Buffer;
  /** The text (byte order mark dropped), spliced into a fan-out's answer. */
  text: string;
  doc: unknown;
}

function readAnswer(r: Extract<StepResult, { ok: true }>, maxBytes: number): Answer | undefined {
  const encoding = r.headers['content-encoding'];
  const decoded = decodeContent([r.body], typeof encoding === 'string' ? encoding : undefined, maxBytes);
  if (decoded.kind !== 'ok') return undefined;
  const text = jsonText(decoded.body);
  if (text === undefined) return undefined;
  try {
    return { bytes: decoded.body, text, doc: parseForRewrite(text) };
  } catch {
    return undefined;
  }
}

/** How a failed call is told to the client. */
function failureOf(
  what: 'step' | 'branch',
  name: string,
  r: StepResult,
  maxBytes: number,
): { error: ErrorDefinition; message: string; fields: ErrorFields } {
  const fields: Record<string, string | number> = { [what]: name };
  const label = what === 'step' ? `pipeline step ${name}` : `fan-out branch ${name}`;
  if (r.ok) {
    fields.upstreamStatus = r.status;
    if (r.status >= 200 && r.status < 300) {
      return {
        error: Errors.PipelineBadResponse,
        message: `${label}: the answer is not JSON (or larger than ${maxBytes} bytes once decoded)`,
        fields,
      };
    }
    return {
      error: what === 'step' ? Errors.PipelineStepFailed : Errors.FanOutFailed,
      message: `${label} answered ${r.status}`,
      fields,
    };
  }
  if (r.kind === 'upstream_error') fields.cause = r.error.code;
  const error =
    r.kind === 'upstream_error'
      ? what === 'step'
        ? Errors.PipelineStepFailed
        : Errors.FanOutFailed
      : r.error;
  return { error, message: `${label}: ${r.message}`, fields };
}

export class Composition {
  readonly compiled: CompiledComposition;
  readonly steps: readonly RuntimeStep[];
  /** Some mapping reads the client's body: it is parsed once, before the first call. */
  readonly readsRequest: boolean;
  /** Fan-out: what the merged answer (or its failure) is counted under. */
  readonly answerBackend: RuntimeBackend | undefined;
  private readonly rule: CompiledRule;

  constructor(
    rule: CompiledRule,
    compiled: CompiledComposition,
    backends: readonly RuntimeBackend[],
    metrics: ProxyMetrics,
  ) {
    this.rule = rule;
    this.compiled = compiled;
    this.steps = compiled.steps.map((s) => {
      const backend = backends.find((b) => b.name === s.backend);
      if (!backend)
        throw new Error(`rule ${rule.id}: step ${s.name} names no backend of the rule (${s.backend})`);
      return new RuntimeStep(rule, s, backend, metrics);
    });
    this.readsRequest = compiled.steps.some((s) => readsRequest(s.request));
    this.answerBackend = compiled.kind === 'FanOut' ? answerBackend(rule, metrics) : undefined;
  }

  /**
   * Takes the request over once the filters have run. `headers` are the upstream headers the
   * filters left; `body` the client's body when it is in memory already.
   */
  run(ex: Exchange, headers: OutgoingHeaders, body: Buffer | undefined): void {
    if (body !== undefined || !hasBody(ex.req)) {
      new Run(this, ex, headers, body).start();
      return;
    }
    // Every step may need the body again: read it, within the route's limit.
    const limit = this.rule.maxRequestBodyBytes;
    ex.readingBody();
    readBody(ex.req, limit).then(
      (read) => {
        if (ex.clientAborted) return;
        if (!read.ok) {
          // An aborted read ends with the client's close, which the exchange already handles.
          if (read.reason === 'too-large') ex.proxy.fail(ex, Errors.BodyTooLarge);
          return;
        }
        ex.bytesIn = read.size;
        const bytes = read.chunks.length === 1 ? read.chunks[0]! : Buffer.concat(read.chunks);
        new Run(this, ex, headers, bytes).start();
      },
      () => ex.proxy.fail(ex, Errors.Internal),
    );
  }
}

/** One request through a composition. */
class Run {
  private readonly c: Composition;
  private readonly ex: Exchange;
  private readonly headers: OutgoingHeaders;
  private readonly body: Buffer | undefined;
  private readonly maxBytes: number;
  private readonly calls = new Set<StepCall>();
  private requestDoc: unknown = missing;
  private readonly answers = new Map<string, unknown>();
  private readonly hashKey: string | undefined;
  private readonly target: ReturnType<Exchange['upstreamTarget']>;
  private finished = false;

  constructor(c: Composition, ex: Exchange, headers: OutgoingHeaders, body: Buffer | undefined) {
    this.c = c;
    this.ex = ex;
    this.headers = headers;
    this.body = body !== undefined && body.length > 0 ? body : undefined;
    this.maxBytes = c.compiled.maxResponseBytes;
    this.target = ex.upstreamTarget();
    const hashOn = ex.rule!.compiled.loadBalancing.hashOn;
    this.hashKey = hashOn ? (hashOn.consumer ? ex.identity?.consumer : hashKeyOf(ex.req, hashOn)) : undefined;
  }

  start(): void {
    if (this.c.readsRequest && !this.parseRequest()) return;
    this.ex.res.on('close', this.onClose);
    if (this.c.compiled.kind === 'Pipeline') this.pipeline().catch(this.crashed);
    else {
      try {
        this.fanOut();
      } catch (e) {
        this.crashed(e);
      }
    }
  }

  /** A bug, not a failure of a call: the client gets 500 rather than a hung request. */
  private readonly crashed = (e: unknown): void => {
    this.ex.proxy.logger.error({ err: e, rule: this.ex.rule?.compiled.id }, 'composition failed');
    if (this.finished) return;
    this.fail(undefined, { error: Errors.Internal, message: Errors.Internal.message, fields: {} });
  };

  /** The client left: stop every call in flight (the exchange has already recorded the 499). */
  private readonly onClose = (): void => {
    if (this.finished || this.ex.res.writableFinished) return;
    this.finished = true;
    for (const call of this.calls) call.stop('cancelled', 'the client closed the connection');
  };

  /** Parses the client's body for the mappings that read it; false when it refused the request. */
  private parseRequest(): boolean {
    if (this.body === undefined) return true;
    const encoding = this.headers['content-encoding'];
    const decoded = decodeContent(
      [this.body],
      typeof encoding === 'string' ? encoding : undefined,
      this.ex.rule!.compiled.maxRequestBodyBytes,
    );
    if (decoded.kind === 'too-large') return this.refuse(Errors.BodyTooLarge);
    if (decoded.kind === 'bad-encoding') return this.refuse(Errors.BadContentEncoding);
    const text = jsonText(decoded.body);
    try {
      if (text === undefined) throw new SyntaxError('not UTF-8');
      this.requestDoc = parseForRewrite(text);
    } catch {
      return this.refuse(
        Errors.RequestNotJson,
        'the composition maps fields of the request body, which is not JSON',
      );
    }
    return true;
  }

  private refuse(e: ErrorDefinition, message?: string): false {
    this.ex.proxy.fail(this.ex, e, message);
    return false;
  }

  /** The body and headers a step sends. */
  private input(
    step: CompiledStep,
    previous: Answer | undefined,
    intermediate: boolean,
  ): { body: Buffer | null; headers: OutgoingHeaders } {
    const headers = { ...this.headers };
    let body: Buffer | null;
    let json = true;
    if (step.request) {
      body = serialize(
        buildBody(step.request, {
          request: () => this.requestDoc,
          step: (name) => (this.answers.has(name) ? this.answers.get(name) : missing),
        }),
      );
    } else if (previous) body = previous.bytes;
    else {
      body = this.body ?? null;
      json = false;
    }
    if (body === null) delete headers['content-length'];
    else headers['content-length'] = String(body.length);
    if (json) {
      headers['content-type'] = 'application/json';
      delete headers['content-encoding'];
    }
    // Intermediate answers are read here: they must come unencoded.
    if (intermediate) headers['accept-encoding'] = 'identity';
    return { body, headers };
  }

  private path(step: CompiledStep): string {
    return step.path ?? this.target.path + this.ex.query;
  }

  private call(step: RuntimeStep, input: { body: Buffer | null; headers: OutgoingHeaders }): StepCall {
    const s = step.compiled;
    const call = new StepCall(this.ex.proxy, this.ex.rule!, step.backend, {
      method: s.method,
      path: this.path(s),
      headers: input.headers,
      body: input.body,
      hostRewrite: this.target.hostRewrite,
      authority: this.target.authority,
      hashKey: this.hashKey,
      timeoutMs: s.timeoutMs,
      maxResponseBytes: this.maxBytes,
    });
    this.calls.add(call);
    return call;
  }

  private async pipeline(): Promise<void> {
    const steps = this.c.steps;
    let previous: Answer | undefined;
    for (let i = 0; i < steps.length; i++) {
      const step = steps[i]!;
      if (i === steps.length - 1) {
        this.handOff(step, this.input(step.compiled, previous, false));
        return;
      }
      const started = this.ex.proxy.now();
      const call = this.call(step, this.input(step.compiled, previous, true));
      const r = await call.result;
      this.calls.delete(call);
      const seconds = (this.ex.proxy.now() - started) / 1000;
      if (this.finished) {
        step.count('cancelled', seconds);
        return;
      }
      const answer = r.ok && r.status >= 200 && r.status < 300 ? readAnswer(r, this.maxBytes) : undefined;
      if (!answer) {
        step.count(resultOf(r), seconds);
        this.fail(step, failureOf('step', step.compiled.name, r, this.maxBytes));
        return;
      }
      step.count('2xx', seconds);
      this.answers.set(step.compiled.name, answer.doc);
      previous = answer;
    }
  }

  /** The last step: the exchange sends it as the request, and streams its answer to the client. */
  private handOff(step: RuntimeStep, input: { body: Buffer | null; headers: OutgoingHeaders }): void {
    if (this.finished) return;
    this.finished = true;
    this.ex.res.off('close', this.onClose);
    const started = this.ex.proxy.now();
    const now = this.ex.proxy.now;
    const observer: ExchangeObserver = {
      onEnd(end: ExchangeEnd) {
        step.count(handedOffResult(end), (now() - started) / 1000);
      },
    };
    const s = step.compiled;
    this.ex.continueWith(
      step.backend,
      {
        method: s.method,
        path: this.path(s),
        headers: input.headers,
        body: input.body,
        firstByteMs: s.timeoutMs,
      },
      observer,
    );
  }

  private fanOut(): void {
    const steps = this.c.steps;
    const compiled = this.c.compiled;
    const policy = compiled.onPartialFailure ?? 'Fail';
    const outcomes: (BranchOutcome | undefined)[] = steps.map(() => undefined);
    const calls: (StepCall | undefined)[] = [];
    const started = this.ex.proxy.now();
    let pending = steps.length;
    let deadline: NodeJS.Timeout | undefined;
    if (compiled.timeoutMs !== undefined) {
      deadline = setTimeout(() => {
        for (const call of calls)
          call?.stop('timeout', `the fan-out deadline (${compiled.timeoutMs}ms) passed`);
      }, compiled.timeoutMs);
      deadline.unref();
    }
    const settle = (i: number, r: StepResult, seconds: number) => {
      const step = steps[i]!;
      if (this.finished) {
        step.count('cancelled', seconds);
        return;
      }
      const answer = r.ok && r.status >= 200 && r.status < 300 ? readAnswer(r, this.maxBytes) : undefined;
      if (answer) {
        step.count('2xx', seconds);
        outcomes[i] = { ok: true, json: answer.text };
      } else {
        step.count(resultOf(r), seconds);
        const f = failureOf('branch', step.compiled.name, r, this.maxBytes);
        if (policy === 'Fail') {
          if (deadline) clearTimeout(deadline);
          this.fail(step, f);
          return;
        }
        outcomes[i] = {
          ok: false,
          error: f.error,
          message: f.message,
          ...(typeof f.fields.upstreamStatus === 'number' && { upstreamStatus: f.fields.upstreamStatus }),
        };
      }
      if (--pending > 0) return;
      if (deadline) clearTimeout(deadline);
      const merged = mergeBranches(
        steps.map((s) => s.compiled.name),
        outcomes as BranchOutcome[],
        policy,
      );
      if (merged.ok) {
        this.finish();
        this.ex.respondComposed(this.c.answerBackend!, merged.body, started);
        return;
      }
      const failures = outcomes.flatMap((o, k) =>
        o && !o.ok ? [`${steps[k]!.compiled.name}: ${o.message}`] : [],
      );
      this.fail(undefined, {
        error: Errors.FanOutFailed,
        message: `every branch failed (${failures.join('; ')})`,
        fields: {},
      });
    };
    steps.forEach((step, i) => {
      const call = this.call(step, this.input(step.compiled, undefined, true));
      calls[i] = call;
      call.result
        .then((r) => {
          this.calls.delete(call);
          settle(i, r, (this.ex.proxy.now() - started) / 1000);
        })
        .catch(this.crashed);
    });
  }

  private finish(): void {
    this.finished = true;
    this.ex.res.off('close', this.onClose);
  }

  /** Answers with a failure; calls still in flight (a fan-out's other branches) are cancelled. */
  private fail(
    step: RuntimeStep | undefined,
    f: { error: ErrorDefinition; message: string; fields: ErrorFields },
  ): void {
    this.finish();
    for (const call of this.calls) call.stop('cancelled', 'another branch failed the fan-out');
    this.ex.backend = this.c.answerBackend ?? step?.backend;
    this.ex.proxy.fail(this.ex, f.error, f.message, undefined, f.fields);
  }
}
