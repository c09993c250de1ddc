/**
 * EndpointState objects by origin, kept across table swaps: in-flight counts and latency estimates
 * describe the endpoint, not the table, so a weight edit must not reset them.
 */
import { isIP } from 'node:net';
import { type EndpointState, newEndpointState } from './balancers/index.ts';

export interface EndpointInfo {
  state: EndpointState;
  /**
   * The Host header an upstream named by DNS expects (`api.example.com`, with the port when it is
   * not the scheme's default); undefined for IP endpoints, which get the client's Host.
   */
  hostHeader: string | undefined;
}

export class EndpointRegistry {
  private readonly byOrigin = new Map<string, EndpointInfo>();

  get(origin: string, address: string, port: number, scheme: 'http' | 'https'): EndpointInfo {
    let info = this.byOrigin.get(origin);
    if (!info) {
      const defaultPort = scheme === 'https' ? 443 : 80;
      const hostHeader =
        isIP(address) === 0 ? (port === defaultPort ? address : `${address}:${port}`) : undefined;
      info = { state: newEndpointState(origin), hostHeader };
      this.byOrigin.set(origin, info);
    }
    return info;
  }

  /** Forgets endpoints no table uses any more. */
  retain(keep: ReadonlySet<string>): void {
    for (const origin of this.byOrigin.keys()) if (!keep.has(origin)) this.byOrigin.delete(origin);
  }

  lookup(origin: string): EndpointInfo | undefined {
    return this.byOrigin.get(origin);
  }

  get size(): number {
    return this.byOrigin.size;
  }
}
