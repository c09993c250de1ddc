/**
 * The /api/v1/status document built from the controller's state: proxies in sync or not, route
 * conditions, rollout progress, and what a follower can (not) say.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ClusterState } from '../../../src/api/cluster-state.ts';
import type { ResourceStatus } from '../../../src/compiler/compile.ts';
import type { ProxyView } from '../../../src/controlplane/push-server.ts';
import { buildStatus, type StatusApiInput } from '../../../src/controlplane/status-api.ts';

const v = (term: number, seq: number) => ({ term, seq });
const cond = (type: string, status: string, reason: string, message = '') => ({
  type,
  status,
  reason,
  message,
  observedGeneration: 1,
});

const proxies: ProxyView[] = [
  {
    id: 'proxy-a',
    connected: true,
    lastAck: { proxy: 'proxy-a', version: v(2, 5), hash: 'h5', ok: true, at: Date.UTC(2026, 10, 24) },
    applied: v(2, 5),
    refused: undefined,
    endpointsDown: undefined,
  },
  {
    id: 'proxy-b',
    connected: true,
    lastAck: { proxy: 'proxy-b', version: v(2, 5), hash: 'h5', ok: false, reason: 'bad regex', at: 0 },
    applied: v(2, 4),
    refused: { version: v(2, 5), reason: 'bad regex' },
    endpointsDown: undefined,
  },
  {
    id: 'proxy-c',
    connected: false,
    lastAck: undefined,
    applied: undefined,
    refused: undefined,
    endpointsDown: undefined,
  },
];

const statuses = [
  {
    kind: 'ModelRoute',
    namespace: 'ml',
    name: 'chat',
    status: {
      observedGeneration: 3,
      conditions: [
        cond('Accepted', 'True', 'Accepted'),
        cond('ResolvedRefs', 'False', 'BackendNotFound', 'service ml/llama not found'),
        cond('Programmed', 'False', 'NotProgrammed', '1/2 proxies'),
      ],
    },
  },
  {
    kind: 'CanaryRollout',
    namespace: 'ml',
    name: 'chat-v2',
    status: { observedGeneration: 1, conditions: [], servedWeight: 20 },
  },
] as ResourceStatus[];

const state = {
  modelRoutes: [
    { metadata: { name: 'chat', namespace: 'ml' }, spec: { rules: [{}, {}] } },
    { metadata: { name: 'embed' }, spec: { rules: [{}] } },
  ],
  canaryRollouts: [
    {
      metadata: { name: 'chat-v2', namespace: 'ml' },
      spec: { steps: [{ setWeight: 20 }, { pause: {} }, { setWeight: 60 }] },
      status: {
        phase: 'Paused',
        currentStep: 1,
        stepWeight: 20,
        servedWeight: 10,
        message: 'step 2/3: paused until resumed',
        lastAnalysis: { verdict: 'Pass', message: 'ok', at: '2026-11-24T00:00:00Z' },
        history: [
          { weight: 0, at: '2026-11-24T00:00:00Z', reason: 'started' },
          { weight: 20, at: '2026-11-24T00:01:00Z', reason: 'step 1' },
        ],
      },
    },
  ],
} as unknown as Pick<ClusterState, 'modelRoutes' | 'canaryRollouts'>;

const input: StatusApiInput = {
  identity: 'controller-0',
  leader: true,
  term: 2,
  version: v(2, 5),
  hash: 'h5',
  publishedAt: Date.UTC(2026, 10, 24, 1),
  proxies,
  statuses,
  state,
};

test('the leader: table version, proxies in sync or refused, routes and rollouts', () => {
  const s = buildStatus(input);
  assert.deepEqual(s.controller, { identity: 'controller-0', leader: true, term: 2 });
  assert.deepEqual(s.table, { version: '2.5', hash: 'h5', publishedAt: '2026-11-24T01:00:00.000Z' });
  assert.deepEqual(s.proxies, [
    {
      id: 'proxy-a',
      connected: true,
      appliedVersion: '2.5',
      inSync: true,
      refused: null,
      lastSeen: '2026-11-24T00:00:00.000Z',
    },
    {
      id: 'proxy-b',
      connected: true,
      appliedVersion: '2.4',
      inSync: false,
      refused: { version: '2.5', reason: 'bad regex' },
      lastSeen: '1970-01-01T00:00:00.000Z',
    },
    { id: 'proxy-c', connected: false, appliedVersion: null, inSync: false, refused: null, lastSeen: null },
  ]);
  assert.deepEqual(s.routes, [
    {
      namespace: 'default',
      name: 'embed',
      observedGeneration: 0,
      rules: 1,
      conditions: { Accepted: null, ResolvedRefs: null, Programmed: null },
    },
    {
      namespace: 'ml',
      name: 'chat',
      observedGeneration: 3,
      rules: 2,
      conditions: {
        Accepted: { status: 'True', reason: 'Accepted', message: '' },
        ResolvedRefs: { status: 'False', reason: 'BackendNotFound', message: 'service ml/llama not found' },
        Programmed: { status: 'False', reason: 'NotProgrammed', message: '1/2 proxies' },
      },
    },
  ]);
  assert.deepEqual(s.rollouts, [
    {
      namespace: 'ml',
      name: 'chat-v2',
      phase: 'Paused',
      currentStep: 1,
      steps: 3,
      stepWeight: 20,
      // The compiled share (what the table serves now) wins over the stored one.
      servedWeight: 20,
      message: 'step 2/3: paused until resumed',
      lastVerdict: { verdict: 'Pass', message: 'ok', at: '2026-11-24T00:00:00Z' },
      history: [
        { weight: 0, at: '2026-11-24T00:00:00Z', reason: 'started' },
        { weight: 20, at: '2026-11-24T00:01:00Z', reason: 'step 1' },
      ],
    },
  ]);
  assert.doesNotThrow(() => JSON.parse(JSON.stringify(s)));
});

test('a follower has no table version, so no proxy is in sync; before the first compile it is empty', () => {
  const s = buildStatus({ ...input, leader: false, version: undefined });
  assert.deepEqual(s.table, { version: null, hash: 'h5', publishedAt: null });
  assert.ok(s.proxies.every((p) => !p.inSync));
  const empty = buildStatus({ ...input, proxies: [], statuses: [], state: undefined, hash: undefined });
  assert.deepEqual([empty.proxies, empty.routes, empty.rollouts, empty.table.hash], [[], [], [], null]);
});
