/**
 * Lease leader election against the fake API server. Each elector gets its own hand-driven clocks
 * (monotonic and wall) and the tests call `tick()` themselves, so "time passes" and "a replica is
 * frozen" are exact rather than raced against timers; one test runs the real timer loop.
 *
 * Durations: lease 1000 ms (the Lease says 1 s), renew deadline 800 ms, retry 100 ms, fencing
 * margin 100 ms: a leader counts itself leader until 900 ms after the start of its last renewal.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type LeaderElectionOptions,
  LeaderElector,
  NotLeaderError,
} from '../../../src/controlplane/leader-election.ts';
import { type FakeApiServer, kubeConfigFor } from '../../support/fake-apiserver/index.ts';
import { fakeApi, TIMEOUT, WAIT_MS } from '../sources/kube-support.ts';

const NS = 'ops';
const NAME = 'modelgate-controller';
const HOUR = 3_600_000;

interface LeaseSpec {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number;
  leaseTransitions?: number;
  acquireTime?: string;
  renewTime?: string;
}

interface Replica {
  e: LeaderElector;
  clock: { mono: number; wall: number };
  /** onStartedLeading / onStoppedLeading, in order. */
  log: string[];
  errors: unknown[];
  advance(ms: number): void;
}

function replica(
  api: FakeApiServer,
  identity: string,
  start: { mono?: number; wall?: number } = {},
  opts: Partial<LeaderElectionOptions> = {},
): Replica {
  const clock = { mono: start.mono ?? 0, wall: start.wall ?? Date.parse('2030-01-01T00:00:00Z') };
  const log: string[] = [];
  const errors: unknown[] = [];
  const e = new LeaderElector({
    kc: kubeConfigFor(api.url),
    namespace: NS,
    name: NAME,
    identity,
    leaseDurationMs: 1000,
    renewDeadlineMs: 800,
    retryPeriodMs: 100,
    safetyMarginMs: 100,
    now: () => clock.mono,
    wallNow: () => clock.wall,
    onStartedLeading: (term) => log.push(`lead ${term}`),
    onStoppedLeading: () => log.push('stop'),
    onError: (err) => errors.push(err),
    ...opts,
  });
  return {
    e,
    clock,
    log,
    errors,
    advance(ms) {
      clock.mono += ms;
      clock.wall += ms;
    },
  };
}

const lease = (api: FakeApiServer) => api.get<{ spec: LeaseSpec }>('Lease', NS, NAME)?.spec;

function leaders(...rs: Replica[]): string[] {
  return rs.filter((r) => r.e.isLeader()).map((r) => String(rs.indexOf(r)));
}

test(
  'one leader; the follower takes over after a lease duration of silence on its own clock, whatever the wall clocks say',
  TIMEOUT,
  async (t) => {
    const api = await fakeApi(t);
    // Wall clocks eight hours apart, monotonic clocks with unrelated origins.
    const a = replica(api, 'a', { mono: 0, wall: Date.now() - 3 * HOUR });
    const b = replica(api, 'b', { mono: 5_000_000, wall: Date.now() + 5 * HOUR });
    t.after(() => Promise.all([a.e.stop(), b.e.stop()]));

    await a.e.tick();
    await b.e.tick();
    assert.deepEqual(leaders(a, b), ['0']);
    assert.equal(a.e.term, 1);
    assert.deepEqual(a.log, ['lead 1']);
    assert.equal(lease(api)?.holderIdentity, 'a');
    assert.equal(lease(api)?.leaseDurationSeconds, 1);
    assert.equal(lease(api)?.leaseTransitions, 0);

    // Renewals every retry period: b, whose wall clock says a's renewTime is 8 hours old, waits.
    for (let i = 0; i < 30; i++) {
      a.advance(100);
      b.advance(100);
      await a.e.tick();
      await b.e.tick();
      assert.deepEqual(leaders(a, b), ['0'], `round ${i}`);
    }
    assert.deepEqual(b.log, []);

    // a dies. b saw its last renewal at its current monotonic time; it waits a full lease (the
    // Lease's 1 s) more, and takes over on the first tick after that.
    const lastSeen = b.clock.mono;
    const before = api.count({ resource: 'leases', verb: 'update' });
    while (b.clock.mono - lastSeen <= 1000) {
      await b.e.tick();
      assert.equal(
        b.e.isLeader(),
        false,
        `b leads only after a lease duration (at +${b.clock.mono - lastSeen} ms)`,
      );
      b.advance(100);
    }
    assert.equal(
      api.count({ resource: 'leases', verb: 'update' }),
      before,
      'no takeover attempt before expiry',
    );
    await b.e.tick();
    assert.equal(b.clock.mono - lastSeen, 1100);
    assert.ok(b.e.isLeader());
    assert.equal(b.e.term, 2);
    assert.deepEqual(b.log, ['lead 2']);
    assert.equal(lease(api)?.holderIdentity, 'b');
    assert.equal(lease(api)?.leaseTransitions, 1);
    assert.deepEqual(a.errors, []);
    assert.deepEqual(b.errors, []);
  },
);

