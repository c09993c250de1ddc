/**
 * The fake API server against the real @kubernetes/client-node: typed APIs, merge-patched
 * status, ApiException codes, and an informer through changes, compaction and dropped watches.
 *
 * What these tests pin down about client-node's informer (ListWatch), for the production code:
 * - A watch that ends cleanly (server timeout) is resumed from the last resourceVersion; an
 *   ERROR 410 event clears it, so the informer relists by itself.
 * - A watch cut by a network error is NOT resumed: the informer emits `error` and stops. Whoever
 *   owns an informer must listen for `error` and call `start()` again (with a backoff).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ADD,
  ApiException,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  DELETE,
  ERROR,
  type KubernetesListObject,
  type KubernetesObject,
  makeInformer,
  PatchStrategy,
  setHeaderOptions,
  UPDATE,
  type V1Lease,
} from '@kubernetes/client-node';
import { type FakeApiServer, kubeConfigFor } from '../../support/fake-apiserver/index.ts';
import { accepted, route, server, TIMEOUT } from './helpers.ts';

const CR = { group: 'modelgate.dev', version: 'v1alpha1', plural: 'modelroutes' };
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

interface Route extends KubernetesObject {
  spec: { hostnames: string[] };
  status?: { observedGeneration?: number };
}

function informerFor(s: FakeApiServer) {
  const kc = kubeConfigFor(s.url);
  const api = kc.makeApiClient(CustomObjectsApi);
  const informer = makeInformer<Route>(
    kc,
    '/apis/modelgate.dev/v1alpha1/modelroutes',
    () => api.listClusterCustomObject(CR) as Promise<KubernetesListObject<Route>>,
  );
  const log: string[] = [];
  const errors: unknown[] = [];
  informer.on(ADD, (o) => log.push(`add ${o.metadata?.name}`));
  informer.on(UPDATE, (o) => log.push(`update ${o.metadata?.name} ${o.metadata?.resourceVersion}`));
  informer.on(DELETE, (o) => log.push(`delete ${o.metadata?.name}`));
  // Settles on the informer's first `error` (client-side: the server sees nothing of it, so
  // server.waitFor cannot be used here). Bounded by the test timeout.
  const firstError = new Promise<unknown>((resolve) => {
    informer.on(ERROR, (e) => {
      errors.push(e);
      resolve(e);
    });
  });
  return { informer, log, errors, firstError };
}

const names = (objs: readonly KubernetesObject[]) => objs.map((o) => o.metadata?.name).sort();

test('CustomObjectsApi: list, create, merge-patch status, conflicts as ApiException', TIMEOUT, async (t) => {
  const s = await server(t);
  const api = kubeConfigFor(s.url).makeApiClient(CustomObjectsApi);
  s.apply(route('a'));
  s.apply(route('b', 'other'));

  const all = await api.listClusterCustomObject(CR);
  assert.deepEqual(names(all.items), ['a', 'b']);
  assert.equal(all.metadata.resourceVersion, s.resourceVersion);
  const inMl = await api.listNamespacedCustomObject({ ...CR, namespace: 'ml', labelSelector: '!x' });
  assert.deepEqual(names(inMl.items), ['a']);

  const created = await api.createNamespacedCustomObject({ ...CR, namespace: 'ml', body: route('c') });
  assert.equal(created.metadata.generation, 1);

  const patched = await api.patchNamespacedCustomObjectStatus(
    { ...CR, namespace: 'ml', name: 'c', body: { status: accepted(1) } },
    mergePatch,
  );
  assert.deepEqual(patched.status, accepted(1));
  assert.equal(patched.metadata.generation, 1);
  assert.deepEqual(s.get<Route>('ModelRoute', 'ml', 'c')?.status, accepted(1));

  // client-node's default patch content type is JSON patch.
  const jsonPatched = await api.patchNamespacedCustomObject({
    ...CR,
    namespace: 'ml',
    name: 'c',
    body: [{ op: 'replace', path: '/spec/hostnames', value: ['new.example.com'] }],
  });
  assert.equal(jsonPatched.metadata.generation, 2);
  assert.deepEqual(jsonPatched.status, accepted(1));

  const stale = { ...created, spec: { hostnames: ['x'] } };
  await assert.rejects(
    api.replaceNamespacedCustomObject({ ...CR, namespace: 'ml', name: 'c', body: stale }),
    (e: unknown) => {
      assert.ok(e instanceof ApiException);
      assert.equal(e.code, 409);
      assert.equal(JSON.parse(e.body as string).reason, 'Conflict');
      return true;
    },
  );
  await assert.rejects(
    api.getNamespacedCustomObject({ ...CR, namespace: 'ml', name: 'zz' }),
    (e: unknown) => {
      assert.ok(e instanceof ApiException);
      assert.equal(e.code, 404);
      return true;
    },
  );
});

test('makeInformer sees ADDED, MODIFIED and DELETED', TIMEOUT, async (t) => {
  const s = await server(t);
  s.apply(route('a'));
  const { informer, log, errors } = informerFor(s);
  t.after(() => informer.stop());
  await informer.start();
  await s.waitFor(() => s.openWatches('modelroutes') === 1);
  assert.deepEqual(log, ['add a']);

  s.apply(route('b'));
  const updated = s.setStatus('ModelRoute', 'ml', 'a', accepted(1));
  s.remove('ModelRoute', 'ml', 'b');
  await untilInformer(
    informer,
    () => log.length === 4,
    () => `log ${log}`,
  );
  assert.deepEqual(log, ['add a', 'add b', `update a ${updated.metadata.resourceVersion}`, 'delete b']);
  assert.deepEqual(names(informer.list()), ['a']);
  assert.deepEqual(errors, []);
});

type Informer = ReturnType<typeof informerFor>['informer'];

/**
 * Resolves once `ok()` holds, re-checked on each of the informer's callbacks (its cache changes
 * on its own schedule, after the server's last event). Bounded, so a broken test fails.
 */
