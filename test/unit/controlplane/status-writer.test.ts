/**
 * The fenced status writer against the fake API server (and, when installed, checked with the
 * real kubectl as a second, independent client): writes go through the status subresource only,
 * only changed statuses are written, lastTransitionTime moves only when a condition's status
 * flips, nothing is written without the fence, refused resources get one Warning Event per
 * generation and reason, and deleted, recreated or overwritten resources are handled.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type TestContext, test } from 'node:test';
import { promisify } from 'node:util';
import type { ClusterState } from '../../../src/api/cluster-state.ts';
import type { Condition } from '../../../src/api/status.ts';
import { compile, type ResourceStatus } from '../../../src/compiler/compile.ts';
import { NotLeaderError } from '../../../src/controlplane/leader-election.ts';
import { StatusWriter, type StatusWriterOptions } from '../../../src/controlplane/status-writer.ts';
import { KubernetesSource } from '../../../src/sources/kubernetes/kubernetes-source.ts';
import {
  type FakeApiServer,
  kubeConfigFor,
  writeKubeconfigFile,
} from '../../support/fake-apiserver/index.ts';
import {
  badRoute,
  endpointSlice,
  fakeApi,
  rateLimitPolicy,
  service,
  serviceRoute,
  TIMEOUT,
  within,
} from '../sources/kube-support.ts';

const T1 = Date.parse('2030-01-01T00:00:00Z');
const HOUR = 3_600_000;
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

interface Stored {
  metadata: { name: string; namespace: string; generation?: number; resourceVersion: string; uid: string };
  spec: unknown;
  status?: { observedGeneration?: number; conditions?: Condition[]; attachedRoutes?: string[] } & Record<
    string,
    unknown
  >;
}

function seed(api: FakeApiServer): void {
  api.apply(service('vllm', 'ml'));
  api.apply(endpointSlice('vllm-1', 'ml', 'vllm', ['10.0.0.1']));
  api.apply(serviceRoute('chat', 'ml'));
  api.apply(badRoute('broken', 'ml'));
  api.apply(rateLimitPolicy('limits', 'ml', 'chat'));
}

/** The cluster as the compiler reads it, straight from the fake server's store. */
function clusterState(api: FakeApiServer): ClusterState {
  const stamp = <T>(kind: string, apiVersion: string) =>
    api.list<Record<string, unknown>>(kind).map((o) => ({ apiVersion, kind, ...o }) as T);
  return {
    modelRoutes: stamp('ModelRoute', 'modelgate.dev/v1alpha1'),
    rateLimitPolicies: stamp('RateLimitPolicy', 'modelgate.dev/v1alpha1'),
    canaryRollouts: stamp('CanaryRollout', 'modelgate.dev/v1alpha1'),
    services: stamp('Service', 'v1'),
    endpointSlices: stamp('EndpointSlice', 'discovery.k8s.io/v1'),
    secrets: stamp('Secret', 'v1'),
  };
}

interface Setup {
  api: FakeApiServer;
  writer: StatusWriter;
  /** Whether the fence lets writes through. */
  fence: { leader: boolean; checks: number };
  clock: { wall: number };
  errors: { err: unknown; key: string }[];
  statuses(): ResourceStatus[];
  get(kind: string, name: string): Stored;
}

async function setup(t: TestContext, opts: Partial<StatusWriterOptions> = {}): Promise<Setup> {
  const api = await fakeApi(t);
  seed(api);
  const fence = { leader: true, checks: 0 };
  const clock = { wall: T1 };
  const errors: { err: unknown; key: string }[] = [];
  const writer = new StatusWriter({
    kc: kubeConfigFor(api.url),
    fence: () => {
      fence.checks++;
      if (!fence.leader) throw new NotLeaderError('not the leader');
    },
    current: (s) => api.get<Stored>(s.kind, s.namespace, s.name)?.status,
    component: 'modelgate-controller',
    wallNow: () => clock.wall,
    onError: (err, s) => errors.push({ err, key: `${s.kind}/${s.namespace}/${s.name}` }),
    ...opts,
  });
  return {
    api,
    writer,
    fence,
    clock,
    errors,
    statuses: () => compile(clusterState(api)).statuses,
    get: (kind, name) => {
      const o = api.get<Stored>(kind, 'ml', name);
      assert.ok(o, `${kind} ml/${name} exists`);
      return o;
    },
  };
}

