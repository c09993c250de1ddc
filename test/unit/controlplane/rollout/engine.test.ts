/**
 * The rollout engine around the state machine: writes are conditional on the resourceVersion the
 * state was read from (a stale write changes nothing and emits nothing), its own last write is
 * trusted over a lagging informer, and close() waits for a running pass. Fake clock and timers.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import type { CanaryRollout } from '../../../../src/api/resources.ts';
import { StatsAggregator } from '../../../../src/controlplane/rollout/backend-stats.ts';
import {
  type EngineTimers,
  RolloutEngine,
  StaleStatusError,
} from '../../../../src/controlplane/rollout/engine.ts';
import type { RolloutEvent } from '../../../../src/controlplane/rollout/types.ts';
import { createLogger } from '../../../../src/observability/logger.ts';

const quiet = createLogger({ destination: new Writable({ write: (_c, _e, cb) => cb() }) }).logger;
const T0 = Date.parse('2026-11-24T10:00:00.000Z');

/** A one-object API server: a resourceVersion that moves on every write, and preconditions. */
class FakeStore {
  rv = 1;
  status: Record<string, unknown> | undefined;
  writes: { rv: string | undefined; ok: boolean }[] = [];
  /** Pending persist calls, resolved by the test (to hold a pass open). */
  gate: Promise<void> | undefined;

  object(spec: Partial<CanaryRollout['spec']> = {}): CanaryRollout {
    return {
      apiVersion: 'modelgate.dev/v1alpha1',
      kind: 'CanaryRollout',
      metadata: { name: 'chat-v2', namespace: 'ml', resourceVersion: String(this.rv) },
      spec: {
        routeRef: { name: 'chat' },
        stableBackend: 'stable',
        canaryBackend: 'canary',
        weight: 0,
        steps: [{ setWeight: 30 }, { pause: {} }, { setWeight: 60 }],
        ...spec,
      },
      ...(this.status ? { status: structuredClone(this.status) } : {}),
    } as CanaryRollout;
  }

  async persist(status: Record<string, unknown>, rv: string | undefined): Promise<string> {
    await this.gate;
    const ok = rv === undefined || rv === String(this.rv);
    this.writes.push({ rv, ok });
    if (!ok) throw new StaleStatusError();
    this.status = JSON.parse(JSON.stringify({ ...this.status, ...status }, (_k, v) => v ?? undefined));
    this.rv++;
    return String(this.rv);
  }

  /** Someone else (the status writer's conditions) writes the object. */
  touch(): void {
    this.rv++;
  }
}

function setup() {
  let now = T0;
  const store = new FakeStore();
  const events: RolloutEvent[] = [];
  const pending: (() => void)[] = [];
  const timers: EngineTimers = {
    setTimeout: (fn) => {
      pending.push(fn);
      return pending.length;
    },
    clearTimeout: () => {},
  };
  const engine = new RolloutEngine({
    now: () => now,
    aggregator: new StatsAggregator(),
    persist: (_t, status, rv) => store.persist(status, rv),
    event: async (_t, e) => {
      events.push(e);
    },
    active: () => true,
    logger: quiet,
    timers,
  });
  const settle = async () => {
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  };
  return { store, events, engine, settle, advance: (ms: number) => (now += ms) };
}

test('each write is conditional on the version the state was read from; the engine trusts its own last write', async () => {
  const { store, engine, settle } = setup();
  engine.sync([store.object()]);
  await settle();
  // First write: no status yet, read at version 1.
  assert.deepEqual(store.writes[0], { rv: '1', ok: true });
  assert.equal(store.status?.phase, 'Paused');
  assert.equal(store.status?.stepWeight, 30);
  const writes = store.writes.length;
  // The informer lags: it shows the object without the status. The engine keeps its own state and
  // writes nothing (nothing changed), rather than starting over.
  const lagging = store.object();
  delete (lagging as { status?: unknown }).status;
  lagging.metadata.resourceVersion = '1';
  engine.sync([lagging]);
  await settle();
  assert.equal(store.writes.length, writes);
  // Resume: read from the lagging object, the write is conditional on the version the engine's own
  // write made, not the lagging one.
  const resumed = store.object();
  delete (resumed as { status?: unknown }).status;
  resumed.metadata.resourceVersion = '1';
  resumed.metadata.annotations = { 'modelgate.dev/resume': 'r1' };
  engine.sync([resumed]);
  await settle();
  assert.deepEqual(store.writes.at(-1), { rv: '2', ok: true });
  assert.equal(store.status?.phase, 'Promoted');
});

test('a write whose object moved on lands nothing and emits no event; the newer object is used next', async () => {
  const { store, engine, events, settle } = setup();
  engine.sync([store.object()]);
  await settle();
  const eventsBefore = events.length;
  const seen = store.object(); // version 2, with the engine's status
  store.touch(); // another writer: now version 3, not yet seen by the engine
  engine.sync([{ ...seen, metadata: { ...seen.metadata, annotations: { 'modelgate.dev/resume': 'r1' } } }]);
  await settle();
  assert.deepEqual(store.writes.at(-1), { rv: '2', ok: false });
  assert.equal(store.status?.phase, 'Paused', 'the stale write changed nothing');
  assert.equal(events.length, eventsBefore, 'no event for a write that did not land');
  // The informer delivers version 3: the resume is applied, once.
  const fresh = store.object();
  engine.sync([{ ...fresh, metadata: { ...fresh.metadata, annotations: { 'modelgate.dev/resume': 'r1' } } }]);
  await settle();
  assert.deepEqual(store.writes.at(-1), { rv: '3', ok: true });
  assert.equal(store.status?.phase, 'Promoted');
  assert.equal(events.filter((e) => e.reason === 'Promoted').length, 1);
});

test('close() resolves after a running pass has written its status and its events', async () => {
  const { store, engine, events } = setup();
  let release!: () => void;
  store.gate = new Promise<void>((r) => {
    release = r;
  });
  engine.sync([store.object()]);
  await new Promise((r) => setImmediate(r));
  const closed = engine.close();
  let done = false;
  void closed.then(() => {
    done = true;
  });
  await new Promise((r) => setImmediate(r));
  assert.equal(done, false, 'close waits for the pass');
  release();
  await closed;
  assert.equal(store.status?.phase, 'Paused');
  assert.ok(events.some((e) => e.reason === 'RolloutStarted'));
});
