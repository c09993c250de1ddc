/**
 * The `backends` part of /api/v1/status: every backend of every rule in the table with its
 * endpoints, and for each endpoint what the connected proxies say about it. Health is decided by
 * each proxy (active checks and outlier detection), so an endpoint can be in service on one proxy
 * and ejected on another; the view keeps that per proxy instead of inventing one verdict.
 */
import { endpointOrigin } from '../routing-table/endpoint-origin.ts';
import type { RoutingTable } from '../routing-table/types.ts';
import { WEIGHT_TOTAL } from '../routing-table/types.ts';
import type { ProxyView } from './push-server.ts';

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
  health: 'up' | 'down' | 'partial' | 'unknown';
  /** Connected proxies whose newest report counts (they sent health). */
  reporting: number;
  /** Proxies that took it out of service, and why. */
  down: { proxy: string; unhealthy: boolean; ejected: boolean }[];
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
  endpoints: StatusEndpointView[];
}

export function buildBackends(
  table: RoutingTable | undefined,
  proxies: readonly ProxyView[],
): StatusBackendView[] {
  if (table === undefined) return [];
  // origin → proxy → why it is out, over connected proxies that report health.
  const reporting = proxies.filter((p) => p.connected && p.endpointsDown !== undefined);
  const downBy = new Map<string, { proxy: string; unhealthy: boolean; ejected: boolean }[]>();
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

  const out: StatusBackendView[] = [];
  for (const rule of table.routes.rules) {
    for (const b of rule.backends) {
      const part = b.unavailable === undefined ? table.endpoints[b.endpoints] : undefined;
      const endpoints = (part?.endpoints ?? []).map((e): StatusEndpointView => {
        // The proxy names a Service spoken to over TLS by its https origin (see RuntimeTable).
        const origin = endpointOrigin({ ...e, scheme: b.tls ? 'https' : e.scheme });
        const down = downBy.get(origin) ?? [];
        const health =
          reporting.length === 0
            ? 'unknown'
            : down.length === 0
              ? 'up'
              : down.length >= reporting.length
                ? 'down'
                : 'partial';
        return {
          address: e.address,
          port: e.port,
          state: e.state,
          zone: e.zone ?? null,
          health,
          reporting: reporting.length,
          down,
        };
      });
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
        endpoints,
      });
    }
  }
  return out;
}
