/**
 * Seeded property tests of the three algorithms over random sequences of (advance, cost) and
 * adjustments: the admission bounds each algorithm promises, and that every number a decision
 * reports (remaining, retryAfterMs, resetMs) is exact — acting on it one millisecond or one unit
 * earlier fails, acting on it exactly succeeds.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { fixedWindow, slidingWindow, tokenBucket } from '../../../../src/dataplane/ratelimit/algorithms.ts';
import type { Algorithm, LimitParams, LimitState } from '../../../../src/dataplane/ratelimit/types.ts';
import { newLimitState } from '../../../../src/dataplane/ratelimit/types.ts';
import { clone } from './helpers.ts';

const RUNS = { seed: 42, numRuns: 300 };

const ALGORITHMS: [string, Algorithm][] = [
  ['FixedWindow', fixedWindow],
  ['SlidingWindow', slidingWindow],
  ['TokenBucket', tokenBucket],
];

const params = fc.record({
  amount: fc.oneof(fc.integer({ min: 1, max: 10 }), fc.integer({ min: 11, max: 1_000_000 })),
  periodMs: fc.oneof(fc.constantFrom(1, 7, 100, 333, 1000, 1500), fc.integer({ min: 1, max: 3_600_000 })),
  burst: fc.integer({ min: 0, max: 4 }),
});

/** Costs and adjustments in units of about amount / 8, so large amounts see meaningful requests. */
interface Op {
  advance: number;
  kind: 'take' | 'adjust';
  units: number;
}
const op = fc.record({
  advance: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 5000 })),
  kind: fc.constantFrom<Op['kind']>('take', 'take', 'take', 'adjust'),
  // Mostly small costs (so that most takes are decided by the state, not by cost > capacity).
  units: fc.oneof(
    { arbitrary: fc.integer({ min: 0, max: 3 }), weight: 3 },
    { arbitrary: fc.integer({ min: -10, max: 14 }), weight: 1 },
  ),
});
const ops = fc.array(op, { minLength: 1, maxLength: 120, size: 'large' });

function unitOf(limit: LimitParams): number {
  return Math.max(1, Math.floor(limit.amount / 8));
}

/** Scales advances to the period so that long periods still see several windows. */
function advanceOf(o: Op, limit: LimitParams): number {
  return limit.periodMs > 5000 ? Math.floor((o.advance * limit.periodMs) / 2000) : o.advance;
}

/** Runs takes only and returns the admitted (time, cost) pairs. */
function admitted(alg: Algorithm, limit: LimitParams, list: Op[]): [number, number][] {
  const s = newLimitState();
  const unit = unitOf(limit);
  const out: [number, number][] = [];
  let now = 0;
  for (const o of list) {
    now += advanceOf(o, limit);
    const cost = Math.abs(o.units) * unit;
    if (alg.take(s, cost, now, limit).allowed) out.push([now, cost]);
  }
  return out;
}

test('FixedWindow: admitted units in any aligned window never exceed the amount', () => {
  fc.assert(
    fc.property(params, ops, (limit, list) => {
      const perWindow = new Map<number, number>();
      for (const [t, c] of admitted(fixedWindow, limit, list)) {
        const w = Math.floor(t / limit.periodMs);
        perWindow.set(w, (perWindow.get(w) ?? 0) + c);
      }
      for (const [w, sum] of perWindow) assert.ok(sum <= limit.amount, `window ${w}: ${sum}`);
    }),
    RUNS,
  );
});

test('SlidingWindow: ≤ amount per aligned window, ≤ 2 × amount in any interval of one period', () => {
  fc.assert(
    fc.property(params, ops, (limit, list) => {
      const events = admitted(slidingWindow, limit, list);
      const perWindow = new Map<number, number>();
      for (const [t, c] of events) {
        const w = Math.floor(t / limit.periodMs);
        perWindow.set(w, (perWindow.get(w) ?? 0) + c);
      }
      for (const [w, sum] of perWindow) assert.ok(sum <= limit.amount, `window ${w}: ${sum}`);
      for (const [t] of events) {
        let sum = 0;
        for (const [u, c] of events) if (u > t - limit.periodMs && u <= t) sum += c;
        assert.ok(sum <= 2 * limit.amount, `(${t - limit.periodMs}, ${t}]: ${sum}`);
      }
    }),
    RUNS,
  );
});

test('TokenBucket: admitted units over [t1, t2] never exceed capacity + refill over t2 − t1', () => {
  fc.assert(
    fc.property(params, ops, (limit, list) => {
      const events = admitted(tokenBucket, limit, list);
      const capacity = limit.amount + limit.burst;
      for (let i = 0; i < events.length; i++) {
        const t1 = events[i]![0];
        let sum = 0;
        for (let j = 0; j < events.length; j++) {
          const [t2, c] = events[j]!;
          if (t2 < t1) continue;
          sum += c;
          // Scaled by the period so that the comparison is exact.
          if (j >= i && events[j + 1]?.[0] !== t2) {
            assert.ok(
              sum * limit.periodMs <= capacity * limit.periodMs + (t2 - t1) * limit.amount,
              `[${t1}, ${t2}]: ${sum}`,
            );
          }
        }
      }
    }),
    RUNS,
  );
});