/** Every write the server received other than status patches and Event creation. */
const otherWrites = (api: FakeApiServer) =>
  api.requests.filter(
    (r) =>
      ['create', 'update', 'patch', 'delete'].includes(r.verb) &&
      r.subresource !== 'status' &&
      r.resource !== 'events',
  );

function withCondition(statuses: ResourceStatus[], name: string, type: string, change: Partial<Condition>) {
  return statuses.map((s) =>
    s.name !== name
      ? s
      : {
          ...s,
          status: {
            ...s.status,
            conditions: s.status.conditions.map((c) => (c.type === type ? { ...c, ...change } : c)),
          },
        },
  );
}

test(
  'writes through the status subresource only, never moves generation, and skips unchanged statuses',
  TIMEOUT,
  async (t) => {
    const { api, writer, get, statuses, clock, errors } = await setup(t);
    const chatBefore = get('ModelRoute', 'chat');
    api.resetRequests();

    const list = statuses();
    assert.deepEqual(
      list.map((s) => `${s.kind}/${s.name}`),
      ['ModelRoute/broken', 'ModelRoute/chat', 'RateLimitPolicy/limits'],
    );
    assert.equal(await writer.sync(list), 3);
    assert.equal(writer.writes, 3);
    assert.deepEqual(errors, []);
    const counts = api.counts();
    assert.equal(counts['patch modelroutes/status'], 2);
    assert.equal(counts['patch ratelimitpolicies/status'], 1);
    assert.deepEqual(otherWrites(api), [], 'no write outside /status (Events aside)');
    assert.ok(
      api.requests
        .filter((r) => r.subresource === 'status')
        .every((r) => r.contentType === 'application/merge-patch+json'),
    );

    const chat = get('ModelRoute', 'chat');
    assert.equal(chat.metadata.generation, 1, 'generation unchanged');
    assert.deepEqual(chat.spec, chatBefore.spec);
    assert.notEqual(chat.metadata.resourceVersion, chatBefore.metadata.resourceVersion);
    assert.equal(chat.status?.observedGeneration, 1);
    assert.deepEqual(
      chat.status?.conditions?.map((c) => [c.type, c.status, c.observedGeneration, c.lastTransitionTime]),
      [
        ['Accepted', 'True', 1, iso(T1)],
        ['ResolvedRefs', 'True', 1, iso(T1)],
        ['Programmed', 'Unknown', 1, iso(T1)],
      ],
    );
    assert.deepEqual(get('RateLimitPolicy', 'limits').status?.attachedRoutes, ['ml/chat']);

    // The same statuses again, an hour later: nothing to write, no request at all.
    clock.wall += HOUR;
    const requests = api.requests.length;
    const rv = api.resourceVersion;
    assert.equal(await writer.sync(statuses()), 0);
    assert.equal(api.requests.length, requests);
    assert.equal(api.resourceVersion, rv);

    // A fresh writer (a restarted controller) finds the cluster up to date too.
    const fresh = new StatusWriter({
      kc: kubeConfigFor(api.url),
      fence: () => {},
      current: (s) => api.get<Stored>(s.kind, s.namespace, s.name)?.status,
      component: 'modelgate-controller',
    });
    assert.equal(await fresh.sync(statuses()), 0);
    assert.equal(api.requests.length, requests);
  },
);

