/**
 * bench/control-plane: how fast a change in the cluster reaches the proxies, and what an
 * endpoint-only change costs the controller. Prints JSON. `--quick` runs small sizes a few times
 * (the CI smoke); no thresholds here.
 *
 * (a) propagation: a fake API server, one controller and two proxies, all in this process
 *     (`startController` and `startProxyRole`, as in test/integration/controller/), with 1,000
 *     routes. Each iteration changes one route's header match value in the fake server and times
 *     until both proxies have applied a table with it (their PushClient `applied` events), then
 *     checks with a real request through each proxy that the new value routes and the old one
 *     does not. Run once with the controller's default debounce (20 ms hold-off) and once with
 *     a 100 ms one. In one process the two proxies' table rebuilds run one after the other on the
 *     controller's event loop, so this is pessimistic on CPU and optimistic on the network.
 * (b) endpoint-only change at 50,000 endpoints (5,000 Services × 10 endpoints, 10,000 routes):
 *     the controller's own work for one changed EndpointSlice, measured on its functions with the
 *     same state: the endpoint fast path, else `compile(state)` (what `recompute` runs, with admission memoised for unchanged
 *     objects) then `PushServer.publish` (as leader, with one proxy stream open over HTTP, whose
 *     bytes are counted). Reports CPU (process.cpuUsage) and wall time.
 *
 *   npm run bench:control-plane
 *   node bench/control-plane.ts --quick
 *   node bench/control-plane.ts --part a|b
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import type { ClusterState } from '../src/api/cluster-state.ts';
import type { EndpointSlice, Service } from '../src/api/kubernetes-types.ts';
import type { ModelRoute } from '../src/api/resources.ts';
import { compile } from '../src/compiler/compile.ts';
import { endpointOnlyUpdate } from '../src/controlplane/endpoint-fast-path.ts';
import { SCHEMA_HEADER, STREAM_PATH } from '../src/controlplane/push/protocol.ts';
import { PushServer } from '../src/controlplane/push-server.ts';
import { createLogger } from '../src/observability/logger.ts';
import { startController } from '../src/roles/controller.ts';
import { type ProxyRole, startProxyRole } from '../src/roles/proxy.ts';
import { TABLE_SCHEMA_VERSION } from '../src/routing-table/types.ts';
import { send } from '../test/support/client.ts';
import { kubeConfigFor, startFakeApiServer } from '../test/support/fake-apiserver/index.ts';
import { startUpstream } from '../test/support/upstream.ts';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    part: { type: 'string' },
    changes: { type: 'string' },
  },
});
const QUICK = values.quick;
const PART = values.part ?? 'ab';
const CHANGES = Number(values.changes ?? (QUICK ? 5 : 50));
const A_ROUTES = QUICK ? 100 : 1000;
const B_SERVICES = QUICK ? 500 : 5000;
const B_ROUTES = B_SERVICES * 2;
const B_ENDPOINTS_PER_SERVICE = 10;
const B_RUNS = QUICK ? 3 : 20;

const quiet = () => createLogger({ destination: new Writable({ write: (_c, _e, cb) => cb() }) }).logger;
const round = (x: number, d = 1) => +x.toFixed(d);

function quantiles(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]!;
  return { p50: round(q(0.5)), p99: round(q(0.99)), max: round(s[s.length - 1]!), n: s.length };
}

// ---------------------------------------------------------------------------------------------
// (a) propagation latency

function propagationRoute(r: number, value: string): ModelRoute {
  return {
    apiVersion: 'modelgate.dev/v1alpha1',
    kind: 'ModelRoute',
    metadata: { name: `route-${r}`, namespace: 'bench' },
    spec: {
      hostnames: [`tenant-${r % 100}.example.com`],
      rules: [
        {
          matches: [{ path: { value: `/v1/r${r}` }, headers: [{ name: 'x-bench', value }] }],
          backends: [
            { name: 'stable', service: { name: `svc-${r % 50}`, port: 8000 }, weight: 90 },
            { name: 'canary', service: { name: `svc-${(r + 1) % 50}`, port: 8000 }, weight: 10 },
          ],
        },
      ],
    } as ModelRoute['spec'],
  };
}

async function propagation(debounceMs: number) {
  const api = await startFakeApiServer();
  const up = await startUpstream('model');
  const port = Number(new URL(up.url).port);
  for (let s = 0; s < 50; s++) {
    api.apply({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: `svc-${s}`, namespace: 'bench' },
      spec: { ports: [{ name: 'http', port: 8000, targetPort: port }] },
    });
    api.apply({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: {
        name: `svc-${s}-1`,
        namespace: 'bench',
        labels: { 'kubernetes.io/service-name': `svc-${s}` },
      },
      addressType: 'IPv4',
      ports: [{ name: 'http', port }],
      endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
    });
  }
  for (let r = 0; r < A_ROUTES; r++) api.apply(propagationRoute(r, 'v0'));

  const controller = await startController({
    kc: kubeConfigFor(api.url),
    namespace: 'modelgate',
    identity: 'controller-0',
    listen: { address: '127.0.0.1', port: 0 },
    admin: { address: '127.0.0.1', port: 0 },
    leaseDurationMs: 15000,
    renewDeadlineMs: 10000,
    retryPeriodMs: 100,
    debounceMs,
    logger: quiet(),
  });
  const token = Buffer.from(
    String(api.get<{ data: { token: string } }>('Secret', 'modelgate', 'modelgate-push-token')!.data.token),
    'base64',
  ).toString();
  const stateDirs: string[] = [];
  const proxies: ProxyRole[] = [];
  for (let i = 0; i < 2; i++) {
    const stateDir = await mkdtemp(join(tmpdir(), 'modelgate-bench-cp-'));
    stateDirs.push(stateDir);
    proxies.push(
      await startProxyRole({
        proxyId: `proxy-${i}`,
        controllers: [controller.pushUrl],
        token: () => token,
        stateDir,
        listen: { address: '127.0.0.1', port: 0 },
        admin: { address: '127.0.0.1', port: 0 },
        logger: quiet(),
      }),
    );
  }
  try {
    // Everything loaded: both proxies run a table with every route (timed from their start).
    const allLoaded = () =>
      proxies.every((p) => (p.push.table?.table.routes.rules.length ?? 0) >= A_ROUTES) &&
      controller.elector.isLeader();
    const t0 = performance.now();
    while (!allLoaded()) {
      if (performance.now() - t0 > 120_000) throw new Error('proxies never got the initial table');
      await new Promise((r) => setTimeout(r, 20));
    }
    const proxiesLoadedMs = performance.now() - t0;
    // Let the initial status writes (1,000 routes) settle before timing.
    await new Promise((r) => setTimeout(r, QUICK ? 500 : 3000));

    const latencies: number[] = [];
    let verified = 0;
    for (let n = 1; n <= CHANGES; n++) {
      const r = (n * 37) % A_ROUTES;
      const value = `v${n}`;
      // The fake server bumps metadata.generation on a spec change; compiled rules carry it.
      const generation =
        (api.get<{ metadata: { generation: number } }>('ModelRoute', 'bench', `route-${r}`)?.metadata
          .generation ?? 0) + 1;
      const seen = (p: ProxyRole) =>
        p.push.table?.table.routes.rules.some(
          (rule) => rule.route === `bench/route-${r}` && rule.generation >= generation,
        ) ?? false;
      const waits = proxies.map(
        (p) =>
          new Promise<number>((resolve) => {
            const onApplied = () => {
              if (seen(p)) {
                p.push.off('applied', onApplied);
                resolve(performance.now());
              }
            };
            p.push.on('applied', onApplied);
          }),
      );
      const start = performance.now();
      api.apply(propagationRoute(r, value));
      const done = await Promise.race([
        Promise.all(waits),
        new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 30_000)),
      ]);
      if (!done) throw new Error(`change ${n} did not reach both proxies in 30 s`);
      latencies.push(Math.max(...done) - start);
      // A real request through each proxy: the new value routes, the old one does not.
      let ok = true;
      for (const p of proxies) {
        const host = `tenant-${r % 100}.example.com`;
        const hit = await send(p.listener.url, {
          path: `/v1/r${r}`,
          headers: { host, 'x-bench': value },
        });
        const miss = await send(p.listener.url, {
          path: `/v1/r${r}`,
          headers: { host, 'x-bench': `v${n - 1}` },
        });
        ok &&= hit.status === 200 && miss.status === 404;
      }
      if (ok) verified++;
      // Space changes out as a person or a rollout would, so the status writes of one are done.
      await new Promise((res) => setTimeout(res, 50));
    }
    return {
      debounceMs,
      routes: A_ROUTES,
      proxies: 2,
      changes: CHANGES,
      proxiesLoadedMs: round(proxiesLoadedMs),
      propagationMs: quantiles(latencies),
      verifiedByRequest: `${verified}/${CHANGES}`,
    };
  } finally {
    for (const p of proxies) await p.shutdown(1000);
    await controller.shutdown();
    await api.close();
    await up.close();
    for (const d of stateDirs) await rm(d, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// (b) endpoint-only change at 50,000 endpoints

function slice(svc: number, generation: number): EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: `svc-${svc}-abcde`,
      namespace: 'bench',
      labels: { 'kubernetes.io/service-name': `svc-${svc}` },
    },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8000, protocol: 'TCP' }],
    endpoints: Array.from({ length: B_ENDPOINTS_PER_SERVICE }, (_, e) => ({
      addresses: [`10.${(svc >> 8) & 255}.${svc & 255}.${e + 1 + generation}`],
      conditions: { ready: true, serving: true, terminating: false },
      zone: `zone-${e % 3}`,
    })),
  };
}

function largeState(): ClusterState {
  const services: Service[] = [];
  const endpointSlices: EndpointSlice[] = [];
  for (let s = 0; s < B_SERVICES; s++) {
    services.push({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: `svc-${s}`, namespace: 'bench' },
      spec: { ports: [{ name: 'http', port: 8000, targetPort: 8000 }] },
    });
    endpointSlices.push(slice(s, 0));
  }
  const modelRoutes: ModelRoute[] = [];
  for (let r = 0; r < B_ROUTES; r++) {
    modelRoutes.push({
      apiVersion: 'modelgate.dev/v1alpha1',
      kind: 'ModelRoute',
      metadata: { name: `route-${r}`, namespace: 'bench', generation: 1 },
      spec: {
        hostnames: [`tenant-${r % 100}.example.com`],
        rules: [
          {
            matches: [
              {
                path: { type: 'PathPrefix', value: `/v1/tenants/${r}/chat/completions` },
                method: 'POST',
                model: { type: 'Exact', value: `model-${r % 500}` },
              },
            ],
            backends: [
              { name: 'stable', service: { name: `svc-${r % B_SERVICES}`, port: 8000 }, weight: 90 },
              { name: 'canary', service: { name: `svc-${(r + 1) % B_SERVICES}`, port: 8000 }, weight: 10 },
            ],
          },
        ],
      } as ModelRoute['spec'],
    });
  }
  return { modelRoutes, rateLimitPolicies: [], canaryRollouts: [], services, endpointSlices, secrets: [] };
}

/** One proxy's stream, read raw: counts the bytes and types of the messages that arrive. */
async function openStream(url: string, token: string) {
  const res = await fetch(`${url}${STREAM_PATH}?proxy=bench-proxy`, {
    headers: { authorization: `Bearer ${token}`, [SCHEMA_HEADER]: String(TABLE_SCHEMA_VERSION) },
  });
  if (res.status !== 200 || !res.body) throw new Error(`stream: ${res.status}`);
  const messages: { type: string; bytes: number }[] = [];
  let waiter: (() => void) | undefined;
  const reader = res.body.getReader();
  void (async () => {
    // Chunks of the current line are kept in a list (a whole table is MBs in many chunks).
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let head = '';
    for (;;) {
      const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }));
      if (done || !value) return;
      let chunk = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
      for (let nl = chunk.indexOf(10); nl >= 0; nl = chunk.indexOf(10)) {
        const bytes = pendingBytes + nl + 1;
        if (pending.length === 0) head = chunk.subarray(0, 64).toString();
        // Only the head of the line is needed for the type.
        const type = /"type":"(\w+)"/.exec(head)?.[1] ?? '?';
        messages.push({ type, bytes });
        pending = [];
        pendingBytes = 0;
        chunk = chunk.subarray(nl + 1);
        waiter?.();
      }
      if (chunk.length > 0) {
        if (pending.length === 0) head = chunk.subarray(0, 64).toString();
        pending.push(chunk);
        pendingBytes += chunk.length;
      }
    }
  })();
  return {
    messages,
    async next(count: number): Promise<{ type: string; bytes: number }[]> {
      while (messages.length < count) await new Promise<void>((r) => (waiter = r));
      return messages.slice(count - 1);
    },
    close: () => reader.cancel().catch(() => {}),
  };
}