test(
  'a frozen (SIGSTOPped) leader fences itself before anyone can take over, without asking the server',
  TIMEOUT,
  async (t) => {
    const api = await fakeApi(t);
    const a = replica(api, 'a');
    const b = replica(api, 'b', { mono: 42_000, wall: Date.now() + 2 * HOUR });
    t.after(() => Promise.all([a.e.stop(), b.e.stop()]));
    await a.e.tick();
    await b.e.tick();
    a.advance(100);
    b.advance(100);
    await a.e.tick(); // a's last renewal started at its monotonic 100
    await b.e.tick(); // b sees it at its 42_100
    assert.deepEqual(leaders(a, b), ['0']);
    a.e.fence();

    // a is frozen: its clock moves, it makes no request. Until 100 + 1000 - 100 it may act...
    const requests = api.requests.length;
    a.advance(899);
    assert.ok(a.e.isLeader());
    a.e.fence();
    // ...and from then on it may not, although it has not heard of anyone else.
    a.advance(1);
    assert.equal(a.e.isLeader(), false);
    assert.throws(() => a.e.fence(), NotLeaderError);
    assert.equal(api.requests.length, requests, 'decided without talking to the server');
    assert.deepEqual(a.log, ['lead 1'], 'no step-down event yet: it has not looked');

    // b, meanwhile, cannot have taken over yet: its 1 s (as the Lease says) is not over.
    b.advance(900);
    await b.e.tick();
    assert.deepEqual(leaders(a, b), []);
    b.advance(200);
    await b.e.tick();
    assert.deepEqual(leaders(a, b), ['1']);
    assert.equal(b.e.term, 2);

    // a wakes up: still not leader before its first request, and it steps down on it.
    a.advance(5_000);
    assert.equal(a.e.isLeader(), false);
    await a.e.tick();
    assert.equal(a.e.isLeader(), false);
    assert.deepEqual(a.log, ['lead 1', 'stop']);
    assert.equal(a.e.term, 1);
    assert.equal(lease(api)?.holderIdentity, 'b');
  },
);

test('a frozen leader that nobody replaced renews on waking, in the same term', TIMEOUT, async (t) => {
  const api = await fakeApi(t);
  const a = replica(api, 'a');
  t.after(() => a.e.stop());
  await a.e.tick();
  a.advance(10_000);
  assert.equal(a.e.isLeader(), false);
  await a.e.tick();
  assert.ok(a.e.isLeader());
  assert.equal(a.e.term, 1);
  assert.deepEqual(a.log, ['lead 1']);
  assert.equal(lease(api)?.leaseTransitions, 0);
});

