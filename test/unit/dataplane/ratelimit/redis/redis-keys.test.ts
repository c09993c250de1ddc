import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import {
  digest,
  hashTag,
  type KeyedLimit,
  limitFingerprint,
  PolicyKeys,
  redisKeys,
} from '../../../../../src/dataplane/ratelimit/redis/redis-keys.ts';

const consumer = [{ type: 'Consumer' }];
const clientIp = [{ type: 'ClientIP' }];

const perMinute: KeyedLimit = { name: 'rpm', algorithm: 'TokenBucket', periodMs: 60_000, key: consumer };
const perDay: KeyedLimit = { name: 'tpd', algorithm: 'FixedWindow', periodMs: 86_400_000, key: consumer };
const perIp: KeyedLimit = { name: 'ip', algorithm: 'SlidingWindow', periodMs: 1000, key: clientIp };

/** Only characters that need no escaping anywhere: base64url, the prefix and separators. */
const SAFE = /^mg:rl:\{[A-Za-z0-9_-]+\}:[A-Za-z0-9_-]+(:[A-Za-z0-9_-]+)?$/;

test('the value digest is SHA-256, base64url, 22 characters', () => {
  const want = createHash('sha256').update('alice').digest('base64url').slice(0, 22);
  assert.equal(digest('alice'), want);
  assert.equal(digest('alice').length, 22);
  assert.notEqual(digest('alice'), digest('alice '));
});

test('fingerprints change with algorithm, period, name, policy and key definition', () => {
  const base = limitFingerprint('ml/per-key', perMinute);
  assert.equal(limitFingerprint('ml/per-key', { ...perMinute }), base);
  assert.notEqual(limitFingerprint('ml/per-key', { ...perMinute, algorithm: 'FixedWindow' }), base);
  assert.notEqual(limitFingerprint('ml/per-key', { ...perMinute, periodMs: 60_001 }), base);
  assert.notEqual(limitFingerprint('ml/per-key', { ...perMinute, name: 'rpm2' }), base);
  assert.notEqual(limitFingerprint('ml/other', perMinute), base);
  assert.notEqual(limitFingerprint('ml/per-key', { ...perMinute, key: clientIp }), base);
  assert.notEqual(
    limitFingerprint('ml/per-key', { ...perMinute, key: [{ type: 'Header', name: 'x-a' }] }),
    limitFingerprint('ml/per-key', { ...perMinute, key: [{ type: 'Header', name: 'x-b' }] }),
  );
  // No ambiguity between fields: ('a/b', 'c') and ('a', 'b/c')-like splits differ.
  assert.notEqual(
    limitFingerprint('a', { ...perMinute, name: 'bc' }),
    limitFingerprint('ab', { ...perMinute, name: 'c' }),
  );
});

test('a shared key definition: the tag is the request value digest', () => {
  const keys = new PolicyKeys('ml/per-key', [perMinute, perDay]);
  assert.equal(keys.sharedKey, true);
  const alice = keys.keys(['alice', 'alice']);
  const bob = keys.keys(['bob', 'bob']);
  assert.equal(alice.length, 2);
  for (const k of [...alice, ...bob]) assert.match(k, SAFE);
  // One slot per request (same tag), different tags for different consumers.
  assert.equal(hashTag(alice[0]!), digest('alice'));
  assert.equal(hashTag(alice[1]!), digest('alice'));
  assert.equal(hashTag(bob[0]!), digest('bob'));
  assert.notEqual(alice[0], alice[1]);
  assert.equal(alice[0], `mg:rl:{${digest('alice')}}:${limitFingerprint('ml/per-key', perMinute)}`);
  assert.equal(keys.key(1, 'alice'), alice[1]);
  // Changing the period of one limit changes its key only.
  const changed = new PolicyKeys('ml/per-key', [perMinute, { ...perDay, periodMs: 3_600_000 }]).keys([
    'alice',
    'alice',
  ]);
  assert.equal(changed[0], alice[0]);
  assert.notEqual(changed[1], alice[1]);
});

test('mixed key definitions: the tag is the policy digest (one slot for the whole policy)', () => {
  const keys = new PolicyKeys('ml/mixed', [perMinute, perIp, perDay]);
  assert.equal(keys.sharedKey, false);
  const r1 = keys.keys(['alice', '10.0.0.1', 'alice']);
  const r2 = keys.keys(['bob', '10.0.0.2', 'bob']);
  const tag = hashTag(r1[0]!);
  assert.equal(tag, digest('ml/mixed', 16));
  for (const k of [...r1, ...r2]) {
    assert.match(k, SAFE);
    assert.equal(hashTag(k), tag);
  }
  assert.equal(new Set([...r1, ...r2]).size, 6);
  assert.ok(r1[0]!.endsWith(`:${digest('alice')}`));
  assert.ok(r1[1]!.endsWith(`:${digest('10.0.0.1')}`));
  assert.ok(r1[2]!.endsWith(`:${digest('alice')}`));
  assert.deepEqual(
    r1.map((_, i) => keys.key(i, ['alice', '10.0.0.1', 'alice'][i]!)),
    r1,
  );
  assert.deepEqual(redisKeys('ml/mixed', [perMinute, perIp, perDay], ['alice', '10.0.0.1', 'alice']), r1);
  // Another policy: another slot.
  assert.notEqual(hashTag(new PolicyKeys('ml/other', [perMinute, perIp]).keys(['a', 'b'])[0]!), tag);
});

test('long and hostile key values give bounded keys of safe characters', () => {
  const keys = new PolicyKeys('ml/per-key', [perMinute, perDay]);
  const mixed = new PolicyKeys('ml/mixed', [perMinute, perIp]);
  const hostile = [
    'x'.repeat(1_000_000),
    '}{}{ \r\n\u0000:mg:rl:{evil}',
    '\u001f\u001f',
    '🙂'.repeat(1000),
    '',
  ];
  for (const v of hostile) {
    for (const k of [...keys.keys([v, v]), ...mixed.keys([v, v])]) {
      assert.match(k, SAFE);
      assert.ok(k.length <= 80, `${k.length}`);
    }
  }
  assert.notEqual(keys.keys(['', ''])[0], keys.keys(['x', 'x'])[0]);
});

test('argument checks', () => {
  const keys = new PolicyKeys('ml/per-key', [perMinute, perDay]);
  assert.throws(() => keys.keys(['only one']), RangeError);
  assert.throws(() => keys.key(2, 'alice'), RangeError);
  assert.throws(() => new PolicyKeys('ml/none', []), RangeError);
});
