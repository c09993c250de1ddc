/**
 * The control plane with real processes: a fake API server in the test process, `modelgate
 * controller` and `modelgate proxy` as child processes (the real CLI), real upstreams. Every wait is
 * on an event (a log line, a fake-server write, an admin endpoint answering as expected), bounded.
 *
 * The NACK scenario uses the proxy's test-only hook MODELGATE_TEST_REFUSE_TABLES_FILE (see
 * src/roles/proxy.ts): while that file exists the proxy refuses every table.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { send } from '../../support/client.ts';
import { type FakeApiServer, startFakeApiServer } from '../../support/fake-apiserver/index.ts';
import { startUpstream, type TestUpstream } from '../../support/upstream.ts';

const MAIN = fileURLToPath(new URL('../../../src/cli/main.ts', import.meta.url));
const NS = 'modelgate';
const LEASE_MS = 3000;
const LEASE_FLAGS = ['--lease-duration', '3s', '--renew-deadline', '2s', '--retry-period', '250ms'];
const WAIT_MS = 45_000;

type LogLine = Record<string, unknown>;

interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly lines: LogLine[];
  readonly exited: Promise<number | null>;
  readonly done: boolean;
  /** The first log line (from `from` on) matching `pred`. */
  waitLog(pred: (l: LogLine) => boolean, what: string, from?: number): Promise<LogLine>;
}

interface Cond {
  type: string;
  status: string;
  reason: string;
  message: string;
  observedGeneration?: number;
}
type Routed = { metadata: { generation: number }; status?: { conditions?: Cond[] } };

/** Everything a test spawned or opened; `cleanup` kills and closes it all. */
class Fixture {
  readonly procs: Proc[] = [];
  readonly upstreams: TestUpstream[] = [];
  readonly dirs: string[] = [];
  api!: FakeApiServer;
  dir!: string;
  kubeconfig!: string;
  tokenFile!: string;

