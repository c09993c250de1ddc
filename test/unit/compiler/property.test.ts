/**
 * Properties of compile(): it never throws and reports every custom resource exactly once, whatever
 * a source hands it; and for valid input its output is deterministic, independent of the order of
 * the input lists, and every rule's weights are normalised.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { ClusterState } from '../../../src/api/cluster-state.ts';
import { compile } from '../../../src/compiler/compile.ts';
import { WEIGHT_TOTAL } from '../../../src/routing-table/types.ts';
import { API } from './helpers.ts';

const RUNS = { seed: 42, numRuns: 300 };

const LISTS = [
  ['modelRoutes', 'ModelRoute'],
  ['rateLimitPolicies', 'RateLimitPolicy'],
  ['canaryRollouts', 'CanaryRollout'],
] as const;

/** The statuses compile() must produce: one per Kind/namespace/name, as the compiler identifies objects. */
function expectedStatusKeys(state: unknown): Set<string> {
  const keys = new Set<string>();
  if (typeof state !== 'object' || state === null) return keys;
  for (const [field, kind] of LISTS) {
    const list = (state as Record<string, unknown>)[field];
    if (!Array.isArray(list)) continue;
    list.forEach((raw, i) => {
      const meta =
        typeof raw === 'object' && raw !== null ? (raw as { metadata?: unknown }).metadata : undefined;
      const m = (typeof meta === 'object' && meta !== null ? meta : {}) as Record<string, unknown>;
      const name = typeof m.name === 'string' && m.name !== '' ? m.name : `<unnamed-${i}>`;
      const ns = typeof m.namespace === 'string' && m.namespace !== '' ? m.namespace : 'default';
      keys.add(`${kind}/${ns}/${name}`);
    });
  }
  return keys;
}

function checkStatuses(state: unknown, result: ReturnType<typeof compile>): void {
  const keys = result.statuses.map((s) => `${s.kind}/${s.namespace}/${s.name}`);
  assert.equal(new Set(keys).size, keys.length, `duplicate statuses: ${keys.join(', ')}`);
  assert.deepEqual(new Set(keys), expectedStatusKeys(state));
  for (const s of result.statuses) {
    assert.deepEqual(
      s.status.conditions.map((c) => c.type),
      ['Accepted', 'ResolvedRefs', 'Programmed'],
    );
  }
}

