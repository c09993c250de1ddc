/**
 * bench/proxy: what the data plane costs, next to nginx. Prints JSON on stdout (progress on
 * stderr). `--quick` is the CI smoke test: one run of each, short durations. No thresholds here.
 *
 *   npm run bench:proxy                 3 runs of everything, medians
 *   npm run bench:proxy -- --quick      1 run, 2 s loads
 *   npm run bench:proxy -- --only latency   just that section (router, cpu, latency, memory)
 *   npm run bench:proxy -- --profile    also: a CPU profile of the gateway under wrk, top self times
 *                                       (--profile-out FILE keeps the .cpuprofile for DevTools)
 *
 * Needs `nginx` and `wrk` (Debian/Ubuntu packages of those names) and `taskset` (util-linux).
 * Without wrk the CPU cases are skipped; without nginx the upstream is a Node server and the nginx
 * reverse-proxy cases are skipped. Everything listens on 127.0.0.1.
 *
 * Placement. The first two CPUs this process may use are the load core and the proxy core
 * (0 and 1 on a 2-CPU machine). The process under test (nginx as reverse proxy, the gateway, or
 * the Node hello server) runs alone on the proxy core (`taskset -c 1`); the load generator (wrk,
 * or the fixed-rate generator) and the upstream nginx (`worker_processes 1`) share the load core
 * (`taskset -c 0`). Each server is one process: nginx with `master_process off`, the gateway in
 * bench/lib/gateway-child.ts.
 *
 * 1. cpuPerRequest: wrk -t1 -c64 (keep-alive) for D seconds; CPU time of the process under test
 *    from /proc/<pid>/stat (utime + stime, all threads) over the run, divided by the completed
 *    requests. Cases: direct (wrk → upstream; the upstream's CPU, which shares the load core with
 *    wrk, is a throughput reference only), nginx (reverse proxy, upstream keepalive 64),
 *    modelgateBare (access log off), modelgateObserved (route accessLog sampleRate 0.01 written
 *    to a file, admin listener up and /metrics scraped once at the end of each run, inside the
 *    measured window), modelgateApiKey / modelgateJwt (the bare case behind an API key among
 *    1,000 consumers, or an RS256 JWT reused by every request, as clients reuse a token),
 *    modelgateRateLimit (the API-key case with a Local RateLimitPolicy of two limits, per
 *    consumer and per route, that never refuses: the check, headers and bookkeeping),
 *    modelgateCanary (the bare case governed by a CanaryRollout at weight 0: choice and counters),
 *    modelgateMirror (the same with 10% of stable's requests copied to the canary), nodeHello
 *    (a bare node:http server: the floor for Node's server), nodeMinimalProxy (node:http + an
 *    undici Pool with a raw handler and nothing else: the floor for a Node proxy) and
 *    nodeMinimalNodeClient (the same with node:http's own client). The cases run
 *    interleaved, `runs` times, after one warm-up each; medians. `coreUtilisation` is CPU
 *    seconds per wall second of the process under test: below 1 means the load core, not the
 *    proxy, was the limit.
 * 2. addedLatency: the fixed-rate open-loop generator (bench/lib/fixed-rate.ts) at `rate` req/s
 *    for D seconds (after a warm-up) against the upstream directly, nginx, the gateway and the
 *    minimal Node proxy;
 *    percentiles are medians over runs; added = proxied − direct, per percentile.
 * 3. memoryManyRoutes: a gateway child with 10,000 routes (bench/lib/routes.ts: 100 hostnames,
 *    distinct paths, static-URL backends all pointing at the upstream), run as tsc-built
 *    JavaScript (bench/lib/compiled.ts says why); RSS after the apply, then after a few thousand
 *    requests spread over the routes (which binds their metric cells), each also after a forced
 *    full GC; next to a fresh Node hello server, and a one-route gateway fresh and after the same
 *    requests (load alone grows the V8 heap). RSS counts the node binary's shared pages (~50 MB);
 *    `anonymousMB` (smaps_rollup) is the process's own.
 *
 * Shared machines: every load run records `otherLoad`, the CPU (in cores) that processes other
 * than the bench's used on the bench's cores meanwhile (bench/lib/procs.ts watchOtherLoad); a run
 * with more than 0.1 is repeated (3 attempts at most, the least disturbed one kept; `attempts`).
 *
 * 4. routerLookup: Router.route() in this process, ns per lookup at 10 and 10,000 routes; the
 *    requests hit every route equally often (uniform: the worst case for caches) or with Zipf
 *    (s = 1) popularity, closer to real traffic.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { compileGatewayChild } from './lib/compiled.ts';
import { summariseProfile } from './lib/cpu-profile.ts';
import type { FixedRateResult } from './lib/fixed-rate.ts';
import { nginxVersion, reverseProxyConfig, startNginx, UPSTREAM_BODY, upstreamConfig } from './lib/nginx.ts';
import { type NodeChild, startNodeChild } from './lib/node-child.ts';
import {
  allowedCpus,
  anonymousBytes,
  clockTicksPerSecond,
  cpuTicks,
  freePort,
  installCleanup,
  median,
  pinned,
  round,
  rssBytes,
  runTracked,
  type Tracked,
  tempDir,
  watchOtherLoad,
  which,
} from './lib/procs.ts';
import { type Lookup, prepareLookup } from './lib/router-lookup.ts';
import {
  authRouteTable,
  canaryRouteTable,
  manyRoutesTable,
  oneRouteTable,
  type RouteTarget,
} from './lib/routes.ts';
import { runWrk, type WrkResult, wrkVersion } from './lib/wrk.ts';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    'profile-out': { type: 'string' },
    runs: { type: 'string' },
    duration: { type: 'string' },
    rate: { type: 'string' },
    connections: { type: 'string', default: '64' },
    routes: { type: 'string', default: '10000' },
    /** Node flags for every gateway child; the default is what the image's entry point uses. */
    'node-flags': { type: 'string', default: '--max-semi-space-size=8' },
    /** Pretend these are not installed (comma list: nginx, wrk), to try the fallbacks. */
    without: { type: 'string', default: '' },
    /** Only these sections (comma list of router, cpu, latency, memory); default all. */
    only: { type: 'string', default: 'router,cpu,latency,memory' },
  },
});
const ONLY = new Set(values.only.split(','));
const QUICK = values.quick;
const RUNS = Number(values.runs ?? (QUICK ? 1 : 3));
const DURATION_S = Number(values.duration ?? (QUICK ? 2 : 10));
const WARMUP_S = QUICK ? 1 : 2;
if (!(RUNS >= 1 && DURATION_S >= 1 && Number.isInteger(DURATION_S))) {
  throw new Error('--runs must be ≥ 1 and --duration a whole number of seconds ≥ 1');
}
const RATE = Number(values.rate ?? 2000);
const CONNECTIONS = Number(values.connections);
const MANY_ROUTES = Number(values.routes);
const GATEWAY_FLAGS = values['node-flags'].split(' ').filter(Boolean);
const SPREAD_REQUESTS = QUICK ? 2000 : 5000;
const ROUTER_MS = QUICK ? 200 : 1000;

