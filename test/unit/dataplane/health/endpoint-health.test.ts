import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newEndpointState } from '../../../../src/dataplane/balancers/types.ts';
import { EndpointHealth } from '../../../../src/dataplane/health/endpoint-health.ts';
import { OutlierGroup } from '../../../../src/dataplane/health/outlier-detector.ts';
import { healthTargets } from '../../../../src/dataplane/health/targets.ts';
import type { CompiledRule, RoutingTable } from '../../../../src/routing-table/types.ts';
import { FakeTime } from './fake-time.ts';

const A = 'http://10.0.0.1:8000';
const B = 'http://10.0.0.2:8000';
const C = 'http://10.0.0.3:8000';

function setup() {
  const time = new FakeTime();
  const changes: [string, boolean][] = [];
  const probeResults = new Map<string, boolean>();
  const health = new EndpointHealth({
    onChange: (origin, available) => changes.push([origin, available]),
    probe: async (origin) => probeResults.get(origin) ?? true,
    timers: time.timers,
    now: time.clock,
    random: () => 0,
  });
  const group = new OutlierGroup('g', [A, B, C], {
    consecutiveErrors: 1,
    baseEjectionMs: 60_000,
    maxEjectionMs: 60_000,
    maxEjectionPercent: 100,
  });
  return { time, changes, health, group, probeResults };
}

test('available = healthy and not ejected; onChange only on combined transitions', async () => {
  const { time, changes, health, group, probeResults } = setup();
  // A long interval: the fake clock can move a minute for the ejection without a probe running.
  const interval = 1_000_000;
  health.checker.sync([
    {
      origin: A,
      path: '/health',
      intervalMs: interval,
      timeoutMs: 10,
      unhealthyThreshold: 1,
      healthyThreshold: 1,
    },
  ]);
  const probeNow = async (): Promise<void> => {
    time.next();
    await health.checker.settle();
  };
  health.outliers.record(A, 'error', group); // ejected for 60 s
  assert.deepEqual(changes, [[A, false]]);
  assert.deepEqual(health.downEndpoints(), [{ origin: A, unhealthy: false, ejected: true }]);
  probeResults.set(A, false);
  await probeNow();
  assert.equal(health.checker.isHealthy(A), false);
  assert.deepEqual(health.downEndpoints(), [{ origin: A, unhealthy: true, ejected: true }], 'both reasons');
  assert.deepEqual(changes, [[A, false]], 'already out: no second change');
  time.advance(60_000); // the ejection ends, the probe still fails
  assert.equal(health.outliers.isEjected(A), false);
  assert.equal(health.isAvailable(A), false, 'still unhealthy');
  assert.deepEqual(changes, [[A, false]]);
  assert.deepEqual(health.downEndpoints(), [{ origin: A, unhealthy: true, ejected: false }]);
  probeResults.set(A, true);
  await probeNow();
  assert.equal(health.isAvailable(A), true);
  assert.deepEqual(health.downEndpoints(), []);
  assert.deepEqual(changes, [
    [A, false],
    [A, true],
  ]);
  health.close();
  assert.equal(time.size, 0);
});

test('available(): the same array when nothing is out, else the available subset in order', () => {
  const { health, group } = setup();
  const eps = [A, B, C].map((o) => newEndpointState(o));
  assert.equal(health.available(eps), eps);
  health.outliers.record(B, 'timeout', group);
  assert.deepEqual(
    health.available(eps).map((e) => e.id),
    [A, C],
  );
  health.outliers.record(A, 'timeout', group);
  assert.deepEqual(
    health.available(eps).map((e) => e.id),
    [C],
  );
  assert.deepEqual(health.unavailableOrigins().sort(), [A, B]);
  health.retain(new Set([A, C]));
  assert.deepEqual(health.unavailableOrigins(), [A]);
  health.close();
});

test('healthTargets: every endpoint (ready and draining) of rules with a check, deduplicated', () => {
  const hc = {
    path: '/health',
    intervalMs: 5000,
    timeoutMs: 1000,
    unhealthyThreshold: 3,
    healthyThreshold: 2,
  };
  const rule = (id: string, endpoints: string[], healthCheck?: CompiledRule['healthCheck']) =>
    ({
      id,
      backends: endpoints.map((e, i) => ({ name: `b${i}`, weight: 1, endpoints: e, protocol: 'HTTP' })),
      ...(healthCheck ? { healthCheck } : {}),
    }) as unknown as CompiledRule;
  const table = {
    routes: {
      rules: [
        rule('ns/r/a', ['ns/llama', 'ns/v6'], hc),
        rule('ns/r/b', ['ns/llama'], hc), // same endpoints and settings: no duplicate
        rule('ns/r/c', ['ns/llama'], { ...hc, path: '/ready' }),
        rule('ns/r/d', ['ns/other']), // no check
      ],
    },
    endpoints: {
      'ns/llama': {
        endpoints: [
          { address: '10.0.0.1', port: 8000, scheme: 'http', state: 'ready' },
          { address: '10.0.0.2', port: 8000, scheme: 'http', state: 'draining' },
        ],
      },
      'ns/v6': { endpoints: [{ address: 'fd00::1', port: 8000, scheme: 'https', state: 'ready' }] },
      'ns/other': { endpoints: [{ address: '10.0.0.9', port: 8000, scheme: 'http', state: 'ready' }] },
    },
  } as unknown as RoutingTable;
  assert.deepEqual(
    healthTargets(table).map((t) => `${t.origin}${t.path}`),
    [
      'http://10.0.0.1:8000/health',
      'http://10.0.0.2:8000/health',
      'https://[fd00::1]:8000/health',
      'http://10.0.0.1:8000/ready',
      'http://10.0.0.2:8000/ready',
    ],
  );
  assert.deepEqual(healthTargets(table)[0], { origin: 'http://10.0.0.1:8000', ...hc });
});
