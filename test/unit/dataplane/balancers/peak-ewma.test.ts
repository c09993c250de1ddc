import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DEFAULT_DECAY_MS,
  observeLatency,
  PeakEwmaBalancer,
  UNMEASURED_PENALTY_MS,
} from '../../../../src/dataplane/balancers/peak-ewma.ts';
import { seededRandom } from '../../../../src/dataplane/balancers/random.ts';
import { newEndpointState } from '../../../../src/dataplane/balancers/types.ts';
import { endpoints, scripted, tally } from './helpers.ts';

function clock(start = 0) {
  let t = start;
  return { now: () => t, set: (v: number) => (t = v) };
}

test('observeLatency: the first sample and any higher one are taken at once', () => {
  const ep = newEndpointState('a');
  observeLatency(ep, 100, 1_000);
  assert.equal(ep.ewmaMs, 100);
  assert.equal(ep.ewmaStamp, 1_000);
  observeLatency(ep, 900, 1_001); // a spike, 1 ms later: no averaging
  assert.equal(ep.ewmaMs, 900);
});

test('observeLatency: a lower sample pulls the estimate down with w = exp(-elapsed/decay)', () => {
  const ep = newEndpointState('a');
  observeLatency(ep, 1_000, 0);
  observeLatency(ep, 100, DEFAULT_DECAY_MS); // one time constant later
  const w = Math.exp(-1);
  assert.ok(Math.abs(ep.ewmaMs - (1_000 * w + 100 * (1 - w))) < 1e-9);
  // A custom decay, and no elapsed time: a lower sample changes nothing.
  const fast = newEndpointState('b');
  observeLatency(fast, 1_000, 0, 100);
  observeLatency(fast, 100, 0, 100);
  assert.equal(fast.ewmaMs, 1_000);
  observeLatency(fast, 100, 1_000, 100); // ten time constants: almost all the way down
  assert.ok(fast.ewmaMs > 100 && fast.ewmaMs < 100.05, String(fast.ewmaMs));
});

test('observeLatency: ignores NaN and negative samples; floors 0 so the endpoint counts as measured', () => {
  const ep = newEndpointState('a');
  observeLatency(ep, Number.NaN, 5);
  observeLatency(ep, -1, 5);
  assert.equal(ep.ewmaMs, 0);
  assert.equal(ep.ewmaStamp, 0);
  observeLatency(ep, 0, 5);
  assert.ok(ep.ewmaMs > 0);
});

test('prefers the faster endpoint once latencies are known', () => {
  const c = clock(1_000);
  const eps = endpoints(1, 1, 1);
  observeLatency(eps[0]!, 100, 1_000);
  observeLatency(eps[1]!, 300, 1_000);
  observeLatency(eps[2]!, 110, 1_000);
  const b = new PeakEwmaBalancer(eps, { random: seededRandom(4), now: c.now });
  const counts = tally(b, 3_000);
  // The slowest wins no draw; the fastest wins both of its pairings.
  assert.deepEqual(counts, { a: 2_021, c: 979 });
});

test('queue-aware: a fast endpoint with enough in flight loses to an idle slower one', () => {
  const c = clock(0);
  const eps = endpoints(1, 1);
  observeLatency(eps[0]!, 100, 0);
  observeLatency(eps[1]!, 300, 0);
  const b = new PeakEwmaBalancer(eps, { random: seededRandom(1), now: c.now });
  eps[0]!.inFlight = 1; // 100 × 2 = 200 < 300 × 1
  assert.deepEqual(tally(b, 20), { a: 20 });
  eps[0]!.inFlight = 3; // 100 × 4 = 400 > 300
  assert.deepEqual(tally(b, 20), { b: 20 });
});

test('reacts at once to a latency spike', () => {
  const c = clock(0);
  const eps = endpoints(1, 1);
  observeLatency(eps[0]!, 100, 0);
  observeLatency(eps[1]!, 150, 0);
  const b = new PeakEwmaBalancer(eps, { random: seededRandom(2), now: c.now });
  assert.deepEqual(tally(b, 10), { a: 10 });
  c.set(5);
  observeLatency(eps[0]!, 2_000, 5); // a single slow response
  assert.deepEqual(tally(b, 10), { b: 10 });
});

test('unmeasured endpoints: tried at once when idle, one probe at a time when busy', () => {
  const c = clock(0);
  const eps = endpoints(1, 1);
  observeLatency(eps[0]!, 50, 0);
  eps[0]!.inFlight = 10;
  const b = new PeakEwmaBalancer(eps, { random: seededRandom(3), now: c.now });
  assert.equal(b.pick({})?.id, 'b', 'idle and unknown: cost 0');
  eps[1]!.inFlight = 1;
  // Busy and still unknown: penalised well above a measured endpoint with a queue.
  assert.deepEqual(tally(b, 10), { a: 10 });
  assert.ok(UNMEASURED_PENALTY_MS * 2 > 50 * 11);
});

test('when every endpoint is unmeasured, the choice is least-request', () => {
  const eps = endpoints(1, 1);
  eps[0]!.inFlight = 3;
  eps[1]!.inFlight = 2;
  const b = new PeakEwmaBalancer(eps, { random: seededRandom(8), now: () => 0 });
  assert.deepEqual(tally(b, 10), { b: 10 });
});

test('an idle endpoint’s estimate fades at read time, so a once-slow replica is retried', () => {
  const c = clock(0);
  const eps = endpoints(1, 1);
  observeLatency(eps[0]!, 1_000, 0); // slow once, then never picked again…
  observeLatency(eps[1]!, 100, 0);
  eps[1]!.inFlight = 1; // …while b is busy and keeps its estimate
  const b = new PeakEwmaBalancer(eps, { random: seededRandom(6), now: c.now });
  assert.deepEqual(tally(b, 5), { b: 5 }); // 1000 vs 200
  c.set(DEFAULT_DECAY_MS * 2); // 1000 × e^-2 ≈ 135 < 200
  assert.deepEqual(tally(b, 5), { a: 5 });
  assert.equal(eps[0]!.ewmaMs, 1_000, 'reading does not write the state');
});

test('weight divides the cost', () => {
  const c = clock(0);
  const eps = endpoints(1, 3);
  observeLatency(eps[0]!, 100, 0);
  observeLatency(eps[1]!, 250, 0); // 250 / 3 ≈ 83 < 100
  const b = new PeakEwmaBalancer(eps, { random: seededRandom(7), now: c.now });
  assert.deepEqual(tally(b, 10), { b: 10 });
});

test('0 endpoints → undefined; 1 → it; ties go to the first drawn', () => {
  assert.equal(new PeakEwmaBalancer([], { random: scripted(), now: () => 0 }).pick({}), undefined);
  const one = new PeakEwmaBalancer(endpoints(1), { random: scripted(), now: () => 0 });
  assert.equal(one.pick({})?.id, 'a');
  const b = new PeakEwmaBalancer(endpoints(1, 1, 1), { random: scripted(0.9, 0.1), now: () => 0 });
  assert.equal(b.pick({})?.id, 'c');
});
