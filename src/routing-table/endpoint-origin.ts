/**
 * The origin (`scheme://host:port`) naming an upstream endpoint. The proxy keys its connection
 * pools and endpoint health by it, and the controller's status API joins the proxies' health
 * reports to the table's endpoints by it, so both sides must compute it the same way.
 */
import type { CompiledEndpoint } from './types.ts';

export function endpointOrigin(e: Pick<CompiledEndpoint, 'scheme' | 'address' | 'port'>): string {
  const host = e.address.includes(':') ? `[${e.address}]` : e.address;
  return `${e.scheme}://${host}:${e.port}`;
}