test(
  'stop() releases the Lease: the other replica takes over at once, and terms grow with every change of holder',
  TIMEOUT,
  async (t) => {
    const api = await fakeApi(t);
    const a = replica(api, 'a');
    const b = replica(api, 'b', { mono: 77_777 });
    await a.e.tick();
    await b.e.tick();
    assert.equal(a.e.term, 1);

    await a.e.stop();
    assert.equal(a.e.isLeader(), false);
    assert.deepEqual(a.log, ['lead 1', 'stop']);
    const released = lease(api);
    assert.ok(!released?.holderIdentity, `released: ${JSON.stringify(released)}`);

    // No clock moved: b does not wait for any expiry.
    await b.e.tick();
    assert.ok(b.e.isLeader());
    assert.equal(b.e.term, 2);

    const terms = [1, 2];
    let current = b;
    for (const id of ['c', 'a', 'b', 'd']) {
      const next = replica(api, id, { mono: terms.length * 1_000_000 });
      await next.e.tick();
      assert.equal(next.e.isLeader(), false, `${id} waits while the Lease is held`);
      await current.e.stop();
      await next.e.tick();
      assert.ok(next.e.isLeader(), `${id} took over`);
      terms.push(next.e.term);
      assert.equal(lease(api)?.holderIdentity, id);
      assert.equal(lease(api)?.leaseTransitions, next.e.term - 1);
      current = next;
    }
    assert.deepEqual(terms, [1, 2, 3, 4, 5, 6]);
    await current.e.stop();
    assert.ok(!lease(api)?.holderIdentity);
    // A follower's stop() writes nothing.
    const updates = api.count({ resource: 'leases', verb: 'update' });
    const follower = replica(api, 'f');
    await follower.e.stop();
    assert.equal(api.count({ resource: 'leases', verb: 'update' }), updates);
  },
);

test('a restarted replica with the same identity takes its Lease back in a new term', TIMEOUT, async (t) => {
  const api = await fakeApi(t);
  const before = replica(api, 'pod-0');
  await before.e.tick();
  before.advance(100);
  await before.e.tick();
  assert.equal(before.e.term, 1);

  // The container restarts (same pod name) without releasing: the Lease still names it.
  const after = replica(api, 'pod-0', { mono: 3 });
  t.after(() => after.e.stop());
  await after.e.tick();
  assert.ok(after.e.isLeader(), 'its own Lease: no need to wait');
  assert.ok(after.e.term > before.e.term, `term ${after.e.term} after ${before.e.term}`);
  assert.equal(lease(api)?.leaseTransitions, 1);
  assert.deepEqual(after.log, [`lead ${after.e.term}`]);
});

test(
  'after stepping down on failed renewals, a leader that gets its Lease back starts a new term',
  TIMEOUT,
  async (t) => {
    const api = await fakeApi(t);
    const a = replica(api, 'a');
    t.after(() => a.e.stop());
    await a.e.tick();
    // The API server fails every request for 900 ms: renewals fail; a steps down after the renew
    // deadline (800 ms), and its fence had closed by then at the latest.
    api.failNext(9, { status: 500, match: (r) => r.resource === 'leases' });
    for (let i = 1; i <= 9; i++) {
      a.advance(100);
      await a.e.tick();
      assert.equal(a.log.includes('stop'), i === 9, `stepped down only past the renew deadline (tick ${i})`);
      assert.equal(a.e.isLeader(), i < 9);
    }
    assert.equal(a.errors.length, 9);
    a.advance(100);
    await a.e.tick();
    assert.ok(a.e.isLeader());
    assert.equal(a.e.term, 2, 'a new term: the old one may have been followed by another leader');
    assert.deepEqual(a.log, ['lead 1', 'stop', 'lead 2']);
  },
);