const root = fileURLToPath(new URL('..', import.meta.url));
const FIXED_RATE = fileURLToPath(new URL('./lib/fixed-rate.ts', import.meta.url));

function progress(msg: string): void {
  process.stderr.write(`bench/proxy: ${msg}\n`);
}

installCleanup();
const skipped: string[] = [];
const cpus = allowedCpus();
const taskset = which('taskset');
const canPin = cpus.length >= 2 && taskset !== undefined;
if (!canPin) {
  skipped.push(
    taskset ? 'fewer than 2 CPUs: nothing is pinned' : 'taskset not found (util-linux): nothing is pinned',
  );
}
const LOAD_CPU = canPin ? cpus[0] : undefined;
const PROXY_CPU = canPin ? cpus[1] : undefined;
const without = new Set(values.without.split(','));
const nginxBin = without.has('nginx') ? undefined : which('nginx');
const wrkBin = without.has('wrk') ? undefined : which('wrk');
if (!nginxBin) skipped.push('nginx not found: upstream is a Node server; nginx reverse-proxy cases skipped');
if (!wrkBin) skipped.push('wrk not found: cpuPerRequest and profile skipped');
const CLK = clockTicksPerSecond();
const dir = tempDir('modelgate-bench-proxy-');

const BENCH_CPUS = canPin ? [LOAD_CPU!, PROXY_CPU!] : undefined;
/** A run disturbed by more than this much other load (in cores) is repeated, up to MAX_ATTEMPTS. */
const OTHER_LOAD_LIMIT = 0.1;
const MAX_ATTEMPTS = 3;

