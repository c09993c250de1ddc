/**
 * The controller's Lease is deleted and recreated (an operator deletes it, the namespace is
 * recreated, `helm uninstall` and reinstall, a restore from backup) after the fleet has reached a
 * high term: route changes must still reach the proxies, which keep (in memory or persisted in
 * their state directory) tables versioned in the old, higher term and never apply a lower one.
 *
 * A fake API server, real controllers (startController) and a real proxy role (startProxyRole)
 * with a state directory. The fleet's history is a Lease released after ten changes of holder, so
 * the first controller leads term 11. Every wait is on an event (the proxy applying a table, a
 * fake-server write), bounded so that a broken fix fails instead of hanging.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { type TestContext, test } from 'node:test';
import type { KubeConfig } from '@kubernetes/client-node';
import { createLogger } from '../../../src/observability/logger.ts';
import { type ControllerRole, startController } from '../../../src/roles/controller.ts';
import { type ProxyRole, startProxyRole } from '../../../src/roles/proxy.ts';
import { send } from '../../support/client.ts';
import { type FakeApiServer, kubeConfigFor, startFakeApiServer } from '../../support/fake-apiserver/index.ts';
import { startUpstream, type TestUpstream } from '../../support/upstream.ts';

const NS = 'modelgate';
const LEASE = 'modelgate-controller';
/** Bound of every wait: generous, only there so a failure ends the test. */
const WAIT_MS = 30_000;
const TEST = { timeout: 120_000 };

const quiet = () => createLogger({ destination: new Writable({ write: (_c, _e, cb) => cb() }) }).logger;

interface LeaseSpec {
  holderIdentity?: string | null;
  leaseTransitions?: number;
}

class Fleet {
  api!: FakeApiServer;
  kc!: KubeConfig;
  stateDir!: string;
  readonly upstreams = new Map<string, TestUpstream>();
  readonly controllers = new Set<ControllerRole>();
  readonly proxies = new Set<ProxyRole>();

  static async start(t: TestContext): Promise<Fleet> {
    const f = new Fleet();
    t.after(() => f.close());
    f.api = await startFakeApiServer();
    f.kc = kubeConfigFor(f.api.url);
    f.stateDir = await mkdtemp(join(tmpdir(), 'modelgate-lease-recreated-'));
    // Ten changes of holder so far, the last holder released it: the next leader has term 11.
    f.api.apply({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: LEASE, namespace: NS },
      spec: { holderIdentity: null, leaseDurationSeconds: 1, leaseTransitions: 9 },
    });
    return f;
  }

  lease(): LeaseSpec | undefined {
    return this.api.get<{ spec: LeaseSpec }>('Lease', NS, LEASE)?.spec;
  }

  async controller(identity: string, port = 0): Promise<ControllerRole> {
    const c = await startController({
      kc: this.kc,
      namespace: NS,
      identity,
      listen: { address: '127.0.0.1', port },
      admin: { address: '127.0.0.1', port: 0 },
      leaseDurationMs: 2000,
      renewDeadlineMs: 1500,
      retryPeriodMs: 100,
      debounceMs: 10,
      logger: quiet(),
    });
    this.controllers.add(c);
    return c;
  }

  async stopController(c: ControllerRole): Promise<void> {
    this.controllers.delete(c);
    await c.shutdown();
  }

  /** Stops `c` and starts the same replica again (a new process) on the same push port. */
  async restartController(
    c: ControllerRole,
    identity: string,
    between?: () => void,
  ): Promise<ControllerRole> {
    const port = Number(new URL(c.pushUrl).port);
    await this.stopController(c);
    between?.();
    return this.controller(identity, port);
  }

  async proxy(controllers: ControllerRole[]): Promise<ProxyRole> {
    const token = Buffer.from(
      String(this.api.get<{ data: { token: string } }>('Secret', NS, 'modelgate-push-token')!.data.token),
      'base64',
    ).toString();
    const p = await startProxyRole({
      proxyId: 'proxy-0',
      controllers: controllers.map((c) => c.pushUrl),
      token: () => token,
      stateDir: this.stateDir,
      listen: { address: '127.0.0.1', port: 0 },
      admin: { address: '127.0.0.1', port: 0 },
      logger: quiet(),
    });
    this.proxies.add(p);
    return p;
  }

  async stopProxy(p: ProxyRole): Promise<void> {
    this.proxies.delete(p);
    await p.shutdown(1000);
  }

  /** A ModelRoute sending `path` to a new upstream named `name`. */
  async route(name: string, path: string): Promise<void> {
    const up = await startUpstream(name);
    this.upstreams.set(name, up);
    this.api.apply({
      apiVersion: 'modelgate.dev/v1alpha1',
      kind: 'ModelRoute',
      metadata: { name, namespace: 'ml' },
      spec: { rules: [{ matches: [{ path: { value: path } }], backends: [{ name, urls: [up.url] }] }] },
    });
  }

  async close(): Promise<void> {
    for (const p of this.proxies) await p.shutdown(1000);
    for (const c of this.controllers) await c.shutdown();
    await this.api?.close();
    for (const up of this.upstreams.values()) await up.close();
    if (this.stateDir) await rm(this.stateDir, { recursive: true, force: true });
  }
}

