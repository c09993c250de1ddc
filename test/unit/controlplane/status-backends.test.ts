/**
 * The backends part of /api/v1/status: endpoints joined to the proxies' health reports by
 * origin (https for a Service spoken to over TLS), with up/down/partial/unknown decided only by
 * connected proxies that report health.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ProxyView } from '../../../src/controlplane/push-server.ts';
import { buildBackends, MAX_LISTED } from '../../../src/controlplane/status-backends.ts';
import type { RoutingTable } from '../../../src/routing-table/types.ts';

const table = {
  schemaVersion: 1,
  hash: 'h',
  routes: {
    hash: 'r',
    matches: [],
    rateLimitPolicies: [],
    models: [],
    rules: [
      {
        id: 'ml/chat/llama',
        route: 'ml/chat',
        name: 'llama',
        backends: [
          { name: 'stable', weight: 8000, endpoints: 'e1', protocol: 'HTTP', modelRevision: 'v1' },
          { name: 'canary', weight: 2000, endpoints: 'e2', protocol: 'H2C', tls: { serverName: 'x' } },
          {
            name: 'broken',
            weight: 0,
            endpoints: 'e3',
            protocol: 'HTTP',
            unavailable: 'secret ml/tls not found',
          },
        ],
        canary: {
          rollout: 'ml/chat-v2',
          stableBackend: 'stable',
          canaryBackend: 'canary',
          weightPercent: 20,
        },
      },
    ],
  },
  endpoints: {
    e1: {
      hash: 'a',
      endpoints: [
        { address: '10.0.0.1', port: 8000, scheme: 'http', state: 'ready', zone: 'z1' },
        { address: '10.0.0.2', port: 8000, scheme: 'http', state: 'draining' },
        { address: 'fd00::3', port: 8000, scheme: 'http', state: 'ready' },
      ],
    },
    e2: { hash: 'b', endpoints: [{ address: '10.0.1.1', port: 9000, scheme: 'http', state: 'ready' }] },
    e3: { hash: 'c', endpoints: [{ address: '10.0.2.1', port: 80, scheme: 'http', state: 'ready' }] },
  },
} as unknown as RoutingTable;

const proxy = (id: string, connected: boolean, down?: ProxyView['endpointsDown']): ProxyView => ({
  id,
  connected,
  lastAck: undefined,
  applied: undefined,
  refused: undefined,
  endpointsDown: down,
});

const proxies = [
  proxy('a', true, {
    at: 1,
    down: [
      { origin: 'http://10.0.0.1:8000', unhealthy: true, ejected: false },
      { origin: 'http://[fd00::3]:8000', unhealthy: false, ejected: true },
      { origin: 'https://10.0.1.1:9000', unhealthy: true, ejected: true },
    ],
  }),
  proxy('b', true, { at: 1, down: [{ origin: 'http://10.0.0.1:8000', unhealthy: false, ejected: true }] }),
  // Disconnected: its stale view does not count.
  proxy('c', false, { at: 1, down: [{ origin: 'http://10.0.0.2:8000', unhealthy: true, ejected: false }] }),
  // Never reported health (an older proxy): not counted as reporting.
  proxy('d', true),
];

test('every endpoint with ?endpoints=all: down on every reporting proxy, on some, or on none; TLS by https origin', () => {
  const [stable, canary, broken] = buildBackends(table, proxies, 'all');
  assert.deepEqual(
    stable!.endpoints.map((e) => [
      e.address,
      e.state,
      e.zone,
      e.health,
      e.reporting,
      e.down.map((d) => d.proxy),
    ]),
    [
      ['10.0.0.1', 'ready', 'z1', 'down', 2, ['a', 'b']],
      ['10.0.0.2', 'draining', null, 'up', 2, []],
      ['fd00::3', 'ready', null, 'partial', 2, ['a']],
    ],
  );
  assert.deepEqual(stable!.endpoints[0]!.down, [
    { proxy: 'a', unhealthy: true, ejected: false },
    { proxy: 'b', unhealthy: false, ejected: true },
  ]);
  assert.deepEqual(stable!.counts, {
    total: 3,
    ready: 2,
    draining: 1,
    up: 1,
    down: 1,
    partial: 1,
    unknown: 0,
  });
  assert.equal(stable!.weightPercent, 80);
  assert.equal(stable!.role, 'stable');
  assert.equal(stable!.modelRevision, 'v1');
  assert.equal(canary!.role, 'canary');
  assert.equal(canary!.endpoints[0]!.health, 'partial', 'matched through https://');
  assert.equal(broken!.role, null);
  assert.equal(broken!.unavailable, 'secret ml/tls not found');
  assert.deepEqual(broken!.endpoints, [], 'an unavailable backend serves no endpoint');
  assert.equal(broken!.counts.total, 0);
});

test('by default only endpoints not up are listed; the counts still cover all', () => {
  const [stable, canary] = buildBackends(table, proxies);
  assert.deepEqual(
    stable!.endpoints.map((e) => [e.address, e.health]),
    [
      ['10.0.0.1', 'down'],
      ['fd00::3', 'partial'],
    ],
  );
  assert.equal(stable!.counts.total, 3);
  assert.equal(canary!.endpoints.length, 1);
});

test('a large endpoint set: at most MAX_LISTED listed, the rest counted as omitted', () => {
  const many = structuredClone(table) as RoutingTable;
  const eps = Array.from({ length: MAX_LISTED + 7 }, (_, i) => ({
    address: `10.9.${i >> 8}.${i & 255}`,
    port: 80,
    scheme: 'http' as const,
    state: 'ready' as const,
  }));
  many.endpoints.e1 = { hash: 'x', endpoints: eps };
  const everyDown = [
    proxy('a', true, {
      at: 1,
      down: eps.map((e) => ({ origin: `http://${e.address}:80`, unhealthy: true, ejected: false })),
    }),
  ];
  const [stable] = buildBackends(many, everyDown);
  assert.equal(stable!.endpoints.length, MAX_LISTED);
  assert.equal(stable!.endpointsOmitted, 7);
  assert.equal(stable!.counts.down, MAX_LISTED + 7);
});

test('no connected proxy reports health: unknown, not up; no table: no backends', () => {
  const [stable] = buildBackends(table, [proxy('d', true), proxy('c', false, { at: 1, down: [] })], 'all');
  assert.deepEqual(
    stable!.endpoints.map((e) => [e.health, e.reporting]),
    [
      ['unknown', 0],
      ['unknown', 0],
      ['unknown', 0],
    ],
  );
  assert.equal(stable!.counts.unknown, 3);
  assert.deepEqual(buildBackends(table, [])[0]!.endpoints, [], 'unknown is not listed by default');
  assert.deepEqual(buildBackends(undefined, []), []);
});