/**
 * Runs `once` until its otherLoad is at most OTHER_LOAD_LIMIT, at most MAX_ATTEMPTS times;
 * returns the least disturbed attempt.
 */
async function undisturbed<T extends { otherLoad: number; attempts: number }>(
  label: string,
  once: () => Promise<T>,
): Promise<T> {
  let best: T | undefined;
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    const r = await once();
    r.attempts = attempt;
    if (!best || r.otherLoad < best.otherLoad) best = r;
    if (r.otherLoad <= OTHER_LOAD_LIMIT) break;
    progress(`${label}: other load ${r.otherLoad.toFixed(2)} cores during the run; again`);
  }
  return best!;
}

// --- 4. Router lookup (first: in this process, while nothing else runs) ---------------------------

async function measureRouter() {
  progress('router lookup');
  const lookups = {
    uniform10: prepareLookup(10, 'uniform', ROUTER_MS),
    uniformMany: prepareLookup(MANY_ROUTES, 'uniform', ROUTER_MS),
    zipf10: prepareLookup(10, 'zipf', ROUTER_MS),
    zipfMany: prepareLookup(MANY_ROUTES, 'zipf', ROUTER_MS),
  };
  const lookupRuns: Record<keyof typeof lookups, { ns: number; otherLoad: number; attempts: number }[]> = {
    uniform10: [],
    uniformMany: [],
    zipf10: [],
    zipfMany: [],
  };
  const ROUTER_RUNS = Math.max(RUNS, 3); // cheap: always a median of three at least
  for (let run = 0; run < ROUTER_RUNS; run++) {
    for (const [key, lookup] of Object.entries(lookups) as [keyof typeof lookups, Lookup][]) {
      lookupRuns[key].push(
        await undisturbed(`router ${key}`, async () => {
          // Unpinned (this process): other load anywhere on the machine counts.
          const other = watchOtherLoad(undefined, []);
          const ns = lookup.measure(ROUTER_MS);
          return { ns, otherLoad: round(other()), attempts: 1 };
        }),
      );
    }
  }
  const ns = (key: keyof typeof lookups) => median(lookupRuns[key].map((r) => r.ns));
  const routerResult = {
    lookups: 'GET hits over the hosts and paths of the table, 10,000 prebuilt requests',
    routesMany: MANY_ROUTES,
    uniform: {
      ns10: ns('uniform10'),
      nsMany: ns('uniformMany'),
      ratio: round(ns('uniformMany') / ns('uniform10')),
    },
    zipf: { ns10: ns('zipf10'), nsMany: ns('zipfMany'), ratio: round(ns('zipfMany') / ns('zipf10')) },
    runs: lookupRuns,
  };
  return routerResult;
}
const routerResult = ONLY.has('router') ? await measureRouter() : undefined;

// --- Servers ----------------------------------------------------------------------------------

interface Server {
  name: string;
  pid: number;
  url: string;
  /** Sent with every request (`name: value`): the credential of the auth cases. */
  headers?: string[];
  child?: NodeChild;
  proc?: Tracked;
}

progress('starting the upstream and the servers under test');
let upstream: Server;
if (nginxBin) {
  const port = await freePort();
  const proc = await startNginx(nginxBin, dir, 'upstream', upstreamConfig(dir, port), port, LOAD_CPU);
  upstream = { name: 'nginx', pid: proc.pid, url: `http://127.0.0.1:${port}`, proc };
} else {
  const child = await startNodeChild({ args: ['--mode', 'hello'], cpu: LOAD_CPU });
  upstream = { name: 'node', pid: child.pid, url: child.url, child };
}

