/**
 * The Redis scripts decide exactly like the in-process algorithms: seeded pseudo-random sequences
 * of takes (varying costs and effective amounts, including amount 0 and costs above capacity) and
 * adjustments (charges and refunds), at integer fake times passed to the scripts, against a real
 * redis-server; every decision must equal the JS algorithm's on a newLimitState(). Also checks that
 * a key Redis dropped is one the JS state considers full, and that kept keys have a TTL.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { type AlgorithmName, algorithmFor } from '../../../../../src/dataplane/ratelimit/algorithms.ts';
import {
  type GlobalCheck,
  RedisLimiter,
} from '../../../../../src/dataplane/ratelimit/redis/redis-limiter.ts';
import type { Decision, LimitParams, LimitState } from '../../../../../src/dataplane/ratelimit/types.ts';
import { newLimitState } from '../../../../../src/dataplane/ratelimit/types.ts';
import { skipWithoutRedis, startRedis, type TestRedis } from '../../../../support/redis-server.ts';

/** mulberry32: a tiny seeded PRNG (uniform in [0, 1)). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(rand: () => number, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)]!;
}

function int(rand: () => number, min: number, max: number): number {
  return min + Math.floor(rand() * (max - min + 1));
}

const ALGORITHMS: AlgorithmName[] = ['FixedWindow', 'SlidingWindow', 'TokenBucket'];
const PERIODS = [1, 7, 100, 1000, 3_600_000];
const BASES = [1, 3, 10, 1000];
const OPS_PER_RUN = 80;

const skip = skipWithoutRedis();

function clone(s: LimitState): LimitState {
  return { start: s.start, used: s.used, prev: s.prev };
}

/** Clock shared by the limiter and the JS side. */
let now = 1_700_000_000_000;

/** One limit under test: its parameters, its JS state and its Redis key. */
interface Lane {
  algorithm: AlgorithmName;
  limit: LimitParams;
  state: LimitState;
  key: string;
  unit: number;
}

function lane(rand: () => number, algorithm: AlgorithmName, key: string): Lane {
  const amount = pick(rand, BASES);
  const limit = {
    amount,
    periodMs: pick(rand, PERIODS),
    burst: algorithm === 'TokenBucket' ? int(rand, 0, 3) : 0,
  };
  return { algorithm, limit, state: newLimitState(), key, unit: Math.max(1, Math.floor(amount / 8)) };
}

/** An effective amount: usually the limit's, sometimes an override tier, rarely 0. */
function amountOf(rand: () => number, l: Lane): number {
  const r = rand();
  if (r < 0.04) return 0;
  if (r < 0.2) return l.limit.amount * 2;
  if (r < 0.3) return Math.max(1, Math.floor(l.limit.amount / 2));
  return l.limit.amount;
}

/** Mostly small costs; sometimes large ones (beyond capacity: retryAfter Infinity). */
function costOf(rand: () => number, l: Lane): number {
  const r = rand();
  if (r < 0.08) return l.limit.amount * 3 + l.limit.burst + 1;
  if (r < 0.25) return int(rand, 0, 10) * l.unit;
  return int(rand, 0, 3) * l.unit;
}

function advance(rand: () => number, periodMs: number): number {
  const r = rand();
  if (r < 0.3) return 0;
  if (r < 0.55) return int(rand, 1, 3);
  if (r < 0.85) return int(rand, 0, Math.max(1, Math.floor(periodMs / 2)));
  return int(rand, 0, periodMs * 3);
}

function check(l: Lane, amount: number, cost: number): GlobalCheck {
  return {
    algorithm: l.algorithm,
    amount,
    periodMs: l.limit.periodMs,
    burst: l.limit.burst,
    cost,
    key: l.key,
  };
}

