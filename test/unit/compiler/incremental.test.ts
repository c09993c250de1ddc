/**
 * An EndpointSlice change touches one endpoints part: re-resolving just that Service and swapping
 * the part in must give exactly the table a full compile gives, with the routes part untouched.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ClusterState } from '../../../src/api/cluster-state.ts';
import type { EndpointSlice } from '../../../src/api/kubernetes-types.ts';
import { compile, indexEndpoints, resolveService, serviceEndpointsKey } from '../../../src/compiler/index.ts';
import { withEndpointsPart } from '../../../src/routing-table/hash.ts';
import { route, service, slice, state } from './helpers.ts';

function baseState(slices: EndpointSlice[]): ClusterState {
  return state({
    modelRoutes: [
      route('chat', {
        rules: [
          {
            matches: [{ path: { value: '/v1/chat' } }],
            backends: [
              { name: 'a', weight: 3, service: { name: 'svc-a', port: 80 } },
              { name: 'b', weight: 1, service: { name: 'svc-b', port: 80 } },
            ],
          },
        ],
      }),
      route('embed', {
        rules: [
          {
            matches: [{ path: { value: '/v1/embeddings' } }],
            backends: [
              { name: 'b', service: { name: 'svc-b', port: 80 } },
              { name: 'c', service: { name: 'svc-c', port: 9000 } },
              { name: 'static', urls: ['http://10.9.9.9:8000'] },
            ],
          },
        ],
      }),
    ],
    services: [
      service('svc-a', [{ name: 'http', port: 80, targetPort: 8080 }]),
      service('svc-b', [{ name: 'http', port: 80, targetPort: 'http' }]),
      service('svc-c', [{ name: 'grpc', port: 9000, targetPort: 9001 }]),
    ],
    endpointSlices: slices,
  });
}

const sliceA = slice('svc-a-1', 'svc-a', [{ name: 'http', port: 8080 }], ['10.0.0.1', '10.0.0.2']);
const sliceB = slice('svc-b-1', 'svc-b', [{ name: 'http', port: 8000 }], ['10.0.1.1']);
const sliceB2 = slice('svc-b-2', 'svc-b', [{ name: 'http', port: 8000 }], ['10.0.1.9']);
const sliceC = slice('svc-c-1', 'svc-c', [{ name: 'grpc', port: 9001 }], ['10.0.2.1']);

function incrementally(before: ClusterState, after: ClusterState, svc: string, port: number) {
  const old = compile(before).table;
  const index = indexEndpoints(after.services, after.endpointSlices);
  const res = resolveService(index, 'default', svc, port);
  return { old, next: withEndpointsPart(old, serviceEndpointsKey('default', svc, port), res.part) };
}

describe('incremental endpoints update', () => {
  const cases: [string, EndpointSlice[]][] = [
    [
      'addresses change',
      [sliceA, slice('svc-b-1', 'svc-b', [{ name: 'http', port: 8000 }], ['10.0.1.2', '10.0.1.1']), sliceC],
    ],
    ['a slice is added', [sliceA, sliceB, sliceB2, sliceC]],
    ['the only slice is deleted', [sliceA, sliceC]],
    [
      'an endpoint starts terminating',
      [
        sliceA,
        {
          ...sliceB,
          endpoints: [
            { addresses: ['10.0.1.1'], conditions: { ready: false, serving: true, terminating: true } },
          ],
        },
        sliceC,
      ],
    ],
    [
      'the port number changes',
      [sliceA, slice('svc-b-1', 'svc-b', [{ name: 'http', port: 8001 }], ['10.0.1.1']), sliceC],
    ],
  ];

  for (const [name, slices] of cases) {
    test(name, () => {
      const before = baseState([sliceA, sliceB, sliceC]);
      const after = baseState(slices);
      const { old, next } = incrementally(before, after, 'svc-b', 80);
      const full = compile(after).table;
      assert.equal(JSON.stringify(next), JSON.stringify(full));
      assert.equal(full.routes.hash, old.routes.hash);
      assert.equal(next.routes, old.routes, 'the routes part is reused, not rebuilt');
      assert.notEqual(full.hash, old.hash);
      const key = serviceEndpointsKey('default', 'svc-b', 80);
      for (const k of Object.keys(full.endpoints)) {
        if (k !== key) assert.equal(full.endpoints[k]!.hash, old.endpoints[k]!.hash, k);
      }
      assert.notEqual(full.endpoints[key]!.hash, old.endpoints[key]!.hash);
    });
  }

  test('an unchanged slice gives the same table hash', () => {
    const s = baseState([sliceA, sliceB, sliceC]);
    const { old, next } = incrementally(s, baseState([sliceC, sliceB, sliceA]), 'svc-b', 80);
    assert.equal(JSON.stringify(next), JSON.stringify(old));
  });

  test('the two routes sharing svc-b share one endpoints part', () => {
    const { table } = compile(baseState([sliceA, sliceB, sliceC]));
    const refs = table.routes.rules.flatMap((r) => r.backends.map((b) => b.endpoints));
    assert.equal(refs.filter((k) => k === serviceEndpointsKey('default', 'svc-b', 80)).length, 2);
    assert.deepEqual(Object.keys(table.endpoints), [
      'service/default/svc-a:80',
      'service/default/svc-b:80',
      'service/default/svc-c:9000',
      'urls/default/embed/rule-0/static',
    ]);
  });
});
