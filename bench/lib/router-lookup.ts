/**
 * In-process micro-benchmark of Router.route(): ns per lookup over a table of N routes
 * (manyRoutes), for 10,000 prebuilt requests that each hit a route, in a shuffled order. Routes
 * are chosen uniformly (every host and path of the table equally often) or with Zipf (s = 1)
 * popularity. The request array has the same length whatever N is, so only the router's own work
 * and data differ between table sizes.
 */
import { type RouteRequest, Router } from '../../src/dataplane/router/router.ts';
import { manyRoutesTable } from './routes.ts';

const LOOKUPS = 10_000;

/** Deterministic shuffle (xorshift), so every invocation measures the same order. */
function shuffle<T>(xs: T[], seed: number): T[] {
  let s = seed >>> 0 || 1;
  for (let i = xs.length - 1; i > 0; i--) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    const j = (s >>> 0) % (i + 1);
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}

let sink = 0;

/** A new flat string equal to `s`. */
function copy(s: string): string {
  return Buffer.from(s, 'latin1').toString('latin1');
}

/** LOOKUPS route indexes in [0, routes): each route equally often, or Zipf(1) by rank. */
function draws(routes: number, distribution: 'uniform' | 'zipf'): number[] {
  if (distribution === 'uniform') return Array.from({ length: LOOKUPS }, (_, i) => i % routes);
  let h = 0;
  for (let k = 1; k <= routes; k++) h += 1 / k;
  const out: number[] = [];
  for (let r = 0; r < routes && out.length < LOOKUPS; r++) {
    // Rank r+1 gets LOOKUPS / ((r + 1) h) lookups (at least one until the array is full). The
    // ranks are spread over the table (stride 7919) so that popular routes are not neighbours.
    const n = Math.max(1, Math.round(LOOKUPS / ((r + 1) * h)));
    for (let i = 0; i < n && out.length < LOOKUPS; i++) out.push((r * 7919) % routes);
  }
  while (out.length < LOOKUPS) out.push(out[out.length % routes]!);
  return out;
}

export interface Lookup {
  readonly routes: number;
  readonly distribution: 'uniform' | 'zipf';
  /** Looks up the prebuilt requests in a loop for at least `ms`; ns per lookup. */
  measure(ms: number): number;
}

/**
 * Builds the table, the router and the requests, checks that every request reaches its own route,
 * and warms up for `warmupMs`. Measure several lookups interleaved (bench/proxy.ts does), so that
 * a burst of load elsewhere on the machine (the 10,000-route case is bound by cache misses, and
 * caches are shared) does not land on one table size only.
 */
export function prepareLookup(routes: number, distribution: 'uniform' | 'zipf', warmupMs: number): Lookup {
  const { table, targets } = manyRoutesTable(routes, 'http://127.0.0.1:9');
  const router = new Router<string>(table.routes.matches, (id) => id);
  const expected: string[] = [];
  const requests: RouteRequest[] = [];
  const order = shuffle(draws(routes, distribution), 7);
  for (const r of order) {
    const t = targets[r]!;
    // Own copies of the strings for every request, whatever the table size (as a proxy has: each
    // request's host and path come fresh from the parser); shared strings would stay in cache
    // with 10 routes and not with 10,000, which would measure the bench, not the router.
    requests.push({
      host: copy(t.host),
      path: copy(t.path),
      query: '',
      method: 'GET',
      headers: {},
      model: undefined,
    });
    expected.push(`bench/route-${r}/main`);
  }
  for (let i = 0; i < requests.length; i++) {
    const res = router.route(requests[i]!);
    if (res.kind !== 'matched' || res.match.rule !== expected[i]) {
      throw new Error(`router bench: ${requests[i]!.host}${requests[i]!.path} → ${JSON.stringify(res)}`);
    }
  }
  const measure = (ms: number): number => {
    let n = 0;
    const start = process.hrtime.bigint();
    const limit = BigInt(ms) * 1_000_000n;
    let elapsed = 0n;
    do {
      for (let i = 0; i < requests.length; i++) {
        const res = router.route(requests[i]!);
        if (res.kind === 'matched') sink += res.match.order;
      }
      n += requests.length;
      elapsed = process.hrtime.bigint() - start;
    } while (elapsed < limit);
    if (sink === -1) process.stdout.write('');
    return Math.round((Number(elapsed) / n) * 10) / 10;
  };
  measure(warmupMs);
  return { routes, distribution, measure };
}