const bareTable = `${dir}/bare.json`;
const observedTable = `${dir}/observed.json`;
const accessLogFile = `${dir}/access.log`;
writeFileSync(bareTable, JSON.stringify(oneRouteTable(upstream.url, '{enabled: false}')));
writeFileSync(observedTable, JSON.stringify(oneRouteTable(upstream.url, '{sampleRate: 0.01}')));
const apiKeyAuth = await authRouteTable(upstream.url, 'apiKey');
const jwtAuth = await authRouteTable(upstream.url, 'jwt');
const limitedAuth = await authRouteTable(upstream.url, 'apiKey', 1000, true);
writeFileSync(`${dir}/apikey.json`, JSON.stringify(apiKeyAuth.table));
writeFileSync(`${dir}/ratelimit.json`, JSON.stringify(limitedAuth.table));
writeFileSync(`${dir}/jwt.json`, JSON.stringify(jwtAuth.table));
writeFileSync(`${dir}/canary.json`, JSON.stringify(canaryRouteTable(upstream.url)));
writeFileSync(`${dir}/mirror.json`, JSON.stringify(canaryRouteTable(upstream.url, 10)));

const servers: Record<string, Server> = {};
if (nginxBin) {
  const port = await freePort();
  const upPort = Number(new URL(upstream.url).port);
  const proc = await startNginx(
    nginxBin,
    dir,
    'proxy',
    reverseProxyConfig(dir, port, upPort),
    port,
    PROXY_CPU,
  );
  servers.nginx = { name: 'nginx', pid: proc.pid, url: `http://127.0.0.1:${port}`, proc };
}
for (const [key, args] of [
  ['modelgateBare', ['--table', bareTable, '--log', '/dev/null']],
  ['modelgateObserved', ['--table', observedTable, '--log', accessLogFile, '--admin']],
  ['modelgateApiKey', ['--table', `${dir}/apikey.json`, '--log', '/dev/null']],
  ['modelgateJwt', ['--table', `${dir}/jwt.json`, '--log', '/dev/null']],
  ['modelgateRateLimit', ['--table', `${dir}/ratelimit.json`, '--log', '/dev/null']],
  ['modelgateCanary', ['--table', `${dir}/canary.json`, '--log', '/dev/null']],
  ['modelgateMirror', ['--table', `${dir}/mirror.json`, '--log', '/dev/null']],
  ['nodeHello', ['--mode', 'hello']],
  ['nodeMinimalProxy', ['--mode', 'minimal-proxy', '--upstream', upstream.url]],
  ['nodeMinimalNodeClient', ['--mode', 'minimal-node-client-proxy', '--upstream', upstream.url]],
] as const) {
  const nodeFlags = key.startsWith('node') ? [] : GATEWAY_FLAGS;
  const child = await startNodeChild({ args: [...args], cpu: PROXY_CPU, nodeFlags });
  servers[key] = { name: key, pid: child.pid, url: child.url, child };
}
servers.modelgateApiKey!.headers = [apiKeyAuth.header];
servers.modelgateJwt!.headers = [jwtAuth.header];
servers.modelgateRateLimit!.headers = [limitedAuth.header];

// Every server answers the upstream's body before anything is measured.
for (const s of [upstream, ...Object.values(servers)]) {
  const headers = Object.fromEntries(
    (s.headers ?? []).map((h) => [h.slice(0, h.indexOf(':')), h.slice(h.indexOf(':') + 1).trim()]),
  );
  const res = await fetch(`${s.url}/v1/chat/completions`, { headers });
  const body = await res.text();
  if (res.status !== 200 || body !== UPSTREAM_BODY) {
    throw new Error(`${s.name} at ${s.url} answered ${res.status} ${JSON.stringify(body.slice(0, 200))}`);
  }
}

// --- 1. CPU per request -------------------------------------------------------------------------