function untilInformer(informer: Informer, ok: () => boolean, what: () => string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const cb = () => {
      if (!ok()) return;
      cleanup();
      resolve();
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out waiting for the informer: ${what()}`));
    }, 15_000);
    const cleanup = () => {
      clearTimeout(timer);
      for (const verb of [ADD, UPDATE, DELETE] as const) informer.off(verb, cb);
    };
    for (const verb of [ADD, UPDATE, DELETE] as const) informer.on(verb, cb);
    cb();
  });
}

const cacheIs = (informer: Informer, expected: string[]) =>
  untilInformer(
    informer,
    () => JSON.stringify(names(informer.list())) === JSON.stringify(expected),
    () => `cache ${JSON.stringify(names(informer.list()))}, want ${JSON.stringify(expected)}`,
  );

test(
  'after compaction a cleanly ended watch gets 410 and the informer relists by itself',
  TIMEOUT,
  async (t) => {
    const s = await server(t);
    s.apply(route('a'));
    s.apply(route('b'));
    const { informer, log, errors } = informerFor(s);
    t.after(() => informer.stop());
    await informer.start();
    await s.waitFor(() => s.openWatches('modelroutes') === 1);
    const lists = s.count({ verb: 'list', resource: 'modelroutes' });

    // Hold the informer's next watch so that changes and compaction happen while it reconnects.
    const release = s.hold((r) => r.verb === 'watch');
    s.dropWatches({ graceful: true });
    await s.waitFor(() => s.count({ verb: 'watch', resource: 'modelroutes' }) === 2);
    s.apply(route('a', 'ml', { spec: { hostnames: ['changed'] } }));
    s.remove('ModelRoute', 'ml', 'b');
    s.apply(route('c'));
    s.compact();
    release();

    await s.waitFor(() => s.count({ verb: 'list', resource: 'modelroutes' }) > lists, { message: 'relist' });
    await s.waitFor(() => s.openWatches('modelroutes') === 1, { message: 'watch reopened' });
    await cacheIs(informer, ['a', 'c']);
    assert.ok(log.includes('delete b'), String(log));
    assert.ok(log.includes('add c'), String(log));
    assert.ok(
      log.some((l) => l.startsWith('update a')),
      String(log),
    );
    assert.deepEqual(errors, [], 'a 410 is handled inside the informer');

    // And it is live again.
    s.apply(route('d'));
    await cacheIs(informer, ['a', 'c', 'd']);
  },
);

test(
  'a dropped watch stops the informer with an error; start() again recovers via 410 and relist',
  TIMEOUT,
  async (t) => {
    const s = await server(t);
    s.apply(route('a'));
    const { informer, log, firstError } = informerFor(s);
    t.after(() => informer.stop());
    await informer.start();
    await s.waitFor(() => s.openWatches('modelroutes') === 1);
    const lists = s.count({ verb: 'list', resource: 'modelroutes' });
    const watches = s.count({ verb: 'watch', resource: 'modelroutes' });

    // Changes the informer never hears about, then history it cannot resume from.
    s.pause();
    s.apply(route('b'));
    s.remove('ModelRoute', 'ml', 'a');
    s.compact();
    s.dropWatches();
    s.resume();

    const error = (await firstError) as Error;
    assert.match(String(error), /terminated/, 'undici reports the cut connection');
    assert.equal(s.count({ verb: 'watch', resource: 'modelroutes' }), watches, 'it did not reconnect');
    assert.deepEqual(names(informer.list()), ['a'], 'the cache is stale until restarted');

    // What the production code must do on `error`: start again.
    await informer.start();
    await s.waitFor(() => s.count({ verb: 'list', resource: 'modelroutes' }) > lists, { message: 'relist' });
    await cacheIs(informer, ['b']);
    assert.ok(log.includes('delete a') && log.includes('add b'), String(log));
    await s.waitFor(() => s.openWatches('modelroutes') === 1, { message: 'watch reopened' });
    s.apply(route('c'));
    await cacheIs(informer, ['b', 'c']);
  },
);

test('an injected error on the watch request also stops the informer until start()', TIMEOUT, async (t) => {
  const s = await server(t);
  const { informer, firstError } = informerFor(s);
  t.after(() => informer.stop());
  s.failNext(1, { status: 500, match: (r) => r.verb === 'watch' });
  await informer.start();
  assert.equal(((await firstError) as { statusCode?: number }).statusCode, 500);
  await informer.start();
  await s.waitFor(() => s.openWatches('modelroutes') === 1);
  s.apply(route('a'));
  await cacheIs(informer, ['a']);
});

test('CoordinationV1Api leases: one creator wins, stale renewals conflict', TIMEOUT, async (t) => {
  const s = await server(t);
  const leases = kubeConfigFor(s.url).makeApiClient(CoordinationV1Api);
  const lease = (holder: string): V1Lease => ({
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: 'modelgate-controller', namespace: 'ml' },
    spec: { holderIdentity: holder, leaseDurationSeconds: 15, leaseTransitions: 0, renewTime: new Date() },
  });
  const results = await Promise.allSettled(
    ['r1', 'r2', 'r3'].map((id) => leases.createNamespacedLease({ namespace: 'ml', body: lease(id) })),
  );
  const won = results.filter((r) => r.status === 'fulfilled');
  assert.equal(won.length, 1);
  for (const r of results) {
    if (r.status === 'rejected') assert.equal((r.reason as ApiException<unknown>).code, 409);
  }

  // Every replica read the same Lease; each tries to take it over with that resourceVersion.
  const read = await leases.readNamespacedLease({ namespace: 'ml', name: 'modelgate-controller' });
  // client-node quirk: renewTime is typed Date but deserialised as the server's string (MicroTime,
  // six fractional digits). Code comparing lease times must parse it.
  const renew = read.spec?.renewTime as unknown;
  assert.equal(typeof renew, 'string');
  assert.match(renew as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  const takeovers = await Promise.allSettled(
    ['r1', 'r2', 'r3'].map((id) =>
      leases.replaceNamespacedLease({
        namespace: 'ml',
        name: 'modelgate-controller',
        body: { ...read, spec: { ...read.spec, holderIdentity: id, leaseTransitions: 1 } },
      }),
    ),
  );
  const winners = takeovers.filter((r) => r.status === 'fulfilled');
  assert.equal(winners.length, 1, 'mutual exclusion: exactly one replica holds the lease');
  const holder = (winners[0] as PromiseFulfilledResult<V1Lease>).value.spec?.holderIdentity;
  assert.equal(s.get<V1Lease>('Lease', 'ml', 'modelgate-controller')?.spec?.holderIdentity, holder);
});

test('CoreV1Api events are recorded', TIMEOUT, async (t) => {
  const s = await server(t);
  const core = kubeConfigFor(s.url).makeApiClient(CoreV1Api);
  await core.createNamespacedEvent({
    namespace: 'ml',
    body: {
      metadata: { generateName: 'chat.' },
      involvedObject: { kind: 'ModelRoute', name: 'chat', namespace: 'ml' },
      reason: 'Accepted',
      message: 'route accepted',
      type: 'Normal',
    },
  });
  const [event] = s.recordedEvents('ml');
  assert.equal(event?.reason, 'Accepted');
  assert.equal(event?.kind, 'Event');
});