test(
  'two replicas creating the Lease at once: one wins, the other gets 409 and follows',
  TIMEOUT,
  async (t) => {
    const api = await fakeApi(t);
    const a = replica(api, 'a');
    const b = replica(api, 'b');
    t.after(() => Promise.all([a.e.stop(), b.e.stop()]));
    // Both read "no Lease" before either creates it.
    const release = api.hold((r) => r.resource === 'leases' && r.verb === 'get');
    const ticks = Promise.all([a.e.tick(), b.e.tick()]);
    await api.waitFor((s) => s.count({ resource: 'leases', verb: 'get' }) === 2, { timeoutMs: WAIT_MS });
    release();
    await ticks;
    assert.equal(api.count({ resource: 'leases', verb: 'create' }), 2);
    assert.equal(leaders(a, b).length, 1, 'exactly one leader');
    const winner = a.e.isLeader() ? a : b;
    const loser = winner === a ? b : a;
    assert.equal(lease(api)?.holderIdentity, winner === a ? 'a' : 'b');
    assert.equal(winner.e.term, 1);
    assert.deepEqual(loser.log, []);
    assert.deepEqual([...a.errors, ...b.errors], [], 'a lost race is not an error');

    // And the loser keeps following while the winner renews.
    for (let i = 0; i < 5; i++) {
      winner.advance(100);
      loser.advance(100);
      await winner.e.tick();
      await loser.e.tick();
      assert.equal(leaders(a, b).length, 1);
    }
  },
);

test(
  'two replicas taking over an expired Lease at once: the stale resourceVersion loses with 409',
  TIMEOUT,
  async (t) => {
    const api = await fakeApi(t);
    api.apply({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: NAME, namespace: NS },
      spec: {
        holderIdentity: 'ghost',
        leaseDurationSeconds: 1,
        leaseTransitions: 4,
        renewTime: '2020-01-01T00:00:00.000000Z',
      },
    });
    const a = replica(api, 'a');
    const b = replica(api, 'b', { mono: 123 });
    t.after(() => Promise.all([a.e.stop(), b.e.stop()]));
    await a.e.tick();
    await b.e.tick();
    assert.deepEqual(leaders(a, b), [], 'the ghost holds it until it expires on our clocks');
    a.advance(1001);
    b.advance(1001);

    // Both read the same expired Lease, then both write it.
    const release = api.hold((r) => r.resource === 'leases' && r.verb === 'update');
    const ticks = Promise.all([a.e.tick(), b.e.tick()]);
    await api.waitFor((s) => s.count({ resource: 'leases', verb: 'update' }) === 2, { timeoutMs: WAIT_MS });
    release();
    await ticks;
    assert.equal(leaders(a, b).length, 1, 'exactly one leader');
    const winner = a.e.isLeader() ? a : b;
    assert.equal(lease(api)?.holderIdentity, winner === a ? 'a' : 'b');
    assert.equal(lease(api)?.leaseTransitions, 5);
    assert.equal(winner.e.term, 6);
    assert.deepEqual([...a.errors, ...b.errors], []);
  },
);

test('the timer loop: one leader, and a clean handover on stop()', TIMEOUT, async (t) => {
  const api = await fakeApi(t);
  // Real clocks and timers; a lease long enough that a loaded machine cannot miss a renewal.
  const opts = {
    now: () => performance.now(),
    wallNow: Date.now,
    leaseDurationMs: 5000,
    renewDeadlineMs: 4000,
    safetyMarginMs: 500,
    retryPeriodMs: 50,
  };
  const a = replica(api, 'a', {}, opts);
  const b = replica(api, 'b', {}, opts);
  t.after(() => Promise.all([a.e.stop(), b.e.stop()]));
  a.e.start();
  b.e.start();
  const first = await api.waitFor((s) => s.get<{ spec: LeaseSpec }>('Lease', NS, NAME)?.spec.holderIdentity, {
    timeoutMs: WAIT_MS,
  });
  const [leader, other] = first === 'a' ? [a, b] : [b, a];
  // The other replica has read the Lease at least once since: it follows.
  const gets = api.count({ resource: 'leases', verb: 'get' });
  await api.waitFor((s) => s.count({ resource: 'leases', verb: 'get' }) >= gets + 4, { timeoutMs: WAIT_MS });
  assert.equal(other.e.isLeader(), false);
  assert.deepEqual(other.log, []);

  await leader.e.stop();
  const second = await api.waitFor(
    (s) => {
      const h = s.get<{ spec: LeaseSpec }>('Lease', NS, NAME)?.spec.holderIdentity;
      return h && h !== first ? h : undefined;
    },
    { timeoutMs: WAIT_MS, message: 'the other replica to take over' },
  );
  assert.equal(second, first === 'a' ? 'b' : 'a');
  assert.equal(leader.e.isLeader(), false);
  assert.equal(lease(api)?.leaseTransitions, 1);
  await other.e.stop();
  assert.ok(!lease(api)?.holderIdentity);
});

