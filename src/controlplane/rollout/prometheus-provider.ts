/**
 * Analysis from Prometheus instead of the proxies' reports: the same figures (requests, 5xx, p99
 * latency, p99 TTFT per backend) read with `increase(...[window])` over ModelGate's own metrics at
 * the window's end, judged by the same `judgeFigures`. Any failure to get an answer (unreachable,
 * non-200, bad JSON, timeout, a PromQL error) is an `error: true`, Inconclusive result; analyse()
 * never throws.
 *
 * Figures are per route and backend: every rule of the route that sends to the backend counts, not
 * only the rules the rollout governs. increase() extrapolates to the window's edges, so counts are
 * approximate (and fractional); ratios of two counts from the same scrapes are not affected.
 */
import { type Figures, judgeFigures } from './analysis.ts';
import type { AnalysisResult, AnalysisSpec } from './types.ts';

export interface PrometheusProviderOptions {
  /** Base URL, e.g. http://prometheus.monitoring:9090 (a path prefix is kept). */
  url: string;
  /** For all of one analysis's queries together. Default 10 s. */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export interface PrometheusWindow {
  /** The `route` label value of ModelGate's metrics. */
  route: string;
  stableBackend: string;
  canaryBackend: string;
  startMs: number;
  endMs: number;
}

/** A PromQL string literal holding `value` (double-quoted, Go escapes). */
export function promqlString(value: string): string {
  let out = '"';
  for (const ch of value.toWellFormed()) {
    const c = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\\\';
    else if (ch === '"') out += '\\"';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}

/** The PromQL for one backend's figures over `range` (e.g. "60000ms"). */
export function queriesFor(route: string, backend: string, range: string) {
  const sel = `route=${promqlString(route)},backend=${promqlString(backend)}`;
  const p99 = (metric: string) =>
    `histogram_quantile(0.99, sum by (le) (increase(${metric}_bucket{${sel}}[${range}])))`;
  return {
    requests: `sum(increase(modelgate_requests_total{${sel}}[${range}]))`,
    errors: `sum(increase(modelgate_requests_total{${sel},code_class="5xx"}[${range}]))`,
    latencyP99: p99('modelgate_request_duration_seconds'),
    ttftP99: p99('modelgate_upstream_ttfb_seconds'),
  };
}

class QueryError extends Error {}

export class PrometheusProvider {
  private readonly base: string;
  private readonly timeoutMs: number;
  private readonly fetch: typeof fetch;

  constructor(opts: PrometheusProviderOptions) {
    this.base = opts.url.replace(/\/+$/, '');
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.fetch = opts.fetch ?? globalThis.fetch;
  }

  /** Judges the window [startMs, endMs] for this rollout's route and backends, with the same judge. */
  async analyse(spec: AnalysisSpec, q: PrometheusWindow): Promise<AnalysisResult> {
    const failed = (message: string): AnalysisResult => ({
      verdict: 'Inconclusive',
      message,
      canaryRequests: 0,
      stableRequests: 0,
      error: true,
    });
    const rangeMs = Math.round(q.endMs - q.startMs);
    if (!Number.isFinite(rangeMs) || rangeMs < 1) {
      return failed(`analysis window [${q.startMs}, ${q.endMs}] is empty`);
    }
    const range = `${rangeMs}ms`;
    const time = (q.endMs / 1000).toFixed(3);
    const canary = queriesFor(q.route, q.canaryBackend, range);
    const stable = queriesFor(q.route, q.stableBackend, range);
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(new QueryError(`no answer within ${this.timeoutMs} ms`)),
      this.timeoutMs,
    );
    try {
      const run = (query: string) => this.query(query, time, controller.signal);
      const [cr, ce, cl, ct, sr, se, sl, st] = await Promise.all([
        run(canary.requests),
        run(canary.errors),
        run(canary.latencyP99),
        run(canary.ttftP99),
        run(stable.requests),
        run(stable.errors),
        run(stable.latencyP99),
        run(stable.ttftP99),
      ]);
      const figures: Figures = {
        canaryRequests: cr ?? 0,
        canaryErrors: ce ?? 0,
        stableRequests: sr ?? 0,
        stableErrors: se ?? 0,
        canaryLatencyP99: cl,
        stableLatencyP99: sl,
        canaryTtftP99: ct,
        stableTtftP99: st,
      };
      const result = judgeFigures(spec, figures);
      // increase() extrapolates: whole requests read better in a status.
      return {
        ...result,
        canaryRequests: Math.round(result.canaryRequests),
        stableRequests: Math.round(result.stableRequests),
      };
    } catch (err) {
      // The first failure aborts the others.
      controller.abort();
      const why = err instanceof QueryError ? err.message : describe(err, controller.signal);
      return failed(`Prometheus at ${this.base}: ${why}`);
    } finally {
      clearTimeout(timer);
    }
  }

  /** One instant query's single value; undefined for an empty vector or NaN. */
  private async query(query: string, time: string, signal: AbortSignal): Promise<number | undefined> {
    let res: Response;
    try {
      res = await this.fetch(`${this.base}/api/v1/query`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: new URLSearchParams({ query, time }).toString(),
        signal,
      });
    } catch (err) {
      throw new QueryError(describe(err, signal));
    }
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      throw new QueryError(describe(err, signal));
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      if (res.status !== 200) throw new QueryError(`HTTP ${res.status}: ${snippet(text)}`);
      throw new QueryError(`answer is not JSON: ${snippet(text)}`);
    }
    const b = body as {
      status?: unknown;
      error?: unknown;
      data?: { resultType?: unknown; result?: unknown };
    };
    if (res.status !== 200 || b?.status !== 'success') {
      const detail = typeof b?.error === 'string' ? b.error : snippet(text);
      throw new QueryError(`HTTP ${res.status}: ${snippet(detail)} (query ${query})`);
    }
    const data = b.data;
    if (data?.resultType !== 'vector' || !Array.isArray(data.result)) {
      throw new QueryError(`unexpected answer (not a vector) to ${query}`);
    }
    if (data.result.length === 0) return undefined;
    if (data.result.length > 1) throw new QueryError(`${data.result.length} series for ${query}, 1 expected`);
    const sample = (data.result[0] as { value?: unknown }).value;
    if (!Array.isArray(sample) || typeof sample[1] !== 'string') {
      throw new QueryError(`unexpected sample in the answer to ${query}`);
    }
    // "NaN" (histogram_quantile of no observations) and infinities: no figure.
    const v = Number(sample[1]);
    return Number.isFinite(v) ? v : undefined;
  }
}

function snippet(s: string): string {
  const one = s.replace(/\s+/g, ' ').trim();
  return one.length > 200 ? `${one.slice(0, 200)}…` : one;
}

function describe(err: unknown, signal: AbortSignal): string {
  if (signal.aborted && signal.reason instanceof QueryError) return signal.reason.message;
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    const detail = cause instanceof Error ? `: ${cause.message}` : '';
    return `${err.message}${detail}`;
  }
  return String(err);
}
