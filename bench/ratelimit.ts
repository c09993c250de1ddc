/**
 * bench/ratelimit: nanoseconds per local rate-limit check, for each algorithm, over 10,000 keys
 * visited in a seeded random order on a fake clock that advances 1 ms every 64 checks. Prints
 * JSON; `--quick` is the CI smoke (well under 2 s). No thresholds here; the target is ≤ 5 µs per
 * request for the local check.
 *
 * Cases per algorithm:
 * - algorithm: the bare `take` on a preallocated state per key (no lookup);
 * - limiter: LocalLimiter.take (Map lookup, LRU touch, take) — what the proxy pays per limit;
 * - churn: LocalLimiter.take where every check is a new key and the map sits at its bound
 *   (100,000 keys), so each one sweeps and evicts — the worst case a key-spraying client causes.
 *
 * And once for the whole filter (`filter`): what the proxy runs per request on a rule with a
 * Local policy of two limits (per consumer, and per route): the caller's amounts, the keys, both
 * takes, the RateLimit headers and the end-of-exchange observer — the figure to hold against the
 * ≤ 5 µs budget.
 *
 *   node bench/ratelimit.ts             2,000,000 checks per case
 *   node bench/ratelimit.ts --quick       200,000 checks per case
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { seededRandom } from '../src/dataplane/balancers/random.ts';
import type { FilterContext } from '../src/dataplane/filters/filter.ts';
import { type AlgorithmName, algorithmFor } from '../src/dataplane/ratelimit/algorithms.ts';
import { type LocalLimit, LocalLimiter } from '../src/dataplane/ratelimit/local-store.ts';
import { RateLimitFilterFactory } from '../src/dataplane/ratelimit/rate-limit-filter.ts';
import { type LimitState, newLimitState } from '../src/dataplane/ratelimit/types.ts';
import { ProxyMetrics } from '../src/observability/proxy-metrics.ts';
import { compileYaml } from './lib/routes.ts';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    checks: { type: 'string' },
    keys: { type: 'string' },
  },
});
const CHECKS = Number(values.checks ?? (values.quick ? 200_000 : 2_000_000));
const KEYS = Number(values.keys ?? 10_000);
const MAX_KEYS = 100_000;
/** Each case also stops after this long, whatever CHECKS says. */
const BUDGET_MS = values.quick ? 150 : 3000;
const ALGORITHMS: AlgorithmName[] = ['FixedWindow', 'SlidingWindow', 'TokenBucket'];

const t0 = performance.now();
const rnd = seededRandom(7);
const order = new Uint32Array(CHECKS);
for (let i = 0; i < CHECKS; i++) order[i] = Math.floor(rnd() * KEYS);
const keys = Array.from({ length: KEYS }, (_, i) => `consumer:tenant-${i}|model:llama-3-8b`);
const churnKeys = Array.from(
  { length: MAX_KEYS + CHECKS },
  (_, i) => `ip:10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`,
);

function limitOf(algorithm: AlgorithmName): LocalLimit {
  // A key comes back every ~640 fake ms; 10 per minute turns most of the later checks away, so
  // both the admit and the refuse paths (with their retry computation) are measured.
  return { algorithm, amount: 10, periodMs: 60_000, burst: algorithm === 'TokenBucket' ? 5 : 0 };
}

interface Result {
  nsPerCheck: number;
  checks: number;
  admittedShare: number;
}

/** Runs `check(i, now)` up to CHECKS times or BUDGET_MS, after a warm-up; returns ns per call. */
function measure(check: (i: number, now: number) => boolean): Result {
  for (let i = 0; i < 20_000; i++) check(i % CHECKS, 1_000_000 + (i >> 6));
  let admitted = 0;
  let n = 0;
  const start = process.hrtime.bigint();
  const deadline = performance.now() + BUDGET_MS;
  const base = 2_000_000;
  for (; n < CHECKS; n++) {
    if (check(n, base + (n >> 6))) admitted++;
    if ((n & 4095) === 0 && performance.now() > deadline) break;
  }
  const ns = Number(process.hrtime.bigint() - start);
  return {
    nsPerCheck: Math.round(ns / Math.max(1, n)),
    checks: n,
    admittedShare: +(admitted / n).toFixed(3),
  };
}

const results: Record<string, Record<string, Result>> = {};
for (const name of ALGORITHMS) {
  const limit = limitOf(name);
  const algorithm = algorithmFor(name);
  const states: LimitState[] = Array.from({ length: KEYS }, newLimitState);
  const bare = measure((i, now) => algorithm.take(states[order[i]!]!, 1, now, limit).allowed);
  const limiter = new LocalLimiter([limit]);
  const viaLimiter = measure((i, now) => limiter.take(0, keys[order[i]!]!, 1, now).allowed);
  const churnLimiter = new LocalLimiter([limit], { maxKeysPerLimit: MAX_KEYS });
  for (let i = 0; i < MAX_KEYS; i++) churnLimiter.take(0, churnKeys[i]!, 1, 0);
  let next = MAX_KEYS;
  const churn = measure(
    (_, now) => churnLimiter.take(0, churnKeys[next++ % churnKeys.length]!, 1, now).allowed,
  );
  results[name] = { algorithm: bare, limiter: viaLimiter, churn };
}

/** The whole filter on a compiled table, as the proxy runs it (see the file comment). */
function filterCase(): Result {
  const table = compileYaml(`apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: {name: chat, namespace: bench}
spec:
  rules:
    - matches: [{path: {value: /}}]
      backends: [{name: b, urls: ["http://127.0.0.1:9"]}]
---
apiVersion: modelgate.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: limits, namespace: bench}
spec:
  targetRefs: [{name: chat}]
  limits:
    - {name: per-consumer, key: [{type: Consumer}], algorithm: TokenBucket, amount: 10, period: 1m, burst: 5}
    - {name: per-route, key: [{type: Route}], algorithm: FixedWindow, amount: 1000000000, period: 1h}
`);
  let now = 0;
  const factory = new RateLimitFilterFactory({
    metrics: new ProxyMetrics({ processMetrics: false }),
    logger: pino({ level: 'silent' }),
    now: () => now,
  });
  const rule = table.routes.rules[0]!;
  const filter = factory.build(rule, table)!;
  factory.applied(table);
  const req = { headers: {} } as IncomingMessage;
  const res = {} as ServerResponse;
  const identities = keys.map((_, i) => ({
    method: 'apiKey' as const,
    consumer: `tenant-${i}`,
    groups: [] as string[],
    scopes: [] as string[],
    claims: {},
  }));
  const end = { status: 200, responseStarted: true, clientAborted: false, incomplete: false };
  return measure((i, t) => {
    now = t;
    const ctx: FilterContext = {
      req,
      res,
      requestId: 'r',
      rule,
      model: undefined,
      upstreamHeaders: {},
      path: '/',
      hostRewrite: undefined,
      responseHeaders: undefined,
      identity: identities[order[i]!],
      clientIp: '10.0.0.1',
      body: undefined,
      observers: undefined,
    };
    const out = filter.onRequest(ctx);
    if (ctx.observers) for (const o of ctx.observers) o.onEnd(end);
    return out === undefined;
  });
}
const filter = filterCase();

process.stdout.write(
  `${JSON.stringify(
    {
      bench: 'ratelimit',
      node: process.version,
      keys: KEYS,
      checksPerCase: CHECKS,
      budgetMsPerCase: BUDGET_MS,
      churnMaxKeys: MAX_KEYS,
      targetNsPerCheck: 5000,
      results,
      filter,
      wallMs: Math.round(performance.now() - t0),
    },
    null,
    2,
  )}\n`,
);