test(
  'lastTransitionTime stays while a condition keeps its status, and moves when it flips',
  TIMEOUT,
  async (t) => {
    const { writer, get, statuses, clock } = await setup(t);
    await writer.sync(statuses());
    const times = (name: string) =>
      Object.fromEntries(
        get('ModelRoute', name).status?.conditions?.map((c) => [c.type, c.lastTransitionTime]) ?? [],
      );

    // Same status, new message: written, with the old transition time.
    clock.wall = T1 + HOUR;
    let next = withCondition(statuses(), 'chat', 'Programmed', {
      message: '0/1 proxies at table 1.1 or newer',
    });
    assert.equal(await writer.sync(next), 1);
    assert.equal(
      get('ModelRoute', 'chat').status?.conditions?.find((c) => c.type === 'Programmed')?.message,
      '0/1 proxies at table 1.1 or newer',
    );
    assert.deepEqual(times('chat'), { Accepted: iso(T1), ResolvedRefs: iso(T1), Programmed: iso(T1) });

    // Programmed flips to True: only its time moves.
    clock.wall = T1 + 2 * HOUR;
    next = withCondition(statuses(), 'chat', 'Programmed', {
      status: 'True',
      reason: 'Programmed',
      message: '1/1 proxies at table 1.1 or newer',
    });
    assert.equal(await writer.sync(next), 1);
    assert.deepEqual(times('chat'), {
      Accepted: iso(T1),
      ResolvedRefs: iso(T1),
      Programmed: iso(T1 + 2 * HOUR),
    });
    assert.equal(await writer.sync(next), 0, 'and then nothing changes');

    // And back to Unknown: moves again.
    clock.wall = T1 + 3 * HOUR;
    assert.equal(await writer.sync(statuses()), 1);
    assert.deepEqual(times('chat'), {
      Accepted: iso(T1),
      ResolvedRefs: iso(T1),
      Programmed: iso(T1 + 3 * HOUR),
    });
    assert.deepEqual(times('broken'), { Accepted: iso(T1), ResolvedRefs: iso(T1), Programmed: iso(T1) });
  },
);

test(
  'writes nothing when the fence says no, and stops at the first write it may not do',
  TIMEOUT,
  async (t) => {
    const { api, writer, fence, statuses, get } = await setup(t);
    fence.leader = false;
    await assert.rejects(writer.sync(statuses()), NotLeaderError);
    assert.equal(api.count({ subresource: 'status' }), 0);
    assert.equal(api.recordedEvents().length, 0);
    assert.equal(writer.writes, 0);
    assert.equal(get('ModelRoute', 'chat').status, undefined);

    // Leadership lost after the first write: the fence is checked before every write.
    const writer2 = new StatusWriter({
      kc: kubeConfigFor(api.url),
      fence: () => {
        if (api.count({ subresource: 'status' }) >= 1) throw new NotLeaderError('lost it');
      },
      current: (s) => api.get<Stored>(s.kind, s.namespace, s.name)?.status,
      component: 'modelgate-controller',
    });
    await assert.rejects(writer2.sync(statuses()), NotLeaderError);
    assert.equal(api.count({ subresource: 'status' }), 1);

    // Leader again: everything still missing is written.
    fence.leader = true;
    assert.equal(await writer.sync(statuses()), 2);
    assert.ok(fence.checks >= 3);
  },
);

test('a refused resource gets one Warning Event per generation and reason', TIMEOUT, async (t) => {
  const { api, writer, statuses, get } = await setup(t);
  await writer.sync(statuses());
  let events = api.recordedEvents('ml');
  assert.equal(events.length, 1, 'one Event, for the refused route only');
  const ev = events[0] as unknown as {
    type: string;
    reason: string;
    message: string;
    involvedObject: { kind: string; name: string; namespace: string; apiVersion: string };
    source: { component: string };
    metadata: { name: string };
  };
  assert.equal(ev.type, 'Warning');
  assert.equal(ev.reason, 'Invalid');
  assert.match(ev.message, /non-zero weight/);
  assert.deepEqual(ev.involvedObject, {
    apiVersion: 'modelgate.dev/v1alpha1',
    kind: 'ModelRoute',
    namespace: 'ml',
    name: 'broken',
  });
  assert.equal(ev.source.component, 'modelgate-controller');
  assert.match(ev.metadata.name, /^broken\./);

  // Someone else overwrites the status: it is written again, but the Event is not repeated.
  api.setStatus('ModelRoute', 'ml', 'broken', { observedGeneration: 1, conditions: [] });
  assert.equal(await writer.sync(statuses()), 1);
  assert.equal(get('ModelRoute', 'broken').status?.conditions?.[0]?.status, 'False');
  assert.equal(api.recordedEvents('ml').length, 1);

  // A new generation, still refused for the same reason: a new Event.
  const changed = badRoute('broken', 'ml');
  changed.spec.rules[0]!.matches[0]!.path.value = '/changed';
  api.apply(changed);
  assert.equal(get('ModelRoute', 'broken').metadata.generation, 2);
  assert.equal(await writer.sync(statuses()), 1);
  assert.equal(get('ModelRoute', 'broken').status?.observedGeneration, 2);
  events = api.recordedEvents('ml');
  assert.equal(events.length, 2);
  assert.equal(await writer.sync(statuses()), 0);
  assert.equal(api.recordedEvents('ml').length, 2);
});

