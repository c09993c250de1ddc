import assert from 'node:assert/strict';
import { test } from 'node:test';
import { seededRandom } from '../../../../src/dataplane/balancers/random.ts';
import { RoundRobinBalancer } from '../../../../src/dataplane/balancers/round-robin.ts';
import { endpoints, noClock, picks, scripted, tally, zero } from './helpers.ts';

test('smooth WRR: weights 5,1,1 give nginx’s sequence a a b a c a a, repeated', () => {
  const b = new RoundRobinBalancer(endpoints(5, 1, 1), { random: zero, now: noClock });
  const cycle = ['a', 'a', 'b', 'a', 'c', 'a', 'a'];
  assert.deepEqual(picks(b, 21), [...cycle, ...cycle, ...cycle]);
});

test('smooth WRR: other weightings interleave and follow weights exactly per cycle', () => {
  const b = new RoundRobinBalancer(endpoints(2, 1), { random: zero, now: noClock });
  assert.deepEqual(picks(b, 6), ['a', 'b', 'a', 'a', 'b', 'a']);
  const c = new RoundRobinBalancer(endpoints(3, 2, 5), { random: zero, now: noClock });
  assert.deepEqual(picks(c, 10), ['c', 'a', 'b', 'c', 'a', 'c', 'c', 'b', 'a', 'c']);
  assert.deepEqual(tally(c, 1000), { a: 300, b: 200, c: 500 });
});

test('equal weights rotate in order', () => {
  const b = new RoundRobinBalancer(endpoints(1, 1, 1, 1), { random: zero, now: noClock });
  assert.deepEqual(picks(b, 9), ['a', 'b', 'c', 'd', 'a', 'b', 'c', 'd', 'a']);
});

test('the start is offset by the injected random, so replicas do not move in lockstep', () => {
  const b = new RoundRobinBalancer(endpoints(1, 1, 1, 1), { random: scripted(0.5), now: noClock });
  assert.deepEqual(picks(b, 5), ['c', 'd', 'a', 'b', 'c']);
  // Weighted: advanced by floor(0.99 × 3) = 2 picks into a a b a c a a.
  const w = new RoundRobinBalancer(endpoints(5, 1, 1), { random: scripted(0.99), now: noClock });
  assert.deepEqual(picks(w, 7), ['b', 'a', 'c', 'a', 'a', 'a', 'a']);
  // Whatever the start, a full cycle still follows the weights.
  const s = new RoundRobinBalancer(endpoints(5, 1, 1), { random: seededRandom(3), now: noClock });
  assert.deepEqual(tally(s, 700), { a: 500, b: 100, c: 100 });
});

test('blind to load: in-flight counts do not change the sequence', () => {
  const eps = endpoints(1, 1);
  eps[0]!.inFlight = 1000;
  const b = new RoundRobinBalancer(eps, { random: zero, now: noClock });
  assert.deepEqual(picks(b, 4), ['a', 'b', 'a', 'b']);
});

test('weight 0 takes an endpoint out; all zero counts as all 1; empty gives undefined', () => {
  const b = new RoundRobinBalancer(endpoints(1, 0, 1), { random: zero, now: noClock });
  assert.deepEqual(picks(b, 4), ['a', 'c', 'a', 'c']);
  const z = new RoundRobinBalancer(endpoints(0, 0), { random: zero, now: noClock });
  assert.deepEqual(picks(z, 3), ['a', 'b', 'a']);
  const e = new RoundRobinBalancer([], { random: zero, now: noClock });
  assert.equal(e.pick({}), undefined);
});