/** Resolves once `check` holds, re-checked after each table the proxy applies. */
async function untilApplied(proxy: ProxyRole, check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = AbortSignal.timeout(WAIT_MS);
  for (;;) {
    const stop = new AbortController();
    const applied = once(proxy.push, 'applied', { signal: AbortSignal.any([stop.signal, deadline]) });
    applied.catch(() => {});
    try {
      if (await check()) return;
      await applied;
    } catch (e) {
      if (deadline.aborted) {
        throw new Error(
          `timed out waiting for ${what}; the proxy runs ${JSON.stringify(proxy.push.status().version)}`,
        );
      }
      throw e;
    } finally {
      stop.abort();
    }
  }
}

/** Waits until `path` answers through the proxy from the upstream `name`. */
function untilServed(proxy: ProxyRole, path: string, name: string): Promise<void> {
  return untilApplied(
    proxy,
    async () => {
      const r = await send(proxy.listener.url, { path });
      return r.status === 200 && r.headers['x-upstream'] === name;
    },
    `${path} to answer from ${name} through the proxy`,
  );
}

const term = (p: ProxyRole) => p.push.status().version?.term ?? 0;

async function raises(c: ControllerRole): Promise<number> {
  const metrics = (await send(c.adminUrl, { path: '/metrics' })).text;
  const m = /^modelgate_controller_term_raises_total (\d+)$/m.exec(metrics);
  assert.ok(m, 'the controller exports modelgate_controller_term_raises_total');
  return Number(m[1]);
}

test(
  'the Lease is deleted while the leader runs, then the leader restarts: changes keep reaching the proxy',
  TEST,
  async (t) => {
    const f = await Fleet.start(t);
    let c = await f.controller('controller-0');
    const proxy = await f.proxy([c]);
    await f.route('first', '/first');
    await untilServed(proxy, '/first', 'first');
    assert.equal(c.elector.term, 11);
    assert.equal(term(proxy), 11);

    // Deleted under the running leader: it recreates it and stays in its term, which the new Lease
    // says too, so whoever acquires it next takes a higher one.
    f.api.remove('Lease', NS, LEASE);
    const recreated = await f.api.waitFor((s) => s.get<{ spec: LeaseSpec }>('Lease', NS, LEASE)?.spec, {
      timeoutMs: WAIT_MS,
      message: 'the leader to recreate its Lease',
    });
    assert.equal(recreated.holderIdentity, 'controller-0');
    assert.ok(c.elector.isLeader());
    assert.equal(c.elector.term, 11);
    assert.equal(recreated.leaseTransitions, 10, 'the recreated Lease carries the running term');
    await f.route('second', '/second');
    await untilServed(proxy, '/second', 'second');
    assert.equal(term(proxy), 11);

    // A new process of the same replica acquires the recreated Lease in a new term, above 11.
    c = await f.restartController(c, 'controller-0');
    await f.route('third', '/third');
    await untilServed(proxy, '/third', 'third');
    assert.ok(term(proxy) > 11, `proxy runs term ${term(proxy)}`);
    assert.equal(term(proxy), c.elector.term);
    assert.equal((await send(proxy.listener.url, { path: '/first' })).status, 200);
  },
);

test(
  'a controller restarted with a fresh Lease takes a term above the one the running proxy has',
  TEST,
  async (t) => {
    const f = await Fleet.start(t);
    let c = await f.controller('controller-0');
    const proxy = await f.proxy([c]);
    await f.route('first', '/first');
    await untilServed(proxy, '/first', 'first');
    assert.equal(term(proxy), 11);

    // The controller goes away and its Lease with it (helm uninstall / reinstall, namespace
    // recreated): the new process creates a Lease whose count starts again at 0. Whether it leads
    // term 1 until the proxy redials (then moves above 11) or hears from the proxy first, it must
    // end above 11.
    c = await f.restartController(c, 'controller-0', () => f.api.remove('Lease', NS, LEASE));
    await f.route('second', '/second');
    await untilServed(proxy, '/second', 'second');
    assert.ok(term(proxy) > 11, `proxy runs term ${term(proxy)}`);
    assert.equal(term(proxy), c.elector.term);
    assert.ok(c.elector.isLeader());
    // The Lease says so too: any replica acquiring it next takes a term above this one.
    assert.equal(f.lease()?.leaseTransitions, c.elector.term - 1);

    // And further changes flow normally in the new term.
    await f.route('third', '/third');
    await untilServed(proxy, '/third', 'third');
    assert.equal(term(proxy), c.elector.term);
  },
);

