import assert from 'node:assert/strict';
import { test } from 'node:test';
import { slidingWindow as sw } from '../../../../src/dataplane/ratelimit/sliding-window.ts';
import { type LimitState, newLimitState } from '../../../../src/dataplane/ratelimit/types.ts';
import { clone, d, lim, takes } from './helpers.ts';

const l4 = lim(4, 1000);

/** A state with 4 counted in window [0, 1000). */
function fullPrevious(): LimitState {
  const s = newLimitState();
  takes(sw, s, 0, l4, [1, 1, 1, 1]);
  return s;
}

test('sliding window: within the first window it counts like a fixed window', () => {
  const s = newLimitState();
  assert.deepEqual(sw.take(s, 1, 0, l4), d(true, 3, 2000, 0));
  assert.deepEqual(takes(sw, s, 0, l4, [1, 1, 1]), [true, true, true]);
  // The 4 just counted weigh fully until 1000, then fade out over [1000, 2000): the 5th unit fits
  // once the estimate 4 × (1 − f) drops to 3, a quarter into the next window.
  assert.deepEqual(sw.take(s, 1, 0, l4), d(false, 0, 2000, 1250));
  assert.deepEqual(sw.take(s, 1, 999, l4), d(false, 0, 1001, 251));
});

test('sliding window: the previous window weighs by the share of it still inside the period', () => {
  // 25% into the next window the previous 4 count as 3: one more.
  let s = fullPrevious();
  assert.deepEqual(sw.take(s, 1, 1249, l4), d(false, 0, 751, 1));
  assert.deepEqual(sw.take(s, 1, 1250, l4), d(true, 0, 1750, 0));
  assert.deepEqual(sw.take(s, 1, 1250, l4), d(false, 0, 1750, 250));
  // 50%: they count as 2.
  s = fullPrevious();
  assert.deepEqual(takes(sw, s, 1500, l4, [1, 1, 1]), [true, true, false]);
  assert.deepEqual(sw.take(s, 1, 1500, l4), d(false, 0, 1500, 250));
  // 75%: they count as 1.
  s = fullPrevious();
  assert.deepEqual(takes(sw, s, 1750, l4, [1, 1, 1, 1]), [true, true, true, false]);
  // Just before the boundary the previous window still weighs a little; at it, the 3 counted
  // here become the previous window at full weight: room for 1.
  assert.deepEqual(takes(sw, s, 1999, l4, [1]), [false]);
  assert.deepEqual(takes(sw, s, 2000, l4, [1, 1]), [true, false]);
});

test('sliding window: fractional estimates, remaining is what fits right now', () => {
  const l = lim(100, 1000);
  const s = newLimitState();
  assert.equal(sw.take(s, 100, 0, l).allowed, true);
  // At 1333 the previous 100 count as 66.7: 33 units fit, not 34.
  assert.deepEqual(sw.peek(s, 0, 1333, l), d(true, 33, 667, 0));
  assert.deepEqual(sw.take(s, 34, 1333, l), d(false, 33, 667, 7));
  assert.deepEqual(sw.take(s, 33, 1333, l), d(true, 0, 1667, 0));
});

test('sliding window: refill granularity at an integer millisecond boundary', () => {
  const l = lim(3, 1000);
  const s = newLimitState();
  takes(sw, s, 0, l, [1, 1, 1]);
  // 3 × (1 − e/1000) ≤ 2 first holds at e = 334 (333.3 rounded up).
  assert.deepEqual(sw.take(s, 1, 0, l), d(false, 0, 2000, 1334));
  assert.equal(sw.take(s, 1, 1333, l).allowed, false);
  assert.equal(sw.take(s, 1, 1334, l).allowed, true);
});

test('sliding window: two idle windows forget everything', () => {
  const s = fullPrevious();
  assert.deepEqual(sw.peek(s, 0, 2000, l4), d(true, 4, 0, 0));
  assert.deepEqual(takes(sw, s, 2000, l4, [1, 1, 1, 1, 1]), [true, true, true, true, false]);
  assert.equal(sw.isFull(s, 3999, l4), false);
  assert.equal(sw.isFull(s, 4000, l4), true);
});

