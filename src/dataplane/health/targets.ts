/**
 * What the active checker must run for a routing table: every endpoint of every backend of every
 * rule with a health check. Draining endpoints are included because the proxy still sends them
 * requests when a backend has no ready endpoint; a check must not restart from zero when an
 * endpoint flips between ready and draining.
 */
import type { RoutingTable } from '../../routing-table/types.ts';
import { endpointOrigin } from '../upstream/pools.ts';
import { type HealthTarget, targetKey } from './active-checker.ts';

/** The table's health-check targets, one per distinct (origin, settings), in table order. */
export function healthTargets(table: RoutingTable): HealthTarget[] {
  const out = new Map<string, HealthTarget>();
  for (const rule of table.routes.rules) {
    const hc = rule.healthCheck;
    if (!hc) continue;
    for (const backend of rule.backends) {
      for (const e of table.endpoints[backend.endpoints]?.endpoints ?? []) {
        const target: HealthTarget = { origin: endpointOrigin(e), ...hc };
        const key = targetKey(target);
        if (!out.has(key)) out.set(key, target);
      }
    }
  }
  return [...out.values()];
}
