/**
 * The Kubernetes source against the fake API server: what it sees (every kind, before and after
 * start, all namespaces or a set), the ClusterState it builds (stamped list items, identity of
 * unchanged objects, a table the compiler resolves), its debounce (fake timers), and recovery
 * without help from 500s, dropped and stalled watches and 410 Gone.
 *
 * No fixed sleeps: tests wait on delivered states (`nextChange`), on the fake server's own
 * `waitFor` (requests, watches), or on fake timers; every wait is bounded.
 */
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import type { KubernetesObject } from '@kubernetes/client-node';
import type { ClusterState } from '../../../src/api/cluster-state.ts';
import { compile } from '../../../src/compiler/compile.ts';
import {
  KubernetesSource,
  type KubernetesSourceOptions,
} from '../../../src/sources/kubernetes/kubernetes-source.ts';
import { ResilientInformer } from '../../../src/sources/kubernetes/resilient-informer.ts';
import { type FakeApiServer, kubeConfigFor } from '../../support/fake-apiserver/index.ts';
import {
  badRoute,
  endpointSlice,
  FakeTimers,
  fakeApi,
  rateLimitPolicy,
  secret,
  service,
  serviceRoute,
  TIMEOUT,
  WAIT_MS,
  within,
} from './kube-support.ts';

const KINDS = 6;

/** What every object in a ClusterState has (client-node's KubernetesObject types dates as Date). */
interface Obj {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; generation?: number };
}
const API_V = 'modelgate.dev/v1alpha1';

function source(
  t: TestContext,
  api: FakeApiServer,
  opts: Partial<KubernetesSourceOptions> = {},
): { src: KubernetesSource; errors: { kind: string; err: unknown; ms: number }[] } {
  const errors: { kind: string; err: unknown; ms: number }[] = [];
  const src = new KubernetesSource({
    kc: kubeConfigFor(api.url),
    onChange: () => {},
    onError: (kind, err, ms) => errors.push({ kind, err, ms }),
    debounceMs: 20,
    maxDebounceMs: 200,
    relistIntervalMs: 0,
    ...opts,
  });
  t.after(() => src.stop());
  return { src, errors };
}

/** The current state once `pred` holds for it, waiting on deliveries (bounded). */
async function until(
  src: KubernetesSource,
  pred: (s: ClusterState) => boolean,
  what: string,
  ms = WAIT_MS,
): Promise<ClusterState> {
  const deadline = performance.now() + ms;
  for (;;) {
    const s = src.state();
    if (pred(s)) return s;
    await within(src.nextChange(), what, Math.max(1, deadline - performance.now()));
  }
}

const names = (list: readonly Obj[]) =>
  list.map((o) => `${o.metadata?.namespace}/${o.metadata?.name}`).sort();

const has = (list: readonly Obj[], ns: string, name: string) =>
  list.some((o) => o.metadata?.namespace === ns && o.metadata?.name === name);

function find<T extends Obj>(list: readonly T[], ns: string, name: string): T {
  const o = list.find((x) => x.metadata?.namespace === ns && x.metadata?.name === name);
  assert.ok(o, `${ns}/${name} is in the state`);
  return o;
}