test('sliding window: cost above 1, above the amount, and amount 0', () => {
  const l = lim(10, 1000);
  const s = newLimitState();
  assert.deepEqual(sw.take(s, 6, 0, l), d(true, 4, 2000, 0));
  assert.deepEqual(sw.take(s, 11, 0, l), d(false, 4, 2000, Infinity));
  // 5 more fit once 6 × (1 − f) ≤ 5: f = 1/6, 167 ms into the next window.
  assert.deepEqual(sw.take(s, 5, 0, l), d(false, 4, 2000, 1167));
  assert.deepEqual(sw.take(s, 4, 0, l), d(true, 0, 2000, 0));
  assert.deepEqual(sw.take(s, 1, 0, l, 0), d(false, 0, 0, Infinity));
});

test('sliding window: a refused take consumes nothing; peek never consumes', () => {
  const s = fullPrevious();
  sw.take(s, 1, 1000, l4); // rolls into the next window
  const before = clone(s);
  sw.take(s, 1, 1001, l4);
  sw.take(s, 4, 1001, l4);
  sw.peek(s, 1, 1001, l4);
  assert.deepEqual(s, before);
});

test('sliding window: adjust upward carries the debt into later windows, continuously', () => {
  const l = lim(10, 1000);
  const s = newLimitState();
  sw.take(s, 10, 0, l);
  sw.adjust(s, 15, 0, l); // 25 counted: 10 in [0,1000), 10 spill into the next, 5 into the one after
  // Fully clear once the 5 spilled into [2000, 3000) have faded out over [3000, 4000).
  assert.deepEqual(sw.peek(s, 0, 0, l), d(false, 0, 4000, 2500));
  // The estimate is continuous: 25 just before and just after the boundary.
  assert.deepEqual(sw.peek(s, 0, 999, l), d(false, 0, 3001, 1501));
  assert.deepEqual(sw.peek(s, 0, 1000, l), d(false, 0, 3000, 1500));
  // At 2500: 10 × 0.5 + 5 = 10 — nothing left; one unit fits at 2600 (10 × 0.4 + 5 + 1 = 10).
  assert.deepEqual(sw.peek(s, 0, 2500, l), d(true, 0, 1500, 0));
  assert.deepEqual(sw.take(s, 1, 2500, l), d(false, 0, 1500, 100));
  assert.equal(sw.take(s, 1, 2599, l).allowed, false);
  assert.deepEqual(sw.take(s, 1, 2600, l), d(true, 0, 1400, 0));
});

test('sliding window: adjust downward refunds, crossing a boundary too', () => {
  const s = newLimitState();
  sw.take(s, 4, 0, l4); // reserved 4
  sw.adjust(s, -3, 10, l4); // used 1
  assert.deepEqual(takes(sw, s, 10, l4, [3, 1]), [true, false]);
  // A reservation made before the boundary sits in the previous window's count afterwards; the
  // refund comes off it there.
  const t = newLimitState();
  sw.take(t, 4, 900, l4);
  sw.adjust(t, -4, 1100, l4);
  assert.deepEqual(sw.peek(t, 0, 1100, l4), d(true, 4, 0, 0));
  // Partly from the current window, the rest from the previous one; never below empty.
  const u = newLimitState();
  sw.take(u, 4, 900, l4);
  sw.take(u, 1, 1500, l4); // 4 × 0.5 + 1 = 3
  sw.adjust(u, -3, 1500, l4); // current 1 → 0, previous 4 → 2: estimate 2 × 0.5 = 1
  assert.deepEqual(sw.peek(u, 0, 1500, l4), d(true, 3, 500, 0));
  sw.adjust(u, -100, 1500, l4);
  assert.deepEqual(sw.peek(u, 0, 1500, l4), d(true, 4, 0, 0));
});

test('sliding window: undoing a take with adjust(-cost) at the same time restores the state', () => {
  const s = fullPrevious();
  sw.take(s, 1, 1600, l4);
  const before = clone(s);
  sw.take(s, 1, 1700, l4);
  sw.adjust(s, -1, 1700, l4);
  assert.deepEqual(s, before);
});