test('stop() of a frozen leader that was replaced leaves the new holder alone', TIMEOUT, async (t) => {
  const api = await fakeApi(t);
  const a = replica(api, 'a');
  const b = replica(api, 'b');
  t.after(() => b.e.stop());
  await a.e.tick();
  await b.e.tick();
  a.advance(60_000);
  b.advance(1_100);
  await b.e.tick();
  assert.ok(b.e.isLeader());
  const updates = api.count({ resource: 'leases', verb: 'update' });
  await a.e.stop(); // never ticked again: it still believes it led, but the Lease says otherwise
  assert.equal(api.count({ resource: 'leases', verb: 'update' }), updates);
  assert.equal(lease(api)?.holderIdentity, 'b');
  assert.deepEqual(a.log, ['lead 1', 'stop']);
  assert.ok(b.e.isLeader());
});

// --- Terms never go back: a recreated Lease, and terms proxies have seen ------------------------

/** The Lease after ten changes of holder, released: the next acquisition is term 11. */
function seasonedLease(api: FakeApiServer): void {
  api.apply({
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: NAME, namespace: NS },
    spec: { holderIdentity: null, leaseDurationSeconds: 1, leaseTransitions: 9 },
  });
}

test(
  "a Lease deleted under its leader is recreated in the leader's term, and the next holder goes above it",
  TIMEOUT,
  async (t) => {
    const api = await fakeApi(t);
    seasonedLease(api);
    const a = replica(api, 'a');
    await a.e.tick();
    assert.equal(a.e.term, 11);
    api.remove('Lease', NS, NAME);
    a.advance(100);
    await a.e.tick();
    assert.ok(a.e.isLeader());
    assert.equal(a.e.term, 11, 'the same leadership, the same term');
    assert.deepEqual(a.log, ['lead 11']);
    assert.equal(lease(api)?.holderIdentity, 'a');
    assert.equal(lease(api)?.leaseTransitions, 10, 'the new Lease says the running term');

    // A replica that never saw the old Lease (a new process) takes over above it.
    await a.e.stop();
    const b = replica(api, 'b', { mono: 5_000 });
    t.after(() => b.e.stop());
    await b.e.tick();
    assert.equal(b.e.term, 12);
    assert.equal(lease(api)?.leaseTransitions, 11);
  },
);

test(
  'a leader whose fence lapsed and finds its Lease gone starts a new term when it recreates it',
  TIMEOUT,
  async (t) => {
    const api = await fakeApi(t);
    seasonedLease(api);
    const a = replica(api, 'a');
    t.after(() => a.e.stop());
    await a.e.tick();
    api.remove('Lease', NS, NAME);
    a.advance(5_000); // frozen: anyone may have led meanwhile
    await a.e.tick();
    assert.ok(a.e.isLeader());
    assert.deepEqual(a.log, ['lead 11', 'stop', 'lead 12']);
    assert.equal(lease(api)?.leaseTransitions, 11);
  },
);