interface CpuRun extends WrkResult {
  cpuSeconds: number;
  usPerRequest: number;
  coreUtilisation: number;
  upstreamUsPerRequest: number;
  /** CPU use by other processes on the bench's cores during the run, in cores. */
  otherLoad: number;
  attempts: number;
  metricsBytes?: number;
}

async function cpuRun(target: Server, scrapeAdmin: number | undefined, seconds: number): Promise<CpuRun> {
  const watched = target.pid === upstream.pid ? [target.pid] : [target.pid, upstream.pid];
  const other = watchOtherLoad(BENCH_CPUS, watched);
  const t0 = cpuTicks(target.pid);
  const u0 = cpuTicks(upstream.pid);
  const w = await runWrk(wrkBin!, `${target.url}/v1/chat/completions`, {
    connections: CONNECTIONS,
    seconds,
    cpu: LOAD_CPU,
    headers: target.headers,
  });
  let metricsBytes: number | undefined;
  if (scrapeAdmin !== undefined) {
    const res = await fetch(`http://127.0.0.1:${scrapeAdmin}/metrics`);
    metricsBytes = (await res.text()).length;
  }
  const t1 = cpuTicks(target.pid);
  const u1 = cpuTicks(upstream.pid);
  const otherLoad = other();
  if (t0 === undefined || t1 === undefined || u0 === undefined || u1 === undefined) {
    throw new Error(`${target.name} exited during the run`);
  }
  const cpuSeconds = (t1 - t0) / CLK;
  return {
    ...w,
    cpuSeconds: round(cpuSeconds, 3),
    usPerRequest: round((cpuSeconds * 1e6) / w.requests),
    coreUtilisation: round(cpuSeconds / w.seconds),
    upstreamUsPerRequest: round((((u1 - u0) / CLK) * 1e6) / w.requests),
    requestsPerSecond: Math.round(w.requestsPerSecond),
    otherLoad: round(otherLoad),
    attempts: 1,
    ...(metricsBytes !== undefined ? { metricsBytes } : {}),
  };
}