async function endpointChange() {
  const state = largeState();
  const token = 'bench-token';
  const push = new PushServer({ controllerId: 'controller-0', token, pingIntervalMs: 0, logger: quiet() });
  const server = createServer(push.requestListener());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    push.setLeader(true, 1);
    const c0 = performance.now();
    let result = compile(state);
    const coldCompileMs = performance.now() - c0;
    push.publish(result.table);
    const stream = await openStream(url, token);
    const hello = await stream.next(2); // hello, then the whole table
    const wholeTableBytes = hello[hello.length - 1]!.bytes;
    // Warm up: a few changes untimed (JIT, admission memo).
    let gen = 1;
    let current: ClusterState = state;
    let seenMessages = stream.messages.length;
    const change = async () => {
      const svc = (gen * 7919) % B_SERVICES;
      // The informer hands over a new object for the changed slice; every other object is the same.
      const slices = current.endpointSlices.slice();
      slices[svc] = slice(svc, gen++);
      const next: ClusterState = { ...current, endpointSlices: slices };
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      // What the controller's recompute does: the endpoint fast path, else a full compile.
      result = endpointOnlyUpdate(current, result, next) ?? compile(next);
      current = next;
      const t1 = performance.now();
      const cpu1 = process.cpuUsage(cpu0);
      const cpuP0 = process.cpuUsage();
      push.publish(result.table);
      const t2 = performance.now();
      const cpu2 = process.cpuUsage(cpuP0);
      const msgs = await stream.next(seenMessages + 1);
      seenMessages = stream.messages.length;
      return {
        compileMs: t1 - t0,
        publishMs: t2 - t1,
        compileCpuMs: (cpu1.user + cpu1.system) / 1000,
        publishCpuMs: (cpu2.user + cpu2.system) / 1000,
        message: msgs[0]!,
      };
    };
    for (let i = 0; i < 3; i++) await change();
    const runs: Awaited<ReturnType<typeof change>>[] = [];
    for (let i = 0; i < B_RUNS; i++) runs.push(await change());
    stream.close();
    const med = (f: (r: (typeof runs)[number]) => number) => quantiles(runs.map(f)).p50;
    return {
      services: B_SERVICES,
      endpoints: B_SERVICES * B_ENDPOINTS_PER_SERVICE,
      routes: B_ROUTES,
      runs: B_RUNS,
      coldCompileMs: round(coldCompileMs),
      controllerCpuMs: {
        total: quantiles(runs.map((r) => r.compileCpuMs + r.publishCpuMs)),
        compile: med((r) => r.compileCpuMs),
        publish: med((r) => r.publishCpuMs),
      },
      wallMs: { compile: med((r) => r.compileMs), publish: med((r) => r.publishMs) },
      pushMessage: {
        type: runs[0]!.message.type,
        bytes: runs[0]!.message.bytes,
        wholeTableBytes,
      },
    };
  } finally {
    push.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
}

const out: Record<string, unknown> = { bench: 'control-plane', quick: QUICK };
if (PART.includes('a')) {
  // The controller's default hold-off (20 ms), and a 100 ms one for comparison.
  out.propagation = [await propagation(20), await propagation(100)];
}
if (PART.includes('b')) out.endpointChange = await endpointChange();
process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
process.exit(0);
