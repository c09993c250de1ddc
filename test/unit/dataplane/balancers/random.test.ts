import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultRandom, seededRandom } from '../../../../src/dataplane/balancers/random.ts';

test('seededRandom: same seed, same sequence; different seeds differ', () => {
  const a = seededRandom(7);
  const b = seededRandom(7);
  const c = seededRandom(8);
  const sa = Array.from({ length: 100 }, a);
  assert.deepEqual(Array.from({ length: 100 }, b), sa);
  assert.notDeepEqual(Array.from({ length: 100 }, c), sa);
});

test('seededRandom: uniform in [0, 1), including for seed 0', () => {
  for (const seed of [0, 1, 0xffffffff, -5]) {
    const r = seededRandom(seed);
    const buckets = new Array(10).fill(0);
    let sum = 0;
    const n = 100_000;
    for (let i = 0; i < n; i++) {
      const x = r();
      assert.ok(x >= 0 && x < 1, `${x} out of range`);
      sum += x;
      buckets[Math.floor(x * 10)]++;
    }
    assert.ok(Math.abs(sum / n - 0.5) < 0.01, `mean ${sum / n}`);
    for (const count of buckets) assert.ok(Math.abs(count - n / 10) < n / 100, `bucket ${count}`);
  }
});

test('defaultRandom is Math.random', () => {
  assert.equal(defaultRandom, Math.random);
});
