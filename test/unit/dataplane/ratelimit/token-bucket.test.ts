import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tokenBucket as tb } from '../../../../src/dataplane/ratelimit/token-bucket.ts';
import { newLimitState } from '../../../../src/dataplane/ratelimit/types.ts';
import { clone, d, lim, takes } from './helpers.ts';

test('token bucket: 3 per 1000 ms starts full, then refills one token every 333.3 ms', () => {
  const l = lim(3, 1000);
  const s = newLimitState();
  assert.deepEqual(tb.take(s, 1, 0, l), d(true, 2, 334, 0));
  assert.deepEqual(tb.take(s, 1, 0, l), d(true, 1, 667, 0));
  assert.deepEqual(tb.take(s, 1, 0, l), d(true, 0, 1000, 0));
  assert.deepEqual(tb.take(s, 1, 0, l), d(false, 0, 1000, 334));
  // Refill granularity: a token is whole at ceil(k × 1000 / 3) ms, never a millisecond early.
  assert.deepEqual(tb.take(s, 1, 333, l), d(false, 0, 667, 1));
  assert.deepEqual(tb.take(s, 1, 334, l), d(true, 0, 1000, 0));
  assert.deepEqual(tb.take(s, 1, 666, l), d(false, 0, 668, 1));
  assert.deepEqual(tb.take(s, 1, 667, l), d(true, 0, 1000, 0));
  assert.deepEqual(tb.take(s, 1, 999, l), d(false, 0, 668, 1));
  assert.deepEqual(tb.take(s, 1, 1000, l), d(true, 0, 1000, 0));
  // Unlike a window, an idle second refills exactly the amount, no more.
  assert.deepEqual(takes(tb, s, 2000, l, [1, 1, 1, 1]), [true, true, true, false]);
});

test('token bucket: burst raises the capacity, not the rate', () => {
  const l = lim(2, 1000, 3); // holds 5, refills 2 per second (one per 500 ms)
  const s = newLimitState();
  assert.deepEqual(tb.take(s, 1, 0, l), d(true, 4, 500, 0));
  assert.deepEqual(takes(tb, s, 0, l, [1, 1, 1, 1, 1]), [true, true, true, true, false]);
  assert.deepEqual(tb.take(s, 1, 0, l), d(false, 0, 2500, 500));
  for (let t = 500; t <= 3000; t += 500) {
    assert.deepEqual(takes(tb, s, t, l, [1, 1]), [true, false], `at ${t}`);
  }
  // Idle long enough and it holds amount + burst again, never more.
  assert.deepEqual(tb.take(s, 1, 60_000, l), d(true, 4, 500, 0));
});

test('token bucket: cost above 1 waits for the missing tokens only', () => {
  const l = lim(10, 1000); // a token per 100 ms
  const s = newLimitState();
  assert.deepEqual(tb.take(s, 7, 0, l), d(true, 3, 700, 0));
  assert.deepEqual(tb.take(s, 5, 0, l), d(false, 3, 700, 200));
  assert.equal(tb.take(s, 5, 199, l).allowed, false);
  assert.deepEqual(tb.take(s, 5, 200, l), d(true, 0, 1000, 0));
});

test('token bucket: cost above capacity and amount 0 are never admitted', () => {
  const l = lim(10, 1000, 5);
  const s = newLimitState();
  assert.deepEqual(tb.take(s, 16, 0, l), d(false, 15, 0, Infinity));
  assert.deepEqual(tb.take(s, 15, 0, l), d(true, 0, 1500, 0));
  // amount 0 has no refill: even with a burst it refuses.
  assert.deepEqual(tb.take(newLimitState(), 1, 0, l, 0), d(false, 0, 0, Infinity));
});

test('token bucket: overrides change capacity and rate per call', () => {
  const l = lim(10, 1000);
  const s = newLimitState();
  // A tier with amount 100: 100 per second from the same state.
  assert.deepEqual(tb.take(s, 50, 0, l, 100), d(true, 50, 500, 0));
  assert.deepEqual(tb.take(s, 60, 0, l, 100), d(false, 50, 500, 100));
});

test('token bucket: a refused take consumes nothing; peek never consumes', () => {
  const l = lim(3, 1000);
  const s = newLimitState();
  takes(tb, s, 0, l, [1, 1, 1]);
  tb.take(s, 1, 100, l);
  const before = clone(s);
  tb.take(s, 1, 100, l);
  tb.peek(s, 0, 100, l);
  assert.deepEqual(s, before);
});

test('token bucket: adjust upward takes the bucket below zero; refill pays the debt first', () => {
  const l = lim(10, 1000);
  const s = newLimitState();
  tb.take(s, 10, 0, l); // reserved 10
  tb.adjust(s, 10, 0, l); // used 20: 10 tokens owed
  assert.deepEqual(tb.peek(s, 0, 0, l), d(false, 0, 2000, 1000));
  assert.deepEqual(tb.take(s, 1, 0, l), d(false, 0, 2000, 1100));
  assert.equal(tb.take(s, 1, 1099, l).allowed, false);
  assert.deepEqual(tb.take(s, 1, 1100, l), d(true, 0, 1000, 0));
});

test('token bucket: adjust downward refunds, never beyond capacity', () => {
  const l = lim(10, 1000);
  const s = newLimitState();
  tb.take(s, 10, 0, l);
  tb.adjust(s, -4, 0, l);
  assert.deepEqual(takes(tb, s, 0, l, [4, 1]), [true, false]);
  tb.adjust(s, -100, 0, l);
  assert.deepEqual(tb.take(s, 1, 0, l), d(true, 9, 100, 0));
  assert.equal(tb.isFull(s, 99, l), false);
  assert.equal(tb.isFull(s, 100, l), true);
});

test('token bucket: undoing a take with adjust(-cost) at the same time restores the state', () => {
  const l = lim(3, 1000);
  const s = newLimitState();
  tb.take(s, 2, 0, l);
  tb.take(s, 1, 500, l);
  const before = clone(s);
  tb.take(s, 1, 500, l);
  tb.adjust(s, -1, 500, l);
  assert.deepEqual(s, before);
});

test('token bucket: a clock that steps back refills nothing and does not double-count later', () => {
  const l = lim(10, 1000);
  const s = newLimitState();
  tb.take(s, 10, 1000, l);
  assert.equal(tb.take(s, 1, 500, l).allowed, false);
  assert.deepEqual(tb.take(s, 1, 1100, l), d(true, 0, 1000, 0));
  assert.equal(tb.take(s, 1, 1100, l).allowed, false);
});
