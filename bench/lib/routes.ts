/**
 * Synthetic routing tables for the proxy benchmarks: one catch-all route (the CPU and latency
 * cases), and N routes over distinct hostnames and paths (memory and router lookup).
 */
import { type ClusterState, emptyClusterState } from '../../src/api/cluster-state.ts';
import type { ModelRoute } from '../../src/api/resources.ts';
import { compile } from '../../src/compiler/compile.ts';
import type { RoutingTable } from '../../src/routing-table/types.ts';
import { loadManifests } from '../../src/sources/files/load.ts';

function accepted(result: ReturnType<typeof compile>): RoutingTable {
  const refused = result.statuses.filter((s) =>
    s.status.conditions.some((c) => c.type === 'Accepted' && c.status !== 'True'),
  );
  if (refused.length > 0) {
    throw new Error(`bench routes not accepted: ${JSON.stringify(refused[0]?.status.conditions)}`);
  }
  return result.table;
}

/** A table from manifests written out in full (every resource must be accepted). */
export function compileYaml(text: string): RoutingTable {
  const { state, problems } = loadManifests([{ file: 'bench.yaml', text }]);
  if (problems.length > 0) throw new Error(`bench manifest: ${problems[0]?.message}`);
  return accepted(compile(state));
}

/**
 * One route, any host, PathPrefix `/`, one static-URL backend. `accessLog` is written into the
 * manifest as is (e.g. `{enabled: false}` or `{sampleRate: 0.01}`).
 */
export function oneRouteTable(upstreamUrl: string, accessLog: string): RoutingTable {
  const text = `apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: {name: bench, namespace: bench}
spec:
  accessLog: ${accessLog}
  rules:
    - name: all
      matches:
        - path: {type: PathPrefix, value: /}
      backends:
        - name: upstream
          urls: [${JSON.stringify(upstreamUrl)}]
`;
  const { state, problems } = loadManifests([{ file: 'bench.yaml', text }]);
  if (problems.length > 0) throw new Error(`bench manifest: ${problems[0]?.message}`);
  return accepted(compile(state));
}

/** An API key the bench's auth table knows. */
export const BENCH_API_KEY = 'sk-bench-0123456789abcdef';

/**
 * The catch-all route of oneRouteTable behind authentication: an API key (one consumer among
 * `consumers`, looked up by digest) or a JWT (RS256, verified against a JWKS from a Secret, so
 * no network is involved). Returns the table and the header every bench request sends.
 */
export async function authRouteTable(
  upstreamUrl: string,
  kind: 'apiKey' | 'jwt',
  consumers = 1000,
  /** Also a Local RateLimitPolicy: per consumer and per route, amounts no bench run reaches. */
  rateLimited = false,
): Promise<{ table: RoutingTable; header: string }> {
  const { SignJWT, exportJWK, generateKeyPair } = await import('jose');
  let secrets = '';
  let auth: string;
  let header: string;
  if (kind === 'apiKey') {
    for (let i = 0; i < consumers; i++) {
      const key = i === 0 ? BENCH_API_KEY : `sk-bench-other-${i}-0123456789`;
      secrets += `apiVersion: v1\nkind: Secret\nmetadata: {name: c${i}, namespace: bench}\nstringData: {key: ${key}}\n---\n`;
    }
    header = `x-api-key: ${BENCH_API_KEY}`;
    auth = `{apiKeys: {header: x-api-key, secretSelector: {matchLabels: {}}}}`;
  } else {
    const { privateKey, publicKey } = await generateKeyPair('RS256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'bench', alg: 'RS256' };
    secrets = `apiVersion: v1\nkind: Secret\nmetadata: {name: jwks, namespace: bench}\nstringData: {jwks.json: '${JSON.stringify({ keys: [jwk] })}'}\n---\n`;
    auth = `{jwt: [{name: bench, issuer: https://bench.test, audiences: [bench], algorithms: [RS256], jwksSecretRef: {name: jwks, key: jwks.json}}]}`;
    const token = await new SignJWT({ scope: 'chat' })
      .setProtectedHeader({ alg: 'RS256', kid: 'bench' })
      .setIssuer('https://bench.test')
      .setAudience('bench')
      .setSubject('bench-user')
      .setExpirationTime('10h')
      .sign(privateKey);
    header = `authorization: Bearer ${token}`;
  }
  const text = `${secrets}apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: {name: bench, namespace: bench}
spec:
  accessLog: {enabled: false}
  auth: ${auth}
  rules:
    - name: all
      matches:
        - path: {type: PathPrefix, value: /}
      backends:
        - name: upstream
          urls: [${JSON.stringify(upstreamUrl)}]
${
  rateLimited
    ? `---
apiVersion: modelgate.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: limits, namespace: bench}
spec:
  targetRefs: [{name: bench}]
  limits:
    - {name: per-consumer, key: [{type: Consumer}], algorithm: TokenBucket, amount: 1000000000, period: 1s}
    - {name: per-route, key: [{type: Route}], algorithm: FixedWindow, amount: 1000000000000, period: 1s}
`
    : ''
}`;
  const { state, problems } = loadManifests([{ file: 'bench.yaml', text }]);
  if (problems.length > 0) throw new Error(`bench manifest: ${problems[0]?.message}`);
  const table = accepted(compile(state));
  if (!table.routes.auth?.[0]) throw new Error('bench auth table has no auth');
  if (rateLimited && table.routes.rateLimitPolicies.length !== 1)
    throw new Error('bench policy not attached');
  return { table, header };
}

