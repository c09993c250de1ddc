import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LeastRequestBalancer } from '../../../../src/dataplane/balancers/least-request.ts';
import { seededRandom } from '../../../../src/dataplane/balancers/random.ts';
import { endpoints, noClock, scripted, tally } from './helpers.ts';

test('0 endpoints → undefined; 1 → it, without drawing', () => {
  const none = new LeastRequestBalancer([], { random: scripted(), now: noClock });
  assert.equal(none.pick({}), undefined);
  const eps = endpoints(1);
  eps[0]!.inFlight = 99;
  const one = new LeastRequestBalancer(eps, { random: scripted(), now: noClock });
  assert.equal(one.pick({})?.id, 'a');
});

test('2 endpoints: always the less busy, whichever is drawn first', () => {
  const eps = endpoints(1, 1);
  const b = new LeastRequestBalancer(eps, { random: seededRandom(1), now: noClock });
  eps[0]!.inFlight = 3;
  eps[1]!.inFlight = 2;
  assert.deepEqual(tally(b, 100), { b: 100 });
  eps[1]!.inFlight = 4;
  assert.deepEqual(tally(b, 100), { a: 100 });
});

test('the two draws are distinct and ties go to the first drawn', () => {
  // Uniform weights, 3 endpoints: 0.5 → index 1 first; 0.0 → index 0 of the other two (a).
  const eps = endpoints(1, 1, 1);
  const b = new LeastRequestBalancer(eps, { random: scripted(0.5, 0, 0.5, 0.99), now: noClock });
  assert.equal(b.pick({})?.id, 'b', 'tie: first drawn');
  // 0.5 → b first; 0.99 → second of the others (c). c busier → b.
  eps[2]!.inFlight = 1;
  assert.equal(b.pick({})?.id, 'b');
});

test('never the busier of the two drawn: with distinct loads, pick frequency follows rank', () => {
  // With in-flight counts 0 < 1 < 2 < 3, rank k wins when drawn with a busier one:
  // P = 2(n-1-k) / (n(n-1)) = 1/2, 1/3, 1/6, 0.
  const eps = endpoints(1, 1, 1, 1);
  eps.forEach((ep, i) => {
    ep.inFlight = i;
  });
  const b = new LeastRequestBalancer(eps, { random: seededRandom(11), now: noClock });
  const counts = tally(b, 60_000);
  assert.equal(counts.d, undefined, 'the busiest endpoint is never picked');
  assert.deepEqual(counts, { a: 29_742, b: 20_246, c: 10_012 });
  assert.ok(Math.abs(counts.a! - 30_000) < 600 && Math.abs(counts.b! - 20_000) < 600);
});

test('a stuck endpoint holding many requests gets almost none while the others churn', () => {
  const eps = endpoints(1, 1, 1, 1, 1);
  const stuck = eps[0]!;
  stuck.inFlight = 40;
  const random = seededRandom(5);
  const b = new LeastRequestBalancer(eps, { random, now: noClock });
  const completions = seededRandom(6);
  let toStuck = 0;
  const N = 20_000;
  for (let i = 0; i < N; i++) {
    const ep = b.pick({})!;
    ep.inFlight++;
    if (ep === stuck) toStuck++;
    // The healthy four finish about as fast as requests arrive, keeping a handful in flight each.
    const done = eps[1 + Math.floor(completions() * 4)]!;
    if (done.inFlight > 0) done.inFlight--;
  }
  assert.equal(stuck.inFlight, 40, 'never picked');
  assert.equal(toStuck, 0);
});

test('weighted: idle endpoints get traffic in proportion to weight (exact counts for the seed)', () => {
  const b = new LeastRequestBalancer(endpoints(1, 2, 3), { random: seededRandom(42), now: noClock });
  const counts = tally(b, 60_000);
  assert.deepEqual(counts, { a: 9_914, b: 20_097, c: 29_989 });
  for (const [id, share] of [
    ['a', 1 / 6],
    ['b', 2 / 6],
    ['c', 3 / 6],
  ] as const) {
    assert.ok(Math.abs(counts[id]! / 60_000 - share) < 0.01, `${id}: ${counts[id]}`);
  }
});

test('weighted: in-flight is compared per unit of weight', () => {
  const eps = endpoints(1, 4);
  eps[0]!.inFlight = 1; // 1 per unit
  eps[1]!.inFlight = 3; // 0.75 per unit
  const b = new LeastRequestBalancer(eps, { random: seededRandom(2), now: noClock });
  assert.deepEqual(tally(b, 50), { b: 50 });
  eps[1]!.inFlight = 5; // 1.25 per unit
  assert.deepEqual(tally(b, 50), { a: 50 });
});

test('weighted draws are distinct even with skewed weights, and weight 0 is excluded', () => {
  // a is drawn first almost always; the second draw must still be b or c, so a busy a is avoided.
  const eps = endpoints(1000, 1, 1, 0);
  eps[0]!.inFlight = 1;
  const b = new LeastRequestBalancer(eps, { random: seededRandom(9), now: noClock });
  const counts = tally(b, 10_000);
  assert.equal(counts.a, undefined);
  assert.equal(counts.d, undefined);
  assert.equal(counts.b! + counts.c!, 10_000);
});