  async start(): Promise<void> {
    this.api = await startFakeApiServer();
    this.dir = await this.tempDir('modelgate-mp-');
    this.kubeconfig = join(this.dir, 'kubeconfig');
    this.tokenFile = join(this.dir, 'token');
    // client-node refuses http:// clusters unless TLS verification is off.
    const name = 'fake';
    await writeFile(
      this.kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name, cluster: { server: this.api.url, 'insecure-skip-tls-verify': true } }],
        users: [{ name, user: {} }],
        contexts: [{ name, context: { cluster: name, user: name, namespace: 'default' } }],
        'current-context': name,
      }),
    );
  }

  async tempDir(prefix: string): Promise<string> {
    const d = await mkdtemp(join(tmpdir(), prefix));
    this.dirs.push(d);
    return d;
  }

  spawn(name: string, args: string[], env: Record<string, string> = {}): Proc {
    const child = spawn(process.execPath, [MAIN, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    const lines: LogLine[] = [];
    const stderr: string[] = [];
    const waiters = new Set<() => void>();
    let done = false;
    const exited = new Promise<number | null>((resolve) =>
      child.on('exit', (code) => {
        done = true;
        resolve(code);
        for (const w of waiters) w();
      }),
    );
    createInterface({ input: child.stdout! }).on('line', (l) => {
      try {
        lines.push(JSON.parse(l));
      } catch {
        lines.push({ msg: l });
      }
      for (const w of waiters) w();
    });
    child.stderr!.on('data', (c: Buffer) => stderr.push(String(c)));
    const proc: Proc = {
      name,
      child,
      lines,
      exited,
      get done() {
        return done;
      },
      waitLog: (pred, what, from = 0) =>
        new Promise<LogLine>((resolve, reject) => {
          const finish = (err?: Error, line?: LogLine) => {
            clearTimeout(timer);
            waiters.delete(check);
            if (err) reject(err);
            else resolve(line!);
          };
          const check = () => {
            const found = lines.slice(from).find(pred);
            if (found) finish(undefined, found);
            else if (done)
              finish(new Error(`${name} exited while waiting for ${what}: ${stderr.join('').slice(-2000)}`));
          };
          const timer = setTimeout(
            () =>
              finish(
                new Error(
                  `${name}: timed out waiting for ${what}; last lines: ${JSON.stringify(lines.slice(-8))} ${stderr.join('').slice(-1000)}`,
                ),
              ),
            WAIT_MS,
          );
          waiters.add(check);
          check();
        }),
    };
    this.procs.push(proc);
    return proc;
  }

  async controller(id: string, pushPort = 0) {
    const proc = this.spawn(id, [
      'controller',
      '--kubeconfig',
      this.kubeconfig,
      '--namespace',
      NS,
      '--watch-namespace',
      'ml',
      '--id',
      id,
      '--listen',
      `127.0.0.1:${pushPort}`,
      '--admin',
      '127.0.0.1:0',
      ...LEASE_FLAGS,
    ]);
    const up = await proc.waitLog((l) => l.msg === 'modelgate controller is running', 'controller start');
    return { id, proc, push: String(up.push), admin: String(up.admin) };
  }

  async writeToken(): Promise<void> {
    const secret = this.api.get<{ data: { token: string } }>('Secret', NS, 'modelgate-push-token');
    assert.ok(secret, 'the controller created the push-token Secret');
    await writeFile(this.tokenFile, Buffer.from(secret.data.token, 'base64').toString());
  }

  async proxy(id: string, controllers: string[], stateDir: string, env: Record<string, string> = {}) {
    const proc = this.spawn(
      id,
      [
        'proxy',
        ...controllers.flatMap((c) => ['--controller', c]),
        '--push-token-file',
        this.tokenFile,
        '--proxy-id',
        id,
        '--state-dir',
        stateDir,
        '--listen',
        '127.0.0.1:0',
        '--admin',
        '127.0.0.1:0',
        '--drain-timeout',
        '1s',
      ],
      env,
    );
    const up = await proc.waitLog((l) => l.msg === 'modelgate proxy is serving', 'proxy start');
    return { id, proc, url: String(up.listen), admin: String(up.admin), stateDir };
  }

  async upstream(name: string): Promise<TestUpstream> {
    const u = await startUpstream(name);
    this.upstreams.push(u);
    return u;
  }

  async cleanup(): Promise<void> {
    for (const p of this.procs) {
      if (!p.done) p.child.kill('SIGKILL');
    }
    await Promise.all(this.procs.map((p) => p.exited));
    await this.api?.close();
    await Promise.all(this.upstreams.map((u) => u.close()));
    await Promise.all(this.dirs.map((d) => rm(d, { recursive: true, force: true })));
  }
}

/** Re-checks `probe` (each call an HTTP round trip, so the loop paces itself) until it answers. */
async function until<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = WAIT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (${String(last ?? '')})`);
    await new Promise((r) => setImmediate(r));
  }
}

function applyService(api: FakeApiServer): void {
  api.apply({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'llama', namespace: 'ml' },
    spec: { ports: [{ name: 'http', port: 8000 }] },
  });
}

function applySlice(
  api: FakeApiServer,
  name: string,
  port: number,
  conditions: Record<string, boolean> = { ready: true },
): void {
  api.apply({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: 'ml', labels: { 'kubernetes.io/service-name': 'llama' } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port }],
    endpoints: [{ addresses: ['127.0.0.1'], conditions }],
  });
}

/** The route `chat`, matching each of `paths` as a prefix. */
function applyRoute(api: FakeApiServer, paths: string[]): number {
  const stored = api.apply({
    apiVersion: 'modelgate.dev/v1alpha1',
    kind: 'ModelRoute',
    metadata: { name: 'chat', namespace: 'ml' },
    spec: {
      rules: [
        {
          matches: paths.map((value) => ({ path: { value } })),
          backends: [{ name: 'llama', service: { name: 'llama', port: 8000 } }],
        },
      ],
    },
  });
  return Number((stored as { metadata: { generation?: number } }).metadata.generation);
}

/** The route's Programmed condition once it is about `generation` and `pred` holds. */
function programmed(api: FakeApiServer, generation: number, pred: (c: Cond) => boolean): Promise<Cond> {
  return api.waitFor(
    () => {
      const r = api.get<Routed>('ModelRoute', 'ml', 'chat');
      const c = r?.status?.conditions?.find((x) => x.type === 'Programmed');
      return c && c.observedGeneration === generation && pred(c) ? c : undefined;
    },
    { timeoutMs: WAIT_MS, message: `Programmed for generation ${generation}` },
  );
}

const leaseHolder = (api: FakeApiServer) =>
  api.get<{ spec: { holderIdentity?: string; leaseTransitions?: number } }>(
    'Lease',
    NS,
    'modelgate-controller',
  )?.spec;

async function upstreamOf(base: string, path = '/v1/chat'): Promise<string> {
  const r = await send(base, { path });
  assert.equal(r.status, 200, `${base}${path}: ${r.status} ${r.text}`);
  return String(r.headers['x-upstream']);
}

const parseVersion = (v: unknown): [number, number] => {
  const [term, seq] = String(v).split('.').map(Number);
  return [term!, seq!];
};

/** Every table a proxy process applied (from its log), in order, must have a higher version. */
function assertVersionsIncrease(proc: Proc): string[] {
  const versions = proc.lines.filter((l) => l.msg === 'routing table applied').map((l) => String(l.version));
  for (let i = 1; i < versions.length; i++) {
    const [t0, s0] = parseVersion(versions[i - 1]);
    const [t1, s1] = parseVersion(versions[i]);
    assert.ok(
      t1 > t0 || (t1 === t0 && s1 > s0),
      `${proc.name} applied ${versions[i]} after ${versions[i - 1]}`,
    );
  }
  return versions;
}

test('one controller, two proxies: programming, endpoint moves, a NACK, controller loss, proxy restart', {
  timeout: 240_000,
}, async (t) => {
  const f = new Fixture();
  t.after(() => f.cleanup());
  await f.start();
  const a = await f.upstream('model-a');
  const b = await f.upstream('model-b');
  const controller = await f.controller('controller-0');
  await f.writeToken();
  const refuseFile = join(f.dir, 'refuse-tables');
  const p0 = await f.proxy('proxy-0', [controller.push], await f.tempDir('modelgate-p0-'));
  const p1 = await f.proxy('proxy-1', [controller.push], await f.tempDir('modelgate-p1-'), {
    MODELGATE_TEST_REFUSE_TABLES_FILE: refuseFile,
  });
  const proxies = [p0, p1];
  let generation = 0;

  await t.test('1. a route applied: both proxies serve it, Programmed names 2/2 proxies', async () => {
    applyService(f.api);
    applySlice(f.api, 'llama-a', a.port);
    generation = applyRoute(f.api, ['/v1']);
    const c = await programmed(f.api, generation, (x) => x.status === 'True');
    assert.match(c.message, /^2\/2 proxies at table /);
    for (const p of proxies) assert.equal(await upstreamOf(p.url), 'model-a');
  });

  await t.test('2. a new endpoint, the old one terminating: no failed request, traffic moves', async () => {
    let stop = false;
    let failures = 0;
    const seen: string[] = [];
    const errors: string[] = [];
    let onReply = () => {};
    const worker = async () => {
      while (!stop) {
        try {
          const r = await send(p0.url, { path: '/v1/chat' });
          if (r.status !== 200) {
            failures++;
            errors.push(`${r.status} ${r.text}`);
          } else seen.push(String(r.headers['x-upstream']));
        } catch (err) {
          failures++;
          errors.push(String(err));
        }
        onReply();
      }
    };
    const replies = (pred: () => boolean, what: string) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), WAIT_MS);
        onReply = () => {
          if (pred()) {
            clearTimeout(timer);
            onReply = () => {};
            resolve();
          }
        };
      });
    const workers = [worker(), worker()];
    try {
      await replies(() => seen.length >= 5, 'the first replies');
      applySlice(f.api, 'llama-b', b.port);
      await replies(() => seen.includes('model-b'), 'a reply from the new endpoint');
      applySlice(f.api, 'llama-a', a.port, { ready: false, serving: true, terminating: true });
      // Both endpoints were taking traffic; 30 replies in a row from the new one: the old one drains.
      await replies(
        () => seen.length >= 30 && seen.slice(-30).every((u) => u === 'model-b'),
        'traffic to move to the new endpoint',
      );
    } finally {
      stop = true;
      await Promise.all(workers);
    }
    assert.equal(failures, 0, `failed requests: ${errors.slice(0, 5).join('; ')}`);
    assert.ok(seen.includes('model-a') && seen.includes('model-b'));
    assert.equal(await upstreamOf(p1.url), 'model-b');
  });

  await t.test('3. a proxy NACKs: Programmed names it, it keeps serving its previous table', async () => {
    const before = (await send(p1.admin, { path: '/config' })).json<{ version: string }>().version;
    await writeFile(refuseFile, 'refuse\n');
    generation = applyRoute(f.api, ['/v1', '/v2']);
    const c = await programmed(f.api, generation, (x) => x.status === 'False');
    assert.equal(c.reason, 'NotProgrammed');
    assert.match(c.message, /^proxy-1 refused table \d+\.\d+: refused for a test$/);
    assert.equal((await send(p1.admin, { path: '/config' })).json<{ version: string }>().version, before);
    assert.equal(await upstreamOf(p1.url), 'model-b', 'the refusing proxy serves its previous table');
    assert.equal((await send(p1.url, { path: '/v2/chat' })).status, 404, 'without the new match');
    await until(
      async () => ((await send(p0.url, { path: '/v2/chat' })).status === 200 ? true : undefined),
      'proxy-0 to serve the new match',
    );
    // Accepting again: the next table reaches both.
    await unlink(refuseFile);
    generation = applyRoute(f.api, ['/v1', '/v2', '/v3']);
    const ok = await programmed(f.api, generation, (x) => x.status === 'True');
    assert.match(ok.message, /^2\/2 proxies/);
    for (const p of proxies) assert.equal(await upstreamOf(p.url, '/v3/chat'), 'model-b');
  });

  await t.test('4. the controller is killed: the proxies keep serving', async () => {
    const from = proxies.map((p) => p.proc.lines.length);
    controller.proc.child.kill('SIGKILL');
    await controller.proc.exited;
    await Promise.all(
      proxies.map((p, i) =>
        p.proc.waitLog((l) => l.msg === 'controller stream lost', 'stream lost', from[i]),
      ),
    );
    for (const p of proxies) {
      for (const path of ['/v1/chat', '/v2/chat', '/v3/chat'])
        assert.equal(await upstreamOf(p.url, path), 'model-b');
      const ready = await send(p.admin, { path: '/readyz' });
      assert.equal(ready.status, 200);
    }
  });

  await t.test('5. a proxy restarted with no controller serves its persisted table', async () => {
    const before = (await send(p0.admin, { path: '/config' })).json<{ version: string; hash: string }>();
    p0.proc.child.kill('SIGTERM');
    assert.equal(await p0.proc.exited, 0);
    const again = await f.proxy('proxy-0', [controller.push], p0.stateDir);
    const ready = (await send(again.admin, { path: '/readyz' })).json<{
      status: string;
      source: string;
      version: string;
    }>();
    assert.deepEqual(
      { status: ready.status, source: ready.source, version: ready.version },
      { status: 'ready', source: 'persisted', version: before.version },
    );
    assert.equal((await send(again.admin, { path: '/config' })).json<{ hash: string }>().hash, before.hash);
    for (const path of ['/v1/chat', '/v3/chat']) assert.equal(await upstreamOf(again.url, path), 'model-b');
  });

  for (const p of f.procs.filter((x) => x.name.startsWith('proxy'))) assertVersionsIncrease(p);
});

test('two controllers: one leader, failover on SIGKILL, a SIGSTOPped leader stays fenced', {
  timeout: 240_000,
}, async (t) => {
  const f = new Fixture();
  t.after(() => f.cleanup());
  await f.start();
  const up = await f.upstream('model-a');
  const first = await f.controller('controller-a');
  const second = await f.controller('controller-b');
  const ctl = new Map([first, second].map((c) => [c.id, c]));
  await f.writeToken();
  const urls = [first.push, second.push];
  const p0 = await f.proxy('proxy-0', urls, await f.tempDir('modelgate-p0-'));
  const p1 = await f.proxy('proxy-1', urls, await f.tempDir('modelgate-p1-'));
  const proxies = [p0, p1];

  applyService(f.api);
  applySlice(f.api, 'llama-a', up.port);
  let generation = applyRoute(f.api, ['/v1']);
  await programmed(f.api, generation, (c) => c.status === 'True' && /^2\/2/.test(c.message));

  // One leader: the Lease's holder says it leads, the other does not.
  const leaderId = (await f.api.waitFor(() => leaseHolder(f.api)?.holderIdentity)) as string;
  const leader = ctl.get(leaderId)!;
  const follower = leader === first ? second : first;
  const leads = async (c: { admin: string }) =>
    (await send(c.admin, { path: '/status' })).json<{ leader: boolean; term: number }>();
  await until(async () => ((await leads(leader)).leader ? true : undefined), 'the holder to say it leads');
  assert.equal((await leads(follower)).leader, false);

  // Proxies follow `id`: their push status names it and their table is of its term.
  const following = async (id: string, term: number) => {
    for (const p of proxies) {
      await until(async () => {
        const s = (await send(p.admin, { path: '/status' })).json<{
          leader: string | null;
          version: unknown;
        }>();
        const cfg = (await send(p.admin, { path: '/config' })).json<{ version: string }>();
        return s.leader === id && parseVersion(cfg.version)[0] === term ? true : undefined;
      }, `${p.id} to follow ${id} (term ${term})`);
    }
  };
  const termOf = async (id: string) =>
    until(async () => {
      const s = await leads(ctl.get(id)!);
      return s.leader ? s.term : undefined;
    }, `${id} to lead`);

  // SIGKILL the leader: the follower takes the Lease within about one lease duration.
  const term1 = await termOf(leaderId);
  const killedAt = Date.now();
  leader.proc.child.kill('SIGKILL');
  await leader.proc.exited;
  await f.api.waitFor(() => leaseHolder(f.api)?.holderIdentity === follower.id, {
    timeoutMs: WAIT_MS,
    message: 'the follower to take over',
  });
  const takeover = Date.now() - killedAt;
  // The follower needs a whole lease duration without renewal (plus a retry period); slack for load.
  assert.ok(takeover < LEASE_MS * 3, `takeover took ${takeover} ms`);
  const term2 = await termOf(follower.id);
  assert.ok(term2 > term1);
  await following(follower.id, term2);
  for (const p of proxies) assert.equal(await upstreamOf(p.url), 'model-a');

  // The killed replica comes back (same pod name, same push port); the new leader programs alone.
  const restarted = await f.controller(leader.id, Number(new URL(leader.push).port));
  ctl.set(restarted.id, restarted);
  generation = applyRoute(f.api, ['/v1', '/v2']);
  await programmed(f.api, generation, (c) => c.status === 'True' && /^2\/2/.test(c.message));
  for (const p of proxies) assert.equal(await upstreamOf(p.url, '/v2/chat'), 'model-a');
  for (const p of proxies) {
    await until(async () => {
      const s = (await send(p.admin, { path: '/status' })).json<{ connected: number }>();
      return s.connected === 2 ? true : undefined;
    }, `${p.id} to reconnect to the restarted controller`);
  }
  assert.equal((await leads(restarted)).leader, false);

  // SIGSTOP the leader: the restarted replica takes over, proxies follow it.
  const stopped = follower;
  process.kill(stopped.proc.child.pid!, 'SIGSTOP');
  await f.api.waitFor(() => leaseHolder(f.api)?.holderIdentity === restarted.id, {
    timeoutMs: WAIT_MS,
    message: 'the restarted replica to take over',
  });
  const term3 = await termOf(restarted.id);
  assert.ok(term3 > term2);
  await following(restarted.id, term3);
  generation = applyRoute(f.api, ['/v1', '/v2', '/v3']);
  await programmed(f.api, generation, (c) => c.status === 'True' && /^2\/2/.test(c.message));

  // Now stop the new leader too, change the route (nobody writes its status), and wake the stale
  // leader: its lease passed long ago, so until it wins the Lease again it must write nothing. Its
  // Lease calls are held at the API server, so it cannot learn from the Lease that it lost:
  // only its fence (renewal time + lease duration - margin, on its own clock) stops it.
  process.kill(restarted.proc.child.pid!, 'SIGSTOP');
  generation = applyRoute(f.api, ['/v1', '/v2', '/v3', '/v4']);
  const since = f.api.requests.at(-1)?.seq ?? 0;
  const woke = stopped.proc.lines.length;
  const release = f.api.hold((r) => r.resource === 'leases');
  try {
    process.kill(stopped.proc.child.pid!, 'SIGCONT');
    // It has compiled the new generation and decided about its status (computed, then written
    // only if it may lead).
    const seenByStale = await until(async () => {
      const s = (await send(stopped.admin, { path: '/status' })).json<{
        leader: boolean;
        resources: { kind: string; name: string; status: { observedGeneration: number } }[];
      }>();
      const r = s.resources.find((x) => x.kind === 'ModelRoute' && x.name === 'chat');
      return r?.status.observedGeneration === generation ? s : undefined;
    }, 'the woken replica to compile the change');
    assert.equal(seenByStale.leader, false, 'the fence says it no longer leads');
    // Whatever it would write is out by the time its admin answers twice more.
    await send(stopped.admin, { path: '/status' });
    await send(stopped.admin, { path: '/healthz' });
  } finally {
    release();
  }
  await f.api.waitFor(() => leaseHolder(f.api)?.holderIdentity === stopped.id, {
    timeoutMs: WAIT_MS,
    message: 'the woken replica to win the Lease again',
  });
  const after = f.api.requests.filter((r) => r.seq > since);
  const acquired = after.find((r) => r.resource === 'leases' && r.verb === 'update');
  assert.ok(acquired, 'the woken replica updated the Lease');
  const early = after.filter(
    (r) => r.seq < acquired.seq && r.subresource === 'status' && r.verb !== 'get' && r.verb !== 'list',
  );
  assert.deepEqual(
    early.map((r) => `${r.verb} ${r.resource}/${r.name}`),
    [],
    'no status write before re-acquiring',
  );
  await stopped.proc.waitLog((l) => l.msg === 'no longer leading', 'the woken replica to step down', woke);
  const term4 = await termOf(stopped.id);
  assert.ok(term4 > term3);
  // Legitimately leading again, it programs the change made while everyone was stopped.
  await programmed(f.api, generation, (c) => c.status === 'True' && /^2\/2/.test(c.message));
  await following(stopped.id, term4);
  process.kill(restarted.proc.child.pid!, 'SIGCONT');
  await restarted.proc.waitLog((l) => l.msg === 'no longer leading', 'the other replica to step down');
  for (const p of proxies) assert.equal(await upstreamOf(p.url, '/v4/chat'), 'model-a');
  assert.equal(leaseHolder(f.api)?.holderIdentity, stopped.id);

  // Across every failover, no proxy applied a version lower than one it had.
  for (const p of proxies) {
    const versions = assertVersionsIncrease(p.proc);
    assert.ok(versions.length >= 3, `${p.id} applied ${versions.join(', ')}`);
  }
});