/** For client-side conditions nothing announces: re-checked every few ms, bounded. */
async function poll(pred: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
  const deadline = performance.now() + ms;
  while (!pred()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Waits until every informer has an open watch (so a drop or pause hits all of them). */
const watching = (api: FakeApiServer, n = KINDS) =>
  api.waitFor((s) => s.openWatches() === n, { timeoutMs: WAIT_MS, message: `${n} open watches` });

function seed(api: FakeApiServer): void {
  api.apply(service('vllm', 'ml'));
  api.apply(endpointSlice('vllm-1', 'ml', 'vllm', ['10.0.0.1']));
  api.apply(serviceRoute('chat', 'ml'));
  api.apply(secret('token', 'ml'));
  api.apply(rateLimitPolicy('limits', 'ml', 'chat'));
  api.apply(serviceRoute('embed', 'other'));
  api.apply(service('vllm', 'other'));
}

test(
  'sees every kind created before start, in all namespaces, with kind and apiVersion stamped',
  TIMEOUT,
  async (t) => {
    const api = await fakeApi(t);
    seed(api);
    api.apply({
      apiVersion: API_V,
      kind: 'CanaryRollout',
      metadata: { name: 'canary', namespace: 'ml' },
      spec: { routeRef: { name: 'chat' }, stableBackend: 'b', canaryBackend: 'c', steps: [{ weight: 10 }] },
    });
    const delivered: ClusterState[] = [];
    const { src } = source(t, api, { onChange: (s) => delivered.push(s) });
    const state = await within(src.start(), 'start');

    assert.equal(src.sequence, 1);
    assert.equal(delivered.length, 1, 'start delivers the first state');
    assert.equal(delivered[0], state);
    assert.deepEqual(names(state.modelRoutes), ['ml/chat', 'other/embed']);
    assert.deepEqual(names(state.services), ['ml/vllm', 'other/vllm']);
    assert.deepEqual(names(state.endpointSlices), ['ml/vllm-1']);
    assert.deepEqual(names(state.secrets), ['ml/token']);
    assert.deepEqual(names(state.rateLimitPolicies), ['ml/limits']);
    assert.deepEqual(names(state.canaryRollouts), ['ml/canary']);

    // One all-namespaces list per kind.
    assert.equal(api.count({ verb: 'list' }), KINDS);
    // The API server leaves apiVersion and kind off built-in list items; the source puts them back.
    const raw = (await (await fetch(`${api.url}/api/v1/services`)).json()) as { items: Obj[] };
    assert.equal(raw.items[0]?.kind, undefined, 'the fake server behaves as the real one');
    for (const [list, apiVersion, kind] of [
      [state.services, 'v1', 'Service'],
      [state.endpointSlices, 'discovery.k8s.io/v1', 'EndpointSlice'],
      [state.secrets, 'v1', 'Secret'],
      [state.modelRoutes, API_V, 'ModelRoute'],
      [state.rateLimitPolicies, API_V, 'RateLimitPolicy'],
      [state.canaryRollouts, API_V, 'CanaryRollout'],
    ] as const) {
      for (const o of list as readonly Obj[]) {
        assert.equal(o.apiVersion, apiVersion, `${kind} ${o.metadata?.name} apiVersion`);
        assert.equal(o.kind, kind, `${kind} ${o.metadata?.name} kind`);
      }
    }
    assert.ok(
      src
        .informerStates()
        .every((s) => s.synced && s.restarts === 0 && s.lastError === undefined && s.lastSyncMs > 0),
    );
    assert.equal(
      api.requests.filter((r) => r.verb === 'list' && r.namespace !== undefined).length,
      0,
      'no namespaced lists',
    );
  },
);

test(
  'sees creations, updates and deletions after start, and watch events keep kind and apiVersion',
  TIMEOUT,
  async (t) => {
    const api = await fakeApi(t);
    const { src } = source(t, api);
    const first = await within(src.start(), 'start');
    assert.equal(first.modelRoutes.length + first.services.length + first.secrets.length, 0);

    api.apply(service('vllm', 'ml'));
    api.apply(endpointSlice('vllm-1', 'ml', 'vllm', ['10.0.0.1']));
    api.apply(serviceRoute('chat', 'ml'));
    api.apply(secret('token', 'ml'));
    api.apply(rateLimitPolicy('limits', 'ops', 'chat'));
    let s = await until(
      src,
      (x) =>
        x.services.length === 1 &&
        x.endpointSlices.length === 1 &&
        x.modelRoutes.length === 1 &&
        x.secrets.length === 1 &&
        x.rateLimitPolicies.length === 1,
      'the objects created after start',
    );
    assert.equal(find(s.services, 'ml', 'vllm').kind, 'Service');
    assert.equal(find(s.endpointSlices, 'ml', 'vllm-1').apiVersion, 'discovery.k8s.io/v1');

    api.apply(endpointSlice('vllm-1', 'ml', 'vllm', ['10.0.0.1', '10.0.0.2']));
    api.apply(secret('token', 'ml', 'bmV3'));
    s = await until(
      src,
      (x) =>
        x.endpointSlices[0]?.endpoints?.length === 2 &&
        (x.secrets[0] as { data?: Record<string, string> } | undefined)?.data?.key === 'bmV3',
      'the updates',
    );

    api.remove('ModelRoute', 'ml', 'chat');
    api.remove('Service', 'ml', 'vllm');
    s = await until(src, (x) => x.modelRoutes.length === 0 && x.services.length === 0, 'the deletions');
    assert.equal(s.endpointSlices.length, 1);
  },
);

test('with a namespace set, sees those namespaces only and lists them one by one', TIMEOUT, async (t) => {
  const api = await fakeApi(t);
  api.apply(serviceRoute('a', 'ml'));
  api.apply(serviceRoute('b', 'ops'));
  api.apply(serviceRoute('c', 'other'));
  api.apply(secret('s', 'other'));
  api.apply(service('vllm', 'ops'));
  const { src } = source(t, api, { namespaces: ['ml', 'ops'] });
  const state = await within(src.start(), 'start');
  assert.deepEqual(names(state.modelRoutes), ['ml/a', 'ops/b']);
  assert.deepEqual(names(state.services), ['ops/vllm']);
  assert.deepEqual(state.secrets, []);
  assert.equal(src.informerStates().length, KINDS * 2);
  assert.equal(api.count({ verb: 'list', namespace: 'ml' }), KINDS);
  assert.equal(api.count({ verb: 'list', namespace: 'ops' }), KINDS);
  assert.equal(api.count({ verb: 'list' }), KINDS * 2, 'no all-namespaces list');

  api.apply(serviceRoute('d', 'other'));
  api.apply(serviceRoute('e', 'ops'));
  const s = await until(src, (x) => has(x.modelRoutes, 'ops', 'e'), 'ops/e');
  assert.deepEqual(names(s.modelRoutes), ['ml/a', 'ops/b', 'ops/e']);
  assert.equal(api.count({ verb: 'watch', namespace: 'other' }), 0);
});

test(
  'the state compiles: a Service backend resolves its EndpointSlice endpoints, and follows them',
  TIMEOUT,
  async (t) => {
    const api = await fakeApi(t);
    api.apply(service('vllm', 'ml'));
    api.apply(endpointSlice('vllm-1', 'ml', 'vllm', ['10.0.0.1']));
    api.apply(serviceRoute('chat', 'ml'));
    api.apply(badRoute('broken', 'ml'));
    const { src } = source(t, api);
    const state = await within(src.start(), 'start');

    const { table, statuses } = compile(state);
    const part = table.endpoints['service/ml/vllm:80'];
    assert.ok(part, `endpoints part for the Service: ${Object.keys(table.endpoints).join(', ')}`);
    assert.deepEqual(
      part.endpoints.map((e) => `${e.address}:${e.port}`),
      ['10.0.0.1:8000'],
    );
    assert.deepEqual(
      table.routes.rules.map((r) => r.id),
      ['ml/chat/rule-0'],
    );
    const chat = statuses.find((x) => x.name === 'chat');
    assert.deepEqual(
      chat?.status.conditions.map((c) => `${c.type}=${c.status}`),
      ['Accepted=True', 'ResolvedRefs=True', 'Programmed=Unknown'],
    );
    const broken = statuses.find((x) => x.name === 'broken');
    assert.equal(broken?.status.conditions[0]?.status, 'False');
    assert.equal(broken?.status.conditions[0]?.reason, 'Invalid');

    // Scale up: the next delivered state compiles to two endpoints; the routes part is unchanged.
    api.apply(endpointSlice('vllm-1', 'ml', 'vllm', ['10.0.0.1', '10.0.0.2']));
    const next = await until(src, (x) => x.endpointSlices[0]?.endpoints?.length === 2, 'the scaled slice');
    const again = compile(next);
    assert.deepEqual(
      again.table.endpoints['service/ml/vllm:80']?.endpoints.map((e) => e.address),
      ['10.0.0.1', '10.0.0.2'],
    );
    assert.equal(again.table.routes.hash, table.routes.hash);
  },
);

test('unchanged objects keep their identity from one state to the next', TIMEOUT, async (t) => {
  const api = await fakeApi(t);
  seed(api);
  const { src } = source(t, api);
  const s1 = await within(src.start(), 'start');
  const chat1 = find(s1.modelRoutes, 'ml', 'chat');

  api.apply(serviceRoute('late', 'ml'));
  api.apply(endpointSlice('vllm-1', 'ml', 'vllm', ['10.0.0.9']));
  const s2 = await until(
    src,
    (x) =>
      has(x.modelRoutes, 'ml', 'late') && x.endpointSlices[0]?.endpoints?.[0]?.addresses[0] === '10.0.0.9',
    'the new route and slice',
  );
  assert.notEqual(s2, s1);
  assert.equal(find(s2.modelRoutes, 'ml', 'chat'), chat1, 'the unchanged route is the same object');
  assert.equal(find(s2.modelRoutes, 'other', 'embed'), find(s1.modelRoutes, 'other', 'embed'));
  assert.equal(find(s2.services, 'ml', 'vllm'), find(s1.services, 'ml', 'vllm'));
  assert.equal(find(s2.secrets, 'ml', 'token'), find(s1.secrets, 'ml', 'token'));
  assert.equal(find(s2.rateLimitPolicies, 'ml', 'limits'), find(s1.rateLimitPolicies, 'ml', 'limits'));
  assert.notEqual(find(s2.endpointSlices, 'ml', 'vllm-1'), find(s1.endpointSlices, 'ml', 'vllm-1'));

  // A spec change gives a new object (the compiler must admit it again).
  api.apply({
    ...serviceRoute('chat', 'ml'),
    spec: { ...serviceRoute('chat', 'ml').spec, hostnames: ['x.example.com'] },
  });
  const s3 = await until(src, (x) => find(x.modelRoutes, 'ml', 'chat') !== chat1, 'the changed route');
  assert.equal(find(s3.modelRoutes, 'ml', 'chat').metadata?.generation, 2);
  assert.equal(find(s3.modelRoutes, 'ml', 'late'), find(s2.modelRoutes, 'ml', 'late'));
});

test('debounce: a burst of applies is delivered once, after the hold-off', TIMEOUT, async (t) => {
  const api = await fakeApi(t);
  const timers = new FakeTimers();
  const { src } = source(t, api, { timers, debounceMs: 100, maxDebounceMs: 1000 });
  await within(src.start(), 'start');
  assert.equal(src.sequence, 1);

  const N = 25;
  for (let i = 0; i < N; i++) api.apply(serviceRoute(`r-${i}`, i % 2 ? 'ml' : 'ops'));
  api.apply(service('vllm', 'ml'));
  // Every event reached the informers (each one re-arms the hold-off), but no time has passed.
  await timers.until(
    () => src.state().modelRoutes.length === N && src.state().services.length === 1,
    'the informers to see the burst',
  );
  assert.equal(src.sequence, 1, 'nothing delivered before the hold-off');

  const next = src.nextChange();
  timers.advance(99);
  assert.equal(src.sequence, 1, 'not before the hold-off has passed');
  timers.advance(1);
  assert.equal(src.sequence, 2, 'one delivery');
  const delivered = await next;
  assert.equal(delivered.modelRoutes.length, N);
  assert.equal(delivered.services.length, 1);

  timers.advance(10_000);
  assert.equal(src.sequence, 2, 'and only one: the max hold-off was cancelled too');
  assert.deepEqual(timers.pending(), []);
});

test('debounce: a continuous trickle is still delivered by the max hold-off', TIMEOUT, async (t) => {
  const api = await fakeApi(t);
  const timers = new FakeTimers();
  const { src } = source(t, api, { timers, debounceMs: 100, maxDebounceMs: 1000 });
  await within(src.start(), 'start');

  // One change every 90 ms: the 100 ms hold-off never runs out.
  let deliveredAt: number | undefined;
  let seenBefore = 0;
  for (let i = 0; i < 20 && deliveredAt === undefined; i++) {
    api.apply(serviceRoute(`t-${i}`, 'ml'));
    await timers.until(() => src.state().modelRoutes.length === i + 1, `route t-${i} in the cache`);
    seenBefore = i + 1;
    timers.advance(90);
    if (src.sequence === 2) deliveredAt = timers.now;
  }
  assert.equal(deliveredAt, 1080, 'delivered by the step that crossed the 1000 ms max hold-off');
  assert.equal(src.state().modelRoutes.length, seenBefore);
  // After the trickle stops, the rest of it (nothing) gives no further delivery.
  timers.advance(5_000);
  assert.equal(src.sequence, 2);
});

test(
  'recovers without help from 500s on list at start, and reports restarts and the last error',
  TIMEOUT,
  async (t) => {
    const api = await fakeApi(t);
    seed(api);
    api.failNext(2, { status: 500, match: (r) => r.verb === 'list' && r.resource === 'modelroutes' });
    api.failNext(1, {
      status: 500,
      message: 'etcd is sad',
      match: (r) => r.verb === 'list' && r.resource === 'secrets',
    });
    const { src, errors } = source(t, api);
    const state = await within(src.start(), 'start after the failed lists');
    assert.deepEqual(names(state.modelRoutes), ['ml/chat', 'other/embed']);
    assert.deepEqual(names(state.secrets), ['ml/token']);

    const byKind = new Map(src.informerStates().map((s) => [s.kind, s]));
    assert.equal(byKind.get('ModelRoute')?.restarts, 2);
    assert.match(byKind.get('ModelRoute')?.lastError ?? '', /injected failure \(500 InternalError\)/);
    assert.equal(byKind.get('Secret')?.restarts, 1);
    assert.equal(byKind.get('Secret')?.lastError, 'etcd is sad');
    assert.equal(byKind.get('Service')?.restarts, 0);
    assert.equal(byKind.get('Service')?.lastError, undefined);
    assert.ok(src.informerStates().every((s) => s.synced));
    assert.deepEqual(errors.map((e) => e.kind).sort(), ['ModelRoute', 'ModelRoute', 'Secret']);
    const routeDelays = errors.filter((e) => e.kind === 'ModelRoute').map((e) => e.ms);
    assert.ok(routeDelays[1]! > 0 && routeDelays[0]! > 0);
    assert.equal(api.count({ verb: 'list', resource: 'modelroutes' }), 3);

    // And it keeps working afterwards.
    api.apply(serviceRoute('later', 'ml'));
    await until(src, (x) => has(x.modelRoutes, 'ml', 'later'), 'a route created after the recovery');
  },
);

for (const graceful of [false, true]) {
  test(`changes made after watches are ${graceful ? 'ended' : 'cut'} still arrive`, TIMEOUT, async (t) => {
    const api = await fakeApi(t);
    seed(api);
    const { src } = source(t, api);
    const s1 = await within(src.start(), 'start');
    await watching(api);
    const watchesBefore = api.count({ verb: 'watch' });
    assert.equal(api.dropWatches({ graceful }), KINDS);

    api.apply(serviceRoute('after', 'ml'));
    api.apply(endpointSlice('vllm-1', 'ml', 'vllm', ['10.0.0.1', '10.0.0.3']));
    api.remove('Secret', 'ml', 'token');
    const s2 = await until(
      src,
      (x) =>
        has(x.modelRoutes, 'ml', 'after') &&
        x.endpointSlices[0]?.endpoints?.length === 2 &&
        x.secrets.length === 0,
      'the changes made after the drop',
    );
    await watching(api);
    assert.ok(api.count({ verb: 'watch' }) >= watchesBefore + KINDS, 'every informer watched again');
    assert.equal(api.count({ verb: 'list' }), KINDS, 'resumed from the resourceVersion, no relist');
    assert.equal(find(s2.modelRoutes, 'ml', 'chat'), find(s1.modelRoutes, 'ml', 'chat'));

    // A second drop is survived as well.
    api.dropWatches({ graceful });
    api.apply(serviceRoute('again', 'ml'));
    await until(src, (x) => has(x.modelRoutes, 'ml', 'again'), 'a change after a second drop');
  });
}

test('410 Gone after compaction: relists and sees the change made while disconnected', TIMEOUT, async (t) => {
  const api = await fakeApi(t);
  seed(api);
  const { src } = source(t, api);
  const s1 = await within(src.start(), 'start');
  await watching(api);
  const watchesBefore = api.count({ verb: 'watch' });

  // Hold the re-watches: the change and the compaction happen while every informer is disconnected.
  const release = api.hold((r) => r.verb === 'watch');
  api.dropWatches();
  await api.waitFor((s) => s.count({ verb: 'watch' }) >= watchesBefore + KINDS, {
    timeoutMs: WAIT_MS,
    message: 'every informer trying to watch again',
  });
  api.apply(serviceRoute('missed', 'ml'));
  api.remove('ModelRoute', 'other', 'embed');
  api.compact();
  release();

  const s2 = await until(
    src,
    (x) => has(x.modelRoutes, 'ml', 'missed') && !has(x.modelRoutes, 'other', 'embed'),
    'the change made while disconnected',
  );
  await api.waitFor((s) => s.count({ verb: 'list' }) === KINDS * 2 && s.openWatches() === KINDS, {
    timeoutMs: WAIT_MS,
    message: 'every informer relisted and watches again',
  });
  // The relist kept unchanged objects (same resourceVersion) as they were.
  assert.equal(find(s2.modelRoutes, 'ml', 'chat'), find(s1.modelRoutes, 'ml', 'chat'));
  assert.equal(find(s2.services, 'ml', 'vllm'), find(s1.services, 'ml', 'vllm'));

  api.apply(serviceRoute('after-relist', 'ml'));
  await until(src, (x) => has(x.modelRoutes, 'ml', 'after-relist'), 'a change after the relist');
});

test(
  'a stalled watch is healed by the periodic relist, which keeps unchanged objects',
  TIMEOUT,
  async (t) => {
    const api = await fakeApi(t);
    seed(api);
    const { src } = source(t, api, { relistIntervalMs: 300 });
    const s1 = await within(src.start(), 'start');
    await watching(api);

    // The watches stay open but deliver nothing (a stuck proxy, a wedged API server).
    api.pause();
    t.after(() => api.resume());
    api.apply(serviceRoute('stalled', 'ml'));
    api.apply(endpointSlice('vllm-1', 'ml', 'vllm', ['10.0.0.7']));
    const s2 = await until(
      src,
      (x) =>
        has(x.modelRoutes, 'ml', 'stalled') &&
        x.endpointSlices[0]?.endpoints?.[0]?.addresses[0] === '10.0.0.7',
      'the relist to bring the changes the stalled watch held back',
    );
    assert.ok(api.count({ verb: 'list' }) > KINDS, 'listed again');
    assert.equal(
      find(s2.modelRoutes, 'ml', 'chat'),
      find(s1.modelRoutes, 'ml', 'chat'),
      'identity kept across the relist',
    );
    assert.equal(find(s2.services, 'ml', 'vllm'), find(s1.services, 'ml', 'vllm'));
    assert.equal(find(s2.secrets, 'ml', 'token'), find(s1.secrets, 'ml', 'token'));
    assert.equal(find(s2.modelRoutes, 'other', 'embed'), find(s1.modelRoutes, 'other', 'embed'));

    api.resume();
    api.apply(serviceRoute('resumed', 'ml'));
    await until(src, (x) => has(x.modelRoutes, 'ml', 'resumed'), 'a change after resume');
  },
);

test('a periodic relist that finds nothing new delivers nothing', TIMEOUT, async (t) => {
  const api = await fakeApi(t);
  seed(api);
  const { src } = source(t, api, { relistIntervalMs: 100 });
  const s1 = await within(src.start(), 'start');
  // Three rounds of relists for every informer: the first two have completed by then.
  await api.waitFor((s) => s.count({ verb: 'list' }) >= KINDS * 4, {
    timeoutMs: WAIT_MS,
    message: 'relists',
  });
  assert.equal(src.sequence, 1, 'no delivery for an unchanged relist');
  const s2 = src.state();
  assert.equal(find(s2.modelRoutes, 'ml', 'chat'), find(s1.modelRoutes, 'ml', 'chat'));
  assert.equal(find(s2.endpointSlices, 'ml', 'vllm-1'), find(s1.endpointSlices, 'ml', 'vllm-1'));
});

// ---- the resilient informer itself ---------------------------------------------------------------

function informer(
  t: TestContext,
  api: FakeApiServer,
  opts: Partial<ConstructorParameters<typeof ResilientInformer>[0]> = {},
) {
  const errors: { err: unknown; ms: number; lastSyncMs: number }[] = [];
  let changes = 0;
  let onError: (() => void) | undefined;
  const inf: ResilientInformer<KubernetesObject> = new ResilientInformer<KubernetesObject>({
    kc: kubeConfigFor(api.url),
    path: '/api/v1/services',
    apiVersion: 'v1',
    kind: 'Service',
    onChange: () => changes++,
    onError: (err, ms) => {
      errors.push({ err, ms, lastSyncMs: inf.state.lastSyncMs });
      onError?.();
    },
    relistIntervalMs: 0,
    random: () => 1,
    ...opts,
  });
  t.after(() => inf.stop());
  /** Resolves once `n` errors have been reported (bounded). */
  const errorCount = (n: number) =>
    within(
      new Promise<void>((resolve) => {
        const check = () => {
          if (errors.length >= n) resolve();
        };
        onError = check;
        check();
      }),
      `${n} informer errors`,
    );
  return { inf, errors, errorCount, changes: () => changes };
}

test(
  'informer: the back-off doubles while the API server keeps failing, and resets after a clean restart',
  TIMEOUT,
  async (t) => {
    const api = await fakeApi(t);
    api.apply(service('vllm', 'ml'));
    const timers = new FakeTimers();
    const { inf, errors, errorCount } = informer(t, api, {
      timers,
      initialBackoffMs: 100,
      maxBackoffMs: 1000,
    });
    await within(inf.start(), 'start');
    await watching(api, 1);

    api.failNext(5, { status: 500, match: (r) => r.verb === 'watch' });
    api.dropWatches({ graceful: true }); // reconnects at once, into the failures
    for (let i = 1; i <= 5; i++) {
      await errorCount(i);
      timers.advance(errors[i - 1]!.ms);
    }
    assert.deepEqual(
      errors.map((e) => e.ms),
      [100, 200, 400, 800, 1000],
      'doubling up to the maximum (random() = 1: no jitter)',
    );
    await watching(api, 1);
    assert.equal(inf.state.restarts, 5);
    assert.match(inf.state.lastError ?? '', /Internal Server Error/);

    // A clean restart reset the back-off: the next failure waits the initial delay again.
    api.failNext(1, { status: 500, match: (r) => r.verb === 'watch' });
    api.dropWatches({ graceful: true });
    await errorCount(6);
    assert.equal(errors[5]!.ms, 100);
    timers.advance(100);
    await watching(api, 1);
    api.apply(service('late', 'ml'));
    await poll(() => inf.list().length === 2, 'the change after the recovery');
  },
);

test('informer: staleness does not improve while every attempt fails', TIMEOUT, async (t) => {
  const api = await fakeApi(t);
  api.apply(service('vllm', 'ml'));
  // The clock moves on at the first error after the watch was cut (error #3).
  const { inf, errors, errorCount } = informer(t, api, {
    now: () => (errors.length >= 3 ? 2_000 : 1_000),
    initialBackoffMs: 5,
  });

  // The first list fails twice: nothing is known until one succeeds.
  api.failNext(2, { status: 500, match: (r) => r.verb === 'list' });
  await within(inf.start(), 'start');
  assert.deepEqual(
    errors.map((e) => e.lastSyncMs),
    [0, 0],
    'no sync time before the first successful list',
  );
  assert.equal(inf.state.lastSyncMs, 1_000);
  await watching(api, 1);

  // The watch is cut and every restart fails: the sync time stays where it was.
  api.failNext(3, { status: 500, match: (r) => r.verb === 'watch' });
  api.dropWatches();
  await errorCount(5);
  await watching(api, 1);
  assert.ok(errors.length >= 5);
  for (const e of errors.slice(2)) assert.equal(e.lastSyncMs, 1_000, 'not refreshed by a failed attempt');
  await poll(() => inf.state.lastSyncMs === 2_000, 'the sync time after the successful restart');
});

test(
  'informer: a successful relist cancels a pending restart (no restart loop on a healthy informer)',
  TIMEOUT,
  async (t) => {
    const api = await fakeApi(t);
    api.apply(service('vllm', 'ml'));
    const timers = new FakeTimers();
    const { inf, errors, errorCount, changes } = informer(t, api, { timers, initialBackoffMs: 1_000 });
    await within(inf.start(), 'start');
    await watching(api, 1);
    const vllm = inf.list()[0];

    api.failNext(1, { status: 500, match: (r) => r.verb === 'watch' });
    api.dropWatches({ graceful: true });
    await errorCount(1);
    assert.deepEqual(timers.pending(), [1_000], 'a restart is pending');

    const before = changes();
    await within(inf.relist(), 'relist');
    assert.deepEqual(timers.pending(), [], 'the relist took over: no restart of the new informer');
    assert.equal(changes(), before, 'nothing changed, nothing reported');
    assert.equal(inf.list()[0], vllm, 'the unchanged object kept its identity');
    timers.advance(60_000);
    await watching(api, 1);
    assert.equal(errors.length, 1);
    assert.equal(inf.state.restarts, 0);
  },
);