test('a follower that finds the Lease gone recreates it above every term it saw', TIMEOUT, async (t) => {
  const api = await fakeApi(t);
  seasonedLease(api);
  const a = replica(api, 'a');
  const b = replica(api, 'b', { mono: 9_000 });
  t.after(() => Promise.all([a.e.stop(), b.e.stop()]));
  await a.e.tick();
  await b.e.tick();
  assert.deepEqual(leaders(a, b), ['0']);
  api.remove('Lease', NS, NAME);
  b.advance(100);
  await b.e.tick(); // b is first to see it gone
  assert.equal(b.e.term, 12, 'above term 11, which it saw a hold');
  assert.equal(lease(api)?.holderIdentity, 'b');
  assert.equal(lease(api)?.leaseTransitions, 11);
  a.advance(100);
  await a.e.tick();
  assert.deepEqual(leaders(a, b), ['1']);
  assert.deepEqual(a.log, ['lead 11', 'stop']);
});

test('termFloor: a fresh Lease is acquired above the terms proxies run', TIMEOUT, async (t) => {
  const api = await fakeApi(t);
  let floor = 11;
  const a = replica(api, 'a', {}, { termFloor: () => floor });
  await a.e.tick();
  assert.equal(a.e.term, 12);
  assert.equal(lease(api)?.leaseTransitions, 11);
  await a.e.stop();
  // Floors at or below the Lease's count change nothing.
  floor = 3;
  const b = replica(api, 'b', { mono: 1 }, { termFloor: () => floor });
  t.after(() => b.e.stop());
  await b.e.tick();
  assert.equal(b.e.term, 13);
  assert.equal(lease(api)?.leaseTransitions, 12);
});

test(
  'raiseTerm: the leader moves above a term the fleet saw with a conditional Lease update; the next holder goes above that',
  TIMEOUT,
  async (t) => {
    const api = await fakeApi(t);
    const changed: string[] = [];
    const a = replica(
      api,
      'a',
      {},
      { onTermChanged: (term, previous) => changed.push(`${previous}→${term}`) },
    );
    await a.e.tick();
    assert.equal(a.e.term, 1);
    // A term below the one it leads: nothing to do.
    a.e.raiseTerm(0);
    a.advance(100);
    await a.e.tick();
    assert.equal(a.e.term, 1);
    assert.equal(lease(api)?.leaseTransitions, 0);

    // Proxies run term 11 (the Lease was recreated under them).
    a.e.raiseTerm(11);
    assert.equal(a.e.term, 1, 'only once the Lease says so');
    a.advance(100);
    await a.e.tick();
    assert.equal(a.e.term, 12);
    assert.ok(a.e.isLeader());
    assert.deepEqual(changed, ['1→12']);
    assert.deepEqual(a.log, ['lead 1'], 'the same leadership: no start or stop');
    assert.equal(a.e.termRaises, 1);
    assert.equal(lease(api)?.leaseTransitions, 11);
    assert.equal(lease(api)?.holderIdentity, 'a');
    // Renewals keep it.
    a.advance(100);
    await a.e.tick();
    assert.equal(a.e.term, 12);
    assert.equal(lease(api)?.leaseTransitions, 11);

    // The same term reported again by a proxy that runs another process's versions of it.
    a.e.raiseTerm(12);
    a.advance(100);
    await a.e.tick();
    assert.equal(a.e.term, 13);
    assert.deepEqual(changed, ['1→12', '12→13']);

    await a.e.stop();
    const b = replica(api, 'b', { mono: 77 });
    t.after(() => b.e.stop());
    await b.e.tick();
    assert.equal(b.e.term, 14, 'followers agree: the count is in the Lease');
  },
);

