/**
 * The fast path for the most frequent change in a cluster: pods coming and going. When only
 * EndpointSlices changed since the last compile, the table is the previous one with the endpoint
 * parts of the affected Services re-resolved (statuses cannot change: ResolvedRefs depends on
 * Services existing, not on their endpoints). The result is byte-identical to a full compile,
 * which a test checks; anything else falls back to the full compile.
 *
 * Unchanged objects keep their identity in the informer caches, which is how changes are found.
 */
import type { ClusterState } from '../api/cluster-state.ts';
import type { EndpointSlice } from '../api/kubernetes-types.ts';
import { SERVICE_NAME_LABEL } from '../api/kubernetes-types.ts';
import type { CompileResult } from '../compiler/compile.ts';
import { indexEndpoints, resolveService } from '../compiler/endpoints.ts';
import { withEndpointsPart } from '../routing-table/hash.ts';

const SAME_LISTS = ['modelRoutes', 'rateLimitPolicies', 'canaryRollouts', 'services', 'secrets'] as const;

function sameObjects(a: readonly unknown[], b: readonly unknown[]): boolean {
  if (a.length !== b.length) return false;
  const set = new Set(a);
  for (const o of b) if (!set.has(o)) return false;
  return true;
}

function serviceOf(slice: EndpointSlice): string | undefined {
  const svc = slice?.metadata?.labels?.[SERVICE_NAME_LABEL];
  return typeof svc === 'string' ? `${slice.metadata.namespace ?? 'default'}/${svc}` : undefined;
}

/** The updated result, or undefined when the change is more than EndpointSlices (compile fully). */
export function endpointOnlyUpdate(
  prev: ClusterState,
  prevResult: CompileResult,
  next: ClusterState,
): CompileResult | undefined {
  for (const list of SAME_LISTS) if (!sameObjects(prev[list], next[list])) return undefined;
  const before = new Set(prev.endpointSlices);
  const after = new Set(next.endpointSlices);
  const affected = new Set<string>();
  for (const s of next.endpointSlices) if (!before.has(s)) affected.add(serviceOf(s) ?? '');
  for (const s of prev.endpointSlices) if (!after.has(s)) affected.add(serviceOf(s) ?? '');
  affected.delete('');
  if (affected.size === 0) return prevResult;

  const slices = next.endpointSlices.filter((s) => affected.has(serviceOf(s) ?? ''));
  const index = indexEndpoints(next.services, slices);
  let table = prevResult.table;
  for (const key of Object.keys(prevResult.table.endpoints)) {
    // Endpoint parts of Services are keyed `service/<ns>/<name>:<port>`.
    const m = /^service\/([^/]+)\/([^:]+):(\d+)$/.exec(key);
    if (!m || !affected.has(`${m[1]}/${m[2]}`)) continue;
    const res = resolveService(index, m[1]!, m[2]!, Number(m[3]));
    if (res.part.hash !== table.endpoints[key]!.hash) table = withEndpointsPart(table, key, res.part);
  }
  return { table, statuses: prevResult.statuses };
}