function checkWeights(result: ReturnType<typeof compile>): void {
  for (const rule of result.table.routes.rules) {
    const sum = rule.backends.reduce((a, b) => a + b.weight, 0);
    assert.ok(
      sum === WEIGHT_TOTAL || rule.backends.every((b) => b.weight === 0),
      `${rule.id}: weights ${rule.backends.map((b) => b.weight).join('/')}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// (a) Anything at all.

const junk = fc.anything({ maxDepth: 3 });
const maybe = <T>(arb: fc.Arbitrary<T>) => fc.oneof(arb, arb, arb, junk);
const name = fc.constantFrom('a', 'b', 'route-1', 'svc', 'x.y', '', 'Bad_Name', 'default');
const kind = fc.constantFrom('ModelRoute', 'RateLimitPolicy', 'CanaryRollout', 'Service', 'Other');

const metadata = fc.oneof(
  fc.record(
    {
      name: maybe(name),
      namespace: maybe(fc.constantFrom('default', 'ns1', '', 'NS')),
      generation: maybe(fc.integer({ min: -2, max: 5 })),
      creationTimestamp: maybe(fc.constantFrom('2024-01-01T00:00:00Z', '2025-01-01T00:00:00Z', 'soon')),
    },
    { requiredKeys: [] },
  ),
  fc.constant(null),
  junk,
);

const backend = fc.record(
  {
    name: maybe(fc.constantFrom('stable', 'canary', 'b')),
    weight: maybe(fc.integer({ min: -1, max: 3 })),
    service: maybe(
      fc.record(
        { name: maybe(fc.constantFrom('svc', 'other')), port: maybe(fc.constantFrom(80, 0, 8080)) },
        { requiredKeys: [] },
      ),
    ),
    urls: maybe(
      fc.array(
        fc.constantFrom(
          'http://10.0.0.1:8000',
          'https://x.example',
          'http://a:99999',
          'ftp://x',
          'http://[::1]',
        ),
        { maxLength: 2 },
      ),
    ),
    protocol: maybe(fc.constantFrom('HTTP', 'GRPC', 'SPDY')),
  },
  { requiredKeys: [] },
);

const match = fc.record(
  {
    path: maybe(
      fc.record(
        {
          type: maybe(fc.constantFrom('Exact', 'PathPrefix', 'RegularExpression')),
          value: maybe(fc.constantFrom('/', '/v1', 'v1', '(', '/.*')),
        },
        { requiredKeys: [] },
      ),
    ),
    method: maybe(fc.constantFrom('GET', 'POST', 'get')),
    model: maybe(
      fc.record(
        {
          type: maybe(fc.constantFrom('Exact', 'Glob', 'Regex')),
          value: maybe(fc.constantFrom('m', 'm-*', '')),
        },
        { requiredKeys: [] },
      ),
    ),
    headers: maybe(
      fc.array(
        fc.record(
          {
            name: maybe(fc.constantFrom('x-a', 'X-B', 'bad header')),
            type: maybe(fc.constantFrom('Exact', 'RegularExpression')),
            value: maybe(fc.constantFrom('1', '[')),
          },
          { requiredKeys: [] },
        ),
        { maxLength: 2 },
      ),
    ),
  },
  { requiredKeys: [] },
);

const routeSpec = fc.record(
  {
    hostnames: maybe(
      fc.array(fc.constantFrom('a.example.com', '*.example.com', 'UPPER.example.com'), { maxLength: 2 }),
    ),
    maxRequestBodySize: maybe(fc.constantFrom('1Mi', '0', 'big')),
    rules: maybe(
      fc.array(
        fc.record(
          {
            name: maybe(fc.constantFrom('rule-0', 'rule-1', 'main')),
            matches: maybe(fc.array(match, { maxLength: 2 })),
            backends: maybe(fc.array(backend, { maxLength: 3 })),
            loadBalancing: maybe(
              fc.record(
                {
                  algorithm: maybe(fc.constantFrom('RoundRobin', 'ConsistentHash')),
                  consistentHash: maybe(
                    fc.record({ header: maybe(fc.constant('X-User')) }, { requiredKeys: [] }),
                  ),
                },
                { requiredKeys: [] },
              ),
            ),
            timeouts: maybe(
              fc.record({ connect: maybe(fc.constantFrom('1s', '1x', '')) }, { requiredKeys: [] }),
            ),
          },
          { requiredKeys: [] },
        ),
        { maxLength: 3 },
      ),
    ),
  },
  { requiredKeys: [] },
);

const policySpec = fc.record(
  {
    targetRefs: maybe(
      fc.array(
        fc.record(
          { name: maybe(name), kind: maybe(fc.constantFrom('ModelRoute', 'Service')) },
          { requiredKeys: [] },
        ),
        { maxLength: 2 },
      ),
    ),
    limits: maybe(
      fc.array(
        fc.record(
          {
            name: maybe(fc.constantFrom('l', 'm')),
            key: maybe(
              fc.array(
                fc.record(
                  {
                    type: maybe(fc.constantFrom('Consumer', 'Header', 'Nope')),
                    name: maybe(fc.constant('x')),
                  },
                  { requiredKeys: [] },
                ),
                { maxLength: 2 },
              ),
            ),
            algorithm: maybe(fc.constantFrom('FixedWindow', 'TokenBucket')),
            amount: maybe(fc.integer({ min: 0, max: 10 })),
            period: maybe(fc.constantFrom('1m', '1d')),
            burst: maybe(fc.integer({ min: 0, max: 3 })),
          },
          { requiredKeys: [] },
        ),
        { maxLength: 2 },
      ),
    ),
    onExceeded: maybe(
      fc.record(
        {
          action: maybe(fc.constantFrom('Reject', 'Queue')),
          maxQueue: maybe(fc.integer({ min: 0, max: 3 })),
          maxWait: maybe(fc.constant('1s')),
        },
        { requiredKeys: [] },
      ),
    ),
  },
  { requiredKeys: [] },
);

const rolloutSpec = fc.record(
  {
    routeRef: maybe(fc.record({ name: maybe(name) }, { requiredKeys: [] })),
    stableBackend: maybe(fc.constantFrom('stable', 'b', 'canary')),
    canaryBackend: maybe(fc.constantFrom('canary', 'stable')),
    weight: maybe(fc.integer({ min: -1, max: 101 })),
    steps: maybe(
      fc.array(
        fc.record(
          { setWeight: maybe(fc.integer({ min: 0, max: 100 })), pause: maybe(fc.constant({})) },
          { requiredKeys: [] },
        ),
        { maxLength: 2 },
      ),
    ),
  },
  { requiredKeys: [] },
);

const customResource = (spec: fc.Arbitrary<unknown>) =>
  fc.oneof(
    fc.record(
      {
        apiVersion: maybe(fc.constantFrom(API, 'v1')),
        kind: maybe(kind),
        metadata,
        spec: maybe(spec),
        status: maybe(
          fc.record({ stepWeight: maybe(fc.integer({ min: -1, max: 101 })) }, { requiredKeys: [] }),
        ),
      },
      { requiredKeys: [] },
    ),
    junk,
  );

/** Any of the three kinds in any list: a source may mis-file an object. */
const anyCustomResource = fc.oneof(
  customResource(routeSpec),
  customResource(policySpec),
  customResource(rolloutSpec),
);

const serviceLike = fc.oneof(
  fc.record(
    {
      kind: fc.constant('Service'),
      metadata,
      spec: maybe(
        fc.record(
          {
            type: maybe(fc.constantFrom('ClusterIP', 'ExternalName')),
            externalName: maybe(fc.constantFrom('api.example.com', '')),
            ports: maybe(
              fc.array(
                fc.record(
                  { name: maybe(fc.constantFrom('http', '')), port: maybe(fc.constantFrom(80, 8080)) },
                  { requiredKeys: [] },
                ),
                { maxLength: 2 },
              ),
            ),
          },
          { requiredKeys: [] },
        ),
      ),
    },
    { requiredKeys: [] },
  ),
  junk,
);

const sliceLike = fc.oneof(
  fc.record(
    {
      kind: fc.constant('EndpointSlice'),
      metadata: fc.oneof(
        fc.record(
          {
            name: maybe(fc.constantFrom('s1', 's2')),
            namespace: maybe(fc.constant('default')),
            labels: maybe(
              fc.record(
                { 'kubernetes.io/service-name': maybe(fc.constantFrom('svc', 'other')) },
                { requiredKeys: [] },
              ),
            ),
          },
          { requiredKeys: [] },
        ),
        metadata,
      ),
      addressType: maybe(fc.constantFrom('IPv4', 'IPv6', 'FQDN', 'Other')),
      ports: maybe(
        fc.array(
          fc.record(
            {
              name: maybe(fc.constantFrom('http', '', null)),
              port: maybe(fc.constantFrom(8000, 0, 70000, null)),
            },
            { requiredKeys: [] },
          ),
          { maxLength: 2 },
        ),
      ),
      endpoints: maybe(
        fc.array(
          fc.record(
            {
              addresses: maybe(fc.array(maybe(fc.constantFrom('10.0.0.1', 'fd00::1', '')), { maxLength: 2 })),
              conditions: maybe(
                fc.record(
                  {
                    ready: maybe(fc.constantFrom(true, false, null)),
                    serving: maybe(fc.boolean()),
                    terminating: maybe(fc.boolean()),
                  },
                  { requiredKeys: [] },
                ),
              ),
              zone: maybe(fc.constant('z1')),
            },
            { requiredKeys: [] },
          ),
          { maxLength: 3 },
        ),
      ),
    },
    { requiredKeys: [] },
  ),
  junk,
);

const list = <T>(arb: fc.Arbitrary<T>) =>
  fc.oneof(fc.array(arb, { maxLength: 5 }), fc.array(arb, { maxLength: 5 }), junk);

const anyState = fc.oneof(
  fc.record(
    {
      modelRoutes: list(anyCustomResource),
      rateLimitPolicies: list(anyCustomResource),
      canaryRollouts: list(anyCustomResource),
      services: list(serviceLike),
      endpointSlices: list(sliceLike),
      secrets: list(junk),
    },
    { requiredKeys: [] },
  ),
  fc.record({ modelRoutes: fc.array(customResource(routeSpec), { maxLength: 6 }) }),
  junk,
);

describe('compile() on arbitrary input', () => {
  test('never throws and gives every custom resource exactly one status', () => {
    fc.assert(
      fc.property(anyState, (state) => {
        const result = compile(state as ClusterState);
        checkStatuses(state, result);
        checkWeights(result);
        JSON.stringify(result);
      }),
      RUNS,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// (b) Valid input.

const SERVICES = [
  {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'svc-a', namespace: 'default' },
    spec: { ports: [{ name: 'http', port: 80 }] },
  },
  {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'svc-b', namespace: 'default' },
    spec: { ports: [{ port: 8080 }] },
  },
  {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'svc-a', namespace: 'team' },
    spec: { type: 'ExternalName', externalName: 'a.example.net' },
  },
];
const SLICES = [
  ['svc-a-1', 'svc-a', 'http', 8000, ['10.0.0.2', '10.0.0.1']],
  ['svc-a-2', 'svc-a', 'http', 8000, ['10.0.0.1', '10.0.0.3']],
  ['svc-b-1', 'svc-b', undefined, 8080, ['10.0.1.1']],
].map(([n, svc, port, target, addrs]) => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name: n, namespace: 'default', labels: { 'kubernetes.io/service-name': svc } },
  addressType: 'IPv4',
  ports: [port === undefined ? { port: target } : { name: port, port: target }],
  endpoints: (addrs as string[]).map((a, i) => ({
    addresses: [a],
    conditions: { ready: i % 2 === 0, serving: true, terminating: i % 2 === 1 },
  })),
}));

const validName = fc.constantFrom('a', 'b', 'c', 'chat', 'embed', 'llm.v1');
const validNamespace = fc.constantFrom('default', 'team');
const created = fc.option(
  fc.constantFrom('2024-01-01T00:00:00Z', '2024-06-01T00:00:00Z', '2025-01-01T00:00:00Z'),
  { nil: undefined },
);
const stringMatch = fc.record({
  name: fc.constantFrom('x-tenant', 'X-Tier', 'q'),
  type: fc.constantFrom('Exact', 'RegularExpression'),
  value: fc.constantFrom('a', 'b', 'gold|silver'),
});

const validMatch = fc.record(
  {
    path: fc.oneof(
      fc.record({
        type: fc.constantFrom('Exact', 'PathPrefix'),
        value: fc.constantFrom('/', '/v1', '/v1/', '/v1/chat/completions'),
      }),
      fc.record({
        type: fc.constant('RegularExpression'),
        value: fc.constantFrom('/v1/.*', '/v[0-9]+/models'),
      }),
    ),
    method: fc.constantFrom('GET', 'POST'),
    headers: fc.array(stringMatch, { maxLength: 2 }),
    queryParams: fc.array(stringMatch, { maxLength: 1 }),
    model: fc.record({
      type: fc.constantFrom('Exact', 'Glob'),
      value: fc.constantFrom('llama-3', 'llama-*', 'gpt-?'),
    }),
  },
  { requiredKeys: [] },
);

const validBackends = fc
  .uniqueArray(
    fc.record({
      name: fc.constantFrom('stable', 'canary', 'b1', 'b2'),
      weight: fc.integer({ min: 0, max: 1000 }),
      target: fc.oneof(
        fc.record({
          service: fc.record({
            name: fc.constantFrom('svc-a', 'svc-b', 'missing'),
            port: fc.constantFrom(80, 8080),
          }),
        }),
        fc.record({
          urls: fc.uniqueArray(
            fc.constantFrom('http://10.1.0.1:8000', 'https://api.example.com', 'http://[fd00::1]:9000'),
            { minLength: 1, maxLength: 2 },
          ),
        }),
      ),
    }),
    { minLength: 1, maxLength: 4, selector: (b) => b.name },
  )
  .map((bs) => {
    const out = bs.map(({ target, ...b }) => ({ ...b, ...target }));
    if (out.every((b) => b.weight === 0)) out[0]!.weight = 1;
    return out;
  });

const validRule = fc.record(
  {
    matches: fc.array(validMatch, { maxLength: 2 }),
    backends: validBackends,
    loadBalancing: fc.constantFrom(
      { algorithm: 'RoundRobin' },
      { algorithm: 'ConsistentHash', consistentHash: { header: 'X-Session' } },
      { algorithm: 'ConsistentHash', consistentHash: { cookie: 'sid' } },
    ),
    retries: fc.record({
      attempts: fc.integer({ min: 0, max: 3 }),
      retryOn: fc.uniqueArray(fc.constantFrom('5xx', 'reset', '429'), { maxLength: 3 }),
    }),
  },
  { requiredKeys: ['backends'] },
);

const validRoute = fc
  .record({
    name: validName,
    namespace: validNamespace,
    created,
    hostnames: fc.uniqueArray(fc.constantFrom('a.example.com', '*.example.com', 'b.example.org'), {
      maxLength: 2,
    }),
    rules: fc.array(fc.tuple(fc.option(fc.constantFrom('main', 'fallback'), { nil: undefined }), validRule), {
      minLength: 1,
      maxLength: 3,
    }),
  })
  .map(({ name, namespace, created, hostnames, rules }) => {
    const used = new Set<string>();
    return {
      apiVersion: API,
      kind: 'ModelRoute',
      metadata: { name, namespace, generation: 1, ...(created ? { creationTimestamp: created } : {}) },
      spec: {
        ...(hostnames.length > 0 ? { hostnames } : {}),
        rules: rules.map(([ruleName, r]) => {
          if (ruleName === undefined || used.has(ruleName)) return r;
          used.add(ruleName);
          return { name: ruleName, ...r };
        }),
      },
    };
  });

const validPolicy = fc
  .record({
    name: validName,
    namespace: validNamespace,
    created,
    targets: fc.uniqueArray(validName, { minLength: 1, maxLength: 2 }),
  })
  .map(({ name, namespace, created, targets }) => ({
    apiVersion: API,
    kind: 'RateLimitPolicy',
    metadata: { name, namespace, ...(created ? { creationTimestamp: created } : {}) },
    spec: {
      targetRefs: targets.map((t) => ({ name: t })),
      limits: [{ name: 'l', key: [{ type: 'Consumer' }], amount: 10, period: '1m' }],
    },
  }));

const validRollout = fc
  .record({
    name: validName,
    namespace: validNamespace,
    created,
    route: validName,
    weight: fc.integer({ min: 0, max: 100 }),
    steps: fc.boolean(),
    stepWeight: fc.integer({ min: 0, max: 100 }),
  })
  .map(({ name, namespace, created, route, weight, steps, stepWeight }) => ({
    apiVersion: API,
    kind: 'CanaryRollout',
    metadata: { name, namespace, ...(created ? { creationTimestamp: created } : {}) },
    spec: {
      routeRef: { name: route },
      stableBackend: 'stable',
      canaryBackend: 'canary',
      weight,
      ...(steps ? { steps: [{ setWeight: 10 }, { pause: {} }] } : {}),
    },
    ...(steps ? { status: { stepWeight } } : {}),
  }));

const byKey = (o: { metadata: { name: string; namespace: string } }) =>
  `${o.metadata.namespace}/${o.metadata.name}`;

const validState = fc.record({
  modelRoutes: fc.uniqueArray(validRoute, { maxLength: 6, selector: byKey }),
  rateLimitPolicies: fc.uniqueArray(validPolicy, { maxLength: 3, selector: byKey }),
  canaryRollouts: fc.uniqueArray(validRollout, { maxLength: 3, selector: byKey }),
  services: fc.subarray(SERVICES),
  endpointSlices: fc.subarray(SLICES),
});

/** The same state with every list in another order (fresh objects, so no memo is shared). */
const withShuffled = validState.chain((s) =>
  fc
    .record({
      modelRoutes: fc.shuffledSubarray(s.modelRoutes, { minLength: s.modelRoutes.length }),
      rateLimitPolicies: fc.shuffledSubarray(s.rateLimitPolicies, { minLength: s.rateLimitPolicies.length }),
      canaryRollouts: fc.shuffledSubarray(s.canaryRollouts, { minLength: s.canaryRollouts.length }),
      services: fc.shuffledSubarray(s.services, { minLength: s.services.length }),
      endpointSlices: fc.shuffledSubarray(s.endpointSlices, { minLength: s.endpointSlices.length }),
    })
    .map((t) => [s, structuredClone(t)] as const),
);

const asState = (s: object) => ({ secrets: [], ...s }) as unknown as ClusterState;

describe('compile() on valid input', () => {
  test('is deterministic, independent of input order, and normalises every weight', () => {
    fc.assert(
      fc.property(withShuffled, ([s, shuffled]) => {
        const first = compile(asState(s));
        const bytes = JSON.stringify(first);
        assert.equal(JSON.stringify(compile(asState(s))), bytes);
        assert.equal(JSON.stringify(compile(asState(shuffled))), bytes);
        checkStatuses(s, first);
        checkWeights(first);
        for (const st of first.statuses) {
          if (st.kind !== 'ModelRoute') continue;
          const accepted = st.status.conditions[0]!;
          assert.notEqual(accepted.reason, 'Invalid', `${st.namespace}/${st.name}: ${accepted.message}`);
        }
        // Every match points at a rule in the table, and every backend at an endpoints part.
        const ruleIds = new Set(first.table.routes.rules.map((r) => r.id));
        for (const m of first.table.routes.matches) assert.ok(ruleIds.has(m.rule));
        for (const r of first.table.routes.rules) {
          for (const b of r.backends) assert.ok(first.table.endpoints[b.endpoints], b.endpoints);
        }
        // No endpoints part that no rule uses, and no rule of a route that is not accepted.
        const used = new Set(first.table.routes.rules.flatMap((r) => r.backends.map((b) => b.endpoints)));
        assert.deepEqual(Object.keys(first.table.endpoints).sort(), [...used].sort());
        const acceptedRoutes = new Set(
          first.statuses
            .filter((st) => st.kind === 'ModelRoute' && st.status.conditions[0]!.status === 'True')
            .map((st) => `${st.namespace}/${st.name}`),
        );
        assert.deepEqual(new Set(first.table.routes.rules.map((r) => r.route)), acceptedRoutes);
        // Rules are sorted by id, as the table's contract says.
        const ids = first.table.routes.rules.map((r) => r.id);
        assert.deepEqual(ids, [...ids].sort());
      }),
      RUNS,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// (a, again) Valid input with a few values replaced or removed anywhere, so that compile() gets
// past admission with strange Services, EndpointSlices and statuses, and admission sees near misses.

const DELETE = Symbol('delete');

/** Replaces (or deletes) one value inside `root`, chosen by walking down with `steps`. */
function mutate(root: Record<string, unknown>, steps: number[], value: unknown): void {
  let parent: Record<string, unknown> | unknown[] = root;
  for (let depth = 0; ; depth++) {
    const keys = Array.isArray(parent) ? parent.map((_, i) => i) : Object.keys(parent);
    if (keys.length === 0) return;
    const key = keys[(steps[depth] ?? 0) % keys.length]!;
    const child = (parent as Record<string | number, unknown>)[key];
    const last = depth >= steps.length - 1 || typeof child !== 'object' || child === null;
    if (last) {
      if (value === DELETE && !Array.isArray(parent))
        delete (parent as Record<string, unknown>)[key as string];
      else (parent as Record<string | number, unknown>)[key] = value === DELETE ? null : value;
      return;
    }
    parent = child as Record<string, unknown> | unknown[];
  }
}

const mutations = fc.array(
  fc.tuple(
    fc.array(fc.nat({ max: 20 }), { minLength: 1, maxLength: 8 }),
    fc.oneof(
      fc.constant(DELETE),
      fc.constant(null),
      fc.constantFrom('', 0, -1, 1.5, 'x', true, [], {}),
      junk,
    ),
  ),
  { minLength: 1, maxLength: 4 },
);

describe('compile() on valid input with a few values broken', () => {
  test('never throws and gives every custom resource exactly one status', () => {
    fc.assert(
      fc.property(validState, mutations, (s, ms) => {
        const broken = structuredClone(s) as unknown as Record<string, unknown>;
        for (const [steps, value] of ms) mutate(broken, steps, value);
        const result = compile(broken as unknown as ClusterState);
        checkStatuses(broken, result);
        checkWeights(result);
        JSON.stringify(result);
      }),
      RUNS,
    );
  });
});