/**
 * The bare catch-all route governed by a CanaryRollout between two backends on the same upstream,
 * at weight 0: every request pays the canary choice and the rollout counters but, like the bare
 * case, goes through one connection pool (a 50/50 split would open a second pool of upstream
 * connections, which changes batching more than the rollout costs). With `mirrorPercent`, that
 * share of stable's requests is also copied to the canary, answers discarded.
 */
export function canaryRouteTable(upstreamUrl: string, mirrorPercent = 0): RoutingTable {
  const url = JSON.stringify(upstreamUrl);
  const text = `apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: {name: bench, namespace: bench}
spec:
  accessLog: {enabled: false}
  rules:
    - name: all
      matches:
        - path: {type: PathPrefix, value: /}
      backends:
        - {name: stable, urls: [${url}]}
        - {name: canary, urls: [${url}]}
---
apiVersion: modelgate.dev/v1alpha1
kind: CanaryRollout
metadata: {name: bench-v2, namespace: bench}
spec:
  routeRef: {name: bench}
  stableBackend: stable
  canaryBackend: canary
  weight: 0
${mirrorPercent > 0 ? `  mirror: {percent: ${mirrorPercent}, maxInFlight: 64}\n` : ''}`;
  const { state, problems } = loadManifests([{ file: 'bench.yaml', text }]);
  if (problems.length > 0) throw new Error(`bench manifest: ${problems[0]?.message}`);
  const table = accepted(compile(state));
  if (!table.routes.rules[0]?.canary) throw new Error('bench rollout does not govern the route');
  return table;
}

/** A request that route `r` of manyRoutes() answers. */
export interface RouteTarget {
  host: string;
  path: string;
}

/**
 * `n` routes, one rule each, over min(n, 100) hostnames (`tenant-K.example.com`, K = r mod 100):
 * route r matches `/v1/tenants/r` as a PathPrefix (r mod 4 = 0), `/v1/tenants/r/chat/completions`
 * as Exact (1) or as PathPrefix (2), or `/v1/tenants/r` as a PathPrefix with `method: GET` (3).
 * Every route's backend is a static URL, `upstreamUrl`. Hand-built objects rather than YAML
 * (parsing 10,000 YAML documents would dominate the bench's start-up).
 */
export function manyRoutes(n: number, upstreamUrl: string): { state: ClusterState; targets: RouteTarget[] } {
  const hosts = Math.min(n, 100);
  const state = emptyClusterState();
  const targets: RouteTarget[] = [];
  for (let r = 0; r < n; r++) {
    const host = `tenant-${r % hosts}.example.com`;
    const kind = r % 4;
    const base = `/v1/tenants/${r}`;
    const full = `${base}/chat/completions`;
    const match =
      kind === 1
        ? { path: { type: 'Exact', value: full } }
        : kind === 2
          ? { path: { type: 'PathPrefix', value: full } }
          : kind === 3
            ? { path: { type: 'PathPrefix', value: base }, method: 'GET' }
            : { path: { type: 'PathPrefix', value: base } };
    state.modelRoutes.push({
      apiVersion: 'modelgate.dev/v1alpha1',
      kind: 'ModelRoute',
      metadata: { name: `route-${r}`, namespace: 'bench', generation: 1 },
      spec: {
        hostnames: [host],
        accessLog: { enabled: true, sampleRate: 0.01 },
        rules: [{ name: 'main', matches: [match], backends: [{ name: 'upstream', urls: [upstreamUrl] }] }],
      },
    } as unknown as ModelRoute);
    targets.push({ host, path: full });
  }
  return { state, targets };
}

export function manyRoutesTable(
  n: number,
  upstreamUrl: string,
): { table: RoutingTable; targets: RouteTarget[] } {
  const { state, targets } = manyRoutes(n, upstreamUrl);
  return { table: accepted(compile(state)), targets };
}
