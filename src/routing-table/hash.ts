/**
 * Content hashes of table parts. 64 bits of SHA-256 is plenty to detect change (a collision would
 * at worst skip one push) and keeps part updates small.
 */
import { createHash } from 'node:crypto';
import { canonicalJson } from './canonical-json.ts';
import type { EndpointsPart, RoutesPart, RoutingTable } from './types.ts';

export function contentHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

export function hashEndpointsPart(endpoints: EndpointsPart['endpoints']): EndpointsPart {
  return { hash: contentHash(canonicalJson(endpoints)), endpoints };
}

export function hashRoutesPart(part: Omit<RoutesPart, 'hash'>): RoutesPart {
  return { ...part, hash: contentHash(canonicalJson(part)) };
}

/** The table hash depends only on part hashes, so replacing one part costs O(parts), not O(bytes). */
export function tableHash(
  schemaVersion: number,
  routes: RoutesPart,
  endpoints: Record<string, EndpointsPart>,
): string {
  const h = createHash('sha256');
  h.update(`v${schemaVersion}\nroutes ${routes.hash}\n`);
  for (const key of Object.keys(endpoints).sort()) {
    h.update(`${key} ${endpoints[key]!.hash}\n`);
  }
  return h.digest('hex').slice(0, 16);
}

/** A table with `part` under `key` (or without it, when `part` is undefined); the input is not changed. */
export function withEndpointsPart(
  table: RoutingTable,
  key: string,
  part: EndpointsPart | undefined,
): RoutingTable {
  const endpoints: Record<string, EndpointsPart> = {};
  for (const k of Object.keys(table.endpoints)) if (k !== key) endpoints[k] = table.endpoints[k]!;
  if (part) endpoints[key] = part;
  const sorted = Object.fromEntries(
    Object.keys(endpoints)
      .sort()
      .map((k) => [k, endpoints[k]!]),
  );
  return {
    schemaVersion: table.schemaVersion,
    hash: tableHash(table.schemaVersion, table.routes, sorted),
    routes: table.routes,
    endpoints: sorted,
  };
}
