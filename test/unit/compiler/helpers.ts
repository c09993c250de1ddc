/** Builders for hand-made cluster states in compiler tests. */
import type { ClusterState } from '../../../src/api/cluster-state.ts';
import type { EndpointSlice, Service } from '../../../src/api/kubernetes-types.ts';
import { SERVICE_NAME_LABEL } from '../../../src/api/kubernetes-types.ts';
import type { CanaryRollout, ModelRoute, RateLimitPolicy } from '../../../src/api/resources.ts';

export const API = 'modelgate.dev/v1alpha1';

export function state(parts: Partial<ClusterState> = {}): ClusterState {
  return {
    modelRoutes: [],
    rateLimitPolicies: [],
    canaryRollouts: [],
    services: [],
    endpointSlices: [],
    secrets: [],
    ...parts,
  };
}

interface Meta {
  namespace?: string;
  creationTimestamp?: string;
  generation?: number;
}

export function route(name: string, spec: unknown, meta: Meta = {}): ModelRoute {
  return {
    apiVersion: API,
    kind: 'ModelRoute',
    metadata: { name, namespace: 'default', ...meta },
    spec,
  } as ModelRoute;
}

export function policy(name: string, targets: string[], meta: Meta = {}): RateLimitPolicy {
  return {
    apiVersion: API,
    kind: 'RateLimitPolicy',
    metadata: { name, namespace: 'default', ...meta },
    spec: {
      targetRefs: targets.map((t) => ({ name: t })),
      limits: [{ name: 'per-consumer', key: [{ type: 'Consumer' }], amount: 100, period: '1m' }],
    },
  } as RateLimitPolicy;
}

export function rollout(name: string, spec: unknown, meta: Meta = {}): CanaryRollout {
  return {
    apiVersion: API,
    kind: 'CanaryRollout',
    metadata: { name, namespace: 'default', ...meta },
    spec,
  } as CanaryRollout;
}

export function service(
  name: string,
  ports: { name?: string; port: number; targetPort?: number | string }[],
  namespace = 'default',
): Service {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace }, spec: { ports } };
}

export function slice(
  name: string,
  serviceName: string,
  ports: { name?: string; port: number }[],
  addresses: string[],
  namespace = 'default',
): EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace, labels: { [SERVICE_NAME_LABEL]: serviceName } },
    addressType: 'IPv4',
    ports,
    endpoints: addresses.map((a) => ({ addresses: [a], conditions: { ready: true } })),
  };
}

/** A one-rule route on `/` whose single backend is a static URL. */
export function simpleRoute(name: string, match: Record<string, unknown> = {}, meta: Meta = {}): ModelRoute {
  return route(
    name,
    { rules: [{ matches: [match], backends: [{ name: 'b', urls: ['http://10.0.0.1:8000'] }] }] },
    meta,
  );
}

export function statusOf(
  statuses: { kind: string; namespace: string; name: string; status: { conditions: { type: string }[] } }[],
  kind: string,
  name: string,
  namespace = 'default',
) {
  const s = statuses.find((x) => x.kind === kind && x.name === name && x.namespace === namespace);
  if (!s) throw new Error(`no status for ${kind}/${namespace}/${name}`);
  return s;
}

export function conditionOf(
  statuses: Parameters<typeof statusOf>[0],
  kind: string,
  name: string,
  type: string,
) {
  const c = statusOf(statuses, kind, name).status.conditions.find((x) => x.type === type);
  if (!c) throw new Error(`no ${type} condition on ${kind}/${name}`);
  return c as { type: string; status: string; reason: string; message: string };
}
