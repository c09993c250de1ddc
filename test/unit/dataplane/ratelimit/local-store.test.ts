import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DEFAULT_MAX_KEYS,
  type LocalLimit,
  LocalLimiter,
} from '../../../../src/dataplane/ratelimit/local-store.ts';
import { d } from './helpers.ts';

const perMinute: LocalLimit = { algorithm: 'FixedWindow', amount: 3, periodMs: 60_000, burst: 0 };
const bucket: LocalLimit = { algorithm: 'TokenBucket', amount: 10, periodMs: 1000, burst: 0 };
const sliding: LocalLimit = { algorithm: 'SlidingWindow', amount: 2, periodMs: 1000, burst: 0 };

function admits(
  l: LocalLimiter,
  limit: number,
  key: string,
  n: number,
  now: number,
  amount?: number,
): boolean[] {
  return Array.from({ length: n }, () => l.take(limit, key, 1, now, amount).allowed);
}

test('local limiter: keys are counted separately', () => {
  const l = new LocalLimiter([perMinute]);
  assert.deepEqual(admits(l, 0, 'consumer:alice', 4, 0), [true, true, true, false]);
  assert.deepEqual(admits(l, 0, 'consumer:bob', 4, 0), [true, true, true, false]);
  assert.equal(l.size(), 2);
});

test('local limiter: limits are counted separately for the same key', () => {
  const l = new LocalLimiter([perMinute, sliding]);
  assert.deepEqual(admits(l, 1, 'k', 3, 0), [true, true, false]);
  assert.deepEqual(admits(l, 0, 'k', 4, 0), [true, true, true, false]);
  assert.equal(l.size(0), 1);
  assert.equal(l.size(1), 1);
});

test('local limiter: each algorithm by name', () => {
  const l = new LocalLimiter([perMinute, bucket, sliding]);
  assert.deepEqual(l.take(0, 'k', 1, 0), d(true, 2, 60_000, 0));
  assert.deepEqual(l.take(1, 'k', 4, 0), d(true, 6, 400, 0));
  assert.deepEqual(l.take(2, 'k', 1, 0), d(true, 1, 2000, 0));
});

test('local limiter: overrides give a consumer a different amount; 0 refuses and stores nothing', () => {
  const l = new LocalLimiter([perMinute]);
  assert.deepEqual(admits(l, 0, 'gold', 6, 0, 5), [true, true, true, true, true, false]);
  assert.deepEqual(admits(l, 0, 'free', 2, 0, 1), [true, false]);
  assert.deepEqual(l.take(0, 'blocked', 1, 0, 0), d(false, 0, 0, Infinity));
  assert.equal(l.size(), 2);
});

test('local limiter: refused, zero-cost and peeked requests on a fresh key store nothing', () => {
  const l = new LocalLimiter([perMinute]);
  assert.equal(l.take(0, 'big', 4, 0).retryAfterMs, Infinity);
  assert.equal(l.take(0, 'zero', 0, 0).allowed, true);
  assert.deepEqual(l.peek(0, 'peek', 3, 0), d(true, 0, 60_000, 0));
  assert.equal(l.size(), 0);
  assert.deepEqual(admits(l, 0, 'peek', 3, 0), [true, true, true]);
});

test('local limiter: adjust charges into debt and refunds, per key', () => {
  const l = new LocalLimiter([bucket]);
  assert.equal(l.take(0, 'a', 10, 0).allowed, true);
  l.adjust(0, 'a', 5, 0); // 15 used against a reservation of 10
  assert.deepEqual(l.peek(0, 'a', 1, 0), d(false, 0, 1500, 600));
  l.adjust(0, 'a', -15, 0);
  assert.deepEqual(l.peek(0, 'a', 10, 0), d(true, 0, 1000, 0));
  // A refund to a key with no state changes nothing; a charge creates one.
  l.adjust(0, 'b', -5, 0);
  assert.equal(l.size(), 1);
  l.adjust(0, 'c', 12, 0);
  assert.deepEqual(l.peek(0, 'c', 0, 0), d(false, 0, 1200, 200));
});