test('a resource deleted meanwhile (404) is skipped quietly; the others are written', TIMEOUT, async (t) => {
  const { api, writer, statuses, errors, get } = await setup(t);
  const list = statuses();
  api.remove('ModelRoute', 'ml', 'chat');
  assert.equal(await writer.sync(list), 2);
  assert.deepEqual(errors, []);
  assert.equal(api.get('ModelRoute', 'ml', 'chat'), undefined, 'not recreated by the status write');
  assert.equal(api.count({ subresource: 'status', name: 'chat' }), 1);
  assert.ok(get('ModelRoute', 'broken').status);
  assert.ok(get('RateLimitPolicy', 'limits').status);
});

test('other failures are reported per resource and retried on the next sync', TIMEOUT, async (t) => {
  const { api, writer, statuses, errors, get } = await setup(t);
  api.failNext(1, { status: 500, match: (r) => r.subresource === 'status' && r.name === 'chat' });
  assert.equal(await writer.sync(statuses()), 2);
  assert.deepEqual(
    errors.map((e) => e.key),
    ['ModelRoute/ml/chat'],
  );
  assert.equal(get('ModelRoute', 'chat').status, undefined);
  assert.equal(await writer.sync(statuses()), 1);
  assert.ok(get('ModelRoute', 'chat').status);
});

test(
  'a resource deleted and created again, or overwritten by another writer, gets its status again',
  TIMEOUT,
  async (t) => {
    const { api, writer, statuses, get, clock } = await setup(t);
    assert.equal(await writer.sync(statuses()), 3);

    // kubectl delete + apply of the same manifest: generation 1 again, no status.
    api.remove('ModelRoute', 'ml', 'chat');
    api.apply(serviceRoute('chat', 'ml'));
    assert.equal(get('ModelRoute', 'chat').status, undefined);
    clock.wall = T1 + HOUR;
    assert.equal(await writer.sync(statuses()), 1);
    assert.equal(get('ModelRoute', 'chat').status?.conditions?.[0]?.status, 'True');

    // Another leader (in between) wrote something else: the cache is the judge, not our memory.
    api.setStatus('ModelRoute', 'ml', 'chat', {
      observedGeneration: 1,
      conditions: [
        {
          type: 'Accepted',
          status: 'True',
          reason: 'Accepted',
          message: 'accepted',
          lastTransitionTime: iso(T1),
        },
      ],
    });
    clock.wall = T1 + 2 * HOUR;
    assert.equal(await writer.sync(statuses()), 1);
    const chat = get('ModelRoute', 'chat');
    assert.equal(chat.status?.conditions?.length, 3);
    assert.equal(chat.status?.conditions?.[0]?.lastTransitionTime, iso(T1), 'kept: Accepted stayed True');
    assert.equal(chat.status?.conditions?.[2]?.lastTransitionTime, iso(T1 + 2 * HOUR));
  },
);

