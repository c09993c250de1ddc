import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ClusterState } from '../../../src/api/cluster-state.ts';
import type { EndpointSlice } from '../../../src/api/kubernetes-types.ts';
import { compile } from '../../../src/compiler/compile.ts';
import { endpointOnlyUpdate } from '../../../src/controlplane/endpoint-fast-path.ts';

const slice = (svc: string, name: string, ips: string[], ready = true): EndpointSlice => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name, namespace: 'ml', labels: { 'kubernetes.io/service-name': svc } },
  addressType: 'IPv4',
  ports: [{ name: 'http', port: 8000 }],
  endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready } })),
});

function state(slices: EndpointSlice[]): ClusterState {
  return {
    modelRoutes: ['a', 'b'].map((svc) => ({
      apiVersion: 'modelgate.dev/v1alpha1',
      kind: 'ModelRoute' as const,
      metadata: { name: `route-${svc}`, namespace: 'ml', generation: 1 },
      spec: {
        rules: [
          {
            matches: [{ path: { value: `/${svc}` } }],
            backends: [{ name: svc, service: { name: svc, port: 80 } }],
          },
        ],
      },
    })) as ClusterState['modelRoutes'],
    rateLimitPolicies: [],
    canaryRollouts: [],
    services: ['a', 'b'].map((name) => ({
      apiVersion: 'v1' as const,
      kind: 'Service' as const,
      metadata: { name, namespace: 'ml' },
      spec: { ports: [{ name: 'http', port: 80, targetPort: 8000 }] },
    })),
    endpointSlices: slices,
    secrets: [],
  };
}

test('an endpoint-only change gives the same bytes as a full compile, touching one part', () => {
  const a1 = slice('a', 'a-1', ['10.0.0.1']);
  const b1 = slice('b', 'b-1', ['10.0.1.1']);
  const prev = state([a1, b1]);
  const prevResult = compile(prev);
  const cases: EndpointSlice[][] = [
    [slice('a', 'a-1', ['10.0.0.1', '10.0.0.2']), b1], // scale up
    [slice('a', 'a-1', ['10.0.0.1'], false), b1], // not ready
    [b1], // slice deleted
    [a1, b1, slice('a', 'a-2', ['10.0.0.9'])], // a second slice
  ];
  for (const slices of cases) {
    const next = { ...prev, endpointSlices: slices };
    const fast = endpointOnlyUpdate(prev, prevResult, next);
    assert.ok(fast, 'took the fast path');
    const full = compile(next);
    assert.equal(JSON.stringify(fast.table), JSON.stringify(full.table));
    assert.equal(fast.table.routes, prevResult.table.routes, 'the routes part is reused as it is');
    assert.equal(fast.table.endpoints['service/ml/b:80'], prevResult.table.endpoints['service/ml/b:80']);
  }
});

test('anything beyond EndpointSlices falls back to the full compile', () => {
  const prev = state([slice('a', 'a-1', ['10.0.0.1'])]);
  const prevResult = compile(prev);
  const moreServices = { ...prev, services: [...prev.services] };
  assert.ok(endpointOnlyUpdate(prev, prevResult, moreServices), 'same objects in a new array is no change');
  const changedRoute = {
    ...prev,
    modelRoutes: [structuredClone(prev.modelRoutes[0]!), prev.modelRoutes[1]!],
  };
  assert.equal(endpointOnlyUpdate(prev, prevResult, changedRoute), undefined);
  assert.equal(endpointOnlyUpdate(prev, prevResult, prev), prevResult, 'nothing changed');
});