test('local limiter: undoing the limits already taken when a later one refuses', () => {
  const l = new LocalLimiter([bucket, perMinute]);
  const now = 5;
  for (let i = 0; i < 3; i++) {
    assert.equal(l.take(0, 'k', 2, now).allowed, true);
    assert.equal(l.take(1, 'k', 1, now).allowed, true);
  }
  // The 4th request passes the bucket but not the per-minute limit: give the bucket its 2 back.
  assert.equal(l.take(0, 'k', 2, now).allowed, true);
  assert.equal(l.take(1, 'k', 1, now).allowed, false);
  l.adjust(0, 'k', -2, now);
  assert.deepEqual(l.peek(0, 'k', 4, now), d(true, 0, 1000, 0));
});

test('local limiter: at most maxKeysPerLimit keys, even after inserting twice as many live ones', () => {
  const max = 1000;
  const l = new LocalLimiter([perMinute, bucket], { maxKeysPerLimit: max });
  for (let i = 0; i < 2 * max; i++) {
    assert.equal(l.take(0, `ip:${i}`, 1, 0).allowed, true);
    assert.ok(l.size(0) <= max);
  }
  assert.equal(l.size(0), max);
  // All were live (not full), so the excess went by LRU eviction, and each one is counted.
  assert.equal(l.evictions, max);
  // The survivors are the most recent keys, with their state intact.
  assert.deepEqual(l.peek(0, `ip:${2 * max - 1}`, 0, 0).remaining, 2);
  assert.deepEqual(l.peek(0, 'ip:0', 0, 0).remaining, 3);
  // The other limit's keys were untouched by that flood.
  assert.equal(l.size(1), 0);
  assert.equal(new LocalLimiter([perMinute]).maxKeysPerLimit, DEFAULT_MAX_KEYS);
});

test('local limiter: a hit makes a key recently used, so the coldest one goes first', () => {
  const l = new LocalLimiter([perMinute], { maxKeysPerLimit: 3 });
  for (const k of ['a', 'b', 'c']) l.take(0, k, 1, 0);
  l.take(0, 'a', 1, 0); // a is now the most recent; b the coldest
  l.take(0, 'd', 1, 0);
  assert.equal(l.evictions, 1);
  assert.equal(l.peek(0, 'a', 0, 0).remaining, 1);
  assert.equal(l.peek(0, 'b', 0, 0).remaining, 3); // forgotten: full again
  assert.equal(l.peek(0, 'c', 0, 0).remaining, 2);
  assert.equal(l.peek(0, 'd', 0, 0).remaining, 2);
});

test('local limiter: keys whose quota is full again are dropped on insert, not evicted', () => {
  const max = 100;
  const l = new LocalLimiter([bucket], { maxKeysPerLimit: max });
  for (let i = 0; i < max; i++) l.take(0, `old:${i}`, 1, 0);
  assert.equal(l.size(), max);
  // 100 ms later each old bucket has its token back: they are equivalent to no state at all.
  for (let i = 0; i < 2 * max; i++) l.take(0, `new:${i}`, 1, 100 + i);
  assert.ok(l.size() <= max);
  assert.equal(l.peek(0, 'new:199', 0, 299).remaining, 9);
  // Every key dropped was full (old ones at once, new ones 100 ms after their take): no eviction.
  assert.equal(l.evictions, 0);
  // Without pressure the map also shrinks as traffic moves on (two cold entries per insert).
  const m = new LocalLimiter([bucket]);
  for (let i = 0; i < 50; i++) m.take(0, `x:${i}`, 1, 0);
  for (let i = 0; i < 25; i++) m.take(0, `y:${i}`, 1, 1000);
  assert.equal(m.size(), 25);
  assert.equal(m.evictions, 0);
});

test('local limiter: unknown limit numbers are an error, clear forgets everything', () => {
  const l = new LocalLimiter([perMinute]);
  assert.throws(() => l.take(1, 'k', 1, 0), RangeError);
  admits(l, 0, 'k', 3, 0);
  l.clear();
  assert.equal(l.size(), 0);
  assert.equal(l.take(0, 'k', 1, 0).allowed, true);
});
