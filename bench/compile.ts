/**
 * bench/compile: compile time for a large synthetic cluster, and the cost of an endpoint-only
 * update. Prints JSON. `--quick` runs a small size once (the CI smoke); no thresholds here.
 *
 *   npm run bench:compile            10,000 routes, 50,000 endpoints
 *   npm run bench:compile -- --quick 1,000 routes, 5,000 endpoints
 */
import { parseArgs } from 'node:util';
import type { ClusterState } from '../src/api/cluster-state.ts';
import type { EndpointSlice, Service } from '../src/api/kubernetes-types.ts';
import type { ModelRoute } from '../src/api/resources.ts';
import { compile } from '../src/compiler/compile.ts';
import { indexEndpoints, resolveService, serviceEndpointsKey } from '../src/compiler/endpoints.ts';

import { withEndpointsPart } from '../src/routing-table/hash.ts';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    routes: { type: 'string' },
    runs: { type: 'string' },
  },
});
const ROUTES = Number(values.routes ?? (values.quick ? 1000 : 10000));
const SERVICES = ROUTES / 2;
const ENDPOINTS_PER_SERVICE = 10;
const RUNS = Number(values.runs ?? (values.quick ? 1 : 5));

function slice(svc: number, generation: number): EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: `svc-${svc}-abcde`,
      namespace: 'bench',
      labels: { 'kubernetes.io/service-name': `svc-${svc}` },
    },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8000, protocol: 'TCP' }],
    endpoints: Array.from({ length: ENDPOINTS_PER_SERVICE }, (_, e) => ({
      addresses: [`10.${(svc >> 8) & 255}.${svc & 255}.${e + 1 + generation}`],
      conditions: { ready: e !== 0 || generation === 0, serving: true, terminating: false },
      zone: `zone-${e % 3}`,
    })),
  };
}

/** Fresh objects every call, so admission memoisation cannot help a "cold" compile. */
function syntheticState(): ClusterState {
  const services: Service[] = [];
  const endpointSlices: EndpointSlice[] = [];
  for (let s = 0; s < SERVICES; s++) {
    services.push({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: `svc-${s}`, namespace: 'bench' },
      spec: { ports: [{ name: 'http', port: 8000, targetPort: 8000 }] },
    });
    endpointSlices.push(slice(s, 0));
  }
  const modelRoutes: ModelRoute[] = [];
  for (let r = 0; r < ROUTES; r++) {
    modelRoutes.push({
      apiVersion: 'modelgate.dev/v1alpha1',
      kind: 'ModelRoute',
      metadata: { name: `route-${r}`, namespace: 'bench', generation: 1 },
      spec: {
        hostnames: [`tenant-${r % 100}.example.com`],
        rules: [
          {
            matches: [
              {
                path: { type: 'PathPrefix', value: `/v1/tenants/${r}/chat/completions` },
                method: 'POST',
                model: { type: 'Exact', value: `model-${r % 500}` },
              },
            ],
            backends: [
              { name: 'stable', service: { name: `svc-${r % SERVICES}`, port: 8000 }, weight: 90 },
              { name: 'canary', service: { name: `svc-${(r + 1) % SERVICES}`, port: 8000 }, weight: 10 },
            ],
          },
        ],
      } as ModelRoute['spec'],
    });
  }
  return { modelRoutes, rateLimitPolicies: [], canaryRollouts: [], services, endpointSlices, secrets: [] };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const cold: number[] = [];
let state = syntheticState();
let result = compile(state);
for (let i = 0; i < RUNS; i++) {
  state = syntheticState();
  const t0 = performance.now();
  result = compile(state);
  cold.push(performance.now() - t0);
}

const warm: number[] = [];
for (let i = 0; i < RUNS; i++) {
  const t0 = performance.now();
  compile(state);
  warm.push(performance.now() - t0);
}

// Endpoint-only change: one Service's slice changes; only its part is rebuilt and re-hashed.
const update: number[] = [];
let table = result.table;
for (let i = 0; i < Math.max(RUNS, 5) * 20; i++) {
  const svc = i % SERVICES;
  const changed = slice(svc, (i % 7) + 1);
  const t0 = performance.now();
  const index = indexEndpoints(
    state.services.filter((s) => s.metadata.name === `svc-${svc}`),
    [changed],
  );
  const res = resolveService(index, 'bench', `svc-${svc}`, 8000);
  table = withEndpointsPart(table, serviceEndpointsKey('bench', `svc-${svc}`, 8000), res.part);
  update.push(performance.now() - t0);
}

const endpoints = Object.values(result.table.endpoints).reduce((n, p) => n + p.endpoints.length, 0);
const oneUpdateBytes = JSON.stringify(table.endpoints[serviceEndpointsKey('bench', 'svc-0', 8000)]).length;
process.stdout.write(
  `${JSON.stringify(
    {
      bench: 'compile',
      routes: ROUTES,
      services: SERVICES,
      endpoints,
      runs: RUNS,
      coldCompileMs: { median: +median(cold).toFixed(1), all: cold.map((x) => +x.toFixed(1)) },
      warmCompileMs: { median: +median(warm).toFixed(1) },
      endpointUpdateMs: { median: +median(update).toFixed(3), max: +Math.max(...update).toFixed(3) },
      tableBytes: JSON.stringify(result.table).length,
      endpointPartBytes: oneUpdateBytes,
      routesPartUnchangedByEndpointUpdate: table.routes.hash === result.table.routes.hash,
    },
    null,
    2,
  )}\n`,
);
