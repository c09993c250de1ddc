/**
 * bench/cache: what a response-cache hit costs. Prints JSON; `--quick` is the CI smoke. No
 * thresholds here; the budget is ≤ 30 µs of CPU per hit.
 *
 * 1. `filter` (in process, like bench/ratelimit.ts): µs per request through the cache filter
 *    when it answers from the local store — the conditions, the key (SHA-256 over the request and
 *    body), the lookup, the Age and x-cache headers. Cases:
 *    - get: a shared rule without conditions, a body-less GET;
 *    - chat1k / chat4k: a per-caller rule whose condition reads `temperature` from a ~1 KiB /
 *      ~4 KiB chat body (JSON.parse), over 1,000 distinct entries.
 * 2. `proxy` (needs wrk; the gateway pinned to one core, wrk and the upstream on another): the
 *    gateway's CPU per request, from /proc, for a GET route without a cache (every request
 *    proxied) and the same route with one (every request but the first a hit: the filter plus the
 *    answer written through the exchange's response path, without any upstream work).
 *
 *   node bench/cache.ts            2,000,000 requests per filter case, 10 s per proxy case
 *   node bench/cache.ts --quick      200,000 requests per filter case,  2 s per proxy case
 */

import { writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import type { Identity } from '../src/dataplane/auth/identity.ts';
import { CacheFilterFactory } from '../src/dataplane/cache/cache-filter.ts';
import type { ExchangeEnd, Filter, FilterContext } from '../src/dataplane/filters/filter.ts';
import { ProxyMetrics } from '../src/observability/proxy-metrics.ts';
import type { CompiledRule } from '../src/routing-table/types.ts';
import { startNodeChild } from './lib/node-child.ts';
import {
  allowedCpus,
  clockTicksPerSecond,
  cpuTicks,
  installCleanup,
  round,
  tempDir,
  which,
} from './lib/procs.ts';
import { compileYaml } from './lib/routes.ts';
import { runWrk } from './lib/wrk.ts';

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false } } });
const QUICK = values.quick;
const REQUESTS = QUICK ? 200_000 : 2_000_000;
const BUDGET_MS = QUICK ? 150 : 3000;
const PROXY_SECONDS = QUICK ? 2 : 10;
const ENTRIES = 1000;

const t0 = performance.now();

interface FilterResult {
  /** Wall time per request. */
  usPerRequest: number;
  /** Process CPU (user + system) per request. */
  cpuUsPerRequest: number;
  requests: number;
  hitShare: number;
}

function chatBody(i: number, bytes: number): string {
  const filler = 'x'.repeat(Math.max(0, bytes - 160));
  return JSON.stringify({
    model: 'llama-3-8b',
    temperature: 0,
    max_tokens: 256,
    messages: [
      { role: 'system', content: 'You are a helpful assistant.' },
      { role: 'user', content: `question ${i}: ${filler}` },
    ],
  });
}

function filterCase(cache: string, bodyBytes: number | undefined): FilterResult {
  const table = compileYaml(`apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: {name: chat, namespace: bench}
spec:
  auth: {anonymous: true}
  rules:
    - backends: [{name: b, urls: ["http://127.0.0.1:9"], modelRevision: v1}]
      cache: ${cache}
`);
  const now = 1_000_000;
  const factory = new CacheFilterFactory({
    metrics: new ProxyMetrics({ processMetrics: false }),
    logger: pino({ level: 'silent' }),
    now: () => now,
  });
  const rule: CompiledRule = table.routes.rules[0]!;
  const filter: Filter = factory.build(rule)!;
  factory.applied(table);
  const n = bodyBytes === undefined ? 1 : ENTRIES;
  const bodies = Array.from({ length: n }, (_, i) =>
    bodyBytes === undefined ? undefined : Buffer.from(chatBody(i, bodyBytes)),
  );
  const identity: Identity = { method: 'apiKey', consumer: 'tenant-1', groups: [], scopes: [], claims: {} };
  const backend = { name: 'b', modelRevision: 'v1' };
  const headers = { host: 'api.example.com', 'content-type': 'application/json', 'x-request-id': 'r' };
  const req = { method: bodyBytes === undefined ? 'GET' : 'POST', url: '/v1/chat/completions', headers };
  const res = {} as ServerResponse;
  const ctxFor = (i: number): FilterContext => ({
    req: req as unknown as IncomingMessage,
    res,
    requestId: 'r',
    rule,
    model: 'llama-3-8b',
    // The exchange builds this object per request too; copying it here is part of what a request costs.
    upstreamHeaders: { ...headers },
    path: '/v1/chat/completions',
    hostRewrite: undefined,
    responseHeaders: undefined,
    identity,
    clientIp: '10.0.0.1',
    body: bodies[i],
    observers: undefined,
    chooseBackend: () => backend,
  });
  // Fill every entry once (a miss played to its end), as a warm cache would be.
  const end: ExchangeEnd = {
    status: 200,
    responseStarted: true,
    clientAborted: false,
    incomplete: false,
    backend: 'b',
  };
  const answer = Buffer.from(
    JSON.stringify({ id: 'x', choices: [{ message: { content: 'y'.repeat(400) } }] }),
  );
  for (let i = 0; i < n; i++) {
    const ctx = ctxFor(i);
    if (filter.onRequest(ctx) !== undefined) throw new Error('expected a miss while filling');
    for (const o of ctx.observers ?? []) {
      const t = o.onResponseStart?.(200, { 'content-type': 'application/json' }, {});
      t?.data(answer);
      o.onEnd(end);
    }
  }
  const order = Array.from({ length: REQUESTS }, (_, i) => (i * 7919) % n);
  for (let i = 0; i < 20_000; i++) filter.onRequest(ctxFor(order[i % REQUESTS]!));
  let hits = 0;
  let done = 0;
  const deadline = performance.now() + BUDGET_MS;
  const cpu0 = process.cpuUsage();
  const start = process.hrtime.bigint();
  for (; done < REQUESTS; done++) {
    const out = filter.onRequest(ctxFor(order[done]!));
    if (out !== undefined && 'answer' in out) hits++;
    if ((done & 1023) === 0 && performance.now() > deadline) break;
  }
  const ns = Number(process.hrtime.bigint() - start);
  const cpu = process.cpuUsage(cpu0);
  return {
    usPerRequest: round(ns / 1000 / done, 3),
    cpuUsPerRequest: round((cpu.user + cpu.system) / done, 3),
    requests: done,
    hitShare: round(hits / done, 3),
  };
}

