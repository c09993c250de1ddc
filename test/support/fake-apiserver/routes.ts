/**
 * Request paths and verbs, decoded the way the real server's RequestInfoResolver does, so faults
 * and request counters can speak of `list modelroutes` rather than URLs.
 */
import { findByPath, type ResourceType } from './resources.ts';

export type Route =
  | { kind: 'version' }
  | { kind: 'api' }
  | { kind: 'apis' }
  | { kind: 'group'; group: string }
  | { kind: 'resourceList'; group: string; version: string }
  | {
      kind: 'resource';
      resource: ResourceType;
      namespace: string | undefined;
      name: string | undefined;
      subresource: string | undefined;
    }
  | { kind: 'unknown' };

export function parseRoute(pathname: string): Route {
  let parts: string[];
  try {
    parts = pathname.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    return { kind: 'unknown' };
  }
  if (parts.length === 1 && parts[0] === 'version') return { kind: 'version' };
  let group: string;
  let version: string;
  let rest: string[];
  if (parts[0] === 'api') {
    if (parts.length === 1) return { kind: 'api' };
    if (parts[1] !== 'v1') return { kind: 'unknown' };
    if (parts.length === 2) return { kind: 'resourceList', group: '', version: 'v1' };
    [group, version, rest] = ['', 'v1', parts.slice(2)];
  } else if (parts[0] === 'apis') {
    if (parts.length === 1) return { kind: 'apis' };
    if (parts.length === 2) return { kind: 'group', group: parts[1]! };
    if (parts.length === 3) return { kind: 'resourceList', group: parts[1]!, version: parts[2]! };
    [group, version, rest] = [parts[1]!, parts[2]!, parts.slice(3)];
  } else {
    return { kind: 'unknown' };
  }
  let namespace: string | undefined;
  // `namespaces/<ns>/<plural>...` is a namespaced path; `namespaces/<name>[/status]` is the
  // Namespace object itself.
  if (rest[0] === 'namespaces' && rest.length >= 3 && findByPath(group, version, rest[2]!)) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  if (rest.length > 3) return { kind: 'unknown' };
  const resource = findByPath(group, version, rest[0]!);
  if (!resource) return { kind: 'unknown' };
  if (namespace !== undefined && !resource.namespaced) return { kind: 'unknown' };
  return { kind: 'resource', resource, namespace, name: rest[1], subresource: rest[2] };
}

/** Kubernetes verbs: list/watch/get/create/update/patch/delete/deletecollection, or the method. */
export function verbOf(method: string, route: Route, query: URLSearchParams): string {
  if (route.kind !== 'resource') return method.toLowerCase();
  const named = route.name !== undefined;
  switch (method) {
    case 'GET': {
      if (named) return 'get';
      const w = query.get('watch');
      return w === 'true' || w === '1' ? 'watch' : 'list';
    }
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return named ? 'delete' : 'deletecollection';
    default:
      return method.toLowerCase();
  }
}