let cpuResult: unknown;
if (wrkBin && ONLY.has('cpu')) {
  const cases: [string, Server, number | undefined][] = [['direct', upstream, undefined]];
  if (servers.nginx) cases.push(['nginx', servers.nginx, undefined]);
  cases.push(['modelgateBare', servers.modelgateBare!, undefined]);
  cases.push(['modelgateObserved', servers.modelgateObserved!, servers.modelgateObserved!.child!.adminPort]);
  cases.push(['modelgateApiKey', servers.modelgateApiKey!, undefined]);
  cases.push(['modelgateJwt', servers.modelgateJwt!, undefined]);
  cases.push(['modelgateRateLimit', servers.modelgateRateLimit!, undefined]);
  cases.push(['modelgateCanary', servers.modelgateCanary!, undefined]);
  cases.push(['modelgateMirror', servers.modelgateMirror!, undefined]);
  cases.push(['nodeHello', servers.nodeHello!, undefined]);
  cases.push(['nodeMinimalProxy', servers.nodeMinimalProxy!, undefined]);
  cases.push(['nodeMinimalNodeClient', servers.nodeMinimalNodeClient!, undefined]);
  for (const [name, s] of cases) {
    progress(`cpu: warm-up ${name}`);
    await runWrk(wrkBin, `${s.url}/v1/chat/completions`, {
      connections: CONNECTIONS,
      seconds: WARMUP_S,
      cpu: LOAD_CPU,
      headers: s.headers,
    });
  }
  const runs: Record<string, CpuRun[]> = Object.fromEntries(cases.map(([name]) => [name, []]));
  for (let run = 0; run < RUNS; run++) {
    for (const [name, s, admin] of cases) {
      progress(`cpu: run ${run + 1}/${RUNS} ${name}`);
      runs[name]!.push(await undisturbed(`cpu ${name}`, () => cpuRun(s, admin, DURATION_S)));
    }
  }
  const summary: Record<string, unknown> = {};
  const us: Record<string, number> = {};
  for (const [name] of cases) {
    const rs = runs[name]!;
    us[name] = median(rs.map((r) => r.usPerRequest));
    summary[name] = {
      usPerRequest: us[name],
      usPerRequestMin: Math.min(...rs.map((r) => r.usPerRequest)),
      requestsPerSecond: median(rs.map((r) => r.requestsPerSecond)),
      coreUtilisation: median(rs.map((r) => r.coreUtilisation)),
      upstreamUsPerRequest: median(rs.map((r) => r.upstreamUsPerRequest)),
      errors: rs.reduce((n, r) => n + r.nonOk + r.socketErrors, 0),
      runs: rs,
    };
  }
  const access = readFileSync(accessLogFile, 'utf8');
  cpuResult = {
    settings: {
      wrk: `-t1 -c${CONNECTIONS} -d${DURATION_S}s`,
      runs: RUNS,
      warmupS: WARMUP_S,
      upstream: upstream.name,
      response: `200, ${UPSTREAM_BODY.length}-byte text/plain body`,
    },
    cases: summary,
    ratios: servers.nginx
      ? {
          bareOverNginx: round(us.modelgateBare! / us.nginx!),
          observedOverNginx: round(us.modelgateObserved! / us.nginx!),
          nodeHelloOverNginx: round(us.nodeHello! / us.nginx!),
          nodeMinimalProxyOverNginx: round(us.nodeMinimalProxy! / us.nginx!),
        }
      : undefined,
    accessLogLines: access.split('\n').filter((l) => l.includes('"msg":"access"')).length,
    // What authentication adds to the bare path (both without access logs): an API key among
    // 1,000 consumers, and a JWT (RS256) that clients reuse, as they do for its lifetime.
    authAddedUs: {
      apiKey: round(us.modelgateApiKey! - us.modelgateBare!),
      jwt: round(us.modelgateJwt! - us.modelgateBare!),
    },
    // What a Local policy of two limits (per consumer, per route) adds behind the API key.
    rateLimitAddedUs: round(us.modelgateRateLimit! - us.modelgateApiKey!),
    // A CanaryRollout governing the bare route (choice and rollout counters; weight 0, so one
    // upstream pool as in the bare case), and the same with 10% of stable's requests mirrored (the
    // copies' CPU is the gateway's: per client request).
    canaryAddedUs: round(us.modelgateCanary! - us.modelgateBare!),
    mirror10AddedUs: round(us.modelgateMirror! - us.modelgateCanary!),
  };
}

// --- 2. Added latency at a fixed rate ----------------------------------------------------------------

type LatencyRun = FixedRateResult & { otherLoad: number; attempts: number };

async function fixedRate(target: Server): Promise<LatencyRun> {
  const watched = target.pid === upstream.pid ? [target.pid] : [target.pid, upstream.pid];
  const other = watchOtherLoad(BENCH_CPUS, watched);
  const [cmd, args] = pinned(LOAD_CPU, process.execPath, [
    FIXED_RATE,
    '--url',
    `${target.url}/v1/chat/completions`,
    '--rate',
    String(RATE),
    '--duration',
    String(DURATION_S),
    '--warmup',
    String(WARMUP_S),
    '--connections',
    String(CONNECTIONS),
  ]);
  const r = await runTracked(cmd, args, (DURATION_S + WARMUP_S) * 1000 + 30_000);
  if (r.code !== '0') throw new Error(`fixed-rate generator exited with ${r.code}: ${r.stderr}`);
  return { ...(JSON.parse(r.stdout) as FixedRateResult), otherLoad: round(other()), attempts: 1 };
}

