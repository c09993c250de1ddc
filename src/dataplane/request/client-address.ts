/**
 * Who the client is, network-wise. `x-forwarded-for` is believed only from configured peers (the
 * cloud load balancer in front of the gateway); from anyone else it is discarded, or any client
 * could claim any address and walk around IP-keyed limits. Through trusted peers, the client is
 * the right-most address of the chain that is not itself a trusted proxy (what Envoy and nginx's
 * real_ip_recursive do): entries to its left were written by the client and prove nothing.
 */
import { BlockList, isIP } from 'node:net';

export class TrustedProxies {
  private readonly list = new BlockList();
  readonly empty: boolean;

  constructor(cidrs: readonly string[]) {
    for (const c of cidrs) {
      const parts = c.split('/');
      const [addr, bits] = parts;
      const family = isIP(addr ?? '');
      // `10.0.0.0/` must not read as /0 (everyone trusted).
      if (family === 0 || parts.length > 2 || (bits !== undefined && !/^\d{1,3}$/.test(bits))) {
        throw new Error(`trusted proxy ${c} is not an IP address or CIDR`);
      }
      const type = family === 4 ? 'ipv4' : 'ipv6';
      if (bits === undefined) this.list.addAddress(addr!, type);
      else this.list.addSubnet(addr!, Number(bits), type);
    }
    this.empty = cidrs.length === 0;
  }

  trusts(address: string | undefined): boolean {
    if (this.empty || !address) return false;
    const a = unmapped(address);
    const family = isIP(a);
    return family !== 0 && this.list.check(a, family === 4 ? 'ipv4' : 'ipv6');
  }

  /** The client's address given the TCP peer and the x-forwarded-for it sent. */
  clientAddress(peer: string, forwardedFor: string | string[] | undefined): string {
    if (forwardedFor === undefined || !this.trusts(peer)) return unmapped(peer);
    const chain = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor)
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0);
    for (let i = chain.length - 1; i >= 0; i--) {
      const hop = chain[i]!;
      if (isIP(unmapped(hop)) === 0) return unmapped(peer); // garbage in the chain: trust nothing
      if (!this.trusts(hop)) return unmapped(hop);
    }
    return chain.length > 0 ? unmapped(chain[0]!) : unmapped(peer);
  }
}

/** `::ffff:10.0.0.1` (an IPv4 client on a dual-stack socket) as `10.0.0.1`. */
function unmapped(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}