/** Runs takes and adjustments, calling `check` with the state before each take and the decision. */
function exercise(
  alg: Algorithm,
  limit: LimitParams,
  list: Op[],
  check: (before: LimitState, cost: number, now: number, after: LimitState) => void,
): void {
  const s = newLimitState();
  const unit = unitOf(limit);
  let now = 0;
  for (const o of list) {
    now += advanceOf(o, limit);
    if (o.kind === 'adjust') {
      alg.adjust(s, o.units * unit, now, limit);
      continue;
    }
    const cost = Math.abs(o.units) * unit;
    const before = clone(s);
    alg.take(s, cost, now, limit);
    check(before, cost, now, s);
  }
}

for (const [name, alg] of ALGORITHMS) {
  test(`${name}: retryAfterMs is exact — refused 1 ms earlier, admitted then and later`, () => {
    fc.assert(
      fc.property(params, ops, fc.integer({ min: 0, max: 10_000 }), (limit, list, extra) => {
        const capacity = alg === tokenBucket ? limit.amount + limit.burst : limit.amount;
        exercise(alg, limit, list, (before, cost, now) => {
          const probe = clone(before);
          const dec = alg.take(probe, cost, now, limit);
          if (dec.allowed) return assert.equal(dec.retryAfterMs, 0);
          if (!Number.isFinite(dec.retryAfterMs)) return assert.ok(cost > capacity);
          assert.ok(Number.isInteger(dec.retryAfterMs) && dec.retryAfterMs >= 1);
          assert.equal(alg.peek(probe, cost, now + dec.retryAfterMs - 1, limit).allowed, false);
          assert.equal(alg.peek(probe, cost, now + dec.retryAfterMs, limit).allowed, true);
          assert.equal(alg.peek(probe, cost, now + dec.retryAfterMs + extra, limit).allowed, true);
        });
      }),
      RUNS,
    );
  });

  test(`${name}: remaining is exact — that many unit requests fit right now, and no more`, () => {
    fc.assert(
      fc.property(params, ops, (limit, list) => {
        // Unit costs only make sense for small amounts; large ones are covered by the others.
        const small = { ...limit, amount: Math.min(limit.amount, 12) };
        exercise(alg, small, list, (before, cost, now) => {
          const probe = clone(before);
          const dec = alg.take(probe, cost, now, small);
          assert.ok(Number.isInteger(dec.remaining) && dec.remaining >= 0);
          for (let i = 0; i < dec.remaining; i++) assert.equal(alg.take(probe, 1, now, small).allowed, true);
          assert.equal(alg.take(probe, 1, now, small).allowed, false);
        });
      }),
      RUNS,
    );
  });

  test(`${name}: resetMs is exact — full then, not 1 ms before`, () => {
    fc.assert(
      fc.property(params, ops, (limit, list) => {
        exercise(alg, limit, list, (before, cost, now) => {
          const probe = clone(before);
          const dec = alg.take(probe, cost, now, limit);
          assert.ok(Number.isInteger(dec.resetMs) && dec.resetMs >= 0);
          if (dec.resetMs > 0) assert.equal(alg.isFull(clone(probe), now + dec.resetMs - 1, limit), false);
          assert.equal(alg.isFull(probe, now + dec.resetMs, limit), true);
        });
      }),
      RUNS,
    );
  });

  test(`${name}: take = peek then consume; a refusal consumes nothing; adjust(-cost) undoes a take`, () => {
    fc.assert(
      fc.property(params, ops, (limit, list) => {
        exercise(alg, limit, list, (before, cost, now, after) => {
          const viaPeek = clone(before);
          const peeked = alg.peek(viaPeek, cost, now, limit);
          const taken = alg.take(viaPeek, cost, now, limit);
          assert.deepEqual(peeked, taken);
          assert.deepEqual(viaPeek, after);
          const again = clone(after);
          const second = alg.take(again, cost, now, limit);
          if (!taken.allowed) {
            assert.deepEqual(second, taken);
            assert.deepEqual(again, after);
          }
          if (taken.allowed) {
            // Normalise the state at `now` first: rolling windows changes the representation only.
            const base = clone(before);
            alg.peek(base, 0, now, limit);
            const undone = clone(after);
            alg.adjust(undone, -cost, now, limit);
            assert.deepEqual(undone, base);
          }
        });
      }),
      RUNS,
    );
  });
}