describe('Redis scripts ≡ JS algorithms', { skip }, () => {
  let server: TestRedis;
  let limiter: RedisLimiter;
  let raw: Redis;

  before(async () => {
    server = await startRedis();
    // A generous timeout: this test is about decisions, not latency (the machine may be loaded).
    limiter = new RedisLimiter({ url: server.url, cluster: false }, { timeoutMs: 10_000, now: () => now });
    raw = new Redis({ host: '127.0.0.1', port: server.port });
    raw.on('error', () => {});
    assert.equal(await limiter.waitReady(10_000), true);
  });

  after(async () => {
    raw.disconnect();
    await limiter.close();
    await server.close();
  });

  /** A key Redis does not hold must be one whose JS state is full (same as no state). */
  async function checkStorage(l: Lane, amount: number, context: string): Promise<void> {
    const ttl = await raw.pttl(l.key);
    if (ttl === -2) {
      const full = algorithmFor(l.algorithm).isFull(clone(l.state), now, l.limit, amount);
      assert.ok(full, `${context}: key dropped but JS state not full: ${JSON.stringify(l.state)}`);
    } else {
      assert.ok(ttl > 0, `${context}: key without TTL (${ttl})`);
    }
  }

  for (const algorithm of ALGORITHMS) {
    test(`${algorithm}: takes and adjusts decide the same`, async () => {
      let ops = 0;
      const seen = { allowed: 0, refused: 0, never: 0, charges: 0, refunds: 0 };
      for (let run = 0; run < 8; run++) {
        const rand = prng(1000 * ALGORITHMS.indexOf(algorithm) + run + 1);
        const l = lane(rand, algorithm, `eq:${algorithm}:${run}`);
        l.limit.periodMs = PERIODS[run % PERIODS.length]!;
        const alg = algorithmFor(algorithm);
        for (let i = 0; i < OPS_PER_RUN; i++, ops++) {
          now += advance(rand, l.limit.periodMs);
          const amount = amountOf(rand, l);
          const context = `${algorithm} run ${run} op ${i} at ${now} ${JSON.stringify(l.limit)} amount ${amount}`;
          if (rand() < 0.7) {
            const cost = costOf(rand, l);
            const got = await limiter.take([check(l, amount, cost)]);
            const want = alg.take(l.state, cost, now, l.limit, amount);
            assert.deepEqual(got.decisions[0], want, `${context} take ${cost}`);
            assert.equal(got.allowed, want.allowed, context);
            if (want.allowed) seen.allowed++;
            else if (want.retryAfterMs === Infinity) seen.never++;
            else seen.refused++;
          } else {
            const delta = (rand() < 0.5 ? -1 : 1) * int(rand, 0, 10) * l.unit;
            if (delta > 0) seen.charges++;
            else if (delta < 0) seen.refunds++;
            await limiter.adjust(check(l, amount, 0), delta);
            alg.adjust(l.state, delta, now, l.limit, amount);
          }
          await checkStorage(l, amount, context);
        }
      }
      assert.ok(ops >= 600);
      // The sequences exercise every kind of outcome.
      for (const [kind, count] of Object.entries(seen)) assert.ok(count >= 20, `${kind}: ${count}`);
    });
  }

  test('a refusal keeps the rolled state, as the JS does (amount changing between calls)', async () => {
    // Rolling forward pays back `amount` per window passed, with the amount of that call: with
    // an amount that changes between calls, where the roll happened matters.
    for (const algorithm of ALGORITHMS) {
      const l: Lane = {
        algorithm,
        limit: { amount: 10, periodMs: 1000, burst: 0 },
        state: newLimitState(),
        key: `eq:roll:${algorithm}`,
        unit: 1,
      };
      const alg = algorithmFor(algorithm);
      now = Math.ceil(now / 1000) * 1000 + 1000;
      const steps: [advance: number, amount: number, op: 'take' | 'adjust', n: number][] = [
        [0, 10, 'adjust', 35],
        [1000, 1, 'take', 1],
        [1000, 1, 'take', 1],
        [1000, 10, 'take', 1],
        [500, 10, 'take', 1],
        [1000, 10, 'take', 1],
        [1000, 10, 'take', 1],
      ];
      for (const [i, [dt, amount, op, n]] of steps.entries()) {
        now += dt;
        if (op === 'adjust') {
          await limiter.adjust(check(l, amount, 0), n);
          alg.adjust(l.state, n, now, l.limit, amount);
          continue;
        }
        const got = await limiter.take([check(l, amount, n)]);
        assert.deepEqual(
          got.decisions[0],
          alg.take(l.state, n, now, l.limit, amount),
          `${algorithm} step ${i}`,
        );
      }
    }
  });

  test('all or nothing over three limits decides like peek-all-then-take-all', async () => {
    const rand = prng(77);
    const lanes = ALGORITHMS.map((a, i) => lane(rand, a, `eq:multi:{t}:${i}`));
    // Sometimes refused by one limit only: the others must not consume.
    let refusedWithSomeAdmitting = 0;
    for (let i = 0; i < 400; i++) {
      now += advance(rand, pick(rand, lanes).limit.periodMs);
      const amounts = lanes.map((l) => amountOf(rand, l));
      const costs = lanes.map((l) => costOf(rand, l));
      const context = `multi op ${i} at ${now} amounts ${amounts} costs ${costs}`;
      if (rand() < 0.8) {
        const got = await limiter.take(lanes.map((l, j) => check(l, amounts[j]!, costs[j]!)));
        const want: Decision[] = lanes.map((l, j) =>
          algorithmFor(l.algorithm).peek(l.state, costs[j]!, now, l.limit, amounts[j]!),
        );
        const all = want.every((d) => d.allowed);
        if (all) {
          lanes.forEach((l, j) => {
            const d = algorithmFor(l.algorithm).take(l.state, costs[j]!, now, l.limit, amounts[j]!);
            assert.deepEqual(d, want[j], `${context}: take differs from peek`);
          });
        } else if (want.some((d) => d.allowed)) {
          refusedWithSomeAdmitting++;
        }
        assert.equal(got.allowed, all, context);
        assert.deepEqual(got.decisions, want, context);
      } else {
        const j = int(rand, 0, lanes.length - 1);
        const l = lanes[j]!;
        const delta = (rand() < 0.5 ? -1 : 1) * int(rand, 0, 10) * l.unit;
        await limiter.adjust(check(l, amounts[j]!, 0), delta);
        algorithmFor(l.algorithm).adjust(l.state, delta, now, l.limit, amounts[j]!);
      }
      for (const [j, l] of lanes.entries()) await checkStorage(l, amounts[j]!, `${context} limit ${j}`);
    }
    assert.ok(refusedWithSomeAdmitting > 10, `only ${refusedWithSomeAdmitting} partial refusals exercised`);
  });
});
