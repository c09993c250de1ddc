/**
 * Automated rollouts across a leader failover between two controller replicas running at the same
 * time (rollout.test.ts covers one controller stopped and another started in its place).
 *
 * Each replica reaches the fake API server through its own `Link`: a small HTTP relay that records
 * every write passing through it, with the resourceVersion the API server answered, so the tests
 * can tell which replica wrote what and whether it landed before or after the other replica's term
 * began. A link can also refuse the Lease requests of its replica (503), which is a leader losing
 * the API server for its renewals without releasing the Lease — a crash, a partition or a frozen
 * node as far as the other replica can tell — while its other requests still go through, the case
 * where only fencing keeps a deposed leader from writing.
 *
 * Scenarios:
 * 1. graceful handover during a timed pause: the follower finishes the pause, not restarted;
 * 2. the leader's renewals fail (no release): the follower takes over once the Lease expires, and
 *    the old leader writes nothing once its Lease may have passed, even when its link heals;
 * 3. handover during an analysis interval, with a proxy and live traffic: the new leader did not
 *    watch the running interval from its start, so it restarts it, judges a whole one, promotes.
 *
 * Waits are on fake-server writes (api.waitFor) with generous bounds; no upper bound on wall-clock
 * durations is asserted.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger } from '../../../src/observability/logger.ts';
import { type ControllerRole, startController } from '../../../src/roles/controller.ts';
import { startProxyRole } from '../../../src/roles/proxy.ts';
import { send } from '../../support/client.ts';
import {
  type ChangeEvent,
  type FakeApiServer,
  kubeConfigFor,
  startFakeApiServer,
} from '../../support/fake-apiserver/index.ts';
import { startUpstream, type TestUpstream } from '../../support/upstream.ts';

const quiet = () => createLogger({ destination: new Writable({ write: (_c, _e, cb) => cb() }) }).logger;

const NS = 'modelgate';
const LEASE_MS = 2000;
const WAIT_MS = 30_000;

interface HistoryEntry {
  weight: number;
  at: string;
  reason: string;
}

interface RolloutStatus {
  revision?: string;
  phase?: string;
  stepWeight?: number;
  servedWeight?: number;
  currentStep?: number;
  message?: string;
  stepStartedAt?: string;
  intervalStartedAt?: string | null;
  analysisRuns?: { passed: number; failed: number; errors: number };
  lastAnalysis?: { verdict: string; at: string; canaryErrorRate?: number } | null;
  history?: HistoryEntry[];
}

interface LeaseSpec {
  holderIdentity?: string | null;
  leaseTransitions?: number;
}

// ---- the link: one replica's road to the API server ----------------------------------------

interface LinkWrite {
  method: string;
  path: string;
  status: number;
  /** The resourceVersion of the object the API server answered (undefined for non-objects). */
  rv: number | undefined;
  /** Date.now() when the request was forwarded. */
  at: number;
  /** The object the API server answered. */
  object: Record<string, unknown> | undefined;
}

interface Link {
  readonly url: string;
  /** Writes forwarded (in the order their answers came back). */
  readonly writes: LinkWrite[];
  /** While true, Lease requests are answered 503 without reaching the API server. */
  leaseCut: boolean;
  close(): Promise<void>;
}