test(
  'controller and proxy both restart, the Lease is fresh and the proxy serves its persisted table',
  TEST,
  async (t) => {
    const f = await Fleet.start(t);
    let c = await f.controller('controller-0');
    let proxy = await f.proxy([c]);
    await f.route('first', '/first');
    await untilServed(proxy, '/first', 'first');
    assert.equal(term(proxy), 11);
    const persisted = once(proxy.push, 'persisted');
    await f.route('second', '/second');
    await untilServed(proxy, '/second', 'second');
    await persisted;

    await f.stopProxy(proxy);
    c = await f.restartController(c, 'controller-0', () => f.api.remove('Lease', NS, LEASE));
    // Nothing tells the new process about term 11 yet: it leads term 1 of the fresh Lease.
    await f.api.waitFor((s) => s.get<{ spec: LeaseSpec }>('Lease', NS, LEASE)?.spec.holderIdentity, {
      timeoutMs: WAIT_MS,
    });
    // Its next round starts after it took the new Lease in.
    const gets = f.api.count({ resource: 'leases', verb: 'get' });
    await f.api.waitFor((s) => s.count({ resource: 'leases', verb: 'get' }) > gets, { timeoutMs: WAIT_MS });
    assert.equal(c.elector.term, 1);
    assert.equal(f.lease()?.leaseTransitions, 0);
    proxy = await f.proxy([c]);
    // It came back with its persisted table (term 11) and says so when it connects.
    assert.ok(term(proxy) >= 11, `proxy runs term ${term(proxy)}`);

    await f.route('third', '/third');
    await untilServed(proxy, '/third', 'third');
    assert.ok(term(proxy) > 11, `proxy runs term ${term(proxy)}`);
    assert.equal(term(proxy), c.elector.term);
    assert.equal(proxy.push.status().source, 'controller');
    // Term 1 → 12 in one step, written to the Lease.
    assert.equal(c.elector.term, 12);
    assert.equal(await raises(c), 1);
    assert.equal(f.lease()?.leaseTransitions, 11);
  },
);

test(
  'two replicas racing for a deleted Lease: terms never go back, and the next failover goes above',
  TEST,
  async (t) => {
    const f = await Fleet.start(t);
    const a = await f.controller('controller-a');
    await f.api.waitFor(
      (s) => s.get<{ spec: LeaseSpec }>('Lease', NS, LEASE)?.spec.holderIdentity === 'controller-a',
      {
        timeoutMs: WAIT_MS,
      },
    );
    const b = await f.controller('controller-b');
    const proxy = await f.proxy([a, b]);
    await f.route('first', '/first');
    await untilServed(proxy, '/first', 'first');
    assert.equal(term(proxy), 11);

    // Both replicas tick every 100 ms: either may recreate the Lease.
    f.api.remove('Lease', NS, LEASE);
    const holder = await f.api.waitFor(
      (s) => s.get<{ spec: LeaseSpec }>('Lease', NS, LEASE)?.spec.holderIdentity,
      {
        timeoutMs: WAIT_MS,
        message: 'a replica to recreate the Lease',
      },
    );
    const [leader, other] = holder === 'controller-a' ? [a, b] : [b, a];
    await f.route('second', '/second');
    await untilServed(proxy, '/second', 'second');
    assert.ok(term(proxy) >= 11, `proxy runs term ${term(proxy)}`);
    assert.ok(leader.elector.isLeader());
    assert.equal(term(proxy), leader.elector.term);

    // The leader stops (it releases the Lease): the other replica takes over above every term seen.
    const before = term(proxy);
    await f.stopController(leader);
    await f.route('third', '/third');
    await untilServed(proxy, '/third', 'third');
    assert.ok(other.elector.isLeader());
    assert.ok(term(proxy) > before, `proxy runs term ${term(proxy)} after ${before}`);
    assert.equal(term(proxy), other.elector.term);
  },
);
