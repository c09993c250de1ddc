/**
 * The proxy's Prometheus metrics. Label values are bounded by configuration: `route`, `rule` and
 * `backend` come from the table, `model` only takes configured model names (or globs), `other`,
 * or '' when the route does not look at the model; `code_class` is 1xx..5xx.
 */
import { collectDefaultMetrics, Registry } from 'prom-client';
import { type CallbackFamily, CounterFamily, GaugeFamily, HistogramFamily } from './metric-families.ts';

export const CODE_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;

export class ProxyMetrics {
  readonly registry = new Registry();
  readonly requests = new CounterFamily(
    'modelgate_requests_total',
    'Requests proxied to a backend, by route, rule, backend, model and status class.',
    ['route', 'rule', 'backend', 'model', 'code_class'],
  );
  readonly duration = new HistogramFamily(
    'modelgate_request_duration_seconds',
    'Time from the request to the end of the response, by route and backend.',
    ['route', 'backend'],
  );
  readonly ttfb = new HistogramFamily(
    'modelgate_upstream_ttfb_seconds',
    'Time from sending the request upstream to its first response byte (time to first token for streams).',
    ['route', 'backend'],
  );
  readonly inFlight = new GaugeFamily('modelgate_requests_in_flight', 'Requests being handled, by route.', [
    'route',
  ]);
  readonly gatewayErrors = new CounterFamily(
    'modelgate_gateway_errors_total',
    'Error responses produced by the gateway itself, by error code.',
    ['code'],
  );
  readonly retries = new CounterFamily(
    'modelgate_upstream_retries_total',
    'Upstream attempts retried, by route and the condition that allowed it.',
    ['route', 'reason'],
  );
  readonly retryBudgetExhausted = new CounterFamily(
    'modelgate_retry_budget_exhausted_total',
    'Retries refused because the route already had its share of retries in flight.',
    ['route'],
  );
  readonly upstreamTimeouts = new CounterFamily(
    'modelgate_upstream_timeouts_total',
    'Upstream timeouts by route and kind (connect, first_byte, idle).',
    ['route', 'kind'],
  );
  readonly clientAborts = new CounterFamily(
    'modelgate_client_aborts_total',
    'Requests the client abandoned before the response ended (the upstream call is cancelled).',
    ['route'],
  );
  readonly activeStreams = new GaugeFamily(
    'modelgate_active_streams',
    'Server-Sent Events responses being streamed, by route.',
    ['route'],
  );
  readonly authDecisions = new CounterFamily(
    'modelgate_auth_decisions_total',
    'Authentication and authorization decisions, by route, method (apiKey, jwt, introspection, anonymous, none) and outcome (allowed, unauthenticated, forbidden, unavailable).',
    ['route', 'method', 'outcome'],
  );
  readonly rateLimitDecisions = new CounterFamily(
    'modelgate_ratelimit_decisions_total',
    'Rate-limit decisions, by route, policy and outcome (allowed, limited, concurrency_limited, queue_admitted, queue_timeout, queue_full, queue_displaced, queue_aborted, queue_closed, fail_open, fail_closed).',
    ['route', 'policy', 'outcome'],
  );
  readonly rateLimitRefusals = new CounterFamily(
    'modelgate_ratelimit_limited_total',
    'Requests refused or queued, by the policy limit that refused them.',
    ['policy', 'limit'],
  );
  readonly rateLimitQueueLength = new GaugeFamily(
    'modelgate_ratelimit_queue_length',
    'Requests waiting in a rate-limit queue, by route.',
    ['route'],
  );
  readonly rateLimitQueueWait = new HistogramFamily(
    'modelgate_ratelimit_queue_wait_seconds',
    'Time requests spent in a rate-limit queue, by route and how they left it.',
    ['route', 'outcome'],
  );
  readonly rateLimitTokens = new CounterFamily(
    'modelgate_ratelimit_tokens_charged_total',
    'Model tokens charged to token limits, by route, policy and source (usage: reported by the model server; generated: counted from a cut stream; estimate: nothing better known).',
    ['route', 'policy', 'source'],
  );
  readonly rateLimitRedisErrors = new CounterFamily(
    'modelgate_ratelimit_redis_errors_total',
    'Global rate-limit checks that failed because Redis was unreachable or slow, by policy.',
    ['policy'],
  );
  readonly mirrored = new CounterFamily(
    'modelgate_mirror_requests_total',
    'Requests copied to a canary (sent), or not copied because too many copies were in flight (skipped), by route.',
    ['route', 'outcome'],
  );
  readonly validationFailures = new CounterFamily(
    'modelgate_request_validation_failures_total',
    "Requests refused by a rule's JSON Schema validation, by route and reason (schema, not_json, duplicate_keys, no_body, encoding).",
    ['route', 'reason'],
  );
  readonly transformSkipped = new CounterFamily(
    'modelgate_transform_skipped_total',
    'JSON bodies a rule would transform but passed unchanged, by route, direction (request, response) and reason (streamed, too_large, not_json, encoded).',
    ['route', 'direction', 'reason'],
  );
  readonly compositionSteps = new CounterFamily(
    'modelgate_composition_steps_total',
    'Pipeline steps and fan-out branches, by route, rule, step and result (1xx..5xx: the class of the upstream answer; timeout, upstream_error, no_endpoint, bad_response, cancelled).',
    ['route', 'rule', 'step', 'result'],
  );
  readonly compositionStepDuration = new HistogramFamily(
    'modelgate_composition_step_duration_seconds',
    'Time a pipeline step or fan-out branch took, retries included (the last pipeline step: to the end of its answer), by route, rule and step.',
    ['route', 'rule', 'step'],
  );
  readonly tableInfo = new GaugeFamily('modelgate_table_info', 'The routing table in use (value 1).', [
    'hash',
    'version',
  ]);
  readonly tableSwaps = new CounterFamily('modelgate_table_swaps_total', 'Routing tables applied.', []);
  readonly tableRejected = new CounterFamily(
    'modelgate_table_rejected_total',
    'Routing tables refused (NACKed).',
    [],
  );
  readonly lastSwap = new GaugeFamily(
    'modelgate_table_last_swap_timestamp_seconds',
    'Unix time of the last table swap.',
    [],
  );

