import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ConsistentHashBalancer,
  createBalancer,
  LeastRequestBalancer,
  PeakEwmaBalancer,
  RoundRobinBalancer,
  seededRandom,
} from '../../../../src/dataplane/balancers/index.ts';
import type { LoadBalancingAlgorithm } from '../../../../src/routing-table/types.ts';
import { endpoints } from './helpers.ts';

const ALGORITHMS: [LoadBalancingAlgorithm, new (...args: never) => unknown][] = [
  ['RoundRobin', RoundRobinBalancer],
  ['LeastRequest', LeastRequestBalancer],
  ['PeakEWMA', PeakEwmaBalancer],
  ['ConsistentHash', ConsistentHashBalancer],
];

test('createBalancer dispatches on the algorithm', () => {
  for (const [algorithm, cls] of ALGORITHMS) {
    const b = createBalancer(algorithm, endpoints(1, 1), { random: seededRandom(1), now: () => 0 });
    assert.ok(b instanceof cls, algorithm);
  }
  assert.throws(
    () => createBalancer('Bogus' as LoadBalancingAlgorithm, [], { random: Math.random, now: () => 0 }),
    /unknown load-balancing algorithm Bogus/,
  );
});

test('every algorithm: no endpoints → undefined, one endpoint → it, many → one of them', () => {
  for (const [algorithm] of ALGORITHMS) {
    const opts = { random: seededRandom(2), now: () => 0 };
    for (const ctx of [{}, { hashKey: 'user-1' }]) {
      assert.equal(createBalancer(algorithm, [], opts).pick(ctx), undefined, algorithm);
      const one = endpoints(1);
      assert.equal(createBalancer(algorithm, one, opts).pick(ctx), one[0], algorithm);
      const many = endpoints(1, 2, 3);
      const b = createBalancer(algorithm, many, opts);
      for (let i = 0; i < 50; i++) assert.ok(many.includes(b.pick(ctx)!), algorithm);
    }
  }
});

test('the endpoint list passed in is not modified', () => {
  const eps = endpoints(1, 0, 2);
  const copy = [...eps];
  for (const [algorithm] of ALGORITHMS) createBalancer(algorithm, eps, { random: Math.random, now: () => 0 });
  assert.deepEqual(eps, copy);
});
