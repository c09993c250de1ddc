/**
 * The fake API server over raw HTTP: discovery, CRUD, resourceVersion conflicts, generation
 * versus status, patches, selectors, pagination, lists at a resourceVersion, built-in kinds.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { StoredObject } from '../../support/fake-apiserver/index.ts';
import {
  accepted,
  call,
  type ListBody,
  MR_PATH,
  route,
  type StatusBody,
  server,
  TIMEOUT,
} from './helpers.ts';

interface ResourceListBody {
  groupVersion: string;
  resources: { name: string; kind: string; namespaced: boolean; verbs: string[]; shortNames?: string[] }[];
}

test('discovery names the groups, resources, short names and status subresources', TIMEOUT, async (t) => {
  const s = await server(t);
  const api = await call<{ versions: string[] }>(s, 'GET', '/api');
  assert.deepEqual(api.body.versions, ['v1']);
  const groups = await call<{ groups: { name: string; preferredVersion: { groupVersion: string } }[] }>(
    s,
    'GET',
    '/apis',
  );
  assert.deepEqual(groups.body.groups.map((g) => g.preferredVersion.groupVersion).sort(), [
    'coordination.k8s.io/v1',
    'discovery.k8s.io/v1',
    'modelgate.dev/v1alpha1',
  ]);
  const mg = await call<ResourceListBody>(s, 'GET', '/apis/modelgate.dev/v1alpha1');
  assert.equal(mg.body.groupVersion, 'modelgate.dev/v1alpha1');
  const byName = new Map(mg.body.resources.map((r) => [r.name, r]));
  assert.deepEqual(byName.get('modelroutes')?.shortNames, ['mr']);
  assert.deepEqual(byName.get('ratelimitpolicies')?.shortNames, ['rlp']);
  assert.deepEqual(byName.get('canaryrollouts')?.shortNames, ['canary']);
  assert.equal(byName.get('modelroutes')?.kind, 'ModelRoute');
  assert.ok(byName.get('modelroutes')?.verbs.includes('watch'));
  assert.deepEqual(byName.get('modelroutes/status')?.verbs, ['get', 'patch', 'update']);
  const core = await call<ResourceListBody>(s, 'GET', '/api/v1');
  assert.deepEqual(
    core.body.resources.map((r) => r.name).filter((n) => !n.includes('/')),
    ['namespaces', 'services', 'secrets', 'events'],
  );
  assert.equal((await call<{ major: string }>(s, 'GET', '/version')).body.major, '1');
  const missing = await call<StatusBody>(s, 'GET', '/openapi/v2');
  assert.equal(missing.status, 404);
  assert.equal(missing.body.reason, 'NotFound');
  assert.equal((await call(s, 'GET', '/apis/nope.dev')).status, 404);
});

test('create sets uid, timestamps, resourceVersion and generation, and drops status', TIMEOUT, async (t) => {
  const s = await server(t);
  const res = await call(s, 'POST', MR_PATH, route('chat', 'ml', { status: accepted(7) }));
  assert.equal(res.status, 201);
  const m = res.body.metadata;
  assert.match(m.uid ?? '', /^[0-9a-f-]{36}$/);
  assert.match(m.creationTimestamp ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.equal(m.resourceVersion, s.resourceVersion);
  assert.equal(m.generation, 1);
  assert.equal(res.body.status, undefined, 'status is written only through /status');
  assert.deepEqual(s.get('ModelRoute', 'ml', 'chat'), res.body);

  const again = await call<StatusBody>(s, 'POST', MR_PATH, route('chat'));
  assert.equal(again.status, 409);
  assert.equal(again.body.reason, 'AlreadyExists');
  assert.equal(again.body.message, 'modelroutes.modelgate.dev "chat" already exists');

  const withRv = await call<StatusBody>(s, 'POST', MR_PATH, {
    ...route('other'),
    metadata: { name: 'other', resourceVersion: '5' },
  });
  assert.equal(withRv.status, 500, 'the real server refuses a resourceVersion on create');

  const generated = await call(s, 'POST', MR_PATH, { ...route('x'), metadata: { generateName: 'gen-' } });
  assert.equal(generated.status, 201);
  assert.match(generated.body.metadata.name, /^gen-[0-9a-f]{5}$/);

  const wrongNs = await call<StatusBody>(s, 'POST', MR_PATH, route('y', 'elsewhere'));
  assert.equal(wrongNs.status, 400);
});

test('get, and 404 with the Status clients branch on', TIMEOUT, async (t) => {
  const s = await server(t);
  s.apply(route('chat'));
  assert.equal((await call(s, 'GET', `${MR_PATH}/chat`)).body.metadata.name, 'chat');
  const status = await call(s, 'GET', `${MR_PATH}/chat/status`);
  assert.equal(status.body.metadata.name, 'chat', 'GET on /status returns the whole object');
  const missing = await call<StatusBody>(s, 'GET', `${MR_PATH}/nope`);
  assert.equal(missing.status, 404);
  assert.equal(missing.contentType, 'application/json');
  assert.deepEqual(missing.body, {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: 'modelroutes.modelgate.dev "nope" not found',
    reason: 'NotFound',
    details: { name: 'nope', group: 'modelgate.dev', kind: 'modelroutes' },
    code: 404,
  });
  assert.equal((await call(s, 'GET', '/apis/modelgate.dev/v1alpha1/modelroutes/chat')).status, 404);
});

test(
  'update: 409 on a stale resourceVersion, 422 without one, generation only for spec',
  TIMEOUT,
  async (t) => {
    const s = await server(t);
    const created = s.apply(route('chat'));

    const stale = structuredClone(created);
    stale.metadata.resourceVersion = '1';
    const conflict = await call<StatusBody>(s, 'PUT', `${MR_PATH}/chat`, stale);
    assert.equal(conflict.status, 409);
    assert.equal(conflict.body.reason, 'Conflict');
    assert.match(conflict.body.message, /the object has been modified; please apply your changes/);

    const noRv = structuredClone(created);
    delete noRv.metadata.resourceVersion;
    const unconditional = await call<StatusBody>(s, 'PUT', `${MR_PATH}/chat`, noRv);
    assert.equal(unconditional.status, 422, 'custom resources refuse unconditional updates');

    const labelled = structuredClone(created);
    labelled.metadata.labels = { team: 'a' };
    const r1 = await call(s, 'PUT', `${MR_PATH}/chat`, labelled);
    assert.equal(r1.status, 200);
    assert.equal(r1.body.metadata.generation, 1, 'metadata changes leave generation alone');
    assert.notEqual(r1.body.metadata.resourceVersion, created.metadata.resourceVersion);

    const respec = {
      ...structuredClone(r1.body),
      spec: { hostnames: ['new.example.com'] },
      status: accepted(9),
    };
    const r2 = await call(s, 'PUT', `${MR_PATH}/chat`, respec);
    assert.equal(r2.body.metadata.generation, 2);
    assert.equal(r2.body.status, undefined, 'status in a main-resource update is ignored');
    assert.equal(r2.body.metadata.uid, created.metadata.uid);
    assert.equal(r2.body.metadata.creationTimestamp, created.metadata.creationTimestamp);

    const before = s.changes;
    const same = await call(s, 'PUT', `${MR_PATH}/chat`, r2.body);
    assert.equal(
      same.body.metadata.resourceVersion,
      r2.body.metadata.resourceVersion,
      'a no-op is not a write',
    );
    assert.equal(s.changes, before);

    const renamed = await call<StatusBody>(s, 'PUT', `${MR_PATH}/chat`, {
      ...r2.body,
      metadata: { ...r2.body.metadata, name: 'x' },
    });
    assert.equal(renamed.status, 400);
    assert.equal((await call(s, 'PUT', `${MR_PATH}/missing`, route('missing'))).status, 404);
  },
);

test('the status subresource writes only status and never moves generation', TIMEOUT, async (t) => {
  const s = await server(t);
  const created = s.apply(route('chat'));
  const put = await call(s, 'PUT', `${MR_PATH}/chat/status`, {
    ...created,
    spec: { hostnames: ['ignored.example.com'] },
    metadata: { ...created.metadata, labels: { ignored: 'yes' } },
    status: accepted(1),
  });
  assert.equal(put.status, 200);
  assert.deepEqual(put.body.status, accepted(1));
  assert.deepEqual(put.body.spec, created.spec);
  assert.equal(put.body.metadata.labels, undefined);
  assert.equal(put.body.metadata.generation, 1);

  const stale = await call<StatusBody>(s, 'PUT', `${MR_PATH}/chat/status`, {
    ...created,
    status: accepted(2),
  });
  assert.equal(stale.status, 409, 'status updates honour resourceVersion too');

  const patched = await call(
    s,
    'PATCH',
    `${MR_PATH}/chat/status`,
    { spec: { hostnames: ['nope'] }, status: { observedGeneration: 1, phase: 'Ready' } },
    'application/merge-patch+json',
  );
  assert.equal(patched.status, 200);
  assert.deepEqual(patched.body.status, { ...accepted(1), phase: 'Ready' });
  assert.deepEqual(patched.body.spec, created.spec);
  assert.equal(patched.body.metadata.generation, 1);

  const withStaleRv = await call<StatusBody>(
    s,
    'PATCH',
    `${MR_PATH}/chat/status`,
    { metadata: { resourceVersion: created.metadata.resourceVersion }, status: { phase: 'X' } },
    'application/merge-patch+json',
  );
  assert.equal(withStaleRv.status, 409, 'a resourceVersion in a patch is a precondition');

  // Main-resource writes keep the status the subresource wrote.
  const respec = s.apply(route('chat', 'ml', { spec: { hostnames: ['b.example.com'] } }));
  assert.equal(respec.metadata.generation, 2);
  assert.deepEqual(respec.status, { ...accepted(1), phase: 'Ready' });
  const direct = s.setStatus('ModelRoute', 'ml', 'chat', accepted(2));
  assert.deepEqual(direct.status, accepted(2));
  assert.equal(direct.metadata.generation, 2);
  assert.equal(
    (await call(s, 'GET', '/apis/coordination.k8s.io/v1/namespaces/ml/leases/x/status')).status,
    404,
  );
});

test('merge, strategic merge and JSON patches on the main resource', TIMEOUT, async (t) => {
  const s = await server(t);
  s.apply(route('chat', 'ml', { spec: { hostnames: ['a'], rules: [{ name: 'r' }], bodyLimit: '1Mi' } }));
  const merge = await call(
    s,
    'PATCH',
    `${MR_PATH}/chat`,
    { metadata: { labels: { a: '1' } }, spec: { hostnames: ['b'], bodyLimit: null }, status: { x: 1 } },
    'application/merge-patch+json',
  );
  assert.equal(merge.status, 200);
  assert.deepEqual(merge.body.spec, { hostnames: ['b'], rules: [{ name: 'r' }] });
  assert.deepEqual(merge.body.metadata.labels, { a: '1' });
  assert.equal(merge.body.status, undefined);
  assert.equal(merge.body.metadata.generation, 2);

  const labelsOnly = await call(
    s,
    'PATCH',
    `${MR_PATH}/chat`,
    { metadata: { labels: { b: '2' } } },
    'application/strategic-merge-patch+json',
  );
  assert.deepEqual(labelsOnly.body.metadata.labels, { a: '1', b: '2' });
  assert.equal(labelsOnly.body.metadata.generation, 2);

  const json = await call(
    s,
    'PATCH',
    `${MR_PATH}/chat`,
    [
      { op: 'test', path: '/spec/hostnames/0', value: 'b' },
      { op: 'add', path: '/spec/hostnames/-', value: 'c' },
      { op: 'replace', path: '/spec/rules/0/name', value: 'renamed' },
      { op: 'remove', path: '/metadata/labels/a' },
    ],
    'application/json-patch+json',
  );
  assert.equal(json.status, 200);
  assert.deepEqual(json.body.spec, { hostnames: ['b', 'c'], rules: [{ name: 'renamed' }] });
  assert.deepEqual(json.body.metadata.labels, { b: '2' });
  assert.equal(json.body.metadata.generation, 3);

  const failedTest = await call<StatusBody>(
    s,
    'PATCH',
    `${MR_PATH}/chat`,
    [{ op: 'test', path: '/spec/hostnames/0', value: 'zzz' }],
    'application/json-patch+json',
  );
  assert.equal(failedTest.status, 422);
  const ssa = await call<StatusBody>(s, 'PATCH', `${MR_PATH}/chat`, {}, 'application/apply-patch+yaml');
  assert.equal(ssa.status, 415, 'server-side apply is not supported');
  const missing = await call<StatusBody>(s, 'PATCH', `${MR_PATH}/nope`, {}, 'application/merge-patch+json');
  assert.equal(missing.status, 404);
});

test(
  'delete answers with the object (custom) or a Status (built-in), honouring preconditions',
  TIMEOUT,
  async (t) => {
    const s = await server(t);
    const created = s.apply(route('chat'));
    const stale = await call<StatusBody>(s, 'DELETE', `${MR_PATH}/chat`, {
      preconditions: { resourceVersion: '1' },
    });
    assert.equal(stale.status, 409);
    const gone = await call(s, 'DELETE', `${MR_PATH}/chat`);
    assert.equal(gone.status, 200);
    assert.equal(gone.body.metadata.uid, created.metadata.uid);
    assert.equal(
      gone.body.metadata.resourceVersion,
      s.resourceVersion,
      'the deletion has its own resourceVersion',
    );
    assert.equal(s.get('ModelRoute', 'ml', 'chat'), undefined);
    assert.equal((await call(s, 'DELETE', `${MR_PATH}/chat`)).status, 404);

    s.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'tok', namespace: 'ml' }, data: {} });
    const secret = await call<StatusBody>(s, 'DELETE', '/api/v1/namespaces/ml/secrets/tok');
    assert.equal(secret.body.kind, 'Status');
    assert.equal(secret.body.status, 'Success');
    assert.equal(s.remove('Secret', 'ml', 'tok'), undefined);
  },
);

test('list: resourceVersion, namespaces, label and field selectors', TIMEOUT, async (t) => {
  const s = await server(t);
  s.apply({ ...route('a'), metadata: { name: 'a', namespace: 'ml', labels: { tier: 'gold', team: 'x' } } });
  s.apply({ ...route('b'), metadata: { name: 'b', namespace: 'ml', labels: { tier: 'silver' } } });
  s.apply({ ...route('c'), metadata: { name: 'c', namespace: 'ml' } });
  s.apply({ ...route('d', 'other'), metadata: { name: 'd', namespace: 'other', labels: { tier: 'gold' } } });

  const names = async (query: string, path = MR_PATH) => {
    const res = await call<ListBody>(s, 'GET', `${path}?${query}`);
    assert.equal(res.status, 200, query);
    return res.body.items.map((o) => o.metadata.name);
  };
  const all = await call<ListBody>(s, 'GET', '/apis/modelgate.dev/v1alpha1/modelroutes');
  assert.equal(all.body.kind, 'ModelRouteList');
  assert.equal(all.body.metadata.resourceVersion, s.resourceVersion);
  assert.deepEqual(
    all.body.items.map((o) => `${o.metadata.namespace}/${o.metadata.name}`),
    ['ml/a', 'ml/b', 'ml/c', 'other/d'],
  );
  assert.equal(all.body.items[0]?.kind, 'ModelRoute', 'custom resource items keep their kind');
  assert.deepEqual(await names(''), ['a', 'b', 'c']);
  const sel = (q: string) => `labelSelector=${encodeURIComponent(q)}`;
  assert.deepEqual(await names(sel('tier=gold')), ['a']);
  assert.deepEqual(await names(sel('tier==gold')), ['a']);
  assert.deepEqual(await names(sel('tier!=gold')), ['b', 'c']);
  assert.deepEqual(await names(sel('tier')), ['a', 'b']);
  assert.deepEqual(await names(sel('!tier')), ['c']);
  assert.deepEqual(await names(sel('tier=gold,team=x')), ['a']);
  assert.deepEqual(await names(sel('tier,!team')), ['b']);
  assert.deepEqual(await names(sel('tier in (gold,silver),team notin (y)')), ['a', 'b']);
  assert.deepEqual(await names(sel('tier=gold'), '/apis/modelgate.dev/v1alpha1/modelroutes'), ['a', 'd']);
  const fsel = (q: string) => `fieldSelector=${encodeURIComponent(q)}`;
  assert.deepEqual(await names(fsel('metadata.name=b')), ['b']);
  assert.deepEqual(await names(fsel('metadata.name!=b')), ['a', 'c']);
  assert.deepEqual(
    await names(fsel('metadata.namespace=other'), '/apis/modelgate.dev/v1alpha1/modelroutes'),
    ['d'],
  );
  const badLabel = await call<StatusBody>(s, 'GET', `${MR_PATH}?${sel('a b c')}`);
  assert.equal(badLabel.status, 400);
  const badField = await call<StatusBody>(s, 'GET', `${MR_PATH}?${fsel('spec.hostnames=x')}`);
  assert.equal(badField.status, 400);
  assert.equal(badField.body.message, 'field label not supported: spec.hostnames');
});

test('list: limit and continue page through one consistent snapshot', TIMEOUT, async (t) => {
  const s = await server(t);
  for (const n of ['a', 'b', 'c', 'd', 'e']) s.apply(route(n));
  const p1 = await call<ListBody>(s, 'GET', `${MR_PATH}?limit=2`);
  assert.deepEqual(
    p1.body.items.map((o) => o.metadata.name),
    ['a', 'b'],
  );
  assert.equal(p1.body.metadata.remainingItemCount, 3);
  s.apply(route('bb')); // after the snapshot: not in later pages
  s.remove('ModelRoute', 'ml', 'd'); // likewise still listed
  const p2 = await call<ListBody>(s, 'GET', `${MR_PATH}?limit=2&continue=${p1.body.metadata.continue}`);
  assert.deepEqual(
    p2.body.items.map((o) => o.metadata.name),
    ['c', 'd'],
  );
  assert.equal(p2.body.metadata.resourceVersion, p1.body.metadata.resourceVersion);
  const p3 = await call<ListBody>(s, 'GET', `${MR_PATH}?limit=2&continue=${p2.body.metadata.continue}`);
  assert.deepEqual(
    p3.body.items.map((o) => o.metadata.name),
    ['e'],
  );
  assert.equal(p3.body.metadata.continue, undefined);

  s.compact();
  const old = await call<StatusBody>(s, 'GET', `${MR_PATH}?limit=2&continue=${p1.body.metadata.continue}`);
  assert.equal(old.status, 410);
  assert.equal(old.body.reason, 'Expired');
});

test('list at an exact resourceVersion sees the past, and 410 once it is compacted', TIMEOUT, async (t) => {
  const s = await server(t);
  s.apply(route('a'));
  const rv = s.resourceVersion;
  s.apply(route('a', 'ml', { spec: { hostnames: ['changed'] } }));
  s.apply(route('b'));
  const past = await call<ListBody>(s, 'GET', `${MR_PATH}?resourceVersion=${rv}&resourceVersionMatch=Exact`);
  assert.equal(past.status, 200);
  assert.equal(past.body.metadata.resourceVersion, rv);
  assert.deepEqual(
    past.body.items.map((o) => [o.metadata.name, o.spec]),
    [['a', { hostnames: ['a.example.com'], rules: [] }]],
  );
  // Not-older-than (the default) is served from the newest state, as the watch cache does.
  const newest = await call<ListBody>(s, 'GET', `${MR_PATH}?resourceVersion=${rv}`);
  assert.equal(newest.body.items.length, 2);
  assert.equal(newest.body.metadata.resourceVersion, s.resourceVersion);

  assert.equal(s.compact(), s.resourceVersion);
  const gone = await call<StatusBody>(
    s,
    'GET',
    `${MR_PATH}?resourceVersion=${rv}&resourceVersionMatch=Exact`,
  );
  assert.equal(gone.status, 410);
  assert.equal(gone.body.reason, 'Expired');
  assert.match(gone.body.message, /too old resource version/);
  const paged = await call<StatusBody>(s, 'GET', `${MR_PATH}?resourceVersion=${rv}&limit=10`);
  assert.equal(paged.status, 410, 'a paginated list at a resourceVersion is exact');
  const bad = await call<StatusBody>(s, 'GET', `${MR_PATH}?resourceVersion=abc&resourceVersionMatch=Exact`);
  assert.equal(bad.status, 400);
});

test('built-in kinds: services, secrets, endpointslices, namespaces', TIMEOUT, async (t) => {
  const s = await server(t);
  const svc = await call(s, 'POST', '/api/v1/namespaces/ml/services', {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'llama' },
    spec: { ports: [{ port: 8000 }] },
  });
  assert.equal(svc.status, 201);
  assert.equal(svc.body.metadata.generation, undefined, 'services carry no generation');
  const services = await call<ListBody>(s, 'GET', '/api/v1/services');
  assert.equal(services.body.kind, 'ServiceList');
  assert.equal(services.body.items[0]?.kind, undefined, 'built-in list items come without kind');
  assert.equal(services.body.items[0]?.metadata.name, 'llama');

  const secret = await call(s, 'POST', '/api/v1/namespaces/ml/secrets', {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'tok' },
    stringData: { token: 'abc' },
  });
  assert.deepEqual(secret.body.data, { token: Buffer.from('abc').toString('base64') });
  assert.equal(secret.body.stringData, undefined);

  const slice = s.apply({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'llama-x', namespace: 'ml', labels: { 'kubernetes.io/service-name': 'llama' } },
    addressType: 'IPv4',
    endpoints: [{ addresses: ['10.0.0.1'] }],
  });
  assert.equal(slice.metadata.generation, 1);
  const slices = await call<ListBody>(
    s,
    'GET',
    `/apis/discovery.k8s.io/v1/namespaces/ml/endpointslices?labelSelector=${encodeURIComponent('kubernetes.io/service-name=llama')}`,
  );
  assert.deepEqual(
    slices.body.items.map((o) => o.metadata.name),
    ['llama-x'],
  );

  const ns = await call(s, 'POST', '/api/v1/namespaces', {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: 'ml' },
  });
  assert.equal(ns.status, 201);
  assert.equal(ns.body.metadata.namespace, undefined);
  assert.equal((await call(s, 'GET', '/api/v1/namespaces/ml')).body.metadata.name, 'ml');
  assert.equal(s.get('Namespace', '', 'ml')?.metadata.name, 'ml');
  assert.equal((await call(s, 'POST', '/apis/modelgate.dev/v1alpha1/modelroutes', route('x'))).status, 405);
});

test(
  'leases: AlreadyExists on create, Conflict on a stale update, unconditional update allowed',
  TIMEOUT,
  async (t) => {
    const s = await server(t);
    const path = '/apis/coordination.k8s.io/v1/namespaces/ml/leases';
    const lease = (holder: string) => ({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: 'modelgate-controller', namespace: 'ml' },
      spec: { holderIdentity: holder, leaseDurationSeconds: 15, leaseTransitions: 0 },
    });
    const [a, b] = await Promise.all([call(s, 'POST', path, lease('a')), call(s, 'POST', path, lease('b'))]);
    assert.deepEqual([a.status, b.status].sort(), [201, 409]);
    const winner = a.status === 201 ? a.body : b.body;
    const takeover = (holder: string) => ({
      ...winner,
      spec: { ...(winner.spec as object), holderIdentity: holder, leaseTransitions: 1 },
    });
    const [c, d] = await Promise.all([
      call(s, 'PUT', `${path}/modelgate-controller`, takeover('c')),
      call(s, 'PUT', `${path}/modelgate-controller`, takeover('d')),
    ]);
    assert.deepEqual([c.status, d.status].sort(), [200, 409], 'exactly one takeover wins');
    const stored = s.get<{ spec: { holderIdentity: string } }>('Lease', 'ml', 'modelgate-controller');
    assert.equal(stored?.spec.holderIdentity, c.status === 200 ? 'c' : 'd');

    const noRv = takeover('e') as StoredObject;
    noRv.metadata = { ...noRv.metadata, resourceVersion: undefined };
    assert.equal((await call(s, 'PUT', `${path}/modelgate-controller`, noRv)).status, 200);
  },
);

test('core/v1 events are stored for assertions', TIMEOUT, async (t) => {
  const s = await server(t);
  const res = await call(s, 'POST', '/api/v1/namespaces/ml/events', {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { generateName: 'chat.' },
    involvedObject: {
      apiVersion: 'modelgate.dev/v1alpha1',
      kind: 'ModelRoute',
      name: 'chat',
      namespace: 'ml',
    },
    reason: 'Programmed',
    message: 'routing table applied',
    type: 'Normal',
  });
  assert.equal(res.status, 201);
  const events = s.recordedEvents('ml');
  assert.equal(events.length, 1);
  assert.equal(events[0]?.reason, 'Programmed');
  const byObject = await call<ListBody>(
    s,
    'GET',
    `/api/v1/namespaces/ml/events?fieldSelector=${encodeURIComponent('involvedObject.name=chat,reason=Programmed')}`,
  );
  assert.equal(byObject.body.items.length, 1);
});
