/**
 * Backend → endpoint set. Services are resolved through their EndpointSlices the way kube-proxy
 * does: the Service port names the slice port; only `ready` endpoints take new traffic, while
 * `serving`+`terminating` ones are kept as `draining` so in-flight work can finish (and so the
 * proxy can fall back to them, as kube-proxy does, when nothing is ready).
 */
import type { EndpointSlice, Service } from '../api/kubernetes-types.ts';
import { SERVICE_NAME_LABEL } from '../api/kubernetes-types.ts';
import { hashEndpointsPart } from '../routing-table/hash.ts';
import type { CompiledEndpoint, EndpointsPart } from '../routing-table/types.ts';
import { compareText } from './precedence.ts';

export interface EndpointIndex {
  services: Map<string, Service>;
  slicesByService: Map<string, EndpointSlice[]>;
}

function nsName(meta: unknown): { ns: string; name: string } | undefined {
  if (typeof meta !== 'object' || meta === null) return undefined;
  const m = meta as { name?: unknown; namespace?: unknown };
  if (typeof m.name !== 'string') return undefined;
  return { ns: typeof m.namespace === 'string' ? m.namespace : 'default', name: m.name };
}

/** Builds lookups once per compile; tolerant of malformed objects (they are skipped). */
export function indexEndpoints(
  services: readonly Service[],
  slices: readonly EndpointSlice[],
): EndpointIndex {
  const index: EndpointIndex = { services: new Map(), slicesByService: new Map() };
  for (const s of services) {
    const id = nsName(s?.metadata);
    if (id && !index.services.has(`${id.ns}/${id.name}`)) index.services.set(`${id.ns}/${id.name}`, s);
  }
  for (const slice of slices) {
    const id = nsName(slice?.metadata);
    const svc = slice?.metadata?.labels?.[SERVICE_NAME_LABEL];
    if (!id || typeof svc !== 'string') continue;
    const key = `${id.ns}/${svc}`;
    const list = index.slicesByService.get(key);
    if (list) list.push(slice);
    else index.slicesByService.set(key, [slice]);
  }
  for (const list of index.slicesByService.values()) {
    list.sort((a, b) => compareText(a.metadata.name, b.metadata.name));
  }
  return index;
}

export function serviceEndpointsKey(namespace: string, service: string, port: number): string {
  return `service/${namespace}/${service}:${port}`;
}

export function urlEndpointsKey(ruleId: string, backend: string): string {
  return `urls/${ruleId}/${backend}`;
}

export type Resolution =
  | { ok: true; part: EndpointsPart }
  | { ok: false; reason: 'BackendNotFound' | 'InvalidBackend'; message: string; part: EndpointsPart };

const EMPTY = hashEndpointsPart([]);

/** Resolves `service: {name, port}` in `namespace`. Unresolved backends get an empty set. */
export function resolveService(
  index: EndpointIndex,
  namespace: string,
  name: string,
  port: number,
): Resolution {
  const svc = index.services.get(`${namespace}/${name}`);
  if (!svc) {
    return {
      ok: false,
      reason: 'BackendNotFound',
      message: `service ${namespace}/${name} not found`,
      part: EMPTY,
    };
  }
  if (svc.spec?.type === 'ExternalName') {
    const host = svc.spec.externalName;
    if (typeof host !== 'string' || host === '') {
      return {
        ok: false,
        reason: 'InvalidBackend',
        message: `service ${namespace}/${name} has no externalName`,
        part: EMPTY,
      };
    }
    return { ok: true, part: hashEndpointsPart([{ address: host, port, scheme: 'http', state: 'ready' }]) };
  }
  const ports = Array.isArray(svc.spec?.ports) ? svc.spec.ports : [];
  const svcPort = ports.find((p) => p?.port === port);
  if (!svcPort) {
    return {
      ok: false,
      reason: 'InvalidBackend',
      message: `service ${namespace}/${name} has no port ${port}`,
      part: EMPTY,
    };
  }
  const portName = svcPort.name ?? '';
  const byAddress = new Map<string, CompiledEndpoint>();
  for (const slice of index.slicesByService.get(`${namespace}/${name}`) ?? []) {
    if (!['IPv4', 'IPv6', 'FQDN'].includes(slice.addressType)) continue;
    const slicePort = (Array.isArray(slice.ports) ? slice.ports : []).find(
      (p) => (p?.name ?? '') === portName,
    );
    const target = slicePort?.port;
    if (typeof target !== 'number' || target < 1 || target > 65535) continue;
    for (const ep of Array.isArray(slice.endpoints) ? slice.endpoints : []) {
      const address = Array.isArray(ep?.addresses) ? ep.addresses[0] : undefined;
      if (typeof address !== 'string' || address === '') continue;
      const c = ep.conditions ?? {};
      // A nil `ready` means ready; `serving` defaults to `ready` (the EndpointSlice API's rules).
      const ready = c.ready ?? true;
      const serving = c.serving ?? ready;
      const terminating = c.terminating ?? false;
      const state = ready && !terminating ? 'ready' : serving && terminating ? 'draining' : undefined;
      if (!state) continue;
      const endpoint: CompiledEndpoint = { address, port: target, scheme: 'http', state };
      if (typeof ep.zone === 'string') endpoint.zone = ep.zone;
      const id = `${address}|${target}`;
      const seen = byAddress.get(id);
      // The same address can sit in two slices while they are being rebalanced; ready wins.
      if (!seen || (seen.state === 'draining' && state === 'ready')) byAddress.set(id, endpoint);
    }
  }
  const endpoints = [...byAddress.values()].sort(
    (a, b) => compareText(a.address, b.address) || a.port - b.port,
  );
  return { ok: true, part: hashEndpointsPart(endpoints) };
}

/** Static `urls:` origins. The schema has checked their shape. */
export function resolveUrls(urls: readonly string[]): EndpointsPart {
  const endpoints: CompiledEndpoint[] = [];
  const seen = new Set<string>();
  for (const text of urls) {
    const u = new URL(text);
    const scheme = u.protocol === 'https:' ? 'https' : 'http';
    const port = u.port ? Number(u.port) : scheme === 'https' ? 443 : 80;
    const address = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
    const id = `${scheme}|${address}|${port}`;
    if (seen.has(id)) continue;
    seen.add(id);
    endpoints.push({ address, port, scheme, state: 'ready' });
  }
  endpoints.sort(
    (a, b) => compareText(a.address, b.address) || a.port - b.port || compareText(a.scheme, b.scheme),
  );
  return hashEndpointsPart(endpoints);
}
