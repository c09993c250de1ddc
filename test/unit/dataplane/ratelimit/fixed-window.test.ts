import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fixedWindow as fw } from '../../../../src/dataplane/ratelimit/fixed-window.ts';
import { newLimitState } from '../../../../src/dataplane/ratelimit/types.ts';
import { clone, d, lim, takes } from './helpers.ts';

test('fixed window: 3 per 1000 ms, exact sequence with remaining, reset and retry', () => {
  const l = lim(3, 1000);
  const s = newLimitState();
  let now = 0;
  assert.deepEqual(fw.take(s, 1, now, l), d(true, 2, 1000, 0));
  assert.deepEqual(fw.take(s, 1, now, l), d(true, 1, 1000, 0));
  assert.deepEqual(fw.take(s, 1, now, l), d(true, 0, 1000, 0));
  assert.deepEqual(fw.take(s, 1, now, l), d(false, 0, 1000, 1000));
  now = 999;
  assert.deepEqual(fw.take(s, 1, now, l), d(false, 0, 1, 1));
  now = 1000;
  assert.deepEqual(fw.take(s, 1, now, l), d(true, 2, 1000, 0));
  assert.deepEqual(takes(fw, s, now, l, [1, 1, 1]), [true, true, false]);
  now = 1500;
  assert.deepEqual(fw.take(s, 1, now, l), d(false, 0, 500, 500));
  now = 2000;
  assert.deepEqual(takes(fw, s, now, l, [1, 1, 1, 1]), [true, true, true, false]);
});

test('fixed window: windows are aligned on multiples of the period, not on the first request', () => {
  const l = lim(2, 1000);
  const s = newLimitState();
  assert.deepEqual(fw.take(s, 1, 250, l), d(true, 1, 750, 0));
  assert.deepEqual(fw.take(s, 1, 900, l), d(true, 0, 100, 0));
  assert.deepEqual(fw.take(s, 1, 900, l), d(false, 0, 100, 100));
  // The boundary burst FixedWindow is known for: 2 at 999 and 2 more at 1000.
  const t = newLimitState();
  assert.deepEqual(takes(fw, t, 999, l, [1, 1, 1]), [true, true, false]);
  assert.deepEqual(takes(fw, t, 1000, l, [1, 1, 1]), [true, true, false]);
});

test('fixed window: idle windows leave the quota full', () => {
  const l = lim(3, 1000);
  const s = newLimitState();
  takes(fw, s, 0, l, [1, 1, 1]);
  assert.deepEqual(fw.take(s, 1, 5_432, l), d(true, 2, 568, 0));
  assert.equal(fw.isFull(s, 6_000, l), true);
});

test('fixed window: cost above 1, and above the amount (never admitted, nothing consumed)', () => {
  const l = lim(10, 1000);
  const s = newLimitState();
  assert.deepEqual(fw.take(s, 7, 0, l), d(true, 3, 1000, 0));
  assert.deepEqual(fw.take(s, 4, 0, l), d(false, 3, 1000, 1000));
  assert.deepEqual(fw.take(s, 11, 0, l), d(false, 3, 1000, Infinity));
  assert.deepEqual(fw.take(s, 3, 0, l), d(true, 0, 1000, 0));
  // A cost equal to the amount fits an empty window.
  assert.deepEqual(fw.take(newLimitState(), 10, 0, l), d(true, 0, 1000, 0));
});

test('fixed window: amount 0 (an override tier) refuses everything for ever', () => {
  const l = lim(10, 1000);
  const s = newLimitState();
  assert.deepEqual(fw.take(s, 1, 0, l, 0), d(false, 0, 0, Infinity));
  assert.deepEqual(fw.take(s, 0, 0, l, 0), d(false, 0, 0, Infinity));
  // The override is per call: the same state under the default amount is untouched.
  assert.deepEqual(fw.take(s, 1, 0, l), d(true, 9, 1000, 0));
});

test('fixed window: a refused take consumes nothing; peek never consumes', () => {
  const l = lim(2, 1000);
  const s = newLimitState();
  fw.take(s, 2, 0, l);
  const before = clone(s);
  fw.take(s, 1, 10, l);
  assert.deepEqual(s, before);
  const t = newLimitState();
  assert.deepEqual(fw.peek(t, 2, 0, l), d(true, 0, 1000, 0));
  assert.deepEqual(fw.take(t, 2, 0, l), d(true, 0, 1000, 0));
});

test('fixed window: adjust upward drives debt that later windows pay back', () => {
  const l = lim(10, 1000);
  const s = newLimitState();
  fw.take(s, 5, 0, l); // reserved 5 tokens
  fw.adjust(s, 20, 400, l); // the response used 25
  // In debt: even a zero-cost request waits; 25 counted = 10 this window + 10 next + 5 after.
  assert.deepEqual(fw.peek(s, 0, 400, l), d(false, 0, 2600, 1600));
  assert.deepEqual(fw.take(s, 1, 400, l), d(false, 0, 2600, 1600));
  assert.deepEqual(fw.take(s, 1, 1000, l), d(false, 0, 2000, 1000));
  assert.deepEqual(fw.take(s, 5, 2000, l), d(true, 0, 1000, 0));
  assert.deepEqual(fw.take(s, 1, 2000, l), d(false, 0, 1000, 1000));
  assert.deepEqual(fw.take(s, 10, 3000, l), d(true, 0, 1000, 0));
});

test('fixed window: adjust downward refunds, never beyond an empty window', () => {
  const l = lim(10, 1000);
  const s = newLimitState();
  fw.take(s, 10, 0, l); // reserved 10
  assert.equal(fw.take(s, 1, 0, l).allowed, false);
  fw.adjust(s, -7, 100, l); // only 3 were used
  assert.deepEqual(takes(fw, s, 100, l, [7, 1]), [true, false]);
  fw.adjust(s, -100, 200, l);
  assert.deepEqual(fw.take(s, 1, 200, l), d(true, 9, 800, 0));
  // Non-finite deltas are ignored rather than poisoning the state.
  fw.adjust(s, Number.NaN, 200, l);
  fw.adjust(s, Infinity, 200, l);
  assert.deepEqual(fw.take(s, 1, 200, l), d(true, 8, 800, 0));
});

test('fixed window: undoing a take with adjust(-cost) at the same time restores the state', () => {
  const l = lim(10, 1000);
  const s = newLimitState();
  fw.take(s, 4, 0, l);
  const before = clone(s);
  fw.take(s, 3, 50, l);
  fw.adjust(s, -3, 50, l);
  assert.deepEqual(s, before);
});

test('fixed window: a clock that steps back does not reopen a window', () => {
  const l = lim(2, 1000);
  const s = newLimitState();
  takes(fw, s, 1500, l, [1, 1]);
  assert.equal(fw.take(s, 1, 900, l).allowed, false);
});
