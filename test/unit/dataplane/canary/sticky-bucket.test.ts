import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BUCKETS, bucketOf } from '../../../../src/dataplane/canary/sticky-bucket.ts';

test('buckets are stable, in range and spread evenly over similar keys', () => {
  assert.equal(bucketOf('ml/chat-v2', 'user-1'), bucketOf('ml/chat-v2', 'user-1'));
  const counts = new Array(10).fill(0);
  for (let i = 0; i < 20_000; i++) {
    const b = bucketOf('ml/chat-v2', `user-${i}`);
    assert.ok(b >= 0 && b < BUCKETS);
    counts[Math.floor(b / 1000)]++;
  }
  // 2,000 expected per decile; a fair hash stays well within ±10%.
  for (const c of counts) assert.ok(c > 1800 && c < 2200, `decile count ${c}`);
});

test('each rollout has its own assignment: the same users are not always first', () => {
  let same = 0;
  for (let i = 0; i < 1000; i++) {
    const a = bucketOf('ml/chat-v2', `user-${i}`) < 1000;
    const b = bucketOf('ml/chat-v3', `user-${i}`) < 1000;
    if (a && b) same++;
  }
  // Independent 10% samples overlap on about 1% of users.
  assert.ok(same < 30, `${same} users in the first 10% of both rollouts`);
});