  constructor(opts: { processMetrics?: boolean } = {}) {
    for (const f of [
      this.requests,
      this.duration,
      this.ttfb,
      this.inFlight,
      this.gatewayErrors,
      this.retries,
      this.retryBudgetExhausted,
      this.upstreamTimeouts,
      this.clientAborts,
      this.activeStreams,
      this.authDecisions,
      this.rateLimitDecisions,
      this.rateLimitRefusals,
      this.rateLimitQueueLength,
      this.rateLimitQueueWait,
      this.rateLimitTokens,
      this.rateLimitRedisErrors,
      this.mirrored,
      this.validationFailures,
      this.transformSkipped,
      this.compositionSteps,
      this.compositionStepDuration,
      this.tableInfo,
      this.tableSwaps,
      this.tableRejected,
      this.lastSwap,
    ]) {
      // The families implement the part of prom-client's metric interface the registry reads.
      this.registry.registerMetric(f as unknown as Parameters<Registry['registerMetric']>[0]);
    }
    if (opts.processMetrics ?? true) {
      collectDefaultMetrics({ register: this.registry });
      // These three are gauges named like counters; `promtool check metrics` rightly rejects them.
      for (const name of [
        'nodejs_active_handles_total',
        'nodejs_active_requests_total',
        'nodejs_active_resources_total',
      ]) {
        this.registry.removeSingleMetric(name);
      }
    }
  }

  /** Families with a `route` label: their series go when the route leaves the table. */
  private get byRoute() {
    return [
      this.requests,
      this.duration,
      this.ttfb,
      this.inFlight,
      this.retries,
      this.retryBudgetExhausted,
      this.upstreamTimeouts,
      this.clientAborts,
      this.activeStreams,
      this.authDecisions,
      this.rateLimitDecisions,
      this.rateLimitQueueLength,
      this.rateLimitQueueWait,
      this.rateLimitTokens,
      this.mirrored,
      this.validationFailures,
      this.transformSkipped,
      this.compositionSteps,
      this.compositionStepDuration,
    ];
  }

  /** Drops the series of routes not in `routes`. */
  pruneRoutes(routes: ReadonlySet<string>): void {
    const keep = (labels: Record<string, string>) => routes.has(labels.route ?? '');
    for (const f of this.byRoute) f.prune(keep);
  }

  /** Registers a family read at scrape time. */
  registerCallback(f: CallbackFamily): void {
    this.registry.registerMetric(f as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  gatewayError(code: string): void {
    this.gatewayErrors.child([code]).value++;
  }

  /** Called after each swap: the table gauge names only the current table. */
  tableApplied(hash: string, version: string, nowSeconds: number): void {
    this.tableInfo.prune(() => false);
    this.tableInfo.child([hash, version]).value = 1;
    this.tableSwaps.child([]).value++;
    this.lastSwap.child([]).value = nowSeconds;
  }
}