test(
  'with the informer cache as the stored status (as the controller does): no rewrites while it lags',
  TIMEOUT,
  async (t) => {
    const api = await fakeApi(t);
    seed(api);
    const src = new KubernetesSource({
      kc: kubeConfigFor(api.url),
      onChange: () => {},
      debounceMs: 10,
      maxDebounceMs: 50,
    });
    t.after(() => src.stop());
    await within(src.start(), 'start');
    let wall = T1;
    const byKey = () => {
      const s = src.state();
      const m = new Map<string, { status?: Record<string, unknown> }>();
      for (const o of [...s.modelRoutes, ...s.rateLimitPolicies, ...s.canaryRollouts]) {
        m.set(
          `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`,
          o as { status?: Record<string, unknown> },
        );
      }
      return m;
    };
    let cache = byKey();
    const writer = new StatusWriter({
      kc: kubeConfigFor(api.url),
      fence: () => {},
      current: (s) => cache.get(`${s.kind}/${s.namespace}/${s.name}`)?.status as never,
      component: 'modelgate-controller',
      wallNow: () => wall,
    });
    const cacheHasStatus = async (pred: (m: ReturnType<typeof byKey>) => boolean) => {
      for (;;) {
        cache = byKey();
        if (pred(cache)) return;
        await within(src.nextChange(), 'the cache to show the written statuses');
      }
    };
    const statuses = () => compile(src.state()).statuses;

    // Fresh objects, and the cache has not seen the writes yet: writing again changes nothing.
    api.pause();
    t.after(() => api.resume());
    assert.equal(await writer.sync(statuses()), 3);
    const rv = api.resourceVersion;
    wall += HOUR;
    await writer.sync(statuses());
    assert.equal(api.resourceVersion, rv, 'the repeated write was identical: no new resourceVersion');
    api.resume();
    await cacheHasStatus((m) => [...m.values()].every((o) => o.status !== undefined));
    assert.equal(await writer.sync(statuses()), 0);

    // A flip, then syncs while the cache still shows the old status: one write, no more.
    const flipped = withCondition(statuses(), 'chat', 'Programmed', { status: 'True', reason: 'Programmed' });
    api.pause();
    wall += HOUR;
    const patches = api.count({ subresource: 'status' });
    assert.equal(await writer.sync(flipped), 1);
    wall += HOUR;
    assert.equal(await writer.sync(flipped), 0);
    assert.equal(await writer.sync(flipped), 0);
    assert.equal(api.count({ subresource: 'status' }), patches + 1);
    api.resume();
    await cacheHasStatus(
      (m) =>
        (m.get('ModelRoute/ml/chat')?.status as { conditions?: Condition[] } | undefined)?.conditions?.[2]
          ?.status === 'True',
    );
    assert.equal(await writer.sync(flipped), 0);
    const programmed = api
      .get<Stored>('ModelRoute', 'ml', 'chat')
      ?.status?.conditions?.find((c) => c.type === 'Programmed');
    assert.equal(programmed?.lastTransitionTime, iso(T1 + 2 * HOUR), 'the time of the one write');
  },
);

const KUBECTL = '/usr/bin/kubectl';
const noKubectl = existsSync(KUBECTL) ? false : `${KUBECTL} is not installed`;

test('kubectl, a second client, sees the conditions with lastTransitionTime and observedGeneration', {
  ...TIMEOUT,
  skip: noKubectl,
}, async (t) => {
  const { api, writer, statuses } = await setup(t, { wallNow: () => T1 });
  api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ml' } });
  await writer.sync(statuses());

  const dir = await mkdtemp(path.join(os.tmpdir(), 'modelgate-kubectl-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const kubeconfig = path.join(dir, 'kubeconfig');
  await writeKubeconfigFile(api.url, kubeconfig, 'ml');
  const { stdout } = await promisify(execFile)(
    KUBECTL,
    [
      '--kubeconfig',
      kubeconfig,
      '--cache-dir',
      path.join(dir, 'cache'),
      'get',
      'modelroutes',
      '-n',
      'ml',
      '-o',
      'json',
    ],
    { env: { ...process.env, HOME: dir, KUBECONFIG: kubeconfig }, timeout: 60_000 },
  );
  const list = JSON.parse(stdout) as { items: Stored[] };
  assert.deepEqual(
    list.items.map((o) => o.metadata.name),
    ['broken', 'chat'],
  );
  for (const o of list.items) {
    assert.equal(o.metadata.generation, 1);
    assert.equal(o.status?.observedGeneration, 1, `${o.metadata.name} observedGeneration`);
    assert.equal(o.status?.conditions?.length, 3);
    for (const c of o.status?.conditions ?? []) {
      assert.equal(c.lastTransitionTime, '2030-01-01T00:00:00Z', `${o.metadata.name} ${c.type}`);
      assert.equal(c.observedGeneration, 1);
      assert.match(c.status, /^(True|False|Unknown)$/);
    }
  }
  const chat = list.items.find((o) => o.metadata.name === 'chat');
  assert.deepEqual(
    chat?.status?.conditions?.map((c) => `${c.type}=${c.status}`),
    ['Accepted=True', 'ResolvedRefs=True', 'Programmed=Unknown'],
  );
});