async function measureLatency() {
  const latencyTargets: [string, Server][] = [['direct', upstream]];
  if (servers.nginx) latencyTargets.push(['nginx', servers.nginx]);
  latencyTargets.push(
    ['modelgateBare', servers.modelgateBare!],
    ['modelgateObserved', servers.modelgateObserved!],
    ['nodeMinimalProxy', servers.nodeMinimalProxy!],
  );
  const latencyRuns: Record<string, LatencyRun[]> = Object.fromEntries(
    latencyTargets.map(([name]) => [name, []]),
  );
  for (let run = 0; run < RUNS; run++) {
    for (const [name, s] of latencyTargets) {
      progress(`latency: run ${run + 1}/${RUNS} ${name} at ${RATE}/s`);
      latencyRuns[name]!.push(await undisturbed(`latency ${name}`, () => fixedRate(s)));
    }
  }
  const PCTS = ['p50', 'p90', 'p99'] as const;
  const latencyUs: Record<string, Record<string, number>> = {};
  for (const [name] of latencyTargets) {
    const rs = latencyRuns[name]!;
    latencyUs[name] = Object.fromEntries(PCTS.map((p) => [p, median(rs.map((r) => r.latencyUs[p]))]));
  }
  const added: Record<string, Record<string, number>> = {};
  for (const [name] of latencyTargets) {
    if (name === 'direct') continue;
    added[name] = Object.fromEntries(
      PCTS.map((p) => [p, round(latencyUs[name]![p]! - latencyUs.direct![p]!, 1)]),
    );
  }
  const addedRatio = (mg: string) =>
    added.nginx
      ? { p50: round(added[mg]!.p50! / added.nginx.p50!), p99: round(added[mg]!.p99! / added.nginx.p99!) }
      : undefined;
  const latencyResult = {
    settings: {
      rate: RATE,
      durationS: DURATION_S,
      warmupS: WARMUP_S,
      runs: RUNS,
      measuredFrom: 'hand-off to undici to the end of the response body',
    },
    latencyUs,
    addedUs: added,
    addedOverNginx: added.nginx
      ? {
          modelgateBare: addedRatio('modelgateBare'),
          modelgateObserved: addedRatio('modelgateObserved'),
          nodeMinimalProxy: addedRatio('nodeMinimalProxy'),
        }
      : undefined,
    errors: Object.fromEntries(
      latencyTargets.map(([n]) => [n, latencyRuns[n]!.reduce((e, r) => e + r.errors, 0)]),
    ),
    achievedRate: Object.fromEntries(
      latencyTargets.map(([n]) => [n, latencyRuns[n]!.map((r) => r.achievedRate)]),
    ),
    scheduleLagP99Us: Object.fromEntries(
      latencyTargets.map(([n]) => [n, latencyRuns[n]!.map((r) => r.lagUs.p99)]),
    ),
    otherLoad: Object.fromEntries(latencyTargets.map(([n]) => [n, latencyRuns[n]!.map((r) => r.otherLoad)])),
    runs: Object.fromEntries(
      latencyTargets.map(([n]) => [
        n,
        latencyRuns[n]!.map((r) => ({ ...r.latencyUs, attempts: r.attempts })),
      ]),
    ),
  };
  return latencyResult;
}
const latencyResult = ONLY.has('latency') ? await measureLatency() : undefined;

// --- 3. Memory with many routes ---------------------------------------------------------------------

const mb = (b: number) => round(b / (1024 * 1024), 1);

async function memoryOf(child: NodeChild) {
  const rss = rssBytes(child.pid) ?? (await child.memory(false)).rss;
  const anon = anonymousBytes(child.pid);
  const settled = await child.memory(true);
  return {
    rssMB: mb(rss),
    anonymousMB: anon === undefined ? undefined : mb(anon),
    rssAfterGcMB: mb(settled.rss),
    heapTotalAfterGcMB: mb(settled.heapTotal),
    heapUsedAfterGcMB: mb(settled.heapUsed),
  };
}

