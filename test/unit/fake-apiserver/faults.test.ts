/**
 * Fault injection and the test-side hooks: failNext, slow, dropWatches, request counters,
 * waitFor and the change sequence.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type ChangeEvent, WatchReader } from '../../support/fake-apiserver/index.ts';
import { call, type ListBody, MR_PATH, route, type StatusBody, server, TIMEOUT } from './helpers.ts';

test(
  'failNext fails the next n matching requests with a Status, then lets them through',
  TIMEOUT,
  async (t) => {
    const s = await server(t);
    s.apply(route('a'));
    s.failNext(2, { status: 500, match: (r) => r.verb === 'list' && r.resource === 'modelroutes' });
    s.failNext(1, { status: 429, message: 'slow down', match: (r) => r.verb === 'get' });

    assert.equal((await call(s, 'GET', '/api/v1/namespaces/ml/services')).status, 200, 'not matched');
    const first = await call<StatusBody>(s, 'GET', MR_PATH);
    assert.equal(first.status, 500);
    assert.equal(first.body.reason, 'InternalError');
    assert.equal(first.body.kind, 'Status');
    assert.equal((await call(s, 'GET', MR_PATH)).status, 500);
    assert.equal((await call<ListBody>(s, 'GET', MR_PATH)).body.items.length, 1);

    const limited = await call<StatusBody>(s, 'GET', `${MR_PATH}/a`);
    assert.equal(limited.status, 429);
    assert.equal(limited.body.message, 'slow down');
    assert.equal(limited.body.reason, 'TooManyRequests');
    assert.equal((await call(s, 'GET', `${MR_PATH}/a`)).status, 200);
  },
);

test('failNext on a watch answers the HTTP status instead of a stream', TIMEOUT, async (t) => {
  const s = await server(t);
  s.failNext(1, { status: 503, match: (r) => r.verb === 'watch' });
  const w = await WatchReader.open(`${s.url}${MR_PATH}?watch=true`);
  assert.equal(w.status, 503);
  await w.ended;
  assert.equal(s.openWatches(), 0);
});

test('slow delays only matching requests', TIMEOUT, async (t) => {
  const s = await server(t);
  const undo = s.slow(300, (r) => r.resource === 'modelroutes');
  const order: string[] = [];
  const slowCall = call(s, 'GET', MR_PATH).then(() => order.push('slow'));
  await s.waitFor(() => s.count({ verb: 'list', resource: 'modelroutes' }) === 1);
  await call(s, 'GET', '/api/v1/namespaces/ml/services').then(() => order.push('fast'));
  await slowCall;
  assert.deepEqual(order, ['fast', 'slow']);
  undo();
  assert.equal((await call(s, 'GET', MR_PATH)).status, 200);
});

test(
  'dropWatches cuts streams abruptly, or ends them cleanly, optionally by resource',
  TIMEOUT,
  async (t) => {
    const s = await server(t);
    const routes = await WatchReader.open(`${s.url}${MR_PATH}?watch=true`);
    const services = await WatchReader.open(`${s.url}/api/v1/services?watch=true`);
    t.after(() => {
      routes.close();
      services.close();
    });
    await s.waitFor(() => s.openWatches() === 2);
    assert.equal(s.dropWatches({ resource: 'modelroutes' }), 1);
    const cut = await routes.ended;
    assert.equal(cut.clean, false, 'an abrupt drop is a network error to the client');
    assert.equal(s.openWatches('services'), 1);
    assert.equal(s.dropWatches({ graceful: true }), 1);
    assert.deepEqual(await services.ended, { clean: true });
    await s.waitFor(() => s.openWatches() === 0);
  },
);

test('requests are recorded in Kubernetes terms and counted', TIMEOUT, async (t) => {
  const s = await server(t);
  s.apply(route('a'));
  await call(s, 'GET', '/apis/modelgate.dev/v1alpha1');
  await call(s, 'GET', MR_PATH);
  await call(s, 'GET', '/apis/modelgate.dev/v1alpha1/modelroutes');
  await call(s, 'GET', `${MR_PATH}/a`);
  await call(s, 'PATCH', `${MR_PATH}/a/status`, { status: {} }, 'application/merge-patch+json');
  const w = await WatchReader.open(`${s.url}${MR_PATH}?watch=1`);
  t.after(() => w.close());

  assert.equal(s.count({ verb: 'list', resource: 'modelroutes' }), 2);
  assert.equal(s.count({ verb: 'list', resource: 'modelroutes', namespace: 'ml' }), 1);
  assert.deepEqual(s.counts(), {
    'list modelroutes': 2,
    'get modelroutes': 1,
    'patch modelroutes/status': 1,
    'watch modelroutes': 1,
  });
  const patch = s.requests.find((r) => r.verb === 'patch');
  assert.equal(patch?.contentType, 'application/merge-patch+json');
  assert.equal(patch?.name, 'a');
  assert.equal(patch?.group, 'modelgate.dev');
  const discovery = s.requests[0];
  assert.equal(discovery?.verb, 'get');
  assert.equal(discovery?.resource, undefined);
  s.resetRequests();
  assert.equal(s.count(), 0);
});

test('waitFor resolves on stored state, and times out with a message', TIMEOUT, async (t) => {
  const s = await server(t);
  s.apply(route('a'));
  const condition = s.waitFor((srv) =>
    srv
      .get<{ status?: { conditions?: { type: string; status: string }[] } }>('ModelRoute', 'ml', 'a')
      ?.status?.conditions?.find((c) => c.type === 'Programmed' && c.status === 'True'),
  );
  const changes: ChangeEvent[] = [];
  s.events.on('change', (ev: ChangeEvent) => changes.push(ev));
  const seq = s.changes;
  await call(
    s,
    'PATCH',
    `${MR_PATH}/a/status`,
    { status: { conditions: [{ type: 'Programmed', status: 'True' }] } },
    'application/merge-patch+json',
  );
  assert.deepEqual(await condition, { type: 'Programmed', status: 'True' });
  assert.equal(s.changes, seq + 1);
  assert.deepEqual(
    changes.map((c) => [c.type, c.resource.kind, c.object.metadata.name, c.prev?.status]),
    [['MODIFIED', 'ModelRoute', 'a', undefined]],
  );

  await assert.rejects(
    s.waitFor(() => false, { timeoutMs: 50, message: 'never' }),
    /waitFor timed out after 50 ms: never/,
  );
  assert.throws(() => s.get('Pod', 'ml', 'x'), /unknown kind/);
});