const filter = {
  get: filterCase('{shared: true}', undefined),
  chat1k: filterCase('{when: [{bodyFields: [{path: /temperature, equals: 0}]}]}', 1024),
  chat4k: filterCase('{when: [{bodyFields: [{path: /temperature, equals: 0}]}]}', 4096),
};

interface ProxyResult {
  cpuUsPerRequest: number;
  requestsPerSecond: number;
  nonOk: number;
}

async function proxyCases(): Promise<Record<string, ProxyResult> | { skipped: string }> {
  const wrk = which('wrk');
  if (!wrk) return { skipped: 'wrk not found' };
  installCleanup();
  const cpus = allowedCpus();
  const canPin = cpus.length >= 2 && which('taskset') !== undefined;
  const loadCpu = canPin ? cpus[0] : undefined;
  const proxyCpu = canPin ? cpus[1] : undefined;
  const clk = clockTicksPerSecond();
  const upstream = await startNodeChild({ args: ['--mode', 'hello'], cpu: loadCpu });
  const dir = tempDir('mg-bench-cache-');
  const out: Record<string, ProxyResult> = {};
  try {
    for (const [name, cache] of [
      ['proxied', ''],
      ['hit', '\n      cache: {shared: true}'],
    ] as const) {
      const table = compileYaml(`apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: {name: chat, namespace: bench}
spec:
  accessLog: {enabled: false}
  rules:
    - backends: [{name: b, urls: ["${upstream.url}"], modelRevision: v1}]${cache}
`);
      const file = path.join(dir, `${name}.json`);
      writeFileSync(file, JSON.stringify(table));
      const gw = await startNodeChild({ args: ['--mode', 'gateway', '--table', file], cpu: proxyCpu });
      try {
        // Warm up (and, with the cache, store the one answer every later request gets).
        await runWrk(wrk, `${gw.url}/v1/models/info`, { connections: 16, seconds: 1, cpu: loadCpu });
        const before = cpuTicks(gw.pid)!;
        const r = await runWrk(wrk, `${gw.url}/v1/models/info`, {
          connections: 16,
          seconds: PROXY_SECONDS,
          cpu: loadCpu,
        });
        const ticks = cpuTicks(gw.pid)! - before;
        out[name] = {
          cpuUsPerRequest: round(((ticks / clk) * 1e6) / r.requests, 1),
          requestsPerSecond: Math.round(r.requestsPerSecond),
          nonOk: r.nonOk,
        };
      } finally {
        await gw.exit();
      }
    }
  } finally {
    await upstream.exit();
  }
  return out;
}

const proxy = await proxyCases();

process.stdout.write(
  `${JSON.stringify(
    {
      bench: 'cache',
      node: process.version,
      quick: QUICK,
      budgetCpuUsPerHit: 30,
      filter,
      proxy,
      wallMs: Math.round(performance.now() - t0),
    },
    null,
    2,
  )}\n`,
);