async function measureMemory() {
  progress('memory: building the gateway child as JavaScript');
  const compiledChild = await compileGatewayChild(dir);
  if (!compiledChild)
    skipped.push('tsc build of the gateway child failed: memory measured under type stripping');
  progress(`memory: compiling ${MANY_ROUTES} routes`);
  const many = manyRoutesTable(MANY_ROUTES, upstream.url);
  const manyTable = `${dir}/many.json`;
  const manyJson = JSON.stringify(many.table);
  writeFileSync(manyTable, manyJson);
  const startMemoryChild = (args: string[], nodeFlags: string[]) =>
    startNodeChild({ args, cpu: PROXY_CPU, script: compiledChild, nodeFlags });

  /** SPREAD_REQUESTS GETs, 32 at a time, over `targets` (stride 7919: neighbours far apart). */
  async function spread(
    url: string,
    targets: readonly RouteTarget[],
  ): Promise<{ requests: number; ok: number }> {
    const pool = new Pool(url, { connections: 32 });
    let sent = 0;
    let ok = 0;
    const deadline = Date.now() + 60_000;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (sent < SPREAD_REQUESTS && Date.now() < deadline) {
          const t = targets[(sent++ * 7919) % targets.length]!;
          const res = await pool.request({ path: t.path, method: 'GET', headers: { host: t.host } });
          await res.body.text();
          if (res.statusCode === 200) ok++;
        }
      }),
    );
    await pool.close();
    return { requests: sent, ok };
  }

  const hello = await startMemoryChild(['--mode', 'hello'], []);
  const nodeFloor = await memoryOf(hello);
  await hello.exit();
  // The same requests through a one-route gateway: what load alone does to the memory (the heap
  // grows under allocation pressure), apart from the routes.
  const one = await startMemoryChild(['--table', bareTable, '--log', '/dev/null'], GATEWAY_FLAGS);
  const oneRoute = await memoryOf(one);
  progress(`memory: ${SPREAD_REQUESTS} requests through a one-route gateway`);
  const oneSpread = await spread(one.url, many.targets);
  const oneRouteAfter = { ...oneSpread, ...(await memoryOf(one)) };
  await one.exit();
  const manyChild = await startMemoryChild(['--table', manyTable, '--log', '/dev/null'], GATEWAY_FLAGS);
  const afterApply = await memoryOf(manyChild);
  progress(`memory: ${SPREAD_REQUESTS} requests over the ${MANY_ROUTES} routes`);
  const manySpread = await spread(manyChild.url, many.targets);
  const afterRequests = { ...manySpread, ...(await memoryOf(manyChild)) };
  await manyChild.exit();
  const memoryResult = {
    routes: MANY_ROUTES,
    runtime: compiledChild ? 'JavaScript built by tsc (as dist/ runs)' : 'TypeScript via type stripping',
    tableJsonMB: mb(manyJson.length),
    nodeHelloFresh: nodeFloor,
    oneRouteFresh: oneRoute,
    oneRouteAfterRequests: oneRouteAfter,
    afterApply,
    afterRequests,
  };
  return memoryResult;
}
const memoryResult = ONLY.has('memory') ? await measureMemory() : undefined;

// --- Profile (optional) -----------------------------------------------------------------------------

let profileResult: unknown;
if (values.profile && wrkBin) {
  progress('profile: gateway (bare) under wrk, inspector CPU profile of the measured window');
  const child = servers.modelgateBare!.child!;
  const file = values['profile-out'] ?? `${dir}/gateway.cpuprofile`;
  await child.profileStart();
  const w = await runWrk(wrkBin, `${child.url}/v1/chat/completions`, {
    connections: CONNECTIONS,
    seconds: DURATION_S,
    cpu: LOAD_CPU,
  });
  await child.profileStop(file);
  profileResult = { requests: w.requests, ...summariseProfile(file, root, 30) };
}

// --- Done -----------------------------------------------------------------------------------------

for (const s of Object.values(servers)) {
  if (s.child) await s.child.exit();
  else await s.proc?.stop();
}
if (upstream.child) await upstream.child.exit();
else await upstream.proc?.stop();

const out = {
  bench: 'proxy',
  quick: QUICK,
  node: process.version,
  gatewayNodeFlags: GATEWAY_FLAGS,
  nginx: nginxBin ? nginxVersion(nginxBin) : undefined,
  wrk: wrkBin ? wrkVersion(wrkBin) : undefined,
  cpus: { load: LOAD_CPU, proxy: PROXY_CPU, pinned: canPin, clockTicksPerSecond: CLK },
  skipped,
  cpuPerRequest: cpuResult,
  addedLatency: latencyResult,
  memoryManyRoutes: memoryResult,
  routerLookup: routerResult,
  ...(profileResult ? { profile: profileResult } : {}),
};
process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
process.exit(0);
