/**
 * ClusterState: a snapshot of everything the compiler reads, produced alike by the files source and
 * the Kubernetes source. Plain objects with no behaviour. Custom resources arrive as the user wrote
 * them (the compiler admits them again), so a bad object is reported, never trusted.
 */
import type { EndpointSlice, Secret, Service } from './kubernetes-types.ts';
import type { CanaryRollout, ModelRoute, RateLimitPolicy } from './resources.ts';

export interface ClusterState {
  modelRoutes: ModelRoute[];
  rateLimitPolicies: RateLimitPolicy[];
  canaryRollouts: CanaryRollout[];
  services: Service[];
  endpointSlices: EndpointSlice[];
  secrets: Secret[];
}

export function emptyClusterState(): ClusterState {
  return {
    modelRoutes: [],
    rateLimitPolicies: [],
    canaryRollouts: [],
    services: [],
    endpointSlices: [],
    secrets: [],
  };
}

/** The namespace objects without one land in, as with `kubectl apply`. */
export const DEFAULT_NAMESPACE = 'default';

/** `Kind/namespace/name`: how statuses, problems and origins name an object. */
export function objectKey(kind: string, namespace: string | undefined, name: string): string {
  return `${kind}/${namespace ?? DEFAULT_NAMESPACE}/${name}`;
}
