import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConsistentHashBalancer, hash32 } from '../../../../src/dataplane/balancers/consistent-hash.ts';
import { seededRandom } from '../../../../src/dataplane/balancers/random.ts';
import type { EndpointState } from '../../../../src/dataplane/balancers/types.ts';
import { newEndpointState } from '../../../../src/dataplane/balancers/types.ts';
import { endpoints, scripted, tally } from './helpers.ts';

const KEYS = Array.from({ length: 50_000 }, (_, i) => `session-${i}`);

function fleet(n: number, weight = 1): EndpointState[] {
  return Array.from({ length: n }, (_, i) =>
    newEndpointState(`http://10.0.${i >> 8}.${i & 255}:8000`, weight),
  );
}

function ring(eps: EndpointState[]): ConsistentHashBalancer {
  return new ConsistentHashBalancer(eps, { random: seededRandom(1), now: () => 0 });
}

function assign(b: ConsistentHashBalancer): string[] {
  return KEYS.map((k) => b.pick({ hashKey: k })!.id);
}

test('hash32: deterministic 32-bit unsigned, sensitive to every character', () => {
  assert.equal(hash32('abc'), hash32('abc'));
  assert.notEqual(hash32('ep#1'), hash32('ep#2'));
  for (const s of ['', 'a', 'ünïcødé', 'x'.repeat(1000)]) {
    const h = hash32(s);
    assert.ok(Number.isInteger(h) && h >= 0 && h < 2 ** 32);
  }
});

test('the same key goes to the same endpoint, whatever the input order or the balancer instance', () => {
  const eps = fleet(8);
  const first = assign(ring(eps));
  assert.deepEqual(assign(ring(eps)), first);
  assert.deepEqual(assign(ring([...eps].reverse())), first);
  const b = ring(eps);
  eps[0]!.inFlight = 1000; // load does not move a key
  assert.equal(b.pick({ hashKey: 'session-1' })!.id, first[1]);
});

test('keys spread roughly evenly over the endpoints', () => {
  const eps = fleet(10);
  const counts = new Map<string, number>();
  for (const id of assign(ring(eps))) counts.set(id, (counts.get(id) ?? 0) + 1);
  assert.equal(counts.size, 10);
  const fair = KEYS.length / 10;
  for (const [id, n] of counts) assert.ok(n > fair * 0.8 && n < fair * 1.2, `${id}: ${n} vs ${fair}`);
});

test('removing one of N endpoints moves only its keys (~1/N); adding one takes ~1/(N+1)', () => {
  const eps = fleet(10);
  const before = assign(ring(eps));
  const removed = eps[3]!.id;
  const after = assign(ring(eps.filter((ep) => ep.id !== removed)));
  let moved = 0;
  for (let i = 0; i < KEYS.length; i++) {
    if (before[i] === after[i]) continue;
    moved++;
    assert.equal(before[i], removed, 'only keys of the removed endpoint move');
  }
  assert.ok(moved / KEYS.length > 0.07 && moved / KEYS.length < 0.13, `moved ${moved}`);

  const grown = assign(ring([...eps, newEndpointState('http://10.9.9.9:8000')]));
  let taken = 0;
  for (let i = 0; i < KEYS.length; i++) {
    if (before[i] === grown[i]) continue;
    taken++;
    assert.equal(grown[i], 'http://10.9.9.9:8000', 'keys move only to the new endpoint');
  }
  assert.ok(taken / KEYS.length > 0.06 && taken / KEYS.length < 0.12, `taken ${taken}`);
});

test('weight-aware: an endpoint of weight 3 owns about three times the keys', () => {
  const eps = fleet(4);
  eps[0]!.weight = 3;
  const counts = new Map<string, number>();
  for (const id of assign(ring(eps))) counts.set(id, (counts.get(id) ?? 0) + 1);
  const heavy = counts.get(eps[0]!.id)! / KEYS.length;
  assert.ok(heavy > 0.5 && heavy < 0.7, `heavy share ${heavy} (ideal 0.5)`);
  eps[1]!.weight = 0;
  const zeroed = ring(eps);
  assert.ok(
    KEYS.every((k) => zeroed.pick({ hashKey: k })!.id !== eps[1]!.id),
    'weight 0 owns nothing',
  );
});

test('no key (absent or empty): least request with the injected random', () => {
  const eps = endpoints(1, 1);
  eps[0]!.inFlight = 5;
  const b = new ConsistentHashBalancer(eps, { random: seededRandom(3), now: () => 0 });
  assert.deepEqual(tally(b, 20), { b: 20 });
  assert.deepEqual(tally(b, 20, { hashKey: '' }), { b: 20 });
  // Scripted draws prove the fallback uses the injected random: a tie goes to the first drawn.
  eps[0]!.inFlight = 0;
  const s = new ConsistentHashBalancer(endpoints(1, 1, 1), { random: scripted(0.9, 0.1), now: () => 0 });
  assert.equal(s.pick({})?.id, 'c');
});

test('0 endpoints → undefined; 1 → it for any key', () => {
  assert.equal(ring([]).pick({ hashKey: 'k' }), undefined);
  assert.equal(ring([]).pick({}), undefined);
  const one = ring(fleet(1));
  assert.ok(KEYS.slice(0, 100).every((k) => one.pick({ hashKey: k })!.id === 'http://10.0.0.0:8000'));
});
