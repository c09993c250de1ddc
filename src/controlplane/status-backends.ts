/**
 * The `backends` part of /api/v1/status: every backend of every rule in the table with counts of
 * its endpoints by state and health, and the endpoints themselves: by default only those some
 * proxy took out of service (the ones an operator looks for), all of them with `?endpoints=all`.
 *
 * Health is decided by each proxy (active checks and outlier detection), so an endpoint can be in
 * service on one proxy and ejected on another; the view keeps that per proxy instead of inventing
 * one verdict. Listing every endpoint by default does not scale: 10,000 routes over 50,000
 * endpoints made a 29 MB document costing the controller ~250 ms per request; the default is a few
 * MB and the endpoint walk is skipped when no proxy reports anything out.
 */
import { endpointOrigin } from '../routing-table/endpoint-origin.ts';
import type { CompiledEndpoint, RoutingTable } from '../routing-table/types.ts';
import { WEIGHT_TOTAL } from '../routing-table/types.ts';
import type { ProxyView } from './push-server.ts';

export type EndpointHealthView = 'up' | 'down' | 'partial' | 'unknown';

export interface StatusEndpointView {
  address: string;
  port: number;
  /** From the EndpointSlice: `ready` takes new requests, `draining` only finishes what it has. */
  state: 'ready' | 'draining';
  zone: string | null;
  /**
   * `up`: every reporting proxy has it in service; `down`: none has; `partial`: some have;
   * `unknown`: no connected proxy reported health yet.
   */
  health: EndpointHealthView;
  /** Connected proxies whose newest report counts (they sent health). */
  reporting: number;
  /** Proxies that took it out of service, and why. */
  down: { proxy: string; unhealthy: boolean; ejected: boolean }[];
}

export interface EndpointCounts {
  total: number;
  ready: number;
  draining: number;
  up: number;
  down: number;
  partial: number;
  unknown: number;
}

export interface StatusBackendView {
  /** `namespace/route`. */
  route: string;
  rule: string;
  name: string;
  /** Share of the rule's traffic in percent (two decimals). */
  weightPercent: number;
  protocol: string;
  modelRevision: string | null;
  /** `stable` or `canary` when a CanaryRollout governs the rule, else null. */
  role: 'stable' | 'canary' | null;
  /** Why the backend cannot serve (a missing TLS Secret, say), else null. */
  unavailable: string | null;
  counts: EndpointCounts;
  /** The endpoints selected (not up, or all), in table order, at most MAX_LISTED. */
  endpoints: StatusEndpointView[];
  /** Selected endpoints left out by the cap. */
  endpointsOmitted: number;
}

/** `notUp`: only endpoints some proxy took out of service; `all`: every endpoint. */
export type EndpointSelection = 'notUp' | 'all';

export const MAX_LISTED = 100;

type Down = StatusEndpointView['down'];

export function buildBackends(
  table: RoutingTable | undefined,
  proxies: readonly ProxyView[],
  selection: EndpointSelection = 'notUp',
): StatusBackendView[] {
  if (table === undefined) return [];
  // origin → the proxies that took it out, over connected proxies that report health.
  const reporting = proxies.filter((p) => p.connected && p.endpointsDown !== undefined);
  const downBy = new Map<string, Down>();
  for (const p of reporting) {
    for (const d of p.endpointsDown?.down ?? []) {
      let list = downBy.get(d.origin);
      if (list === undefined) {
        list = [];
        downBy.set(d.origin, list);
      }
      list.push({ proxy: p.id, unhealthy: d.unhealthy, ejected: d.ejected });
    }
  }
  const healthOf = (down: Down): EndpointHealthView =>
    reporting.length === 0
      ? 'unknown'
      : down.length === 0
        ? 'up'
        : down.length >= reporting.length
          ? 'down'
          : 'partial';
  const noDown: Down = [];

  // Endpoint sets are shared by backends (a Service behind many rules): summarise each once.
  const summaries = new Map<
    string,
    { counts: EndpointCounts; listed: StatusEndpointView[]; omitted: number }
  >();
  const summarise = (key: string, endpoints: readonly CompiledEndpoint[], tls: boolean) => {
    const id = `${key}\u0000${tls}`;
    let s = summaries.get(id);
    if (s !== undefined) return s;
    const counts: EndpointCounts = {
      total: 0,
      ready: 0,
      draining: 0,
      up: 0,
      down: 0,
      partial: 0,
      unknown: 0,
    };
    const listed: StatusEndpointView[] = [];
    let omitted = 0;
    for (const e of endpoints) {
      counts.total++;
      counts[e.state]++;
      // Nothing reported out: every endpoint has the same health, no origin to build.
      // A Service spoken to over TLS is named by its https origin on the proxy (see RuntimeTable).
      const down =
        downBy.size === 0
          ? noDown
          : (downBy.get(endpointOrigin({ ...e, scheme: tls ? 'https' : e.scheme })) ?? noDown);
      const health = healthOf(down);
      counts[health]++;
      if (selection === 'all' || health === 'down' || health === 'partial') {
        if (listed.length >= MAX_LISTED) {
          omitted++;
          continue;
        }
        listed.push({
          address: e.address,
          port: e.port,
          state: e.state,
          zone: e.zone ?? null,
          health,
          reporting: reporting.length,
          down: [...down],
        });
      }
    }
    s = { counts, listed, omitted };
    summaries.set(id, s);
    return s;
  };

  const out: StatusBackendView[] = [];
  for (const rule of table.routes.rules) {
    for (const b of rule.backends) {
      // An unavailable backend serves no endpoint, whatever its Service has.
      const part = b.unavailable === undefined ? table.endpoints[b.endpoints] : undefined;
      const s =
        part === undefined
          ? summarise('', [], false)
          : summarise(b.endpoints, part.endpoints, b.tls !== undefined);
      out.push({
        route: rule.route,
        rule: rule.name,
        name: b.name,
        weightPercent: Math.round((b.weight / WEIGHT_TOTAL) * 10000) / 100,
        protocol: b.protocol,
        modelRevision: b.modelRevision ?? null,
        role:
          rule.canary?.stableBackend === b.name
            ? 'stable'
            : rule.canary?.canaryBackend === b.name
              ? 'canary'
              : null,
        unavailable: b.unavailable ?? null,
        counts: { ...s.counts },
        endpoints: s.listed,
        endpointsOmitted: s.omitted,
      });
    }
  }
  return out;
}
