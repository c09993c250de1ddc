/**
 * bench/ratelimit-global: what a Global rate-limit check costs the proxy, against a real
 * redis-server on 127.0.0.1 started here (skipped, with a note, when redis-server is absent).
 *
 * A policy of two limits (per consumer and per route, amounts no run reaches), checked through
 * GlobalCounter exactly as the filter does:
 * - cpuUsPerCheck: this process's CPU (user + system) per check over N checks kept 32 in flight
 *   (the client side only; Redis runs in its own process);
 * - redisCallsPerCheck: script calls Redis counted (INFO commandstats: EVALSHA + EVAL) per check:
 *   the "one round trip" claim, counted rather than timed;
 * - latency: p50/p99 of one check at a time, against a PING measured the same way in the same run
 *   (the round trip floor): `overPing` near 1 means the check is one round trip plus the script.
 *
 *   node bench/ratelimit-global.ts            20,000 checks
 *   node bench/ratelimit-global.ts --quick     2,000 checks
 */
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { GlobalCounter } from '../src/dataplane/ratelimit/global-counter.ts';
import { RedisLimiter } from '../src/dataplane/ratelimit/redis/redis-limiter.ts';
import type { CompiledRateLimitPolicy } from '../src/routing-table/types.ts';
import { redisAvailable, startRedis } from '../test/support/redis-server.ts';

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false } } });
const N = values.quick ? 2_000 : 20_000;
const SEQUENTIAL = values.quick ? 300 : 3_000;
const IN_FLIGHT = 32;

function out(o: unknown): void {
  process.stdout.write(`${JSON.stringify(o, null, 2)}\n`);
}

if (!redisAvailable()) {
  out({ bench: 'ratelimit-global', skipped: 'redis-server not on PATH' });
  process.exit(0);
}

const policy: CompiledRateLimitPolicy = {
  id: 'bench/global',
  scope: 'Global',
  failureMode: 'FailClosed',
  limits: [
    {
      name: 'per-consumer',
      key: [{ type: 'Consumer' }],
      algorithm: 'TokenBucket',
      amount: 1_000_000_000,
      periodMs: 1000,
      burst: 0,
      cost: 'Requests',
      overrides: [],
    },
    {
      name: 'per-route',
      key: [{ type: 'Route' }],
      algorithm: 'SlidingWindow',
      amount: 1_000_000_000,
      periodMs: 60_000,
      burst: 0,
      cost: 'Requests',
      overrides: [],
    },
  ],
  onExceeded: { action: 'Reject' },
};

const redis = await startRedis();
const admin = new Redis(redis.url);
const limiter = new RedisLimiter({ url: redis.url, cluster: false }, { timeoutMs: 1000 });
try {
  await limiter.waitReady(5000);
  const counter = new GlobalCounter(policy, limiter);
  const charge = (i: number) => ({
    keys: [`tenant-${i % 1000}`, 'bench/chat'],
    amounts: [1_000_000_000, 1_000_000_000],
    costs: [1, 1],
  });
  const scriptCalls = async (): Promise<number> => {
    const info = await admin.info('commandstats');
    let calls = 0;
    for (const m of info.matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+)/g)) calls += Number(m[1]);
    return calls;
  };

  // Warm-up: loads the script, warms the JIT.
  for (let i = 0; i < 500; i++) await counter.take(charge(i));

  // CPU per check, IN_FLIGHT at a time.
  const callsBefore = await scriptCalls();
  let admitted = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < N) {
        const r = await counter.take(charge(next++));
        if (r.allowed) admitted++;
      }
    }),
  );
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const calls = (await scriptCalls()) - callsBefore;

  // Latency, one at a time, against PING.
  const timed = async (f: () => Promise<unknown>): Promise<number[]> => {
    const xs: number[] = [];
    for (let i = 0; i < SEQUENTIAL; i++) {
      const s = performance.now();
      await f();
      xs.push((performance.now() - s) * 1000);
    }
    return xs.sort((a, b) => a - b);
  };
  const pct = (xs: number[], p: number) =>
    Math.round(xs[Math.min(xs.length - 1, Math.floor(p * xs.length))]!);
  let j = 0;
  const check = await timed(() => counter.take(charge(j++)));
  const ping = await timed(() => admin.ping());

  out({
    bench: 'ratelimit-global',
    node: process.version,
    limitsPerCheck: policy.limits.length,
    checks: N,
    inFlight: IN_FLIGHT,
    admittedShare: +(admitted / N).toFixed(3),
    cpuUsPerCheck: +((cpu.user + cpu.system) / N).toFixed(2),
    checksPerSecond: Math.round(N / (wallMs / 1000)),
    redisCallsPerCheck: +(calls / N).toFixed(3),
    latencyUs: {
      checkP50: pct(check, 0.5),
      checkP99: pct(check, 0.99),
      pingP50: pct(ping, 0.5),
      pingP99: pct(ping, 0.99),
      overPing: +(pct(check, 0.5) / Math.max(1, pct(ping, 0.5))).toFixed(2),
    },
    targets: { cpuUsPerCheck: 30, redisCallsPerCheck: 1 },
  });
} finally {
  admin.disconnect();
  await limiter.close();
  await redis.close();
}