test(
  'raiseTerm cannot be used by a follower or a deposed leader to take a higher term',
  TIMEOUT,
  async (t) => {
    const api = await fakeApi(t);
    const a = replica(api, 'a');
    const b = replica(api, 'b', { mono: 42_000 });
    t.after(() => Promise.all([a.e.stop(), b.e.stop()]));
    await a.e.tick();
    await b.e.tick();
    // A follower only remembers it (its own next acquisition goes above).
    const updates = api.count({ resource: 'leases', verb: 'update' });
    b.e.raiseTerm(50);
    b.advance(100);
    await b.e.tick();
    assert.equal(api.count({ resource: 'leases', verb: 'update' }), updates);
    assert.equal(lease(api)?.leaseTransitions, 0);

    // a freezes; b takes over (above 50, which it heard of: 51); a wakes up with a stale view and is told
    // of a term above b's: it reads the Lease, finds b holding it, and steps down without a write.
    a.advance(60_000);
    b.advance(1_100);
    await b.e.tick();
    assert.equal(b.e.term, 51);
    const before = api.count({ resource: 'leases', verb: 'update' });
    a.e.raiseTerm(100);
    await a.e.tick();
    assert.equal(api.count({ resource: 'leases', verb: 'update' }), before);
    assert.equal(a.e.isLeader(), false);
    assert.deepEqual(a.log, ['lead 1', 'stop']);
    assert.equal(a.e.term, 1);
    assert.equal(lease(api)?.holderIdentity, 'b');
    assert.equal(lease(api)?.leaseTransitions, 50);

    // Terms a Lease cannot count to (int32) are refused, not written.
    const errors = b.errors.length;
    b.e.raiseTerm(2 ** 31);
    b.advance(100);
    await b.e.tick();
    assert.equal(b.e.term, 51);
    assert.equal(b.errors.length, errors);
    assert.equal(lease(api)?.leaseTransitions, 50);
  },
);

test('a raise that loses a race (409) is retried while still leading', TIMEOUT, async (t) => {
  const api = await fakeApi(t);
  const a = replica(api, 'a');
  t.after(() => a.e.stop());
  await a.e.tick();
  a.e.raiseTerm(7);
  // The raise's update is held while someone else writes the Lease (an operator's label): the
  // update carries a stale resourceVersion and gets 409.
  const release = api.hold((r) => r.resource === 'leases' && r.verb === 'update');
  a.advance(100);
  const tick = a.e.tick();
  await api.waitFor((s) => s.count({ resource: 'leases', verb: 'update' }) === 1, { timeoutMs: WAIT_MS });
  const current = api.get<{ metadata: Record<string, unknown>; spec: LeaseSpec }>('Lease', NS, NAME)!;
  api.apply({
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: NAME, namespace: NS, labels: { touched: 'yes' } },
    spec: current.spec,
  });
  release();
  await tick;
  assert.equal(a.e.term, 1, 'not raised: the write lost');
  assert.equal(lease(api)?.leaseTransitions, 0);
  a.advance(100);
  await a.e.tick();
  assert.equal(a.e.term, 8);
  assert.equal(lease(api)?.leaseTransitions, 7);
  assert.equal(a.e.termRaises, 1);
});

test(
  'the timer loop: raiseTerm runs a round at once instead of at the next retry period',
  TIMEOUT,
  async (t) => {
    const api = await fakeApi(t);
    let started!: (term: number) => void;
    const led = new Promise<number>((resolve) => {
      started = resolve;
    });
    // A retry period far longer than the test: only the immediate round can write the raise.
    const a = replica(
      api,
      'a',
      {},
      { now: () => performance.now(), retryPeriodMs: 3_600_000, onStartedLeading: (term) => started(term) },
    );
    t.after(() => a.e.stop());
    a.e.start();
    assert.equal(await led, 1);
    a.e.raiseTerm(20);
    await api.waitFor((s) => s.get<{ spec: LeaseSpec }>('Lease', NS, NAME)?.spec.leaseTransitions === 20, {
      timeoutMs: WAIT_MS,
      message: 'the raise to be written',
    });
  },
);