async function startLink(target: string): Promise<Link> {
  const agent = new Agent({ keepAlive: true });
  const writes: LinkWrite[] = [];
  const link: Link = {
    url: '',
    writes,
    leaseCut: false,
    close: async () => {},
  };
  const server: Server = createServer((req, res) => {
    const path = req.url ?? '/';
    if (link.leaseCut && path.includes('/leases')) {
      req.resume();
      const body = JSON.stringify({
        kind: 'Status',
        apiVersion: 'v1',
        status: 'Failure',
        message: 'the link to the API server is cut',
        reason: 'ServiceUnavailable',
        code: 503,
      });
      res.writeHead(503, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    const at = Date.now();
    const method = req.method ?? 'GET';
    const up = httpRequest(new URL(path, target), { method, headers: req.headers, agent });
    req.pipe(up);
    up.on('error', () => res.destroy());
    res.on('close', () => {
      if (!res.writableFinished) up.destroy();
    });
    up.on('response', (answer) => {
      if (method === 'GET') {
        // Reads and watches stream through.
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        res.flushHeaders();
        answer.pipe(res);
        return;
      }
      const chunks: Buffer[] = [];
      answer.on('data', (c: Buffer) => chunks.push(c));
      answer.on('error', () => res.destroy());
      answer.on('end', () => {
        const text = Buffer.concat(chunks);
        let object: Record<string, unknown> | undefined;
        try {
          object = JSON.parse(text.toString('utf8')) as Record<string, unknown>;
        } catch {}
        const rv = (object?.metadata as { resourceVersion?: string } | undefined)?.resourceVersion;
        writes.push({
          method,
          path: path.split('?')[0]!,
          status: answer.statusCode ?? 0,
          rv: rv === undefined ? undefined : Number(rv),
          at,
          object,
        });
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        res.end(text);
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  Object.assign(link, {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  });
  return link;
}

const isLeaseWrite = (w: LinkWrite) => w.path.includes('/leases');
const ok = (w: LinkWrite) => w.status >= 200 && w.status < 300;
const rolloutWrites = (l: Link) =>
  l.writes.filter((w) => ok(w) && w.path.endsWith('/canaryrollouts/chat-v2/status'));
const eventReasons = (l: Link) =>
  l.writes
    .filter((w) => ok(w) && w.method === 'POST' && w.path.endsWith('/events'))
    .map((w) => String(w.object?.reason));

// ---- the fixture ----------------------------------------------------------------------------

interface Replica {
  readonly identity: string;
  readonly ctl: ControllerRole;
  readonly link: Link;
  /** Shuts the controller down once (later calls wait for the first). */
  stop(): Promise<void>;
}

class Fixture {
  api!: FakeApiServer;
  readonly replicas: Replica[] = [];
  readonly closers: (() => Promise<unknown>)[] = [];
  /** Every status the CanaryRollout had, in write order (from the fake server's change events). */
  readonly statuses: { rv: number; status: RolloutStatus }[] = [];
  /** The resourceVersion of each Lease write that made `identity` the holder (its acquisitions). */
  readonly acquisitions: { identity: string; rv: number; at: number }[] = [];
  /** Lease writes that emptied the holder: who gave the Lease up. */
  readonly releases: string[] = [];
  readonly links: Link[] = [];

  async start(): Promise<void> {
    this.api = await startFakeApiServer();
    this.api.events.on('change', (ev: ChangeEvent) => {
      const o = ev.object as {
        kind?: string;
        metadata: { name: string };
        spec?: LeaseSpec;
        status?: unknown;
      };
      if (ev.resource.kind === 'CanaryRollout' && o.metadata.name === 'chat-v2' && o.status) {
        const prev = (ev.prev as { status?: unknown } | undefined)?.status;
        if (JSON.stringify(prev) !== JSON.stringify(o.status)) {
          this.statuses.push({ rv: ev.rv, status: structuredClone(o.status) as RolloutStatus });
        }
      }
      if (ev.resource.kind === 'Lease') {
        const holder = o.spec?.holderIdentity;
        const before = (ev.prev as { spec?: LeaseSpec } | undefined)?.spec?.holderIdentity;
        if (holder && holder !== before)
          this.acquisitions.push({ identity: holder, rv: ev.rv, at: Date.now() });
        if (!holder && before) this.releases.push(before);
      }
    });
  }

  async replica(identity: string): Promise<Replica> {
    const link = await startLink(this.api.url);
    this.links.push(link);
    const ctl = await startController({
      kc: kubeConfigFor(link.url),
      namespace: NS,
      identity,
      listen: { address: '127.0.0.1', port: 0 },
      admin: { address: '127.0.0.1', port: 0 },
      leaseDurationMs: LEASE_MS,
      renewDeadlineMs: 1500,
      retryPeriodMs: 100,
      debounceMs: 10,
      logger: quiet(),
    });
    let stopping: Promise<void> | undefined;
    const r: Replica = { identity, ctl, link, stop: () => (stopping ??= ctl.shutdown()) };
    this.replicas.push(r);
    return r;
  }

  /** Starts A, waits until it leads, then starts B (a follower). */
  async pair(): Promise<[Replica, Replica]> {
    const a = await this.replica('controller-a');
    await this.api.waitFor(() => a.ctl.elector.isLeader() || undefined, {
      timeoutMs: WAIT_MS,
      message: 'controller-a did not become leader',
    });
    const b = await this.replica('controller-b');
    assert.equal(b.ctl.elector.isLeader(), false, 'controller-b starts as a follower');
    return [a, b];
  }

  applyRollout(backends: { stable: string; canary: string }, steps: unknown[]): void {
    this.api.apply({
      apiVersion: 'modelgate.dev/v1alpha1',
      kind: 'ModelRoute',
      metadata: { name: 'chat', namespace: 'ml' },
      spec: {
        rules: [
          {
            backends: [
              { name: 'stable', urls: [backends.stable] },
              { name: 'canary', urls: [backends.canary] },
            ],
          },
        ],
      },
    });
    this.api.apply({
      apiVersion: 'modelgate.dev/v1alpha1',
      kind: 'CanaryRollout',
      metadata: { name: 'chat-v2', namespace: 'ml' },
      spec: { routeRef: { name: 'chat' }, stableBackend: 'stable', canaryBackend: 'canary', steps },
    });
  }

  status(): RolloutStatus | undefined {
    return this.api.get<{ status?: RolloutStatus }>('CanaryRollout', 'ml', 'chat-v2')?.status;
  }

  lease(): LeaseSpec | undefined {
    return this.api.get<{ spec: LeaseSpec }>('Lease', NS, 'modelgate-controller')?.spec;
  }

  reasons(): string[] {
    return this.api.recordedEvents('ml').map((e) => String((e as { reason?: string }).reason));
  }

  /**
   * Events follow the status write they belong to (best effort): waits for one to land and, with
   * `by`, for that replica's link to have passed its answer on.
   */
  waitEvent(reason: string, by?: Replica): Promise<true> {
    return this.api.waitFor(
      () => (by ? eventReasons(by.link) : this.reasons()).includes(reason) || undefined,
      { timeoutMs: WAIT_MS, message: `no ${reason} event${by ? ` from ${by.identity}` : ''}` },
    );
  }

  /** Resolves with the status once `pred` holds for it. */
  waitStatus(pred: (s: RolloutStatus) => boolean, message: string): Promise<RolloutStatus> {
    return this.api.waitFor(
      () => {
        const s = this.status();
        return s && pred(s) ? s : undefined;
      },
      { timeoutMs: WAIT_MS, message },
    );
  }

  /** The first acquisition of the Lease by `identity`. */
  acquisition(identity: string): { rv: number; at: number } {
    const a = this.acquisitions.find((x) => x.identity === identity);
    assert.ok(a, `${identity} never acquired the Lease`);
    return a;
  }

  async cleanup(): Promise<void> {
    for (const r of [...this.replicas].reverse()) await r.stop();
    for (const close of this.closers.reverse()) await close();
    for (const l of this.links) await l.close();
    await this.api?.close();
  }
}

/**
 * Every status the rollout went through continues the previous one: the history only grows
 * (earlier entries kept exactly, none written twice), the step never goes back, and no status
 * is RolledBack or Failed. Statuses without the engine's fields yet (the status writer's
 * conditions may land first) are skipped.
 */
function assertNoRegression(all: readonly { rv: number; status: RolloutStatus }[]): void {
  const statuses = all.filter((x) => x.status.revision !== undefined);
  assert.ok(statuses.length > 0, 'the rollout has a status');
  const revision = statuses[0]!.status.revision;
  for (let i = 0; i < statuses.length; i++) {
    const s = statuses[i]!.status;
    assert.equal(s.revision, revision, `status at rv ${statuses[i]!.rv} has another revision`);
    assert.ok(
      s.phase !== 'RolledBack' && s.phase !== 'Failed',
      `status at rv ${statuses[i]!.rv}: ${s.phase} (${s.message})`,
    );
    if (i === 0) continue;
    const p = statuses[i - 1]!.status;
    const before = JSON.stringify(p.history ?? []);
    const now = JSON.stringify((s.history ?? []).slice(0, p.history?.length ?? 0));
    assert.equal(now, before, `the history at rv ${statuses[i]!.rv} does not continue the one before`);
    assert.ok(
      (s.currentStep ?? 0) >= (p.currentStep ?? 0),
      `the step went back from ${p.currentStep} to ${s.currentStep} at rv ${statuses[i]!.rv}`,
    );
  }
  // Every plan here sets distinct weights: a weight seen twice is a step run twice.
  const ws = (statuses.at(-1)!.status.history ?? []).map((h) => h.weight);
  assert.equal(new Set(ws).size, ws.length, `no step twice in the history: ${ws.join(', ')}`);
}

/**
 * No write by `old` (other than Lease requests) landed after `successor`'s term began: by
 * resourceVersion, or for an answer without one (a failed write) by when it was sent on.
 */
function assertFenced(f: Fixture, old: Replica, successor: Replica): void {
  const { rv: began, at } = f.acquisition(successor.identity);
  const late = old.link.writes.filter(
    (w) => !isLeaseWrite(w) && (w.rv === undefined ? w.at >= at : w.rv > began),
  );
  assert.deepEqual(
    late.map((w) => `${w.method} ${w.path} → ${w.status} rv ${w.rv}`),
    [],
    `${old.identity} wrote after ${successor.identity}'s term began (rv ${began})`,
  );
}

const weights = (s: RolloutStatus) => s.history?.map((h) => h.weight);
const count = (xs: string[], x: string) => xs.filter((y) => y === x).length;

// ---- 1. graceful handover ---------------------------------------------------------------------

test('graceful handover mid-pause: the follower finishes the pause it did not start, never restarting it', {
  timeout: 120_000,
}, async (t) => {
  const f = new Fixture();
  t.after(() => f.cleanup());
  await f.start();
  const [a, b] = await f.pair();
  f.applyRollout({ stable: 'http://127.0.0.1:9', canary: 'http://127.0.0.1:9' }, [
    { setWeight: 30 },
    { pause: { duration: '3s' } },
    { setWeight: 60 },
  ]);
  const paused = await f.waitStatus((s) => s.phase === 'Paused', 'the rollout did not reach its pause');
  assert.equal(paused.stepWeight, 30);
  // Events follow the status write: let them land before the handover (they are best effort).
  await f.waitEvent('PauseStarted', a);
  await a.stop();
  // A handed over before the pause ended: the rest is B's to do.
  assert.deepEqual(weights(f.status()!), [0, 30], 'controller-a stopped during the pause');
  assert.deepEqual(f.releases, ['controller-a'], 'controller-a released the Lease');

  await f.api.waitFor(() => b.ctl.elector.isLeader() || undefined, {
    timeoutMs: WAIT_MS,
    message: 'controller-b did not take over',
  });
  const done = await f.waitStatus((s) => s.phase === 'Promoted', 'controller-b did not finish the rollout');
  await f.waitEvent('Promoted', b);

  assert.deepEqual(weights(done), [0, 30, 60, 100]);
  assert.equal(f.lease()?.holderIdentity, 'controller-b');
  assert.ok(
    b.ctl.elector.term > a.ctl.elector.term,
    `terms: a ${a.ctl.elector.term}, b ${b.ctl.elector.term}`,
  );
  // The pause was continued from when A began it, not restarted by B.
  const pauseBegan = Date.parse(String(paused.stepStartedAt));
  const sixty = done.history!.find((h) => h.weight === 60)!;
  assert.ok(
    Date.parse(sixty.at) - pauseBegan >= 3000,
    `the pause lasted its 3 s from ${paused.stepStartedAt} (60 at ${sixty.at})`,
  );
  const reasons = f.reasons();
  assert.equal(count(reasons, 'RolloutStarted'), 1, `events: ${reasons.join(', ')}`);
  assert.equal(count(reasons, 'PauseStarted'), 1, `events: ${reasons.join(', ')}`);
  // Who did what: A started and paused, B ended the pause and promoted.
  assert.ok(eventReasons(a.link).includes('PauseStarted'), `a: ${eventReasons(a.link).join(', ')}`);
  assert.ok(eventReasons(b.link).includes('Promoted'), `b: ${eventReasons(b.link).join(', ')}`);
  assert.ok(!eventReasons(b.link).includes('RolloutStarted'));
  assert.ok(!eventReasons(b.link).includes('PauseStarted'));
  const sixtyBy = (l: Link) =>
    rolloutWrites(l).some((w) =>
      ((w.object?.status as RolloutStatus | undefined)?.history ?? []).some((h) => h.weight === 60),
    );
  assert.ok(sixtyBy(b.link) && !sixtyBy(a.link), 'controller-b wrote the step after the pause');
  assertNoRegression(f.statuses);
  assertFenced(f, a, b);
});

// ---- 2. leader lost without release -------------------------------------------------------------

test('a leader whose renewals fail is replaced once its Lease expires, and writes nothing after', {
  timeout: 120_000,
}, async (t) => {
  const f = new Fixture();
  t.after(() => f.cleanup());
  await f.start();
  const [a, b] = await f.pair();
  f.applyRollout({ stable: 'http://127.0.0.1:9', canary: 'http://127.0.0.1:9' }, [
    { setWeight: 30 },
    { pause: { duration: '3s' } },
    { setWeight: 60 },
  ]);
  const paused = await f.waitStatus((s) => s.phase === 'Paused', 'the rollout did not reach its pause');
  await f.waitEvent('PauseStarted', a);
  // A can no longer renew (nor release); everything else it does still reaches the API server.
  a.link.leaseCut = true;

  await f.api.waitFor(() => b.ctl.elector.isLeader() || undefined, {
    timeoutMs: WAIT_MS,
    message: 'controller-b did not take over the expired Lease',
  });
  const took = f.acquisition('controller-b');
  // When A's last successful renewal was sent on (renewals in flight at the cut have ended by now).
  const lastRenewal = Math.max(...a.link.writes.filter((w) => isLeaseWrite(w) && ok(w)).map((w) => w.at));
  // B waited for a whole lease duration without renewal (measured on its own clock).
  assert.ok(
    took.at - lastRenewal >= LEASE_MS,
    `controller-b took over ${took.at - lastRenewal} ms after controller-a's last renewal`,
  );
  assert.equal(a.ctl.elector.isLeader(), false, 'controller-a knows it may no longer lead');

  // A stays cut from the Lease (but not from the rollout) until B is done: when the pause ends,
  // only A's fencing keeps it from writing the next step too.
  const done = await f.waitStatus((s) => s.phase === 'Promoted', 'controller-b did not finish the rollout');
  await f.waitEvent('Promoted', b);
  // The link heals: A sees B's renewals and stays a follower.
  a.link.leaseCut = false;
  assert.deepEqual(weights(done), [0, 30, 60, 100]);
  const pauseBegan = Date.parse(String(paused.stepStartedAt));
  const sixty = done.history!.find((h) => h.weight === 60)!;
  assert.ok(Date.parse(sixty.at) - pauseBegan >= 3000, `the pause lasted its 3 s (60 at ${sixty.at})`);
  const reasons = f.reasons();
  assert.equal(count(reasons, 'RolloutStarted'), 1, `events: ${reasons.join(', ')}`);
  assert.equal(count(reasons, 'PauseStarted'), 1, `events: ${reasons.join(', ')}`);
  assert.ok(eventReasons(b.link).includes('Promoted'), `b: ${eventReasons(b.link).join(', ')}`);

  // A keeps running next to B: give it some of its retry periods with the healed link (B's
  // renewals are writes, one per 100 ms), then check it never led again nor wrote in B's term.
  const settled = f.api.changes;
  await f.api.waitFor(() => f.api.changes >= settled + 10 || undefined, {
    timeoutMs: WAIT_MS,
    message: 'controller-b stopped renewing',
  });
  assert.equal(a.ctl.elector.isLeader(), false);
  assert.equal(f.lease()?.holderIdentity, 'controller-b');
  assert.equal(
    f.acquisitions.filter((x) => x.identity === 'controller-a').length,
    1,
    'controller-a led once',
  );
  assertNoRegression(f.statuses);
  assertFenced(f, a, b);
  // Stronger than the term order: nothing of A's reached the API server once its Lease could have
  // passed to B (its last successful renewal + the lease duration).
  const afterLease = a.link.writes.filter((w) => !isLeaseWrite(w) && w.at > lastRenewal + LEASE_MS);
  assert.deepEqual(
    afterLease.map((w) => `${w.method} ${w.path}`),
    [],
    'controller-a wrote after its Lease lapsed',
  );
});

// ---- 3. handover during an analysis interval --------------------------------------------------

test('handover mid-interval: the new leader restarts the interval it did not watch, then promotes', {
  timeout: 120_000,
}, async (t) => {
  const f = new Fixture();
  t.after(() => f.cleanup());
  await f.start();
  const [a, b] = await f.pair();
  const stable = await startUpstream('stable');
  const canary: TestUpstream = await startUpstream('canary');
  const stateDir = await mkdtemp(join(tmpdir(), 'modelgate-failover-'));
  f.closers.push(
    () => stable.close(),
    () => canary.close(),
    () => rm(stateDir, { recursive: true, force: true }),
  );
  const token = Buffer.from(
    String(f.api.get<{ data: { token: string } }>('Secret', NS, 'modelgate-push-token')!.data.token),
    'base64',
  ).toString();
  const proxy = await startProxyRole({
    proxyId: 'proxy-0',
    controllers: [a.ctl.pushUrl, b.ctl.pushUrl],
    token: () => token,
    stateDir,
    listen: { address: '127.0.0.1', port: 0 },
    admin: { address: '127.0.0.1', port: 0 },
    reportIntervalMs: 100,
    logger: quiet(),
  });
  // Closers run in reverse: the load stops, then the proxy, then the upstreams.
  f.closers.push(() => proxy.shutdown(1000));
  let stop = false;
  let sent = 0;
  const load = (async () => {
    // At most 20,000 requests or 60 s.
    const deadline = Date.now() + 60_000;
    while (!stop && sent < 20_000 && Date.now() < deadline) {
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          sent++;
          await send(proxy.listener.url, { path: '/v1/chat' }).catch(() => undefined);
        }),
      );
    }
  })();
  f.closers.push(async () => {
    stop = true;
    await load;
  });

  f.applyRollout({ stable: stable.url, canary: canary.url }, [
    { setWeight: 50 },
    { analysis: { interval: '1500ms', minRequests: 30, maxErrorRate: 0.01 } },
    { setWeight: 80 },
  ]);
  await f.waitStatus(
    (s) => s.currentStep === 1 && typeof s.intervalStartedAt === 'string',
    'the analysis interval did not start',
  );
  await f.waitEvent('AnalysisStarted', a);
  await a.stop();
  // A stopped during its first interval, before judging it.
  assert.ok(
    rolloutWrites(a.link).every((w) => !(w.object?.status as RolloutStatus | undefined)?.lastAnalysis),
    'controller-a judged no interval',
  );

  const done = await f.api.waitFor(
    () => {
      const s = f.status();
      return s && (s.phase === 'Promoted' || s.phase === 'RolledBack' || s.phase === 'Failed')
        ? s
        : undefined;
    },
    { timeoutMs: 45_000, message: `the rollout did not end (${sent} requests sent)` },
  );
  assert.equal(done.phase, 'Promoted', done.message);
  await f.waitEvent('Promoted', b);
  assert.deepEqual(weights(done), [0, 50, 80, 100]);
  assert.equal(done.lastAnalysis?.verdict, 'Pass');
  // The passing judgement was B's, on an interval it watched from its start.
  const bBegan = f.acquisition('controller-b').at;
  assert.ok(
    Date.parse(String(done.lastAnalysis?.at)) >= bBegan,
    'the judged interval ended under controller-b',
  );
  const reasons = f.reasons();
  assert.equal(count(reasons, 'RolloutStarted'), 1, `events: ${reasons.join(', ')}`);
  assert.equal(count(reasons, 'AnalysisStarted'), 1, `events: ${reasons.join(', ')}`);
  assert.ok(reasons.includes('IntervalRestarted'), `events: ${reasons.join(', ')}`);
  assert.ok(!reasons.includes('RolledBack') && !reasons.includes('IntervalFailed'), reasons.join(', '));
  assert.ok(eventReasons(b.link).includes('AnalysisPassed'), `b: ${eventReasons(b.link).join(', ')}`);
  assertNoRegression(f.statuses);
  assertFenced(f, a, b);
  await f.api.waitFor(() => f.status()?.servedWeight === 100 || undefined, { timeoutMs: WAIT_MS });
});
